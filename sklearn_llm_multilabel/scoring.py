"""Score texts into a store without aggregating: the public entry point below ``predict_proba``.

A fitted :class:`~sklearn_llm_multilabel.LLMMultiLabelClassifier` turns each
text into a *record* (its generation steps, or its unary or binary
breakdown answers) stored under a content-addressed key. ``predict_proba``
reads records from its ``cache_dir`` and aggregates them; the functions here
fill a store and return the keys, for jobs that score a corpus first and
aggregate later (the Ray runner of :mod:`sklearn_llm_multilabel.distributed`
uses them on every worker).

Examples
--------
>>> from sklearn_llm_multilabel import LLMMultiLabelClassifier, register_model
>>> from sklearn_llm_multilabel.testing import make_tiny_model_and_tokenizer
>>> register_model("tiny-scoring-doc", *make_tiny_model_and_tokenizer())
>>> clf = LLMMultiLabelClassifier("tiny-scoring-doc", n_shots=1, show_progress=False)
>>> clf = clf.fit(["rain", "goal"], [["weather"], ["sports"]])
>>> import tempfile
>>> keys = score_texts(clf, ["more rain"], store=tempfile.mkdtemp())
>>> keys == record_keys(clf, ["more rain"])
True
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ._scoring import fill
from .backends._registry import KINDS
from .store._sharded import ShardedStore

__all__ = ["KINDS", "ShardedStore", "fill", "open_store", "record_keys", "score_texts",
           "scorer_for"]


def scorer_for(estimator, kind: str = "steps"):
    """The process-wide scorer of a fitted estimator's prompt (built once per process).

    Parameters
    ----------
    estimator : fitted LLMMultiLabelClassifier
    kind : {"steps", "unary", "binary"}, default="steps"

    Returns
    -------
    scorer : StepScorer or BreakdownScorer
    """
    from .backends._registry import get_scorer

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    return get_scorer(estimator.scorer_spec(kind), estimator.scoring_model())


def record_keys(estimator, texts: Sequence[str], *, kind: str = "steps") -> list[str]:
    """The store key of every text's record, computed without running the model.

    The key is a hash of the model's fingerprint, the whole prompt, the
    decoding settings and the (normalised, truncated) text; the same text
    scored by the same fitted estimator always has the same key, in any process.

    Parameters
    ----------
    estimator : fitted LLMMultiLabelClassifier
    texts : sequence of str
    kind : {"steps", "unary", "binary"}, default="steps"

    Returns
    -------
    keys : list of str
        64 hexadecimal digits each, one per text (duplicates share a key).
    """
    scorer = scorer_for(estimator, kind)
    return [scorer.query_key(q) for q in scorer.prepare_queries(estimator.prepare_texts(texts))]


def open_store(store, *, hidden_dtype: str = "float32"):
    """The :class:`~sklearn_llm_multilabel.store.RecordStore` over ``store``.

    It is a :class:`~sklearn_llm_multilabel.store.StepCache`: the process's
    memory layer in front of the folder's layout. ``store`` is a folder (an
    existing one-file-per-text cache or sharded
    store is used as it is; a new or empty folder becomes a sharded store
    writing hidden states at ``hidden_dtype``), a ``StepCache`` or
    ``ShardedStore`` object, or None (memory only).
    """
    from .store._files import StepCache, check_cache_dir
    from .store._layout import SHARDED, ensure_layout, existing_layout, user_files

    if store is None or isinstance(store, StepCache):
        return store if store is not None else StepCache(None)
    if isinstance(store, ShardedStore):
        return StepCache(store.folder, hidden_dtype=store.hidden_dtype)
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a folder path, a StepCache or a ShardedStore; got {store!r}.")
    folder = Path(store)
    if existing_layout(folder) is None:  # a new folder: the layout is decided under its lock
        check_cache_dir(folder)  # an unmarked earlier cache is kept as it is; others refused
        if folder.is_dir() and user_files(folder):
            return StepCache(folder)
        ensure_layout(folder, SHARDED)
    return StepCache(folder, hidden_dtype=hidden_dtype)


def score_texts(estimator, texts: Sequence[str], *, store=None, kind: str = "steps",
                batch_size: int | str | None = None, show_progress: bool | None = None) -> list[str]:
    """Score the texts whose records ``store`` lacks, write them, and return every text's key.

    Duplicate texts are scored once; texts already in the store (or in the
    process's memory cache) are not scored again. A fresh estimator given the
    same store afterwards (``cache_dir=store``) predicts without running the
    model.

    Parameters
    ----------
    estimator : fitted LLMMultiLabelClassifier
    texts : sequence of str
    store : folder, StepCache, ShardedStore or None, default=None
        See :func:`open_store`. None uses the estimator's ``cache_dir``.
    kind : {"steps", "unary", "binary"}, default="steps"
        ``"steps"`` are the generation steps every step aggregation (max,
        first, mean, hard) reads; ``"unary"`` and ``"binary"`` the breakdowns.
    batch_size, show_progress : default None (the estimator's)

    Returns
    -------
    keys : list of str
        One per text, in order (see :func:`record_keys`).
    """
    scorer = scorer_for(estimator, kind)
    cache = open_store(estimator.cache_dir if store is None else store)
    keys, _ = fill(scorer, cache, estimator.prepare_texts(texts),
                   batch_size=estimator.batch_size if batch_size is None else batch_size,
                   show_progress=estimator.show_progress if show_progress is None else show_progress,
                   with_keys=True)
    return keys

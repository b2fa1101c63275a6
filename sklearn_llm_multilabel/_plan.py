"""A saved estimator's prediction plan: what a fully stored prediction needs, as plain JSON.

Reading a ``.skops`` file imports skops, whose import walks scikit-learn's
estimators and with them torch: about 3 seconds before any record is read.
A prediction whose every record is in the store needs none of that: the
estimator's parameters, its labels and the key recipes of its records
(:mod:`._keys`) find and aggregate them. :func:`write_plan` writes those,
beside the estimator file, as ``<file>.plan.json``, with the SHA-256 of the
``.skops`` bytes; :func:`stored_predictor` rebuilds an estimator from the
plan, and only when the plan belongs to the file beside it and every text's
record is stored. Anything else (another or a changed estimator file, a
parameter that JSON does not carry exactly, a missing record, a model that
must run) returns None, and the caller loads the ``.skops`` file as usual.
The rebuilt estimator predicts through the estimator's own code, so the
numbers are the same bytes.

The plan is written only for the plain case: one stratified prompt, no
fine-tuned adapter, a named aggregation other than ``binary``, no
``trust_remote_code``. It holds data only; no model is loaded from it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ._keys import file_digest

#: bumped when the plan's content changes
PLAN_VERSION = 1
#: the most a plan file may hold (its recipes and demonstrations: kilobytes)
MAX_PLAN_BYTES = 16 * 2**20
#: fitted attributes a stored prediction reads
_FITTED = ("label_names_", "protocol_", "demonstration_params_", "finetune_params_",
           "key_recipes_", "prompt_", "prompt_demonstrations_", "include_empty_demos_",
           "empty_label_share_")
#: the key recipe's fields that are tuples (JSON writes lists)
_TUPLE_FIELDS = ("spellings", "versions")


def plan_path(estimator_file: str | Path) -> Path:
    """Where the plan of ``estimator_file`` lies: ``<file>.plan.json`` beside it."""
    estimator_file = Path(estimator_file)
    return estimator_file.with_name(estimator_file.name + ".plan.json")


def _plain(estimator) -> bool:
    from ._classifier import LLMMultiLabelClassifier

    return (type(estimator) is LLMMultiLabelClassifier
            and bool(getattr(estimator, "key_recipes_", None))
            and estimator.finetune is None and estimator.demo_selection == "stratified"
            and estimator.n_prompts == 1 and isinstance(estimator.aggregation, str)
            and estimator.aggregation != "binary" and not estimator.trust_remote_code)


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


def _rebuild(plan: dict):
    """An estimator from a plan's parameters and fitted attributes."""
    from ._classifier import LLMMultiLabelClassifier

    clf = LLMMultiLabelClassifier(**plan["params"])
    fitted = dict(plan["fitted"])
    fitted["label_names_"] = np.array(fitted["label_names_"], dtype=object)
    fitted["prompt_demonstrations_"] = [[(t, list(labels)) for t, labels in demos]
                                        for demos in fitted["prompt_demonstrations_"]]
    fitted["key_recipes_"] = {
        kind: {**recipe, "stamps": _as_tuples(recipe["stamps"]),
               **{f: tuple(recipe[f]) for f in _TUPLE_FIELDS},
               "checks": {k: _as_tuples(v) for k, v in recipe["checks"].items()}}
        for kind, recipe in fitted["key_recipes_"].items()}
    for name, value in fitted.items():
        setattr(clf, name, value)
    clf.classes_ = [np.array([0, 1]) for _ in clf.label_names_]
    clf.demonstrations_ = clf.prompt_demonstrations_[0]
    return clf


def _json_params(estimator) -> dict:
    """The estimator's parameters, a path-like ``cache_dir`` as its string (the store opens
    either the same way)."""
    params = estimator.get_params(deep=False)
    if isinstance(params.get("cache_dir"), os.PathLike):
        params["cache_dir"] = os.fspath(params["cache_dir"])
    return params


def write_plan(estimator, estimator_file: str | Path, skops_bytes: bytes) -> Path | None:
    """Write the plan of ``estimator`` (saved as ``skops_bytes`` in ``estimator_file``), or
    remove a plan left there when the estimator has none; returns the plan's path or None.

    The plan is written only when it rebuilds the estimator's parameters and key recipes
    exactly (checked here by rebuilding it)."""
    from .store._atomic import atomic_write

    path = plan_path(estimator_file)
    path.unlink(missing_ok=True)
    if not _plain(estimator):
        return None
    fitted = {name: getattr(estimator, name, None) for name in _FITTED}
    fitted["label_names_"] = [str(n) for n in estimator.label_names_]
    # the binary breakdown's recipe holds its pairs as tuples, which JSON does not keep; the
    # plan never serves that aggregation
    fitted["key_recipes_"] = {k: v for k, v in estimator.key_recipes_.items() if k != "binary"}
    params = _json_params(estimator)
    plan = {"version": PLAN_VERSION, "skops_sha256": hashlib.sha256(skops_bytes).hexdigest(),
            "params": params, "fitted": fitted}
    try:
        text = json.dumps(plan, allow_nan=False)
        rebuilt = _rebuild(json.loads(text))
    except (TypeError, ValueError):  # a parameter or attribute JSON does not carry
        return None
    # every parameter back as it was (the string of a path-like cache_dir aside, which no
    # record key reads), and every recipe: the keys the plan computes are the estimator's
    if rebuilt.get_params(deep=False) != params or rebuilt.key_recipes_ != fitted["key_recipes_"]:
        return None
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return path


def stored_predictor(estimator_file: str | Path, texts: list[str], *, cache_dir=None,
                     aggregation: str | None = None):
    """An estimator rebuilt from the plan beside ``estimator_file`` when every text's record
    is stored (under ``cache_dir``, else the estimator's own); None otherwise.

    Parameters
    ----------
    estimator_file : path
        A ``.skops`` file written by :func:`~.persistence.save_estimator`.
    texts : list of str
    cache_dir : path or None
        The store to read (``sklml predict --store``).
    aggregation : str or None
        The aggregation to predict with (``sklml predict --strategy``).
    """
    path, estimator_file = plan_path(estimator_file), Path(estimator_file)
    try:
        if not path.is_file() or path.stat().st_size > MAX_PLAN_BYTES:
            return None
        plan = json.loads(path.read_text(encoding="utf-8"))
        if (not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION
                or plan.get("skops_sha256") != file_digest(estimator_file)):
            return None
        clf = _rebuild(plan)
        if cache_dir is not None:
            clf.set_params(cache_dir=cache_dir)
        if aggregation is not None:
            clf.set_params(aggregation=aggregation)
        if not _plain(clf):
            return None
        kind = clf._aggregation_entry().record_kind
        if clf._stored(kind, clf.prepare_texts(texts)) is None:  # before any model is needed
            return None
        clf._check_fitted()
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None  # the .skops file decides
    return clf

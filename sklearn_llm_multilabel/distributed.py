"""Score a corpus on a Ray cluster into a sharded store, resumably.

Fit and tune locally on a labelled set; then :func:`score_dataset` scores a
large corpus with the fitted estimator on Ray Data (one model copy per
worker, on a laptop with ``ray.init()``, a GPU box or a cluster) into a
sharded Parquet store. Afterwards ``LLMMultiLabelClassifier(cache_dir=store)``
(or the fitted estimator with ``set_params(cache_dir=store)``) aggregates,
calibrates and compares without running the model again.

Needs the ``[ray]`` extra: ``pip install ".[ray]"`` in a checkout.

How it runs:

* the driver normalises the texts, drops duplicates and computes every key
  (the tokenizer only: the driver never loads the weights);
* with ``resume=True`` keys whose records the store holds, valid, are dropped
  before anything is launched (an anti-join; a damaged record is sent to the
  workers again), so a job restarted with the same command scores only what
  is missing;
* ``map_batches`` with an actor class: each actor unpickles the fitted
  estimator (which pickles without weights), loads the model once, checks
  that it computes the driver's keys (same model, prompt and library), skips
  keys another attempt already wrote, scores the rest and writes them as one
  shard per batch. Ray restarts an actor that dies and retries its batch;
  the retry finds what was written and writes nothing twice;
* the driver holds a lease in the store (``_runs/``) and every actor watches
  it: an actor whose driver is gone (killed, even with ``kill -9``) exits
  before its next write, and a new run on the same store first waits for
  such writers to stop, so a prompt rerun never races them.
"""

from __future__ import annotations

import copy
import os
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from ._leases import DriverLease, wait_for_orphaned_writers
from ._scoring import fill
from .scoring import KINDS, open_store, record_keys, scorer_for

#: how long a run waits for the writers of an earlier, killed run to stop (they stop within
#: a few seconds of their driver's death, see ._leases)
ORPHAN_WAIT_SECONDS = 60.0

# Fault injection for the tests of retries: when this variable names an existing file, the
# first actor to remove it exits abruptly after scoring its batch and before writing it.
_KILL_ONCE_ENV = "SKLML_TEST_KILL_ONE_WORKER"


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError("score_dataset needs Ray Data: pip install 'ray[data]' (or the [ray] "
                          "extra of a checkout: pip install '.[ray]').") from exc
    return ray


@dataclass
class ScoreSummary:
    """What :func:`score_dataset` did.

    Attributes
    ----------
    n_texts : int
        Texts given (duplicates included).
    n_unique : int
        Distinct texts (distinct keys of the first kind).
    n_skipped : int
        Distinct texts whose records were already in the store (resume).
    n_scored : int
        Distinct texts sent to the workers.
    seconds : float
    output : str
    n_invalid : int
        Missing, empty or non-string texts left out (``skip_invalid_texts=True``).
    """

    n_texts: int
    n_unique: int
    n_skipped: int
    n_scored: int
    seconds: float
    output: str
    n_invalid: int = 0


def _read_texts(data, text_column: str, skip_invalid: bool = False) -> tuple[list[str], int]:
    """The texts of ``data`` exactly as written (see :func:`._textfile.read_texts`)."""
    from ._textfile import read_texts

    if isinstance(data, (str, os.PathLike)) or hasattr(data, "take_all"):
        return read_texts(data, text_column, skip_invalid=skip_invalid)
    if not isinstance(data, Sequence):
        raise TypeError("data must be a list of texts, a .parquet/.csv path or a ray.data.Dataset.")
    return list(data), 0


def _maybe_die() -> None:
    marker = os.environ.get(_KILL_ONCE_ENV)
    if marker:
        try:
            os.remove(marker)  # only one process succeeds
        except FileNotFoundError:
            return
        os._exit(1)


class _ScoreActor:
    """One worker: the fitted estimator and its model, scoring batches into the store."""

    def __init__(self, payload: bytes, output: str, kinds: tuple, hidden_dtype: str,
                 torch_threads: int | None, lease: str | None = None):
        from ._leases import WriterLease

        # exits this process when the driver is gone (see ._leases): never an orphaned writer
        self.lease = WriterLease(lease) if lease is not None else None
        if torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        from .store._sharded import ShardedStore

        self.estimator = pickle.loads(payload)
        self.store = ShardedStore(output, hidden_dtype=hidden_dtype)
        self.kinds = kinds
        self.scorers = {kind: scorer_for(self.estimator, kind) for kind in kinds}
        self.cache = open_store(self.store)

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch["text"]]
        store = _GuardedStore(self.cache, self.lease)
        for kind, scorer in self.scorers.items():
            # the one glue of every scorer and store: what an earlier attempt of this batch
            # wrote (valid) is read, not scored again; the rest is scored and written
            fill(scorer, store, texts, batch_size=self.estimator.batch_size,
                 check_keys=partial(_check_driver_keys, [str(k) for k in batch[f"key_{kind}"]]))
        return {"key": np.asarray(batch["key_" + self.kinds[0]]),
                "written": np.full(len(texts), store.written)}


def _check_driver_keys(expected: list[str], keys: list[str]) -> None:
    if list(keys) != expected:
        raise RuntimeError(
            "a worker computes other record keys than the driver: its model files, "
            "tokenizer or library version differ. Install the same environment on "
            "every node.")


def _readable(store, keys: list[str], chunk: int = 50_000) -> np.ndarray:
    """Whether each key's record is in the store *and* valid: a damaged record is scored again
    by the workers (not skipped, then rescored on the driver when it is read)."""
    held = store.contains(keys)
    out = np.zeros(len(keys), dtype=bool)
    where = np.flatnonzero(held)
    for start in range(0, len(where), chunk):  # decoded in chunks: bounded memory
        part = where[start:start + chunk]
        records = store.get_many([keys[i] for i in part])
        out[part] = [r is not None for r in records]
    return out


class _GuardedStore:
    """The actor's store: before each write, the fault-injection hook of the tests and the
    check that the driver is still alive (an orphaned actor stops before writing)."""

    def __init__(self, store, lease):
        self.store, self.lease = store, lease
        self.written = 0

    def get_many(self, keys, kind=None, check=None):
        return self.store.get_many(keys, kind=kind, check=check)

    def put_many(self, keys, records) -> None:
        _maybe_die()
        if self.lease is not None:
            self.lease.ensure_driver()
        self.store.put_many(keys, records)
        self.written += len(keys)


def _write_probabilities(estimator, texts, keys, output, path, aggregations) -> None:
    """Per-label probabilities of every distinct text, aggregated from the store (no model)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first_row: dict[str, int] = {}
    for i, key in enumerate(keys):
        first_row.setdefault(key, i)
    rows = sorted(first_row.values())
    distinct = [texts[i] for i in rows]
    reader = copy.copy(estimator).set_params(cache_dir=output, show_progress=False)
    tables = []
    for aggregation in aggregations:
        proba = reader.set_params(aggregation=aggregation).predict_proba(distinct)
        columns = {"text": distinct, "key": [keys[i] for i in rows],
                   "aggregation": [aggregation] * len(distinct)}
        columns.update({f"p_{name}": proba[:, j] for j, name in enumerate(estimator.label_names_)})
        tables.append(pa.table(columns))
    pq.write_table(pa.concat_tables(tables), path)


def score_dataset(estimator, data, *, output, num_workers: int = 1,
                  num_gpus_per_worker: float | None = None, batch_size: int = 64,
                  resume: bool = True, hidden_states: bool = False,
                  kinds: Sequence[str] = ("steps",), text_column: str = "text",
                  torch_threads: int | None = 1, probabilities=None,
                  aggregations: Sequence[str] = ("max",),
                  skip_invalid_texts: bool = False,
                  show_progress: bool = True) -> ScoreSummary:
    """Score ``data`` with a fitted estimator on Ray Data into the sharded store ``output``.

    Call ``ray.init(...)`` first to choose the cluster (otherwise Ray starts a
    local one).

    Parameters
    ----------
    estimator : fitted LLMMultiLabelClassifier
        Its model must be loadable on every worker (a file, folder or hub id,
        not a name given to ``register_model``).
    data : list of str, path or ray.data.Dataset
        Texts, a ``.parquet``/``.csv``/``.tsv`` file with ``text_column``, or a
        dataset with that column.
    output : str or path
        The sharded store (created when missing; an existing one is added to).
    num_workers : int, default=1
        Actors, each with one model copy.
    num_gpus_per_worker : float or None, default=None
        GPUs per actor (None on CPU).
    batch_size : int, default=64
        Texts per Ray batch, and per shard.
    resume : bool, default=True
        Skip texts whose records the store already holds, readable (checked
        before anything is launched; a damaged record is scored again by the
        workers). False sends every text; workers still never write a valid
        record twice.
    hidden_states : bool, default=False
        Every step record holds the hidden state that predicts the first label
        (the probe's feature). False stores it as float16, halving its bytes;
        True keeps float32, exactly as computed. Scores are always exact.
    kinds : sequence of {"steps", "unary", "binary"}, default=("steps",)
        The records to compute: generation steps, and the breakdowns.
    text_column : str, default="text"
    torch_threads : int or None, default=1
        Torch threads per actor (None leaves torch's default).
    probabilities : str, path or None, default=None
        Also write a Parquet table of per-label probabilities here: one row
        per distinct text and aggregation (columns ``text``, ``key``,
        ``aggregation``, ``p_<label>``), aggregated locally from the store.
    aggregations : sequence of str, default=("max",)
        The aggregations of that table (``unary``/``binary`` need those kinds).
    skip_invalid_texts : bool, default=False
        Texts are read exactly as the file spells them (a string column, never
        type inference: ``007`` stays ``"007"``). A missing, empty or
        non-string text is an error naming its row; True leaves such rows out
        and counts them (``ScoreSummary.n_invalid``).
    show_progress : bool, default=True

    Returns
    -------
    ScoreSummary
    """
    ray = _require_ray()
    from tqdm.auto import tqdm

    from .store._sharded import ShardedStore

    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}; got {list(kinds)}.")
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive int; got {num_workers!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    from .backends._specs import MODEL_ALIASES

    if estimator.model not in MODEL_ALIASES and not Path(estimator.model).exists() and \
            "/" not in estimator.model:
        raise ValueError(f"model={estimator.model!r} is not a file, folder, alias or hub id: "
                         "Ray workers cannot load a model given to register_model.")
    start = time.perf_counter()
    raw, n_invalid = _read_texts(data, text_column, skip_invalid_texts)
    texts = estimator.prepare_texts(raw)
    store = ShardedStore(output, hidden_dtype="float32" if hidden_states else "float16")
    # writers of an earlier run whose driver was killed stop by themselves: wait for them, so
    # the resume below sees all they wrote and nothing is scored twice
    wait_for_orphaned_writers(output, timeout=ORPHAN_WAIT_SECONDS)
    keys = {kind: record_keys(estimator, texts, kind=kind) for kind in kinds}
    first = keys[kinds[0]]
    seen, rows = set(), []  # the first row of every distinct text
    for i, key in enumerate(first):
        if key not in seen:
            seen.add(key)
            rows.append(i)
    n_unique = len(rows)
    if resume and rows:
        present = np.ones(len(rows), dtype=bool)
        for kind in kinds:
            present &= _readable(store, [keys[kind][i] for i in rows])
        rows = [i for i, done in zip(rows, present) if not done]
    n_skipped = n_unique - len(rows)
    # Longest first, as the local engine orders its batches: each Ray batch then holds texts
    # of similar lengths and pads little (in input order, a batch pads to its longest text).
    rows.sort(key=lambda i: -len(texts[i]))
    if rows:
        import pyarrow as pa

        table = pa.table({"text": [texts[i] for i in rows],
                          **{f"key_{k}": [keys[k][i] for i in rows] for k in kinds}})
        worker = copy.copy(estimator).set_params(show_progress=False, cache_dir=None)
        payload = pickle.dumps(worker)  # no weights: each actor loads the model from its files
        with DriverLease(output) as lease:
            ds = ray.data.from_arrow(table).map_batches(
                _ScoreActor, batch_size=batch_size, batch_format="numpy",
                fn_constructor_kwargs={"payload": payload, "output": str(output), "kinds": kinds,
                                       "hidden_dtype": store.hidden_dtype,
                                       "torch_threads": torch_threads, "lease": str(lease.path)},
                compute=ray.data.ActorPoolStrategy(size=num_workers),
                num_cpus=1, num_gpus=num_gpus_per_worker,
            )
            with tqdm(total=len(rows), unit="text", desc="Scoring on Ray",
                      disable=not show_progress) as bar:
                for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    bar.update(len(batch["key"]))
    if probabilities is not None:
        _write_probabilities(estimator, texts, first, output, probabilities, aggregations)
    return ScoreSummary(n_texts=len(texts), n_unique=n_unique, n_skipped=n_skipped,
                        n_scored=len(rows), seconds=time.perf_counter() - start,
                        output=str(output), n_invalid=n_invalid)

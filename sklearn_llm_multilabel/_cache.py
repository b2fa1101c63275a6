"""Content-addressed store of step records, below aggregation.

Keys come from :meth:`StepScorer.query_key`: a hash of the model fingerprint
(weights, tokenizer, dtype), the whole prompt (instruction, demonstrations,
label set, format, query template), the decoding settings and the text.
Aggregation, threshold and calibration never enter a key.

Two levels:

* in-process: a bounded dictionary shared by every estimator of the process
  (so clones made by ``GridSearchCV`` share it);
* on disk (optional ``cache_dir``): one ``.npz`` file per text, written to a
  temporary file and renamed into place (atomic; concurrent writers of the
  same key write identical content), read with ``allow_pickle=False``. An
  unreadable entry is warned about and recomputed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from . import _state
from .backends._base import RECORD_TYPES
from .exceptions import CacheWarning

FORMAT_VERSION = 2

_MEMORY = _state.MEMORY
_MEMORY_LOCK = _state.LOCK


def clear_memory_cache() -> None:
    """Empty the in-process cache (the on-disk cache is left alone).

    Examples
    --------
    >>> clear_memory_cache()  # the next predict_proba scores every text again
    """
    with _MEMORY_LOCK:
        _MEMORY.clear()


class StepCache:
    """Read and write step records by key, in memory and optionally on disk.

    Parameters
    ----------
    cache_dir : str, path or None
        Folder of the on-disk cache (created when missing); None keeps the
        cache in memory only.
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives on disk."""
        if self.cache_dir is None:
            raise ValueError("this cache has no cache_dir.")
        return self.cache_dir / key[:2] / f"{key}.npz"

    def get(self, key: str):
        """The record for ``key``, or None when absent (or unreadable on disk)."""
        with _MEMORY_LOCK:
            record = _MEMORY.get(key)
            if record is not None:
                _MEMORY.move_to_end(key)
                return record
        if self.cache_dir is None:
            return None
        path = self.path(key)
        if not path.exists():
            return None
        record = self._read(path, key)
        if record is not None:
            self._remember(key, record)
        return record

    def put(self, key: str, record) -> None:
        """Store ``record`` in memory and, with a ``cache_dir``, atomically on disk."""
        self._remember(key, record)
        if self.cache_dir is not None:
            self._write(self.path(key), key, record)

    @staticmethod
    def _remember(key: str, record) -> None:
        with _MEMORY_LOCK:
            _MEMORY[key] = record
            _MEMORY.move_to_end(key)
            while len(_MEMORY) > _state.MEMORY_CACHE_SIZE:
                _MEMORY.popitem(last=False)

    @staticmethod
    def _write(path: Path, key: str, record) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays, meta = record.to_payload()
        meta = {**meta, "format_version": FORMAT_VERSION, "key": key,
                "kind": type(record).__name__}
        arrays = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _read(path: Path, key: str):
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                arrays = {name: np.array(data[name]) for name in data.files if name != "meta"}
            if meta.get("format_version") != FORMAT_VERSION or meta.get("key") != key:
                raise ValueError("entry belongs to another key or format version")
            kind = RECORD_TYPES.get(meta.get("kind"))
            if kind is None:
                raise ValueError(f"unknown record kind {meta.get('kind')!r}")
            return kind.from_payload(arrays, meta)
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile,
                UnicodeDecodeError) as exc:
            warnings.warn(
                f"Cache entry {path} is unreadable ({type(exc).__name__}: {exc}); it will be "
                "recomputed.",
                CacheWarning,
                stacklevel=3,
            )
            return None

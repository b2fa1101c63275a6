"""The in-process layer in front of either layout: records by key, capped in bytes.

One store per process (in :mod:`sklearn_llm_multilabel._state`, under its
lock), shared by every estimator, clone and thread, so ``GridSearchCV``'s
clones reuse each other's records. Least recently used records leave first
once the records' arrays exceed :data:`MEMORY_BYTES` (or the count
:data:`~sklearn_llm_multilabel._state.MEMORY_CACHE_SIZE`): a corpus of
long hidden states or large adapters cannot fill the memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .. import _state

#: bytes of record arrays the process keeps (the oldest leave first)
MEMORY_BYTES = 2 * 2**30


def record_nbytes(record) -> int:
    """Bytes of a record's arrays (its ``nbytes``; 0 for an object without one).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_llm_multilabel.store import AdapterRecord
    >>> record_nbytes(AdapterRecord(weights={"a": np.zeros((2, 4), np.float32)},
    ...                             losses=np.zeros(3)))
    56
    """
    return int(getattr(record, "nbytes", 0))


def get_many(keys: Sequence[str]) -> list:
    """The records held for ``keys`` (None where absent), marked as recently used."""
    with _state.LOCK:
        out = []
        for key in keys:
            record = _state.MEMORY.get(key)
            if record is not None:
                _state.MEMORY.move_to_end(key)
            out.append(record)
        return out


def put_many(items: Iterable[tuple[str, object]]) -> None:
    """Hold records, evicting the least recently used beyond the byte and count caps."""
    with _state.LOCK:
        for key, record in items:
            old = _state.MEMORY.pop(key, None)
            if old is not None:
                _state.MEMORY_NBYTES -= record_nbytes(old)
            _state.MEMORY[key] = record
            _state.MEMORY_NBYTES += record_nbytes(record)
        while _state.MEMORY and (len(_state.MEMORY) > _state.MEMORY_CACHE_SIZE
                                 or _state.MEMORY_NBYTES > MEMORY_BYTES):
            _, old = _state.MEMORY.popitem(last=False)
            _state.MEMORY_NBYTES -= record_nbytes(old)


def clear() -> None:
    """Forget every record held in memory."""
    with _state.LOCK:
        _state.MEMORY.clear()
        _state.MEMORY_NBYTES = 0


def keys() -> list[str]:
    """The keys held in memory, least recently used first."""
    with _state.LOCK:
        return list(_state.MEMORY)

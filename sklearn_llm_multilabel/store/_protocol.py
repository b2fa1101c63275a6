"""What every store of records offers: the :class:`RecordStore` protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ._layout import CacheContents


@runtime_checkable
class RecordStore(Protocol):
    """Records by content key: the one interface of the in-memory, one-file and sharded stores.

    A key is 64 lowercase hexadecimal characters (a SHA-256 of the model
    fingerprint, the prompt, the decoding settings and the text); a record is
    one of :class:`StepRecord`, :class:`BreakdownRecord` or
    :class:`AdapterRecord`. Every implementation refuses what it cannot trust
    (a damaged or foreign file is skipped with one ``CacheWarning``, never
    returned) and never loses a result to a failed write (it warns once and
    keeps the result in memory).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_llm_multilabel.scoring import open_store
    >>> isinstance(open_store(tempfile.mkdtemp()), RecordStore)
    True
    """

    def get_many(self, keys: Sequence[str], kind: type | None = None,
                 check: Callable | None = None) -> list:
        """The record of every key, None where absent or invalid."""

    def put_many(self, keys: Sequence[str], records: Sequence) -> object:
        """Store records under keys."""

    def contains(self, keys: Sequence[str]) -> np.ndarray:
        """A boolean per key: whether the store holds its record."""

    def keys(self) -> Iterable[str]:
        """Every key held."""

    def info(self) -> CacheContents:
        """Entries, their bytes, orphaned temporaries and foreign files."""

    def clear(self) -> tuple[int, int]:
        """Delete the store's own records and temporaries (never other files)."""

"""A sharded columnar store of records (Parquet), for millions of texts.

The folder holds a marker (:data:`MARKER`, with the schema version) and
``shards/*.parquet``, one shard per written batch. A shard's rows are
``key`` (the 64-hex content address, as for the one-file-per-text cache),
``kind`` (the record class), the record's metadata (``m.<field>`` columns
for fields of one simple type, ``meta`` a JSON object of the rest) and, per
array of the record, its raw bytes, shape and dtype: values come back exactly
as the engine computed them (hidden states may be stored as float16 on
request). A shard is written under a temporary name and renamed, so readers
never see half a shard and concurrent writers never share a file; a shard that
cannot be read (cut short by a crash) is skipped with a :class:`CacheWarning`.

Reading by key goes through an index of every shard's key column (read once,
then only new shards), held as a sorted array of the keys (64 bytes each)
and their places: no listing of millions of files. A shard is decoded column
by column and its step records are built many at once
(:mod:`._shard_columns`).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .._warnings import warn_once
from ..exceptions import CacheWarning, StoreError
from ._atomic import TMP_PREFIX, atomic_write
from ._columns import Shard, key_digests, split_meta
from ._layout import (
    ADAPTERS,
    FILES,
    LOCK_NAME,
    RUNS,
    SHARDED,
    SHARDED_MARKER,
    SHARDED_SCHEMA_VERSION,
    CacheContents,
    ensure_layout,
    existing_layout,
    read_marker,
)

#: file that marks a folder as a sharded store of this library
MARKER = SHARDED_MARKER
SCHEMA_VERSION = SHARDED_SCHEMA_VERSION
_SHARDS = "shards"
_TMP_PREFIX = TMP_PREFIX
_OPEN_SHARDS = 8  # decoded shards kept in memory per store
#: a shard of more rows is refused from its metadata, before its keys are read; writers split
#: larger batches into shards of at most this many rows
MAX_SHARD_ROWS = 262_144
#: a shard that would decode to more bytes (Parquet's uncompressed size) is refused unread
MAX_SHARD_BYTES = 1 << 30
#: the columns every shard of this library has
_REQUIRED_COLUMNS = ("key", "kind", "meta")


def _require_pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the [ray] extra
        raise ImportError("the sharded store needs pyarrow: pip install pyarrow (or the [ray] "
                          "extra of a checkout: pip install '.[ray]').") from exc
    return pa, pq


_KEY = re.compile(r"[0-9a-f]{64}")


def _check_keys(keys: Sequence[str]) -> None:
    """Keys are 64 lowercase hex characters (a SHA-256), as the key column holds them."""
    for key in keys:
        if not (isinstance(key, str) and _KEY.fullmatch(key)):
            raise ValueError(f"store keys are 64 lowercase hexadecimal characters; got {key!r}.")


def is_sharded_store(folder) -> bool:
    """Whether ``folder`` is a sharded store (its marker, checked, says so)."""
    return existing_layout(folder) == SHARDED


def _warn_once(path: Path, message: str) -> None:
    """One :class:`CacheWarning` per damaged or foreign file and process."""
    warn_once(f"unreadable:{path}", message, CacheWarning)


class ShardedStore:
    """Records by key in Parquet shards; see the module docstring.

    Parameters
    ----------
    folder : str or path
        Created (with its marker) when missing; an existing folder must be a
        sharded store or empty.
    hidden_dtype : {"float32", "float16"}, default="float32"
        Precision at which hidden states are written (float16 halves the
        bytes; scores are always written at the engine's precision).

    Examples
    --------
    >>> import tempfile
    >>> store = ShardedStore(tempfile.mkdtemp())
    >>> store.info().entries
    []
    """

    def __init__(self, folder, *, hidden_dtype: str = "float32", create: bool = True):
        if hidden_dtype not in ("float32", "float16"):
            raise ValueError(f"hidden_dtype must be 'float32' or 'float16'; got {hidden_dtype!r}.")
        self.folder = Path(folder)
        self.hidden_dtype = hidden_dtype
        layout = ensure_layout(self.folder, SHARDED) if create else existing_layout(self.folder)
        if layout == FILES:
            raise StoreError(f"{self.folder} is a one-file-per-text step cache, not a sharded "
                             "store; use it as cache_dir (or open it with scoring.open_store).")
        if layout is None:
            raise ValueError(f"{self.folder} is not a sharded store (no {MARKER}).")
        content = read_marker(self.folder / MARKER)
        if content.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(f"{self.folder}: a sharded store of schema version "
                             f"{content.get('schema_version')!r}; this library reads "
                             f"version {SCHEMA_VERSION}.")
        (self.folder / _SHARDS).mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._digests = np.empty(0, dtype="S64")
        self._where = np.empty((0, 2), dtype=np.int64)  # (shard number, row)
        self._shard_names: list[str] = []
        self._tables: OrderedDict[int, object] = OrderedDict()
        self._bad: set[str] = set()

    # ---------------------------------------------------------------- writing
    def put_many(self, keys: Sequence[str], records: Sequence) -> Path | None:
        """Write ``records`` under ``keys`` as one shard (several beyond :data:`MAX_SHARD_ROWS`
        rows); returns the last shard's path."""
        if not len(keys):
            return None
        if len(keys) != len(records):
            raise ValueError(f"{len(keys)} keys for {len(records)} records")
        path = None
        for start in range(0, len(keys), MAX_SHARD_ROWS):
            path = self._put_shard(keys[start:start + MAX_SHARD_ROWS],
                                   records[start:start + MAX_SHARD_ROWS])
        return path

    def _put_shard(self, keys: Sequence[str], records: Sequence) -> Path:
        _check_keys(keys)
        pa, pq = _require_pyarrow()
        columns: dict[str, object] = {"key": list(keys), "kind": []}
        arrays_of, metas = [], []
        for record in records:
            arrays, meta = record.to_payload()
            if self.hidden_dtype == "float16" and "hidden" in arrays:
                arrays = {**arrays, "hidden": arrays["hidden"].astype(np.float16)}
            columns["kind"].append(type(record).__name__)
            arrays_of.append(arrays)
            metas.append(meta)
        if len(arrays_of) != len(keys):
            raise ValueError(f"{len(keys)} keys for {len(arrays_of)} records")
        columns["meta"], fields = split_meta(metas)
        for field, (values, type_name) in fields.items():
            columns[f"m.{field}"] = pa.array(values, type=pa.list_(pa.string())
                                             if type_name == "list<string>" else type_name)
        names = sorted({n for arrays in arrays_of for n in arrays})
        for name in names:
            columns[f"a.{name}"] = [a[name].tobytes() if name in a else None for a in arrays_of]
            columns[f"s.{name}"] = [list(a[name].shape) if name in a else None for a in arrays_of]
            columns[f"d.{name}"] = [a[name].dtype.str if name in a else None for a in arrays_of]
        table = pa.table(columns)
        path = self.folder / _SHARDS / f"{uuid.uuid4().hex}.parquet"
        atomic_write(path, lambda fh: pq.write_table(table, fh, compression="zstd"))
        return path

    def put(self, key: str, record) -> None:
        """Write one record (a shard of one row: prefer :meth:`put_many`)."""
        self.put_many([key], [record])

    # ---------------------------------------------------------------- reading
    def _shard_files(self) -> list[str]:
        folder = self.folder / _SHARDS
        return sorted(e.name for e in os.scandir(folder)
                      if e.name.endswith(".parquet") and not e.name.startswith(_TMP_PREFIX))

    def refresh(self) -> None:
        """Add the shards written since the last look (by this or another process) to the index."""
        _, pq = _require_pyarrow()
        with self._lock:
            new = [n for n in self._shard_files() if n not in self._seen and n not in self._bad]
            digests, where = [self._digests], [self._where]
            for name in new:
                path = self.folder / _SHARDS / name
                try:
                    with pq.ParquetFile(path) as parquet:  # the footer is read once
                        _check_shard_metadata(parquet.metadata)
                        keys = key_digests(parquet.read(columns=["key"],
                                                        use_threads=False)["key"])
                except Exception as exc:  # cut short, not Parquet, not ours, or out of bounds
                    self._bad.add(name)
                    _warn_once(path, f"Shard {path} is unreadable or not a shard of this "
                                     f"library ({type(exc).__name__}: {exc}); it is ignored.")
                    continue
                number = len(self._shard_names)
                self._shard_names.append(name)
                self._seen.add(name)
                digests.append(keys)
                where.append(np.stack([np.full(len(keys), number), np.arange(len(keys))], 1))
            if len(digests) > 1:  # every copy of a key is kept: a damaged one has a successor
                d, w = np.concatenate(digests), np.concatenate(where)
                order = np.argsort(d, kind="stable")
                self._digests, self._where = d[order], w[order]

    def _locate(self, keys: Sequence[str]) -> np.ndarray:
        """(shard, row) per key, ``-1`` where absent."""
        _check_keys(keys)
        if not len(self._digests):
            return np.full((len(keys), 2), -1)
        wanted = np.array(keys, dtype="S64")
        pos = np.searchsorted(self._digests, wanted)
        pos = np.minimum(pos, len(self._digests) - 1)
        found = self._digests[pos] == wanted
        out = np.where(found[:, None], self._where[pos], -1)
        return out

    def contains(self, keys: Sequence[str]) -> np.ndarray:
        """A boolean per key: whether the store holds it (after a :meth:`refresh`)."""
        self.refresh()
        return self._locate(keys)[:, 0] >= 0

    def __len__(self) -> int:
        self.refresh()
        return len(self._distinct())

    def _distinct(self) -> np.ndarray:
        """The keys held, each once (the index keeps every copy)."""
        d = self._digests
        if len(d) < 2:
            return d
        first = np.ones(len(d), dtype=bool)
        first[1:] = d[1:] != d[:-1]
        return d[first]

    def _table(self, shard: int) -> Shard:
        """A shard decoded column by column (kept for the next reads of it)."""
        with self._lock:
            table = self._tables.get(shard)
            if table is not None:
                self._tables.move_to_end(shard)
                return table
        _, pq = _require_pyarrow()
        table = Shard(pq.read_table(self.folder / _SHARDS / self._shard_names[shard],
                                    use_threads=False))
        with self._lock:
            self._tables[shard] = table
            while len(self._tables) > _OPEN_SHARDS:
                self._tables.popitem(last=False)
        return table

    def get_many(self, keys: Sequence[str], *, kind: type | None = None,
                 check: Callable | None = None) -> list:
        """The record of every key (None where absent or invalid), reading each shard once.

        A key written more than once (a record rescored after its first copy
        was found damaged) is read from its first valid copy, so a damaged
        copy never hides a healthy one and the store heals.
        """
        self.refresh()
        _check_keys(keys)
        out: list = [None] * len(keys)
        if not len(keys) or not len(self._digests):
            return out
        wanted = np.array(keys, dtype="S64")
        candidate = np.searchsorted(self._digests, wanted, side="left")
        last = np.searchsorted(self._digests, wanted, side="right")
        pending = np.flatnonzero(candidate < last)
        while len(pending):
            where = self._where[candidate[pending]]
            order = np.argsort(where[:, 0], kind="stable")
            bounds = np.flatnonzero(np.diff(where[order, 0])) + 1
            failed = []
            for group in np.split(order, bounds):
                shard = int(where[group[0], 0])
                indices = pending[group].tolist()
                rows = where[group, 1].tolist()
                try:
                    found = self._table(shard).records(rows, [keys[i] for i in indices], kind)
                except Exception as exc:  # a shard whose columns are not a store's
                    found = [exc] * len(indices)
                for i, row, record in zip(indices, rows, found, strict=True):
                    if not isinstance(record, Exception) and check is not None:
                        try:
                            check(record)
                        except (KeyError, ValueError, TypeError) as exc:
                            record = exc
                    if isinstance(record, Exception):
                        name = self._shard_names[shard]
                        fallback = ("another copy of it is used" if candidate[i] + 1 < last[i]
                                    else "it will be recomputed")
                        _warn_once(self.folder / _SHARDS / f"{name}#{row}",
                                   f"Record {keys[i]} in shard {name} is unreadable "
                                   f"({type(record).__name__}: {record}); {fallback}.")
                        failed.append(i)
                    else:
                        out[i] = record
            failed = np.asarray(failed, dtype=np.int64)
            candidate[failed] += 1
            pending = failed[candidate[failed] < last[failed]]
        return out

    def get(self, key: str, kind: type | None = None, check: Callable | None = None):
        """The record for ``key``, or None."""
        return self.get_many([key], kind=kind, check=check)[0]

    # ------------------------------------------------------------ the folder
    def info(self):
        """Entries (keys), bytes, orphaned temporaries and unreadable shards."""
        self.refresh()
        folder = self.folder / _SHARDS
        shard_bytes = sum((folder / n).stat().st_size for n in self._shard_names)
        orphans = sorted(f"{_SHARDS}/{e.name}" for e in os.scandir(folder)
                         if e.name.startswith(_TMP_PREFIX))
        entries = [d.decode() for d in self._distinct()]
        return CacheContents(entries, shard_bytes, orphans,
                             sorted({f"{_SHARDS}/{n}" for n in self._bad} | set(self._foreign())))

    def _foreign(self) -> list[str]:
        """Files of the folder that are neither the store's nor its writers' (user files)."""
        own_top = {MARKER, LOCK_NAME, _SHARDS, ADAPTERS, RUNS}
        found = [e.name for e in os.scandir(self.folder) if e.name not in own_top]
        found += [f"{_SHARDS}/{e.name}" for e in os.scandir(self.folder / _SHARDS)
                  if not e.name.endswith(".parquet") and not e.name.startswith(_TMP_PREFIX)]
        return found

    def clear(self) -> tuple[int, int]:
        """Delete every shard and temporary (never other files); returns (records, orphans)."""
        contents = self.info()
        folder = self.folder / _SHARDS
        for name in self._shard_names + sorted(self._bad):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        for rel in contents.orphans:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / rel).unlink()
        with self._lock:
            self._seen.clear()
            self._bad.clear()
            self._shard_names.clear()
            self._tables.clear()
            self._digests = np.empty(0, dtype="S64")
            self._where = np.empty((0, 2), dtype=np.int64)
        return len(contents.entries), len(contents.orphans)

    def keys(self) -> Iterable[str]:
        """Every key the store holds."""
        self.refresh()
        return (d.decode() for d in self._distinct())


def _check_shard_metadata(metadata) -> None:
    """Refuse, from a Parquet file's footer alone, a file that is not a shard of this library or
    would cost more than a shard may (rows, uncompressed bytes)."""
    names = set(metadata.schema.names)
    missing = [c for c in _REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"no {', '.join(missing)} column")
    if metadata.num_rows > MAX_SHARD_ROWS:
        raise ValueError(f"{metadata.num_rows} rows, more than the {MAX_SHARD_ROWS} a shard holds")
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    if size > MAX_SHARD_BYTES:
        raise ValueError(f"{size} bytes uncompressed, more than the {MAX_SHARD_BYTES} a shard "
                         "may decode to")

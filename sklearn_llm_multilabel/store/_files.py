"""Content-addressed store of step records, below aggregation.

Keys come from a scorer's ``query_key``: a hash of the model fingerprint
(weights, tokenizer, dtype), the whole prompt (instruction, demonstrations,
label set, format, query template), the decoding settings and the text.
Aggregation, threshold and calibration never enter a key.

Two levels:

* in-process: a bounded dictionary shared by every estimator of the process
  (so clones made by ``GridSearchCV`` share it);
* on disk (optional ``cache_dir``): one ``.npz`` file per text under
  ``<2 hex>/<64 hex>.npz``, written to a temporary file and renamed into place
  (atomic; concurrent writers of the same key write identical content), read
  with ``allow_pickle=False``.

A cache folder is recognisable: a marker file (:data:`MARKER`) is written
when the library creates it, so :meth:`StepCache.clear` and
:meth:`StepCache.info` touch only the library's own entries and never a
user's files. Every entry is validated in full when read (size before
decompressing, metadata, shapes, dtypes, index ranges, finite values, the
record kind the caller expects); a bad entry is reported with a
:class:`CacheWarning` naming the file and recomputed. A folder that cannot
be written (read-only) is reported once and results stay in memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import _state
from .._warnings import warn, warn_once
from ..exceptions import CacheWarning
from . import _memory
from ._atomic import TMP_PREFIX, atomic_write
from ._layout import (
    ADAPTERS,
    FILES,
    FILES_FORMAT_VERSION,
    FILES_MARKER,
    LOCK_NAME,
    SHARDED,
    SHARDED_MARKER,
    CacheContents,
    ensure_layout,
    existing_layout,
)
from ._records import RECORD_TYPES, AdapterRecord
from ._sharded import ShardedStore

FORMAT_VERSION = FILES_FORMAT_VERSION
#: file that marks a folder as a step cache of this library
MARKER = FILES_MARKER
_ENTRY = re.compile(r"^([0-9a-f]{2})/(\1[0-9a-f]{62})\.npz$")
#: trained adapters live beside the records, one safetensors file each, in either layout
_ADAPTER = re.compile(r"^adapters/[0-9a-f]{64}\.safetensors$")
#: largest adapter file read (a 7B model's rank-64 adapter is about 0.6 GB)
MAX_ADAPTER_BYTES = 8 * 2**30
_TMP_PREFIX = TMP_PREFIX
#: temporaries older than this (seconds) are orphans of a killed run
ORPHAN_AGE = 600.0
#: largest uncompressed entry accepted (bytes); a record is kilobytes
MAX_ENTRY_BYTES = 64 * 2**20
MAX_META_BYTES = 2**20

_MEMORY_LOCK = _state.LOCK
_OPENED = _state.OPENED_FOLDERS


def clear_memory_cache() -> None:
    """Empty the in-process cache (the on-disk cache is left alone).

    Examples
    --------
    >>> clear_memory_cache()  # the next predict_proba scores every text again
    """
    _memory.clear()


def check_cache_dir(cache_dir) -> None:
    """Raise a clear ``ValueError`` when ``cache_dir`` cannot be a step cache.

    ``None`` is fine (memory only). A folder is fine when it is missing (it
    will be created), empty, marked as a cache, or holds only entries of an
    earlier, unmarked cache. A file, or a folder holding other files, is
    refused: the cache would mix with them.
    """
    if cache_dir is None:
        return
    root = Path(cache_dir)
    if root.exists() and not root.is_dir():
        raise ValueError(f"cache_dir={str(cache_dir)!r} is a file, not a folder; pass a folder path.")
    if existing_layout(root) is not None:  # a marked folder (its marker checked)
        return
    if root.is_dir():
        foreign = _scan(root).foreign
        if foreign:
            raise ValueError(
                f"cache_dir={str(cache_dir)!r} is not a step cache of this library: it holds other "
                f"files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}). Pass an "
                "empty or new folder."
            )


def _scan(root: Path) -> CacheContents:
    entries, orphans, foreign, size = [], [], [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel in (MARKER, SHARDED_MARKER, LOCK_NAME):
                continue
            parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
            if _ENTRY.match(rel) or _ADAPTER.match(rel):
                entries.append(rel)
                size += Path(dirpath, name).stat().st_size
            elif name.startswith(_TMP_PREFIX) and (
                re.fullmatch(r"[0-9a-f]{2}", parent) or parent == ADAPTERS
                or (parent == "" and name.endswith(Path(MARKER).suffix))
            ):
                # an entry's temporary, or the marker's while another process creates the folder
                orphans.append(rel)
            else:
                foreign.append(rel)
    return CacheContents(entries, size, orphans, foreign)


def _scan_adapters(root: Path) -> CacheContents:
    """The adapter files beside a sharded store's records (entries), and their temporaries."""
    entries, orphans, size = [], [], 0
    folder = root / ADAPTERS
    for entry in sorted(os.scandir(folder), key=lambda e: e.name) if folder.is_dir() else []:
        rel = f"{ADAPTERS}/{entry.name}"
        if _ADAPTER.match(rel):
            entries.append(rel)
            size += entry.stat().st_size
        elif entry.name.startswith(_TMP_PREFIX):
            orphans.append(rel)
    return CacheContents(entries, size, orphans, [])


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class StepCache:
    """Read and write step records by key, in memory and optionally on disk.

    Parameters
    ----------
    cache_dir : str, path or None
        Folder of the on-disk cache (created, with its marker, when missing);
        None keeps the cache in memory only.
    create : bool, default=True
        False opens an existing cache only (for ``info`` and ``clear``):
        a missing folder or one that is not a cache raises ``ValueError``.
    hidden_dtype : {"float32", "float16"}, default="float32"
        Precision of the hidden states this cache writes into a sharded store
        (see :class:`~sklearn_llm_multilabel._store.ShardedStore`); the
        one-file-per-text layout always keeps float32.

    Examples
    --------
    >>> import tempfile
    >>> cache = StepCache(tempfile.mkdtemp())
    >>> cache.info().entries
    []
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None, *, create: bool = True,
                 hidden_dtype: str = "float32"):
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.sharded = None
        if self.cache_dir is None:
            return
        root = self.cache_dir
        layout = existing_layout(root)  # a damaged marker, or both, is a StoreError here
        if layout is None and not create:
            if not root.is_dir():
                raise ValueError(f"{root}: no such cache directory.")
            raise ValueError(
                f"{root} is not a step cache of sklearn_llm_multilabel (no {MARKER} marker); "
                "nothing was changed."
            )
        if layout is None:
            check_cache_dir(root)  # files of an earlier, unmarked cache are fine; others are not
            try:  # decided under the folder's lock: a concurrent opener may have chosen first
                layout = ensure_layout(root, FILES, check_unmarked=check_cache_dir)
            except OSError as exc:
                self._report_unwritable(exc)
                layout = FILES
        if layout == SHARDED:  # a folder the sharded store wrote: read and written as it is
            self.sharded = ShardedStore(root, create=False, hidden_dtype=hidden_dtype)
            return
        if not create:
            return
        key = str(root.resolve())
        with _MEMORY_LOCK:
            first_open = key not in _OPENED
            _OPENED.add(key)
        if first_open:
            self.remove_orphans(min_age=ORPHAN_AGE)

    # ------------------------------------------------------------ folder
    def info(self) -> CacheContents:
        """Entries, orphaned temporaries and foreign files of the folder."""
        if self.cache_dir is None:
            raise ValueError("this cache has no cache_dir.")
        if self.sharded is not None:
            records, adapters = self.sharded.info(), _scan_adapters(self.cache_dir)
            return CacheContents(records.entries + adapters.entries,
                                 records.entry_bytes + adapters.entry_bytes,
                                 records.orphans + adapters.orphans, records.foreign)
        return _scan(self.cache_dir)

    def remove_orphans(self, min_age: float = 0.0) -> int:
        """Delete temporary files of interrupted writes older than ``min_age`` seconds."""
        if self.cache_dir is None or not self.cache_dir.is_dir() or self.sharded is not None:
            return 0
        removed = 0
        for rel in _scan(self.cache_dir).orphans:
            path = self.cache_dir / rel
            if _age(path) >= min_age:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
        return removed

    def clear(self) -> tuple[int, int]:
        """Delete every entry and orphaned temporary (never other files).

        Returns
        -------
        (entries removed, orphans removed)
        """
        if self.sharded is not None:
            records, orphans = self.sharded.clear()
            adapters = _scan_adapters(self.cache_dir)
            for rel in adapters.entries + adapters.orphans:
                with contextlib.suppress(FileNotFoundError):
                    (self.cache_dir / rel).unlink()
            return records + len(adapters.entries), orphans + len(adapters.orphans)
        contents = self.info()
        for rel in contents.entries:
            with contextlib.suppress(FileNotFoundError):
                (self.cache_dir / rel).unlink()
        orphans = self.remove_orphans(min_age=0.0)
        for sub in sorted(self.cache_dir.iterdir()):
            if sub.is_dir() and (re.fullmatch(r"[0-9a-f]{2}", sub.name) or sub.name == ADAPTERS):
                with contextlib.suppress(OSError):
                    sub.rmdir()  # only when empty
        return len(contents.entries), orphans

    # ----------------------------------------------------------- records
    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives on disk."""
        if self.cache_dir is None:
            raise ValueError("this cache has no cache_dir.")
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise ValueError(f"invalid cache key {key!r}: expected 64 hexadecimal digits.")
        return self.cache_dir / key[:2] / f"{key}.npz"

    def get(self, key: str, kind: type | None = None, check: Callable | None = None):
        """The record for ``key``, or None when absent (or invalid on disk).

        Parameters
        ----------
        key : str
        kind : record class or None
            The record type the caller expects; an entry of another kind is invalid.
        check : callable or None
            ``check(record)`` raises ``ValueError`` when the record does not fit
            the caller (label count, hidden size, number of queries).
        """
        record = _memory.get_many([key])[0]
        if kind is AdapterRecord or isinstance(record, AdapterRecord):
            return self._get_adapter(key, record)
        if record is not None:
            if (self.cache_dir is not None and self.sharded is None
                    and not self.path(key).exists()):
                self._write(key, record)  # results computed before cache_dir was set
            return record
        if self.cache_dir is None:
            return None
        if self.sharded is not None:
            return self.get_many([key], kind, check)[0]
        path = self.path(key)
        if not path.exists():
            return None
        record = self._read(path, key, kind, check)
        if record is not None:
            _memory.put_many([(key, record)])
        return record

    def get_many(self, keys, kind: type | None = None, check: Callable | None = None) -> list:
        """:meth:`get` of every key; a sharded store is looked up once for all of them."""
        if self.sharded is None or kind is AdapterRecord:
            return [self.get(key, kind, check) for key in keys]
        out = _memory.get_many(keys)
        self._keep_remembered([(k, r) for k, r in zip(keys, out) if r is not None])
        missing = [i for i, record in enumerate(out) if record is None]
        if missing:
            read = self.sharded.get_many([keys[i] for i in missing], kind=kind, check=check)
            found = []
            for i, record in zip(missing, read):
                if record is not None:
                    found.append((keys[i], record))
                    out[i] = record
            _memory.put_many(found)
        return out

    def _keep_remembered(self, found: list[tuple[str, object]]) -> None:
        """Write to the sharded folder the records served from memory that it lacks (scored
        before this store was opened, or by an estimator without it): the folder keeps every
        record it served."""
        found = [(k, r) for k, r in dict(found).items() if not isinstance(r, AdapterRecord)]
        if not found:
            return
        held = self.sharded.contains([k for k, _ in found])
        absent = [pair for pair, there in zip(found, held) if not there]
        if absent:
            try:
                self.sharded.put_many([k for k, _ in absent], [r for _, r in absent])
            except OSError as exc:  # disk full, read-only: the results stay in memory
                self._report_unwritable(exc)

    def put(self, key: str, record) -> None:
        """Store ``record`` in memory and, with a ``cache_dir``, atomically on disk."""
        self.put_many([key], [record])

    def put_many(self, keys, records) -> None:
        """Store records (a scored batch); a sharded store writes them as one shard."""
        _memory.put_many(zip(keys, records, strict=True))
        if self.cache_dir is None:
            return
        adapters = [(k, r) for k, r in zip(keys, records) if isinstance(r, AdapterRecord)]
        for key, record in adapters:
            self._write_adapter(key, record)
        if adapters:
            keys = [k for k, r in zip(keys, records) if not isinstance(r, AdapterRecord)]
            records = [r for r in records if not isinstance(r, AdapterRecord)]
        if self.sharded is not None:
            try:
                self.sharded.put_many(keys, records)
            except OSError as exc:  # disk full, read-only: the results stay in memory
                self._report_unwritable(exc)
        else:
            for key, record in zip(keys, records):
                self._write(key, record)

    def contains(self, keys) -> np.ndarray:
        """A boolean per key: whether the folder holds its record (memory not consulted)."""
        if self.cache_dir is None:
            return np.zeros(len(keys), dtype=bool)
        if self.sharded is not None:
            return self.sharded.contains(list(keys))
        return np.array([self.path(key).exists() for key in keys], dtype=bool)

    def keys(self) -> list[str]:
        """Every key the folder holds (records and adapters); memory only: those in memory."""
        if self.cache_dir is None:
            return _memory.keys()
        held = [] if self.sharded is None else list(self.sharded.keys())
        entries = (self.info() if self.sharded is None else _scan_adapters(self.cache_dir)).entries
        return held + [rel.rsplit("/", 1)[-1].split(".", 1)[0] for rel in entries]

    # ------------------------------------------------------------ adapters
    def adapter_path(self, key: str) -> Path:
        """Where the adapter of ``key`` lives (beside the records, in either layout)."""
        self.path(key)  # checks the key
        return self.cache_dir / ADAPTERS / f"{key}.safetensors"

    def _get_adapter(self, key: str, record):
        if record is not None:
            if self.cache_dir is not None and not self.adapter_path(key).exists():
                self._write_adapter(key, record)  # trained before cache_dir was set
            return record
        if self.cache_dir is None:
            return None
        path = self.adapter_path(key)
        if not path.is_file():
            return None
        record = self._read_adapter(path, key)
        if record is not None:
            _memory.put_many([(key, record)])
        return record

    def _write_adapter(self, key: str, record: AdapterRecord) -> None:
        from safetensors.numpy import save

        arrays, meta = record.to_payload()
        header = {"sklml": json.dumps({**meta, "format_version": FORMAT_VERSION, "key": key,
                                       "kind": type(record).__name__})}
        path = self.adapter_path(key)
        data = save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=header)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda fh: fh.write(data))
        except OSError as exc:
            self._report_unwritable(exc)

    @staticmethod
    def _read_adapter(path: Path, key: str):
        from safetensors import safe_open

        try:
            size = path.stat().st_size
            if size > MAX_ADAPTER_BYTES:
                raise ValueError(f"{size} bytes, more than the {MAX_ADAPTER_BYTES} an adapter "
                                 "file may hold")
            with safe_open(str(path), "np") as fh:
                meta = json.loads((fh.metadata() or {}).get("sklml", "null"))
                if not isinstance(meta, dict):
                    raise ValueError("no adapter metadata")
                if (meta.get("format_version") != FORMAT_VERSION or meta.get("key") != key
                        or meta.get("kind") != AdapterRecord.__name__):
                    raise ValueError("the file belongs to another key, kind or format version")
                arrays = {name: fh.get_tensor(name) for name in fh.keys()}
            return AdapterRecord.from_payload(arrays, meta)
        except Exception as exc:  # safetensors' own error type, and anything a bad file raises
            warn(f"Adapter file {path} is unreadable ({type(exc).__name__}: {exc}); the adapter "
                 "will be trained again.", CacheWarning)
            return None

    def _report_unwritable(self, exc: OSError) -> None:
        warn_once(
            f"unwritable:{self.cache_dir}",
            f"cache_dir {self.cache_dir} cannot be written ({type(exc).__name__}: "
            f"{exc.strerror or exc}); results are kept in memory only for this process.",
            CacheWarning,
        )

    def _write(self, key: str, record) -> None:
        arrays, meta = record.to_payload()
        meta = {**meta, "format_version": FORMAT_VERSION, "key": key,
                "kind": type(record).__name__}
        arrays = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda fh: np.savez(fh, **arrays))
        except OSError as exc:
            self._report_unwritable(exc)

    @staticmethod
    def _read(path: Path, key: str, kind: type | None, check: Callable | None):
        try:
            with zipfile.ZipFile(path) as archive:
                total = sum(info.file_size for info in archive.infolist())
                if total > MAX_ENTRY_BYTES:
                    raise ValueError(f"entry would decompress to {total} bytes "
                                     f"(limit {MAX_ENTRY_BYTES})")
                meta_info = archive.getinfo("meta.npy")
                if meta_info.file_size > MAX_META_BYTES:
                    raise ValueError("metadata too large")
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                arrays = {name: np.array(data[name]) for name in data.files if name != "meta"}
            if not isinstance(meta, dict):
                raise ValueError("metadata is not an object")
            if meta.get("format_version") != FORMAT_VERSION or meta.get("key") != key:
                raise ValueError("entry belongs to another key or format version")
            record_type = RECORD_TYPES.get(meta.get("kind"))
            if record_type is None:
                raise ValueError(f"unknown record kind {meta.get('kind')!r}")
            if kind is not None and record_type is not kind:
                raise ValueError(f"entry holds a {record_type.__name__}, expected {kind.__name__}")
            record = record_type.from_payload(arrays, meta)
            if check is not None:
                check(record)
            return record
        except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile,
                UnicodeDecodeError, RecursionError, MemoryError, OverflowError) as exc:
            warn(
                f"Cache entry {path} is unreadable ({type(exc).__name__}: {exc}); it will be "
                "recomputed.",
                CacheWarning,
            )
            return None

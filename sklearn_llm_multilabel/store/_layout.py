"""Which layout a store folder holds, decided in one place, under a cross-process lock.

A folder of records is one of two layouts, named by a marker file: the
one-file-per-text cache (:data:`FILES_MARKER`, :mod:`._cache`) or the sharded
Parquet store (:data:`SHARDED_MARKER`, :mod:`._store`). :func:`ensure_layout`
reads the marker, or, for a new or empty folder, writes the wanted one while
holding an exclusive lock on :data:`LOCK_NAME` in the folder, so that several
processes opening one new folder at once agree on one layout (without the lock
two of them could write both markers, and one's records would go to files the
other layout never reads). A marker that cannot be read, or a folder holding
both, is a :class:`~sklearn_llm_multilabel.exceptions.StoreError` naming it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import StoreError
from ._atomic import TMP_PREFIX, atomic_write

FILES, SHARDED = "files", "sharded"
#: marks a folder as the one-file-per-text step cache
FILES_MARKER = "SKLML_CACHE.json"
FILES_FORMAT_VERSION = 2
#: marks a folder as the sharded store
SHARDED_MARKER = "SKLML_STORE.json"
SHARDED_SCHEMA_VERSION = 1
#: the lock file of layout decisions (the library's own file in either layout)
LOCK_NAME = ".sklml-open.lock"
#: the folder of fine-tuned adapters in a store
ADAPTERS = "adapters"
#: the folder of the leases of runs writing a store (``_leases``)
RUNS = "_runs"

_CONTENT = {
    FILES: (FILES_MARKER, {"what": "sklearn_llm_multilabel step cache",
                           "format_version": FILES_FORMAT_VERSION}),
    SHARDED: (SHARDED_MARKER, {"what": "sklearn_llm_multilabel sharded store",
                               "schema_version": SHARDED_SCHEMA_VERSION}),
}


@dataclass
class CacheContents:
    """What a cache folder holds.

    Attributes
    ----------
    entries : list of str
        Valid entry paths (relative to the folder).
    entry_bytes : int
    orphans : list of str
        Temporary files left by interrupted writes.
    foreign : list of str
        Any other file (not the library's).
    """

    entries: list[str]
    entry_bytes: int
    orphans: list[str]
    foreign: list[str]


def read_marker(path: str | os.PathLike) -> dict:
    """A marker's JSON object; a :class:`StoreError` naming the file if it is not one.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / SHARDED_MARKER
    >>> _ = path.write_text("[1, 2]")
    >>> read_marker(path)
    Traceback (most recent call last):
    ...
    sklearn_llm_multilabel.exceptions.StoreError: ...: damaged store marker (a JSON list, ...
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StoreError(f"{path}: damaged store marker ({type(exc).__name__}: {exc}); restore it "
                         "or move the folder's records to a new folder.") from None
    if not isinstance(content, dict):
        raise StoreError(f"{path}: damaged store marker (a JSON {type(content).__name__}, not an "
                         "object); restore it or move the folder's records to a new folder.")
    return content


def existing_layout(folder: str | os.PathLike | None) -> str | None:
    """The layout a folder's marker names (None: no marker), its marker checked.

    Raises
    ------
    StoreError
        Both markers, or a marker that is not a JSON object.
    """
    if folder is None:
        return None
    folder = Path(folder)
    found = [layout for layout, (name, _) in _CONTENT.items() if (folder / name).is_file()]
    if len(found) > 1:
        raise StoreError(f"{folder}: holds the markers of both layouts ({FILES_MARKER} and "
                         f"{SHARDED_MARKER}); one of them was written by mistake: keep the one "
                         "whose records the folder holds (shards/ for the sharded store).")
    if not found:
        return None
    read_marker(folder / _CONTENT[found[0]][0])
    return found[0]


@contextlib.contextmanager
def folder_lock(folder: Path):
    """An exclusive lock on the folder's :data:`LOCK_NAME`, across processes (POSIX)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): decisions are not serialised
        yield
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def user_files(folder: Path) -> list[str]:
    """Names in ``folder`` other than the library's lock file (sorted)."""
    return sorted(e.name for e in os.scandir(folder) if e.name != LOCK_NAME)


def _write_marker(folder: Path, layout: str) -> None:
    name, content = _CONTENT[layout]
    atomic_write(folder / name, lambda fh: fh.write(json.dumps(content).encode()))


def ensure_layout(folder: str | os.PathLike, want: str, *,
                  check_unmarked: Callable[[Path], None] | None = None) -> str:
    """The folder's layout: its marker's, or ``want`` for a new folder (marker written).

    Parameters
    ----------
    folder : str or path
        Created when missing.
    want : {"files", "sharded"}
        The layout of a folder that has no marker yet.
    check_unmarked : callable or None, default=None
        Called with the folder, under the lock, when it has no marker: raises
        if its files forbid the new layout. None: the folder must be empty
        (but for the library's lock and temporaries).

    Returns
    -------
    layout : {"files", "sharded"}
    """
    folder = Path(folder)
    layout = existing_layout(folder)
    if layout is not None:
        return layout
    folder.mkdir(parents=True, exist_ok=True)
    with folder_lock(folder):
        layout = existing_layout(folder)  # another process may have decided meanwhile
        if layout is not None:
            return layout
        if check_unmarked is not None:
            check_unmarked(folder)
        elif others := [n for n in user_files(folder) if not n.startswith(TMP_PREFIX)]:
            raise ValueError(f"{folder} holds other files ({', '.join(others[:3])}"
                             f"{', ...' if len(others) > 3 else ''}); a new store needs a new or "
                             "empty folder.")
        if want == SHARDED:
            (folder / "shards").mkdir(exist_ok=True)
        _write_marker(folder, want)
    return want

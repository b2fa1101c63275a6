"""The store's one way of writing a file: whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: prefix of the temporaries of writes in progress (and of interrupted ones: orphans)
TMP_PREFIX = ".tmp-"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file in its folder, flushed to disk, then renamed.

    A reader never sees half a file, and concurrent writers of the same path
    never share one (the last rename wins; in a content-addressed store they
    hold the same content). A failed write removes its temporary.

    Parameters
    ----------
    path : str or path-like
    write : callable
        ``write(fh)`` writes the content to a binary file object.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "entry.bin"
    >>> atomic_write(target, lambda fh: fh.write(b"abc"))
    >>> target.read_bytes()
    b'abc'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

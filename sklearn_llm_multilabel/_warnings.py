"""The library's warnings: shown at the user's line, each kind once per public call.

Every warning of the package goes through :func:`warn`. It is attributed to
the first frame outside this package (and outside scikit-learn, joblib and the
standard library's plumbing that calls back into it), so the line a user sees
is the ``clf.fit(...)`` or ``search.fit(...)`` they wrote, and Python's own
filters (``"default"`` shows a message once per line) work as for any
library.

Inside a public call wrapped by :func:`one_per_call` (``fit``,
``predict_proba``, ``predict``, a loader), warnings are collected and, when
the call returns or raises, each category is shown once: identical messages
once, several different ones of a category as the first plus how many more
there were. Nested calls (``predict`` calling ``predict_proba``) report at
the outermost one. The collection is per thread.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

#: top-level modules whose frames are never "the user's line"
_INTERNAL = frozenset({"sklearn_llm_multilabel", "sklearn", "joblib", "contextlib", "functools"})
_LOCAL = threading.local()


def _is_internal(frame) -> bool:
    return str(frame.f_globals.get("__name__", "")).split(".")[0] in _INTERNAL


def _emit(message: str, category: type[Warning]) -> None:
    frame, level = sys._getframe(0), 1
    while frame is not None and _is_internal(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn at the user's line; inside :func:`one_per_call`, once per category and call.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     warn("careful", UserWarning)
    >>> [str(w.message) for w in seen]
    ['careful']
    """
    pending = getattr(_LOCAL, "pending", None)
    if pending is None:
        _emit(message, category)
    else:
        pending.append((message, category))


def warn_once(key: str, message: str, category: type[Warning] = UserWarning) -> None:
    """:func:`warn`, but only the first time this process meets ``key`` (a folder that cannot
    be written, a damaged file): a fault met at every call is reported once.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     for _ in range(3):
    ...         warn_once("doc:/tmp/x", "cannot write /tmp/x", UserWarning)
    >>> len(seen)
    1
    """
    from . import _state

    with _state.LOCK:
        if key in _state.WARNED_ONCE:
            return
        _state.WARNED_ONCE.add(key)
    warn(message, category)


def _merged(pending: list[tuple[str, type[Warning]]]) -> list[tuple[str, type[Warning]]]:
    """One warning per category: the first message, and how many other messages it had."""
    by_category: dict[type[Warning], list[str]] = {}
    for message, category in pending:
        messages = by_category.setdefault(category, [])
        if message not in messages:
            messages.append(message)
    out = []
    for category, messages in by_category.items():
        more = len(messages) - 1
        suffix = f" ({more} more {category.__name__} in this call.)" if more else ""
        out.append((messages[0] + suffix, category))
    return out


def one_per_call(func: F) -> F:
    """Decorate a public function or method: its warnings are shown once per category.

    Examples
    --------
    >>> import warnings
    >>> @one_per_call
    ... def score():
    ...     for i in range(3):
    ...         warn(f"entry {i} is damaged", UserWarning)
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     score()
    >>> [str(w.message) for w in seen]
    ['entry 0 is damaged (2 more UserWarning in this call.)']
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if getattr(_LOCAL, "pending", None) is not None:
            return func(*args, **kwargs)
        _LOCAL.pending = pending = []
        try:
            return func(*args, **kwargs)
        finally:
            _LOCAL.pending = None
            for message, category in _merged(pending):
                _emit(message, category)

    return wrapper  # type: ignore[return-value]

"""Leases of the runs writing to a store, so that no writer outlives its driver.

A :func:`~sklearn_llm_multilabel.distributed.score_dataset` run holds a
*driver lease* in the store, ``_runs/<run id>.json`` (host, pid, start time),
whose modification time a heartbeat thread refreshes every
``HEARTBEAT_SECONDS``. Each Ray actor of the run registers a *writer lease*
beside it (``_runs/<run id>.writers/<host>-<pid>.json``, refreshed the same
way) and watches the driver's: when the driver is gone (its lease removed;
on the same host its process dead; elsewhere its heartbeat older than
``STALE_SECONDS``) the actor removes its lease and exits before it writes
another record. A driver killed with ``kill -9`` therefore leaves no writer
behind for long.

A new run first looks at the leases in the store: the writers of runs whose
driver is gone are waited for (they stop by themselves within seconds), and
their leases are removed; a writer still alive after ``timeout`` seconds is
an error naming its host and pid. Runs whose drivers are alive are left alone
(several jobs may fill one store with different texts).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from .store._atomic import TMP_PREFIX, atomic_write
from .store._layout import RUNS

HEARTBEAT_SECONDS = 2.0
#: a lease not refreshed for this long belongs to a dead process (used across hosts)
STALE_SECONDS = 30.0


def _host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host.

    Examples
    --------
    >>> pid_alive(os.getpid())
    True
    """
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _write(path: Path, info: dict) -> None:
    atomic_write(path, lambda fh: fh.write(json.dumps(info).encode()))


def _leases(folder: Path, pattern: str) -> list[Path]:
    """The lease files (or writer folders) matching ``pattern``, not a write in progress."""
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith(TMP_PREFIX))


def _read(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def holder_alive(path: Path, *, stale_seconds: float = STALE_SECONDS) -> bool:
    """Whether the process holding the lease file ``path`` is alive.

    On the same host, its process must exist and the lease be fresh; on
    another host, the lease must have been refreshed within
    ``stale_seconds``. A missing or unreadable lease has no live holder.
    """
    info = _read(path)
    if info is None:
        return False
    try:
        fresh = time.time() - path.stat().st_mtime < stale_seconds
    except OSError:
        return False
    if info.get("host") == _host():
        return fresh and pid_alive(info.get("pid", -1))
    return fresh


class _Heartbeat:
    """Refresh a lease file's modification time from a daemon thread until stopped."""

    def __init__(self, path: Path, on_tick=None):
        self.path, self.on_tick = path, on_tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sklml-lease-{path.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                os.utime(self.path)
            except OSError:
                pass
            if self.on_tick is not None:
                self.on_tick()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * HEARTBEAT_SECONDS)


class DriverLease:
    """The lease of one run's driver; a context manager that holds it while the run lasts.

    Examples
    --------
    >>> import tempfile
    >>> store = Path(tempfile.mkdtemp())
    >>> with DriverLease(store) as lease:
    ...     holder_alive(lease.path)
    True
    >>> lease.path.exists()
    False
    """

    def __init__(self, store: str | os.PathLike):
        self.run_id = uuid.uuid4().hex
        self.folder = Path(store) / RUNS
        self.path = self.folder / f"{self.run_id}.json"
        self.writers = self.folder / f"{self.run_id}.writers"
        self._beat: _Heartbeat | None = None

    def __enter__(self) -> DriverLease:
        self.writers.mkdir(parents=True, exist_ok=True)
        _write(self.path, {"host": _host(), "pid": os.getpid(), "started": time.time()})
        self._beat = _Heartbeat(self.path)
        return self

    def __exit__(self, *exc) -> None:
        if self._beat is not None:
            self._beat.stop()
        self.path.unlink(missing_ok=True)
        _remove_folder(self.writers)


class WriterLease:
    """A writer's lease under a driver's; the writer exits when the driver is gone.

    ``exit`` is what the watchdog calls then (``os._exit(0)`` by default, so a
    Ray actor stops at once, between two writes or in the middle of scoring).
    """

    def __init__(self, driver_path: str | os.PathLike, *, exit=None):
        self.driver_path = Path(driver_path)
        self.path = (self.driver_path.with_name(self.driver_path.stem + ".writers")
                     / f"{_host()}-{os.getpid()}.json")
        self._exit = exit if exit is not None else (lambda: os._exit(0))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write(self.path, {"host": _host(), "pid": os.getpid(), "started": time.time()})
        self._beat = _Heartbeat(self.path, on_tick=self._check)

    def driver_alive(self) -> bool:
        return holder_alive(self.driver_path)

    def _check(self) -> None:
        if not self.driver_alive():
            self.release()
            self._exit()

    def ensure_driver(self) -> None:
        """Called before each write: stop here if the driver is gone."""
        self._check()

    def release(self) -> None:
        """Stop the heartbeat and remove the lease (the writer is done)."""
        self._beat._stop.set()  # no join: this may run on the heartbeat thread itself
        self.path.unlink(missing_ok=True)


def _remove_folder(folder: Path) -> None:
    for child in folder.glob("*"):
        child.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass


def live_writers_of_dead_runs(store: str | os.PathLike) -> tuple[list[dict], list[Path]]:
    """The writers still alive of runs whose driver is gone, and those runs' lease files."""
    folder = Path(store) / RUNS
    writers, dead = [], []
    for lease in _leases(folder, "*.json"):
        if holder_alive(lease):
            continue
        dead.append(lease)
        for writer in _leases(lease.with_name(lease.stem + ".writers"), "*.json"):
            if holder_alive(writer):
                writers.append({**(_read(writer) or {}), "lease": str(writer)})
    for orphan in _leases(folder, "*.writers"):  # writers whose driver lease is gone
        if not orphan.with_name(orphan.name.removesuffix(".writers") + ".json").exists():
            dead.append(orphan)
            writers += [{**(_read(w) or {}), "lease": str(w)} for w in _leases(orphan, "*.json")
                        if holder_alive(w)]
    return writers, dead


def wait_for_orphaned_writers(store: str | os.PathLike, *, timeout: float = 60.0) -> int:
    """Wait until no writer of a run whose driver is gone is alive; remove those runs' leases.

    Returns
    -------
    n_waited_for : int
        Writers that were alive when the wait began.

    Raises
    ------
    RuntimeError
        A writer still alive after ``timeout`` seconds, named by host and pid.
    """
    deadline = time.monotonic() + timeout
    writers, dead = live_writers_of_dead_runs(store)
    first = len(writers)
    while writers and time.monotonic() < deadline:
        time.sleep(0.5)
        writers, dead = live_writers_of_dead_runs(store)
    if writers:
        named = ", ".join(f"pid {w.get('pid')} on {w.get('host')}" for w in writers)
        raise RuntimeError(
            f"{Path(store)}: writers of an earlier run whose driver is gone are still alive after "
            f"{timeout:.0f} s ({named}); stop them (kill the pids, or `ray stop` on their nodes) "
            "and run again, so that no text is scored twice.")
    for path in dead:
        if path.suffix == ".json":
            path.unlink(missing_ok=True)
            _remove_folder(path.with_name(path.stem + ".writers"))
        else:
            _remove_folder(path)
    return first

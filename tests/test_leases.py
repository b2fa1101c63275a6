"""Run leases: a writer whose driver is gone stops by itself, and a new run waits for it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sklearn_llm_multilabel import _leases
from sklearn_llm_multilabel._leases import (
    DriverLease,
    WriterLease,
    holder_alive,
    live_writers_of_dead_runs,
    wait_for_orphaned_writers,
)


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def dead_driver_lease(store: Path) -> Path:
    runs = store / _leases.RUNS
    (runs / "r1.writers").mkdir(parents=True)
    path = runs / "r1.json"
    path.write_text(json.dumps({"host": _leases._host(), "pid": dead_pid(), "started": 0}))
    return path


def test_a_lease_is_alive_while_its_holder_runs_and_fresh(tmp_path):
    with DriverLease(tmp_path) as lease:
        assert holder_alive(lease.path)
        os.utime(lease.path, (time.time() - 3600, time.time() - 3600))
        assert not holder_alive(lease.path)  # not refreshed for an hour: stale
    assert not lease.path.exists() and not lease.writers.exists()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"host": "another-node", "pid": 1}))
    assert holder_alive(other)  # another host: judged by the heartbeat alone
    os.utime(other, (time.time() - 3600, time.time() - 3600))
    assert not holder_alive(other)
    assert not holder_alive(dead_driver_lease(tmp_path))  # same host, process gone
    (tmp_path / "garbage.json").write_text("[1")
    assert not holder_alive(tmp_path / "garbage.json")


def test_a_writer_stops_before_writing_when_its_driver_is_gone(tmp_path):
    exits = []
    with DriverLease(tmp_path) as lease:
        writer = WriterLease(lease.path, exit=lambda: exits.append(1))
        writer.ensure_driver()
        assert exits == [] and writer.path.exists()
    writer.ensure_driver()  # the driver's lease is gone: the writer leaves
    assert exits == [1] and not writer.path.exists()


ORPHAN = """
import sys, time
from sklearn_llm_multilabel._leases import WriterLease
WriterLease(sys.argv[1])  # watches the driver from a daemon thread
print("ready", flush=True)
time.sleep(120)  # an actor busy scoring: only the watchdog can end it
"""


def test_an_orphaned_writer_exits_by_itself_and_a_new_run_waits_for_it(tmp_path):
    lease = dead_driver_lease(tmp_path)
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", ORPHAN, str(lease)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    waited = wait_for_orphaned_writers(tmp_path, timeout=30)
    assert proc.wait(timeout=30) == 0
    assert time.monotonic() - start < 4 * _leases.HEARTBEAT_SECONDS + 10
    assert waited <= 1
    assert not any((tmp_path / _leases.RUNS).iterdir())  # the dead run's leases are removed


STUBBORN = """
import json, os, socket, sys, time
path = sys.argv[1]
with open(path, "w") as fh:
    json.dump({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}, fh)
print("ready", flush=True)
while True:  # a writer that ignores its driver (another version, a hung process)
    os.utime(path)
    time.sleep(0.5)
"""


def test_a_writer_that_outlives_the_wait_is_an_error_naming_it(tmp_path):
    lease = dead_driver_lease(tmp_path)
    writer = lease.with_name("r1.writers") / "node-1.json"
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN, str(writer)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert len(live_writers_of_dead_runs(tmp_path)[0]) == 1
        with pytest.raises(RuntimeError, match=rf"still alive after 1 s \(pid {proc.pid} on "):
            wait_for_orphaned_writers(tmp_path, timeout=1)
    finally:
        proc.kill()
        proc.wait()
    assert wait_for_orphaned_writers(tmp_path, timeout=5) == 0
    assert not any((tmp_path / _leases.RUNS).iterdir())


def test_live_runs_are_left_alone(tmp_path):
    with DriverLease(tmp_path) as lease:
        writer = WriterLease(lease.path, exit=lambda: None)
        assert wait_for_orphaned_writers(tmp_path, timeout=1) == 0
        assert lease.path.exists() and writer.path.exists()  # another job's run is kept
        writer.release()

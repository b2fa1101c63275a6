"""Helpers shared by the benchmark scripts: machine description and peak memory."""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


def machine() -> str:
    """One line naming the hardware and software the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {device}; "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_mib() -> float:
    """Current resident set size in MiB (NaN where /proc is unavailable)."""
    kib = _status_kib("VmRSS")
    return float("nan") if kib is None else kib / 1024


@dataclass
class Measurement:
    seconds: float = 0.0
    peak_rss_mib: float = float("nan")
    rss_before_mib: float = float("nan")
    extra: dict = field(default_factory=dict)

    @property
    def peak_above_start_mib(self) -> float:
        return self.peak_rss_mib - self.rss_before_mib


@contextmanager
def measure():
    """Wall time and peak RSS of the block (Linux resets the peak via /proc/self/clear_refs)."""
    m = Measurement(rss_before_mib=rss_mib())
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        yield m
    finally:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            m.extra["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        m.seconds = time.perf_counter() - start
        hwm = _status_kib("VmHWM")
        m.peak_rss_mib = float("nan") if hwm is None else hwm / 1024

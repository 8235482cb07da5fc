"""Peak resident memory (RSS) of a stretch of code, for the study's per-stage figures.

Two measures, because a study runs in this process and, with ``n_jobs`` > 1, in joblib worker
processes:

- ``peak_mb``: this process. Linux keeps its high-water mark (``VmHWM``); it is reset at the
  start of the stretch (``/proc/self/clear_refs``) so the figure is the stretch's own, and
  short spikes between samples are not missed. Elsewhere: the sampled peak.
- ``tree_mb``: this process plus its child processes, sampled every ``interval`` seconds by a
  thread (the sum of their RSS; pages they share, e.g. a memory-mapped activation file, count
  once per process).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import psutil

MB = 1 << 20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def rss_self() -> int:
    """This process's resident set size in bytes."""
    return int(psutil.Process().memory_info().rss)


def rss_tree() -> int:
    """RSS of this process and all its descendants, in bytes (a process that ends while it is
    read counts 0)."""
    me = psutil.Process()
    total = int(me.memory_info().rss)
    for child in me.children(recursive=True):
        try:
            total += int(child.memory_info().rss)
        except psutil.Error:
            pass
    return total


def _hwm() -> int | None:
    """``VmHWM`` of this process in bytes (Linux), else None."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_hwm() -> bool:
    """Reset this process's high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakRSS:
    """Context manager: ``peak_mb`` (this process) and ``tree_mb`` (with its children) over the
    ``with`` block, and ``start_mb`` (this process when it began)."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.start_mb = self.peak_mb = self.tree_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._self_max = self._tree_max = 0
        self._hwm_ok = False

    def _sample(self) -> None:
        self._self_max = max(self._self_max, rss_self())
        self._tree_max = max(self._tree_max, rss_tree())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRSS:
        self.start_mb = rss_self() / MB
        self._hwm_ok = _reset_hwm() and _hwm() is not None
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        own = max(self._self_max, (_hwm() or 0) if self._hwm_ok else 0)
        self.peak_mb = own / MB
        self.tree_mb = max(self._tree_max, own) / MB

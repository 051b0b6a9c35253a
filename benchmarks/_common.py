"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import psutil


def pin_two_cores() -> str:
    """Pin this process to two CPUs, as on the target machine; describe what was done."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cpus)
        return f"pinned to CPUs {cpus} (of {os.cpu_count()})"
    return f"not pinned (no sched_setaffinity); {os.cpu_count()} CPUs"


class PeakMemory:
    """Peak memory sampled in a thread: this process's RSS, or the summed PSS of the tree.

    ``tree=True`` sums PSS (proportional set size) over this process and its children: PSS
    splits shared pages (torch's libraries, mapped by every dask worker) between the
    processes that map them, so the sum is the memory actually used, where a sum of RSS would
    count those libraries once per process. ``tree=False`` samples this process's RSS.
    """

    def __init__(self, *, tree: bool = False, interval: float = 0.02) -> None:
        self.tree = tree
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, me: psutil.Process) -> int:
        if not self.tree:
            return int(me.memory_info().rss)
        total = 0
        for p in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
        return total

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample(me))
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

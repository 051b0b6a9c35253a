"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import os


def pin_two_cores() -> str:
    """Pin this process to two CPUs, as on the target machine; describe what was done."""
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cpus)
        return f"pinned to CPUs {cpus} (of {os.cpu_count()})"
    return f"not pinned (no sched_setaffinity); {os.cpu_count()} CPUs"

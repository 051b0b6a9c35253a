"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

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
    ``pid`` watches another process (e.g. a command started with :class:`subprocess.Popen`).
    """

    def __init__(
        self, *, tree: bool = False, interval: float = 0.02, pid: int | None = None
    ) -> None:
        self.tree = tree
        self.interval = interval
        self.pid = pid  # watch this process (and its children) instead of this one
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
        try:
            me = psutil.Process(self.pid)
            while not self._stop.is_set():
                self.peak = max(self.peak, self._sample(me))
                time.sleep(self.interval)
        except psutil.NoSuchProcess:  # the watched process ended
            return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def paired_differences(results: Any, reference: str) -> Any:
    """Mean and standard error of per-fold metric differences to ``reference``.

    ``results`` is a transfer benchmark's tidy table (several regions may be stacked, with a
    ``region`` column). For every method, n, repeat, fold and depth the method's MAE and CCC
    minus the reference's on the same held-out rows; returned per (region,) label, n and
    metric as ``mean``, ``se`` and ``pairs``.
    """
    import numpy as np
    import pandas as pd

    r = results[(results["fold"].astype(str) != "all") & results["metric"].isin(["mae", "ccc"])]
    r = r.copy()
    r["label"] = r["method"].where(r["strategy"] == "-", r["method"] + ":" + r["strategy"])
    r["n"] = r["n"].astype(str)
    keys = [k for k in ("region", "n", "repeat", "fold", "depth") if k in r.columns]
    wide = r.pivot_table(index=keys, columns=["metric", "label"], values="value")
    rows = []
    for metric in ("mae", "ccc"):
        if (metric, reference) not in wide.columns:
            continue
        ref = wide[(metric, reference)]
        for label in wide[metric].columns:
            if label == reference:
                continue
            d = (wide[(metric, label)] - ref).dropna()
            groups = [k for k in ("region", "n") if k in keys]
            for key, g in d.groupby(level=groups):
                key = key if isinstance(key, tuple) else (key,)
                se = g.std(ddof=1) / np.sqrt(len(g)) if len(g) > 1 else float("nan")
                where = dict(zip(groups, key, strict=True))
                stats = {"mean": g.mean(), "se": se, "pairs": len(g)}
                rows.append({**where, "label": label, "metric": metric, **stats})
    return pd.DataFrame(rows)


def beats_beyond_se(paired: Any, region: str, n: str, label: str) -> bool:
    """Whether ``label`` has a lower MAE and a higher CCC than the reference of ``paired``.

    ``paired`` is :func:`paired_differences` output; both differences must exceed one
    standard error (the issue-14 rule).
    """
    hit = paired[(paired["region"] == region) & (paired["n"] == n) & (paired["label"] == label)]
    d = hit.set_index("metric")
    return bool(
        {"mae", "ccc"} <= set(d.index)
        and d.loc["mae", "mean"] < -d.loc["mae", "se"]
        and d.loc["ccc", "mean"] > d.loc["ccc", "se"]
    )

"""Helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
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


PEAK_RSS = """
def _peak_rss():
    # VmHWM is this process's own high-water mark. ru_maxrss is not: on Linux it inherits the
    # parent's peak across vfork/exec, which would blur the number.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""


def run_child(code: str, *args: str) -> tuple[float, int]:
    """Run ``python -c code args``; return (wall seconds, peak RSS bytes) of that child."""
    env = {**os.environ, "SOCMAP_PROGRESS": "0"}
    script = PEAK_RSS + code + "\nprint('PEAK_RSS', _peak_rss())\n"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child failed with exit code {proc.returncode}")
    peak = next(
        int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("PEAK_RSS")
    )
    return wall, peak


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


def region_study(
    description: str,
    regions: Any,
    defaults: dict[str, Any],
    run_region: Any,
    write_summary: Any,
) -> None:
    """Command line of a per-region study of the held-out regions (resumable by region).

    Parses ``--regions`` (of ``regions``), ``--sizes``, ``--folds``, ``--block-size``,
    ``--seed``, ``--out``, ``--cache``, ``--doc``, ``--summary-only`` and, when ``defaults``
    has ``repeats``, ``--repeats``; runs ``run_region(name, args)`` for every region whose
    ``results.csv`` is missing, then ``write_summary(out, doc, machine)``.
    """
    import argparse
    import platform
    from pathlib import Path

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--regions", default=",".join(regions))
    p.add_argument("--sizes", default=defaults["sizes"])
    p.add_argument("--folds", type=int, default=5)
    if "repeats" in defaults:
        p.add_argument("--repeats", type=int, default=defaults["repeats"])
    p.add_argument("--block-size", default="0.5deg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=defaults["out"])
    p.add_argument("--cache", type=Path, default=defaults["cache"])
    p.add_argument("--doc", type=Path, default=defaults["doc"])
    p.add_argument("--summary-only", action="store_true")
    args = p.parse_args()
    machine = f"{platform.machine()}, {pin_two_cores()}"
    if not args.summary_only:
        for name in args.regions.split(","):
            if (args.out / name / "results.csv").exists():
                print(f"{name}: done, skipped", flush=True)
                continue
            run_region(name, args)
            write_summary(args.out, args.doc, machine)
    write_summary(args.out, args.doc, machine)
    print(f"wrote {args.doc}")


def load_study(out: Any) -> tuple[Any, list[str]]:
    """Stacked ``results.csv`` of a per-region study (``label``, ``n`` as text) and its walls."""
    import pandas as pd

    res, walls = [], []
    for folder in sorted(p for p in out.glob("*/") if (p / "results.csv").exists()):
        res.append(pd.read_csv(folder / "results.csv").assign(region=folder.name))
        walls.append(f"{folder.name} ({(folder / 'wall.txt').read_text().strip()})")
    if not res:
        raise SystemExit(f"no finished region under {out}; run the benchmark first")
    r = pd.concat(res, ignore_index=True)
    r["label"] = r["method"].where(r["strategy"] == "-", r["method"] + ":" + r["strategy"])
    r["n"] = r["n"].astype(str)
    return r, walls


def write_wall(folder: Any, profiles: int, seconds: float, commit: str) -> None:
    """``wall.txt`` of a region: its profiles, wall time and the commit that ran."""
    from socmap._io import atomic_path

    with atomic_path(folder / "wall.txt") as tmp:
        tmp.write_text(f"{profiles} profiles, {seconds:.0f} s, commit {commit}\n")


def paired_cell(paired: Any, region: str, n: str, label: str, metric: str) -> str:
    """``mean ± se`` of one paired difference, or ``-``."""
    hit = paired[(paired["region"] == region) & (paired["n"] == n) & (paired["label"] == label)
                 & (paired["metric"] == metric)]  # fmt: skip
    if hit.empty:
        return "-"
    return f"{hit['mean'].iloc[0]:+.3f} ± {hit['se'].iloc[0]:.3f}"


def against_forests(wide: Any, raw_ref: Any, log_ref: Any, label: str, n: str) -> dict[str, Any]:
    """``label`` at size ``n`` against both forests, over the regions of ``wide``.

    ``wide`` is pooled MAE/CCC indexed by ``(region, n)`` with ``(metric, label)`` columns;
    returns ``regions``, ``rows`` (per region), ``wins`` (beats rf and rf-log beyond 1 SE),
    ``loss`` (per region, % MAE against the better forest) and ``worst`` (its region).
    """
    regions = [k[0] for k in wide.index if k[1] == n]
    wins = sum(
        beats_beyond_se(raw_ref, g, n, label) and beats_beyond_se(log_ref, g, n, label)
        for g in regions
    )
    rows = {g: wide.loc[(g, n)] for g in regions}
    loss = {
        g: 100 * (m[("mae", label)] / min(m[("mae", "rf")], m[("mae", "rf-log")]) - 1)
        for g, m in rows.items()
    }
    worst = max(loss, key=lambda g: loss[g])
    return {"regions": regions, "rows": rows, "wins": wins, "loss": loss, "worst": worst}

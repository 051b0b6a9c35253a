"""Benchmark: harmonise the whole embedded global profile table onto GlobalSoilMap depths.

Pins the process to two CPU cores (and two BLAS threads) to match the target machine, times
:func:`socmap.depth.harmonise` on the ~31k-profile / ~101k-horizon table (SOC alone, then SOC
and bulk density), compares with fitting the same profiles one at a time through
:func:`socmap.depth.fit_spline` on a subset, and writes ``docs/benchmarks/depth.md``.

Run: ``.venv/bin/python benchmarks/bench_depth.py [--repeats 3] [--out docs/benchmarks/depth.md]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from pathlib import Path

# Two BLAS threads, set before numpy loads its BLAS (the process is also pinned to 2 CPUs).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import socmap  # noqa: E402
from _common import pin_two_cores  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import embedded_data_dir, get_depth_set  # noqa: E402
from socmap.depth import STATUSES, Harmonised, fit_spline, harmonise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_table() -> tuple[pd.DataFrame, float]:
    path = embedded_data_dir() / "global_profiles" / "global_soc_horizons_harmonized.csv.gz"
    t0 = time.perf_counter()
    raw = pd.read_csv(path)
    took = time.perf_counter() - t0
    return raw.rename(columns={"profile_id": "site_id", "lon": "x", "lat": "y"}), took


def time_harmonise(
    df: pd.DataFrame, value_cols: tuple[str, ...], repeats: int
) -> tuple[list[float], Harmonised]:
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = harmonise(df, "globalsoilmap", value_cols=value_cols)
        times.append(time.perf_counter() - t0)
    assert result is not None
    return times, result


def time_loop(df: pd.DataFrame, sites: np.ndarray) -> float:
    """Per-profile fit_spline loop over already grouped profiles (the unbatched baseline)."""
    gsm = get_depth_set("globalsoilmap")
    groups = {sid: g for sid, g in df[df.site_id.isin(sites)].groupby("site_id", sort=False)}
    t0 = time.perf_counter()
    for sid in sites:
        g = groups[sid]
        spl = fit_spline(g.top_cm.to_numpy(), g.bottom_cm.to_numpy(), g.soc_g_kg.to_numpy())
        spl.mean(gsm.tops, gsm.bottoms, vlow=0.0, vhigh=1000.0)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loop-profiles", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "depth.md")
    args = ap.parse_args()

    pinning = pin_two_cores()
    df, read_s = load_table()
    n_sites, n_rows = df["site_id"].nunique(), len(df)

    soc_times, soc = time_harmonise(df, ("soc_g_kg",), args.repeats)
    both_times, both = time_harmonise(df, ("soc_g_kg", "bd_g_cm3"), args.repeats)

    ok_sites = soc.sites.loc[soc.sites.status == "ok", "site_id"].to_numpy()
    rng = np.random.default_rng(0)
    sample = rng.choice(ok_sites, size=min(args.loop_profiles, ok_sites.size), replace=False)
    loop_s = time_loop(df, sample)
    batch_per_profile = statistics.median(soc_times) / n_sites
    loop_per_profile = loop_s / sample.size
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    med_soc, med_both = statistics.median(soc_times), statistics.median(both_times)
    counts = soc.summary()
    counts_bd = both.sites["status_bd_g_cm3"].value_counts()
    lines = [
        "# Depth harmonisation benchmark",
        "",
        "`benchmarks/bench_depth.py`: the embedded global table "
        "(`global_soc_horizons_harmonized.csv.gz`) onto GlobalSoilMap depths "
        "(0-5, 5-15, 15-30, 30-60, 60-100, 100-200 cm), lam 0.1, clamp [0, 1000].",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"socmap {socmap.__version__}; {pinning}, "
        f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}. Median of {args.repeats} runs.",
        "",
        "| run | profiles | horizons | wall time (s) | profiles/s |",
        "|---|---:|---:|---:|---:|",
        f"| read CSV (gzip) | {n_sites} | {n_rows} | {read_s:.2f} | |",
        f"| harmonise SOC | {n_sites} | {n_rows} | {med_soc:.2f} | {n_sites / med_soc:,.0f} |",
        f"| harmonise SOC + BD | {n_sites} | {n_rows} | {med_both:.2f} | "
        f"{n_sites / med_both:,.0f} |",
        f"| per-profile `fit_spline` loop (SOC, {sample.size} `ok` profiles) | {sample.size} | | "
        f"{loop_s:.2f} | {sample.size / loop_s:,.0f} |",
        "",
        f"Batched harmonise is {loop_per_profile / batch_per_profile:,.0f}x faster per profile "
        "than the one-profile-at-a-time loop (which already integrates analytically). "
        f"Peak resident memory of the whole benchmark: {peak_mib:,.0f} MiB. "
        "Target: under 60 s on 2 cores.",
        "",
        "## Site statuses",
        "",
        "| status | SOC | BD |",
        "|---|---:|---:|",
        *[f"| {s} | {counts[s]} | {int(counts_bd.get(s, 0))} |" for s in STATUSES],
        f"| **total** | {sum(counts.values())} | {int(counts_bd.sum())} |",
        "",
        "`overlapping_horizons` are profiles whose horizons overlap (mostly the same depth "
        "interval recorded twice, as replicates or merged records, often with different "
        "values); `invalid_depths` have a negative top (organic layers above the mineral "
        "surface) or `bottom <= top`; both are left out with NaN values and counted. BD is "
        "measured in few profiles, hence the many `no_data`.",
        "",
        f"Output rows: {len(soc.table)} ({n_sites} profiles x 6 intervals); SOC estimable in "
        f"{int(soc.table.soc_g_kg.notna().sum())} of them.",
        "",
    ]
    text = "\n".join(lines)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

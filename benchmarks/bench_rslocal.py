"""Benchmark: RS-LOCAL instance selection from a 50,000-spectrum library on two cores.

No 50,000-spectrum library ships with socmap, so the library is synthetic: seeded random convex
mixtures of 2-3 real NIRsoil spectra (``socmap/_data/spectra/nirsoil``, the 732 with organic
carbon) with the matching mixture of their SOC (g/kg), plus small noise, on every 5th band
(140 bands, 1100-2490 nm) and SNV-transformed. The local set is 30 real NIRsoil spectra held
out from the mixing. The script times :func:`socmap.model.rslocal.rs_local` (k 100, retain
0.95, 5 components, response mode, seed 0) on libraries of 5,000, 20,000 and 50,000 spectra
with b 5 and 10, times the former one-``PLSRegression``-per-subset loop (copied below as
``_rs_local_reference``) on the 5,000 and 50,000 libraries, sweeps the batch size of the
scorer, and writes ``docs/benchmarks/rslocal.md`` and ``rslocal.csv`` from what it measured.

Run: ``.venv/bin/python benchmarks/bench_rslocal.py [--sizes 5000 20000 50000] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Two BLAS threads, set before numpy loads its BLAS (the process is also pinned to 2 CPUs).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402
import sklearn  # noqa: E402
from sklearn.cross_decomposition import PLSRegression  # noqa: E402

import socmap  # noqa: E402
from _common import PeakMemory, pin_two_cores  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import embedded_data_dir  # noqa: E402
from socmap.model import rslocal  # noqa: E402
from socmap.model.pls import fit_pls1_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECTRA = embedded_data_dir() / "spectra" / "nirsoil" / "nirsoil_absorbance_1100_2498nm.csv.gz"
K, RETAIN, N_COMPONENTS = 100, 0.95, 5
BAND_STEP = 5  # every 5th 2-nm band: 140 bands
N_LOCAL = 30
SPECTRAL_NOISE = 5e-4  # absorbance units, before SNV
TARGET_NOISE = 0.5  # g/kg


def snv(X: np.ndarray) -> np.ndarray:
    """Standard normal variate: centre and scale each spectrum by its own mean and std."""
    return (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)


def load_nirsoil() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Absorbance on every ``BAND_STEP``-th band and SOC (g/kg) of the spectra with Ciso."""
    df = pd.read_csv(SPECTRA)
    df = df[df["Ciso_pct"].notna()]
    bands = [c for c in df.columns if c.startswith("nm_")][::BAND_STEP]
    return df[bands].to_numpy(np.float64), df["Ciso_pct"].to_numpy(np.float64) * 10.0, bands


def build_library(
    spectra: np.ndarray, soc: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` convex mixtures of 2-3 of the given spectra, SNV-transformed, with mixed SOC."""
    rng = np.random.default_rng(seed)
    parts = np.empty((n, 3), dtype=np.intp)
    weights = np.zeros((n, 3))
    n_parts = rng.integers(2, 4, size=n)
    for i, m in enumerate(n_parts):
        parts[i] = rng.choice(len(spectra), 3, replace=False)
        weights[i, :m] = rng.dirichlet(np.ones(m))
    X = np.einsum("nj,njp->np", weights, spectra[parts])
    X += rng.normal(0.0, SPECTRAL_NOISE, size=X.shape)
    y = np.clip((weights * soc[parts]).sum(axis=1) + rng.normal(0.0, TARGET_NOISE, n), 0, None)
    return snv(X), y


# --- the former implementation, one scikit-learn fit per subset (reference only) -----------


def _score_reference(
    X: np.ndarray, y: np.ndarray, X_local: np.ndarray, y_local: np.ndarray, n_components: int
) -> float:
    nc = max(1, min(n_components, X.shape[0] - 1, X.shape[1]))
    pls = PLSRegression(n_components=nc, scale=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        pls.fit(X, y)
        pred = np.asarray(pls.predict(X_local)).ravel()
    return float(np.sqrt(np.mean((pred - y_local) ** 2)))


def _rs_local_reference(
    Xl: np.ndarray,
    yl: np.ndarray,
    Xq: np.ndarray,
    yq: np.ndarray,
    *,
    k: int,
    b: int,
    retain: float,
    n_components: int,
    seed: int,
    counts_out: dict[str, int],
) -> np.ndarray:
    """RS-LOCAL in response mode as socmap ran it before the batched scorer."""
    rng = np.random.default_rng(seed)
    active = np.arange(len(Xl))
    for m in rslocal._active_sizes(len(Xl), k, retain):
        counts_out["iterations"] = counts_out.get("iterations", 0) + 1
        total = np.zeros(m)
        counts = np.zeros(m)
        for _draw in range(b):
            perm = rng.permutation(m)
            for start in range(0, m, k):
                pick = perm[start : start + k]
                if len(pick) < k:
                    others = np.setdiff1d(perm, pick, assume_unique=True)
                    pick = np.concatenate([pick, rng.choice(others, k - len(pick), replace=False)])
                idx = active[pick]
                total[pick] += _score_reference(Xl[idx], yl[idx], Xq, yq, n_components)
                counts_out["fits"] = counts_out.get("fits", 0) + 1
                counts[pick] += 1
        keep = rslocal._next_size(m, k, retain)
        active = active[np.argsort(total / counts, kind="stable")[:keep]]
    return active


# --- measuring -------------------------------------------------------------------------------


class FitCounter:
    """Counts the PLS fits and iterations of :func:`rs_local` by wrapping its helpers."""

    def __init__(self) -> None:
        self.fits = 0
        self.iterations = 0
        self._fit = rslocal.fit_pls1_batch
        self._subsets = rslocal._subsets

    def __enter__(self) -> FitCounter:
        def fit(X: Any, *args: Any, **kwargs: Any) -> Any:
            self.fits += len(X)
            return self._fit(X, *args, **kwargs)

        def subsets(*args: Any, **kwargs: Any) -> np.ndarray:
            self.iterations += 1
            return self._subsets(*args, **kwargs)

        rslocal.fit_pls1_batch = fit  # type: ignore[assignment]
        rslocal._subsets = subsets  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        rslocal.fit_pls1_batch = self._fit  # type: ignore[assignment]
        rslocal._subsets = self._subsets  # type: ignore[assignment]


def measure(run: Callable[[], np.ndarray]) -> dict[str, Any]:
    """Wall and CPU seconds, peak RSS and the result of one call."""
    rss_before = psutil.Process().memory_info().rss
    load_before = os.getloadavg()[0]
    cpu0, t0 = time.process_time(), time.perf_counter()
    with PeakMemory() as mem:
        result = run()
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_mib": mem.peak / 2**20,
        "rss_before_mib": rss_before / 2**20,
        "load_before": load_before,
        "result": result,
    }


def local_rmse(Xl: np.ndarray, yl: np.ndarray, Xq: np.ndarray, yq: np.ndarray, idx: np.ndarray):
    """RMSE on the local set of a 5-component PLS fitted on each row of library indices."""
    fits = fit_pls1_batch(Xl[idx], yl[idx], N_COMPONENTS)
    return np.sqrt(np.mean((fits.predict(Xq) - yq) ** 2, axis=1))


def machine_line(pinning: str) -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        model = names[0] if names else model
    return (
        f"Machine: {model}, Python {platform.python_version()}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, socmap {socmap.__version__}; {pinning}, "
        f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000])
    ap.add_argument("--draws", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--repeats", type=int, default=3, help="runs per batched configuration")
    ap.add_argument(
        "--reference-sizes",
        type=int,
        nargs="*",
        default=[5000, 50000],
        help="library sizes to time the former loop on (none: skip it)",
    )
    ap.add_argument("--sweep-subsets", type=int, default=4000)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "rslocal.md")
    args = ap.parse_args()

    pinning = pin_two_cores()
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load_start = os.getloadavg()
    spectra, soc, bands = load_nirsoil()
    rng = np.random.default_rng(0)
    held_out = np.zeros(len(spectra), dtype=bool)
    held_out[rng.choice(len(spectra), N_LOCAL, replace=False)] = True
    Xq, yq = snv(spectra[held_out]), soc[held_out]
    t0 = time.perf_counter()
    X_all, y_all = build_library(spectra[~held_out], soc[~held_out], max(args.sizes), seed=1)
    build_s = time.perf_counter() - t0

    rows: list[dict[str, Any]] = []
    picks: dict[tuple[int, int], np.ndarray] = {}
    for n in args.sizes:
        Xl, yl = X_all[:n], y_all[:n]
        for b in args.draws:
            runs = []
            for _ in range(args.repeats):
                with FitCounter() as counter:
                    runs.append(
                        measure(
                            lambda Xl=Xl, yl=yl, b=b: rslocal.rs_local(
                                Xl,
                                yl,
                                Xq,
                                yq,
                                k=K,
                                b=b,
                                retain=RETAIN,
                                n_components=N_COMPONENTS,
                                seed=0,
                            )
                        )
                    )
                fits, iterations = counter.fits, counter.iterations
            walls = [r["wall_s"] for r in runs]
            picks[(n, b)] = runs[0]["result"]
            assert all(np.array_equal(r["result"], runs[0]["result"]) for r in runs)
            rows.append(
                {
                    "implementation": "batched (socmap.model.pls)",
                    "library": n,
                    "b": b,
                    "runs": len(runs),
                    "wall_s": statistics.median(walls),
                    "wall_min_s": min(walls),
                    "wall_max_s": max(walls),
                    "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                    "iterations": iterations,
                    "pls_fits": fits,
                    "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                    "rss_before_mib": runs[0]["rss_before_mib"],
                    "load_before": max(r["load_before"] for r in runs),
                    "same_as_reference": "",
                }
            )
            print(rows[-1])

    for n in args.reference_sizes:
        Xl, yl = X_all[:n], y_all[:n]
        for b in args.draws:
            counted: dict[str, int] = {}
            r = measure(
                lambda Xl=Xl, yl=yl, b=b, counted=counted: _rs_local_reference(
                    Xl,
                    yl,
                    Xq,
                    yq,
                    k=K,
                    b=b,
                    retain=RETAIN,
                    n_components=N_COMPONENTS,
                    seed=0,
                    counts_out=counted,
                )
            )
            same = picks.get((n, b))
            rows.append(
                {
                    "implementation": "reference (one PLSRegression per subset)",
                    "library": n,
                    "b": b,
                    "runs": 1,
                    "wall_s": r["wall_s"],
                    "wall_min_s": r["wall_s"],
                    "wall_max_s": r["wall_s"],
                    "cpu_s": r["cpu_s"],
                    "iterations": counted["iterations"],
                    "pls_fits": counted["fits"],
                    "peak_rss_mib": r["peak_rss_mib"],
                    "rss_before_mib": r["rss_before_mib"],
                    "load_before": r["load_before"],
                    "same_as_reference": ""
                    if same is None
                    else ("yes" if np.array_equal(same, r["result"]) else "no"),
                }
            )
            print(rows[-1])

    # batch-size sweep: score the same subsets of the largest library with several budgets
    n = max(args.sizes)
    sweep_rng = np.random.default_rng(2)
    n_draws = max(1, math.ceil(args.sweep_subsets * K / n))
    subsets = rslocal._subsets(n, K, n_draws, sweep_rng)[: args.sweep_subsets]
    sweep = []
    for mib in (0.25, 1, 2, 4, 8, 16, 64, 256):
        batch = rslocal.batch_size(K, len(bands), N_LOCAL, budget=int(mib * 2**20))
        t = time.perf_counter()
        rslocal._score_subsets(
            X_all[:n], y_all[:n], Xq, yq, subsets, N_COMPONENTS, "response", batch
        )
        took = time.perf_counter() - t
        sweep.append({"budget_mib": mib, "batch": batch, "us_per_fit": took / len(subsets) * 1e6})
        print(sweep[-1])

    # sanity check of the selection on the largest library (b = max)
    n, b = max(args.sizes), max(args.draws)
    chosen = picks[(n, b)]
    random_idx = np.random.default_rng(3).integers(0, n, size=(20, K))
    rmse_sel = float(local_rmse(X_all, y_all, Xq, yq, chosen[None])[0])
    rmse_rand = local_rmse(X_all, y_all, Xq, yq, random_idx)

    load_end = os.getloadavg()
    csv_path = args.out.with_suffix(".csv")
    table = pd.DataFrame(rows)
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4g")

    default = table[(table["implementation"].str.startswith("batched"))]
    lines = [
        "# RS-LOCAL benchmark",
        "",
        f"Generated by `benchmarks/bench_rslocal.py` on {dt.date.today().isoformat()}; every "
        "number below is measured by that run (raw rows: `rslocal.csv`).",
        "",
        machine_line(pinning) + f" The process had {n_cpus} CPUs.",
        "",
        "**The CPUs are shared** with other developers working on the same machine, so wall "
        "times may be disturbed. The 1-minute load average, which counts this benchmark itself "
        f"as about 1, was {load_start[0]:.2f} at the start and {load_end[0]:.2f} at the end "
        "(before each run: `load_before` in the CSV). CPU seconds (user + system of this "
        "process) are the steadier figure.",
        "",
        "## Data",
        "",
        f"**The library is synthetic**: no {max(args.sizes):,}-spectrum library is embedded in "
        "socmap. Each member is a seeded random convex mixture (Dirichlet weights) of 2 or 3 "
        f"of the {len(spectra) - N_LOCAL} real NIRsoil spectra with organic carbon "
        "(`socmap/_data/spectra/nirsoil`, Ciso in % x 10 = SOC g/kg), with the same mixture "
        f"of their SOC, plus Gaussian noise (sd {SPECTRAL_NOISE} absorbance on the spectrum, "
        f"{TARGET_NOISE} g/kg on SOC, clipped at 0); every {BAND_STEP}th band "
        f"({len(bands)} bands, {bands[0][3:]}-{bands[-1][3:]} nm), SNV-transformed. The "
        "smaller libraries are the first rows of the largest one. The local set is "
        f"{N_LOCAL} real NIRsoil spectra (SNV, same bands) held out from the mixing. Building "
        f"the {max(args.sizes):,}-member library took {build_s:.1f} s.",
        "",
        f"RS-LOCAL: k {K}, retain {RETAIN}, {N_COMPONENTS} PLS components, response mode, "
        "seed 0. Iterations and PLS fits are counted during the run.",
        "",
        "## Wall time",
        "",
        "| implementation | library | b | wall time (s) | CPU time (s) | iterations | PLS fits "
        "| fits/s | peak RSS (MiB) | RSS before (MiB) | same selection |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        spread = (
            f" ({r['wall_min_s']:.1f}-{r['wall_max_s']:.1f}, {r['runs']} runs)"
            if r["runs"] > 1
            else ""
        )
        lines.append(
            f"| {r['implementation']} | {r['library']:,} | {r['b']} | {r['wall_s']:.1f}{spread} "
            f"| {r['cpu_s']:.1f} | {r['iterations']} | {r['pls_fits']:,} "
            f"| {r['pls_fits'] / r['wall_s']:,.0f} | {r['peak_rss_mib']:,.0f} "
            f"| {r['rss_before_mib']:,.0f} | {r['same_as_reference']} |"
        )
    lines += [
        "",
        "Wall time is the median over the runs (range in brackets); peak RSS is the whole "
        "process (the library itself included) sampled every 20 ms. 'same selection': the "
        "batched and the reference implementation return the same indices (they draw the same "
        "subsets for a seed).",
    ]
    reference = table[table["implementation"].str.startswith("reference")]
    for old in reference.itertuples():
        new = default[(default["library"] == old.library) & (default["b"] == old.b)]
        if len(new):
            lines.append(
                f"On the {old.library:,} library with b {old.b} the batched scorer is "
                f"{old.wall_s / new['wall_s'].iloc[0]:,.1f}x faster than one "
                "`PLSRegression` per subset."
            )
    big = default[default["library"] == max(args.sizes)]
    lines += [
        "",
        f"Largest library: {', '.join(f'b {r.b}: {r.wall_s:.1f} s' for r in big.itertuples())}"
        " (target: well under 10 minutes on 2 cores). CPU time over wall time, i.e. the cores "
        "the run kept busy on average: "
        + ", ".join(f"b {r.b}: {r.cpu_s / r.wall_s:.2f}" for r in big.itertuples())
        + f" of {n_cpus}.",
        "",
        "## Batch size of the scorer",
        "",
        f"The same {len(subsets):,} subsets of the {n:,} library scored with different memory "
        "budgets per batch (`rslocal.batch_size`; the default `BATCH_BYTES` is "
        f"{rslocal.BATCH_BYTES / 2**20:g} MiB):",
        "",
        "| budget (MiB) | subsets per batch | µs per fit (gather + fit + score) |",
        "|---:|---:|---:|",
        *[f"| {s['budget_mib']:g} | {s['batch']} | {s['us_per_fit']:.0f} |" for s in sweep],
        "",
        "Batches that stay in the CPU cache are faster: every fit reads its subset about 15 "
        "times (three matrix-vector products per component), which streams from main memory "
        "once a batch outgrows the cache.",
        "",
        "## Selection sanity check",
        "",
        f"A {N_COMPONENTS}-component PLS fitted on the {K} spectra RS-LOCAL selected from the "
        f"{n:,} library (b {b}) predicts the {N_LOCAL} local spectra with RMSE "
        f"{rmse_sel:.2f} g/kg; fitted on {K} random library spectra, {rmse_rand.mean():.2f} "
        f"g/kg (mean of {len(rmse_rand)} draws, range {rmse_rand.min():.2f}-"
        f"{rmse_rand.max():.2f}). The local SOC has sd {yq.std():.2f} g/kg. Response mode "
        "selects with the local targets, so this is an in-sample check that the search "
        "works, not a validation.",
        "",
    ]
    text = "\n".join(lines)
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""Benchmark: the memory and time a 100,000 x 1,701 OSSL-layout library costs, step by step.

No library that large ships with socmap, so it is synthetic, written in the OSSL layout (a MIR
table ``scan_mir.<cm-1>_abs``, 600-4000 cm-1 by 2, and a soil-lab table with
``oc_usda.c729_w.pct``, joined on ``id.layer_uuid_txt``): each scan is a seeded random convex
mixture (Dirichlet weights) of 2 or 3 real MIR spectra of the embedded LimeSoDa sites NRW.115,
NRW.42 and O.32 (absorbance, interpolated onto the OSSL axis), with the same mixture of their
SOC (in %), plus small noise. The benchmark site is the embedded H.138, which is not in the
mixtures.

Each step runs in its own Python process, as a user runs it, and reports that process's wall
time and peak resident memory (``VmHWM``):

1. ``import``: ``import socmap.spectra`` and the CLI (the floor every step pays);
2. ``read_ossl`` on the Parquet tables and on the CSV tables;
3. ``socmap spectra ossl`` (Parquet in, Parquet library out);
4. ``socmap spectra benchmark --sites H.138 --library LIB --methods dtl-i-pls`` (reads the
   library, puts it on the site's grid, RS-LOCAL over the whole library, PLSR).

Writes ``docs/benchmarks/spectral_library.md`` and ``spectral_library.csv``.

Run: ``.venv/bin/python benchmarks/bench_spectral_library.py [--rows 100000] [--work DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import socmap  # noqa: E402
from _common import pin_two_cores, run_child  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.spectra.datasets import load_limesoda  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks"
AXIS = np.arange(600.0, 4000.0 + 1, 2.0)  # the OSSL MIR axis, cm-1
BASIS_SITES = ("NRW.115", "NRW.42", "O.32")
SITE = "H.138"
CHUNK = 10_000
SPECTRAL_NOISE = 2e-3  # absorbance
MIB = 2**20
#: The budget this page checks: every step of a 100k x 1,700 library within 4 GiB, so the
#: spectral benchmark runs beside the system on an 8 GB laptop.
BUDGET_MIB = 4096

IMPORT = """
import socmap.spectra
import socmap.cli
"""

READ_OSSL = """
import sys
from socmap.spectra import read_ossl
lib = read_ossl(sys.argv[1], sys.argv[2], "mir")
print("SCANS", lib.n_samples, lib.n_bands)
"""

CLI = """
import sys
from socmap.cli import app
app(sys.argv[1:], standalone_mode=False)
"""


def basis() -> tuple[np.ndarray, np.ndarray]:
    """Absorbance of the basis sites on the OSSL axis, and their SOC in %."""
    spectra, soc = [], []
    for name in BASIS_SITES:
        site = load_limesoda(name)
        absorbance = -np.log10(np.clip(site.values, 1e-6, None))
        spectra.append(np.stack([np.interp(AXIS, site.axis, row) for row in absorbance]))
        soc.append(site.target() / 10.0)
    return np.concatenate(spectra), np.concatenate(soc)


def write_library(rows: int, folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write the synthetic OSSL tables (Parquet and CSV) chunk by chunk; return their paths."""
    base, soc = basis()
    rng = np.random.default_rng(seed)
    cols = [f"scan_mir.{int(a)}_abs" for a in AXIS]
    paths = {
        "spectra.parquet": folder / "ossl_mir.parquet",
        "soillab.parquet": folder / "ossl_soillab.parquet",
        "spectra.csv": folder / "ossl_mir.csv",
        "soillab.csv": folder / "ossl_soillab.csv",
    }
    writers: dict[str, pq.ParquetWriter] = {}
    try:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            parts = rng.integers(2, 4, n)
            idx = rng.integers(0, len(base), (n, 3))
            w = rng.dirichlet(np.ones(3), n)
            w[parts == 2, 2] = 0.0
            w /= w.sum(axis=1, keepdims=True)
            X = np.einsum("nk,nkb->nb", w, base[idx]) + rng.normal(
                0, SPECTRAL_NOISE, (n, len(AXIS))
            )
            ids = [f"syn-{i:07d}" for i in range(start, start + n)]
            spectra = pd.DataFrame(X.astype(np.float32), columns=cols)
            spectra.insert(0, "id.layer_uuid_txt", ids)
            lab = pd.DataFrame(
                {
                    "id.layer_uuid_txt": ids,
                    "oc_usda.c729_w.pct": np.einsum("nk,nk->n", w, soc[idx]),
                    "dataset.code_ascii_txt": "synthetic",
                    "dataset.license.title_ascii_txt": "CC-BY 4.0",
                }
            )
            for kind, frame in (("spectra", spectra), ("soillab", lab)):
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if kind not in writers:
                    writers[kind] = pq.ParquetWriter(paths[f"{kind}.parquet"], table.schema)
                writers[kind].write_table(table)
                frame.to_csv(
                    paths[f"{kind}.csv"],
                    mode="a",
                    header=start == 0,
                    index=False,
                    float_format="%.5g",
                )
    finally:
        for writer in writers.values():
            writer.close()
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="library scans (default 100000)")
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the .md and .csv")
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="an earlier run's spectral_library.csv to compare with (its file name says which)",
    )
    args = parser.parse_args()
    pinned = pin_two_cores()
    work = Path(tempfile.mkdtemp(prefix="socmap-lib-", dir=args.work))
    try:
        t0 = time.perf_counter()
        paths = write_library(args.rows, work)
        write_s = time.perf_counter() - t0
        sizes = {k: p.stat().st_size / MIB for k, p in paths.items()}
        library = work / "library.parquet"
        steps = [
            ("import socmap.spectra and the CLI", IMPORT, ()),
            (
                "read_ossl, Parquet tables",
                READ_OSSL,
                (paths["spectra.parquet"], paths["soillab.parquet"]),
            ),
            ("read_ossl, CSV tables", READ_OSSL, (paths["spectra.csv"], paths["soillab.csv"])),
            (
                "socmap spectra ossl (Parquet in, Parquet out)",
                CLI,
                (
                    "spectra",
                    "ossl",
                    paths["spectra.parquet"],
                    paths["soillab.parquet"],
                    "--kind",
                    "mir",
                    "--out",
                    library,
                ),
            ),
            (
                f"socmap spectra benchmark --sites {SITE} --methods dtl-i-pls",
                CLI,
                (
                    "spectra",
                    "benchmark",
                    "--sites",
                    SITE,
                    "--library",
                    library,
                    "--library-quantity",
                    "absorbance",
                    "--methods",
                    "dtl-i-pls",
                    "--repeats",
                    "1",
                    "--out",
                    work / "bench",
                ),
            ),
        ]
        rows = []
        for label, code, argv in steps:
            print(f"{label} ...", flush=True)
            wall, peak = run_child(code, *map(str, argv))
            rows.append({"step": label, "wall_s": wall, "peak_rss_mib": peak / MIB})
            print(f"  {wall:.1f} s, peak {peak / MIB:.0f} MiB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    frame = pd.DataFrame(rows)
    float32_mib = args.rows * len(AXIS) * 4 / MIB
    frame["peak_vs_float64_spectra"] = frame["peak_rss_mib"] / (2 * float32_mib)
    if args.before is not None:
        before = pd.read_csv(args.before).set_index("step")
        frame["peak_rss_mib_before"] = frame["step"].map(before["peak_rss_mib"])
        frame["wall_s_before"] = frame["step"].map(before["wall_s"])
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "spectral_library.csv") as tmp:
        frame.to_csv(tmp, index=False)
    page = args.out / "spectral_library.md"
    write_doc(page, frame, args.rows, float32_mib, sizes, write_s, pinned, args.before)


def write_doc(
    path: Path,
    frame: pd.DataFrame,
    rows: int,
    float32_mib: float,
    sizes: dict[str, float],
    write_s: float,
    pinned: str,
    before: Path | None,
) -> None:
    """Write the Markdown page from the measured rows."""
    shown = frame.rename(
        columns={
            "wall_s": "wall time (s)",
            "peak_rss_mib": "peak RSS (MiB)",
            "peak_vs_float64_spectra": "peak / float64 spectra",
            "peak_rss_mib_before": "peak RSS before (MiB)",
            "wall_s_before": "wall time before (s)",
        }
    )
    compared = (
        []
        if before is None
        else [
            f"'before' is `{before.name}`, the same script's rows from an earlier run (the file "
            "name gives the commit whose library code it measured).",
            "",
        ]
    )
    lines = [
        "# Spectral library memory",
        "",
        f"Generated by `benchmarks/bench_spectral_library.py --rows {rows}"
        + (f" --before {before.name}" if before is not None else "")
        + f"` on "
        f"{dt.date.today().isoformat()} (socmap {socmap.__version__}, numpy {np.__version__}, "
        f"pandas {pd.__version__}, pyarrow {pa.__version__}; {pinned}; {platform.platform()}).",
        "",
        f"**The library is synthetic**, in the OSSL layout: {rows:,} MIR scans x {len(AXIS):,} "
        f"bands (600-4000 cm-1 by 2), each a seeded random mixture of 2-3 real spectra of "
        f"{', '.join(BASIS_SITES)} with the same mixture of their SOC, plus noise; the site is "
        f"{SITE}. The spectra alone are {float32_mib:,.0f} MiB as float32 and "
        f"{2 * float32_mib:,.0f} MiB as float64. Tables: "
        + ", ".join(f"{k} {v:,.0f} MiB" for k, v in sizes.items())
        + f" (written in {write_s:.0f} s).",
        "",
        "Each step is its own Python process; peak RSS is that process's high-water mark "
        "(`VmHWM`), the interpreter and its imports included.",
        "",
        *compared,
        shown.to_markdown(index=False, floatfmt=".1f"),
        "",
        f"**Budget: {BUDGET_MIB:,} MiB per step.** Largest step here: "
        f"{frame['peak_rss_mib'].max():,.0f} MiB "
        f"({'within' if frame['peak_rss_mib'].max() <= BUDGET_MIB else 'OVER'} the budget). "
        "The spectra are read in parts into the one float64 array a `Spectra` keeps "
        "(`socmap/spectra/_tables.py`), so reading costs about that array plus the interpreter "
        "and pyarrow; the benchmark adds the library on the site's grid and RS-LOCAL. Not "
        "measured here: the methods that train a CNN on the whole library (global-cnn, "
        "DTL-R, DTL-IR), whose training set is the library on the site's grid as float32.",
        "",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))


if __name__ == "__main__":
    main()

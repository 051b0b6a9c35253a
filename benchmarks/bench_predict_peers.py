"""Mapping side by side with the peers a mapper would use: scikit-learn and R terra + ranger.

One synthetic cube (``--size`` squared pixels, 16 smooth float32 bands, a nodata hole), one
training table sampled from it (one depth layer, 0-30 cm), and four ways to map it, each
as its own process, as a user runs it:

* ``socmap predict`` with T = 1 and T = 32 Monte Carlo passes (every default export: Zarr,
  COGs, quicklooks, STAC), on a bundle trained on the table with its area of applicability;
* rasterio 512-pixel windows of a GeoTIFF stack + a scikit-learn Random Forest (500 trees,
  ``n_jobs=2``), writing a tiled GeoTIFF: the path most Python mapping scripts use;
* R ``terra::predict`` + ``ranger`` (500 trees, 2 threads) from the same stack to a GeoTIFF
  (Debian packages ``r-cran-terra`` and ``r-cran-ranger``; ``--no-r`` skips it).

Each peer trains its forest in its own process first; that time is printed by the process
and left out of its mapping time, as socmap's bundle is trained beforehand. Wall time is
the whole process otherwise (start-up and writes included); peak memory is the peak of the
summed PSS of the process and its children, sampled every 0.2 s. Throughput is mapped
pixels per second; ratios are to the scikit-learn path of the same run.

Writes ``docs/benchmarks/predict_peers.md`` and ``.csv``.

Run: ``.venv/bin/python benchmarks/bench_predict_peers.py [--size 4000] [--no-r]``
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pandas as pd  # noqa: E402

import socmap  # noqa: E402
from _common import PeakMemory, pin_two_cores  # noqa: E402
from bench_predict import N_BANDS, _commit, make_bundle, make_cube, training_table, write_stack  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap._tables import markdown_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks" / "predict_peers.md"
LAYER = [(0.0, 30.0)]
BANDS = [f"b{j:02d}" for j in range(N_BANDS)]

SKLEARN = """
import sys, time
import numpy as np, pandas as pd, rasterio
from sklearn.ensemble import RandomForestRegressor
table, stack, out = sys.argv[1:4]
t0 = time.perf_counter()
rows = pd.read_csv(table)
bands = [c for c in rows.columns if c.startswith("b")]
forest = RandomForestRegressor(500, n_jobs=2, random_state=0).fit(rows[bands], rows["soc_g_kg"])
print(f"train_seconds {time.perf_counter() - t0:.3f}")
with rasterio.open(stack) as src:
    profile = src.profile | {"count": 1, "nodata": float("nan"), "compress": "deflate"}
    with rasterio.open(out, "w", **profile) as dst:
        for _, win in src.block_windows(1):
            block = src.read(window=win)
            flat = block.reshape(block.shape[0], -1).T
            ok = np.isfinite(flat).all(axis=1)
            pred = np.full(flat.shape[0], np.nan, dtype="float32")
            if ok.any():
                pred[ok] = forest.predict(pd.DataFrame(flat[ok], columns=bands))
            dst.write(pred.reshape(1, *block.shape[1:]), window=win)
"""

R_SCRIPT = """
suppressPackageStartupMessages({library(terra); library(ranger)})
args <- commandArgs(trailingOnly = TRUE)
t0 <- Sys.time()
rows <- read.csv(args[1])
bands <- grep("^b", names(rows), value = TRUE)
model <- ranger(x = rows[, bands], y = rows$soc_g_kg, num.trees = 500, num.threads = 2,
                seed = 0)
cat(sprintf("train_seconds %.3f\\n", as.numeric(difftime(Sys.time(), t0, units = "secs"))))
stack <- rast(args[2])
names(stack) <- bands
# ranger holds every tree's prediction of a chunk (rows x trees doubles): terra's default
# chunks (a share of RAM) run out of memory, so chunks of 64 raster rows, as terra's docs allow
steps <- ceiling(nrow(stack) / 64)
predict(stack, model, fun = function(m, d, ...) predict(m, d, num.threads = 2)$predictions,
        na.rm = TRUE, filename = args[3], overwrite = TRUE,
        wopt = list(datatype = "FLT4S", steps = steps, gdal = c("COMPRESS=DEFLATE", "TILED=YES")))
"""


def measured(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` as its own process: wall seconds, peak PSS of its tree, its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )  # fmt: skip
    with PeakMemory(tree=True, interval=0.2, pid=proc.pid) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - start
    train = re.search(r"train_seconds ([0-9.]+)", out)
    status = "ok"
    if proc.returncode != 0:  # recorded, not raised: a peer that runs out of memory is a result
        killed = proc.returncode == -9
        status = "killed (out of memory?)" if killed else f"failed ({proc.returncode})"
        print(err[-2000:], flush=True)
    return {
        "status": status,
        "wall_s": wall,
        "train_s": float(train.group(1)) if train else 0.0,
        "peak_pss_mib": mem.peak / 2**20,
    }


def main() -> None:
    """Build the inputs, run every path, write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--passes", default="1,32")
    parser.add_argument("--sites", type=int, default=400, help="training sites (one row each)")
    parser.add_argument("--no-r", action="store_true", help="skip R terra + ranger")
    args = parser.parse_args()
    machine = f"{platform.machine()}, {pin_two_cores()}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="socmap-peers-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        cube = make_cube(tmp / "cube.zarr", args.size)
        bundle = make_bundle(cube, tmp / "bundle", args.sites, aoa=True, intervals=LAYER)
        table = training_table(cube, args.sites, intervals=LAYER)
        table[[*BANDS, "soc_g_kg"]].to_csv(tmp / "table.csv", index=False)
        stack = write_stack(cube, tmp / "stack.tif")
        print(f"inputs ready in {time.perf_counter() - t0:.0f} s", flush=True)
        mapped = args.size**2 - 16 * 16  # every pixel but make_cube's nodata hole
        socmap_cli = str(Path(sys.executable).with_name("socmap"))
        for passes in [int(p) for p in args.passes.split(",")]:
            out = tmp / f"run{passes}"
            cmd = [socmap_cli, "predict", str(bundle), str(cube), "-o", str(out),
                   "--passes", str(passes)]  # fmt: skip
            env = {**os.environ, "SOCMAP_PROGRESS": "0"}
            rows.append({"path": f"socmap predict, T = {passes} (exports on)",
                         **measured(cmd, env)})  # fmt: skip
            print(rows[-1], flush=True)
            shutil.rmtree(out)
        script = tmp / "forest.py"
        script.write_text(SKLEARN)
        cmd = [sys.executable, str(script), str(tmp / "table.csv"), str(stack),
               str(tmp / "rf.tif")]  # fmt: skip
        rows.append({"path": "rasterio windows + scikit-learn RF (500 trees, 2 jobs)",
                     **measured(cmd)})  # fmt: skip
        print(rows[-1], flush=True)
        if not args.no_r:
            if shutil.which("Rscript") is None:
                raise SystemExit("Rscript not found: apt-get install r-cran-terra r-cran-ranger")
            (tmp / "peer.R").write_text(R_SCRIPT)
            cmd = ["Rscript", str(tmp / "peer.R"), str(tmp / "table.csv"), str(stack),
                   str(tmp / "terra.tif")]  # fmt: skip
            rows.append({"path": "R terra::predict + ranger (500 trees, 2 threads)",
                         **measured(cmd)})  # fmt: skip
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame["map_s"] = frame["wall_s"] - frame["train_s"]
    frame["px_per_s"] = (mapped / frame["map_s"]).where(frame["status"] == "ok")
    ref = frame.loc[frame["path"].str.contains("scikit-learn")].iloc[0]
    frame["speed_vs_sklearn"] = frame["px_per_s"] / ref["px_per_s"]
    frame["memory_vs_sklearn"] = frame["peak_pss_mib"] / ref["peak_pss_mib"]
    frame = frame.assign(size=args.size, pixels=mapped, sites=args.sites, commit=_commit())
    with atomic_path(DOC.with_suffix(".csv"), overwrite=True) as tmp_csv:
        frame.to_csv(tmp_csv, index=False)
    write_doc(frame, machine, args.size)


def write_doc(frame: pd.DataFrame, machine: str, size: int) -> None:
    """The table with ratios, and what it says against issue 18's targets."""
    shown = frame[["path", "status", "map_s", "train_s", "px_per_s", "peak_pss_mib",
                   "speed_vs_sklearn", "memory_vs_sklearn"]].rename(columns={
        "map_s": "mapping wall (s)", "train_s": "training (s, left out)",
        "px_per_s": "px/s", "peak_pss_mib": "peak PSS (MiB)",
        "speed_vs_sklearn": "px/s vs scikit-learn", "memory_vs_sklearn": "memory vs scikit-learn",
    })  # fmt: skip
    formats = {"mapping wall (s)": "{:.1f}".format, "training (s, left out)": "{:.1f}".format,
               "px/s": "{:,.0f}".format, "peak PSS (MiB)": "{:,.0f}".format,
               "px/s vs scikit-learn": "{:.2f}×".format,
               "memory vs scikit-learn": "{:.2f}×".format}  # fmt: skip
    lines = [
        "# Mapping side by side with scikit-learn and R terra + ranger",
        "",
        f"`benchmarks/bench_predict_peers.py` (generated). One synthetic {size} x {size} x "
        f"{N_BANDS}-band float32 cube ({frame['pixels'].iloc[0]:,} pixels with values), one "
        f"depth layer (0-30 cm), one training table of {frame['sites'].iloc[0]} sites sampled "
        "from the cube (a forest's trees, and its prediction cost, grow with the table; the "
        "network's do not); every path is its own process, its forest trained in that "
        "process first (the training "
        "time is printed by the process and left out). Wall time otherwise includes start-up, "
        "reading and writing; peak memory is the summed PSS of the process tree. socmap "
        "writes its default exports (Zarr, COGs of mean/sd/quantiles, quicklooks, STAC); the "
        "peers write one GeoTIFF of the mean. R predicts in chunks of 64 raster rows "
        "(`wopt steps`): ranger holds every tree's prediction of a chunk (with terra's default "
        "chunks, one trial run of this script was killed for memory at about 22 GB; that "
        "run is not part of this table).",
        "",
        f"Machine: {machine}; socmap {socmap.__version__}, commit {frame['commit'].iloc[0]}.",
        "",
        markdown_table(shown, columns=formats),
        "",
        "Issue 18's targets (ratios in one run): socmap T = 1 at least 4x the scikit-learn "
        "path's px/s, T = 32 at least 1.5x.",
        "",
    ]
    with atomic_path(DOC, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))


if __name__ == "__main__":
    main()

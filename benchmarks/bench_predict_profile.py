"""Where the time of ``socmap predict`` goes: a profile of one tile at T = 1 and T = 32.

Builds the synthetic 16-band cube of ``bench_predict.py`` at one tile (512 x 512 pixels,
the engine's default chunk) and its default-size network with an area of applicability
(as every pretrained and fine-tuned bundle has), then maps it in this process
(``workers=0``, no dask) under :mod:`cProfile`, with every default export on, for
T = 1 and T = 32 Monte Carlo passes. The functions are summed into stages by the module
they live in (network, feature encoding, area of applicability, statistics, Zarr writes,
COG/PNG/STAC exports, ...), so the table says which stage to fix first. A separate,
unprofiled run gives the wall time (cProfile slows Python-heavy code more than torch).

Start-up is timed apart, as whole processes: ``socmap --version`` (the CLI's imports) and
``socmap predict`` on a 64 x 64 cube with the defaults (T = 32, exports on), the command a
user runs on a small area.

Writes ``docs/benchmarks/predict_profile.md``.

Run: ``.venv/bin/python benchmarks/bench_predict_profile.py [--size 512] [--passes 1,32]``
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pandas as pd  # noqa: E402

import socmap  # noqa: E402
from _common import pin_two_cores  # noqa: E402
from bench_predict import make_bundle, make_cube  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.predict import predict_cube  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks" / "predict_profile.md"

#: Stage of a profiled function, by the first pattern found in ``file:function``; order
#: matters (the first match wins), the last stage takes everything else.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("network forward (torch)", ("torch", "TensorBase", "model/network.py", "(mc_log)")),
    ("area of applicability", ("validate/aoa.py", "sklearn/neighbors", "scipy/spatial")),
    ("feature encoding", ("model/features.py",)),
    ("tile statistics", ("predict/_engine.py",)),
    ("Zarr reads and writes", ("zarr/", "numcodecs", "fsspec")),
    ("exports (COG, PNG, STAC)", ("predict/_export.py", "rasterio", "matplotlib", "PIL",
                                  "Imaging", "pystac")),
    ("waiting on other threads", ("_thread.lock",)),
    ("run engine (tiles, records)", ("predict/_run.py", "predict/_soc.py", "_records.py")),
]  # fmt: skip


def stage_of(key: str) -> str:
    """The stage of a ``file:line(function)`` profile key."""
    for stage, patterns in STAGES:
        if any(p in key for p in patterns):
            return stage
    return "other (numpy, Python)"


def profile(bundle: Path, cube: Path, passes: int, tmp: Path) -> tuple[pd.DataFrame, float]:
    """Stage table (own time of each function summed by stage) and the profiled wall time."""
    prof = cProfile.Profile()
    out = tmp / f"profiled_T{passes}"
    start = time.perf_counter()
    prof.runcall(predict_cube, bundle, cube, out, passes=passes, workers=0, progress=False)
    wall = time.perf_counter() - start
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, func), (_, ncalls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{file}:{line}({func})"
        rows.append({"stage": stage_of(key), "function": key, "calls": ncalls,
                     "seconds": tottime})  # fmt: skip
    return pd.DataFrame(rows), wall


def unprofiled(bundle: Path, cube: Path, passes: int, tmp: Path) -> float:
    """Wall seconds of the same run without the profiler."""
    start = time.perf_counter()
    predict_cube(bundle, cube, tmp / f"plain_T{passes}", passes=passes, workers=0,
                 progress=False)  # fmt: skip
    return time.perf_counter() - start


def startup(bundle: Path, tmp: Path, repeats: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` wall seconds of whole ``socmap`` processes (start-up included)."""
    exe = str(Path(sys.executable).with_name("socmap"))
    small = make_cube(tmp / "small.zarr", 64, chunk=64)
    commands = {
        "`socmap --version`": [exe, "--version"],
        "`socmap predict` on a 64 x 64 cube (T = 32, exports on)": [
            exe, "predict", str(bundle), str(small), "--out", str(tmp / "small_run"),
            "--overwrite",
        ],
    }  # fmt: skip
    best = {}
    for what, cmd in commands.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        best[what] = min(times)
    return best


def main() -> None:
    """Profile each pass count and write the page."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--passes", default="1,32")
    args = p.parse_args()
    machine = f"{platform.machine()}, {pin_two_cores()}"
    sections = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cube = make_cube(tmp / "cube.zarr", args.size)
        bundle = make_bundle(cube, tmp / "bundle", aoa=True)
        starts = startup(bundle, tmp)
        unprofiled(bundle, cube, 1, tmp)  # warm caches and lazy imports once
        for passes in (int(v) for v in args.passes.split(",")):
            plain = unprofiled(bundle, cube, passes, tmp)
            table, wall = profile(bundle, cube, passes, tmp)
            sections.append(_section(table, passes, plain, wall, args.size))
    head = [
        "# Where `socmap predict` spends its time",
        "",
        "`benchmarks/bench_predict_profile.py` (this page is generated): the synthetic "
        f"16-band cube of `bench_predict.py`, {args.size} x {args.size} pixels (one tile at "
        "the default chunk), its default-size network with an area of applicability, "
        "mapped in one process (`workers=0`) with every default export on, under cProfile. "
        "Own time of each function, summed by stage; a warm-up run first, so imports are "
        "not counted.",
        "",
        f"Machine: {machine}; socmap {socmap.__version__}.",
        "",
        "## Start-up (whole processes, best of 3)",
        "",
        "| command | seconds |",
        "|---|---:|",
        *[f"| {what} | {sec:.2f} |" for what, sec in starts.items()],
        "",
    ]
    with atomic_path(DOC) as tmp_doc:
        tmp_doc.write_text("\n".join(head + sections))


def _section(table: pd.DataFrame, passes: int, plain: float, wall: float, size: int) -> str:
    total = float(table["seconds"].sum())
    stages = table.groupby("stage")["seconds"].sum().sort_values(ascending=False)
    lines = [
        f"## T = {passes}",
        "",
        f"Wall time without the profiler {plain:.2f} s ({size * size / plain / 1e3:.1f}k px/s); "
        f"with it {wall:.2f} s.",
        "",
        "| stage | seconds | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s} | {v:.3f} | {v / total:.0%} |" for s, v in stages.items()]
    lines += ["", "Top functions by own time:", "", "| function | calls | seconds |",
              "|---|---:|---:|"]  # fmt: skip
    top = table.sort_values("seconds", ascending=False).head(15)
    for _, r in top.iterrows():
        name = r["function"].replace(str(ROOT), "").replace("|", "/")
        name = name.split("site-packages/")[-1]
        lines.append(f"| `{name}` | {r['calls']} | {r['seconds']:.3f} |")
    return "\n".join([*lines, ""])


if __name__ == "__main__":
    main()

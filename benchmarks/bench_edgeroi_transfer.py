"""Edgeroi transfer benchmark: skill against n for every method, under 2 km block CV.

Builds the Edgeroi cube, then runs ``socmap benchmark transfer`` on the embedded Edgeroi
profiles (GlobalSoilMap intervals down to 100 cm) with the shipped global bundle, which was
pretrained with the Edgeroi region left out. Writes the tidy results next to
``docs/benchmarks/edgeroi_transfer.md`` and the summary into it.

Run: ``.venv/bin/python benchmarks/bench_edgeroi_transfer.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import socmap  # noqa: E402
from _common import pin_two_cores  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import embedded_data_dir  # noqa: E402
from socmap.cli import main as cli  # noqa: E402
from socmap.cube import build_cube  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _label(frame: pd.DataFrame) -> pd.Series:
    return frame["method"].where(
        frame["strategy"] == "-", frame["method"] + ":" + frame["strategy"]
    )


def paired_differences(results: pd.DataFrame) -> list[str]:
    """Markdown rows: mean ± SE of per-fold, per-depth MAE and CCC differences to ``rf``."""
    r = results[(results["fold"] != "all") & results["metric"].isin(["mae", "ccc"])].copy()
    r["label"] = _label(r)
    wide = r.pivot_table(
        index=["n", "repeat", "fold", "depth"], columns=["metric", "label"], values="value"
    )
    lines = ["| method | n | ΔMAE (g/kg) | ΔCCC |", "|---|---:|---:|---:|"]
    labels = [m for m in dict.fromkeys(r["label"]) if m != "rf"]
    for label in labels:
        for n in dict.fromkeys(r["n"]):
            cells = []
            for metric in ("mae", "ccc"):
                d = (wide[(metric, label)] - wide[(metric, "rf")]).xs(n, level="n").dropna()
                se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
                cells.append(f"{d.mean():+.3f} ± {se:.3f}")
            lines.append(f"| {label} | {n} | {cells[0]} | {cells[1]} |")
    return lines


def time_per_method(timings: pd.DataFrame) -> list[str]:
    """Markdown rows: total wall seconds per method over every size, repeat and fold."""
    timings = timings.assign(label=_label(timings))
    total = timings.groupby("label", sort=False)["seconds"].sum()
    lines = ["| method | wall seconds, every size and repeat |", "|---|---:|"]
    lines += [f"| {label} | {sec:.0f} |" for label, sec in total.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--sizes", default="20,50,100,all")
    parser.add_argument(
        "--methods",
        default="rf,stacked,global,freeze-encoders,l2sp,instances,auto",
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/benchmarks/edgeroi_transfer")
    args = parser.parse_args()
    pinning = pin_two_cores()
    bundle = embedded_data_dir() / "bundles" / "global_gsm"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cube = build_cube("edgeroi", None, Path(tmp) / "edgeroi.zarr", progress=False)
        command = [
            "benchmark", "transfer", "--format", "edgeroi", "--cube", str(cube),
            "--bundle", str(bundle), "--out", str(args.out), "--block-size", "2000",
            "--folds", str(args.folds), "--sizes", args.sizes, "--repeats", str(args.repeats),
            "--methods", args.methods, "--max-depth", "100", "--jobs", str(args.jobs),
            "--seed", "0",
        ]  # fmt: skip
        try:
            cli(command)
        except SystemExit as exc:
            if exc.code:
                raise
    wall = time.perf_counter() - start
    summary = (args.out / "summary.md").read_text()
    shown = " ".join(c if c != str(cube) else "edgeroi.zarr" for c in command)
    shown = shown.replace(str(bundle), "src/socmap/_data/bundles/global_gsm")
    shown = shown.replace(str(args.out), "docs/benchmarks/edgeroi_transfer")
    text = "\n".join(
        [
            "# Edgeroi transfer benchmark",
            "",
            "`benchmarks/bench_edgeroi_transfer.py` builds the Edgeroi cube "
            "(`socmap cube build edgeroi --out edgeroi.zarr`) and runs",
            "",
            "```bash",
            f"socmap {shown}",
            "```",
            "",
            f"Machine: {platform.machine()}, {pinning}, socmap {socmap.__version__}. "
            f"Wall time, cube build included: **{wall / 60:.1f} min**.",
            "",
            "Protocol: 359 Edgeroi profiles harmonised to 0-5, 5-15, 15-30, 30-60 and 60-100 cm; "
            f"{args.folds}-fold spatial block CV with 2 km blocks, profiles whole; for each fold, "
            "size n and repeat, every method trains on the same n profiles drawn from the other "
            "folds and predicts the whole held-out fold. The global bundle was pretrained with "
            "the Edgeroi box left out (no global profile falls inside it). Metrics pool every "
            "depth interval (SOC in g/kg), averaged over repeats; PICP90 is the coverage of "
            "conformally calibrated 90 % intervals (each fold calibrated on the other folds). "
            "ΔMAE % and ΔCCC % are relative to the regional-only Random Forest (`rf`, 500 "
            "trees): negative ΔMAE and positive ΔCCC favour the method.",
            "",
            "Methods: `rf` regional covariates + depth; `stacked` the same plus the global "
            "model's prediction; `global` the pretrained network as is; `finetune:<strategy>` "
            "the pretrained network fine-tuned with the region's covariates as a new "
            "zero-initialised group (continuous bands through a new encoder, categorical "
            "geology and land use through new embeddings): `freeze-encoders`, `l2sp` (every "
            "weight trains, penalty 1e-3 towards the pretrained weights), `instances` (plus as "
            "many of the most similar global profiles as there are regional training profiles) "
            "and `auto` (freeze-encoders, head or l2sp, chosen by 2-fold inner spatial CV on "
            "the training profiles only). `full`, `head` and `depthwise` are left out of this "
            "timed run to keep it under 20 minutes on 2 cores (`--methods` adds them).",
            "",
            summary,
            "## Paired differences against the Random Forest",
            "",
            "Per fold, depth interval and repeat, the method's MAE and CCC minus the forest's on "
            "the same held-out rows; mean ± standard error over those pairs (folds and depths "
            "are not independent, so read the SE as a rough scale).",
            "",
            *paired_differences(pd.read_csv(args.out / "results.csv")),
            "",
            "## Time per method",
            "",
            *time_per_method(pd.read_csv(args.out / "timings.csv")),
            "",
            "Per-fold, per-depth rows: `edgeroi_transfer/results.csv`; timings: "
            "`edgeroi_transfer/timings.csv`; the figure: `edgeroi_transfer/skill_vs_n.png`.",
            "",
        ]
    )
    with atomic_path(ROOT / "docs/benchmarks/edgeroi_transfer.md") as tmp_md:
        tmp_md.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

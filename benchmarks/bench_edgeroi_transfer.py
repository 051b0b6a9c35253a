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

import pandas as pd  # noqa: E402

import socmap  # noqa: E402
from _common import paired_differences, pin_two_cores  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import embedded_data_dir  # noqa: E402
from socmap.cli import main as cli  # noqa: E402
from socmap.cube import build_cube  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _label(frame: pd.DataFrame) -> pd.Series:
    return frame["method"].where(
        frame["strategy"] == "-", frame["method"] + ":" + frame["strategy"]
    )


def paired_table(results: pd.DataFrame) -> list[str]:
    """Markdown rows: mean ± SE of per-fold, per-depth MAE and CCC differences to both forests."""
    pairs = {ref: paired_differences(results, ref) for ref in ("rf", "rf-log")}
    lines = [
        "| method | n | ΔMAE vs rf (g/kg) | ΔCCC vs rf | ΔMAE vs rf-log (g/kg) | ΔCCC vs rf-log |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    labels = dict.fromkeys(pairs["rf"]["label"])
    for label in labels:
        for n in dict.fromkeys(pairs["rf"]["n"]):
            cells = []
            for ref, table in pairs.items():
                d = table[(table["label"] == label) & (table["n"] == n)].set_index("metric")
                for metric in ("mae", "ccc"):
                    cells.append(
                        "-" if label == ref or metric not in d.index
                        else f"{d.loc[metric, 'mean']:+.3f} ± {d.loc[metric, 'se']:.3f}"
                    )  # fmt: skip
            lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
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
        default="rf,rf-log,stacked,global,global-gbm,freeze-encoders,prior-residual,"
        "recalibrate,blend,auto",
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
            "--bundle", str(bundle), "--out", str(args.out), "--block-size", "2km",
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
            "ΔMAE % and ΔCCC % are relative to the regional-only Random Forest on raw SOC "
            "(`rf`, R ranger's defaults: 500 trees, mtry = floor(sqrt(p)), min.node.size 5), "
            "the forest mappers run: negative ΔMAE and positive ΔCCC favour the method.",
            "",
            "Methods (`socmap.model.transfer.transfer_methods`): `rf` and `rf-log` (the "
            "forest on raw and on log1p SOC, regional covariates + depth); `stacked` (log "
            "forest plus the global prediction); `global` (the pretrained network as is); "
            "`global-gbm` (gradient boosting on the global table, Edgeroi left out); "
            "`finetune:freeze-encoders` (the network fine-tuned with the regional covariates "
            "as a new zero-initialised group); `prior-residual` (the global prediction as an "
            "offset, a shrunk level correction and a residual forest shrunk by inner spatial "
            "CV); `recalibrate` (ridge a + b x prior, shrunk to a=0, b=1); `blend` (the "
            "fine-tuned network and rf, weighted by inner CV); `auto` (rf, rf-log, "
            "prior-residual or recalibrate by 5-fold inner spatial CV on the training profiles "
            "only, prior-residual kept unless beaten by more than one standard error).",
            "",
            summary,
            "## Paired differences against the two forests",
            "",
            "Per fold, depth interval and repeat, the method's MAE and CCC minus the forest's on "
            "the same held-out rows; mean ± standard error over those pairs (folds and depths "
            "are not independent, so read the SE as a rough scale).",
            "",
            *paired_table(pd.read_csv(args.out / "results.csv")),
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

"""Benchmark and reproduce the default global bundle: 10-fold 5-degree block CV + final fit.

Runs :func:`socmap.model.pretrain.pretrain` with the defaults of ``socmap pretrain`` (Edgeroi
left out, seed 0) on two pinned cores, writes the bundle that socmap ships, and records the CV
table, calibration and timings in ``docs/benchmarks/pretrain.md``.

Run: ``.venv/bin/python benchmarks/bench_pretrain.py [--out PATH] [--folds 10]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import torch  # noqa: E402

import socmap  # noqa: E402
from _common import pin_two_cores  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import embedded_data_dir  # noqa: E402
from socmap.model.bundle import load_bundle  # noqa: E402
from socmap.model.pretrain import DEFAULT_PRETRAIN, pretrain, region_bbox_lonlat  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = embedded_data_dir() / "bundles" / "global_gsm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--report", type=Path, default=ROOT / "docs/benchmarks/pretrain.md")
    parser.add_argument("--jobs", type=int, default=2, help="CV folds fitted at once")
    args = parser.parse_args()
    pinning = pin_two_cores()
    torch.set_num_threads(2)
    bbox = region_bbox_lonlat("edgeroi")
    start = time.perf_counter()
    result = pretrain(
        args.out, folds=args.folds, exclude_bbox=bbox, seed=0, n_jobs=args.jobs, progress=False
    )
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert result.cv is not None
    summary = result.cv.summary(("mae", "rmse", "me", "r2", "ccc"))
    n = result.cv.metrics[result.cv.metrics["metric"] == "mae"].set_index("depth")["n"]
    m = result.cv.metrics.set_index(["depth", "metric"])["value"]
    s = result.seconds
    lines = [
        "# Global pretraining benchmark",
        "",
        "`benchmarks/bench_pretrain.py`: the default global bundle "
        f"(`{args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}`), "
        "reproduced by",
        "",
        "```bash",
        "socmap pretrain --out src/socmap/_data/bundles/global_gsm \\",
        f"    --exclude-region edgeroi --jobs {args.jobs} --seed 0",
        "```",
        "",
        f"Machine: {platform.machine()}, {pinning}, torch {torch.__version__}; the CV runs "
        f"{args.jobs} folds at once, one thread each, and the final fit uses 2 threads; "
        f"socmap {socmap.__version__}. Training settings: {DEFAULT_PRETRAIN}, Adam lr 1e-3, "
        "Gaussian NLL on log1p(SOC), early stopping on a 20 % spatial split (5° blocks) of the "
        "training rows only.",
        "",
        "## Data",
        "",
        "Embedded global table harmonised to GlobalSoilMap depths: "
        f"{result.counts['profiles_read']} profiles read, "
        f"{result.counts.get('excluded_by_bbox', 0)} inside the Edgeroi box "
        f"{tuple(round(v, 3) for v in bbox)} left out, {result.counts['rows_with_target']} "
        f"profile x interval samples with SOC (of {result.counts['rows']} rows; the rest are "
        "intervals below the deepest horizon or profiles the spline left out, counted not used).",
        "",
        "## Timings",
        "",
        "| step | seconds |",
        "|---|---:|",
        f"| training table (harmonise + join covariates) | {s['table']:.1f} |",
        f"| {args.folds}-fold spatial CV (fits + 32-pass MC prediction, AOA) | {s['cv']:.1f} |",
        f"| final fit on all data ({int(s['final_epochs'])} epochs) | {s['final_fit']:.1f} |",
        f"| **total** | **{wall:.1f}** |",
        "",
        f"Peak RSS: {peak_mib:.0f} MiB.",
        "",
        f"## Spatial CV ({args.folds} folds, 5° x 5° blocks, profiles whole), SOC in g/kg",
        "",
        "| depth | n | MAE | RMSE | ME | R² | CCC |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for depth, row in summary.iterrows():
        lines.append(
            f"| {depth} | {int(n[depth])} | {row['mae']:.2f} | {row['rmse']:.2f} | "
            f"{row['me']:.2f} | {row['r2']:.3f} | {row['ccc']:.3f} |"
        )
    lines += [
        "",
        "Predictions are the back-transformed MC mean of log1p(SOC) (a median-type estimate), "
        "so ME is negative where the distribution is right-skewed. Spatial CV estimates map "
        "accuracy away from the training data; it is not a design-based accuracy estimate.",
        "",
        "## Interval coverage (all depths, log1p SOC)",
        "",
        "| nominal | PICP raw | PICP calibrated | MPIW raw | MPIW calibrated |",
        "|---:|---:|---:|---:|---:|",
    ]
    for tag in ("50", "80", "90", "95"):
        lines.append(
            f"| {tag} % | {m[('all', f'picp_{tag}')]:.3f} | "
            f"{m[('all', f'calibrated_picp_{tag}')]:.3f} | {m[('all', f'mpiw_{tag}')]:.3f} | "
            f"{m[('all', f'calibrated_mpiw_{tag}')]:.3f} |"
        )
    lines += [
        "",
        "Raw: MC-dropout mean ± z x total sd (epistemic + aleatoric). Calibrated: split-conformal "
        "scaling fitted, for each fold, on the other folds' out-of-fold residuals. The bundle "
        "stores a calibration fitted on all out-of-fold residuals, per depth interval.",
        "",
    ]
    folds = result.cv.folds
    assert folds is not None
    aoa = load_bundle(result.bundle).aoa
    assert aoa is not None
    lines += [
        "## Area of applicability (Meyer & Pebesma 2021)",
        "",
        f"Covariates: {', '.join(aoa.feature_names_in_ or [])}, equally weighted. The bundle's "
        f"AOA (all {len(aoa.train_)} training sites, training DI measured to the nearest site "
        f"of another CV fold) has threshold **{aoa.threshold_:.3f}**. Per CV fold: the "
        "threshold of its training sites, and the share of its held-out sites inside it.",
        "",
        "| fold | training sites | held-out sites | AOA threshold | held-out inside AOA |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {int(f.fold)} | {int(f.n_train_sites)} | {int(f.n_test_sites)} | "
        f"{f.aoa_threshold:.3f} | {f.aoa_inside:.1%} |"
        for f in folds.itertuples(index=False)
    ]
    lines.append("")
    with atomic_path(args.report) as tmp:
        tmp.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

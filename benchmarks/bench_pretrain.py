"""Benchmark and reproduce the default global bundle: 10-fold 5-degree block CV + final fit.

Runs :func:`socmap.model.pretrain.pretrain` with the defaults of ``socmap pretrain`` (Edgeroi
left out, seed 0) on two pinned cores, writes the bundle that socmap ships, and records the CV
table, calibration and timings in ``docs/benchmarks/pretrain.md``. The gradient-boosting
baseline :class:`~socmap.model.global_gbm.GlobalGBM` runs on the same folds (same rows, same
rebalancing), pooled and per continent.

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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import socmap  # noqa: E402
from _common import pin_two_cores  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import embedded_data_dir  # noqa: E402
from socmap.datasets import global_training_table  # noqa: E402
from socmap.model.bundle import load_bundle  # noqa: E402
from socmap.model.global_gbm import GlobalGBM  # noqa: E402
from socmap.model.pretrain import (  # noqa: E402
    DEFAULT_BALANCE,
    DEFAULT_NETWORK,
    DEFAULT_PRETRAIN,
    pretrain,
    region_bbox_lonlat,
)
from socmap.validate import BlockKFold, cross_validate  # noqa: E402
from socmap.validate.metrics import regression_metrics  # noqa: E402

#: Crude continents from longitude/latitude boxes (for the per-continent table only).
CONTINENTS = (
    ("Africa", (-20, -36, 55, 37)),
    ("Europe", (-25, 35, 60, 72)),
    ("Asia", (25, -11, 180, 80)),
    ("North America", (-170, 7, -30, 84)),
    ("South America", (-93, -57, -30, 13)),
    ("Oceania", (110, -50, 180, -11)),
)


def continent(x: pd.Series, y: pd.Series) -> pd.Series:
    """First continent box holding each site (``"other"`` outside all)."""
    out = pd.Series("other", index=x.index)
    for name, (a, b, c, d) in reversed(CONTINENTS):
        out[x.between(a, c) & y.between(b, d)] = name
    return out


def compare_with_gbm(
    oof: pd.DataFrame, bbox: tuple[float, ...], folds: int
) -> tuple[list[str], float]:
    """CV the gradient-boosting baseline on the network's folds; Markdown rows, seconds."""
    table = global_training_table(exclude_bbox=bbox).table  # type: ignore[arg-type]
    table = table.loc[table["soc_g_kg"].notna()].reset_index(drop=True)
    start = time.perf_counter()
    gbm = GlobalGBM(table=None, random_state=0, **DEFAULT_BALANCE)
    res = cross_validate(gbm, table, BlockKFold(folds, 5.0, units="degrees", random_state=0),
                         progress=False)  # fmt: skip
    seconds = time.perf_counter() - start
    net = oof.set_index(["site_id", "top_cm"])
    g = res.oof.set_index(["site_id", "top_cm"]).reindex(net.index)
    assert (g["fold"] == net["fold"]).all(), "the baseline must use the network's folds"
    groups = continent(net["x"], net["y"]).to_numpy()
    lines = [
        "| sites | samples | network MAE | global-gbm MAE | network CCC | global-gbm CCC |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ["all", *[c for c, _ in CONTINENTS]]:
        k = np.ones(len(net), bool) if name == "all" else groups == name
        if k.sum() < 10:
            continue
        a = regression_metrics(net["obs_g_kg"][k], net["pred_g_kg"][k])
        b = regression_metrics(net["obs_g_kg"][k], g["pred_g_kg"][k])
        lines.append(
            f"| {name} | {int(k.sum())} | {a['mae']:.2f} | {b['mae']:.2f} | {a['ccc']:.3f} | "
            f"{b['ccc']:.3f} |"
        )
    return lines, seconds


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
        f"socmap {socmap.__version__}. Network overrides: {DEFAULT_NETWORK} (head dropout). "
        f"Training settings: {DEFAULT_PRETRAIN}, Adam lr 1e-3, "
        "Gaussian NLL on log1p(SOC), early stopping on a 20 % spatial split (5° blocks) of the "
        f"training rows only; rows rebalanced by {DEFAULT_BALANCE} (weight = share of the "
        "row's climate class to the power -0.5; 4 temperature x 4 precipitation classes). "
        "Trained on the GlobalSoilMap intervals, which become the bundle's depth atoms: any "
        "other interval is predicted as the thickness-weighted mean of the atoms it spans.",
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
    gbm_lines, gbm_seconds = compare_with_gbm(result.cv.oof, bbox, args.folds)
    lines += [
        "## Against a gradient-boosting global model",
        "",
        "`global-gbm` (scikit-learn HistGradientBoostingRegressor, 500 iterations, learning "
        "rate 0.05, log1p target, the same covariates, depth limits, rebalancing and "
        f"folds; {gbm_seconds:.0f} s for its CV). Continents are crude longitude/latitude "
        "boxes (`CONTINENTS` in the script). Both back-transform the predicted mean of log1p "
        "SOC with `expm1` (a median-type estimate).",
        "",
        *gbm_lines,
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

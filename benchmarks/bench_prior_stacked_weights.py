"""How ``prior-stacked`` weighs its members: the experiment behind ``PRIOR_STACKED``.

``prior-stacked`` is a fixed-weight mean, on log1p SOC, of ``prior-residual`` and
``stacked``. This script fits both (and the two forests) once per fold, training size and
repeat in the leave-region-out setting of ``bench_transfer_regions.py`` (same regions, cached
networks, spatial folds and training draws), keeps their out-of-fold predictions, and scores
every weight on a grid from them, with and without a share of the raw-target forest.
For each weight it counts the regions where the mixture has a lower MAE than both forests
and a higher CCC than both (means over repeats; the benchmark proper adds a 1-SE test).

Run::

    .venv/bin/python benchmarks/bench_prior_stacked_weights.py        # ~25 min, 8 regions

Results: ``docs/benchmarks/prior_stacked_weights/`` (out-of-fold predictions per region,
resumable region by region) and ``docs/benchmarks/prior_stacked_weights.md``.
"""

from __future__ import annotations

import argparse
import os
import time
import zlib
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _common import pin_two_cores  # noqa: E402
from bench_transfer_regions import REGIONS, region_bundle, region_table  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap._tables import markdown_table  # noqa: E402
from socmap.catalog import load_catalog  # noqa: E402
from socmap.model.methods import PRIOR_STACKED  # noqa: E402
from socmap.model.transfer import transfer_methods  # noqa: E402
from socmap.validate import BlockKFold, cross_validate  # noqa: E402
from socmap.validate.benchmark import _sampler  # noqa: E402  (the benchmark's own draws)
from socmap.validate.metrics import regression_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The eight regions of the full leave-region-out benchmark (the other two are kept unseen).
TUNING_REGIONS = (
    "andes_north", "europe_central_east", "india", "middle_east", "north_america",
    "pampas_south_brazil", "southern_africa", "west_africa_sahel",
)  # fmt: skip
#: Method -> its column of out-of-fold log1p predictions.
MEMBERS = {"rf": "rf", "rf-log": "rflog", "prior-residual": "pr", "stacked": "st"}
#: Shares of prior-residual tried (stacked has the rest): a grid, and the shipped one.
PR_WEIGHTS = tuple(
    sorted({round(0.1 * i, 1) for i in range(11)}
           | {round(PRIOR_STACKED["prior-residual"] / sum(PRIOR_STACKED.values()), 3)})
)  # fmt: skip
RF_SHARES = (0.0, 0.1, 0.2)


def region_predictions(
    name: str,
    args: argparse.Namespace,
    members: dict[str, str] = MEMBERS,
    *,
    with_sd: bool = False,
) -> pd.DataFrame:
    """Out-of-fold log1p predictions of every member, one row per (n, repeat, sample).

    ``members`` maps a method to its column; ``with_sd`` adds each method's predictive sd
    of log1p SOC as ``<column>_sd``.
    """
    bbox = tuple(float(v) for v in REGIONS[name]["bbox"])
    bundle = region_bundle(name, bbox, args.cache, args.seed)
    bands = load_catalog("global_10arcmin").band_names
    methods = transfer_methods(list(members), bundle, bands, [], block_size=args.block_size,
                               mc_passes=args.mc_passes, seed=args.seed)  # fmt: skip
    estimators = {column: methods[method] for method, column in members.items()}
    return out_of_fold(name, args, estimators, with_sd=with_sd, n_jobs=args.jobs)


def out_of_fold(
    name: str, args: argparse.Namespace, estimators: dict[str, Any], *, with_sd: bool, n_jobs: int
) -> pd.DataFrame:
    """Out-of-fold log1p predictions of ``estimators`` (column -> estimator) on a region.

    The benchmark's own spatial folds and training draws (``args``: folds, block size,
    sizes, repeats, seed), the same for every estimator, one row per (n, repeat, sample).
    """
    table = region_table(tuple(float(v) for v in REGIONS[name]["bbox"]))  # type: ignore[arg-type]
    cv = BlockKFold(args.folds, args.block_size, random_state=args.seed)
    parts = []
    for n in args.sizes:
        for r in range(args.repeats):
            pick = _sampler(n, zlib.crc32(f"{args.seed}:{r}".encode()))
            frame = None
            for column, estimator in estimators.items():
                oof = cross_validate(estimator, table, cv, train_sites=pick, n_jobs=n_jobs,
                                     progress=False).oof  # fmt: skip
                if frame is None:
                    frame = oof[["site_id", "top_cm", "fold", "obs_g_kg"]].assign(n=n, repeat=r)
                else:  # every method predicts the same rows in the same order
                    same = (oof["site_id"].to_numpy() == frame["site_id"].to_numpy()).all()
                    assert same and (oof["top_cm"].to_numpy() == frame["top_cm"]).all()
                frame[column] = oof["mean_log"].to_numpy()
                if with_sd:
                    frame[f"{column}_sd"] = oof["sd_log"].to_numpy()
            parts.append(frame)
            print(f"{name}: n = {n}, repeat {r} done", flush=True)
    return pd.concat(parts, ignore_index=True)


def all_predictions(
    args: argparse.Namespace, members: dict[str, str] = MEMBERS, *, with_sd: bool = False
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every region's out-of-fold predictions (fitted once, then read from ``args.out``).

    Returns the predictions with a ``region`` column, and each region's fit seconds (kept
    beside its predictions; NaN where a region's file predates them).
    """
    args.out.mkdir(parents=True, exist_ok=True)
    frames, seconds = [], {}
    for name in args.regions.split(","):
        path = args.out / f"{name}.csv.gz"
        timing = path.with_name(f"{name}.seconds")  # the fit's wall time, kept with its output
        if not path.exists():
            start = time.perf_counter()
            with atomic_path(path) as tmp:
                preds = region_predictions(name, args, members, with_sd=with_sd)
                preds.to_csv(tmp, index=False, compression="gzip")
            timing.write_text(f"{time.perf_counter() - start:.1f}\n")
        frames.append(pd.read_csv(path).assign(region=name))
        seconds[name] = float(timing.read_text()) if timing.exists() else float("nan")
    return pd.concat(frames, ignore_index=True), seconds


def score(preds: pd.DataFrame) -> pd.DataFrame:
    """MAE and CCC (g/kg) of the forests and of every mixture, per region, n and repeat."""
    rows = []
    # (prior-residual, stacked, raw forest) weights; rf-log is its own column
    mixes: dict[str, tuple[float, float, float] | None] = {"rf": (0, 0, 1), "rf-log": None}
    for w in PR_WEIGHTS:
        for c in RF_SHARES:
            mixes[f"{w:g}/{c:g}"] = (w * (1 - c), (1 - w) * (1 - c), c)
    for (region, n, r), g in preds.groupby(["region", "n", "repeat"]):
        obs = g["obs_g_kg"].to_numpy()
        for label, mix in mixes.items():
            log = (
                g["rflog"]
                if mix is None
                else mix[0] * g["pr"] + mix[1] * g["st"] + mix[2] * g["rf"]
            )
            s = regression_metrics(obs, np.expm1(log.to_numpy()))
            rows.append({"region": region, "n": n, "repeat": r, "mix": label,
                         "mae": s["mae"], "ccc": s["ccc"]})  # fmt: skip
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Per mixture: regions beating both forests at each n, and the mean ΔMAE % vs rf-log."""
    mean = scores.groupby(["region", "n", "mix"])[["mae", "ccc"]].mean()
    out = []
    for label in scores["mix"].unique():
        if label in ("rf", "rf-log"):
            continue
        w, c = (float(v) for v in label.split("/"))
        row = {"prior-residual share": w, "raw rf share": c}
        delta = []
        for n in sorted(scores["n"].unique()):
            wins = 0
            for region in sorted(scores["region"].unique()):
                t = mean.loc[(region, n)]
                wins += bool(
                    t.loc[label, "mae"] < min(t.loc["rf", "mae"], t.loc["rf-log", "mae"])
                    and t.loc[label, "ccc"] > max(t.loc["rf", "ccc"], t.loc["rf-log", "ccc"])
                )
                delta.append(100 * (t.loc[label, "mae"] / t.loc["rf-log", "mae"] - 1))
            row[f"regions beating both, n = {n}"] = wins
        row["ΔMAE % vs rf-log"] = round(float(np.mean(delta)), 2)
        out.append(row)
    table = pd.DataFrame(out)
    wins = [c for c in table.columns if c.startswith("regions")]
    return table.sort_values(
        [*wins, "ΔMAE % vs rf-log"], ascending=[False] * len(wins) + [True]
    ).reset_index(drop=True)


def study_arguments(doc: str | None, out: str, regions: str) -> argparse.Namespace:
    """The command line shared by the out-of-fold studies (``out``: their folder's name)."""
    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    p.add_argument("--regions", default=regions)
    p.add_argument("--sizes", default="20,50")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--block-size", default="0.5deg")
    p.add_argument("--mc-passes", type=int, default=16)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=ROOT / ".bench_cache" / "transfer_regions")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / out)
    args = p.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


def main() -> None:
    """Fit the members region by region (resumable), then score the weights."""
    args = study_arguments(__doc__, "prior_stacked_weights", ",".join(TUNING_REGIONS))
    machine = pin_two_cores()
    preds, seconds = all_predictions(args)
    scores = score(preds)
    table = summarise(scores)
    shipped = PRIOR_STACKED["prior-residual"] / sum(PRIOR_STACKED.values())
    lines = [
        "# prior-stacked: how its two members are weighed",
        "",
        "`benchmarks/bench_prior_stacked_weights.py` (this page is generated). Out-of-fold "
        "predictions of `prior-residual`, `stacked` and both forests in the leave-region-out "
        f"setting of [transfer_regions.md](transfer_regions.md): regions {args.regions}; "
        f"n = {', '.join(map(str, args.sizes))}; {args.repeats} repeats of {args.folds}-fold "
        f"spatial CV ({args.block_size} blocks), the benchmark's own training draws. A mixture "
        "is `share * prior-residual + (1 - share) * stacked` on log1p SOC, with a share of "
        "the raw-target forest's log1p mean taken off both when that is above 0. A region "
        "counts when the mixture's mean MAE over repeats is below both forests' and its "
        "mean CCC above both (no SE test here; the benchmark has one).",
        "",
        f"The shipped weights: prior-residual {shipped:.3f}, stacked {1 - shipped:.3f} "
        "(`socmap.model.methods.PRIOR_STACKED`). Machine: "
        f"{machine}; fitting the members took {sum(seconds.values()) / 60:.1f} min in all "
        "(each region's seconds are kept beside its predictions; a region on disk is read, "
        "not refitted).",
        "",
        markdown_table(table),
        "",
    ]
    doc = args.out.with_suffix(".md")
    with atomic_path(doc) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()

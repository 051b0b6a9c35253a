"""Which point prediction to map: the median of the log-normal, its mean, or between.

socmap predicts log1p(SOC) with a mean ``m`` and an sd ``s``; its cross-validation scores
``expm1(m)``, the median if log1p SOC is normal (a map's ``q50`` layer; its ``mean`` layer is
the log-normal mean). The median is what MAE rewards; the mean ``expm1(m + s²/2)`` is
unbiased and spreads the predictions as the truth does, which CCC rewards. This script fits
``prior-stacked`` and both forests once per fold, training size and repeat in the
leave-region-out setting of ``bench_transfer_regions.py`` (same regions, cached networks,
spatial folds and training draws), keeps their out-of-fold means and sds, and scores
``expm1(m + lam * s²/2)`` for ``lam`` on a grid against the two forests as users run them
(their own median back-transform). It counts the regions where ``prior-stacked`` has a lower
MAE than both forests and a higher CCC than both, by the benchmark's paired 1-SE rule and on
means over repeats, separately for the regions that chose ``prior-stacked``'s weights and for
the two that took no part.

Run::

    .venv/bin/python benchmarks/bench_point_prediction.py        # ~30 min, 10 regions

Results: ``docs/benchmarks/point_prediction/`` (out-of-fold predictions per region,
resumable region by region) and ``docs/benchmarks/point_prediction.md``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _common import beats_beyond_se, paired_differences, pin_two_cores  # noqa: E402
from bench_prior_stacked_weights import (  # noqa: E402
    TUNING_REGIONS,
    all_predictions,
    study_arguments,
)
from bench_transfer_regions import REGIONS  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap._tables import markdown_table  # noqa: E402
from socmap.validate.metrics import regression_metrics  # noqa: E402

#: Method -> its columns (``<column>`` mean and ``<column>_sd`` sd of log1p SOC).
MEMBERS = {"rf": "rf", "rf-log": "rflog", "prior-stacked": "ps"}
#: Shares of the log-normal variance correction: 0 is the median, 1 the mean.
LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def _points(g: pd.DataFrame) -> dict[str, pd.Series]:
    """log1p point predictions: the forests as users run them, then every ``lam``."""
    points = {"rf": g["rf"], "rf-log": g["rflog"]}
    for lam in LAMBDAS:
        points[f"{lam:g}"] = g["ps"] + lam * g["ps_sd"] ** 2 / 2
    return points


def score(preds: pd.DataFrame) -> pd.DataFrame:
    """MAE and CCC (g/kg) per region, n, repeat and point prediction."""
    rows = []
    for (region, n, r), g in preds.groupby(["region", "n", "repeat"]):
        obs = g["obs_g_kg"].to_numpy()
        for label, log in _points(g).items():
            s = regression_metrics(obs, np.expm1(log.to_numpy()))
            rows.append({"region": region, "n": n, "repeat": r, "point": label,
                         "mae": s["mae"], "ccc": s["ccc"]})  # fmt: skip
    return pd.DataFrame(rows)


def fold_results(preds: pd.DataFrame) -> pd.DataFrame:
    """Per fold and layer MAE and CCC, in the transfer benchmark's tidy shape.

    The benchmark's rule pairs the methods fold by fold and layer by layer (repeats
    stacked) and asks for a mean difference beyond one standard error.
    """
    rows = []
    keys = ["region", "n", "repeat", "fold", "top_cm"]
    for (region, n, r, k, top), g in preds.groupby(keys):
        obs = g["obs_g_kg"].to_numpy()
        for label, log in _points(g).items():
            s = regression_metrics(obs, np.expm1(log.to_numpy()))
            for metric in ("mae", "ccc"):
                rows.append({"region": region, "method": label, "strategy": "-", "n": n,
                             "repeat": r, "fold": k, "depth": top, "metric": metric,
                             "value": s[metric]})  # fmt: skip
    return pd.DataFrame(rows)


def paired_wins(preds: pd.DataFrame, tuning: set[str]) -> pd.DataFrame:
    """Per ``lam`` and n: the regions beating both forests beyond 1 paired SE."""
    res = fold_results(preds)
    pairs = [paired_differences(res, ref) for ref in ("rf", "rf-log")]
    regions = sorted(preds["region"].unique())
    out = []
    for lam in LAMBDAS:
        label = f"{lam:g}"
        row: dict[str, object] = {"lam": label}
        for n in sorted(preds["n"].unique()):
            wins = [r for r in regions if all(beats_beyond_se(p, r, str(n), label) for p in pairs)]
            tuned = [r for r in wins if r in tuning]
            row[f"n = {n}: tuning regions"] = f"{len(tuned)} of {len(tuning & set(regions))}"
            row[f"n = {n}: unseen"] = f"{len(wins) - len(tuned)} of {len(set(regions) - tuning)}"
            row[f"n = {n}: which"] = ", ".join(wins) or "-"
        out.append(row)
    return pd.DataFrame(out)


def _beats_both(t: pd.DataFrame, label: str) -> bool:
    forests = t.loc[["rf", "rf-log"]]
    return bool(
        t.loc[label, "mae"] < forests["mae"].min() and t.loc[label, "ccc"] > forests["ccc"].max()
    )


def summarise(scores: pd.DataFrame, tuning: set[str]) -> pd.DataFrame:
    """Per ``lam``: regions beating both forests at each n, and mean Δ% against each forest."""
    mean = scores.groupby(["region", "n", "point"])[["mae", "ccc"]].mean()
    regions = sorted(scores["region"].unique())
    out = []
    for lam in LAMBDAS:
        label = f"{lam:g}"
        row: dict[str, object] = {"lam": label}
        d_mae: dict[str, list[float]] = {"rf": [], "rf-log": []}
        d_ccc: list[float] = []
        for n in sorted(scores["n"].unique()):
            wins = {r for r in regions if _beats_both(mean.loc[(r, n)], label)}
            tuned, unseen = wins & tuning, wins - tuning
            row[f"n = {n}: tuning regions"] = f"{len(tuned)} of {len(tuning & set(regions))}"
            row[f"n = {n}: unseen"] = f"{len(unseen)} of {len(set(regions) - tuning)}"
            for r in regions:
                t = mean.loc[(r, n)]
                for forest in d_mae:
                    d_mae[forest].append(100 * (t.loc[label, "mae"] / t.loc[forest, "mae"] - 1))
                d_ccc.append(t.loc[label, "ccc"] - t.loc["rf", "ccc"])
        row["ΔMAE % vs rf"] = round(float(np.mean(d_mae["rf"])), 2)
        row["ΔMAE % vs rf-log"] = round(float(np.mean(d_mae["rf-log"])), 2)
        row["worst ΔMAE % vs rf-log"] = round(float(np.max(d_mae["rf-log"])), 2)
        row["mean ΔCCC vs rf"] = round(float(np.mean(d_ccc)), 3)
        out.append(row)
    return pd.DataFrame(out)


def per_region(scores: pd.DataFrame) -> pd.DataFrame:
    """MAE and CCC per region and n: both forests, the median (lam 0) and the mean (lam 1)."""
    mean = scores.groupby(["region", "n", "point"])[["mae", "ccc"]].mean().reset_index()
    keep = mean[mean["point"].isin(["rf", "rf-log", "0", "0.5", "1"])]
    wide = keep.pivot_table(index=["region", "n"], columns="point", values=["mae", "ccc"])
    wide.columns = [f"{metric} {point}" for metric, point in wide.columns]
    order = [f"{m} {p}" for m in ("mae", "ccc") for p in ("rf", "rf-log", "0", "0.5", "1")]
    return wide[order].round(3).reset_index()


def _verdict(wins: pd.DataFrame, sizes: list[int], regions: int) -> list[str]:
    """One computed line per n: the median's count and the ``lam`` with the most regions."""
    lines = []
    for n in sizes:
        count = wins[[f"n = {n}: tuning regions", f"n = {n}: unseen"]].map(
            lambda cell: int(str(cell).split(" of ")[0])
        ).sum(axis=1)  # fmt: skip
        best = int(count.idxmax())  # the first (smallest) lam among ties
        lines.append(
            f"- n = {n}: the median (lam = 0) beats both forests in {count.iloc[0]} of "
            f"{regions} regions; the most, {count.iloc[best]}, at lam = {wins['lam'].iloc[best]}."
        )
    return [*lines, ""]


def main() -> None:
    """Fit the methods region by region (resumable), then score the point predictions."""
    args = study_arguments(__doc__, "point_prediction", ",".join(REGIONS))
    machine = pin_two_cores()
    preds, seconds = all_predictions(args, MEMBERS, with_sd=True)
    scores = score(preds)
    tuning = set(TUNING_REGIONS)
    lines = [
        "# Median or mean: which point prediction to map",
        "",
        "`benchmarks/bench_point_prediction.py` (this page is generated). Out-of-fold "
        "predictions of `prior-stacked` and both forests in the leave-region-out setting of "
        f"[transfer_regions.md](transfer_regions.md): regions {args.regions}; n = "
        f"{', '.join(map(str, args.sizes))}; {args.repeats} repeats of {args.folds}-fold "
        f"spatial CV ({args.block_size} blocks), the benchmark's own training draws. "
        "`prior-stacked`'s point prediction is `expm1(m + lam * s^2 / 2)` on its mean `m` "
        "and sd `s` of log1p SOC: `lam = 0` is the median socmap maps, `lam = 1` the "
        "log-normal mean. The forests keep their own back-transform (`rf` is fitted on SOC, "
        "`rf-log` maps its median). A region counts when `prior-stacked`'s MAE is below both "
        "forests' and its CCC above both: first by the benchmark's paired rule, then on "
        "means over repeats alone. Tuning regions are the eight that chose `prior-stacked`'s "
        f"weights ({', '.join(sorted(tuning))}); the unseen ones took no part in any choice. "
        "Δ% are means over regions and n of per-region ratios.",
        "",
        f"Machine: {machine}; fitting took {sum(seconds.values()) / 60:.1f} min in all (each "
        "region's seconds are kept beside its predictions; a region on disk is read, not "
        "refitted).",
        "",
        "## The benchmark's rule: beyond one paired standard error",
        "",
        f"Differences against each forest fold by fold and layer by layer ({args.folds} folds "
        f"x 2 layers x {args.repeats} repeats), as in `bench_transfer_regions.py`; a region "
        "counts when "
        "`prior-stacked`'s MAE is lower and its CCC higher than both forests', each by more "
        "than one standard error of the paired differences.",
        "",
        markdown_table(wins := paired_wins(preds, tuning)),
        "",
        *_verdict(wins, sorted(preds["n"].unique()), preds["region"].nunique()),
        "## On means over repeats (no SE test)",
        "",
        markdown_table(summarise(scores, tuning)),
        "",
        "## Per region (means over repeats; `0` median, `0.5` half the correction, `1` mean)",
        "",
        markdown_table(per_region(scores)),
        "",
    ]
    doc = args.out.with_suffix(".md")
    with atomic_path(doc) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()

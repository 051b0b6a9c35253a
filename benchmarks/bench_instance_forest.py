"""Instance transfer for the regional forest: borrow similar global profiles (issue 14).

A regional forest trained on 20 or 50 cores learns little of how SOC follows the
covariates. Instance transfer (Shen et al. 2022 for spectra; the same idea for maps) adds
the ``k`` global profiles most similar in covariate space to the training rows. This
study fits such forests in the leave-region-out setting of ``bench_transfer_regions.py``
(the region's box is left out of what is borrowed; the same regions, spatial folds and
training draws as ``bench_point_prediction.py``) and compares them, and their mean with
``prior-stacked``, with both forests as users run them, by the benchmark's paired rule.

Variants: a log1p forest with ``k`` = n and 4n borrowed profiles, and a raw-target forest
with 4n (the raw forest keeps CCC, the log one MAE). Distances are Euclidean on the 10'
covariates standardised over the borrowable profiles, from each borrowable profile to
its nearest training profile.

Run::

    .venv/bin/python benchmarks/bench_instance_forest.py      # ~30 min, 10 regions

Needs ``docs/benchmarks/point_prediction/`` (``bench_point_prediction.py``: the forests' and
``prior-stacked``'s predictions on the same draws); writes
``docs/benchmarks/instance_forest/`` (out-of-fold predictions per region, resumable) and
``docs/benchmarks/instance_forest.md``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from _common import pin_two_cores  # noqa: E402
from bench_prior_stacked_weights import (  # noqa: E402
    TUNING_REGIONS,
    out_of_fold,
    study_arguments,
)
from bench_transfer_regions import DEPTHS, REGIONS, region_bundle  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap._tables import markdown_table  # noqa: E402
from socmap.catalog import load_catalog  # noqa: E402
from socmap.datasets import global_training_table  # noqa: E402
from socmap.model.baselines import RegionalForest  # noqa: E402
from socmap.model.transfer import transfer_methods  # noqa: E402
from socmap.validate.metrics import regression_metrics  # noqa: E402

#: Column -> (target transform of the forest, borrowed profiles per training profile).
VARIANTS = {"ilog1": ("log1p", 1.0), "ilog4": ("log1p", 4.0), "iraw4": ("identity", 4.0)}
#: Columns of bench_point_prediction.py's predictions that this study scores beside them.
REFERENCE = {"rf": "rf", "rflog": "rf-log", "ps": "prior-stacked"}


class InstanceForest(RegionalForest):
    """A :class:`RegionalForest` trained on its rows plus the most similar ``pool`` profiles.

    ``k_factor`` borrowed profiles per training profile; the pool holds the forest's bands,
    depths and target (never the held-out region).
    """

    def __init__(
        self,
        bands: Sequence[str] | None = None,
        n_estimators: int = 500,
        min_samples_leaf: int = 2,
        max_features: float | str = 1 / 3,
        target: str = "soc_g_kg",
        random_state: int | None = None,
        n_jobs: int | None = None,
        target_transform: str = "log1p",
        min_samples_split: int = 2,
        pool: pd.DataFrame | None = None,
        k_factor: float = 1.0,
    ) -> None:
        super().__init__(
            bands, n_estimators, min_samples_leaf, max_features, target, random_state,
            n_jobs, target_transform, min_samples_split,
        )  # fmt: skip
        self.pool = pool
        self.k_factor = k_factor

    def fit(self, X: pd.DataFrame, y: Any = None) -> InstanceForest:
        """Borrow ``k_factor`` pool profiles per training profile, then fit the forest."""
        from scipy.spatial import cKDTree

        assert self.pool is not None and self.bands
        bands = list(self.bands)
        pool_sites = self.pool.drop_duplicates("site_id")
        mean = pool_sites[bands].mean()
        sd = pool_sites[bands].std().replace(0, 1)

        def z(t: pd.DataFrame) -> np.ndarray:
            return np.nan_to_num(((t[bands] - mean) / sd).to_numpy(float))

        train_sites = X.loc[X[self.target].notna()].drop_duplicates("site_id")
        k = round(self.k_factor * len(train_sites))
        dist, _ = cKDTree(z(train_sites)).query(z(pool_sites))
        chosen = pool_sites["site_id"].to_numpy()[np.argsort(dist, kind="stable")[:k]]
        borrowed = self.pool[self.pool["site_id"].isin(chosen)]
        return super().fit(pd.concat([X, borrowed], ignore_index=True))  # type: ignore[return-value]


def region_predictions(name: str, args: Any) -> pd.DataFrame:
    """Out-of-fold log1p predictions of every variant, one row per (n, repeat, sample)."""
    bbox = tuple(float(v) for v in REGIONS[name]["bbox"])
    glob = global_training_table(DEPTHS).table
    outside = ~(glob["x"].between(bbox[0], bbox[2]) & glob["y"].between(bbox[1], bbox[3]))
    bands = load_catalog("global_10arcmin").band_names
    columns = ["site_id", "x", "y", "top_cm", "bottom_cm", "soc_g_kg", *bands]
    pool = glob.loc[outside & glob["soc_g_kg"].notna(), columns].reset_index(drop=True)
    bundle = region_bundle(name, bbox, args.cache, args.seed)
    base = transfer_methods(["rf-log"], bundle, bands, [], block_size=args.block_size,
                            mc_passes=args.mc_passes, seed=args.seed)["rf-log"]  # fmt: skip
    params = {**base.get_params(), "n_jobs": 2}  # the folds one after another: the pool is big
    estimators = {
        column: InstanceForest(
            **{**params, "target_transform": target}, pool=pool, k_factor=k_factor
        )
        for column, (target, k_factor) in VARIANTS.items()
    }
    return out_of_fold(name, args, estimators, with_sd=False, n_jobs=1)


def all_predictions(args: Any) -> tuple[pd.DataFrame, float]:
    """Every region's predictions, the point-prediction study's columns joined on."""
    args.out.mkdir(parents=True, exist_ok=True)
    frames, seconds = [], 0.0
    reference_dir = args.out.parent / "point_prediction"
    for name in args.regions.split(","):
        path = args.out / f"{name}.csv.gz"
        timing = path.with_name(f"{name}.seconds")
        if not path.exists():
            start = time.perf_counter()
            with atomic_path(path) as tmp:
                region_predictions(name, args).to_csv(tmp, index=False, compression="gzip")
            timing.write_text(f"{time.perf_counter() - start:.1f}\n")
        seconds += float(timing.read_text())
        ours = pd.read_csv(path)
        ref = pd.read_csv(reference_dir / f"{name}.csv.gz")
        keys = ["site_id", "top_cm", "n", "repeat", "fold"]
        both = ours.merge(ref[[*keys, *REFERENCE]], on=keys, validate="one_to_one")
        if len(both) != len(ours) or len(both) != len(ref):
            raise SystemExit(f"{name}: the draws differ from bench_point_prediction.py's")
        frames.append(both.assign(region=name))
    return pd.concat(frames, ignore_index=True), seconds


def _ccc(obs: np.ndarray, pred: np.ndarray) -> float:
    return float(regression_metrics(obs, pred)["ccc"])


def paired(preds: pd.DataFrame, candidates: dict[str, pd.Series]) -> pd.DataFrame:
    """Per region, n and candidate: paired MAE/CCC differences against both forests."""
    rows = []
    for (region, n), g in preds.groupby(["region", "n"]):
        diffs: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _, h in g.groupby(["repeat", "fold", "top_cm"]):
            obs = h["obs_g_kg"].to_numpy()
            metrics = {}
            logs = {"rf": h["rf"], "rflog": h["rflog"]}
            logs.update({c: s.loc[h.index] for c, s in candidates.items()})
            for label, log in logs.items():
                pred = np.expm1(log.to_numpy())
                metrics[label] = (float(np.mean(np.abs(obs - pred))), _ccc(obs, pred))
            for c in candidates:
                for ref in ("rf", "rflog"):
                    d = (metrics[c][0] - metrics[ref][0], metrics[c][1] - metrics[ref][1])
                    diffs.setdefault((c, ref), []).append(d)
        for (c, ref), d in diffs.items():
            a = np.array(d)
            se = a.std(axis=0, ddof=1) / np.sqrt(len(a))
            rows.append({"region": region, "n": n, "candidate": c, "reference": ref,
                         "dmae": a[:, 0].mean(), "dmae_se": se[0],
                         "dccc": a[:, 1].mean(), "dccc_se": se[1]})  # fmt: skip
    return pd.DataFrame(rows)


def summary(diffs: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """Regions where each candidate beats both forests beyond 1 SE, and mean differences."""
    tuning = set(TUNING_REGIONS)
    rows = []
    for (c, n), g in diffs.groupby(["candidate", "n"], sort=False):
        wins = []
        for region, h in g.groupby("region"):
            beats = (h["dmae"] < -h["dmae_se"]) & (h["dccc"] > h["dccc_se"])
            if beats.all() and len(h) == 2:
                wins.append(str(region))
        mae = {
            (r, ref): v for r, ref, v in zip(g["region"], g["reference"], g["dmae"], strict=True)
        }
        base = preds[preds["n"] == n].groupby("region")
        rel = [
            100 * mae[(r, "rflog")] / np.mean(np.abs(h["obs_g_kg"] - np.expm1(h["rflog"])))
            for r, h in base
        ]
        rows.append({
            "candidate": c, "n": n,
            "beats both (tuning regions)": f"{sum(w in tuning for w in wins)} of "
                                           f"{len(tuning & set(g['region']))}",
            "beats both (unseen)": f"{sum(w not in tuning for w in wins)} of "
                                   f"{len(set(g['region']) - tuning)}",
            "which": ", ".join(wins) or "-",
            "mean ΔMAE % vs rf-log": round(float(np.mean(rel)), 2),
            "mean ΔCCC vs rf": round(float(g.loc[g["reference"] == "rf", "dccc"].mean()), 4),
        })  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    """Fit the variants region by region (resumable), then score them."""
    args = study_arguments(__doc__, "instance_forest", ",".join(REGIONS))
    machine = pin_two_cores()
    preds, seconds = all_predictions(args)
    candidates = {
        "prior-stacked": preds["ps"],
        **{f"rf-log + {c[4:]}n instances": preds[c] for c in ("ilog1", "ilog4")},
        "rf (raw) + 4n instances": preds["iraw4"],
        "mean of prior-stacked and rf-log + 4n instances": (preds["ps"] + preds["ilog4"]) / 2,
    }
    table = summary(paired(preds, candidates), preds)
    lines = [
        "# Instance transfer for the regional forest",
        "",
        "`benchmarks/bench_instance_forest.py` (this page is generated). A regional forest "
        "trained on its n cores plus the k global profiles nearest to them in the 10' "
        "covariates (standardised; the held-out region's box is never borrowed from), in the "
        f"leave-region-out setting of [transfer_regions.md](transfer_regions.md): regions "
        f"{args.regions}; n = {', '.join(map(str, args.sizes))}; {args.repeats} repeats of "
        f"{args.folds}-fold spatial CV ({args.block_size} blocks) on the training draws of "
        "[point_prediction.md](point_prediction.md), whose `rf`, `rf-log` and `prior-stacked` "
        "predictions are scored beside them. A region counts when a candidate's MAE is lower "
        "and its CCC higher than both forests', each by more than one standard error of the "
        "paired differences (folds x layers x repeats), the rule of issue 14. Tuning regions "
        "are the eight that chose `prior-stacked`'s weights; the unseen ones took no part.",
        "",
        f"Machine: {machine}; fitting took {seconds / 60:.1f} min (each region's seconds are "
        "kept beside its predictions; a region on disk is read, not refitted).",
        "",
        markdown_table(table),
        "",
    ]
    doc = args.out.parent / "instance_forest.md"
    with atomic_path(doc, overwrite=True) as tmp:
        tmp.write_text("\n".join(lines))
    print(table.to_string())


if __name__ == "__main__":
    main()

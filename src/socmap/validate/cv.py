"""Out-of-fold spatial cross-validation of any SOC estimator.

An estimator here is anything with ``fit(table) -> self`` and
``predict_log(table) -> (mean, sd)`` of log1p(SOC g/kg): the network wrapper and the forest
baselines both qualify. :func:`cross_validate` hands each estimator only the rows of the
training folds (which it may split again for early stopping or strategy choice), predicts the
held-out fold, and collects the out-of-fold predictions. Metrics are computed per depth
interval on SOC in g/kg, and interval coverage on log1p(SOC).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.base import clone

from socmap._progress import track
from socmap.errors import ProfileValidationError
from socmap.validate.calibrate import ConformalCalibrator
from socmap.validate.metrics import DEFAULT_LEVELS, interval_metrics, regression_metrics

__all__ = ["CVResult", "SocEstimator", "cross_validate", "depth_label"]


class SocEstimator(Protocol):
    """What :func:`cross_validate` needs of an estimator."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> Any:  # pragma: no cover - protocol
        """Fit on a training table."""

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        """Return mean and sd of log1p(SOC g/kg)."""


def depth_label(table: pd.DataFrame) -> pd.Series:
    """``"0-5cm"``-style labels from ``top_cm`` and ``bottom_cm``."""
    return table["top_cm"].map("{:g}".format) + "-" + table["bottom_cm"].map("{:g}cm".format)


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions and their summaries.

    Attributes
    ----------
    oof
        One row per table row with a target: ``site_id, x, y, top_cm, bottom_cm, depth,
        fold, obs_g_kg, pred_g_kg, obs_log, mean_log, sd_log``, and per nominal level the
        raw (``lo<level>``, ``hi<level>``) and calibrated (``clo<level>``, ``chi<level>``)
        interval bounds on log1p(SOC).
    metrics
        Tidy table: ``depth, metric, value, n`` (``depth == "all"`` pools every interval).
        Regression metrics are on SOC in g/kg; ``picp_XX``/``mpiw_XX`` on log1p(SOC) for raw
        Gaussian intervals and, with ``calibrated_`` prefix, after conformal calibration
        (cross-fitted: each fold is calibrated on the other folds' residuals).
    n_rows_without_target
        Rows of the input that had no SOC value and were not used.
    folds
        One row per fold: ``fold, n_train_sites, n_test_sites`` and, with ``aoa_bands``,
        ``aoa_threshold`` (of the fold's training sites, DI measured across the other
        folds) and ``aoa_inside`` (share of the held-out sites inside that AOA).
    """

    oof: pd.DataFrame
    metrics: pd.DataFrame
    n_rows_without_target: int
    folds: pd.DataFrame | None = None

    def summary(self, metrics: Sequence[str] = ("mae", "rmse", "me", "r2", "ccc")) -> pd.DataFrame:
        """Wide table: one row per depth interval, one column per metric."""
        m = self.metrics[self.metrics["metric"].isin(metrics)]
        wide = m.pivot(index="depth", columns="metric", values="value")
        tops = self.oof.groupby("depth")["top_cm"].first()
        order = [*tops.sort_values().index, "all"]
        return wide.loc[
            [d for d in order if d in wide.index], [c for c in metrics if c in wide.columns]
        ]


def _metrics(oof: pd.DataFrame, levels: Sequence[float]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    groups = [("all", oof), *((str(d), g) for d, g in oof.groupby("depth", sort=False))]
    for depth, g in groups:
        reg = regression_metrics(g["obs_g_kg"], g["pred_g_kg"])
        n = int(reg.pop("n"))
        reg.pop("n_missing", None)
        rows += [{"depth": depth, "metric": k, "value": float(v), "n": n} for k, v in reg.items()]
        for prefix, lo_col, hi_col in (("", "lo", "hi"), ("calibrated_", "clo", "chi")):
            bounds = {lv: (g[f"{lo_col}{lv}"], g[f"{hi_col}{lv}"]) for lv in levels}
            im = interval_metrics(g["obs_log"], bounds=bounds, levels=levels)
            for level, picp, mpiw, n_int in zip(
                im["level"], im["picp"], im["mpiw"], im["n"], strict=True
            ):
                tag = f"{round(100 * float(level)):02d}"
                rows.append(
                    {"depth": depth, "metric": f"{prefix}picp_{tag}", "value": picp, "n": n_int}
                )
                rows.append(
                    {"depth": depth, "metric": f"{prefix}mpiw_{tag}", "value": mpiw, "n": n_int}
                )
    return pd.DataFrame(rows, columns=["depth", "metric", "value", "n"])


def cross_validate(
    estimator: SocEstimator | Callable[[], SocEstimator],
    table: pd.DataFrame,
    cv: Any,
    *,
    target: str = "soc_g_kg",
    levels: Sequence[float] = DEFAULT_LEVELS,
    train_sites: Callable[[int, np.ndarray], np.ndarray] | None = None,
    aoa_bands: Sequence[str] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> CVResult:
    """Cross-validate ``estimator`` with the spatial splitter ``cv``.

    Parameters
    ----------
    estimator
        An unfitted estimator (cloned per fold with :func:`sklearn.base.clone`) or a
        factory called once per fold.
    table
        Training table: ``site_id, x, y, crs, top_cm, bottom_cm``, the target, covariates.
    cv
        A splitter with ``split(X, groups=...)`` such as
        :class:`~socmap.validate.BlockKFold`; profiles are passed as groups.
    target
        Target column, SOC in g/kg.
    levels
        Nominal levels for interval coverage.
    train_sites
        ``(fold, site ids of the training folds) -> site ids to train on``: draws the
        training profiles of each fold (e.g. ``n`` of them for a skill-against-n curve).
        The held-out fold is always predicted whole.
    aoa_bands
        Continuous covariates for the area of applicability of each fold's training sites
        (:func:`~socmap.validate.aoa.site_aoa`); adds ``di`` and ``inside_aoa`` to ``oof``
        and the per-fold threshold and share inside to ``folds``.
    n_jobs
        Folds fitted at once, each in its own process (joblib/loky, one thread each);
        ``-1`` uses every core. Results do not depend on it.
    progress
        Show a progress bar over folds.

    Returns
    -------
    CVResult
        Out-of-fold predictions and per-depth metrics.

    Notes
    -----
    The estimator's ``fit`` receives only training-fold rows; the held-out rows reach it
    only through ``predict_log``. Calibration of fold ``k`` uses the out-of-fold residuals of
    the other folds only, so the calibrated coverage is itself an honest estimate.
    """
    if target not in table.columns:
        raise ProfileValidationError(f"table lacks the target column {target!r}")
    has_target = table[target].notna().to_numpy()
    data = table.loc[has_target].reset_index(drop=True)
    if data.empty:
        raise ProfileValidationError(f"no row has a {target!r} value; nothing to validate")
    splits = list(cv.split(data, groups=data["site_id"].to_numpy()))
    sites = data["site_id"].to_numpy()
    tasks = []
    for k, (train_idx, test_idx) in enumerate(splits):
        if train_sites is not None:
            chosen = train_sites(k, pd.unique(sites[train_idx]))
            train_idx = train_idx[np.isin(sites[train_idx], chosen)]
        est = (
            estimator()
            if callable(estimator) and not hasattr(estimator, "fit")
            else clone(estimator)
        )
        tasks.append((est, data.iloc[train_idx].reset_index(drop=True),
                      data.iloc[test_idx].reset_index(drop=True)))  # fmt: skip
    folds = np.full(len(data), -1)
    for k, (_, test_idx) in enumerate(splits):
        folds[test_idx] = k
    mean = np.full(len(data), np.nan)
    sd = np.full(len(data), np.nan)
    for k, (m, s) in enumerate(_run_folds(tasks, n_jobs, progress)):
        test_idx = splits[k][1]
        mean[test_idx], sd[test_idx] = m, s
    fold_table = pd.DataFrame(
        {
            "fold": range(len(tasks)),
            "n_train_sites": [t[1]["site_id"].nunique() for t in tasks],
            "n_test_sites": [t[2]["site_id"].nunique() for t in tasks],
        }
    )
    oof = pd.DataFrame(
        {
            "site_id": data["site_id"].to_numpy(),
            "x": data["x"].to_numpy(),
            "y": data["y"].to_numpy(),
            "top_cm": data["top_cm"].to_numpy(),
            "bottom_cm": data["bottom_cm"].to_numpy(),
            "depth": depth_label(data).to_numpy(),
            "fold": folds,
            "obs_g_kg": data[target].to_numpy(dtype=float),
            "obs_log": np.log1p(np.clip(data[target].to_numpy(dtype=float), 0, None)),
            "mean_log": mean,
            "sd_log": sd,
        }
    )
    oof["pred_g_kg"] = np.expm1(oof["mean_log"])
    _add_intervals(oof, levels)
    if aoa_bands:
        _add_aoa(oof, fold_table, tasks, splits, dict(zip(sites, folds, strict=True)), aoa_bands)
    return CVResult(
        oof=oof,
        metrics=_metrics(oof, levels),
        n_rows_without_target=int((~has_target).sum()),
        folds=fold_table,
    )


def _add_aoa(
    oof: pd.DataFrame,
    fold_table: pd.DataFrame,
    tasks: list[tuple[Any, pd.DataFrame, pd.DataFrame]],
    splits: list[tuple[np.ndarray, np.ndarray]],
    site_fold: dict[Any, int],
    bands: Sequence[str],
) -> None:
    """DI of every held-out row against its fold's training sites, and per-fold summaries."""
    from socmap.validate.aoa import site_aoa

    oof["di"], oof["inside_aoa"] = np.nan, False
    thresholds, inside = [], []
    for (_, train, test), (_, test_idx) in zip(tasks, splits, strict=True):
        aoa = site_aoa(train, bands, folds=site_fold)
        di = aoa.predict_di(test[list(bands)].astype(float))
        oof.loc[test_idx, "di"] = di
        with np.errstate(invalid="ignore"):
            oof.loc[test_idx, "inside_aoa"] = di <= aoa.threshold_
        test_sites = oof.loc[test_idx].drop_duplicates("site_id")
        thresholds.append(aoa.threshold_)
        inside.append(float(test_sites["inside_aoa"].mean()))
    fold_table["aoa_threshold"] = thresholds
    fold_table["aoa_inside"] = inside


def _fit_predict(
    est: SocEstimator, train: pd.DataFrame, test: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    est.fit(train)
    m, s = est.predict_log(test)
    return np.asarray(m, dtype=float), np.asarray(s, dtype=float)


def _fit_predict_one_thread(
    est: SocEstimator, train: pd.DataFrame, test: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    # loky's thread limit reaches BLAS but not torch's own pool, which a parent's
    # OMP_NUM_THREADS may have sized; two 2-thread workers on 2 cores spin against each other.
    import torch

    torch.set_num_threads(1)
    return _fit_predict(est, train, test)


def _run_folds(
    tasks: list[tuple[SocEstimator, pd.DataFrame, pd.DataFrame]], n_jobs: int, progress: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fit and predict every fold, in order; ``n_jobs != 1`` spreads them over processes."""
    if n_jobs == 1:
        it = track(tasks, "cross-validating") if progress else tasks
        return [_fit_predict(*task) for task in it]
    from joblib import Parallel, delayed

    # One thread per worker: tiny batches gain nothing from intra-op threads, and
    # several multi-threaded torch processes on few cores slow each other down badly.
    with Parallel(n_jobs=n_jobs, return_as="generator", inner_max_num_threads=1) as par:
        results = par(delayed(_fit_predict_one_thread)(*task) for task in tasks)
        it = track(results, "cross-validating", total=len(tasks)) if progress else results
        return list(it)


def _add_intervals(oof: pd.DataFrame, levels: Sequence[float]) -> None:
    """Raw Gaussian intervals, and intervals calibrated on the other folds' residuals."""
    from scipy.stats import norm

    sd = np.maximum(oof["sd_log"].to_numpy(), 1e-9)
    mean = oof["mean_log"].to_numpy()
    for lv in levels:
        z = float(norm.ppf(0.5 + lv / 2))
        oof[f"lo{lv}"], oof[f"hi{lv}"] = mean - z * sd, mean + z * sd
        oof[f"clo{lv}"], oof[f"chi{lv}"] = np.nan, np.nan
    for k in np.unique(oof["fold"]):
        test = (oof["fold"] == k).to_numpy()
        others = ~test
        if others.sum() < 2:
            continue
        cal = ConformalCalibrator().fit(oof["obs_log"][others], mean[others], sd[others])
        for lv in levels:
            lo, hi = cal.interval(mean[test], sd[test], lv)
            oof.loc[test, f"clo{lv}"], oof.loc[test, f"chi{lv}"] = lo, hi

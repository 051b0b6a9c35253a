"""Out-of-fold spatial cross-validation of any SOC estimator.

An estimator here is anything with ``fit(table) -> self`` and
``predict_log(table) -> (mean, sd)`` of log1p(SOC g/kg): the network wrapper and the forest
baselines both qualify. :func:`cross_validate` hands each estimator only the rows of the
training folds (which it may split again for early stopping or strategy choice), predicts the
held-out fold, and collects the out-of-fold predictions. Metrics are computed per depth
interval on SOC in g/kg, and interval coverage on log1p(SOC).

What each fold's fit chose (a strategy, a weight, the epochs trained, ...) is kept per fold
(:func:`fitted_attributes`, in ``CVResult.folds``). The folds may be your own
(:class:`~socmap.validate.splitters.ColumnFolds`), as may the training profiles of each fold
(``train_sites`` as a table, :func:`read_train_sets`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.base import clone

from socmap._io import read_failure
from socmap._parallel import check_n_jobs
from socmap._progress import track
from socmap.errors import ConfigError, InputNotFound, ProfileValidationError
from socmap.validate.calibrate import ConformalCalibrator
from socmap.validate.metrics import DEFAULT_LEVELS, interval_metrics, regression_metrics

__all__ = [
    "CVResult",
    "SocEstimator",
    "TrainSites",
    "check_n_jobs",
    "cross_validate",
    "depth_label",
    "fitted_attributes",
    "read_train_sets",
]

#: Training profiles per fold: a ``(fold, site ids) -> site ids`` function, a table with
#: ``fold`` and ``site_id`` columns, or a mapping ``fold -> site ids``.
TrainSites = (
    Callable[[int, np.ndarray], np.ndarray] | pd.DataFrame | Mapping[Any, Sequence[Any]] | None
)
_FOLD_COLUMNS = ("fold", "n_train_sites", "n_test_sites")
_HISTORY_FIELDS = ("best_epoch", "epochs_run", "stopped_early", "best_val_loss", "n_train", "n_val")
_MAX_TEXT = 80
_MAX_ITEMS = 32


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
        One row per fold: ``fold, n_train_sites, n_test_sites``; ``fold_id`` (the fold's own
        id) with :class:`~socmap.validate.splitters.ColumnFolds`; with ``aoa_bands``,
        ``aoa_threshold`` (of the fold's training sites, DI measured across the other
        folds) and ``aoa_inside`` (share of the held-out sites inside that AOA); then one
        column per entry of the fold's :func:`fitted_attributes` (``strategy_``,
        ``history_.best_epoch``, ``inner_mae_.full``, ...; missing where a fold's fit
        lacks it).
    fitted
        The :func:`fitted_attributes` of each fold's fit, in fold order.
    """

    oof: pd.DataFrame
    metrics: pd.DataFrame
    n_rows_without_target: int
    folds: pd.DataFrame | None = None
    fitted: tuple[dict[str, Any], ...] = ()

    def summary(self, metrics: Sequence[str] = ("mae", "rmse", "me", "r2", "ccc")) -> pd.DataFrame:
        """Wide table: one row per depth interval, one column per metric."""
        m = self.metrics[self.metrics["metric"].isin(metrics)]
        wide = m.pivot(index="depth", columns="metric", values="value")
        tops = self.oof.groupby("depth")["top_cm"].first()
        order = [*tops.sort_values().index, "all"]
        return wide.loc[
            [d for d in order if d in wide.index], [c for c in metrics if c in wide.columns]
        ]

    def coverage_line(self, level: float = 0.9) -> str:
        """One line on the coverage of the ``level`` intervals, raw and calibrated.

        A fold calibrated on ``n`` residuals has an infinite interval at ``level`` when the
        conformal rank ``ceil((n + 1) level)`` exceeds ``n``. Such an interval covers every
        observation, so its coverage of 1 says nothing: the line reports the infinite width
        and the residuals it would need instead (``metrics.csv`` keeps ``mpiw`` = inf).

        Parameters
        ----------
        level
            A nominal level of the CV (a ``picp_XX`` metric), e.g. 0.9.

        Returns
        -------
        str
        """
        tag = f"{round(100 * level):02d}"
        m = self.metrics.set_index(["depth", "metric"])["value"]
        line = f"{100 * level:g}% intervals cover {m[('all', f'picp_{tag}')]:.3f} raw"
        width = float(m[("all", f"calibrated_mpiw_{tag}")])
        if not math.isinf(width):
            return f"{line}, {m[('all', f'calibrated_picp_{tag}')]:.3f} calibrated"
        infinite = np.isinf(self.oof[f"chi{level}"].to_numpy(dtype=float))
        folds = self.oof["fold"].to_numpy()
        # each fold is calibrated on the out-of-fold residuals of the other folds
        fewest = min(int((folds != k).sum()) for k in np.unique(folds[infinite]))
        need = next(n for n in range(1, 100_000) if math.ceil(round((n + 1) * level, 9)) <= n)
        return (
            f"{line}; calibrated {100 * level:g}% intervals are infinite for "
            f"{int(infinite.sum())} of {infinite.size} rows (calibrated_mpiw_{tag} = inf in "
            f"metrics.csv): too few profiles per fold to calibrate, {fewest} calibration "
            f"residuals where the {100 * level:g}% level needs at least {need}; use more "
            f"profiles{' or fewer --folds' if len(np.unique(folds)) > 2 else ''}"
        )


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


def _scalar(value: Any) -> tuple[bool, Any]:
    """Return ``(True, JSON-able value)`` for a scalar or short string, else ``(False, None)``."""
    if value is None:
        return True, None
    if isinstance(value, bool | np.bool_):
        return True, bool(value)
    if isinstance(value, numbers.Integral):
        return True, int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        return True, v if math.isfinite(v) else None
    if isinstance(value, str):
        return len(value) <= _MAX_TEXT, value
    return False, None


def _has_field(obj: Any, name: str) -> bool:
    """Tell an instance attribute or a property (never a DataFrame column, a module's child)."""
    return name in getattr(obj, "__dict__", {}) or isinstance(
        getattr(type(obj), name, None), property
    )


def fitted_attributes(estimator: Any) -> dict[str, Any]:
    """Return a small, JSON-able record of what a fitted estimator chose.

    Every public attribute ending in ``_`` (the scikit-learn mark of a fitted attribute)
    that is a number, a bool, ``None`` or a string of at most 80 characters is kept under its
    name; a dict of at most 32 such values becomes ``name.key`` entries; an object with a
    training history (``best_epoch``, ``epochs_run``, ``stopped_early``, ``best_val_loss``,
    ``n_train``, ``n_val``, as :class:`socmap.model.train.History` has) gives
    ``name.best_epoch`` and so on. Anything else (arrays, models, tables) is left out.
    Non-finite numbers become ``None``.

    Parameters
    ----------
    estimator
        A fitted estimator.

    Returns
    -------
    dict
        Flat ``{name: value}``, sorted by name.

    Examples
    --------
    >>> class Fitted:
    ...     def __init__(self):
    ...         self.alpha = 1.0  # a parameter, not fitted: left out
    ...         self.strategy_ = "head"
    ...         self.inner_mae_ = {"full": 3.5, "head": 3.1}
    ...         self.coef_ = np.zeros(3)  # an array: left out
    >>> fitted_attributes(Fitted())
    {'inner_mae_.full': 3.5, 'inner_mae_.head': 3.1, 'strategy_': 'head'}
    """
    out: dict[str, Any] = {}
    for name, value in getattr(estimator, "__dict__", {}).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        ok, clean = _scalar(value)
        if ok:
            out[name] = clean
        elif isinstance(value, Mapping):
            items = {str(k): _scalar(v) for k, v in value.items()}
            if len(items) <= _MAX_ITEMS and all(good for good, _ in items.values()):
                out.update({f"{name}.{k}": v for k, (_, v) in items.items()})
        elif not isinstance(value, pd.DataFrame | pd.Series | np.ndarray):
            for field in _HISTORY_FIELDS:
                if _has_field(value, field):
                    ok, clean = _scalar(getattr(value, field))
                    if ok:
                        out[f"{name}.{field}"] = clean
    return dict(sorted(out.items()))


def read_train_sets(path: str | Path) -> pd.DataFrame:
    """Read a table of training profiles per fold (CSV, or Parquet by its suffix).

    Columns: ``fold`` (the fold's id: ``0 .. k-1`` for :class:`~socmap.validate.BlockKFold`,
    the id itself for :class:`~socmap.validate.splitters.ColumnFolds`), ``site_id`` (one
    training profile per row), and optionally ``repeat`` (an integer, default 0) and ``n``
    (a label of the training-set size for :func:`~socmap.validate.benchmark.
    transfer_benchmark`, e.g. ``20``). For example::

        fold,repeat,site_id
        0,0,ER001
        0,0,ER017
        1,0,ER002

    ``fold`` and ``site_id`` are read as text (leading zeros kept) and matched to the
    table's as text.

    Parameters
    ----------
    path
        The table.

    Returns
    -------
    pandas.DataFrame
        ``fold, site_id`` (text), ``repeat`` and, when given, ``n``.

    Raises
    ------
    InputNotFound
        No such file.
    ConfigError
        A missing column or value, or a ``repeat`` that is not a non-negative integer.
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(
            f"training-set table {str(p)!r} does not exist; write a CSV with columns "
            "fold,repeat,site_id"
        )
    try:  # once an empty file was an internal EmptyDataError
        if p.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(p, dtype={"fold": str, "site_id": str})
    except (ValueError, OSError) as exc:  # EmptyDataError, ParserError, UnicodeDecodeError
        reason = read_failure(exc)
        raise ConfigError(
            f"training-set table {str(p)!r} is not a readable table ({reason}); --train-sets "
            "takes a CSV with a header line fold,repeat,site_id and one row per training profile"
        ) from None
    return _check_train_sets(frame, str(p))


def _check_train_sets(frame: pd.DataFrame, name: str = "train_sites") -> pd.DataFrame:
    missing = [c for c in ("fold", "site_id") if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{name} lacks the columns {missing!r} (it has {list(frame.columns)!r}); give one "
            "row per training profile with columns fold,repeat,site_id"
        )
    cols = [c for c in ("fold", "repeat", "site_id", "n") if c in frame.columns]
    out = frame[cols].copy()
    if out.isna().any().any():
        col = str(out.columns[out.isna().any().to_numpy()][0])
        pos = int(np.flatnonzero(out[col].isna().to_numpy())[0])
        raise ConfigError(f"{name} has no {col!r} at row {pos!r}; fill it or drop the row")
    out["fold"] = out["fold"].astype(str)
    out["site_id"] = out["site_id"].astype(str)
    if "repeat" not in out.columns:
        out.insert(1, "repeat", 0)
    repeat = pd.to_numeric(out["repeat"], errors="coerce")
    if repeat.isna().any() or (repeat < 0).any() or (repeat % 1 != 0).any():
        bad = out["repeat"][repeat.isna() | (repeat < 0) | (repeat % 1 != 0)].iloc[0]
        raise ConfigError(f"{name} has repeat {bad!r}; repeats are integers 0, 1, 2, ...")
    out["repeat"] = repeat.astype(int)
    return out


#: How the refusals name the training sets: the CLI option, then the Python argument.
_TRAIN = "--train-sets (train_sites)"


def _listing(train_sites: pd.DataFrame | Mapping[Any, Sequence[Any]]) -> dict[str, list[str]]:
    """``fold id (text) -> site ids (text)`` from a train-set table or mapping."""
    if isinstance(train_sites, pd.DataFrame):
        frame = _check_train_sets(train_sites)
        for col in ("repeat", "n"):
            if col in frame.columns and frame[col].nunique() > 1:
                found = sorted(frame[col].unique().tolist(), key=str)
                raise ConfigError(
                    f"{_TRAIN} holds several values of {col!r}, {found!r}, but one CV is one "
                    f"run; pass the rows of one {col} (transfer_benchmark runs them all)"
                )
        grouped = frame.groupby("fold", sort=False)["site_id"]
        return {str(k): [str(v) for v in g] for k, g in grouped}
    return {str(k): [str(v) for v in sites] for k, sites in train_sites.items()}


def _listed_sites(
    listing: dict[str, list[str]], label: Any, train: np.ndarray, test: np.ndarray
) -> np.ndarray:
    """Return the training profiles ``listing`` names for fold ``label``, checked."""
    key = str(label)
    if key not in listing:
        raise ConfigError(
            f"{_TRAIN} lists no training profiles for fold {label!r} (it has folds "
            f"{sorted(listing)!r}); list site ids for every fold"
        )
    by_text = {str(s): s for s in train}
    chosen = list(dict.fromkeys(listing[key]))
    held_out = sorted({c for c in chosen if c in {str(s) for s in test}})
    if held_out:
        raise ConfigError(
            f"{_TRAIN} lists {len(held_out)!r} profiles of fold {label!r} as training "
            f"profiles of that same fold, e.g. {held_out[:3]!r}; a fold's held-out profiles "
            "must not train it"
        )
    unknown = [c for c in chosen if c not in by_text]
    if unknown:
        raise ConfigError(
            f"{_TRAIN} lists {len(unknown)!r} site ids for fold {label!r} that are not "
            f"profiles with a target in the table, e.g. {unknown[:3]!r}; check the ids (they "
            "are matched as text)"
        )
    return np.asarray([by_text[c] for c in chosen], dtype=object)


def cross_validate(
    estimator: SocEstimator | Callable[[], SocEstimator],
    table: pd.DataFrame,
    cv: Any,
    *,
    target: str = "soc_g_kg",
    levels: Sequence[float] = DEFAULT_LEVELS,
    train_sites: TrainSites = None,
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
        :class:`~socmap.validate.BlockKFold`, or
        :class:`~socmap.validate.splitters.ColumnFolds` for folds of your own (a column of
        ``table``); profiles are passed as groups.
    target
        Target column. The estimators read ``soc_g_kg``, so another column is copied into
        ``soc_g_kg`` of a copy of ``table`` (its own ``soc_g_kg`` is not used); it should be
        non-negative, like SOC, as the estimators model ``log1p`` of it. ``obs_g_kg`` and
        ``pred_g_kg`` and the metrics are then in the target's units.
    levels
        Nominal levels for interval coverage.
    train_sites
        The training profiles of each fold (the held-out fold is always predicted whole):

        - ``(fold, site ids of the training folds) -> site ids to train on``, e.g. ``n``
          of them for a skill-against-n curve;
        - a table with columns ``fold`` and ``site_id`` (one row per training profile; see
          :func:`read_train_sets`), or a mapping ``fold -> site ids``. ``fold`` is
          ``0 .. k-1``, or the fold's id with ``ColumnFolds``; ids are matched as text. Every
          fold must be listed, and a listed profile must be a training profile (with a
          target) of that fold, else :class:`~socmap.errors.ConfigError`.
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
        Out-of-fold predictions, per-depth metrics and, per fold, what its fit chose
        (:func:`fitted_attributes`).

    Notes
    -----
    The estimator's ``fit`` receives only training-fold rows; the held-out rows reach it
    only through ``predict_log``. Calibration of fold ``k`` uses the out-of-fold residuals of
    the other folds only, so the calibrated coverage is itself an honest estimate.
    """
    check_n_jobs(n_jobs)
    if target not in table.columns:
        raise ProfileValidationError(
            f"table lacks the target column {target!r}; name one of its numeric columns"
        )
    if not pd.api.types.is_numeric_dtype(table[target]):
        raise ProfileValidationError(
            f"target column {target!r} is not numeric (dtype {str(table[target].dtype)!r}); "
            "convert it to numbers first"
        )
    has_target = table[target].notna().to_numpy()
    data = table.loc[has_target].reset_index(drop=True)
    if data.empty:
        raise ProfileValidationError(f"no row has a {target!r} value; nothing to validate")
    if target != "soc_g_kg":
        data["soc_g_kg"] = data[target]
    splits = list(cv.split(data, groups=data["site_id"].to_numpy()))
    own_labels = hasattr(cv, "fold_labels")
    labels = list(cv.fold_labels(data)) if own_labels else list(range(len(splits)))
    listing = None if train_sites is None or callable(train_sites) else _listing(train_sites)
    sites = data["site_id"].to_numpy()
    tasks = []
    for k, (train_idx, test_idx) in enumerate(splits):
        if listing is not None:
            chosen = _listed_sites(listing, labels[k], sites[train_idx], sites[test_idx])
            train_idx = train_idx[np.isin(sites[train_idx], chosen)]
        elif callable(train_sites):
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
    fitted: list[dict[str, Any]] = []
    for k, (m, s, record) in enumerate(_run_folds(tasks, n_jobs, progress)):
        test_idx = splits[k][1]
        mean[test_idx], sd[test_idx] = m, s
        fitted.append(record)
    fold_table = pd.DataFrame(
        {
            "fold": range(len(tasks)),
            "n_train_sites": [t[1]["site_id"].nunique() for t in tasks],
            "n_test_sites": [t[2]["site_id"].nunique() for t in tasks],
        }
    )
    if own_labels:
        fold_table.insert(1, "fold_id", labels)
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
    if own_labels:
        oof.insert(7, "fold_id", pd.Series(labels).to_numpy()[folds])  # after "fold"
    oof["pred_g_kg"] = np.expm1(oof["mean_log"])
    _add_intervals(oof, levels)
    if aoa_bands:
        _add_aoa(oof, fold_table, tasks, splits, dict(zip(sites, folds, strict=True)), aoa_bands)
    fit_columns = pd.DataFrame(fitted, index=fold_table.index)
    fit_columns = fit_columns[[c for c in fit_columns.columns if c not in fold_table.columns]]
    return CVResult(
        oof=oof,
        metrics=_metrics(oof, levels),
        n_rows_without_target=int((~has_target).sum()),
        folds=pd.concat([fold_table, fit_columns], axis=1),
        fitted=tuple(fitted),
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


FoldResult = tuple[np.ndarray, np.ndarray, dict[str, Any]]


def _fit_predict(est: SocEstimator, train: pd.DataFrame, test: pd.DataFrame) -> FoldResult:
    # the record is taken in the worker: the fitted estimator itself never travels back
    est.fit(train)
    m, s = est.predict_log(test)
    return np.asarray(m, dtype=float), np.asarray(s, dtype=float), fitted_attributes(est)


def _fit_predict_one_thread(
    est: SocEstimator, train: pd.DataFrame, test: pd.DataFrame
) -> FoldResult:
    # loky's thread limit reaches BLAS but not torch's own pool, which a parent's
    # OMP_NUM_THREADS may have sized; two 2-thread workers on 2 cores spin against each other.
    import torch

    torch.set_num_threads(1)
    return _fit_predict(est, train, test)


def _run_folds(
    tasks: list[tuple[SocEstimator, pd.DataFrame, pd.DataFrame]], n_jobs: int, progress: bool
) -> list[FoldResult]:
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

"""Accuracy and interval metrics for spatial cross-validation, NaN-aware and vectorised.

Every metric flattens its inputs and drops the positions where any input is NaN (a missing
observation or a prediction outside the area of applicability); the tables report how many
pairs were used (``n``) and how many were dropped (``n_missing``), so nothing disappears
unseen. A metric with no usable pair is NaN.

Definitions (``o`` observed, ``p`` predicted, means over the ``n`` usable pairs):

* ``mae = mean(|p - o|)``, ``rmse = sqrt(mean((p - o)^2))``, ``me = mean(p - o)`` (bias;
  positive means over-prediction);
* ``r2 = 1 - SSE / SST`` with ``SSE = sum((o - p)^2)``, ``SST = sum((o - mean(o))^2)``
  (the modelling efficiency, as :func:`sklearn.metrics.r2_score`; NaN when ``SST == 0``);
* ``ccc = 2 s_op / (s_o^2 + s_p^2 + (mean(o) - mean(p))^2)``, Lin's (1989) concordance
  correlation coefficient with population (``1/n``) moments; NaN when both are constant;
* ``picp`` = share of observations inside ``[lower, upper]`` (bounds included);
  ``mpiw = mean(upper - lower)``.

References
----------
Lin, L.I.-K. (1989) A concordance correlation coefficient to evaluate reproducibility.
Biometrics 45:255-268.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm

from socmap.errors import ConfigError, ProfileValidationError

__all__ = [
    "DEFAULT_LEVELS",
    "ccc",
    "interval_metrics",
    "mae",
    "me",
    "metrics_table",
    "mpiw",
    "picp",
    "r2",
    "regression_metrics",
    "rmse",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

#: Nominal coverages at which PICP is always reported (DESIGN.md, "Uncertainty").
DEFAULT_LEVELS: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)

REGRESSION_METRICS = ("mae", "rmse", "me", "r2", "ccc")


def _valid(*arrays: ArrayLike, names: Sequence[str]) -> tuple[list[FloatArray], int]:
    """Flatten, check equal sizes and drop positions where any array is NaN."""
    flat = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    sizes = [a.size for a in flat]
    if len(set(sizes)) > 1:
        shown = dict(zip(names, sizes, strict=True))
        raise ProfileValidationError(
            f"metric inputs must have the same number of values, got sizes {shown!r}; pass "
            "aligned arrays (one value per observation)"
        )
    ok = np.ones(sizes[0] if sizes else 0, dtype=bool)
    for a in flat:
        ok &= ~np.isnan(a)
    return [a[ok] for a in flat], int((~ok).sum())


def _check_bounds(lower: FloatArray, upper: FloatArray) -> None:
    bad = lower > upper
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ProfileValidationError(
            f"interval lower bound exceeds upper bound at {int(bad.sum())!r} positions, e.g. "
            f"({float(lower[pos])!r}, {float(upper[pos])!r}); pass (lower, upper) in that order"
        )


def mae(obs: ArrayLike, pred: ArrayLike) -> float:
    """Mean absolute error, ``mean(|pred - obs|)``, over pairs with no NaN.

    Parameters
    ----------
    obs, pred
        Observed and predicted values (any shape, same size).

    Returns
    -------
    float
        The MAE (NaN when no pair is usable).

    Examples
    --------
    >>> mae([1.0, 2.0, np.nan], [2.0, 0.0, 5.0])
    1.5
    """
    (o, p), _ = _valid(obs, pred, names=("obs", "pred"))
    return float(np.mean(np.abs(p - o))) if o.size else float("nan")


def rmse(obs: ArrayLike, pred: ArrayLike) -> float:
    """Root mean squared error, ``sqrt(mean((pred - obs)^2))``, over pairs with no NaN.

    Parameters
    ----------
    obs, pred
        Observed and predicted values (any shape, same size).

    Returns
    -------
    float
        The RMSE (NaN when no pair is usable).

    Examples
    --------
    >>> rmse([0.0, 0.0], [3.0, -3.0])
    3.0
    """
    (o, p), _ = _valid(obs, pred, names=("obs", "pred"))
    return float(np.sqrt(np.mean((p - o) ** 2))) if o.size else float("nan")


def me(obs: ArrayLike, pred: ArrayLike) -> float:
    """Mean error (bias), ``mean(pred - obs)``, over pairs with no NaN.

    Parameters
    ----------
    obs, pred
        Observed and predicted values (any shape, same size).

    Returns
    -------
    float
        The mean error; positive means over-prediction (NaN when no pair is usable).

    Examples
    --------
    >>> me([1.0, 2.0], [2.0, 4.0])
    1.5
    """
    (o, p), _ = _valid(obs, pred, names=("obs", "pred"))
    return float(np.mean(p - o)) if o.size else float("nan")


def r2(obs: ArrayLike, pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SSE / SST`` (modelling efficiency).

    Parameters
    ----------
    obs, pred
        Observed and predicted values (any shape, same size).

    Returns
    -------
    float
        R² (can be negative; NaN when no pair is usable or the observations are constant).

    Examples
    --------
    >>> r2([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    0.5
    """
    (o, p), _ = _valid(obs, pred, names=("obs", "pred"))
    if o.size == 0:
        return float("nan")
    sst = float(np.sum((o - o.mean()) ** 2))
    if sst == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((o - p) ** 2)) / sst


def ccc(obs: ArrayLike, pred: ArrayLike) -> float:
    """Lin's concordance correlation coefficient, with population (``1/n``) moments.

    Parameters
    ----------
    obs, pred
        Observed and predicted values (any shape, same size).

    Returns
    -------
    float
        CCC in [-1, 1]: 1 only for perfect agreement; bias and scale shifts lower it below the
        Pearson correlation (NaN when no pair is usable or both are constant).

    Examples
    --------
    >>> ccc([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    1.0
    >>> round(ccc([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]), 4)
    0.5714
    """
    (o, p), _ = _valid(obs, pred, names=("obs", "pred"))
    if o.size == 0:
        return float("nan")
    mo, mp = o.mean(), p.mean()
    cov = float(np.mean((o - mo) * (p - mp)))
    den = float(np.var(o) + np.var(p) + (mo - mp) ** 2)
    return 2.0 * cov / den if den > 0 else float("nan")


def picp(obs: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Prediction interval coverage probability: share of ``obs`` in ``[lower, upper]``.

    Parameters
    ----------
    obs, lower, upper
        Observations and interval bounds (any shape, same size).

    Returns
    -------
    float
        PICP in [0, 1] over triples with no NaN (NaN when none is usable).

    Raises
    ------
    ProfileValidationError
        A lower bound exceeds its upper bound, or sizes differ.

    Examples
    --------
    >>> picp([1.0, 5.0, 2.0, 9.0], [0.0, 0.0, 2.0, 0.0], [2.0, 2.0, 3.0, 8.0])
    0.5
    """
    (o, lo, hi), _ = _valid(obs, lower, upper, names=("obs", "lower", "upper"))
    _check_bounds(lo, hi)
    return float(np.mean((o >= lo) & (o <= hi))) if o.size else float("nan")


def mpiw(lower: ArrayLike, upper: ArrayLike) -> float:
    """Mean prediction interval width, ``mean(upper - lower)``, over pairs with no NaN.

    Parameters
    ----------
    lower, upper
        Interval bounds (any shape, same size).

    Returns
    -------
    float
        MPIW in the units of the bounds (NaN when no pair is usable).

    Examples
    --------
    >>> mpiw([0.0, 1.0], [2.0, 5.0])
    3.0
    """
    (lo, hi), _ = _valid(lower, upper, names=("lower", "upper"))
    _check_bounds(lo, hi)
    return float(np.mean(hi - lo)) if lo.size else float("nan")


def regression_metrics(obs: ArrayLike, pred: ArrayLike) -> dict[str, float | int]:
    """All point-prediction metrics at once, with the pair counts.

    Parameters
    ----------
    obs, pred
        Observed and predicted values (any shape, same size).

    Returns
    -------
    dict
        ``mae``, ``rmse``, ``me``, ``r2``, ``ccc`` (floats), ``n`` (pairs used) and
        ``n_missing`` (pairs dropped because either value is NaN).

    Examples
    --------
    >>> m = regression_metrics([1.0, 2.0, 3.0, np.nan], [1.5, 2.0, 2.5, 1.0])
    >>> m["n"], m["n_missing"], m["mae"]
    (3, 1, 0.3333333333333333)
    """
    (o, p), dropped = _valid(obs, pred, names=("obs", "pred"))
    out: dict[str, float | int] = {
        "mae": mae(o, p),
        "rmse": rmse(o, p),
        "me": me(o, p),
        "r2": r2(o, p),
        "ccc": ccc(o, p),
        "n": int(o.size),
        "n_missing": dropped,
    }
    return out


def _check_levels(levels: Sequence[float]) -> list[float]:
    out = [float(v) for v in levels]
    bad = [v for v in out if not 0.0 < v < 1.0]
    if bad or not out:
        raise ConfigError(
            f"interval levels must lie in (0, 1), got {list(levels)!r}; pass e.g. (0.5, 0.9)"
        )
    return out


def interval_metrics(
    obs: ArrayLike,
    mean: ArrayLike | None = None,
    sd: ArrayLike | None = None,
    *,
    bounds: Mapping[float, tuple[ArrayLike, ArrayLike]] | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> pd.DataFrame:
    """PICP and MPIW at several nominal levels.

    Either Gaussian intervals ``mean ± z sd`` with ``z = Φ⁻¹((1 + level) / 2)`` (give ``mean``
    and ``sd``), or explicit bounds per level, e.g. quantile predictions or calibrated
    intervals (give ``bounds={level: (lower, upper)}``; ``levels`` is then ignored).

    Parameters
    ----------
    obs
        Observations.
    mean, sd
        Predictive mean and standard deviation (Gaussian intervals).
    bounds
        Mapping from nominal level to ``(lower, upper)`` arrays.
    levels
        Nominal coverages for the Gaussian intervals, each in (0, 1).

    Returns
    -------
    pandas.DataFrame
        One row per level: ``level``, ``picp``, ``mpiw``, ``n`` (triples used) and
        ``n_missing`` (triples dropped because any value is NaN).

    Raises
    ------
    ProfileValidationError
        Neither or both of (``mean``, ``sd``) and ``bounds`` given, negative ``sd``, a level
        outside (0, 1), or mismatched sizes.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> obs = rng.normal(size=20_000)
    >>> t = interval_metrics(obs, np.zeros_like(obs), np.ones_like(obs), levels=(0.5, 0.9))
    >>> t["picp"].round(2).tolist(), t["mpiw"].round(2).tolist()
    ([0.5, 0.9], [1.35, 3.29])

    Calibrated intervals from a :class:`~socmap.validate.ConformalCalibrator` go in as bounds:
    ``interval_metrics(obs, bounds={lv: cal.interval(mean, sd, lv) for lv in DEFAULT_LEVELS})``.
    """
    gaussian = mean is not None or sd is not None
    if gaussian == (bounds is not None) or (gaussian and (mean is None or sd is None)):
        raise ConfigError(
            "interval_metrics needs either mean= and sd= (Gaussian intervals) or bounds= "
            f"(explicit intervals), got mean={mean is not None!r}, sd={sd is not None!r}, "
            f"bounds={bounds is not None!r}; pass exactly one of the two"
        )
    rows: list[dict[str, float | int]] = []
    if bounds is not None:
        for level in _check_levels(list(bounds)):
            lo, hi = bounds[level]
            (o, lo_v, hi_v), dropped = _valid(obs, lo, hi, names=("obs", "lower", "upper"))
            rows.append(_interval_row(level, o, lo_v, hi_v, dropped))
        return pd.DataFrame(rows, columns=["level", "picp", "mpiw", "n", "n_missing"])
    assert mean is not None and sd is not None  # checked above
    (o, m, s), dropped = _valid(obs, mean, sd, names=("obs", "mean", "sd"))
    if (s < 0).any():
        pos = int(np.flatnonzero(s < 0)[0])
        raise ProfileValidationError(
            f"sd must be >= 0, got {float(s[pos])!r}; pass standard deviations, not log-variances"
        )
    for level in _check_levels(levels):
        z = float(norm.ppf(0.5 + level / 2.0))
        rows.append(_interval_row(level, o, m - z * s, m + z * s, dropped))
    return pd.DataFrame(rows, columns=["level", "picp", "mpiw", "n", "n_missing"])


def _interval_row(
    level: float, o: FloatArray, lo: FloatArray, hi: FloatArray, dropped: int
) -> dict[str, float | int]:
    return {
        "level": level,
        "picp": picp(o, lo, hi),
        "mpiw": mpiw(lo, hi),
        "n": int(o.size),
        "n_missing": dropped,
    }


def metrics_table(
    df: pd.DataFrame,
    obs: str = "obs",
    pred: str = "pred",
    by: Sequence[str] | str | None = None,
    *,
    sd: str | None = None,
    levels: Sequence[float] = DEFAULT_LEVELS,
) -> pd.DataFrame:
    """Tidy table of metrics per group: one row per group and metric.

    Parameters
    ----------
    df
        Table of out-of-fold predictions.
    obs, pred
        Column names of the observations and point predictions.
    by
        Grouping column(s), e.g. ``["fold"]``, ``["depth"]`` or ``["strategy", "depth"]``;
        ``None`` for one overall group. Missing group keys form their own group.
    sd
        Optional column of predictive standard deviations; adds ``picp_<pct>`` and
        ``mpiw_<pct>`` rows for Gaussian intervals at each of ``levels``.
    levels
        Nominal coverages for the interval metrics.

    Returns
    -------
    pandas.DataFrame
        Columns ``*by, metric, value, n``, where ``n`` counts the pairs (or triples) used.
        Each group also gets an ``n_missing`` metric row: the rows dropped for NaN.

    Raises
    ------
    ProfileValidationError
        A named column is missing.

    Examples
    --------
    >>> df = pd.DataFrame({"depth": ["0-5", "0-5", "5-15", "5-15"],
    ...                    "obs": [1.0, 2.0, 3.0, 4.0], "pred": [1.0, 3.0, 3.0, 3.0]})
    >>> t = metrics_table(df, by="depth")
    >>> print(t[t.metric == "mae"].to_string(index=False))
    depth metric  value  n
      0-5    mae    0.5  2
     5-15    mae    0.5  2
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    needed = [*keys, obs, pred, *([sd] if sd is not None else [])]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ProfileValidationError(
            f"metrics_table needs columns {missing!r}, which the table lacks (it has "
            f"{list(df.columns)!r}); pass the right obs=/pred=/by=/sd= names"
        )
    lv = _check_levels(levels) if sd is not None else []
    groups: list[tuple[tuple[Any, ...], pd.DataFrame]]
    if keys:
        groups = [
            (k if isinstance(k, tuple) else (k,), g)
            for k, g in df.groupby(keys, dropna=False, sort=True)
        ]
    else:
        groups = [((), df)]
    rows: list[dict[str, Any]] = []
    for key, g in groups:
        base = dict(zip(keys, key, strict=True))
        m = regression_metrics(g[obs].to_numpy(float), g[pred].to_numpy(float))
        n = int(m["n"])
        for name in REGRESSION_METRICS:
            rows.append({**base, "metric": name, "value": float(m[name]), "n": n})
        rows.append({**base, "metric": "n_missing", "value": float(m["n_missing"]), "n": n})
        if sd is not None:
            it = interval_metrics(
                g[obs].to_numpy(float), g[pred].to_numpy(float), g[sd].to_numpy(float), levels=lv
            )
            for rec in it.to_dict("records"):
                pct = f"{100 * float(rec['level']):g}"
                for name in ("picp", "mpiw"):
                    rows.append(
                        {**base, "metric": f"{name}_{pct}", "value": rec[name], "n": rec["n"]}
                    )
    return pd.DataFrame(rows, columns=[*keys, "metric", "value", "n"])

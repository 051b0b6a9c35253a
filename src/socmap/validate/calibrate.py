"""Conformal calibration of Gaussian-type predictive intervals from out-of-fold residuals.

Raw MC-dropout intervals ``mean ± z sd`` under-cover (74 % at a nominal 90 % in Huang et al.
2025). :class:`ConformalCalibrator` fixes the width with normalised split-conformal prediction
(Papadopoulos et al. 2008; Angelopoulos & Bates 2023): on out-of-fold spatial-CV predictions in
the model space (``log1p`` SOC) it takes the scores ``s_i = |obs_i - mean_i| / sd_i`` and, for a
level ``α``, the finite-sample conformal quantile ``q(α)`` = the ``k``-th smallest score with
``k = ceil((n + 1) α)`` (``+inf`` when ``k > n``: too few samples for that level). The
calibrated interval is ``mean ± q(α) sd``; for exchangeable data it covers a new observation
with probability at least ``α``. Back-transform the bounds with ``expm1``: a monotone map keeps
coverage.

Storage: the fitted state is the table of ``q`` on a grid of levels (``0.01 .. 0.99`` by
default) plus ``n``; other levels are interpolated linearly between grid points (and from
``q(0) = 0`` below the first), so a calibrator rebuilt by :meth:`ConformalCalibrator.from_dict`
gives exactly the same intervals as the fitted one. Levels above the top of the grid raise.

Per-group calibration (``fit(..., groups=depth_label)``) keeps one table per depth interval;
a group with fewer than ``min_group_size`` samples uses the pooled table and is listed in
``fallback_groups_``.

References
----------
Papadopoulos, H., Gammerman, A., Vovk, V. (2008) Normalized nonconformity measures for
regression conformal prediction. AIA 2008.
Angelopoulos, A.N., Bates, S. (2023) Conformal prediction: a gentle introduction. Found. Trends
Mach. Learn. 16(4):494-591.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from socmap.errors import BundleError, ConfigError, ProfileValidationError
from socmap.validate._fitted import check_fitted
from socmap.validate.aoa import nearest_neighbours

__all__ = ["DEFAULT_GRID", "ConformalCalibrator", "conformal_quantiles", "nearest_share"]

FloatArray = npt.NDArray[np.float64]

#: Levels at which the fitted quantile table is stored (0.01, 0.02, ..., 0.99).
DEFAULT_GRID: tuple[float, ...] = tuple(round(i / 100, 2) for i in range(1, 100))

_METHOD = "normalised_split_conformal"


def conformal_quantiles(
    scores: npt.ArrayLike, levels: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> FloatArray:
    """Finite-sample conformal quantiles of ``scores`` at ``levels``.

    Parameters
    ----------
    scores
        Nonconformity scores (1-D, no NaN).
    levels
        Levels in (0, 1).
    weights
        Optional weight per score (> 0): the weighted conformal quantile under covariate
        shift (Tibshirani et al. 2019), with the new point's own weight taken as the mean
        weight. Equal weights give the unweighted quantile.

    Returns
    -------
    numpy.ndarray
        The ``ceil((n + 1) level)``-th smallest score per level (weighted: the smallest score
        whose cumulative weight, over the total plus one mean weight, reaches the level),
        ``inf`` where that rank exceeds ``n``.

    Examples
    --------
    >>> conformal_quantiles([0.3, 0.1, 0.2, 0.4], [0.2, 0.5, 0.8, 0.9]).tolist()
    [0.1, 0.3, 0.4, inf]
    >>> conformal_quantiles([0.3, 0.1, 0.2, 0.4], [0.5], weights=[1, 1, 1, 1]).tolist()
    [0.3]
    >>> conformal_quantiles([0.3, 0.1, 0.2, 0.4], [0.5], weights=[1, 5, 1, 1]).tolist()
    [0.1]
    """
    raw = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(raw, kind="stable")
    s = raw[order]
    lv = np.asarray(levels, dtype=np.float64)
    n = s.size
    if weights is None:
        # round before ceil so that (n + 1) * 0.9 = 90.00000000000001 gives rank 90, not 91
        k = np.ceil(np.round((n + 1) * lv, 9)).astype(np.int64)
    else:
        w = np.asarray(weights, dtype=np.float64).ravel()[order]
        # cumulative share with one mean weight left for the new point: equal weights give
        # exactly (i + 1) / (n + 1), so the rank is the unweighted one
        share = np.round(np.cumsum(w) / (w.sum() * (n + 1) / n), 9)
        k = np.searchsorted(share, np.round(lv, 9), side="left").astype(np.int64) + 1
    out = np.full(lv.shape, np.inf)
    ok = (k >= 1) & (k <= n)
    out[ok] = s[k[ok] - 1]
    return out


def nearest_share(calibration: npt.ArrayLike, targets: npt.ArrayLike) -> FloatArray:
    """Weight of each calibration sample: the share of ``targets`` nearest to it.

    A nearest-neighbour estimate of the density ratio between the points the intervals are
    for and the calibration samples (exact Euclidean nearest neighbours, the search of the
    area of applicability, :func:`~socmap.validate.aoa.nearest_neighbours`): a
    calibration sample in a sparse corner of the targets' space counts little, one among
    many targets counts much. Every sample keeps a floor of one target, so no weight is 0.
    Use it where calibration samples are chosen to span the space (Kennard-Stone) and so
    sit more often at its edges than the points to predict.

    Parameters
    ----------
    calibration
        ``(n, p)`` features of the calibration samples.
    targets
        ``(m, p)`` features of the points to predict (unlabelled).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` weights with mean 1.

    Examples
    --------
    >>> nearest_share([[0.0], [10.0]], [[1.0], [2.0], [9.0]]).tolist()
    [1.2, 0.8]
    """
    c = np.asarray(calibration, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if c.ndim != 2 or t.ndim != 2 or c.shape[1] != t.shape[1] or len(c) == 0:
        raise ProfileValidationError(
            f"calibration and targets must be 2-D with the same number of columns, got shapes "
            f"{c.shape!r} and {t.shape!r}; pass one row of features per sample"
        )
    if not (np.isfinite(c).all() and np.isfinite(t).all()):
        raise ProfileValidationError(
            "calibration and targets features must be finite; drop or fill the rows with NaN"
        )
    _, nearest = nearest_neighbours(t, c, what="calibration weights")
    counts = 1.0 + np.bincount(nearest, minlength=len(c))
    return counts / counts.mean()


def _interp(level: float, grid: FloatArray, q: FloatArray) -> float:
    """Linear interpolation of the quantile table, from (0, 0) below the grid; inf stays inf."""
    xs = np.concatenate([[0.0], grid])
    ys = np.concatenate([[0.0], q])
    j = int(np.searchsorted(xs, level, side="left"))
    if xs[j] == level:
        return float(ys[j])
    lo, hi = ys[j - 1], ys[j]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return float("inf")
    t = (level - xs[j - 1]) / (xs[j] - xs[j - 1])
    return float(lo + t * (hi - lo))


def _plain(label: Any) -> Any:
    """Turn a numpy scalar label into the matching Python scalar, so it survives JSON."""
    return label.item() if isinstance(label, np.generic) else label


def _encode(q: FloatArray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in q]


def _decode(q: Sequence[float | None], where: str) -> FloatArray:
    try:
        return np.array([np.inf if v is None else float(v) for v in q], dtype=np.float64)
    except (TypeError, ValueError):
        raise BundleError(
            f"calibration {where} quantiles must be numbers or null, got {list(q)[:5]!r}; "
            "re-export the bundle with ConformalCalibrator.to_dict()"
        ) from None


class ConformalCalibrator:
    """Normalised split-conformal calibration of ``mean ± k sd`` intervals.

    Parameters
    ----------
    min_group_size
        Smallest number of samples for a group (depth interval) to get its own table; smaller
        groups use the pooled table.
    grid
        Levels at which the quantile table is stored, increasing, in (0, 1). ``None`` means
        :data:`DEFAULT_GRID` (0.01 .. 0.99).

    Attributes
    ----------
    levels_ : numpy.ndarray
        The grid of stored levels.
    quantiles_ : numpy.ndarray
        Pooled conformal quantiles of the scores at ``levels_`` (``inf`` where ``n`` is too
        small for that level).
    n_ : int
        Number of calibration samples used.
    n_dropped_ : int
        Samples left out because ``obs``, ``mean`` or ``sd`` was NaN.
    group_tables_ : dict or None
        Per group label: ``(n, quantiles)``; ``quantiles`` is the pooled table for fallback groups.
    fallback_groups_ : list
        Group labels with fewer than ``min_group_size`` samples.

    Examples
    --------
    Out-of-fold standard deviations that are half the true spread:

    >>> rng = np.random.default_rng(0)
    >>> mean, sd = rng.normal(size=2000), np.full(2000, 0.5)
    >>> obs = mean + rng.normal(size=2000)
    >>> cal = ConformalCalibrator().fit(obs, mean, sd)
    >>> round(cal.scale(0.9), 2)
    3.32
    >>> lower, upper = cal.interval(np.array([1.0]), np.array([0.5]), 0.9)
    >>> round(float(upper[0] - lower[0]), 2)
    3.32
    """

    def __init__(self, min_group_size: int = 30, grid: Sequence[float] | None = None) -> None:
        self.min_group_size = min_group_size
        self.grid = grid

    def _grid(self) -> FloatArray:
        g = np.asarray(DEFAULT_GRID if self.grid is None else self.grid, dtype=np.float64)
        if g.ndim != 1 or g.size == 0 or not np.all((g > 0) & (g < 1)) or np.any(np.diff(g) <= 0):
            raise ConfigError(
                f"grid must be increasing levels in (0, 1), got {self.grid!r}; pass e.g. "
                "[0.5, 0.8, 0.9, 0.95] or leave it None"
            )
        return g

    def fit(
        self,
        obs: npt.ArrayLike,
        mean: npt.ArrayLike,
        sd: npt.ArrayLike,
        groups: npt.ArrayLike | None = None,
        weights: npt.ArrayLike | None = None,
    ) -> Self:
        """Fit the score quantiles on out-of-fold predictions.

        Parameters
        ----------
        obs
            Observations in the model space (e.g. ``log1p`` SOC).
        mean, sd
            Out-of-fold predictive mean and standard deviation in the same space; ``sd > 0``.
        groups
            Optional label per sample (e.g. depth interval ``"0-5"``) for per-group tables.
        weights
            Optional weight per sample (finite, > 0) for covariate shift: how much each
            calibration sample stands for the points the intervals are for (e.g.
            :func:`nearest_share`); the quantiles are weighted conformal quantiles
            (:func:`conformal_quantiles`).

        Returns
        -------
        ConformalCalibrator
            ``self``, fitted.

        Raises
        ------
        ProfileValidationError
            Mismatched sizes, ``sd <= 0``, infinite values, missing group labels, or no
            usable sample.
        """
        grid = self._grid()
        o, m, s = (np.asarray(a, dtype=np.float64).ravel() for a in (obs, mean, sd))
        if not (o.size == m.size == s.size):
            raise ProfileValidationError(
                f"obs, mean and sd must have the same size, got {(o.size, m.size, s.size)!r}; "
                "pass one out-of-fold prediction per observation"
            )
        if not (isinstance(self.min_group_size, int | np.integer) and self.min_group_size >= 1):
            raise ConfigError(
                f"min_group_size must be a positive integer, got {self.min_group_size!r}"
            )
        w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if w is not None and (w.size != o.size or not (np.isfinite(w) & (w > 0)).all()):
            raise ProfileValidationError(
                f"weights must be {o.size!r} finite values > 0 (one per sample), got "
                f"{w.size!r} values with minimum {float(np.min(w, initial=np.inf))!r}; pass "
                "e.g. socmap.validate.calibrate.nearest_share(...) or None"
            )
        ok = ~(np.isnan(o) | np.isnan(m) | np.isnan(s))
        o, m, s = o[ok], m[ok], s[ok]
        w = None if w is None else w[ok]
        if not (np.isfinite(o).all() and np.isfinite(m).all() and np.isfinite(s).all()):
            raise ProfileValidationError(
                "obs, mean and sd must be finite (NaN is dropped and counted, infinity is not); "
                "check the back-transform and the log-variance head"
            )
        if (s <= 0).any():
            bad = s[s <= 0][0]
            raise ProfileValidationError(
                f"sd must be > 0 to normalise residuals, got {float(bad)!r}; pass standard "
                "deviations (exp(logvar / 2)), not variances or log-variances"
            )
        if o.size == 0:
            raise ProfileValidationError(
                f"no usable calibration samples: all {int((~ok).sum())!r} rows have a NaN in "
                "obs, mean or sd; pass out-of-fold predictions"
            )
        scores = np.abs(o - m) / s
        self.levels_ = grid
        self.n_ = int(scores.size)
        self.n_dropped_ = int((~ok).sum())
        self.weighted_ = w is not None
        self.quantiles_ = conformal_quantiles(scores, grid, w)
        self.group_tables_: dict[Hashable, tuple[int, FloatArray]] | None = None
        self.fallback_groups_: list[Hashable] = []
        if groups is not None:
            g = pd.Series(np.asarray(groups, dtype=object).ravel())
            if len(g) != ok.size:
                raise ProfileValidationError(
                    f"groups has {len(g)!r} labels for {ok.size!r} samples; pass one per sample"
                )
            g = g[ok].reset_index(drop=True)
            if g.isna().any():
                raise ProfileValidationError(
                    f"{int(g.isna().sum())!r} group labels are missing; label every sample "
                    "(e.g. with its depth interval)"
                )
            self.group_tables_ = {}
            for label, pos in g.groupby(g, sort=True).indices.items():
                key = _plain(label)
                if len(pos) >= self.min_group_size:
                    q = conformal_quantiles(scores[pos], grid, None if w is None else w[pos])
                else:
                    q = self.quantiles_
                    self.fallback_groups_.append(key)
                self.group_tables_[key] = (len(pos), q)
        return self

    def _check_level(self, level: float) -> float:
        lv = float(level)
        top = float(self.levels_[-1])
        if not 0.0 < lv < 1.0:
            raise ConfigError(
                f"level must lie in (0, 1), got {level!r}; pass e.g. 0.9 for a 90 % interval"
            )
        if lv > top + 1e-12:
            raise ConfigError(
                f"level {level!r} lies above the calibration grid's top level {top!r}; refit "
                "with a grid that reaches it (grid=[..., 0.995])"
            )
        return min(lv, top)

    def scale(self, level: float, group: Hashable | None = None) -> float:
        """Multiplier ``q(level)`` of ``sd`` for a calibrated interval ``mean ± q sd``.

        Parameters
        ----------
        level
            Nominal coverage in (0, 1), at most the grid's top level.
        group
            Group label, when fitted with ``groups``; ``None`` uses the pooled table.

        Returns
        -------
        float
            The multiplier (``inf`` when the calibration set is too small for ``level``).

        Raises
        ------
        ProfileValidationError
            Level outside the grid, or an unknown group.
        """
        check_fitted(self, "quantiles_")
        lv = self._check_level(level)
        return _interp(lv, self.levels_, self._table(group))

    def _table(self, group: Hashable | None) -> FloatArray:
        if group is None:
            return np.asarray(self.quantiles_)
        if self.group_tables_ is None:
            raise ConfigError(
                f"group {group!r} given, but the calibrator was fitted without groups; pass "
                "group=None or refit with groups="
            )
        key = _plain(group)
        if key not in self.group_tables_:
            raise ConfigError(
                f"group {group!r} was not seen at calibration (known: "
                f"{list(self.group_tables_)!r}); use a known label or group=None for the "
                "pooled table"
            )
        return self.group_tables_[key][1]

    def interval(
        self, mean: Any, sd: Any, level: float, groups: npt.ArrayLike | None = None
    ) -> tuple[Any, Any]:
        """Calibrated interval ``(mean - q sd, mean + q sd)``.

        Parameters
        ----------
        mean, sd
            Predictive mean and standard deviation in the model space (numpy, xarray or dask
            arrays when ``groups`` is None).
        level
            Nominal coverage in (0, 1).
        groups
            Group label per element (same shape as ``mean``), when fitted with ``groups``.

        Returns
        -------
        lower, upper
            The bounds, same type and shape as ``mean``.
        """
        check_fitted(self, "quantiles_")
        if groups is None:
            q: Any = self.scale(level)
        else:
            labels = np.asarray(groups, dtype=object)
            uniq = pd.unique(labels.ravel())
            table = {lab: self.scale(level, lab) for lab in uniq}
            q = np.array([table[lab] for lab in labels.ravel()], dtype=np.float64)
            q = q.reshape(labels.shape)
        return mean - q * sd, mean + q * sd

    def to_dict(self) -> dict[str, Any]:
        """Export the fitted calibration as plain JSON-ready data (the bundle's ``calibration``).

        Returns
        -------
        dict
            ``method``, ``levels``, ``n``, ``n_dropped``, ``quantiles`` (``null`` for
            infinite), ``min_group_size`` and ``groups`` (``null``, or a list of
            ``{label, n, fallback, quantiles}``; fallback groups store no table).

        Examples
        --------
        >>> cal = ConformalCalibrator(grid=[0.5, 0.9]).fit([0.0, 1.0, 3.0], [0.0] * 3, [1.0] * 3)
        >>> cal.to_dict()["quantiles"]
        [1.0, None]
        """
        check_fitted(self, "quantiles_")
        groups = None
        if self.group_tables_ is not None:
            groups = [
                {
                    "label": label,
                    "n": n,
                    "fallback": label in self.fallback_groups_,
                    "quantiles": None if label in self.fallback_groups_ else _encode(q),
                }
                for label, (n, q) in self.group_tables_.items()
            ]
        return {
            "method": _METHOD,
            "score": "|obs - mean| / sd",
            "levels": [float(v) for v in self.levels_],
            "n": self.n_,
            "n_dropped": self.n_dropped_,
            "quantiles": _encode(self.quantiles_),
            "min_group_size": int(self.min_group_size),
            "groups": groups,
            "weighted": bool(self.weighted_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConformalCalibrator:
        """Rebuild a fitted calibrator from :meth:`to_dict` output.

        Parameters
        ----------
        data
            The stored dictionary.

        Returns
        -------
        ConformalCalibrator
            A fitted calibrator giving the same intervals as the one that was stored.

        Raises
        ------
        BundleError
            Missing keys, an unknown method, or tables that do not match the grid.
        """
        need = ("method", "levels", "n", "quantiles", "min_group_size", "groups")
        missing = [k for k in need if k not in data]
        if missing:
            raise BundleError(
                f"calibration record lacks {missing!r}; re-export it with "
                "ConformalCalibrator.to_dict()"
            )
        if data["method"] != _METHOD:
            raise BundleError(
                f"calibration method {data['method']!r} is not {_METHOD!r}; this socmap cannot "
                "apply it, so refit the calibration"
            )
        levels = [float(v) for v in data["levels"]]
        cal = cls(min_group_size=int(data["min_group_size"]), grid=levels)
        cal.levels_ = cal._grid()
        cal.n_ = int(data["n"])
        cal.n_dropped_ = int(data.get("n_dropped", 0))
        cal.weighted_ = bool(data.get("weighted", False))
        cal.quantiles_ = _decode(data["quantiles"], "pooled")
        if cal.quantiles_.size != cal.levels_.size:
            raise BundleError(
                f"calibration has {cal.quantiles_.size!r} quantiles for {cal.levels_.size!r} "
                "levels; the record is corrupt, refit the calibration"
            )
        cal.group_tables_ = None
        cal.fallback_groups_ = []
        if data["groups"] is not None:
            cal.group_tables_ = {}
            for rec in data["groups"]:
                label = rec["label"]
                if rec["fallback"]:
                    q = cal.quantiles_
                    cal.fallback_groups_.append(label)
                else:
                    q = _decode(rec["quantiles"], f"group {label!r}")
                    if q.size != cal.levels_.size:
                        raise BundleError(
                            f"calibration group {label!r} has {q.size!r} quantiles for "
                            f"{cal.levels_.size!r} levels; refit the calibration"
                        )
                cal.group_tables_[label] = (int(rec["n"]), q)
        return cal

"""Mass-preserving equal-area quadratic splines onto standard depth intervals.

Soil profiles are sampled by horizon (0-12, 12-35, 35-80 cm, ...), while maps, models and
carbon projects report fixed intervals (GlobalSoilMap 0-5, 5-15, ... cm; VM0033 0-15, 15-30,
...). :func:`harmonise` fits the equal-area quadratic smoothing spline of Bishop, McBratney and
Laslett (1999) to every profile and averages it over the target intervals.

The spline
----------
Within each horizon the spline is a quadratic; across a gap between two sampled horizons it is
a straight line; its first derivative is continuous and zero at the top of the first and the
bottom of the last horizon. With the smoothing parameter ``lam`` at 0 the spline's mean over
each horizon equals the observed value exactly (mass preservation); with ``lam > 0`` it
equals the *fitted* horizon mean (``s_bar``), which trades fit for smoothness. We follow the
matrix formulation of mpspline2 (``mpspline_est1``), itself a port of GSIF::mpspline and
CSIRO's splinetool, exactly: with horizon thicknesses ``th`` and gaps ``gp``,
``R[i, i] = 2 th[i+1] + 2 th[i] + 6 gp[i]``, ``R[i, i+1] = th[i+1]``,
``Z = I + 6 n lam Q' R^-1 Q``, ``s_bar = Z^-1 y``, ``b = 6 R^-1 Q s_bar``. Profiles with
the same number of horizons are solved together as stacked ``(B, n, n)`` systems and the
piecewise polynomials are integrated analytically, clamping included.

Conventions (mpspline2, ``mpspline_datchk`` / ``mpspline_fit1`` / ``mpspline_rmse1``)
---------------------------------------------------------------------------------------
* Horizons whose value is NaN are ignored for that column only; horizons are then sorted by
  top and bottom depth.
* No extrapolation: the spline exists only from the top of the first to the bottom of the
  last used horizon. A target interval partly covered at the top or the bottom gets the mean
  of the spline over its covered part (mpspline2 averages the 1-cm values with
  ``na.rm = TRUE``, which is the same rule); ``coverage_<col>`` in the output table reports
  the covered fraction so that a caller can refuse a 60-100 cm value backed by 60-70 cm of
  data. Intervals with no cover are NaN.
* Gaps between horizons are bridged by the spline's linear segment, as in mpspline2. A top
  within 1e-6 (relative) of the bottom above it is snapped onto it, so float32 depth noise
  (89.9999976 below 90) is neither a gap nor an overlap.
* A single horizon is copied (as a constant) to every interval it overlaps.
* Outputs are clamped to ``[vlow, vhigh]`` pointwise *before* averaging, as mpspline2 clamps
  its 1-cm values; pass ``vlow=-inf, vhigh=inf`` to turn clamping off.
* The per-profile error is mpspline2's RMSE between observed horizon values and the fitted
  horizon means ``s_bar``; it is NaN for a single horizon (not splined).

Differences from mpspline2, on purpose:

* mpspline2 averages point values at the top of each 1-cm slice (a left Riemann sum, kept for
  compatibility with splinetool.exe); socmap integrates exactly, so values differ by a few
  hundredths where the spline is steep (its README example gives 6.105 g/kg for 0-5 cm where
  the exact mean is 6.092). Evaluating :class:`ProfileSpline` at 0, 1, 2, ... cm reproduces
  mpspline2's numbers to the last digit (see the tests).
* mpspline2 drops horizons with negative or missing depths and zero or negative thickness
  and fills a missing surface or bottom depth; socmap leaves such a profile out whole with
  status ``"invalid_depths"`` (a broken depth record makes the others suspect, and splining
  around the hole would bridge it invisibly).
* mpspline2 copies a single horizon onto ``which(d >= ud & d <= ld)``, which also fills the
  interval just below it; socmap copies it onto the intervals it overlaps.

Statuses (``Harmonised.sites``)
-------------------------------
``ok``
    Two or more usable horizons; splined.
``single_horizon``
    One usable horizon; its value is copied.
``overlapping_horizons``
    Usable horizons overlap after sorting (``top[k+1] < bottom[k]``, e.g. duplicated rows);
    left out, values NaN. Fix the depths or de-duplicate.
``out_of_range``
    A horizon's value is outside ``[vlow, vhigh]`` (by default below 0 or above 1000, e.g.
    SOC in mg/kg read as g/kg); left out, values NaN. Fix the value or its units.
``no_data``
    No horizon has a value for the column.
``invalid_depths``
    A horizon has a missing, infinite or negative depth or ``bottom <= top``; left out.
``outside_depths``
    Fitted, but no usable horizon overlaps any target interval (e.g. a 250-300 cm sample).

Every input site keeps one row per target interval in ``Harmonised.table`` whatever its status.
``status`` is the status of the first value column; ``status_<col>`` gives every column's.

References
----------
Bishop, T.F.A., McBratney, A.B., Laslett, G.M. (1999) Modelling soil attribute depth functions
with equal-area quadratic smoothing splines. Geoderma 91:27-45.
Malone, B.P. et al. (2009) Mapping continuous depth functions of soil carbon storage and
available water capacity. Geoderma 154:138-152 (ithir ``ea_spline``).
O'Brien, L. mpspline2: Mass-Preserving Spline Functions for Soil Data, R package (CRAN),
github.com/obrl-soil/mpspline2, ``R/mpspline.R`` (the conventions above).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from socmap._progress import track
from socmap.catalog import DepthSet, get_depth_set
from socmap.errors import ProfileValidationError

__all__ = [
    "CANONICAL_SITE_COLUMNS",
    "STATUSES",
    "Harmonised",
    "ProfileSpline",
    "SplineHarmoniser",
    "fit_spline",
    "harmonise",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STATUSES = (
    "ok",
    "single_horizon",
    "overlapping_horizons",
    "out_of_range",
    "no_data",
    "invalid_depths",
    "outside_depths",
)
"""Every status :func:`harmonise` can give a site, in the order :meth:`Harmonised.summary` uses."""

CANONICAL_SITE_COLUMNS = ("x", "y", "crs", "stratum", "date", "source")
"""Site columns always carried to the output (first value per site) when present."""

_SITE_ID, _TOP, _BOTTOM = "site_id", "top_cm", "bottom_cm"
_CHUNK = 1 << 18  # (piece, interval) pairs integrated at a time
_SNAP_REL = 1e-6  # relative depth difference treated as float noise between touching horizons


# --------------------------------------------------------------------------------------------
# Kernels: batched fit, piecewise polynomials, clamped analytic integration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Coefs:
    """Spline coefficients of B profiles with n horizons each, arrays of shape (B, n)."""

    s_bar: FloatArray
    alfa: FloatArray
    b0: FloatArray
    b1: FloatArray
    gamma: FloatArray


def _fit_batch(top: FloatArray, bottom: FloatArray, y: FloatArray, lam: float) -> _Coefs:
    """Fit B profiles of n >= 2 sorted, non-overlapping horizons at once (mpspline_est1)."""
    bsz, n = y.shape
    m = n - 1
    th = bottom - top
    gp = top[:, 1:] - bottom[:, :-1]
    r = np.zeros((bsz, m, m))
    idx = np.arange(m)
    r[:, idx, idx] = 2.0 * th[:, 1:] + 2.0 * th[:, :-1] + 6.0 * gp
    if m > 1:
        r[:, idx[:-1], idx[1:]] = th[:, 1:-1]
        r[:, idx[1:], idx[:-1]] = th[:, 1:-1]
    q = np.zeros((m, n))
    q[idx, idx] = -1.0
    q[idx, idx + 1] = 1.0
    # R is strictly diagonally dominant for positive thicknesses, so it is never singular.
    rinv_q = np.linalg.solve(r, np.broadcast_to(q, (bsz, m, n)))
    z = np.eye(n) + (6.0 * n * lam) * (q.T @ rinv_q)
    s_bar = np.linalg.solve(z, y[..., None])[..., 0]
    b = 6.0 * (rinv_q @ s_bar[..., None])[..., 0]
    zero = np.zeros((bsz, 1))
    b0 = np.concatenate([zero, b], axis=1)
    b1 = np.concatenate([b, zero], axis=1)
    gamma = (b1 - b0) / (2.0 * th)
    alfa = s_bar - b0 * th / 2.0 - gamma * th**2 / 3.0
    return _Coefs(s_bar=s_bar, alfa=alfa, b0=b0, b1=b1, gamma=gamma)


@dataclass(frozen=True, eq=False)
class _Pieces:
    """Flat piecewise polynomials ``c0 + c1 t + c2 t^2`` with ``t = z - start`` on [start, end]."""

    owner: IntArray
    start: FloatArray
    end: FloatArray
    c0: FloatArray
    c1: FloatArray
    c2: FloatArray

    @staticmethod
    def concat(parts: Sequence[_Pieces]) -> _Pieces:
        if not parts:
            empty = np.zeros(0)
            return _Pieces(np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty)
        return _Pieces(
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("owner", "start", "end", "c0", "c1", "c2")
            )
        )


def _spline_pieces(owner: IntArray, top: FloatArray, bottom: FloatArray, c: _Coefs) -> _Pieces:
    """Quadratic pieces on the horizons and linear pieces across the gaps (mpspline_fit1)."""
    n = top.shape[1]
    own = np.broadcast_to(owner[:, None], top.shape)
    parts = [
        _Pieces(
            own.ravel(), top.ravel(), bottom.ravel(), c.alfa.ravel(), c.b0.ravel(), c.gamma.ravel()
        )
    ]
    if n > 1:
        gp = top[:, 1:] - bottom[:, :-1]
        has = gp > 0
        slope = c.b1[:, :-1]
        # The gap line ends at the next horizon's alfa with the slope at the bottom above it.
        c0 = c.alfa[:, 1:] - slope * gp
        parts.append(
            _Pieces(
                own[:, 1:][has],
                bottom[:, :-1][has],
                top[:, 1:][has],
                c0[has],
                slope[has],
                np.zeros(int(has.sum())),
            )
        )
    return _Pieces.concat(parts)


def _poly_integral(
    c0: FloatArray, c1: FloatArray, c2: FloatArray, a: FloatArray, b: FloatArray
) -> FloatArray:
    def prim(t: FloatArray) -> FloatArray:
        return t * (c0 + t * (c1 / 2.0 + t * (c2 / 3.0)))

    return prim(b) - prim(a)


def _crossings(
    c0: FloatArray, c1: FloatArray, c2: FloatArray, level: float
) -> tuple[FloatArray, FloatArray]:
    """Where ``c0 + c1 t + c2 t^2 == level`` (NaN where there is no crossing)."""
    nan = np.full_like(c0, np.nan)
    if not math.isfinite(level):
        return nan, nan
    d = c0 - level
    # Degenerate (tiny c2) quadratics overflow to inf roots, which the caller clips away.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        disc = c1 * c1 - 4.0 * c2 * d
        sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
        # Numerically stable quadratic roots (no cancellation between -c1 and sqrt(disc)).
        qq = -0.5 * (c1 + np.copysign(sq, c1))
        quad = c2 != 0
        lin = ~quad & (c1 != 0)
        r1 = np.where(quad, qq / c2, np.where(lin, -d / c1, np.nan))
        r2 = np.where(quad & (qq != 0), d / qq, np.nan)
    return r1, r2


def _clamped_integral(
    c0: FloatArray,
    c1: FloatArray,
    c2: FloatArray,
    a: FloatArray,
    b: FloatArray,
    vlow: float,
    vhigh: float,
) -> FloatArray:
    """Exact integral of ``clip(c0 + c1 t + c2 t^2, vlow, vhigh)`` over [a, b]."""
    if not (math.isfinite(vlow) or math.isfinite(vhigh)):
        return _poly_integral(c0, c1, c2, a, b)
    cuts = [a, b, *_crossings(c0, c1, c2, vlow), *_crossings(c0, c1, c2, vhigh)]
    pts = np.stack([np.clip(np.where(np.isnan(p), a, p), a, b) for p in cuts], axis=1)
    pts.sort(axis=1)
    lo, hi = pts[:, :-1], pts[:, 1:]
    cc0, cc1, cc2 = c0[:, None], c1[:, None], c2[:, None]
    mid = (lo + hi) / 2.0
    at_mid = cc0 + mid * (cc1 + mid * cc2)
    width = hi - lo
    inside = _poly_integral(cc0, cc1, cc2, lo, hi)
    # Between consecutive crossings the polynomial stays on one side of each bound.
    with np.errstate(invalid="ignore"):
        seg = np.where(at_mid < vlow, vlow * width, np.where(at_mid > vhigh, vhigh * width, inside))
    seg = np.where(width > 0, seg, 0.0)
    out: FloatArray = seg.sum(axis=1)
    return out


def _integrate(
    pieces: _Pieces,
    n_owners: int,
    tops: FloatArray,
    bottoms: FloatArray,
    vlow: float,
    vhigh: float,
) -> tuple[FloatArray, FloatArray]:
    """Integral of the clamped spline and covered length per (owner, interval), shape (S, T)."""
    n_t = len(tops)
    keep = pieces.end > pieces.start
    own, s, e = pieces.owner[keep], pieces.start[keep], pieces.end[keep]
    c0, c1, c2 = pieces.c0[keep], pieces.c1[keep], pieces.c2[keep]
    # Intervals overlapping each piece: bottom > start and top < end (targets are sorted).
    j0 = np.searchsorted(bottoms, s, side="right")
    j1 = np.searchsorted(tops, e, side="left")
    cnt = np.clip(j1 - j0, 0, None)
    pidx = np.repeat(np.arange(len(s)), cnt)
    offset = np.arange(len(pidx)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    j = j0[pidx] + offset
    size = n_owners * n_t
    total: FloatArray = np.zeros(size)
    covered: FloatArray = np.zeros(size)
    # Chunks bound the (pairs x 5 sub-segments) temporaries when there are many intervals.
    for a in range(0, len(pidx), _CHUNK):
        pi, jj = pidx[a : a + _CHUNK], j[a : a + _CHUNK]
        lo = np.maximum(s[pi], tops[jj]) - s[pi]
        hi = np.minimum(e[pi], bottoms[jj]) - s[pi]
        integral = _clamped_integral(c0[pi], c1[pi], c2[pi], lo, hi, vlow, vhigh)
        key = own[pi] * n_t + jj
        total += np.bincount(key, weights=integral, minlength=size)
        covered += np.bincount(key, weights=hi - lo, minlength=size)
    return total.reshape(n_owners, n_t), covered.reshape(n_owners, n_t)


# --------------------------------------------------------------------------------------------
# One profile
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ProfileSpline:
    """An equal-area spline fitted to one profile (sorted horizons).

    Attributes
    ----------
    top, bottom
        Horizon limits in cm, sorted, non-overlapping.
    fitted
        The spline's mean over each horizon (``s_bar`` in mpspline2); equals the observed
        values when ``lam == 0``.
    alfa, b0, b1, gamma
        Per-horizon coefficients: on horizon ``i`` the spline is
        ``alfa[i] + b0[i] (z - top[i]) + gamma[i] (z - top[i])**2``; ``b0``/``b1`` are the
        slopes at the horizon's top and bottom (the gap below horizon ``i`` is a line of
        slope ``b1[i]``).
    """

    top: FloatArray
    bottom: FloatArray
    fitted: FloatArray
    alfa: FloatArray
    b0: FloatArray
    b1: FloatArray
    gamma: FloatArray

    def _pieces(self) -> _Pieces:
        c = _Coefs(
            self.fitted[None], self.alfa[None], self.b0[None], self.b1[None], self.gamma[None]
        )
        return _spline_pieces(np.zeros(1, dtype=np.int64), self.top[None], self.bottom[None], c)

    def __call__(self, depth: npt.ArrayLike) -> FloatArray:
        """Evaluate the (unclamped) spline at depths in cm; NaN outside the sampled range."""
        z = np.asarray(depth, dtype=float)
        p = self._pieces()
        order = np.argsort(p.start, kind="stable")
        starts, ends = p.start[order], p.end[order]
        k = np.clip(np.searchsorted(starts, z, side="right") - 1, 0, len(starts) - 1)
        t = z - starts[k]
        c0, c1, c2 = p.c0[order][k], p.c1[order][k], p.c2[order][k]
        val = c0 + t * (c1 + t * c2)
        inside = (z >= self.top[0]) & (z <= self.bottom[-1]) & (t <= ends[k] - starts[k])
        out: FloatArray = np.where(inside, val, np.nan)
        return out

    def mean(
        self,
        top: npt.ArrayLike,
        bottom: npt.ArrayLike,
        *,
        vlow: float = -math.inf,
        vhigh: float = math.inf,
    ) -> FloatArray:
        """Mean of the spline clamped to ``[vlow, vhigh]`` over the covered part of each interval.

        Parameters
        ----------
        top, bottom
            Target intervals in cm, sorted and non-overlapping.
        vlow, vhigh
            Pointwise clamp applied before averaging (off by default).

        Returns
        -------
        numpy.ndarray
            One mean per interval; NaN where the interval does not overlap the profile.
        """
        tops = np.atleast_1d(np.asarray(top, dtype=float))
        bottoms = np.atleast_1d(np.asarray(bottom, dtype=float))
        total, covered = _integrate(self._pieces(), 1, tops, bottoms, vlow, vhigh)
        with np.errstate(invalid="ignore", divide="ignore"):
            out: FloatArray = np.where(covered[0] > 0, total[0] / covered[0], np.nan)
        return out


def fit_spline(
    top: npt.ArrayLike, bottom: npt.ArrayLike, values: npt.ArrayLike, lam: float = 0.1
) -> ProfileSpline:
    """Fit the equal-area quadratic spline to one profile.

    Parameters
    ----------
    top, bottom
        Horizon limits in cm (any order; they are sorted). Horizons must not overlap.
    values
        Horizon values, finite.
    lam
        Smoothing parameter (>= 0); 0 reproduces every horizon value exactly.

    Returns
    -------
    ProfileSpline

    Raises
    ------
    ProfileValidationError
        On mismatched lengths, no horizon, non-finite input, bad depths or overlaps.

    Examples
    --------
    The example profile of mpspline2's README (its 1-cm 0-5 cm value is 6.105160):

    >>> spl = fit_spline([0, 20, 40, 60], [10, 30, 50, 70], [6, 4, 3, 10])
    >>> round(float(spl(range(5)).mean()), 6)
    6.10516
    >>> spl.mean([0, 60], [5, 100]).round(3)
    array([6.092, 9.837])
    """
    _check_lam(lam)
    u = np.atleast_1d(np.asarray(top, dtype=float))
    v = np.atleast_1d(np.asarray(bottom, dtype=float))
    y = np.atleast_1d(np.asarray(values, dtype=float))
    if not (u.shape == v.shape == y.shape) or u.ndim != 1 or u.size == 0:
        raise ProfileValidationError(
            f"top, bottom and values must be 1-D of the same non-zero length, got shapes "
            f"{(u.shape, v.shape, y.shape)!r}; pass one value per horizon"
        )
    if not np.all(np.isfinite(np.concatenate([u, v, y]))):
        raise ProfileValidationError(
            f"depths and values must be finite, got values {y.tolist()!r}; drop NaN horizons first"
        )
    pairs = list(zip(u.tolist(), v.tolist(), strict=True))
    if np.any(u < 0) or np.any(v <= u):
        raise ProfileValidationError(
            f"horizons need 0 <= top < bottom (cm), got {pairs!r}; fix the depths"
        )
    order = np.lexsort((v, u))
    u, v, y = u[order], v[order], y[order]
    if np.any(u[1:] < v[:-1]):
        pairs = list(zip(u.tolist(), v.tolist(), strict=True))
        raise ProfileValidationError(f"horizons overlap: {pairs!r}; fix or de-duplicate them")
    if u.size == 1:
        zero = np.zeros(1)
        return ProfileSpline(u, v, y.copy(), y.copy(), zero, zero.copy(), zero.copy())
    c = _fit_batch(u[None], v[None], y[None], float(lam))
    return ProfileSpline(u, v, c.s_bar[0], c.alfa[0], c.b0[0], c.b1[0], c.gamma[0])


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


#: What to do about each status that leaves a site without values.
_STATUS_FIX = {
    "invalid_depths": "every horizon needs 0 <= top_cm < bottom_cm; are top and bottom swapped, "
    "or given in m instead of cm?",
    "overlapping_horizons": "horizons of a site overlap; de-duplicate the rows or fix the depths",
    "out_of_range": "values lie outside the plausible range; check the units (SOC in % or mg/kg "
    "read as g/kg?)",
    "no_data": "no horizon has a value; check the value column's name",
    "outside_depths": "no horizon reaches the depth set's intervals; choose a depth set that "
    "covers the sampled depths (--depths)",
}


@dataclass(frozen=True, eq=False)
class Harmonised:
    """Result of :func:`harmonise`.

    Attributes
    ----------
    table
        Tidy long table, one row per (site, target interval), sites in input order:
        ``site_id``, the site-level columns, ``top_cm``, ``bottom_cm``, one column per value
        column (NaN where not estimable), ``n_horizons`` (input horizons of the site) and
        ``coverage_<col>`` (fraction of the interval covered by the used horizons, 0-1).
    sites
        One row per input site: ``site_id``, ``n_horizons``, ``n_invalid_depth``, ``status``
        and, per value column, ``status_<col>``, ``n_used_<col>`` and ``rmse_<col>``.
    horizons
        The input horizons (input order and index) with ``fitted_<col>``: the spline's mean
        over each horizon (NaN where the horizon was not used).
    """

    table: pd.DataFrame
    sites: pd.DataFrame
    horizons: pd.DataFrame

    def summary(self) -> dict[str, int]:
        """Count the sites per status (every status in :data:`STATUSES`, zeros included).

        Examples
        --------
        >>> df = pd.DataFrame({"site_id": ["a", "a", "b"], "top_cm": [0, 10, 0],
        ...                    "bottom_cm": [10, 30, 20], "soc_g_kg": [12.0, 6.0, 3.0]})
        >>> harmonise(df, "0-30").summary()["single_horizon"]
        1
        """
        counts = self.sites["status"].value_counts()
        return {s: int(counts.get(s, 0)) for s in STATUSES}

    def require_values(self) -> None:
        """Refuse a result in which no site got a value: the table would be all NaN.

        The message counts the sites per status and gives the fix of the most common one.

        Raises
        ------
        ProfileValidationError
            If the table has rows but no finite value in any value column.
        """
        cols = [c[len("status_") :] for c in self.sites.columns if c.startswith("status_")]
        if self.table.empty or self.table[cols].notna().to_numpy().any():
            return
        counts = {k: v for k, v in self.summary().items() if v}
        worst = max(counts, key=lambda k: counts[k])
        raise ProfileValidationError(
            f"none of the {len(self.sites)} sites could be harmonised ({counts}); "
            f"{worst}: {_STATUS_FIX.get(worst, 'see the per-site table')}"
        )


#: Largest spline smoothing ``lam`` accepted (--lam).
LAM_MAX = 1e6


def _check_lam(lam: float) -> None:
    if isinstance(lam, bool) or not isinstance(lam, int | float | np.floating | np.integer):
        raise ProfileValidationError(f"lam must be a number >= 0, got {lam!r}; the default is 0.1")
    if not math.isfinite(float(lam)) or lam < 0:
        raise ProfileValidationError(
            f"--lam {lam!r} must be finite and >= 0; use 0 for an exact fit or 0.1 (default)"
        )
    if lam > LAM_MAX:
        # the spline's system overflows long before: 1e300 gave a singular matrix
        raise ProfileValidationError(
            f"--lam {lam!r} is above {LAM_MAX:g}: the spline's equations lose their precision "
            f"and then overflow; use 0.1 (the default) or a value up to {LAM_MAX:g}"
        )


def _check_bounds(vlow: float, vhigh: float) -> None:
    try:
        lo, hi = float(vlow), float(vhigh)
    except (TypeError, ValueError):
        raise ProfileValidationError(
            f"vlow and vhigh must be numbers, got {(vlow, vhigh)!r}; defaults are 0 and 1000"
        ) from None
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ProfileValidationError(
            f"need vlow < vhigh, got {(vlow, vhigh)!r}; use -inf/inf to turn clamping off"
        )


def _check_params(
    value_cols: Sequence[str],
    lam: float,
    vlow: float,
    vhigh: float,
    site_cols: Sequence[str] | None,
) -> tuple[str, ...]:
    _check_lam(lam)
    _check_bounds(vlow, vhigh)
    if isinstance(value_cols, str):
        raise ProfileValidationError(
            f"value_cols must be a sequence of column names, got the string {value_cols!r}; "
            f"write ({value_cols!r},)"
        )
    cols = tuple(value_cols)
    if not cols or len(set(cols)) != len(cols):
        raise ProfileValidationError(
            f"value_cols must name at least one column, each once, got {cols!r}; e.g. ('soc_g_kg',)"
        )
    reserved = {_SITE_ID, _TOP, _BOTTOM}
    bad = [c for c in cols if c in reserved or c in (site_cols or ())]
    if bad:
        raise ProfileValidationError(
            f"value_cols {bad!r} are id, depth or site columns; "
            "list only horizon values in value_cols"
        )
    return cols


def _numeric(profiles: pd.DataFrame, col: str) -> FloatArray:
    s = profiles[col]
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        out: FloatArray = s.to_numpy(dtype=float, na_value=np.nan)
        return out
    coerced = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & coerced.isna()
    shown = s[bad].iloc[0] if bool(bad.any()) else s.dropna().iloc[0] if s.notna().any() else None
    raise ProfileValidationError(
        f"column {col!r} must be numeric, got dtype {str(s.dtype)!r} with value {shown!r}; "
        "convert it with pd.to_numeric (depths in cm, values in the column's unit)"
    )


def _validate_table(
    profiles: Any, value_cols: tuple[str, ...], site_cols: Sequence[str] | None
) -> None:
    if not isinstance(profiles, pd.DataFrame):
        raise ProfileValidationError(
            f"profiles must be a pandas DataFrame, got {type(profiles).__name__!r}; "
            "read the table with socmap.profiles or pandas first"
        )
    expected = [_SITE_ID, _TOP, _BOTTOM, *value_cols, *(site_cols or ())]
    missing = [c for c in expected if c not in profiles.columns]
    if missing:
        raise ProfileValidationError(
            f"profile table lacks columns {missing!r}; expected {expected!r} (one row per "
            f"horizon), got {list(map(str, profiles.columns))!r}; rename or map them first"
        )
    if len(profiles) == 0:
        raise ProfileValidationError(
            f"profile table is empty (columns {list(map(str, profiles.columns))!r}); "
            "give at least one horizon"
        )
    if profiles.columns.duplicated().any():
        dup = sorted({str(c) for c in profiles.columns[profiles.columns.duplicated()]})
        raise ProfileValidationError(f"profile table has duplicate columns {dup!r}; rename them")


def _site_columns(
    profiles: pd.DataFrame,
    codes: IntArray,
    value_cols: tuple[str, ...],
    site_cols: Sequence[str] | None,
) -> list[Any]:
    if site_cols is not None:
        return list(site_cols)
    skip = {_SITE_ID, _TOP, _BOTTOM, *value_cols}
    candidates = [c for c in profiles.columns if c not in skip]
    if not candidates:
        return []
    order = np.argsort(codes, kind="stable")
    same_site = codes[order][1:] == codes[order][:-1]
    keep: list[Any] = []
    for col in candidates:
        if col in CANONICAL_SITE_COLUMNS:
            keep.append(col)
            continue
        vals = profiles[col].iloc[order]
        cur, prev = vals.iloc[1:].reset_index(drop=True), vals.iloc[:-1].reset_index(drop=True)
        equal = (cur == prev).fillna(False).to_numpy(dtype=bool) | (
            cur.isna() & prev.isna()
        ).to_numpy()
        if not np.any(same_site & ~equal):
            keep.append(col)
    return keep


def harmonise(
    profiles: pd.DataFrame,
    depths: str | DepthSet = "globalsoilmap",
    *,
    value_cols: Sequence[str] = ("soc_g_kg",),
    lam: float = 0.1,
    vlow: float = 0.0,
    vhigh: float = 1000.0,
    site_cols: Sequence[str] | None = None,
) -> Harmonised:
    """Harmonise horizon data onto a standard depth set with equal-area splines.

    Parameters
    ----------
    profiles
        Canonical profile table, one row per horizon: ``site_id``, ``top_cm``,
        ``bottom_cm`` and the value columns, plus any site-level columns.
    depths
        A depth-set name from ``catalogs/depths.yaml`` (``"globalsoilmap"``, ``"vm0033"``,
        ``"0-30"``) or a :class:`~socmap.catalog.DepthSet`.
    value_cols
        Columns to harmonise, each independently (a horizon whose value is NaN is ignored
        for that column only).
    lam
        Smoothing parameter, >= 0 (mpspline2 and ithir default 0.1).
    vlow, vhigh
        The spline is clamped to this range pointwise before averaging (mpspline2 defaults
        0 and 1000); ``-inf``/``inf`` turn clamping off. A site with a horizon value outside
        the range is left out with status ``"out_of_range"``.
    site_cols
        Site-level columns to carry to the output (first value per site). By default: the
        canonical ones (``x``, ``y``, ``crs``, ``stratum``, ``date``, ``source``) that are
        present, plus every other column that holds a single value within each site.
        Columns that vary within a site are horizon attributes and are not carried; list
        them in ``value_cols`` to harmonise them.

    Returns
    -------
    Harmonised
        ``table`` (one row per site and interval), ``sites`` (status, counts and RMSE per
        site) and ``horizons`` (fitted horizon means). See the module docstring for the
        statuses and the conventions.

    Raises
    ------
    ProfileValidationError
        Missing columns, an empty table, non-numeric depths or values, infinite values,
        a missing ``site_id``, ``lam < 0`` or ``vlow >= vhigh``.
    CatalogError
        An unknown depth-set name.

    Examples
    --------
    A composite 0-30 cm core and a two-horizon profile onto VM0033's top intervals:

    >>> df = pd.DataFrame({"site_id": ["a", "b", "b"], "top_cm": [0, 0, 15],
    ...                    "bottom_cm": [30, 15, 30], "soc_g_kg": [20.0, 30.0, 10.0]})
    >>> h = harmonise(df, "vm0033", lam=0)
    >>> h.table.loc[h.table.bottom_cm <= 30, ["site_id", "top_cm", "soc_g_kg"]]
      site_id  top_cm  soc_g_kg
    0       a     0.0      20.0
    1       a    15.0      20.0
    4       b     0.0      30.0
    5       b    15.0      10.0
    >>> h.sites.status.tolist()
    ['single_horizon', 'ok']
    """
    cols = _check_params(value_cols, lam, vlow, vhigh, site_cols)
    _validate_table(profiles, cols, site_cols)
    dset = get_depth_set(depths)
    tops = np.asarray(dset.tops, dtype=float)
    bottoms = np.asarray(dset.bottoms, dtype=float)
    n_t = len(tops)

    codes_raw, uniques = pd.factorize(profiles[_SITE_ID], sort=False)
    if np.any(codes_raw < 0):
        first = profiles.index[np.flatnonzero(codes_raw < 0)[0]]
        raise ProfileValidationError(
            f"{int(np.sum(codes_raw < 0))} rows have no site_id (first at index {first!r}); "
            "give every horizon its profile id"
        )
    codes = codes_raw.astype(np.int64)
    n_sites = len(uniques)
    top = _numeric(profiles, _TOP)
    bottom = _numeric(profiles, _BOTTOM)
    values = {c: _numeric(profiles, c) for c in cols}
    for c, v in values.items():
        if np.any(np.isinf(v)):
            first = profiles.index[np.flatnonzero(np.isinf(v))[0]]
            raise ProfileValidationError(
                f"column {c!r} has infinite values (first at index {first!r}: "
                f"{v[np.isinf(v)][0]!r}); values must be finite or NaN"
            )

    bad_depth = ~np.isfinite(top) | ~np.isfinite(bottom) | (top < 0) | ~(bottom > top)
    n_horizons = np.bincount(codes, minlength=n_sites)
    n_invalid = np.bincount(codes[bad_depth], minlength=n_sites)
    site_invalid = n_invalid > 0
    thickness = bottoms - tops

    out_values: dict[str, FloatArray] = {}
    out_cover: dict[str, FloatArray] = {}
    site_stats: dict[str, Any] = {}
    fitted_cols: dict[str, FloatArray] = {}
    for col in cols:
        res = _harmonise_column(
            codes,
            n_sites,
            top,
            bottom,
            values[col],
            bad_depth | site_invalid[codes],
            float(lam),
            tops,
            bottoms,
            float(vlow),
            float(vhigh),
            col,
        )
        status = np.where(site_invalid, "invalid_depths", res["status"])
        out_values[col] = res["mean"].ravel()
        out_cover[f"coverage_{col}"] = (res["covered"] / thickness).ravel()
        site_stats[f"status_{col}"] = status
        site_stats[f"n_used_{col}"] = res["n_used"]
        site_stats[f"rmse_{col}"] = res["rmse"]
        fitted_cols[f"fitted_{col}"] = res["fitted"]

    # Sites and their carried columns, in order of first appearance.
    first_row = np.unique(codes, return_index=True)[1]
    carried = _site_columns(profiles, codes, cols, site_cols)
    site_frame = profiles.iloc[first_row][[_SITE_ID, *carried]].reset_index(drop=True)

    rep = np.repeat(np.arange(n_sites), n_t)
    table = site_frame.iloc[rep].reset_index(drop=True)
    table[_TOP] = np.tile(tops, n_sites)
    table[_BOTTOM] = np.tile(bottoms, n_sites)
    for col in cols:
        table[col] = out_values[col]
    table["n_horizons"] = n_horizons[rep]
    for name, cover in out_cover.items():
        table[name] = cover

    sites = pd.DataFrame(
        {
            _SITE_ID: site_frame[_SITE_ID].to_numpy(),
            "n_horizons": n_horizons,
            "n_invalid_depth": n_invalid,
            "status": site_stats[f"status_{cols[0]}"],
        }
    )
    for col in cols:
        for key in (f"status_{col}", f"n_used_{col}", f"rmse_{col}"):
            sites[key] = site_stats[key]

    horizons = profiles[[_SITE_ID, _TOP, _BOTTOM, *cols]].copy()
    for name, fitted in fitted_cols.items():
        horizons[name] = fitted
    return Harmonised(table=table, sites=sites, horizons=horizons)


def _harmonise_column(
    codes: IntArray,
    n_sites: int,
    top: FloatArray,
    bottom: FloatArray,
    y: FloatArray,
    excluded: npt.NDArray[np.bool_],
    lam: float,
    tops: FloatArray,
    bottoms: FloatArray,
    vlow: float,
    vhigh: float,
    col: str,
) -> dict[str, Any]:
    """Fit and integrate one value column for every site (vectorised over sites)."""
    usable = ~excluded & np.isfinite(y)
    rows = np.flatnonzero(usable)
    order = rows[np.lexsort((bottom[rows], top[rows], codes[rows]))]
    cs, us, vs, ys = codes[order], top[order], bottom[order], y[order]
    n_used = np.bincount(cs, minlength=n_sites)
    starts = np.cumsum(n_used) - n_used

    same = cs[1:] == cs[:-1]
    # Depths that differ by float noise only (float32 round trips: 89.9999976 vs 90) touch.
    near = same & (np.abs(us[1:] - vs[:-1]) <= _SNAP_REL * np.maximum(1.0, np.abs(vs[:-1])))
    us[1:][near] = vs[:-1][near]
    overlap = same & (us[1:] < vs[:-1])
    has_overlap = np.bincount(cs[1:][overlap], minlength=n_sites) > 0

    status = np.full(n_sites, "ok", dtype=object)
    status[n_used == 1] = "single_horizon"
    status[has_overlap] = "overlapping_horizons"
    # A value the clamp would cut (1e12 g/kg, a negative content) is a data error, not a
    # spline overshoot: leave the site out rather than report a clamped value as fitted.
    out_of_range = (ys < vlow) | (ys > vhigh)
    status[np.bincount(cs[out_of_range], minlength=n_sites) > 0] = "out_of_range"
    status[n_used == 0] = "no_data"

    fitted_sorted = np.full(len(order), np.nan)
    sq_err = np.zeros(n_sites)
    parts: list[_Pieces] = []

    single = np.flatnonzero(status == "single_horizon")
    if single.size:
        k = starts[single]
        fitted_sorted[k] = ys[k]
        zero = np.zeros(single.size)
        parts.append(_Pieces(single.astype(np.int64), us[k], vs[k], ys[k], zero, zero.copy()))

    spline_ok = status == "ok"
    groups = np.unique(n_used[spline_ok])
    for n in track(groups.tolist(), f"splining {col}"):
        sel = np.flatnonzero(spline_ok & (n_used == n))
        idx = starts[sel][:, None] + np.arange(n)
        coefs = _fit_batch(us[idx], vs[idx], ys[idx], lam)
        fitted_sorted[idx] = coefs.s_bar
        sq_err[sel] = np.sum((ys[idx] - coefs.s_bar) ** 2, axis=1)
        parts.append(_spline_pieces(sel.astype(np.int64), us[idx], vs[idx], coefs))

    total, covered = _integrate(_Pieces.concat(parts), n_sites, tops, bottoms, vlow, vhigh)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(covered > 0, total / covered, np.nan)
        rmse = np.where(spline_ok, np.sqrt(sq_err / np.maximum(n_used, 1)), np.nan)
    fitted_any = (status == "ok") | (status == "single_horizon")
    status[fitted_any & ~(covered.sum(axis=1) > 0)] = "outside_depths"

    fitted = np.full(len(y), np.nan)
    fitted[order] = fitted_sorted
    return {
        "status": status,
        "n_used": n_used,
        "rmse": rmse,
        "mean": mean,
        "covered": covered,
        "fitted": fitted,
    }


# --------------------------------------------------------------------------------------------
# scikit-learn wrapper
# --------------------------------------------------------------------------------------------


class SplineHarmoniser(TransformerMixin, BaseEstimator):
    """scikit-learn transformer around :func:`harmonise`.

    Parameters
    ----------
    depths
        Depth-set name or :class:`~socmap.catalog.DepthSet`.
    value_cols, lam, vlow, vhigh, site_cols
        As in :func:`harmonise`.

    Attributes
    ----------
    depth_set_ : DepthSet
        The resolved depth set (set by :meth:`fit`).
    value_cols_ : tuple of str
        The validated value columns.

    Examples
    --------
    >>> df = pd.DataFrame({"site_id": ["a", "a"], "top_cm": [0, 15], "bottom_cm": [15, 30],
    ...                    "soc_g_kg": [12.0, 8.0]})
    >>> SplineHarmoniser("0-30", lam=0).fit_transform(df)["soc_g_kg"].round(3).tolist()
    [10.0]
    """

    def __init__(
        self,
        depths: str | DepthSet = "globalsoilmap",
        value_cols: Sequence[str] = ("soc_g_kg",),
        lam: float = 0.1,
        vlow: float = 0.0,
        vhigh: float = 1000.0,
        site_cols: Sequence[str] | None = None,
    ) -> None:
        self.depths = depths
        self.value_cols = value_cols
        self.lam = lam
        self.vlow = vlow
        self.vhigh = vhigh
        self.site_cols = site_cols

    def fit(self, X: pd.DataFrame, y: Any = None) -> SplineHarmoniser:
        """Validate the parameters and the table's columns; resolve the depth set.

        Parameters
        ----------
        X
            Canonical profile table.
        y
            Ignored.

        Returns
        -------
        SplineHarmoniser
            ``self``.
        """
        cols = _check_params(self.value_cols, self.lam, self.vlow, self.vhigh, self.site_cols)
        _validate_table(X, cols, self.site_cols)
        for c in (_TOP, _BOTTOM, *cols):
            _numeric(X, c)
        self.value_cols_ = cols
        self.depth_set_ = get_depth_set(self.depths)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Harmonise ``X``; returns :attr:`Harmonised.table`.

        Parameters
        ----------
        X
            Canonical profile table.

        Returns
        -------
        pandas.DataFrame
            One row per (site, target interval).
        """
        check_is_fitted(self, "depth_set_")
        return harmonise(
            X,
            self.depth_set_,
            value_cols=self.value_cols_,
            lam=self.lam,
            vlow=self.vlow,
            vhigh=self.vhigh,
            site_cols=self.site_cols,
        ).table

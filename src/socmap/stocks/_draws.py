"""Joint Monte Carlo draws of stocks, their cumulative sums and their summaries."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from socmap.errors import ConfigError
from socmap.stocks._bulk_density import (
    BandBD,
    BulkDensitySource,
    _field,
    _noise_shape,
    _normals,
)
from socmap.stocks._formula import (
    CF_MAX,
    FloatArray,
    Intervals,
    _check_cf,
    _check_range,
    _floats,
    _rng,
    _soc_draws,
    _stock,
)
from socmap.stocks._intervals import (
    STANDARD_TOTALS,
    _gaps,
    _intervals,
    _label,
    _totals,
)


def stock_draws(
    soc_draws: npt.ArrayLike,
    intervals: Intervals,
    bd: BulkDensitySource | npt.ArrayLike,
    cf: npt.ArrayLike = 0.0,
    *,
    rng: np.random.Generator | int | None = None,
    cf_sd: npt.ArrayLike = 0.0,
    covariates: Mapping[str, npt.ArrayLike] | None = None,
    z_bd: npt.ArrayLike | None = None,
    z_cf: npt.ArrayLike | None = None,
) -> FloatArray:
    """Joint Monte Carlo draws of the carbon stock of each depth interval, t C/ha.

    Draw ``t`` combines SOC draw ``t`` (all depths of one MC realisation) with one BD draw and
    one CF draw. A pedotransfer BD is computed from that draw's SOC, so the SOC-BD
    correlation is kept; layers keep the correlation of the SOC realisations.

    The BD residual of a draw and pixel is one standard normal shared by all its depths (and
    likewise for CF). Bulk densities of neighbouring layers are positively correlated, and
    the correlation is unknown; full correlation is the conservative choice, because it gives
    the widest intervals for the cumulative stocks (independent residuals would cancel in
    the sum and understate them).

    Parameters
    ----------
    soc_draws
        SOC realisations, ``(T, D, ...)`` in g/kg (``...`` is usually ``(y, x)``). NaN is
        nodata and stays NaN. float32 input is kept float32.
    intervals
        The ``D`` depth intervals ``[(top, bottom), ...]`` in cm, or a DepthSet.
    bd
        A :class:`BulkDensitySource`, or BD in g/cm³ (scalar, ``(y, x)`` or ``(D, y, x)``;
        used without uncertainty, as ``BandBD(bd)``).
    cf
        Coarse-fragment volume fraction in [0, 1): scalar, ``(y, x)`` or ``(D, y, x)``.
    rng
        Seed or Generator for the BD and CF residuals (BD drawn first, then CF).
    cf_sd
        Standard deviation of CF (same shapes as ``cf``); draws are clipped to
        ``[0, CF_MAX]``. Zero (default) uses ``cf`` as is.
    covariates
        Layers a BD source reads (``clay``/``sand`` in % for the texture PTF, ``stratum``).
    z_bd, z_cf
        Standard normals broadcastable to ``(T, 1, ...)`` to use instead of ``rng`` (e.g.
        counter-based normals keyed by pixel, so tiled output equals untiled output).

    Returns
    -------
    numpy.ndarray
        Stock draws ``(T, D, ...)`` in t/ha.

    Raises
    ------
    UnitsError
        SOC, BD or CF out of range.
    ConfigError
        Intervals that do not match axis 1, or no random source where one is needed.
    GridMismatch
        A BD, CF or covariate layer that does not broadcast to the draws' grid.

    Examples
    --------
    >>> soc = np.full((4, 2, 1, 1), 10.0)  # 4 draws, 2 depths, a 1x1 tile
    >>> s = stock_draws(soc, [(0, 15), (15, 30)], 1.3, rng=0)
    >>> [round(float(v), 6) for v in s[0, :, 0, 0]]
    [19.5, 19.5]
    """
    soc = _soc_draws(soc_draws)
    iv = _intervals(intervals, soc.shape[1])
    generator = _rng(rng)
    source = bd if isinstance(bd, BulkDensitySource) else BandBD(bd)
    noise_shape = _noise_shape(soc.shape)
    bd_draws = source._draw(
        soc, iv, source._noise(generator, z_bd, soc, "z_bd"), dict(covariates or {})
    )
    cf_arr = _field("coarse fragments", _floats(cf), soc.shape)
    _check_cf(cf_arr)
    sd_arr = _field("coarse-fragment sd", _floats(cf_sd), soc.shape)
    _check_range("coarse-fragment sd", sd_arr, 0.0, math.inf, unit="", hint="give sd >= 0")
    cf_arr = cf_arr.astype(soc.dtype, copy=False)
    if np.any(sd_arr):
        zc = _normals(generator, z_cf, noise_shape, soc.dtype, "z_cf")
        cf_arr = np.asarray(cf_arr + sd_arr.astype(soc.dtype) * zc)
        np.clip(cf_arr, 0.0, CF_MAX, out=cf_arr)
    thick = (iv[:, 1] - iv[:, 0]).astype(soc.dtype).reshape((1, -1) + (1,) * (soc.ndim - 2))
    return _stock(soc, bd_draws, thick, cf_arr)


def cumulative_draws(
    stock_draws: npt.ArrayLike,
    intervals: Intervals,
    totals: Sequence[tuple[float, float]] = STANDARD_TOTALS,
) -> FloatArray:
    """Sum interval stocks into cumulative totals (e.g. 0-30 and 0-100 cm), draw by draw.

    An interval that straddles a total's limit contributes the share of it inside the total,
    prorated by thickness (``overlap / thickness``): the stock is taken as uniform within an
    interval. E.g. 0-50 cm from GlobalSoilMap intervals is ``0-5 + 5-15 + 15-30 + 2/3 × 30-60``.
    Summing draws (not summaries) keeps the between-layer covariance in the totals.

    Parameters
    ----------
    stock_draws
        Stocks ``(T, D, ...)`` in t/ha (from :func:`stock_draws`).
    intervals
        The ``D`` intervals in cm, top to bottom, not overlapping.
    totals
        ``[(top, bottom), ...]`` in cm; each must be fully covered by the intervals.

    Returns
    -------
    numpy.ndarray
        ``(T, K, ...)`` cumulative stocks for the ``K`` totals. NaN in any interval that
        contributes makes the total NaN.

    Raises
    ------
    ConfigError
        A total is not covered (the message names the gap), or intervals are malformed.

    Examples
    --------
    >>> s = np.ones((1, 4, 1)) * np.array([10.0, 10.0, 10.0, 20.0])[None, :, None]
    >>> vm = [(0, 15), (15, 30), (30, 50), (50, 100)]
    >>> cumulative_draws(s, vm, [(0, 30), (0, 40), (0, 100)])[0, :, 0].tolist()
    [20.0, 25.0, 50.0]
    """
    st = _floats(stock_draws)
    if st.ndim < 2:
        raise ConfigError(
            f"stock draws must have shape (draws, depths, ...); got shape {st.shape!r}"
        )
    iv = _intervals(intervals, st.shape[1])
    tt = _totals(totals)
    thick = iv[:, 1] - iv[:, 0]
    out = np.empty((st.shape[0], len(tt), *st.shape[2:]), dtype=st.dtype)
    for k, (a, b) in enumerate(tt):
        gaps = _gaps(iv, a, b)
        if gaps:
            have = ", ".join(_label(*row) for row in iv)
            missing = ", ".join(_label(*g) for g in gaps)
            raise ConfigError(
                f"intervals [{have}] do not cover the total {_label(a, b)}: nothing covers "
                f"{missing}; predict those depths or drop that total"
            )
        overlap = np.clip(np.minimum(iv[:, 1], b) - np.maximum(iv[:, 0], a), 0.0, None)
        weights = overlap / thick
        acc = np.zeros_like(out[:, k])
        for d in np.flatnonzero(weights > 0):  # skip non-contributing intervals (NaN-safe)
            w = weights[d]
            acc += st[:, d] if w == 1.0 else st[:, d] * st.dtype.type(w)
        out[:, k] = acc
    return out


class Summary(NamedTuple):
    """Per-pixel summary of Monte Carlo draws (the order of :data:`STATS`)."""

    mean: FloatArray
    sd: FloatArray
    q05: FloatArray
    q50: FloatArray
    q95: FloatArray

    def stack(self) -> FloatArray:
        """All statistics as one array with a leading ``stat`` axis, in :data:`STATS` order."""
        return np.stack(tuple(self))


def summarise(draws: npt.ArrayLike, axis: int = 0) -> Summary:
    """Mean, sd, 5 %, 50 % and 95 % quantiles of draws along ``axis``.

    A pixel with NaN in any draw gets NaN in every statistic: draws are never dropped
    silently, so a partial pixel cannot pass for a complete one. The sd is the sample sd
    (``ddof=1``); quantiles use numpy's default (linear) interpolation.

    Parameters
    ----------
    draws
        Monte Carlo draws, e.g. ``(T, D, y, x)``.
    axis
        The draw axis (at least 2 draws).

    Returns
    -------
    Summary
        ``mean, sd, q05, q50, q95``, each the shape of ``draws`` without ``axis``.

    Examples
    --------
    >>> s = summarise(np.array([[1.0, np.nan], [2.0, 5.0], [3.0, 6.0]]))
    >>> s.mean.tolist(), s.q50.tolist()
    ([2.0, nan], [2.0, nan])
    """
    a = _floats(draws)
    try:
        n = a.shape[axis]
    except IndexError:
        raise ConfigError(f"axis {axis!r} is out of range for draws of shape {a.shape!r}") from None
    if n < 2:
        raise ConfigError(
            f"summarise needs at least 2 draws along axis {axis}; got shape {a.shape!r}"
        )
    # One sort serves the three quantiles (np.quantile partitions once per call and is
    # about 3x slower on a tile); NaN sorts last, so a pixel with any NaN is NaN at the end.
    ordered = np.sort(a, axis=axis)
    has_nan = np.isnan(np.take(ordered, -1, axis=axis))
    qs = []
    for q in (0.05, 0.5, 0.95):
        pos = q * (n - 1)  # numpy's default "linear" method
        lo = math.floor(pos)
        frac = a.dtype.type(pos - lo)
        below = np.take(ordered, lo, axis=axis)
        above = np.take(ordered, min(lo + 1, n - 1), axis=axis)
        qs.append(np.where(has_nan, np.nan, below + (above - below) * frac))
    return Summary(np.mean(a, axis=axis), np.std(a, axis=axis, ddof=1), *qs)

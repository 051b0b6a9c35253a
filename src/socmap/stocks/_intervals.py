"""Depth intervals and the cumulative totals (0-30, 0-100 cm) they can be summed into."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from socmap.catalog import DepthSet, get_depth_set
from socmap.errors import ConfigError
from socmap.stocks._formula import (
    Intervals,
)

#: Cumulative depths reported when the intervals cover them (cm).
STANDARD_TOTALS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (0.0, 100.0))


def _intervals(intervals: Intervals, n_depth: int | None = None) -> npt.NDArray[np.float64]:
    """Validate intervals: ``(D, 2)`` array of ``[top, bottom)`` cm, top down, no overlap."""
    raw = intervals.intervals if isinstance(intervals, DepthSet) else intervals
    try:
        iv = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(
            f"depth intervals must be [(top, bottom), ...] in cm; got {raw!r}"
        ) from None
    if iv.ndim != 2 or iv.shape[1] != 2 or len(iv) == 0:
        raise ConfigError(
            f"depth intervals must be a non-empty list of (top, bottom) pairs in cm; got {raw!r}"
        )
    for top, bottom in iv:
        if not (np.isfinite(top) and np.isfinite(bottom) and 0 <= top < bottom):
            raise ConfigError(
                f"depth interval {(float(top), float(bottom))!r} must have 0 <= top < bottom (cm)"
            )
    overlap = np.flatnonzero(iv[1:, 0] < iv[:-1, 1])
    if overlap.size:
        k = int(overlap[0]) + 1
        raise ConfigError(
            f"depth interval {tuple(iv[k].tolist())!r} overlaps or precedes "
            f"{tuple(iv[k - 1].tolist())!r}; list intervals top to bottom without overlap"
        )
    if n_depth is not None and len(iv) != n_depth:
        raise ConfigError(
            f"got {len(iv)} depth intervals for {n_depth} depths in the draws (axis 1); "
            "pass one (top, bottom) per depth"
        )
    return iv


def _label(a: float, b: float) -> str:
    return f"{a:g}-{b:g} cm"


def _gaps(iv: npt.NDArray[np.float64], top: float, bottom: float) -> list[tuple[float, float]]:
    """Parts of ``[top, bottom)`` that no interval covers."""
    gaps: list[tuple[float, float]] = []
    cursor = top
    for a, b in iv:
        if b <= cursor:
            continue
        if a >= bottom:
            break
        if a > cursor:
            gaps.append((cursor, min(a, bottom)))
        cursor = max(cursor, b)
        if cursor >= bottom:
            break
    if cursor < bottom:
        gaps.append((cursor, bottom))
    return gaps


def _totals(totals: Sequence[tuple[float, float]]) -> npt.NDArray[np.float64]:
    try:
        tt = np.asarray(totals, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"totals must be [(top, bottom), ...] in cm; got {totals!r}") from None
    if tt.ndim != 2 or tt.shape[1] != 2 or len(tt) == 0:
        raise ConfigError(f"totals must be a non-empty list of (top, bottom) pairs; got {totals!r}")
    for a, b in tt:
        if not (np.isfinite(a) and np.isfinite(b) and 0 <= a < b):
            raise ConfigError(f"total {(float(a), float(b))!r} must have 0 <= top < bottom (cm)")
    return tt


def default_totals(depth_set: str | DepthSet) -> tuple[tuple[float, float], ...]:
    """Cumulative depths to report for a depth set.

    The standard totals 0-30 cm and 0-100 cm that the set's intervals cover; a set covering
    neither gets its whole span (when it has no gap).

    Parameters
    ----------
    depth_set
        A :class:`~socmap.catalog.DepthSet` or its name (``"globalsoilmap"``, ``"vm0033"``,
        ``"0-30"``).

    Returns
    -------
    tuple of (top, bottom)
        Totals in cm, shallowest first.

    Raises
    ------
    CatalogError
        Unknown depth-set name.
    ConfigError
        The set covers no standard total and has a gap.

    Examples
    --------
    >>> default_totals("vm0033")
    ((0.0, 30.0), (0.0, 100.0))
    >>> default_totals("0-30")
    ((0.0, 30.0),)
    """
    ds = get_depth_set(depth_set)
    iv = _intervals(ds)
    out = tuple(t for t in STANDARD_TOTALS if not _gaps(iv, *t))
    if out:
        return out
    span = (float(iv[0, 0]), float(iv[-1, 1]))
    if _gaps(iv, *span):
        raise ConfigError(
            f"depth set {ds.name!r} covers neither 0-30 nor 0-100 cm and has gaps; "
            "pass totals= explicitly"
        )
    return (span,)

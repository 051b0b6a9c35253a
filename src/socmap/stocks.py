"""Carbon stocks from SOC, bulk density and coarse fragments, with joint Monte Carlo draws.

Units (DESIGN.md, "Units"): SOC in g/kg, bulk density (BD) in g/cm³, coarse fragments (CF) as
a volume fraction, depths in cm, stocks in t C/ha (= Mg C/ha; kg/m² = t/ha ÷ 10)::

    stock (t/ha) = SOC × BD × thickness × (1 − CF) × 0.1

The uncertainty of a stock is propagated by *joint* Monte Carlo draws. A prediction gives, per
pixel, ``T`` realisations of SOC for all ``D`` depth intervals at once (one MC-dropout pass
each), so the realisations already carry the correlation between layers. Draw ``t`` of the
stock combines SOC draw ``t`` (all depths) with one draw of BD and one of CF; a pedotransfer
BD uses that draw's SOC, which keeps the (negative) SOC-BD correlation. Sums over layers
(:func:`cumulative_draws`) and summaries (:func:`summarise`) are then taken draw by draw.

Bulk density comes from one of three sources, in the order of preference of issue 4:

* :class:`BandBD`: a BD raster (or a per-depth stack), already in g/cm³, with an optional sd;
* :class:`PedotransferBD`: the pedotransfer function fitted on the WoSIS 2017 table by
  ``scripts/fit_bd_ptf.py`` (SOC and depth, optionally clay and sand), with its residual error;
* :class:`StratumBD`: per-stratum constants ``(mean, sd)`` with a default, as in blue-carbon
  workflows.

SoilGrids stores integers; :func:`from_soilgrids` converts them on read.
"""

from __future__ import annotations

import difflib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from socmap.catalog import DepthSet, embedded_data_dir, get_depth_set
from socmap.errors import CatalogError, ConfigError, GridMismatch, InputNotFound, UnitsError
from socmap.units import BD_RANGE, CO2_PER_C, STATS

__all__ = [
    "BD_RANGE",
    "CF_MAX",
    "CO2_PER_C",
    "PTF_TERMS",
    "SOC_MAX",
    "SOILGRIDS_UNITS",
    "STANDARD_TOTALS",
    "STATS",
    "BandBD",
    "BulkDensitySource",
    "PTFForm",
    "PTFParams",
    "PTFResidual",
    "PedotransferBD",
    "StratumBD",
    "StratumLookup",
    "Summary",
    "c_to_co2e",
    "cumulative_draws",
    "default_totals",
    "from_soilgrids",
    "load_bd_ptf",
    "read_stratum_bd",
    "stock_draws",
    "stock_t_ha",
    "summarise",
    "t_ha_to_kg_m2",
]

FloatArray = npt.NDArray[np.floating[Any]]
Intervals = Sequence[tuple[float, float]] | DepthSet

#: Largest coarse-fragment fraction a draw may take (CF = 1 leaves no fine earth).
CF_MAX = 0.99
#: SOC above this (g/kg) cannot be organic carbon by mass; it means a unit mix-up.
SOC_MAX = 1000.0
#: Cumulative depths reported when the intervals cover them (cm).
STANDARD_TOTALS: tuple[tuple[float, float], ...] = ((0.0, 30.0), (0.0, 100.0))

#: SoilGrids 2.0 integer layers: property -> (stored unit, socmap unit, multiply by).
#: From ISRIC's SoilGrids FAQ table ("Mapped units" / "Conversion factor"). Note ``ocs``: the
#: integers are already t/ha (ISRIC divides by 10 to get kg/m²), so its factor is 1.
SOILGRIDS_UNITS: dict[str, tuple[str, str, float]] = {
    "soc": ("dg/kg", "g/kg", 0.1),
    "bdod": ("cg/cm³", "g/cm³", 0.01),
    "ocs": ("t/ha", "t/ha", 1.0),
    "ocd": ("hg/m³", "kg/m³", 0.1),
    "cfvo": ("cm³/dm³", "volume fraction", 0.001),
    "clay": ("g/kg", "%", 0.1),
    "sand": ("g/kg", "%", 0.1),
    "silt": ("g/kg", "%", 0.1),
}

_PTF_FILE = ("ptf", "bd_wosis2017.json")


# ------------------------------------------------------------------------------- helpers
def _one_line(text: object) -> str:
    """Collapse whitespace so a message stays on one line."""
    return " ".join(str(text).split())


def _floats(x: npt.ArrayLike) -> FloatArray:
    """``x`` as a floating array, keeping float32 (memory) and promoting the rest to float64."""
    a = np.asarray(x)
    if a.dtype.kind == "f":
        return a
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError):
        raise UnitsError(
            f"expected numbers, got an array of dtype {a.dtype.name!r}; pass numeric values"
        ) from None


def _check_range(
    name: str,
    a: FloatArray,
    lo: float,
    hi: float,
    *,
    unit: str,
    hint: str,
    hi_open: bool = False,
) -> None:
    """Raise :class:`UnitsError` if any non-NaN value of ``a`` lies outside ``[lo, hi]``."""
    with np.errstate(invalid="ignore"):
        bad = (a < lo) | ((a >= hi) if hi_open else (a > hi))
    if not np.any(bad):
        return
    flat = np.asarray(a)[bad] if np.ndim(a) else np.asarray([a])
    close = ")" if hi_open else "]"
    raise UnitsError(
        f"{name} must be in [{lo:g}, {hi:g}{close} {unit}; got {float(flat[0])!r} "
        f"({int(np.count_nonzero(bad))} of {np.size(a)} values outside); {hint}"
    )


def _stock(soc: FloatArray, bd: FloatArray, thick: FloatArray, cf: FloatArray) -> FloatArray:
    """Apply the stock formula (t/ha); one place, so every caller gets the same bits."""
    out = np.asarray(np.multiply(soc, bd))
    for factor in (thick, 1.0 - cf, 0.1):
        same_shape = np.broadcast_shapes(out.shape, np.shape(factor)) == out.shape
        if same_shape and np.result_type(out, factor) == out.dtype:
            np.multiply(out, factor, out=out)  # in place: a tile of draws is large
        else:
            out = np.asarray(out * factor)
    return out


# --------------------------------------------------------------------------------- units
def stock_t_ha(
    soc_g_kg: npt.ArrayLike,
    bd_g_cm3: npt.ArrayLike,
    thickness_cm: npt.ArrayLike,
    cf_vol: npt.ArrayLike = 0.0,
) -> FloatArray:
    """Organic carbon stock of a layer in t C/ha.

    ``stock = SOC × BD × thickness × (1 − CF) × 0.1``: g/kg × g/cm³ × cm is mg C/cm², and
    1 mg/cm² = 0.1 t/ha (widely copied formulas are off by × 10 here).

    Parameters
    ----------
    soc_g_kg
        Organic carbon content of the fine earth, g/kg (0 to 1000).
    bd_g_cm3
        Fine-earth bulk density, g/cm³ (0 to 2.65).
    thickness_cm
        Layer thickness, cm (non-negative).
    cf_vol
        Coarse-fragment volume fraction, in [0, 1).

    Returns
    -------
    numpy.ndarray
        Stock in t/ha, broadcast over the inputs (a 0-d array for scalars). NaN propagates.

    Raises
    ------
    UnitsError
        A value is outside its range (negative SOC, BD or thickness, CF outside [0, 1), BD
        above 2.65 as from cg/cm³ or kg/m³, SOC above 1000 g/kg).

    Examples
    --------
    >>> round(float(stock_t_ha(10.0, 1.3, 30.0)), 6)  # DESIGN.md test vector: 39 t/ha
    39.0
    >>> round(float(stock_t_ha(6.5, 1.45, 30.0)), 3)
    28.275
    """
    soc, bd, th, cf = (_floats(v) for v in (soc_g_kg, bd_g_cm3, thickness_cm, cf_vol))
    _check_range("SOC", soc, 0.0, SOC_MAX, unit="g/kg", hint="give SOC in g/kg (% × 10)")
    _check_range(
        "bulk density",
        bd,
        0.0,
        BD_RANGE[1],
        unit="g/cm³",
        hint="give BD in g/cm³ (kg/m³ ÷ 1000; SoilGrids bdod: from_soilgrids(v, 'bdod'))",
    )
    _check_range("thickness", th, 0.0, math.inf, unit="cm", hint="give bottom - top in cm")
    _check_range(
        "coarse fragments",
        cf,
        0.0,
        1.0,
        unit="(volume fraction)",
        hi_open=True,
        hint="give CF as a fraction (% ÷ 100; SoilGrids cfvo: from_soilgrids(v, 'cfvo'))",
    )
    return _stock(soc, bd, th, cf)


def t_ha_to_kg_m2(stock_t_ha: npt.ArrayLike) -> FloatArray:
    """Convert a stock from t/ha to kg/m² (÷ 10).

    Examples
    --------
    >>> float(t_ha_to_kg_m2(39.0))
    3.9
    """
    return np.asarray(_floats(stock_t_ha) / 10.0)


def c_to_co2e(carbon: npt.ArrayLike) -> FloatArray:
    """Convert a mass of carbon to CO2-equivalent (× 44/12), in the same unit (e.g. t/ha).

    Examples
    --------
    >>> round(float(c_to_co2e(12.0)), 10)
    44.0
    """
    return np.asarray(_floats(carbon) * CO2_PER_C)


def from_soilgrids(values: npt.ArrayLike, prop: str, *, nodata: float | None = None) -> FloatArray:
    """Convert SoilGrids 2.0 stored integers to socmap units.

    ======  =========  ===============  ======
    prop    stored     socmap unit      factor
    ======  =========  ===============  ======
    soc     dg/kg      g/kg             0.1
    bdod    cg/cm³     g/cm³            0.01
    ocs     t/ha       t/ha             1
    ocd     hg/m³      kg/m³            0.1
    cfvo    cm³/dm³    volume fraction  0.001
    clay    g/kg       %                0.1
    sand    g/kg       %                0.1
    silt    g/kg       %                0.1
    ======  =========  ===============  ======

    ISRIC's table lists ``ocs`` as mapped in t/ha with a conversion factor of 10 to kg/m², so
    the stored integers are already t/ha (factor 1 here), not t/ha × 10.

    Parameters
    ----------
    values
        Stored values (any shape).
    prop
        SoilGrids property name (case-insensitive).
    nodata
        Stored nodata value (e.g. -32768); those cells become NaN.

    Returns
    -------
    numpy.ndarray
        Converted values, float64.

    Raises
    ------
    UnitsError
        ``prop`` is not a known property, or a value is negative after nodata is removed.

    Examples
    --------
    >>> from_soilgrids([135, 150], "bdod").tolist()
    [1.35, 1.5]
    >>> from_soilgrids([123, -32768], "soc", nodata=-32768).tolist()
    [12.3, nan]
    """
    key = str(prop).lower()
    if key not in SOILGRIDS_UNITS:
        close = difflib.get_close_matches(key, list(SOILGRIDS_UNITS), n=3, cutoff=0.6)
        tip = f"did you mean {close[0]!r}? " if close else ""
        raise UnitsError(
            f"unknown SoilGrids property {prop!r}; {tip}choose one of {sorted(SOILGRIDS_UNITS)!r}"
        )
    stored, _, factor = SOILGRIDS_UNITS[key]
    a = np.array(values, dtype=np.float64)
    if nodata is not None:
        a[a == nodata] = np.nan
    _check_range(
        f"SoilGrids {key}",
        a,
        0.0,
        math.inf,
        unit=stored,
        hint="pass nodata= with the layer's nodata value (SoilGrids uses -32768)",
    )
    return a * factor


# ----------------------------------------------------------------------- depth intervals
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


# ------------------------------------------------------------------------ draws plumbing
def _rng(rng: np.random.Generator | int | None) -> np.random.Generator | None:
    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        raise ConfigError(
            f"rng must be an int seed or a numpy Generator; got {rng!r} "
            "(use numpy.random.default_rng(seed))"
        )
    return np.random.default_rng(rng)


def _soc_draws(soc_draws: npt.ArrayLike) -> FloatArray:
    """SOC draws ``(T, D, ...)`` in g/kg as float32/float64, range-checked."""
    soc = _floats(soc_draws)
    if soc.dtype not in (np.float32, np.float64):
        soc = soc.astype(np.float64)
    if soc.ndim < 2:
        raise ConfigError(
            f"SOC draws must have shape (draws, depths, ...); got shape {soc.shape!r} "
            "(add the draw axis with x[None] for a single realisation)"
        )
    _check_range(
        "SOC draws",
        soc,
        0.0,
        SOC_MAX,
        unit="g/kg",
        hint="give SOC in g/kg (SoilGrids soc: from_soilgrids(v, 'soc'))",
    )
    return soc


def _noise_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One normal per draw and pixel, shared by every depth of that draw."""
    return (shape[0], 1, *shape[2:])


def _normals(
    rng: np.random.Generator | None,
    z: npt.ArrayLike | None,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    name: str,
) -> FloatArray:
    if z is not None:
        zz = _floats(z)
        if not _broadcasts(zz.shape, shape):
            raise ConfigError(
                f"{name} has shape {zz.shape!r}; it must broadcast to {shape!r} "
                "(one standard normal per draw and pixel, shared by the depths)"
            )
        return zz.astype(dtype, copy=False)
    if rng is None:
        raise ConfigError(
            f"no random source for {name}: pass rng=<int seed or numpy Generator> or "
            f"{name}=<standard normals of shape {shape!r}>"
        )
    return rng.standard_normal(shape, dtype=dtype)


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to exactly ``target``."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _field(name: str, a: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Check that a per-pixel (or per-depth-and-pixel) field broadcasts to ``(D, ...)``."""
    target = shape[1:]
    if not _broadcasts(a.shape, target):
        raise GridMismatch(
            f"{name} has shape {a.shape!r}, which does not broadcast to the draws' "
            f"(depth, ...) shape {target!r}; give a scalar, a (y, x) raster or a "
            "(depth, y, x) stack on the prediction grid"
        )
    return a


def _depth_slice(a: FloatArray, d: int, ndim: int) -> FloatArray:
    """Depth ``d`` of a field that broadcasts to ``(D, ...)`` of draws with ``ndim`` axes."""
    if a.ndim == ndim - 1:  # has the depth axis
        return a[d] if a.shape[0] > 1 else a[0]
    return a


# ------------------------------------------------------------------- bulk-density sources
class BulkDensitySource(ABC):
    """A source of bulk-density draws (g/cm³) that matches SOC draws one for one.

    Subclasses implement :meth:`_draw`; :meth:`draw` validates the inputs and makes the
    standard normals. Every source uses one normal per draw and pixel, shared by all depths
    of that draw (see :func:`stock_draws` for why).
    """

    def draw(
        self,
        soc_draws: npt.ArrayLike,
        intervals: Intervals,
        *,
        rng: np.random.Generator | int | None = None,
        z: npt.ArrayLike | None = None,
        covariates: Mapping[str, npt.ArrayLike] | None = None,
    ) -> FloatArray:
        """Draw bulk density for each SOC draw.

        Parameters
        ----------
        soc_draws
            SOC realisations, ``(T, D, ...)`` in g/kg.
        intervals
            The ``D`` depth intervals ``[(top, bottom), ...]`` in cm (or a DepthSet).
        rng
            Seed or Generator for the residuals.
        z
            Standard normals broadcastable to ``(T, 1, ...)``, instead of ``rng`` (e.g.
            counter-based normals, so that tiled output equals untiled output).
        covariates
            Extra per-pixel layers a source reads (``clay``/``sand`` in %, ``stratum``).

        Returns
        -------
        numpy.ndarray
            BD draws of the shape of ``soc_draws`` (may be a read-only broadcast view), g/cm³,
            clipped to :data:`BD_RANGE`; NaN where SOC or the source is NaN.
        """
        soc = _soc_draws(soc_draws)
        iv = _intervals(intervals, soc.shape[1])
        zz = self._noise(_rng(rng), z, soc, "z")
        return self._draw(soc, iv, zz, dict(covariates or {}))

    def _noise(
        self, rng: np.random.Generator | None, z: npt.ArrayLike | None, soc: FloatArray, name: str
    ) -> FloatArray:
        if z is None and not self.random:
            return np.zeros((1,) * soc.ndim, dtype=soc.dtype)  # no randomness needed
        return _normals(rng, z, _noise_shape(soc.shape), soc.dtype, name)

    @property
    def random(self) -> bool:
        """Whether draws need random normals (false when every sd is zero)."""
        return True

    @abstractmethod
    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        """BD draws for validated inputs (``z`` broadcastable to ``(T, 1, ...)``)."""


def _normal_draws(
    mean: FloatArray, sd: FloatArray, z: FloatArray, shape: tuple[int, ...]
) -> FloatArray:
    """``mean + sd z`` clipped to :data:`BD_RANGE`, broadcast to ``shape``."""
    if not np.any(sd):
        return np.broadcast_to(mean, shape)
    bd = np.asarray(mean + sd * z)
    np.clip(bd, *BD_RANGE, out=bd)
    return np.broadcast_to(bd, shape)


class BandBD(BulkDensitySource):
    """Bulk density from a raster band (or per-depth stack) in g/cm³, with an optional sd.

    Draws are ``mean + sd × z`` with one normal ``z`` per draw and pixel, clipped to
    :data:`BD_RANGE`. With ``sd = 0`` the band is used as is.

    Parameters
    ----------
    mean
        BD in g/cm³: a scalar, a ``(y, x)`` band or a ``(depth, y, x)`` stack. NaN is nodata
        and gives NaN stocks.
    sd
        Standard deviation in g/cm³, same shapes allowed (e.g. from the band's quantiles).

    Raises
    ------
    UnitsError
        A value is outside :data:`BD_RANGE` (e.g. SoilGrids cg/cm³, kg/m³, or nodata 0), or
        ``sd`` is negative.

    Examples
    --------
    >>> soc = np.full((2, 1, 3), 10.0)
    >>> BandBD(1.3).draw(soc, [(0, 30)], rng=0)[:, 0, 0].tolist()
    [1.3, 1.3]
    """

    def __init__(self, mean: npt.ArrayLike, sd: npt.ArrayLike = 0.0) -> None:
        self.mean = _floats(mean)
        self.sd = _floats(sd)
        _check_range(
            "bulk-density band",
            self.mean,
            *BD_RANGE,
            unit="g/cm³",
            hint="convert to g/cm³ (SoilGrids bdod: from_soilgrids(v, 'bdod')) and set nodata "
            "cells (often 0) to NaN",
        )
        _check_range(
            "bulk-density sd", self.sd, 0.0, math.inf, unit="g/cm³", hint="give a non-negative sd"
        )

    @property
    def random(self) -> bool:
        """Whether draws need random normals (false when the sd is zero everywhere)."""
        return bool(np.any(self.sd))

    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        mean = _field("bulk-density band", self.mean, soc.shape).astype(soc.dtype, copy=False)
        sd = _field("bulk-density sd", self.sd, soc.shape).astype(soc.dtype, copy=False)
        return _normal_draws(mean, sd, z, soc.shape)


class StratumLookup(NamedTuple):
    """Per-pixel BD mean and sd from a stratum table, and how many pixels took the default."""

    mean: FloatArray
    sd: FloatArray
    n_default: int
    defaulted: tuple[Hashable, ...]


class StratumBD(BulkDensitySource):
    """Bulk density as per-stratum constants ``(mean, sd)`` in g/cm³, with a default.

    The stratum of each pixel comes from ``covariates[key]`` (a ``(y, x)`` array of labels or
    codes; NaN/None is nodata and gives NaN). Labels missing from the table take ``default``;
    :meth:`lookup` reports how many pixels did. Without strata every pixel takes ``default``.
    Each draw and pixel gets its own normal (shared by depths), so ``sd`` is read as the
    spread of BD within a stratum.

    Parameters
    ----------
    table
        Stratum label -> ``(mean, sd)`` in g/cm³ (e.g. ``{"mangrove": (0.6, 0.15)}``).
    default
        ``(mean, sd)`` for labels not in the table, or ``None`` to make them an error.
    key
        Name of the covariate that holds the strata.

    Examples
    --------
    >>> bd = StratumBD({"mangrove": (0.6, 0.0), "saltmarsh": (0.9, 0.0)})
    >>> soc = np.full((1, 1, 2), 50.0)
    >>> strata = np.array(["saltmarsh", "mangrove"], dtype=object)
    >>> bd.draw(soc, [(0, 30)], rng=0, covariates={"stratum": strata})[0, 0].tolist()
    [0.9, 0.6]
    """

    def __init__(
        self,
        table: Mapping[Hashable, tuple[float, float]],
        default: tuple[float, float] | None = None,
        *,
        key: str = "stratum",
    ) -> None:
        self.table = {k: self._pair(f"stratum {k!r}", v) for k, v in table.items()}
        self.default = None if default is None else self._pair("default", default)
        self.key = key

    @property
    def random(self) -> bool:
        """Whether draws need random normals (false when every sd is zero)."""
        pairs = [*self.table.values(), *([self.default] if self.default else [])]
        return any(sd > 0 for _, sd in pairs)

    @staticmethod
    def _pair(what: str, value: Any) -> tuple[float, float]:
        try:
            mean, sd = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{what} bulk density must be a (mean, sd) pair in g/cm³; got {value!r}"
            ) from None
        if not (BD_RANGE[0] <= mean <= BD_RANGE[1]) or not (sd >= 0 and math.isfinite(sd)):
            raise UnitsError(
                f"{what} bulk density must have mean in [{BD_RANGE[0]:g}, {BD_RANGE[1]:g}] "
                f"g/cm³ and sd >= 0; got {value!r}; give g/cm³ (kg/m³ ÷ 1000)"
            )
        return mean, sd

    def lookup(self, strata: npt.ArrayLike) -> StratumLookup:
        """Per-pixel mean and sd for an array of stratum labels.

        Parameters
        ----------
        strata
            Labels or codes, any shape; NaN or None marks nodata.

        Returns
        -------
        StratumLookup
            ``mean`` and ``sd`` arrays of the shape of ``strata`` (NaN at nodata), the number
            of pixels that took the default and their labels.

        Raises
        ------
        ConfigError
            A label is not in the table and there is no default.
        """
        import pandas as pd  # only this path needs it

        a = np.asarray(strata)
        codes, uniques = pd.factorize(a.ravel(), use_na_sentinel=True)
        means = np.empty(len(uniques) + 1)
        sds = np.empty(len(uniques) + 1)
        means[-1] = sds[-1] = np.nan  # code -1 (nodata) indexes the last slot
        defaulted: list[Hashable] = []
        default_idx: list[int] = []
        for i, label in enumerate(uniques.tolist()):
            pair = self.table.get(label)
            if pair is None:
                if self.default is None:
                    raise ConfigError(
                        f"stratum {label!r} has no bulk density in the table "
                        f"{list(self.table)!r}; add it or pass default=(mean, sd)"
                    )
                pair = self.default
                defaulted.append(label)
                default_idx.append(i)
            means[i], sds[i] = pair
        n_default = int(np.isin(codes, default_idx).sum()) if default_idx else 0
        return StratumLookup(
            means[codes].reshape(a.shape),
            sds[codes].reshape(a.shape),
            n_default,
            tuple(defaulted),
        )

    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        strata = covariates.get(self.key)
        if strata is None:
            if self.default is None:
                raise ConfigError(
                    f"StratumBD needs covariates={{{self.key!r}: array of strata}} or a "
                    "default=(mean, sd) for every pixel"
                )
            mean = np.asarray(self.default[0], dtype=soc.dtype)
            sd = np.asarray(self.default[1], dtype=soc.dtype)
        else:
            look = self.lookup(strata)
            mean = _field(f"stratum layer {self.key!r}", look.mean, soc.shape).astype(soc.dtype)
            sd = look.sd.astype(soc.dtype)
        return _normal_draws(mean, sd, z, soc.shape)


def read_stratum_bd(
    path: str | Path,
) -> tuple[dict[Hashable, tuple[float, float]], tuple[float, float] | None]:
    """Read per-stratum bulk densities from a CSV: ``stratum, bd_g_cm3[, bd_sd_g_cm3]``.

    A row whose stratum is ``default`` gives the pair for strata not listed. Strata that
    look like numbers are read as numbers (the codes of a stratum raster band).

    Returns
    -------
    table, default
        Stratum -> ``(mean, sd)`` in g/cm³, and the default pair or None.

    Raises
    ------
    InputNotFound
        No such file.
    ConfigError
        Missing columns, repeated strata, or a value that is not a number.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"stratum BD table {str(p)!r} does not exist; give a CSV file")
    frame = pd.read_csv(p, dtype={"stratum": str})
    absent = [c for c in ("stratum", "bd_g_cm3") if c not in frame.columns]
    if absent:
        raise ConfigError(
            f"stratum BD table {str(p)!r} lacks columns {absent!r}; it needs stratum, "
            f"bd_g_cm3 and optionally bd_sd_g_cm3 (has {list(frame.columns)!r})"
        )
    dup = frame["stratum"][frame["stratum"].duplicated()].tolist()
    if dup:
        raise ConfigError(f"stratum BD table {str(p)!r} repeats strata {dup!r}; list each once")
    sds = frame["bd_sd_g_cm3"] if "bd_sd_g_cm3" in frame.columns else pd.Series(0.0, frame.index)
    table: dict[Hashable, tuple[float, float]] = {}
    default = None
    for label, mean, sd in zip(frame["stratum"], frame["bd_g_cm3"], sds, strict=True):
        try:
            pair = (float(mean), float(sd))
        except (TypeError, ValueError):
            raise ConfigError(
                f"stratum {label!r} in {str(p)!r} has a non-numeric bulk density "
                f"{mean!r} / sd {sd!r}; give g/cm3 numbers"
            ) from None
        if str(label).strip().lower() == "default":
            default = pair
            continue
        try:
            key: Hashable = float(label)
        except ValueError:
            key = str(label)
        table[key] = pair
    return table, default


# ------------------------------------------------------------- pedotransfer function (PTF)
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Terms a PTF form may use: ``s = log1p(SOC g/kg)``, ``d = log1p(mid-depth cm)``, clay and
#: sand as fractions (0-1).
PTF_TERMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "1": lambda v: 1.0,
    "log1p_soc": lambda v: v["s"],
    "log1p_soc^2": lambda v: v["s"] ** 2,
    "log1p_soc^3": lambda v: v["s"] ** 3,
    "log1p_depth": lambda v: v["d"],
    "log1p_depth^2": lambda v: v["d"] ** 2,
    "log1p_soc*log1p_depth": lambda v: v["s"] * v["d"],
    "clay_frac": lambda v: v["clay"],
    "sand_frac": lambda v: v["sand"],
    "clay_frac^2": lambda v: v["clay"] ** 2,
    "sand_frac^2": lambda v: v["sand"] ** 2,
}


class PTFResidual(_Strict):
    """Residual error of a PTF: normal on the log scale, sd per SOC class."""

    scale: Literal["log"] = "log"
    distribution: Literal["normal"] = "normal"
    soc_edges_g_kg: tuple[float, ...]
    sd: tuple[float, ...]

    @model_validator(mode="after")
    def _check(self) -> PTFResidual:
        edges = np.asarray(self.soc_edges_g_kg, dtype=float)
        if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"soc_edges_g_kg must increase strictly; got {self.soc_edges_g_kg!r}")
        if len(edges) > 255:
            raise ValueError(f"at most 255 SOC class edges; got {len(edges)}")
        if len(self.sd) != len(edges) + 1:
            raise ValueError(
                f"sd needs one value per SOC class ({len(edges) + 1}); got {len(self.sd)}"
            )
        if not all(math.isfinite(x) and x > 0 for x in self.sd):
            raise ValueError(f"sd values must be finite and positive; got {self.sd!r}")
        return self


class PTFForm(_Strict):
    """One fitted form of the PTF.

    ``kind="mixing"`` (Adams 1973): ``1/BD = f/BD_om + (1 − f)/BD_min`` with organic-matter
    fraction ``f = clip(om_per_oc × SOC / 1000, 0, 1)`` and mineral end-member
    ``BD_min = exp(Σ coef × term)`` (terms of depth and texture only).
    ``kind="log_linear"``: ``log BD = Σ coef × term``. Both give the median BD; the residual
    is normal on the log scale.
    """

    kind: Literal["mixing", "log_linear"]
    terms: tuple[str, ...] = Field(min_length=1)
    coef: tuple[float, ...]
    bd_organic_g_cm3: float | None = None
    residual: PTFResidual
    requires: tuple[Literal["clay", "sand"], ...] = ()
    validation: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PTFForm:
        unknown = [t for t in self.terms if t not in PTF_TERMS]
        if unknown:
            raise ValueError(f"unknown terms {unknown!r}; known: {sorted(PTF_TERMS)!r}")
        if len(set(self.terms)) != len(self.terms):
            raise ValueError(f"terms repeat: {list(self.terms)!r}")
        if len(self.coef) != len(self.terms):
            raise ValueError(
                f"{len(self.coef)} coefficients for {len(self.terms)} terms; give one per term"
            )
        if not all(math.isfinite(c) for c in self.coef):
            raise ValueError(f"coefficients must be finite; got {self.coef!r}")
        used = {name for name in ("clay", "sand") if any(name in t for t in self.terms)}
        if used != set(self.requires):
            raise ValueError(
                f"requires {list(self.requires)!r} must list the texture inputs the terms use "
                f"({sorted(used)!r})"
            )
        if self.kind == "mixing":
            om = self.bd_organic_g_cm3
            if om is None or not (BD_RANGE[0] <= om <= BD_RANGE[1]):
                raise ValueError(
                    f"a mixing form needs bd_organic_g_cm3 in [{BD_RANGE[0]}, {BD_RANGE[1]}]; "
                    f"got {om!r}"
                )
            if any("soc" in t for t in self.terms):
                raise ValueError("a mixing form's mineral terms cannot use SOC")
        return self


class PTFParams(_Strict):
    """The fitted bulk-density PTF as shipped in ``_data/ptf/bd_wosis2017.json``."""

    name: str
    description: str = ""
    source: str
    licence: str
    units: dict[str, str]
    om_per_oc: float = Field(gt=1.0, lt=3.0)
    training_range: dict[Literal["soc_g_kg", "depth_cm"], tuple[float, float]]
    forms: dict[str, PTFForm]
    fitted: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PTFParams:
        if "soc_depth" not in self.forms:
            raise ValueError(
                f"forms must include 'soc_depth' (usable at every pixel); got {list(self.forms)!r}"
            )
        for key in ("soc_g_kg", "depth_cm"):
            if key not in self.training_range:
                raise ValueError(f"training_range needs {key!r}")
            lo, hi = self.training_range[key]
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
                raise ValueError(f"training_range {key} must be 0 <= lo < hi; got {(lo, hi)!r}")
        return self


def load_bd_ptf(path: str | Path | None = None) -> PTFParams:
    """Load and validate the bulk-density PTF (the shipped WoSIS 2017 fit by default).

    Parameters
    ----------
    path
        A PTF JSON file; ``None`` reads ``socmap/_data/ptf/bd_wosis2017.json``.

    Returns
    -------
    PTFParams
        The validated parameters.

    Raises
    ------
    InputNotFound
        The file does not exist.
    CatalogError
        The file is not JSON or breaks the schema.

    Examples
    --------
    >>> sorted(load_bd_ptf().forms)
    ['soc_depth', 'soc_depth_texture']
    """
    p = Path(path) if path is not None else embedded_data_dir().joinpath(*_PTF_FILE)
    fix = "re-run scripts/fit_bd_ptf.py or reinstall socmap"
    if not p.is_file():
        raise InputNotFound(f"bulk-density PTF file {str(p)!r} does not exist; {fix}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(
            _one_line(f"bulk-density PTF file {str(p)!r} is not valid JSON ({exc}); {fix}")
        ) from None
    try:
        return PTFParams.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise CatalogError(
            _one_line(f"bulk-density PTF file {str(p)!r}: field {where}: {msg}; {fix}")
        ) from None


class PedotransferBD(BulkDensitySource):
    """Bulk density from the WoSIS 2017 pedotransfer function, with its residual error.

    The median BD of each draw comes from that draw's SOC and the interval's mid-depth (and
    clay and sand for ``form="soc_depth_texture"``); the residual is normal on the log scale
    with an sd per SOC class, one normal per draw and pixel shared by all depths. Draws are
    clipped to :data:`BD_RANGE`. Inputs outside the training data are clamped to it: depth to
    ``training_range["depth_cm"]``, clay and sand to 0-100 %; SOC needs no clamp in the mixing
    form (the organic fraction saturates at 1). See ``docs/bd_ptf.md`` for the fit and its
    validation.

    Parameters
    ----------
    form
        ``"soc_depth"`` (needs only SOC and depth; usable at every pixel) or
        ``"soc_depth_texture"`` (needs ``covariates={"clay": %, "sand": %}``).
    params
        Parameters or a JSON path; ``None`` loads the shipped fit.

    Examples
    --------
    >>> ptf = PedotransferBD()
    >>> bool(1.3 < float(ptf.predict(10.0, 15.0)) < 1.5)
    True
    """

    def __init__(
        self, form: str = "soc_depth", params: PTFParams | str | Path | None = None
    ) -> None:
        self.params = params if isinstance(params, PTFParams) else load_bd_ptf(params)
        if form not in self.params.forms:
            close = difflib.get_close_matches(form, list(self.params.forms), n=1, cutoff=0.6)
            tip = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown PTF form {form!r}; {tip}choose one of {sorted(self.params.forms)!r}"
            )
        self.form = form
        self._f = self.params.forms[form]

    @property
    def requires(self) -> tuple[str, ...]:
        """Covariates this form needs (``clay``, ``sand`` in %)."""
        return tuple(self._f.requires)

    def _texture(self, covariates: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._f.requires:
            if covariates.get(name) is None:
                raise ConfigError(
                    f"PTF form {self.form!r} needs covariates[{name!r}] (% of fine earth); "
                    "pass it or use form='soc_depth'"
                )
            v = _floats(covariates[name])
            _check_range(
                name,
                v,
                0.0,
                100.0,
                unit="%",
                hint=f"give {name} in % (SoilGrids {name}: from_soilgrids(v, {name!r}))",
            )
            out[name] = v / 100.0
        return out

    def _inverse_median(
        self, soc: FloatArray, depth: FloatArray, texture: Mapping[str, Any]
    ) -> FloatArray:
        """``1 / median BD`` before clipping (the mixing model is linear in it)."""
        f = self._f
        lo, hi = self.params.training_range["depth_cm"]
        v: dict[str, Any] = {"d": np.log1p(np.clip(depth, lo, hi)), **texture}
        if f.kind == "mixing":
            eta = sum(c * PTF_TERMS[t](v) for t, c in zip(f.terms, f.coef, strict=True))
            inv_min = np.exp(-np.asarray(eta))
            inv_om = 1.0 / float(f.bd_organic_g_cm3 or BD_RANGE[0])  # set: schema checks it
            # 1/BD = f/BD_om + (1 - f)/BD_min = 1/BD_min + f (1/BD_om - 1/BD_min); SOC >= 0.
            om = np.minimum(soc * (self.params.om_per_oc / 1000.0), 1.0)
            om *= inv_om - inv_min
            om += inv_min
            return np.asarray(om)
        s_lo, s_hi = self.params.training_range["soc_g_kg"]
        v["s"] = np.log1p(np.clip(soc, s_lo, s_hi))
        eta = sum(c * PTF_TERMS[t](v) for t, c in zip(f.terms, f.coef, strict=True))
        return np.asarray(np.exp(-np.asarray(eta)))

    def predict(
        self,
        soc_g_kg: npt.ArrayLike,
        depth_cm: npt.ArrayLike,
        *,
        clay: npt.ArrayLike | None = None,
        sand: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Median bulk density (g/cm³), clipped to :data:`BD_RANGE`.

        Parameters
        ----------
        soc_g_kg
            SOC in g/kg.
        depth_cm
            Mid-depth of the layer in cm.
        clay, sand
            Clay and sand in % (texture form only).

        Returns
        -------
        numpy.ndarray
            Median BD, broadcast over the inputs.
        """
        soc = _floats(soc_g_kg)
        _check_range("SOC", soc, 0.0, SOC_MAX, unit="g/kg", hint="give SOC in g/kg")
        depth = _floats(depth_cm)
        _check_range("depth", depth, 0.0, math.inf, unit="cm", hint="give mid-depth in cm")
        texture = self._texture({"clay": clay, "sand": sand})
        return np.clip(1.0 / self._inverse_median(soc, depth, texture), *BD_RANGE)

    def sd_log(self, soc_g_kg: npt.ArrayLike) -> FloatArray:
        """Residual sd on the log scale for SOC (g/kg), from its SOC class."""
        r = self._f.residual
        soc = _floats(soc_g_kg)
        # Count the edges at or below SOC (= searchsorted side="right"); a few vectorised
        # comparisons are about 5x faster than searchsorted on a tile slice.
        cls = np.zeros(soc.shape, dtype=np.uint8)
        above = np.empty(soc.shape, dtype=bool)
        for edge in r.soc_edges_g_kg:
            np.greater_equal(soc, edge, out=above)
            cls += above
        return np.asarray(r.sd, dtype=soc.dtype)[cls]

    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        texture = {k: _field(k, v, soc.shape) for k, v in self._texture(covariates).items()}
        mid = (intervals[:, 0] + intervals[:, 1]) / 2.0
        out = np.empty(soc.shape, dtype=soc.dtype)
        z0 = np.asarray(z)[:, 0]
        # One (draw, depth) slice at a time: contiguous and cache-sized for a 512x512 tile,
        # which makes the several passes per slice cheap.
        for d in range(soc.shape[1]):
            tex_d = {k: _depth_slice(v, d, soc.ndim).astype(soc.dtype) for k, v in texture.items()}
            depth = np.asarray(mid[d], dtype=soc.dtype)
            for t in range(soc.shape[0]):
                s = soc[t, d]
                inv = self._inverse_median(s, depth, tex_d)
                noise = self.sd_log(s)
                noise *= z0[t if z0.shape[0] > 1 else 0]
                np.exp(noise, out=noise)
                np.divide(noise, inv, out=out[t, d])  # median x exp(sd z)
        np.clip(out, *BD_RANGE, out=out)
        return out


# --------------------------------------------------------------------------- joint draws
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
    _check_range(
        "coarse fragments",
        cf_arr,
        0.0,
        1.0,
        unit="(volume fraction)",
        hi_open=True,
        hint="give CF as a fraction (% ÷ 100; SoilGrids cfvo: from_soilgrids(v, 'cfvo'))",
    )
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

"""The stock formula, unit conversions (SoilGrids integers, kg/m², CO₂e) and input checks."""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from socmap.catalog import DepthSet
from socmap.errors import ConfigError, UnitsError
from socmap.units import BD_RANGE, CO2_PER_C

FloatArray = npt.NDArray[np.floating[Any]]


Intervals = Sequence[tuple[float, float]] | DepthSet


#: Largest coarse-fragment fraction a draw may take (CF = 1 leaves no fine earth).
CF_MAX = 0.99


#: SOC above this (g/kg) cannot be organic carbon by mass; it means a unit mix-up.
SOC_MAX = 1000.0


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


def _check_cf(cf: FloatArray) -> None:
    """Raise :class:`UnitsError` unless every coarse-fragment value is a fraction in [0, 1).

    One check (and one fix hint) for the stock formula and the stock draws alike.
    """
    _check_range(
        "coarse fragments",
        cf,
        0.0,
        1.0,
        unit="(volume fraction)",
        hi_open=True,
        hint="give CF as a fraction (% ÷ 100; SoilGrids cfvo: from_soilgrids(v, 'cfvo'))",
    )


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
    _check_cf(cf)
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

"""Checks of the ``stocks`` options that need neither the run nor the network.

They live apart from :mod:`socmap.stocks._maps` (which loads torch) so that the CLI refuses a
bad number at once, before anything is loaded or written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from socmap.errors import ConfigError, UnitsError

__all__ = ["BD_UNITS", "check_stock_options"]

#: Units ``stocks_for_run`` understands for a BD band.
BD_UNITS = ("g/cm3", "cg/cm3")


def check_stock_options(
    bd: str | float,
    bd_sd: float,
    bd_units: str,
    cf: str | float,
    cf_sd: float,
    bd_strata: Mapping[Any, tuple[float, float]] | None,
) -> None:
    """Refuse bad numeric options before anything is written (the tiles would fail later).

    Raises
    ------
    ConfigError, UnitsError
        A value out of its range, or an option the chosen BD source would ignore.

    Notes
    -----
    Also refuses options that the chosen BD source would silently ignore: ``--bd-units``
    applies to a BD band only, ``--bd-table`` to ``--bd strata:BAND`` only.
    """
    for name, value in (("--bd-sd", bd_sd), ("--cf-sd", cf_sd)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} {value!r} must be a finite number >= 0 (g/cm3 or fraction)")
    if cf_sd >= 1:  # the sd of a fraction in [0, 1) is below 0.5; 1 or more is a percentage
        raise ConfigError(
            f"--cf-sd {cf_sd!r} must be the sd of a volume fraction, below 1 (e.g. 0.05 for "
            "5 percentage points)"
        )
    if bd_units not in BD_UNITS:
        raise UnitsError(
            f"--bd-units {bd_units!r} is not one socmap reads; give one of {list(BD_UNITS)!r} "
            "(kg/m3 = g/cm3 x 1000: convert the band, or describe it with scale 0.001 in the "
            "catalog)"
        )
    is_number = isinstance(bd, int | float)
    if is_number and not 0 < float(bd) < 2.65:
        raise ConfigError(f"bulk density {bd!r} g/cm3 is implausible; give 0 < BD < 2.65")
    if bd_units != "g/cm3" and (is_number or bd == "ptf" or str(bd).startswith("strata:")):
        raise UnitsError(
            f"--bd-units {bd_units!r} applies to a BD band only, and --bd {bd!r} is not one "
            "(a constant and the --bd-table values are in g/cm3); drop --bd-units or give "
            "the constant in g/cm3"
        )
    if bd_strata is not None and (is_number or not str(bd).startswith("strata:")):
        raise ConfigError(
            f"--bd-table is read only with --bd strata:BAND, and --bd is {bd!r}; name the "
            "stratum band (e.g. --bd strata:soil) or drop --bd-table"
        )
    _check_bd_spread(bd, bd_sd)
    _check_cf_spread(cf, cf_sd)
    if not isinstance(cf, str) and not (math.isfinite(float(cf)) and 0 <= float(cf) < 1):
        raise ConfigError(
            f"--cf {cf!r} must be a coarse-fragment volume fraction in [0, 1) (e.g. 0.15 for "
            "15 %) or a cube band name"
        )


#: Largest share of BD draws that may fall outside :data:`~socmap.units.BD_RANGE` (and be
#: clipped to it, which shifts the mean stock) before an sd is refused as implausible.
MAX_CLIPPED = 0.01
#: Largest BD sd accepted with a BD band, whose values the check cannot see beforehand.
MAX_BAND_BD_SD = 0.5


def _check_bd_spread(bd: str | float, bd_sd: float) -> None:
    """Refuse a BD sd so wide that its draws would often be clipped to the physical range."""
    from socmap.units import BD_RANGE

    if not bd_sd:
        return
    lo, hi = BD_RANGE
    if isinstance(bd, int | float):

        def below(x: float) -> float:  # P(BD draw < x)
            return 0.5 * (1.0 + math.erf((x - float(bd)) / (bd_sd * math.sqrt(2.0))))

        clipped = below(lo) + 1.0 - below(hi)
        if clipped > MAX_CLIPPED:
            raise ConfigError(
                f"--bd-sd {bd_sd!r} around --bd {bd!r} puts {clipped:.0%} of the BD draws "
                f"outside {lo}-{hi} g/cm3, where they would be clipped and shift the stocks; "
                "give the sd of the bulk density itself (typically 0.05-0.2 g/cm3)"
            )
    elif bd_sd > MAX_BAND_BD_SD:
        raise ConfigError(
            f"--bd-sd {bd_sd!r} g/cm3 spans most of the physical range {lo}-{hi} g/cm3, so many "
            f"draws would be clipped; give the sd of the bulk density itself (at most "
            f"{MAX_BAND_BD_SD} here, typically 0.05-0.2 g/cm3)"
        )


#: Largest share of constant-CF draws that may be clipped to [0, CF_MAX]: a --cf-sd around the
#: default --cf 0 clipped half the draws to 0 and lowered the stocks without a word.
MAX_CLIPPED_CF = 0.05


def _check_cf_spread(cf: str | float, cf_sd: float) -> None:
    """Refuse a CF sd whose draws around a constant CF would often be clipped."""
    from socmap.stocks._formula import CF_MAX

    if not cf_sd or isinstance(cf, str):
        return

    def below(x: float) -> float:  # P(CF draw < x)
        return 0.5 * (1.0 + math.erf((x - float(cf)) / (cf_sd * math.sqrt(2.0))))

    clipped = below(0.0) + 1.0 - below(CF_MAX)
    if clipped > MAX_CLIPPED_CF:
        raise ConfigError(
            f"--cf-sd {cf_sd!r} around --cf {float(cf):g} puts {clipped:.0%} of the coarse-"
            f"fragment draws outside 0-{CF_MAX:g}, where they would be clipped and shift the "
            "stocks; give the mean fraction with --cf (e.g. --cf 0.15 --cf-sd 0.05), or a "
            "smaller --cf-sd"
        )

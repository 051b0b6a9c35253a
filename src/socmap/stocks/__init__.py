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

The package owns the product end to end: the formula and conversions (``_formula``), depth
intervals and totals (``_intervals``), bulk-density sources (``_bulk_density``), the joint
draws (``_draws``), and the stock maps of a prediction run (``_maps``:
:func:`stocks_for_run`, a layer kind of the run engine; loaded on first use, since it
needs the network).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from socmap.stocks._bulk_density import (
    PTF_TERMS,
    BandBD,
    BulkDensitySource,
    PedotransferBD,
    PTFForm,
    PTFParams,
    PTFResidual,
    StratumBD,
    StratumLookup,
    load_bd_ptf,
    read_stratum_bd,
)
from socmap.stocks._draws import Summary, cumulative_draws, stock_draws, summarise
from socmap.stocks._formula import (
    CF_MAX,
    SOC_MAX,
    SOILGRIDS_UNITS,
    c_to_co2e,
    from_soilgrids,
    stock_t_ha,
    t_ha_to_kg_m2,
)
from socmap.stocks._intervals import STANDARD_TOTALS, default_totals
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
    "StockRun",
    "StratumBD",
    "StratumLookup",
    "Summary",
    "c_to_co2e",
    "check_stock_inputs",
    "cumulative_draws",
    "default_totals",
    "from_soilgrids",
    "load_bd_ptf",
    "read_stratum_bd",
    "stock_draws",
    "stock_t_ha",
    "stocks_for_run",
    "summarise",
    "t_ha_to_kg_m2",
]

#: The stock maps of a run need the network (torch): loaded on first use.
_MAPS = ("StockRun", "check_stock_inputs", "stocks_for_run")

if TYPE_CHECKING:
    from socmap.stocks._maps import StockRun, check_stock_inputs, stocks_for_run


def __getattr__(name: str) -> Any:
    if name in _MAPS:
        return getattr(import_module("socmap.stocks._maps"), name)
    raise AttributeError(f"module 'socmap.stocks' has no attribute {name!r}")

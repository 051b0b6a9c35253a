"""Tiled inference: the run engine, and SOC maps as its first product.

:func:`predict_cube` is the entry point (CLI: ``socmap predict``). :mod:`socmap.predict._run`
is the run engine (run directory, tiles, resume rules), which knows no product; each
product is a layer kind with its own tile function: :mod:`socmap.predict._soc` (SOC, DI,
AOA) here, and the products that build on a run in their own packages,
:func:`socmap.stocks.stocks_for_run` (stock maps) and :func:`socmap.strata.strata_for_run`
(stratum totals). :mod:`socmap.predict._engine` is what a tile computes with the network,
:mod:`socmap.predict._export` the COGs, quicklooks and STAC Item.
"""

from socmap.predict._engine import (
    DEVICES,
    STATS,
    TileModel,
    load_tile_model,
    predict_block,
    resolve_device,
    with_focal,
)
from socmap.predict._run import PredictionRun, RunConfig, open_run
from socmap.predict._soc import check_cube_serves, predict_cube

__all__ = [
    "DEVICES",
    "STATS",
    "PredictionRun",
    "RunConfig",
    "TileModel",
    "check_cube_serves",
    "load_tile_model",
    "open_run",
    "predict_block",
    "predict_cube",
    "resolve_device",
    "with_focal",
]

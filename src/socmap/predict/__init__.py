"""Tiled inference: stream a covariate cube through a model bundle into SOC and stock maps.

:func:`predict_cube` is the entry point (CLI: ``socmap predict``), :func:`stocks_for_run`
adds carbon stocks to a run (CLI: ``socmap stocks``) and :func:`strata_for_run` stratum
totals. :mod:`socmap.predict._run` is the run engine (run directory, tiles, resume rules),
which knows no product; each product is a layer kind with its own tile function:
:mod:`socmap.predict._soc` (SOC, DI, AOA), :mod:`socmap.predict._stocks` (stock draws) and
:mod:`socmap.predict._strata` (stratum sums). :mod:`socmap.predict._engine` is what a tile
computes with the network, :mod:`socmap.predict._export` the COGs, quicklooks and STAC Item.
"""

from socmap.predict._engine import STATS, TileModel, load_tile_model, predict_block, with_focal
from socmap.predict._run import PredictionRun, RunConfig, open_run
from socmap.predict._soc import predict_cube
from socmap.predict._stocks import StockRun, stocks_for_run
from socmap.predict._strata import StrataResult, strata_for_run

__all__ = [
    "STATS",
    "PredictionRun",
    "RunConfig",
    "StockRun",
    "StrataResult",
    "TileModel",
    "load_tile_model",
    "open_run",
    "predict_block",
    "predict_cube",
    "stocks_for_run",
    "strata_for_run",
    "with_focal",
]

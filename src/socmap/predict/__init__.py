"""Tiled inference: stream a covariate cube through a model bundle into SOC and stock maps.

:func:`predict_cube` is the entry point (CLI: ``socmap predict``) and :func:`stocks_for_run`
adds carbon stocks to a run (CLI: ``socmap stocks``); see :mod:`socmap.predict._run` for the
run directory and its resume rules, :mod:`socmap.predict._engine` for what each tile
computes, :mod:`socmap.predict._stocks` for the stock draws and :mod:`socmap.predict._export`
for the COGs, quicklooks and STAC Item.
"""

from socmap.predict._engine import STATS, TileModel, load_tile_model, predict_block, with_focal
from socmap.predict._run import PredictionRun, RunConfig, open_run, predict_cube
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

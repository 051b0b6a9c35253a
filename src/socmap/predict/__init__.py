"""Tiled inference: stream a covariate cube through a model bundle into SOC maps.

:func:`predict_cube` is the entry point (CLI: ``socmap predict``); see
:mod:`socmap.predict._run` for the run directory and its resume rules,
:mod:`socmap.predict._engine` for what each tile computes, and
:mod:`socmap.predict._export` for the COGs, quicklooks and STAC Item.
"""

from socmap.predict._engine import STATS, TileModel, load_tile_model, predict_block
from socmap.predict._run import PredictionRun, RunConfig, open_run, predict_cube

__all__ = [
    "STATS",
    "PredictionRun",
    "RunConfig",
    "TileModel",
    "load_tile_model",
    "open_run",
    "predict_block",
    "predict_cube",
]

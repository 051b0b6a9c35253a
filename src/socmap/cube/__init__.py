"""Covariate cubes: build them from local rasters or Earth Engine, open and describe them.

A cube is the Zarr store every later step reads (:mod:`socmap.cube._format` has the
layout). Two writers produce it through the same template and attrs:

* :func:`build_cube` -- a catalog of local rasters, resampled tile by tile;
* :func:`pull_cube` -- a catalog of ``ee://`` layers, fetched window by window from Earth
  Engine (resumable; needs the ``[ee]`` extra).

:func:`open_cube` opens one lazily with dask; :func:`cube_grid`, :func:`band_table`,
:func:`stand_ins` and :func:`describe_cube` read what it holds.
"""

from __future__ import annotations

from socmap.cube._earthengine import PULL_FORMAT, partial_path, plan_pull, pull_cube
from socmap.cube._format import (
    BAND_ATTRS,
    CUBE_DIMS,
    CUBE_FORMAT,
    CUBE_VAR,
    UNKNOWN_CLASS_POLICIES,
    is_socmap_cube,
    mask_unknown_classes,
    write_template,
)
from socmap.cube._local import GDAL_CACHE_BYTES, build_cube
from socmap.cube._read import CubeInfo, band_table, cube_grid, describe_cube, open_cube, stand_ins
from socmap.grid import MAX_PIXELS, check_grid_size

__all__ = [
    "BAND_ATTRS",
    "CUBE_DIMS",
    "CUBE_FORMAT",
    "CUBE_VAR",
    "GDAL_CACHE_BYTES",
    "MAX_PIXELS",
    "PULL_FORMAT",
    "UNKNOWN_CLASS_POLICIES",
    "CubeInfo",
    "band_table",
    "build_cube",
    "check_grid_size",
    "cube_grid",
    "describe_cube",
    "is_socmap_cube",
    "mask_unknown_classes",
    "open_cube",
    "partial_path",
    "plan_pull",
    "pull_cube",
    "stand_ins",
    "write_template",
]

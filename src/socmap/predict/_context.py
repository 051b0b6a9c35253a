"""Global context covariates for a regional map, exactly as the training table saw them.

A fine-tuned bundle also reads the pretrained model's global covariates (10' climate,
terrain, land cover), which a regional cube usually lacks. At training time each site took the
value of the global pixel containing it (:func:`socmap.training.global_context_covariates`);
a map must do the same, so every regional pixel takes the value of the global pixel that
contains its centre (no interpolation, which would feed the network values it never saw).

The global rasters are cropped around the region once, stored in the run directory, and
sampled per tile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pyproj import Transformer

from socmap.catalog import load_catalog
from socmap.errors import CatalogError
from socmap.grid import Grid

__all__ = ["CONTEXT_CATALOG", "build_context", "sample_context"]

CONTEXT_CATALOG = "global_10arcmin"
_MARGIN_DEG = 0.5


def context_bands(catalog: str = CONTEXT_CATALOG) -> list[str]:
    """Bands the context catalog can supply."""
    return load_catalog(catalog).band_names


def build_context(grid: Grid, bands: list[str], out: Path, catalog: str = CONTEXT_CATALOG) -> Path:
    """Crop the global catalog's ``bands`` around ``grid`` into a small cube at ``out``."""
    from socmap.cube import build_cube

    cat = load_catalog(catalog)
    if cat.grid is None:
        raise CatalogError(f"catalog {cat.name!r} has no grid to crop; give it one")
    to_lonlat = Transformer.from_crs(grid.pyproj_crs, "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = to_lonlat.transform_bounds(*grid.bounds)
    m = _MARGIN_DEG
    crop = cat.grid.to_grid().crop((minx - m, miny - m, maxx + m, maxy + m))
    subset = cat.model_copy(update={"covariates": tuple(cat[b] for b in bands)})
    return build_cube(subset, crop, out, progress=False, overwrite=True)


def sample_context(context: Path, tile: Grid) -> tuple[np.ndarray, list[str]]:
    """``(bands, h, w)`` context values at the centres of ``tile``'s pixels, and band names."""
    from socmap.cube import cube_grid, open_cube

    cube = open_cube(context)
    values = cube.values
    source = cube_grid(cube)
    xs, ys = np.meshgrid(tile.xs, tile.ys)
    tr = Transformer.from_crs(tile.pyproj_crs, source.pyproj_crs, always_xy=True)
    gx, gy = tr.transform(xs.ravel(), ys.ravel())
    frow, fcol = source.rowcol(np.asarray(gx), np.asarray(gy))
    rows, cols = np.floor(frow).astype(np.int64), np.floor(fcol).astype(np.int64)
    inside = (rows >= 0) & (rows < source.height) & (cols >= 0) & (cols < source.width)
    out = np.full((values.shape[0], xs.size), np.nan, dtype=np.float32)
    out[:, inside] = values[:, rows[inside], cols[inside]]
    return out.reshape(values.shape[0], *xs.shape), [str(b) for b in cube.band.values]

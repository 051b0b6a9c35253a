"""Sites on a grid: their coordinates in the grid's CRS, and what sampling them gave.

Shared by every sampler of covariates at sites: :func:`socmap.extraction.extract` (from a
cube) and :func:`socmap.sources.earthengine.sample_sites` (from Earth Engine).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from socmap.errors import ProfileValidationError
from socmap.grid import Grid, normalise_crs

__all__ = ["EXTRACT_STATUSES", "sites_to_grid_crs"]

#: Per-site outcome of extraction, in the order they are checked.
EXTRACT_STATUSES = {
    "ok": "every covariate has a value",
    "missing_coordinates": "x or y is missing; no covariates",
    "outside_grid": "the site lies outside the cube's grid; no covariates",
    "nodata": "inside the grid, but every covariate is nodata",
    "partial_nodata": "inside the grid, some covariates are nodata",
}


def sites_to_grid_crs(uniq: pd.DataFrame, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Sites' ``x``, ``y`` (each in its own ``crs``) in the grid's CRS."""
    from pyproj import Transformer

    x = uniq["x"].to_numpy(dtype=float)
    y = uniq["y"].to_numpy(dtype=float)
    xs = np.full_like(x, np.nan)
    ys = np.full_like(y, np.nan)
    crs_values = uniq["crs"].fillna("").astype(str)
    for crs in crs_values.unique():
        sel = (crs_values == crs).to_numpy()
        if not crs:
            raise ProfileValidationError(
                f"{int(sel.sum())} sites have no CRS (e.g. {uniq.loc[sel, 'site_id'].iloc[0]!r}); "
                "set the crs column when reading the profiles"
            )
        src = normalise_crs(crs)
        if src == grid.crs:
            xs[sel], ys[sel] = x[sel], y[sel]
        else:
            tr = Transformer.from_crs(src, grid.pyproj_crs, always_xy=True)
            xs[sel], ys[sel] = tr.transform(x[sel], y[sel])
    return xs, ys

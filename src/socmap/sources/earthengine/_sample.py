"""Sample Earth Engine layers at profile sites, pixel-exactly on a Grid.

Each site is located in the grid's pixel that contains it (as :func:`socmap.extraction.extract`
with ``method="nearest"`` does on a cube), and its values are fetched with the same
expressions and the same computePixels grid as :func:`~._pull.pull_cube`, so they equal the
pulled cube at that pixel. Distinct pixels are grouped by ``cell`` x ``cell`` blocks of the
grid and each block is fetched as the bounding box of its sites' pixels: clustered sites share
a request, an isolated site costs a 1 x 1 request. Requests go through the same retries and
bounded concurrency as a pull.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from socmap._parallel import bounded_map
from socmap._progress import track
from socmap.catalog import Catalog, resolve_catalog, resolve_grid
from socmap.errors import BandMismatch, ConfigError, ProfileValidationError
from socmap.grid import Grid, Window
from socmap.sources.earthengine._client import FetchStats, PixelFetcher, RetryPolicy
from socmap.sources.earthengine._expr import band_image, check_ee_only, request_image
from socmap.sources.earthengine._tiling import REQUEST_LIMIT_BYTES, band_groups
from socmap.sources.sites import EXTRACT_STATUSES, sites_to_grid_crs

__all__ = ["sample_sites"]

logger = logging.getLogger("socmap.sources.earthengine")


def _site_xy(sites: pd.DataFrame, grid: Grid) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Distinct sites and their coordinates in the grid's CRS."""
    from pyproj import Transformer

    if "site_id" not in sites.columns:
        raise ProfileValidationError(
            f"site table lacks 'site_id' (columns: {list(sites.columns)!r}); add one id per site"
        )
    if sites.empty:
        raise ProfileValidationError("site table is empty; nothing to sample")
    if {"x", "y"} <= set(sites.columns):
        cols = ["site_id", "x", "y", *(["crs"] if "crs" in sites.columns else [])]
        uniq = sites.drop_duplicates("site_id")[cols].reset_index(drop=True)
        if "crs" in uniq.columns:
            xs, ys = sites_to_grid_crs(uniq, grid)
            return uniq, xs, ys
        return uniq, uniq["x"].to_numpy(float), uniq["y"].to_numpy(float)
    if {"longitude", "latitude"} <= set(sites.columns):
        uniq = sites.drop_duplicates("site_id")[["site_id", "longitude", "latitude"]]
        uniq = uniq.reset_index(drop=True)
        tr = Transformer.from_crs("EPSG:4326", grid.pyproj_crs, always_xy=True)
        xs, ys = tr.transform(uniq["longitude"].to_numpy(float), uniq["latitude"].to_numpy(float))
        return uniq, np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    raise ProfileValidationError(
        f"site table needs x and y (in the grid's CRS, or with a crs column) or longitude and "
        f"latitude (WGS84); it has {list(sites.columns)!r}"
    )


def _cells(rows: np.ndarray, cols: np.ndarray, cell: int) -> list[tuple[Window, np.ndarray]]:
    """Group pixel indices by ``cell`` blocks; each group's window is its bounding box."""
    keys = (rows // cell) * (int(cols.max()) // cell + 1) + cols // cell
    out = []
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        r, c = rows[idx], cols[idx]
        out.append((Window(int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1), idx))
    return out


def sample_sites(
    catalog: Catalog | str | Path,
    sites: pd.DataFrame,
    grid: Grid | None = None,
    *,
    cell: int = 32,
    workers: int = 4,
    max_retries: int = 8,
    backoff_s: float = 1.0,
    max_backoff_s: float = 64.0,
    seed: int = 0,
    request_limit: int = REQUEST_LIMIT_BYTES,
    progress: bool = True,
) -> pd.DataFrame:
    """Sample every band of an Earth Engine catalog at sites, on the pixels of ``grid``.

    Parameters
    ----------
    catalog
        Catalog whose layers are all ``ee://``.
    sites
        Table with ``site_id`` and either ``x``, ``y`` (in the grid's CRS, or in the CRS of a
        ``crs`` column, as in a canonical profile table) or ``longitude``, ``latitude``
        (WGS84). Several rows per site (horizons) are fine: each site is sampled once and
        its values join every row.
    grid
        The grid whose pixels are sampled; ``None`` uses the catalog's ``grid``.
    cell
        Sites whose pixels fall in one ``cell`` x ``cell`` block of the grid share a request
        (their bounding box).
    workers, max_retries, backoff_s, max_backoff_s, seed, request_limit
        As for :func:`~socmap.sources.earthengine.pull_cube`.
    progress
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The input rows in input order with one float32 column per band (NaN where the site
        has no value), ``extract_status`` (see :data:`socmap.extraction.EXTRACT_STATUSES`:
        ``outside_grid`` and ``missing_coordinates`` sites are kept, flagged and counted)
        and ``n_missing_covariates``. ``attrs["extract_summary"]`` counts distinct sites
        per status; ``attrs["ee_requests"]`` holds the request counters.

    Raises
    ------
    ProfileValidationError
        No ``site_id``, no usable coordinate columns, or an empty table.
    BandMismatch
        A band name clashes with a column of ``sites``.
    EarthEngineError
        Earth Engine is not initialised, refused a request, or kept failing.
    """
    cat = resolve_catalog(catalog)
    target = resolve_grid(cat, grid)
    check_ee_only(cat)
    if not isinstance(cell, int) or cell < 1 or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"cell {cell!r} and workers {workers!r} must be positive integers")
    names = cat.band_names
    clash = [b for b in names if b in sites.columns]
    if clash:
        raise BandMismatch(
            f"bands {clash!r} clash with table columns of the same name; rename or drop those "
            "columns before sampling"
        )
    fetcher = PixelFetcher(RetryPolicy(max_retries, backoff_s, max_backoff_s, seed), FetchStats())
    uniq, xs, ys = _site_xy(sites, target)
    row_f, col_f = target.rowcol(xs, ys)
    has_xy = np.isfinite(row_f) & np.isfinite(col_f)
    with np.errstate(invalid="ignore"):
        inside = (
            has_xy & (row_f >= 0) & (row_f < target.height) & (col_f >= 0) & (col_f < target.width)
        )
    values = np.full((len(uniq), len(names)), np.nan, dtype=np.float32)
    idx_in = np.flatnonzero(inside)
    if idx_in.size:
        rows = np.floor(row_f[idx_in]).astype(np.int64)
        cols = np.floor(col_f[idx_in]).astype(np.int64)
        pixels, inverse = np.unique(np.stack([rows, cols], axis=1), axis=0, return_inverse=True)
        pixel_values = _fetch_pixels(
            cat, target, pixels, cell, workers, fetcher, progress, int(request_limit)
        )
        values[idx_in] = pixel_values[inverse.ravel()]
    n_missing = np.isnan(values).sum(axis=1)
    status = np.select(
        [~has_xy, ~inside, n_missing == len(names), n_missing > 0],
        ["missing_coordinates", "outside_grid", "nodata", "partial_nodata"],
        default="ok",
    )
    per_site = pd.DataFrame(values, columns=names)
    per_site.insert(0, "site_id", uniq["site_id"].to_numpy())
    per_site["extract_status"] = status
    per_site["n_missing_covariates"] = n_missing.astype(int)
    table = sites.merge(per_site, on="site_id", how="left", validate="many_to_one")
    summary = {s: int((status == s).sum()) for s in EXTRACT_STATUSES}
    table.attrs["extract_summary"] = summary
    table.attrs["ee_requests"] = fetcher.stats.as_dict()
    flagged = {k: v for k, v in summary.items() if k not in ("ok", "partial_nodata") and v}
    if flagged:
        logger.warning("sampled %d sites; without values: %s", len(uniq), flagged)
    return table


def _fetch_pixels(
    cat: Catalog,
    grid: Grid,
    pixels: np.ndarray,
    cell: int,
    workers: int,
    fetcher: PixelFetcher,
    progress: bool,
    request_limit: int,
) -> np.ndarray:
    """Values of every band at the distinct ``(row, col)`` pixels, scale/offset applied."""
    specs = cat.covariates
    names = cat.band_names
    groups = band_groups(["float32"] * len(names), cell, limit=request_limit)
    images = [request_image([band_image(specs[i]) for i in g]) for g in groups]
    out = np.full((len(pixels), len(names)), np.nan, dtype=np.float32)
    cells = _cells(pixels[:, 0], pixels[:, 1], cell)

    def fetch(item: tuple[int, tuple[Window, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        index, (window, idx) = item
        sub = grid.window(window)
        vals = np.empty((len(idx), len(names)), dtype=np.float32)
        r = pixels[idx, 0] - window.row0
        c = pixels[idx, 1] - window.col0
        for g, (bands, image) in enumerate(zip(groups, images, strict=True)):
            what = (
                f"site request {index}.{g} (rows {window.row0}:{window.row1}, cols "
                f"{window.col0}:{window.col1}, {len(idx)} site pixel(s))"
            )
            block = fetcher.fetch(image, sub, [names[i] for i in bands], (index, g), what)
            vals[:, bands[0] : bands[-1] + 1] = block[:, r, c].T
        return idx, vals

    results: Iterable[tuple[np.ndarray, np.ndarray]] = bounded_map(
        fetch, list(enumerate(cells)), workers
    )
    if progress:
        results = track(results, f"sampling {cat.name!r} at sites", total=len(cells))
    for idx, vals in results:
        out[idx] = vals
    for i, spec in enumerate(specs):
        if spec.scale != 1.0 or spec.offset != 0.0:
            out[:, i] *= np.float32(spec.scale)
            out[:, i] += np.float32(spec.offset)
        if spec.classes is not None:
            codes = np.asarray(sorted(spec.classes), dtype=np.float32)
            out[~np.isin(out[:, i], codes), i] = np.nan
    return out

"""Sample a covariate cube at soil-profile sites, giving a tidy training table.

Every input row comes back. Sites outside the grid, on nodata, or without coordinates get a
status and NaN covariates, and are counted in :attr:`Extraction.summary`; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from socmap._io import (
    atomic_path,
    refuse_file_in_the_way,
    refuse_input_as_output,
    refuse_inside_store,
)
from socmap.cube._read import UNREADABLE, unreadable_cube
from socmap.errors import BandMismatch, ConfigError, ProfileValidationError
from socmap.focal import FocalSpec, check_focal_bands, focal_mean, window_at
from socmap.grid import Grid
from socmap.sources.sites import EXTRACT_STATUSES, sites_to_grid_crs

__all__ = [
    "EXTRACT_STATUSES",
    "Extraction",
    "extract",
    "extract_focal",
    "require_covariate_values",
    "require_sites_on_grid",
    "write_table",
]

Method = Literal["nearest", "bilinear"]


@dataclass(frozen=True)
class Extraction:
    """Result of :func:`extract`.

    Attributes
    ----------
    table
        The input rows, in input order, with one column per cube band, plus
        ``extract_status`` and ``n_missing_covariates``.
    method
        Sampling method used for continuous bands (categorical bands are always nearest).
    bands
        Band names, in cube order.
    """

    table: pd.DataFrame
    method: str
    bands: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, int]:
        """Number of distinct sites per status (every status listed, zeros included)."""
        per_site = self.table.drop_duplicates("site_id")["extract_status"].value_counts()
        return {s: int(per_site.get(s, 0)) for s in EXTRACT_STATUSES}


def _site_frame(sites: pd.DataFrame) -> pd.DataFrame:
    from socmap.profiles import blank_site_ids

    required = ["site_id", "x", "y", "crs"]
    missing = [c for c in required if c not in sites.columns]
    if missing:
        raise ProfileValidationError(
            f"site table lacks columns {missing!r}; expected {required!r} (`socmap profiles "
            "harmonise` writes such a table from a profile file)"
        )
    if sites.empty:
        raise ProfileValidationError("site table is empty; nothing to extract")
    ids = sites["site_id"]
    blank = blank_site_ids(ids)
    if blank.any():  # once all in one site: every row took the first row's covariates, exit 0
        first = sites[blank].iloc[0]
        raise ProfileValidationError(
            f"{int(blank.sum())} of the {len(sites)} rows of the site table have no site_id "
            f"(e.g. the row at x {first['x']}, y {first['y']}); give every row the id of "
            "its site (`socmap profiles qc` lists them as missing_site_id)"
        )
    places = sites.groupby("site_id", sort=False)[["x", "y", "crs"]].nunique(dropna=False)
    moved = places.index[(places > 1).any(axis=1)]
    if len(moved):  # one id, two places: the second would silently get the first's covariates
        rows = sites[sites["site_id"] == moved[0]].drop_duplicates(["x", "y", "crs"])
        shown = ", ".join(f"({r.x:.6g}, {r.y:.6g}, {r.crs})" for r in rows.head(2).itertuples())
        raise ProfileValidationError(
            f"site_id {moved[0]!r} is at {len(rows)} places ({shown}; {len(moved)} site ids "
            "like it): give each location its own site_id (`socmap profiles qc` lists them as "
            "site_multiple_locations)"
        )
    uniq = sites.drop_duplicates("site_id")[required].reset_index(drop=True)
    return uniq


def _snap(v: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Round offsets within ``tol`` of a whole pixel, so pixel centres sample exactly."""
    r = np.round(v)
    return np.where(np.abs(v - r) < tol, r, v)


def _sample(
    cube: xr.DataArray, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Weighted sum over ``k`` neighbours, ignoring NaN ones; shapes (k, n) -> (n, bands)."""
    k, n = rows.shape
    flat_r = xr.DataArray(rows.ravel(), dims="point")
    flat_c = xr.DataArray(cols.ravel(), dims="point")
    try:
        vals = cube.isel(y=flat_r, x=flat_c).transpose("point", "band").to_numpy()
    except UNREADABLE as exc:  # once an internal error
        raise unreadable_cube("the cube at the sites' pixels", exc) from None
    vals = vals.reshape(k, n, -1).astype(float)
    w = np.broadcast_to(weights[:, :, None], vals.shape).copy()
    w[np.isnan(vals)] = 0.0
    wsum = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(wsum > 0, np.nansum(vals * w, axis=0) / wsum, np.nan)
    return out


def extract(
    cube: xr.DataArray,
    sites: pd.DataFrame,
    *,
    method: Method = "nearest",
    bands: Sequence[str] | None = None,
) -> Extraction:
    """Sample ``cube`` at the sites of a profile or harmonised table.

    Parameters
    ----------
    cube
        Covariate cube from :func:`socmap.cube.open_cube` (``band, y, x`` with a CRS).
    sites
        Table with ``site_id``, ``x``, ``y``, ``crs`` (any CRS; reprojected to the cube's).
        Several rows per site (horizons or depth intervals) are fine: each site is sampled
        once and the values are joined to all its rows.
    method
        ``"nearest"`` takes the pixel containing the site. ``"bilinear"`` interpolates
        between the four nearest pixel centres, ignoring nodata neighbours; at a pixel
        centre it returns that pixel exactly. Categorical bands are always nearest.
    bands
        Subset of bands to sample; all by default.

    Returns
    -------
    Extraction
        The table with covariate columns and a per-row ``extract_status``.

    Raises
    ------
    ProfileValidationError
        If the table lacks ``site_id``/``x``/``y``/``crs`` or is empty.
    BandMismatch
        If a requested band is not in the cube, or a band name clashes with a table column.
    """
    from socmap.cube import band_table, cube_grid

    if method not in ("nearest", "bilinear"):
        raise ConfigError(f"method {method!r} must be 'nearest' or 'bilinear'")
    all_bands = [str(b) for b in cube["band"].to_numpy()]
    kind_of = dict(zip(all_bands, band_table(cube)["kind"], strict=True))
    if bands is not None:
        missing = [b for b in bands if b not in all_bands]
        if missing:
            raise BandMismatch(f"cube lacks bands {missing!r}; it has {all_bands!r}")
        cube = cube.sel(band=list(bands))
        all_bands = list(bands)
    clash = [b for b in all_bands if b in sites.columns]
    if clash:
        raise BandMismatch(
            f"cube bands {clash!r} clash with table columns of the same name; rename or drop "
            "those columns before extracting"
        )
    grid = cube_grid(cube)
    uniq = _site_frame(sites)
    row_f, col_f = _site_pixels(uniq, grid)
    has_xy = np.isfinite(row_f) & np.isfinite(col_f)
    inside = has_xy & _inside(row_f, col_f, grid)

    n = len(uniq)
    values = np.full((n, len(all_bands)), np.nan)
    idx = np.flatnonzero(inside)
    if idx.size:
        r, c = row_f[idx], col_f[idx]
        near_r = np.clip(np.floor(r).astype(int), 0, grid.height - 1)[None, :]
        near_c = np.clip(np.floor(c).astype(int), 0, grid.width - 1)[None, :]
        values[idx] = _sample(cube, near_r, near_c, np.ones((1, idx.size)))
        if method == "bilinear":
            cont = [i for i, b in enumerate(all_bands) if kind_of[b] != "categorical"]
            if cont:
                # Pixel centres sit at i + 0.5; interpolate between the centres around the site.
                fr, fc = _snap(r - 0.5), _snap(c - 0.5)
                r0 = np.floor(fr).astype(int)
                c0 = np.floor(fc).astype(int)
                dr, dc = fr - r0, fc - c0
                rr = np.stack([r0, r0, r0 + 1, r0 + 1])
                cc = np.stack([c0, c0 + 1, c0, c0 + 1])
                w = np.stack([(1 - dr) * (1 - dc), (1 - dr) * dc, dr * (1 - dc), dr * dc])
                rr = np.clip(rr, 0, grid.height - 1)
                cc = np.clip(cc, 0, grid.width - 1)
                sub = cube.isel(band=cont)
                values[np.ix_(idx, np.asarray(cont))] = _sample(sub, rr, cc, w)

    n_missing = np.isnan(values).sum(axis=1)
    status = np.where(
        ~has_xy,
        "missing_coordinates",
        np.where(
            ~inside,
            "outside_grid",
            np.where(
                n_missing == len(all_bands),
                "nodata",
                np.where(n_missing > 0, "partial_nodata", "ok"),
            ),
        ),
    )
    per_site = pd.DataFrame(values.astype("float32"), columns=all_bands)
    per_site.insert(0, "site_id", uniq["site_id"].to_numpy())
    per_site["extract_status"] = status
    per_site["n_missing_covariates"] = n_missing.astype(int)
    table = sites.merge(per_site, on="site_id", how="left", validate="many_to_one")
    return Extraction(table=table, method=method, bands=all_bands)


def _site_pixels(sites: pd.DataFrame, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Fractional ``(row, col)`` of each site (``x``, ``y``, ``crs``) on ``grid``.

    Sites without coordinates get NaN; one place, so every sampler finds the same pixels.
    """
    xs, ys = sites_to_grid_crs(sites, grid)
    return grid.rowcol(xs, ys)


def _inside(row: np.ndarray, col: np.ndarray, grid: Grid) -> np.ndarray:
    """Whether each fractional pixel position lies on ``grid`` (NaN positions do not)."""
    with np.errstate(invalid="ignore"):
        return np.asarray((row >= 0) & (row < grid.height) & (col >= 0) & (col < grid.width))


def _on_grid(sites: pd.DataFrame, grid: Grid) -> np.ndarray:
    """Whether each site (``x``, ``y``, ``crs``) lies on ``grid``."""
    return _inside(*_site_pixels(sites, grid), grid)


def _where_to_look(sites: pd.DataFrame, grid: Grid, what: str) -> str:
    """Say what to fix for sites off ``grid``: swapped x and y when that fits, else the CRS."""
    fits = int(_on_grid(sites.assign(x=sites["y"], y=sites["x"]), grid).sum())
    if fits:
        return (
            f"with x and y swapped {fits} of them would lie on the {what}: the table's x "
            "column probably holds y (latitude or northing); swap the two columns"
        )
    return (
        f"check the table's x, y and crs columns against the {what} (reading a profile file: "
        "--crs; in a run configuration: profiles.crs)"
    )


def _bounds(grid: Grid) -> str:
    b = grid.bounds
    return f"x {b[0]:.6g}..{b[2]:.6g}, y {b[1]:.6g}..{b[3]:.6g} in {grid.crs}"


def require_covariate_values(extraction: Extraction, cube: xr.DataArray) -> None:
    """Refuse an extraction in which no site got a covariate value.

    Such a table is all NaN covariates: nothing can be trained or checked on it. The usual
    causes are a wrong ``crs`` column and swapped x and y; the message names the cube's
    bounds, the counts per status, and says so when swapping x and y would put sites on
    the cube.

    Raises
    ------
    ProfileValidationError
        If the table has rows and none of its sites has a covariate value.
    """
    summary = extraction.summary
    if summary.get("ok", 0) + summary.get("partial_nodata", 0) > 0 or extraction.table.empty:
        return
    from socmap.cube import cube_grid

    grid = cube_grid(cube)
    uniq = _site_frame(extraction.table)
    if summary.get("outside_grid", 0):
        hint = _where_to_look(uniq, grid, "cube")
    elif summary.get("missing_coordinates", 0):
        hint = (
            "x/y are missing or impossible in their CRS (e.g. metres labelled EPSG:4326): "
            "check the crs column; `socmap profiles qc` flags each row"
        )
    else:
        hint = "the cube has no data there: check the rasters' coverage and the catalog's nodata"
    raise ProfileValidationError(
        f"none of the {len(uniq)} profiles has a covariate value: "
        f"{summary.get('outside_grid', 0)} lie outside the cube ({_bounds(grid)}), "
        f"{summary.get('nodata', 0)} on nodata pixels, "
        f"{summary.get('missing_coordinates', 0)} without coordinates; {hint}"
    )


def require_sites_on_grid(sites: pd.DataFrame, grid: Grid, what: str = "grid") -> None:
    """Refuse a site table none of whose sites lies on ``grid`` (checked before a cube exists).

    Raises
    ------
    ProfileValidationError
        If the table has sites and none of them lies on the grid.
    """
    uniq = _site_frame(sites)
    if _on_grid(uniq, grid).any():
        return
    raise ProfileValidationError(
        f"none of the {len(uniq)} profiles lies on the {what} ({_bounds(grid)}); "
        f"{_where_to_look(uniq, grid, what)}"
    )


def extract_focal(cube: xr.DataArray, sites: pd.DataFrame, spec: FocalSpec) -> pd.DataFrame:
    """Add focal-mean columns (:mod:`socmap.focal`) at the pixels containing the sites.

    The window of a site near the grid edge sees nodata beyond it, as a map tile does, so a
    site's focal values equal the map's at its pixel. Rows whose site has no coordinates or
    lies outside the grid get NaN (kept, never dropped; :func:`extract` flags them).

    Raises
    ------
    BandMismatch
        A focal band is not a continuous cube band, or a focal column already exists.
    """
    from socmap.cube import band_table, cube_grid

    check_focal_bands(band_table(cube), spec)
    clash = [n for n in spec.names if n in sites.columns]
    if clash:
        raise BandMismatch(f"table already has columns {clash!r}; drop them before extracting")
    grid = cube_grid(cube)
    uniq = _site_frame(sites)
    row_f, col_f = _site_pixels(uniq, grid)
    inside = _inside(row_f, col_f, grid)
    sub = cube.sel(band=list(spec.bands))
    values = np.full((len(uniq), len(spec.bands)), np.nan, dtype=np.float32)
    for i in np.flatnonzero(inside):
        window = window_at(sub, int(np.floor(row_f[i])), int(np.floor(col_f[i])), spec.radius)
        values[i] = focal_mean(window, spec.radius)[:, 0, 0]
    per_site = pd.DataFrame(values, columns=spec.names)
    per_site.insert(0, "site_id", uniq["site_id"].to_numpy())
    return sites.merge(per_site, on="site_id", how="left", validate="many_to_one")


#: Table formats socmap writes, by suffix.
TABLE_SUFFIXES = (".parquet", ".csv")


def check_table_path(
    path: str | Path, inputs: Sequence[str | Path | None] = (), flag: str = "--out"
) -> Path:
    """Refuse an output table whose suffix socmap does not write (before any work).

    ``inputs`` are the command's input files: an output that is one of them is refused too
    (it would replace the input with the result), as is one inside a Zarr store or a model
    bundle (:func:`~socmap._io.refuse_inside_store`).

    Examples
    --------
    >>> check_table_path("sites.xlsx")
    Traceback (most recent call last):
    ...
    socmap.errors.ConfigError: output 'sites.xlsx' must end in .parquet or .csv (socmap does not write .xlsx); e.g. sites.csv
    """  # noqa: E501
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(
            f"output {str(path)!r} must end in .parquet or .csv (socmap does not write "
            f"{path.suffix or 'files without a suffix'}); e.g. {path.name.split('.')[0]}.csv"
        )
    refuse_file_in_the_way(path, "output", folder=False)
    refuse_input_as_output(path, inputs, flag)
    refuse_inside_store(path, flag)
    return path


def write_table(table: pd.DataFrame, path: str | Path, *, record: bool = False) -> Path:
    """Write a table as Parquet (``.parquet``) or CSV (``.csv``), atomically.

    ``record`` lists it in its folder's ledger (:func:`socmap._io.record_output`): a file a
    command adds to an ``--out`` folder, which a later run may replace.
    """
    path = check_table_path(path)
    with atomic_path(path, record=record) as tmp:
        if path.suffix.lower() == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)
    return path

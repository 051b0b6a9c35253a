"""Assemble a region's training table: harmonised SOC, regional and global covariates.

A transferred model needs the covariates it was pretrained on (the global 10' layers) at the
region's sites, plus the region's own covariates from its cube. The global ones are sampled
from the embedded global rasters on a grid cropped around the sites, so any region works.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr
from pyproj import Transformer

from socmap.catalog import DepthSet, get_depth_set, load_catalog
from socmap.errors import ConfigError, ProfileValidationError
from socmap.grid import normalise_crs

if TYPE_CHECKING:  # depth imports scikit-learn: loaded only when harmonising
    from socmap.depth import Harmonised

__all__ = [
    "RegionalTable",
    "global_context_covariates",
    "regional_training_table",
    "sites_lonlat",
]

#: Margin (degrees) around the sites when cropping the global grid.
GLOBAL_CROP_MARGIN_DEG = 0.5


@dataclass(frozen=True)
class RegionalTable:
    """A region's training table and its accounting.

    Attributes
    ----------
    table
        One row per site x depth interval: the harmonised table, the regional cube's bands,
        the global bands, ``extract_status`` for the regional cube.
    regional_bands, global_bands
        Covariate columns from each source.
    continuous_regional_bands
        The continuous ones among ``regional_bands`` (a network takes them as a new group).
    counts
        Sites per spline status and per extraction status.
    band_units
        ``{band: units}`` of every covariate column (recorded in bundles trained on it, so
        mapping with the bands in other units is refused).
    """

    table: pd.DataFrame
    regional_bands: list[str] = field(default_factory=list)
    global_bands: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    continuous_regional_bands: list[str] = field(default_factory=list)
    band_units: dict[str, str] = field(default_factory=dict)


def sites_lonlat(sites: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Longitude and latitude of every row of ``sites`` (``x, y`` in each row's ``crs``)."""
    lon = pd.Series(index=sites.index, dtype=float)
    lat = pd.Series(index=sites.index, dtype=float)
    for crs, idx in sites.groupby(sites["crs"].astype(str)).groups.items():
        tr = Transformer.from_crs(normalise_crs(crs), "EPSG:4326", always_xy=True)
        x, y = tr.transform(sites.loc[idx, "x"].to_numpy(), sites.loc[idx, "y"].to_numpy())
        lon.loc[idx], lat.loc[idx] = x, y
    return lon, lat


def global_context_covariates(
    sites: pd.DataFrame, *, catalog: str | Path = "global_10arcmin"
) -> pd.DataFrame:
    """Sample the global covariates at sites, from a global grid cropped around them.

    Parameters
    ----------
    sites
        Table with ``site_id``, ``x``, ``y``, ``crs`` (any CRS; several rows per site are fine).
    catalog
        Global covariate catalog.

    Returns
    -------
    pandas.DataFrame
        One row per site: ``site_id`` and the catalog's bands (nearest pixel), in the order of
        first appearance in ``sites``.
    """
    from socmap.cube import build_cube, open_cube
    from socmap.extraction import extract

    uniq = sites.drop_duplicates("site_id")[["site_id", "x", "y", "crs"]]
    lon, lat = sites_lonlat(uniq)
    if lon.notna().sum() == 0:
        raise ProfileValidationError("no site has coordinates; cannot sample global covariates")
    cat = load_catalog(catalog)
    if cat.grid is None:
        raise ProfileValidationError(f"catalog {cat.name!r} needs a grid to be cropped")
    m = GLOBAL_CROP_MARGIN_DEG
    grid = cat.grid.to_grid().crop((lon.min() - m, lat.min() - m, lon.max() + m, lat.max() + m))
    with tempfile.TemporaryDirectory(prefix="socmap-global-") as tmp:
        cube: xr.DataArray = open_cube(build_cube(cat, grid, Path(tmp) / "g.zarr", progress=False))
        values = extract(cube.load(), uniq).table
    return values[["site_id", *cat.band_names]].reset_index(drop=True)


def _in_cube_crs(table: pd.DataFrame, cube: xr.DataArray) -> pd.DataFrame:
    """Site coordinates in the cube's CRS, so block sizes are in the cube's units.

    Profiles often come in lon/lat (e.g. the blue-carbon templates) while the cube is
    projected; spatial CV blocks, early-stopping splits and AOA folds are then sized in
    metres as documented. The original coordinates are kept as ``x_source``, ``y_source``
    and ``crs_source``.
    """
    from socmap.cube import cube_grid
    from socmap.grid import normalise_crs

    target = cube_grid(cube).crs
    if "crs" not in table.columns or table.empty:
        return table
    crs_norm = table["crs"].map(lambda c: normalise_crs(c) if isinstance(c, str) else c)
    if (crs_norm == target).all():
        return table
    out = table.copy()
    out["x_source"], out["y_source"], out["crs_source"] = table["x"], table["y"], table["crs"]
    for crs, rows in out.groupby(crs_norm, sort=False):
        if crs == target:
            continue
        to_cube = Transformer.from_crs(str(crs), target, always_xy=True)
        x, y = to_cube.transform(rows["x"].to_numpy(float), rows["y"].to_numpy(float))
        out.loc[rows.index, "x"], out.loc[rows.index, "y"] = x, y
    out["crs"] = target
    return out


def _check_harmonised(harmonised: Harmonised, depths: DepthSet, profiles: pd.DataFrame) -> None:
    """Refuse a harmonised table of other intervals or other sites than asked for."""
    t = harmonised.table
    got = sorted({(float(a), float(b)) for a, b in zip(t["top_cm"], t["bottom_cm"], strict=True)})
    want = sorted((float(a), float(b)) for a, b in depths.intervals)
    if got != want or "soc_g_kg" not in t.columns:
        raise ConfigError(
            f"the harmonised table has intervals {got!r}, not those of depth set "
            f"{depths.name!r} {want!r} (or no soc_g_kg column); harmonise the profiles onto "
            f"{depths.name!r}, or leave harmonised out"
        )
    if set(harmonised.sites["site_id"]) != set(profiles["site_id"]):
        raise ConfigError(
            "the harmonised table is of other sites than the profiles; harmonise these "
            "profiles, or leave harmonised out"
        )


def regional_training_table(
    profiles: pd.DataFrame,
    cube: xr.DataArray,
    *,
    depths: str | DepthSet = "globalsoilmap",
    max_depth_cm: float | None = None,
    global_catalog: str | Path | None = "global_10arcmin",
    accept_qc: Sequence[str] = (),
    harmonised: Harmonised | None = None,
) -> RegionalTable:
    """QC and harmonise a region's profiles and join regional and global covariates.

    Parameters
    ----------
    profiles
        Canonical profile table (see :mod:`socmap.profiles`).
    cube
        The region's covariate cube (:func:`socmap.cube.open_cube`).
    depths
        Depth set for the spline.
    max_depth_cm
        Keep only intervals whose top lies above this depth (e.g. 100 for 0–100 cm).
    global_catalog
        Catalog of the global covariates the pretrained model uses; bands the regional cube
        already has are not sampled twice, and a cube band whose catalog entry says it
        ``stands_for`` a global band (same quantity and units, e.g. a 1 km DEM for the 10'
        elevation) fills that band instead (counted in ``counts["stand_in_<band>"]``).
        ``None`` adds no global covariates.
    accept_qc
        Error-level QC checks (:data:`socmap.profiles.QC_CHECKS`) to train with anyway;
        any other error stops here (:meth:`socmap.profiles.QCReport.require`). Accepted
        ones are counted in ``counts["qc_accepted_<check>"]``.
    harmonised
        ``profiles`` already harmonised onto ``depths`` (:func:`socmap.depth.harmonise`,
        SOC in ``soc_g_kg``), reused instead of fitting the splines again.

    Raises
    ------
    ProfileValidationError
        The profiles fail a QC check that is not in ``accept_qc``.
    ConfigError
        ``harmonised`` holds other intervals than ``depths``, or other sites than
        ``profiles``.
    """
    from socmap.cube import band_table, stand_ins
    from socmap.depth import harmonise
    from socmap.extraction import extract, require_covariate_values
    from socmap.profiles import qc_profiles

    if max_depth_cm is not None and not max_depth_cm > 0:
        raise ConfigError(
            f"max depth {max_depth_cm!r} cm must be > 0, e.g. 100 (CLI: --max-depth 100)"
        )
    accepted = qc_profiles(profiles).require(accept_qc)
    depth_set = get_depth_set(depths)
    if harmonised is None:
        harmonised = harmonise(profiles, depth_set, value_cols=("soc_g_kg",))
    else:
        _check_harmonised(harmonised, depth_set, profiles)
    table = harmonised.table
    counts = {f"qc_accepted_{k}": v for k, v in accepted.items()}
    counts.update({f"spline_{k}": v for k, v in harmonised.summary().items()})
    if max_depth_cm is not None:
        table = table.loc[table["top_cm"] < max_depth_cm].reset_index(drop=True)
    bands = band_table(cube)
    regional = [str(b) for b in bands["name"]]
    extraction = extract(cube, table)
    counts.update({f"extract_{k}": v for k, v in extraction.summary.items()})
    require_covariate_values(extraction, cube)
    table = extraction.table
    global_bands: list[str] = []
    units = {
        str(n): str(u) for n, u in zip(bands["name"], bands["units"], strict=True) if u is not None
    }
    if global_catalog is not None:
        cat = load_catalog(global_catalog)
        # Regional layers that measure a global input take its place (catalog stands_for).
        standing = stand_ins(cube, cat.band_units)
        for target, band in standing.items():
            table[target] = table[band]
            counts[f"stand_in_{target}"] = int(table[band].notna().sum())
        g = global_context_covariates(table, catalog=global_catalog)
        global_bands = [
            b for b in g.columns if b != "site_id" and b not in regional and b not in standing
        ]
        table = table.merge(g[["site_id", *global_bands]], on="site_id", how="left")
        units = {**cat.band_units, **units}
    table = _in_cube_crs(table, cube)
    counts["rows"] = len(table)
    counts["rows_with_target"] = int(table["soc_g_kg"].notna().sum())
    return RegionalTable(
        table=table,
        regional_bands=regional,
        global_bands=global_bands,
        counts=counts,
        continuous_regional_bands=[
            str(b) for b in bands.loc[bands["kind"] == "continuous", "name"]
        ],
        band_units=units,
    )

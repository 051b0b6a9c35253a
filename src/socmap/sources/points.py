"""Sample a covariate catalog at point sites (e.g. the global profiles, for pretraining).

Local layers (GeoTIFF/COG) are read at the pixel holding each site (nearest: the value a
1-pixel cube of that raster would give there), with the catalog's ``nodata`` (or the raster's)
as NaN and its ``scale``/``offset`` applied, as in :mod:`socmap.sources.local`. Earth Engine
layers (``ee://``) go through :func:`socmap.sources.earthengine.sample_sites` on the pixels of
the catalog's grid (or ``grid``). A site outside a raster, or on its nodata, gets NaN: it is
kept and counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from socmap.catalog import Catalog, CovariateSpec, load_catalog
from socmap.errors import CatalogError, ProfileValidationError
from socmap.grid import Grid

__all__ = ["sample_catalog", "sample_layer"]


def sample_layer(spec: CovariateSpec, path: Path, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Values of one local layer at longitude/latitude points (NaN outside or on nodata).

    Parameters
    ----------
    spec
        Catalog entry (band, scale, offset, nodata).
    path
        The raster file.
    lon, lat
        WGS84 coordinates of the points.
    """
    import rasterio
    from pyproj import Transformer

    with rasterio.open(path) as src:
        if src.crs is None:
            raise CatalogError(
                f"raster {str(path)!r} of covariate {spec.name!r} has no CRS; write one "
                "(rio.write_crs) before sampling it"
            )
        tr = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
        x, y = tr.transform(np.asarray(lon, float), np.asarray(lat, float))
        col_f, row_f = ~src.transform * (np.asarray(x, float), np.asarray(y, float))
        with np.errstate(invalid="ignore"):
            inside = (row_f >= 0) & (row_f < src.height) & (col_f >= 0) & (col_f < src.width)
        rows = np.floor(np.where(inside, row_f, 0)).astype(np.int64)
        cols = np.floor(np.where(inside, col_f, 0)).astype(np.int64)
        band = int(spec.band) if str(spec.band).isdigit() else _band_index(src, spec)
        data = src.read(band)
        nodata = spec.nodata if spec.nodata is not None else src.nodatavals[band - 1]
    out = np.full(len(x), np.nan)
    raw = data[rows[inside], cols[inside]].astype(np.float64)
    if nodata is not None:
        raw[raw == nodata] = np.nan
    raw[~np.isfinite(raw)] = np.nan
    out[inside] = raw * spec.scale + spec.offset
    return out


def _band_index(src: object, spec: CovariateSpec) -> int:
    names = list(getattr(src, "descriptions", ()) or ())
    if spec.band in names:
        return names.index(spec.band) + 1
    raise CatalogError(
        f"covariate {spec.name!r} reads band {spec.band!r}, which the raster does not have "
        f"(band descriptions {names!r}); give its 1-based index instead"
    )


def sample_catalog(
    catalog: Catalog | str | Path,
    sites: pd.DataFrame,
    *,
    grid: Grid | None = None,
    bands: Sequence[str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Every band of ``catalog`` at each site: one row per ``site_id``.

    Parameters
    ----------
    catalog
        Catalog (name, path or object); local and Earth Engine layers may be mixed.
    sites
        ``site_id`` with ``x``/``y`` in EPSG:4326 (a ``crs`` column, if present, must say so),
        or ``longitude``/``latitude``.
    grid
        Pixels for the Earth Engine layers (default: the catalog's grid).
    bands
        Sample only these bands (default: all).
    progress
        Progress bar of the Earth Engine requests.

    Returns
    -------
    pandas.DataFrame
        ``site_id`` then one column per band; NaN where a site has no value.
    """
    cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    first = sites.drop_duplicates("site_id").reset_index(drop=True)
    lon, lat = _lonlat(first)
    specs = [c for c in cat.covariates if bands is None or c.name in set(bands)]
    out = pd.DataFrame({"site_id": first["site_id"].to_numpy()})
    local = [c for c in specs if not c.is_earth_engine]
    for spec in local:
        out[spec.name] = sample_layer(spec, spec.resolve_source(cat.base_dir), lon, lat)
    remote = [c for c in specs if c.is_earth_engine]
    if remote:
        from socmap.sources.earthengine import sample_sites

        sub = cat.model_copy(update={"covariates": tuple(remote)})
        table = pd.DataFrame({"site_id": out["site_id"], "longitude": lon, "latitude": lat})
        sampled = sample_sites(sub, table, grid, progress=progress)
        out = out.merge(sampled[["site_id", *[c.name for c in remote]]], on="site_id")
    return out[["site_id", *[c.name for c in specs]]]


def _lonlat(sites: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if {"longitude", "latitude"} <= set(sites.columns):
        return sites["longitude"].to_numpy(float), sites["latitude"].to_numpy(float)
    if not {"x", "y"} <= set(sites.columns):
        raise ProfileValidationError(
            "sites need x and y (EPSG:4326) or longitude and latitude columns; "
            f"got {list(sites.columns)!r}"
        )
    if "crs" in sites.columns:
        crs = set(sites["crs"].dropna().astype(str))
        if crs - {"EPSG:4326", "epsg:4326"}:
            raise ProfileValidationError(
                f"sites are in {sorted(crs)!r}; sample_catalog needs longitude/latitude "
                "(EPSG:4326): reproject x/y first"
            )
    return sites["x"].to_numpy(float), sites["y"].to_numpy(float)

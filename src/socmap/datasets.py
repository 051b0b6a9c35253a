"""Ready-made training tables: the embedded global table, and a synthetic soil field.

:func:`global_training_table` turns the embedded global profile table into the tidy table the
model trains on (one row per profile x depth interval, with the 10' covariates of the site).
:func:`synthetic_soil_field` draws profiles from a soil field whose SOC is a known function of
its covariates and depth, with an optional regional shift, so end-to-end tests can assert
numbers (in the spirit of verde's ``CheckerBoard``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from socmap.catalog import Catalog, DepthSet, get_depth_set, load_catalog
from socmap.errors import ConfigError, ProfileValidationError

__all__ = [
    "SYNTHETIC_BANDS",
    "SyntheticField",
    "TrainingTable",
    "global_training_table",
    "synthetic_soil_field",
]


@dataclass(frozen=True)
class TrainingTable:
    """A training table and the accounting of how it was made.

    Attributes
    ----------
    table
        One row per profile x depth interval: ``site_id, x, y, crs, source, top_cm,
        bottom_cm, soc_g_kg`` (NaN where the spline could not estimate it), then covariates.
    counts
        Profiles read, excluded by region, and per spline status; rows with a target.
    bands
        Covariate column names, in catalog order.
    """

    table: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    bands: list[str] = field(default_factory=list)


def global_training_table(
    depths: str | DepthSet = "globalsoilmap",
    *,
    sources: Sequence[str] | None = None,
    commercial_only: bool = False,
    exclude_bbox: tuple[float, float, float, float] | None = None,
    max_depth_cm: float | None = None,
    catalog: str | Catalog | None = None,
) -> TrainingTable:
    """Harmonise the embedded global table and join the covariates of each site.

    Parameters
    ----------
    depths
        Depth set for the equal-area spline (all GlobalSoilMap intervals by default).
    sources
        Keep only these ``source_db`` values (glob patterns, e.g. ``"ISRIC-*"``).
    commercial_only
        Keep only sources whose licence allows commercial use (see ``sources.yaml``).
    exclude_bbox
        ``(minlon, minlat, maxlon, maxlat)``: leave out every profile inside, e.g. the target
        region of a transfer experiment. Counted in ``counts["excluded_by_bbox"]``.
    max_depth_cm
        Drop depth intervals whose top is at or below this depth (counted).
    catalog
        Covariates: ``None`` (the embedded 10' layers, pre-extracted at the sites) or any
        catalog (local rasters and/or Earth Engine layers), sampled at the sites with
        :func:`socmap.sources.points.sample_catalog`. Sites without a value keep NaN (the
        network's missing-value mask handles them); counted in ``counts["sites_missing_"
        + band]``. The 10' layers stay in the table beside them (for climate rebalancing).

    Returns
    -------
    TrainingTable
        Every remaining profile x interval, including rows without a SOC estimate.
    """
    from socmap.depth import harmonise
    from socmap.profiles import read_global_covariates_at_sites, read_global_table

    depth_set = get_depth_set(depths)
    horizons = read_global_table(sources=sources, commercial_only=commercial_only)
    counts = {"profiles_read": int(horizons["site_id"].nunique())}
    if exclude_bbox is not None:
        minx, miny, maxx, maxy = exclude_bbox
        if not (maxx > minx and maxy > miny):
            raise ProfileValidationError(
                f"exclude_bbox {exclude_bbox!r} must be (minlon, minlat, maxlon, maxlat)"
            )
        inside = horizons["x"].between(minx, maxx) & horizons["y"].between(miny, maxy)
        counts["excluded_by_bbox"] = int(horizons.loc[inside, "site_id"].nunique())
        horizons = horizons.loc[~inside]
    if horizons.empty:
        raise ProfileValidationError(
            "no global profile is left after the source/region filters; relax --sources or "
            "--exclude-bbox"
        )
    result = harmonise(horizons, depth_set, value_cols=("soc_g_kg",))
    counts.update({f"spline_{k}": v for k, v in result.summary().items()})
    table = result.table
    if max_depth_cm is not None:
        deep = table["top_cm"] >= max_depth_cm
        counts["rows_below_max_depth"] = int(deep.sum())
        table = table.loc[~deep]
    if catalog is None or catalog == "global_10arcmin":
        bands = load_catalog("global_10arcmin").band_names
        covs = read_global_covariates_at_sites()[["site_id", *bands]]
    else:
        from socmap.sources.points import sample_catalog

        cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
        bands = cat.band_names
        sites = read_global_covariates_at_sites()[["site_id", "x", "y"]]
        covs = sample_catalog(cat, sites[sites["site_id"].isin(table["site_id"])])
        for band in bands:
            counts[f"sites_missing_{band}"] = int(covs[band].isna().sum())
        # The 10' climate columns stay available for rebalancing (not as model inputs).
        context = [b for b in load_catalog("global_10arcmin").band_names if b not in bands]
        covs = covs.merge(read_global_covariates_at_sites()[["site_id", *context]], on="site_id")
    table = table.merge(covs, on="site_id", how="left", validate="many_to_one")
    counts["rows"] = len(table)
    counts["rows_with_target"] = int(table["soc_g_kg"].notna().sum())
    return TrainingTable(table=table.reset_index(drop=True), counts=counts, bands=bands)


#: Covariates of the synthetic field: name -> (group, kind).
SYNTHETIC_BANDS: dict[str, tuple[str, str]] = {
    "temperature": ("climate", "continuous"),
    "precipitation": ("climate", "continuous"),
    "elevation": ("terrain", "continuous"),
    "ndvi": ("vegetation", "continuous"),
    "landcover": ("land_cover", "categorical"),
}
_LANDCOVER_EFFECT = np.array([0.0, 0.35, -0.25, 0.1])  # classes 1..4


@dataclass(frozen=True)
class SyntheticField:
    """Profiles drawn from a known soil field.

    Attributes
    ----------
    table
        Tidy training table: ``site_id, x, y, crs, top_cm, bottom_cm, soc_g_kg``, the
        covariates of :data:`SYNTHETIC_BANDS`, and ``soc_true_g_kg`` (noise-free).
    band_info
        ``name, kind, group, classes`` per covariate (like :func:`socmap.cube.band_table`).
    """

    table: pd.DataFrame
    band_info: pd.DataFrame


def _log_soc(cov: dict[str, np.ndarray], mid_cm: np.ndarray, shift: float) -> np.ndarray:
    """log(SOC g/kg) of the field: smooth in the covariates, decaying with depth."""
    t, p, e, v = (cov[k] for k in ("temperature", "precipitation", "elevation", "ndvi"))
    lc = _LANDCOVER_EFFECT[cov["landcover"].astype(int) - 1]
    base = 2.3 - 0.045 * t + 0.55 * np.tanh(p / 800.0) + 0.15 * np.sin(e / 400.0) + 0.9 * v + lc
    # The regional shift changes both the level and one response, so a global model is
    # biased in the region and a few regional cores are needed to correct it.
    base = base + shift * (0.5 + 0.8 * v)
    return np.asarray(base - 0.9 * np.log1p(mid_cm / 20.0))


def synthetic_soil_field(
    n_sites: int,
    *,
    depths: str | DepthSet = "globalsoilmap",
    region_shift: float = 0.0,
    bbox: tuple[float, float, float, float] = (-20.0, -35.0, 50.0, 35.0),
    noise_sd: float = 0.15,
    missing_fraction: float = 0.0,
    seed: int = 0,
) -> SyntheticField:
    """Draw ``n_sites`` profiles of a synthetic soil field with a known answer.

    Parameters
    ----------
    n_sites
        Number of profiles.
    depths
        Depth set; every profile has every interval.
    region_shift
        Strength of a regional change in the SOC-covariate relation (0 = the global field).
    bbox
        ``(minlon, minlat, maxlon, maxlat)`` from which sites are drawn uniformly (EPSG:4326).
    noise_sd
        Standard deviation of the residual noise in log(SOC) (multiplicative noise).
    missing_fraction
        Fraction of continuous covariate values set to NaN (missing at random).
    seed
        Seed of every random draw.

    Examples
    --------
    >>> field = synthetic_soil_field(5, depths="0-30", seed=1)
    >>> field.table[["site_id", "top_cm", "bottom_cm"]].shape
    (5, 3)
    """
    if n_sites <= 0:
        raise ConfigError(f"n_sites {n_sites!r} must be a positive number of sites, e.g. 200")
    rng = np.random.default_rng(seed)
    depth_set = get_depth_set(depths)
    minx, miny, maxx, maxy = bbox
    x = rng.uniform(minx, maxx, n_sites)
    y = rng.uniform(miny, maxy, n_sites)
    # Covariates are smooth functions of location plus local noise, so space matters for CV.
    cov = {
        "temperature": 28.0 - 0.45 * np.abs(y) + rng.normal(0, 1.5, n_sites),
        "precipitation": np.clip(
            900 + 500 * np.sin(np.radians(x * 3)) + rng.normal(0, 150, n_sites), 50, None
        ),
        "elevation": np.clip(
            600 + 400 * np.cos(np.radians(y * 4)) + rng.normal(0, 120, n_sites), 0, None
        ),
        "ndvi": np.clip(
            0.45 + 0.25 * np.sin(np.radians(x * 5 + y * 3)) + rng.normal(0, 0.05, n_sites), 0, 1
        ),
        "landcover": rng.integers(1, 5, n_sites).astype(float),
    }
    tops = np.asarray(depth_set.tops)
    bottoms = np.asarray(depth_set.bottoms)
    k = len(tops)
    site = np.repeat(np.arange(n_sites), k)
    top = np.tile(tops, n_sites)
    bottom = np.tile(bottoms, n_sites)
    cov_rows = {name: values[site] for name, values in cov.items()}
    log_true = _log_soc(cov_rows, (top + bottom) / 2, region_shift)
    log_obs = log_true + rng.normal(0, noise_sd, len(site))  # multiplicative noise on SOC
    table = pd.DataFrame(
        {
            "site_id": [f"syn{s:05d}" for s in site],
            "x": x[site],
            "y": y[site],
            "crs": "EPSG:4326",
            "top_cm": top,
            "bottom_cm": bottom,
            "soc_g_kg": np.exp(log_obs),
            "soc_true_g_kg": np.exp(log_true),
        }
    )
    for name, values in cov.items():
        col = values.astype(float)
        if missing_fraction > 0 and SYNTHETIC_BANDS[name][1] == "continuous":
            # Missing per site, as when a covariate raster has a hole under the profile.
            col = np.where(rng.random(n_sites) < missing_fraction, np.nan, col)
        table[name] = col[site]
    band_info = pd.DataFrame(
        [
            {
                "name": n,
                "kind": kind,
                "group": group,
                "classes": [1, 2, 3, 4] if kind == "categorical" else None,
            }
            for n, (group, kind) in SYNTHETIC_BANDS.items()
        ]
    )
    return SyntheticField(table=table, band_info=band_info)

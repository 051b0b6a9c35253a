"""Bayesian prior combination: a prior map (e.g. SoilGrids) updated with socmap's prediction.

The blue-carbon workflow's "posterior" module, per pixel: with the prior ``(m0, s0)`` and
socmap's prediction ``(m1, s1)`` taken as independent Gaussian estimates of the same
quantity, the posterior is their precision-weighted mean::

    w0 = s0^-2 / (s0^-2 + s1^-2),   mean = w0 m0 + (1 - w0) m1,   se = (s0^-2 + s1^-2)^-1/2

``w0`` (the prior's weight) is written with the result, so a reader sees where the prior
dominated. Two approximations are stated in the output metadata: SOC and stocks are skewed
(log-normal-like) and the Gaussian form uses only their mean and sd; and prior and
prediction are treated as independent, although global maps and socmap's pretrained
network share training profiles. Where the prior has no value the posterior is the
prediction (``w0`` = 0, counted); where the prediction has none it stays NaN.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from socmap._io import atomic_path
from socmap.errors import ConfigError, GridMismatch, RasterError

__all__ = ["PosteriorResult", "combine", "posterior_for_run"]

POSTERIOR_STATS = ("mean", "se", "prior_weight")


def combine(
    pred_mean: npt.ArrayLike,
    pred_se: npt.ArrayLike,
    prior_mean: npt.ArrayLike,
    prior_se: npt.ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-weighted combination of a prediction and a prior, per pixel.

    Returns
    -------
    mean, se, prior_weight
        Arrays of the broadcast shape. Without a usable prior (NaN, or se <= 0 or
        infinite) the prediction passes through with weight 0; without a prediction, NaN.

    Examples
    --------
    >>> m, s, w = combine(10.0, 2.0, 20.0, 2.0)
    >>> float(m), round(float(s), 4), float(w)
    (15.0, 1.4142, 0.5)
    >>> [float(v) for v in combine(10.0, 2.0, np.nan, 1.0)]
    [10.0, 2.0, 0.0]
    """
    m1, s1, m0, s0 = (
        np.asarray(v, dtype=np.float64) for v in (pred_mean, pred_se, prior_mean, prior_se)
    )
    m1, s1, m0, s0 = np.broadcast_arrays(m1, s1, m0, s0)
    has_prior = np.isfinite(m0) & np.isfinite(s0) & (s0 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = 1.0 / s1**2
        p0 = np.where(has_prior, 1.0 / np.where(has_prior, s0, 1.0) ** 2, 0.0)
        w0 = np.where(np.isfinite(p1), p0 / (p0 + p1), 1.0)  # s1 == 0: prediction exact
        w0 = np.where(s1 == 0, 0.0, w0)
        mean = np.where(has_prior, w0 * np.where(has_prior, m0, 0.0) + (1 - w0) * m1, m1)
        se = np.where(has_prior, 1.0 / np.sqrt(p0 + p1), s1)
    valid = np.isfinite(m1) & np.isfinite(s1)
    return (
        np.where(valid, mean, np.nan),
        np.where(valid, se, np.nan),
        np.where(valid, w0, np.nan),
    )


@dataclass
class PosteriorResult:
    """What :func:`posterior_for_run` wrote."""

    path: Path
    depths: list[str]
    pixels_without_prior: dict[str, int]
    mean_prior_weight: dict[str, float]


#: Largest SOC (g/kg) a prior may give: all of the soil's mass.
MAX_SOC_G_KG = 1000.0
#: Largest bulk density (g/cm3) a prior stock may imply, with SOC at its largest.
MAX_BD_G_CM3 = 2.65


def _require_one_band(path: Path) -> None:
    """Refuse a prior raster of several bands (once its first band was read without a word)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            count = src.count
    except Exception:  # missing or unreadable: read_raster says which, in one line
        return
    if count != 1:
        raise RasterError(
            f"prior raster {str(path)!r} has {count} bands; --prior takes single-band rasters, "
            "the mean and the SE each in its own file (split them with `gdal_translate -b N`)"
        )


def _prior_limit(layer: str, depth: str) -> float:
    """Largest physically possible prior value of ``layer`` over ``depth`` (e.g. '0-30cm')."""
    if layer == "soc":
        return MAX_SOC_G_KG
    m = re.fullmatch(r"\s*([\d.]+)\s*-\s*([\d.]+)\s*cm\s*", depth)
    thickness = float(m.group(2)) - float(m.group(1)) if m else 1000.0
    # t/ha = g/kg x g/cm3 x cm x 0.1
    return MAX_SOC_G_KG * MAX_BD_G_CM3 * thickness * 0.1


def posterior_for_run(
    run_dir: str | Path,
    priors: Mapping[str, tuple[str | Path, str | Path]],
    *,
    layer: str = "soc",
    soilgrids: str | None = None,
    scale: float = 1.0,
) -> PosteriorResult:
    """Combine prior rasters with a run's SOC (g/kg) or stock (t/ha) maps.

    Parameters
    ----------
    run_dir
        A prediction run (with stocks for ``layer="stock"``).
    priors
        Depth label (``"0-5cm"``, as in the run) -> (prior mean raster, prior SE raster),
        resampled bilinearly onto the run's grid.
    layer
        ``"soc"`` or ``"stock"``: which of the run's maps the prior describes.
    soilgrids
        SoilGrids property of the stored integers (``"soc"``, ``"ocs"``), converted with
        :func:`socmap.stocks.from_soilgrids`; None when the rasters are already in socmap
        units.
    scale
        Extra factor applied to both prior rasters (e.g. 10 for SOC in % to g/kg).

    Returns
    -------
    PosteriorResult
        ``RUN/posterior_{layer}.zarr`` with ``posterior(stat, depth, y, x)``, stats
        :data:`POSTERIOR_STATS`, and per depth the pixels without a prior.
    """
    import xarray as xr

    from socmap.predict import open_run
    from socmap.sources.local import read_raster
    from socmap.stocks import from_soilgrids

    if layer not in ("soc", "stock"):
        raise ConfigError(f"--layer {layer!r} must be 'soc' or 'stock'")
    if isinstance(scale, bool) or not (
        isinstance(scale, int | float) and math.isfinite(scale) and scale > 0
    ):  # once: 0 or -1 gave a posterior at exit 0, nan blamed the prior's coverage
        raise ConfigError(
            f"--scale {scale!r} must be a finite number > 0 (the factor from the rasters' "
            "stored values to the run's units, e.g. 0.1; --soilgrids applies SoilGrids' own)"
        )
    from socmap.stocks._formula import SOILGRIDS_UNITS

    prop = {"soc": "soc", "stock": "ocs"}[layer]
    given = str(soilgrids).strip().lower()
    if soilgrids is not None and given in SOILGRIDS_UNITS and given != prop:  # once converted
        raise ConfigError(
            f"--soilgrids {soilgrids!r} converts SoilGrids '{soilgrids}', but --layer {layer} "
            f"takes a prior of {'SOC (g/kg)' if layer == 'soc' else 'stocks (t/ha)'}: give "
            f"--soilgrids {prop}"
            + (" (or --layer stock --soilgrids ocs)" if layer == "soc" else "")
        )
    run = open_run(run_dir)
    # an interrupted run's maps are part NaN (once: a posterior of half a map, exit 0)
    run.require_finished(["stocks"] if layer == "stock" else [])
    store = "soc.zarr" if layer == "soc" else "stock.zarr"
    if not (run.path / store).exists():
        raise ConfigError(
            f"run {str(run.path)!r} has no {store}; "
            + ("run `socmap stocks` first" if layer == "stock" else "finish `socmap predict`")
        )
    ds = run.open(store)[layer]
    have = [str(d) for d in ds["depth"].values]
    unknown = [d for d in priors if d not in have]
    if unknown or not priors:
        raise ConfigError(
            f"prior depths {unknown or list(priors)!r} are not layers of the run; give some of "
            f"{have!r}"
        )
    grid = run.grid
    depths = [d for d in have if d in priors]
    out = np.full((len(POSTERIOR_STATS), len(depths), *grid.shape), np.nan, dtype=np.float32)
    missing: dict[str, int] = {}
    weights: dict[str, float] = {}
    for k, depth in enumerate(depths):
        mean_path, se_path = (Path(str(p)) for p in priors[depth])
        for path in (mean_path, se_path):
            _require_one_band(path)
        prior = [read_raster(p, grid, "bilinear") for p in (mean_path, se_path)]
        if soilgrids is not None:
            prior = [from_soilgrids(np.where(np.isfinite(p), p, np.nan), soilgrids) for p in prior]
        prior = [p * float(scale) for p in prior]
        pred_mean = ds.sel(stat="mean", depth=depth).values
        pred_sd = ds.sel(stat="sd", depth=depth).values
        mean, se, w0 = combine(pred_mean, pred_sd, prior[0], prior[1])
        out[0, k], out[1, k], out[2, k] = mean, se, w0
        mapped = np.isfinite(pred_mean)
        valued = np.isfinite(prior[0]) & np.isfinite(prior[1])
        with np.errstate(invalid="ignore"):
            usable = valued & (prior[1] > 0)  # what combine() uses: an SE <= 0 is no prior
        missing[depth] = int((mapped & ~usable).sum())
        if mapped.any() and missing[depth] == int(mapped.sum()) and (mapped & valued).any():
            bad = prior[1][mapped & valued]
            raise RasterError(
                f"prior SE {str(se_path)!r} ({depth}) is not > 0 at any of the run's "
                f"{int(mapped.sum())} mapped pixels (e.g. {float(bad[0]):g}), so the prior "
                "would change nothing; give the standard error of the prior mean (> 0)"
            )
        with np.errstate(invalid="ignore"):
            negative = mapped & valued & (prior[0] < 0)
        if negative.any():  # once combined at exit 0: a negative SOC or stock as the prior
            raise RasterError(
                f"prior mean {str(mean_path)!r} ({depth}) is negative at {int(negative.sum())} "
                f"of the run's {int(mapped.sum())} mapped pixels (e.g. "
                f"{float(prior[0][negative][0]):g}); SOC and stocks are >= 0: check the "
                "raster's nodata value and units (--scale, --soilgrids)"
            )
        limit = _prior_limit(layer, depth)
        with np.errstate(invalid="ignore"):
            huge = mapped & valued & (prior[0] > limit)
        if huge.any():  # once combined at exit 0: 1e30 g/kg pulled the posterior along
            units = "g/kg" if layer == "soc" else "t/ha"
            raise RasterError(
                f"prior mean {str(mean_path)!r} ({depth}) is above {limit:g} {units}, more than "
                f"any soil holds, at {int(huge.sum())} of the run's {int(mapped.sum())} mapped "
                f"pixels (e.g. {float(prior[0][huge][0]):g}); check the raster's nodata value "
                "and units (--scale, --soilgrids)"
            )
        if mapped.any() and missing[depth] == int(mapped.sum()):
            b = grid.bounds
            what, culprit = "prior", mean_path
            if (mapped & np.isfinite(prior[0])).any():  # the mean is there: the SE is not
                what, culprit = "prior SE", se_path
            raise GridMismatch(
                f"{what} {str(culprit)!r} ({depth}) has no value at any of the run's "
                f"{missing[depth]} mapped pixels (run bounds {b[0]:.6g}..{b[2]:.6g}, "
                f"{b[1]:.6g}..{b[3]:.6g} in {grid.crs}); check that the prior covers the run "
                "and that its CRS is right (gdalinfo)"
            )
        weights[depth] = float(np.nanmean(w0)) if mapped.any() else float("nan")
    units = "g/kg" if layer == "soc" else "t/ha"
    result = (
        xr.Dataset(
            {
                "posterior": xr.DataArray(
                    out,
                    dims=("stat", "depth", "y", "x"),
                    coords={
                        "stat": np.asarray(POSTERIOR_STATS, dtype=object),
                        "depth": np.asarray(depths, dtype=object),
                        "y": grid.ys,
                        "x": grid.xs,
                    },
                    attrs={"units": units, "long_name": f"posterior {layer} (prior x socmap)"},
                )
            },
            attrs={
                "method": "per-pixel precision-weighted mean of prior and prediction (Gaussian)",
                "approximations": json.dumps(
                    [
                        "mean and sd summarise skewed (log-normal-like) distributions",
                        "prior and prediction treated as independent",
                    ]
                ),
                "priors": json.dumps({d: [str(p) for p in priors[d]] for d in depths}),
                "soilgrids": soilgrids or "",
                "scale": float(scale),
                "pixels_without_prior": json.dumps(missing),
            },
        )
        .rio.write_crs(grid.crs)
        .rio.write_transform(grid.transform)
    )
    path = run.path / f"posterior_{layer}.zarr"
    with atomic_path(path, overwrite=True) as tmp:
        result.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)
    return PosteriorResult(path, depths, missing, weights)

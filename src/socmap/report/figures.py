"""Quicklook figures: cube bands with sites, and spline fits against measured horizons."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from socmap._io import atomic_path
from socmap.errors import SocmapError

__all__ = ["plot_cube_bands", "plot_spline_fits"]


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def plot_cube_bands(
    cube: xr.DataArray,
    path: str | Path,
    *,
    bands: Sequence[str] | None = None,
    sites: pd.DataFrame | None = None,
    max_pixels: int = 600,
) -> Path:
    """Plot up to nine cube bands side by side, optionally with site locations on top.

    Parameters
    ----------
    cube
        Cube from :func:`socmap.cube.open_cube`.
    path
        Output PNG.
    bands
        Bands to show (default: the first nine).
    sites
        Table with ``x``, ``y`` in the cube's CRS (e.g. an extraction table) to overlay.
    max_pixels
        Decimate larger cubes to about this many pixels on the long side before plotting.
    """
    names = list(bands) if bands is not None else [str(b) for b in cube["band"].to_numpy()][:9]
    step = max(1, int(np.ceil(max(cube.sizes["y"], cube.sizes["x"]) / max_pixels)))
    small = cube.sel(band=names).isel(y=slice(None, None, step), x=slice(None, None, step))
    data = small.to_numpy()
    ncol = min(3, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    x, y = small["x"].to_numpy(), small["y"].to_numpy()
    extent = (x[0], x[-1], y[-1], y[0])
    for ax, name, layer in zip(axes.flat, names, data, strict=False):
        im = ax.imshow(layer, extent=extent, cmap="viridis", interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8)
        if sites is not None and len(sites):
            ax.scatter(sites["x"], sites["y"], s=4, c="red", linewidths=0)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    return _save(fig, Path(path))


def plot_spline_fits(
    horizons: pd.DataFrame,
    harmonised: pd.DataFrame,
    path: str | Path,
    *,
    value: str = "soc_g_kg",
    sites: Sequence[str] | None = None,
    n_sites: int = 6,
    seed: int = 0,
    lam: float = 0.1,
) -> Path:
    """Plot measured horizons (grey bars) against harmonised intervals (blue steps).

    Parameters
    ----------
    horizons
        Canonical profile table (``site_id``, ``top_cm``, ``bottom_cm``, ``value``).
    harmonised
        Harmonised long table from :func:`socmap.depth.harmonise`.
    path
        Output PNG.
    value
        Column to plot.
    sites
        Sites to show; by default ``n_sites`` drawn at random (seeded) among those with data.
    n_sites
        Number of sites to draw when ``sites`` is not given.
    seed
        Seed for the draw.
    lam
        Smoothing parameter of the spline drawn through the horizons.
    """
    from socmap.depth import fit_spline

    if sites is None:
        ok = harmonised.dropna(subset=[value])["site_id"].unique()
        rng = np.random.default_rng(seed)
        sites = list(rng.choice(ok, size=min(n_sites, len(ok)), replace=False)) if len(ok) else []
    ncol = min(3, max(1, len(sites)))
    nrow = max(1, int(np.ceil(len(sites) / ncol)))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.8 * nrow), squeeze=False)
    for ax, site in zip(axes.flat, sites, strict=False):
        h = horizons[(horizons["site_id"] == site) & horizons[value].notna()]
        top, bottom, v = (h[c].to_numpy(dtype=float) for c in ("top_cm", "bottom_cm", value))
        ax.barh((top + bottom) / 2, v, height=bottom - top, color="0.82", edgecolor="0.6", lw=0.5)
        if len(h) > 1:
            try:
                spline = fit_spline(top, bottom, v, lam=lam)
                z = np.linspace(top.min(), bottom.max(), 300)
                ax.plot(np.clip(spline(z), 0, None), z, color="tab:orange", lw=1)
            except SocmapError:
                pass  # overlapping horizons: the harmonised table leaves the site out too
        s = harmonised[harmonised["site_id"] == site]
        for row in s.itertuples(index=False):
            hv = getattr(row, value)
            if np.isfinite(hv):
                ax.plot([hv, hv], [row.top_cm, row.bottom_cm], color="tab:blue", lw=2.5)
        ax.set_ylim(max(float(bottom.max()) if len(h) else 0, float(s["bottom_cm"].max())), 0)
        ax.set_title(str(site), fontsize=8)
        ax.set_xlabel(value, fontsize=8)
        ax.set_ylabel("depth (cm)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(sites) :]:
        ax.axis("off")
    fig.suptitle(
        "measured horizons (grey), spline (orange) and harmonised intervals (blue)", fontsize=9
    )
    fig.tight_layout()
    return _save(fig, Path(path))

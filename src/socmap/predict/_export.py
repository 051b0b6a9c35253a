"""Exports of a prediction run: COGs, PNG quicklooks with a colour bar, and a STAC Item.

COGs are written window by window into a tiled GeoTIFF and then copied with GDAL's COG
driver (internal 512-pixel tiles, DEFLATE with the floating-point predictor, overviews by
averaging), through a temporary file and a rename; memory stays at one window whatever the map
size. Each band carries its unit, scale 1 and offset 0 and a NaN nodata value. Quicklooks are
read from the COG overviews, so they cost little on large maps.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.windows import Window as RioWindow

from socmap._io import atomic_path
from socmap._progress import track
from socmap.grid import Grid
from socmap.predict._run import LayerKind, PredictionRun

__all__ = [
    "Plane",
    "export_layers",
    "open_layer",
    "read_overview",
    "replace_exports",
    "write_cog",
    "write_quicklook",
    "write_stac_item",
]

QUICKLOOK_PX = 800
_STAT_TITLES = {
    "mean": "mean",
    "sd": "standard deviation",
    "q05": "5th percentile",
    "q50": "median",
    "q95": "95th percentile",
}


def write_cog(
    array: Any,
    path: Path,
    grid: Grid,
    *,
    chunk: int,
    units: str,
    description: str,
    tags: dict[str, str] | None = None,
) -> Path:
    """Write a 2-D array-like (numpy, zarr or dask) as a Cloud-Optimised GeoTIFF.

    Parameters
    ----------
    array
        ``(y, x)`` values on ``grid``; NaN is nodata. Read one ``chunk`` window at a time.
    path
        Destination ``.tif`` (replaced atomically).
    grid
        The :class:`~socmap.grid.Grid` of ``array``.
    chunk
        Window size for reading and the COG's internal tile size.
    units, description, tags
        Band unit, band description and dataset tags.
    """
    h, w = grid.shape
    profile = {
        "driver": "GTiff",
        "height": h,
        "width": w,
        "count": 1,
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "BIGTIFF": "IF_SAFER",
    }
    with atomic_path(path, overwrite=True) as final:
        staging = final.with_name(final.name + ".stage.tif")
        try:
            with rasterio.open(staging, "w", **profile) as dst:
                for tile in grid.tiles(chunk):
                    r, c = tile.core.slices
                    block = np.asarray(array[r, c], dtype=np.float32)
                    win = RioWindow(c.start, r.start, c.stop - c.start, r.stop - r.start)
                    dst.write(block, 1, window=win)
                dst.units = (units,)
                dst.scales = (1.0,)
                dst.offsets = (0.0,)
                dst.set_band_description(1, description)
                dst.update_tags(**(tags or {}))
            rasterio.shutil.copy(
                staging,
                final,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR="YES",
                BLOCKSIZE=512,
                OVERVIEWS="AUTO",
                OVERVIEW_RESAMPLING="AVERAGE",
                BIGTIFF="IF_SAFER",
            )
        finally:
            staging.unlink(missing_ok=True)
    return path


def read_overview(
    cog: Path, resampling: Resampling
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Read band 1 of a COG from its overviews, at most :data:`QUICKLOOK_PX` pixels across.

    Shared by every quicklook (run layers here, stock change in :mod:`socmap.compare`), so
    they are all read at the same size.

    Parameters
    ----------
    cog
        The COG.
    resampling
        How overview pixels are read: ``Resampling.average`` for the run quicklooks,
        ``Resampling.nearest`` for the stock-change ones.

    Returns
    -------
    tuple
        The float64 values (NaN for nodata) and their extent ``(left, right, bottom, top)``,
        as :meth:`matplotlib.axes.Axes.imshow` takes it.
    """
    with rasterio.open(cog) as src:
        scale = max(1.0, max(src.width, src.height) / QUICKLOOK_PX)
        shape = (max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        data = src.read(1, out_shape=shape, resampling=resampling, masked=True)
        b = src.bounds
    return np.ma.filled(data.astype(np.float64), np.nan), (b.left, b.right, b.bottom, b.top)


class _QuicklookCanvas:
    """One quicklook figure for a map shape and extent, redrawn layer by layer.

    The frame (axes, coordinate ticks and their labels) is the same for every layer of a run,
    so it is drawn once and kept as a bitmap; each layer then draws only its image, title and
    colour bar over it (Agg blitting). Drawing the tick text of every figure anew took most of
    a small map's export time.
    """

    def __init__(self, shape: tuple[int, int], extent: tuple[float, float, float, float]):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        # inches: the image's longer side 4.6, margins for tick labels (left, bottom), the
        # title (top) and the colour bar (right)
        left, right, bottom, top = 0.9, 1.1, 0.5, 0.4
        image_w, image_h = (4.6 * side / max(shape) for side in (shape[1], shape[0]))
        width, height = left + image_w + right, bottom + image_h + top
        self.figure = Figure(figsize=(width, height), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        self.ax = self.figure.add_axes(
            (left / width, bottom / height, image_w / width, image_h / height)
        )
        self.cax = self.figure.add_axes(((left + image_w + 0.2) / width, bottom / height,
                                         0.15 / width, image_h / height))  # fmt: skip
        self.image = self.ax.imshow(
            np.zeros(shape), extent=extent, interpolation="nearest", animated=True
        )
        self.ax.tick_params(labelsize=7)
        for axis in (self.ax.xaxis, self.ax.yaxis):
            axis.set_major_locator(MaxNLocator(4))
        self.ax.ticklabel_format(useOffset=False, style="plain")
        self.ax.title.set_fontsize(9)
        self.ax.title.set_animated(True)
        self.colorbar = self.figure.colorbar(self.image, cax=self.cax)
        self.cax.set_animated(True)
        self.canvas.draw()  # everything but the animated artists
        self.frame = self.canvas.copy_from_bbox(self.figure.bbox)

    def write(self, values: np.ndarray, png: Path, *, title: str, units: str, cmap: str) -> Path:
        """Draw one layer over the frame and save it as a PNG, atomically."""
        from PIL import Image

        finite = values[np.isfinite(values)]
        vmin, vmax = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        self.canvas.restore_region(self.frame)
        self.image.set_data(values)
        self.image.set_cmap(cmap)
        if not vmax > vmin:  # one value (an AOA all inside): a unit range around it
            vmin, vmax = vmin - 0.5, vmin + 0.5
        self.image.set_clim(vmin, vmax)
        self.ax.title.set_text(title)
        self.colorbar.update_normal(self.image)
        self.colorbar.set_label(units)
        self.ax.draw_artist(self.image)
        self.ax.draw_artist(self.ax.title)
        self.figure.draw_artist(self.cax)
        rgba = np.asarray(self.canvas.buffer_rgba())
        with atomic_path(png, overwrite=True) as tmp:
            Image.fromarray(rgba, "RGBA").save(tmp, format="png", compress_level=1)
        return png


@functools.lru_cache(maxsize=1)
def _quicklook_canvas(
    shape: tuple[int, int], extent: tuple[float, float, float, float]
) -> _QuicklookCanvas:
    return _QuicklookCanvas(shape, extent)


_QUICKLOOK_LOCK = threading.Lock()


def write_quicklook(cog: Path, png: Path, *, title: str, units: str, cmap: str = "viridis") -> Path:
    """Draw a COG as a PNG with a colour bar, read from its overviews, at most 800 px wide.

    The figure is laid out in fixed inches (no pyplot, no tight layout), its axes carry at
    most five plain coordinate ticks (no ``1e6`` offset), and the PNG is compressed fast. The
    figure of the last map shape is kept and only the layer is redrawn on it
    (:class:`_QuicklookCanvas`): a run writes one quicklook per layer, all of one shape.
    """
    values, extent = read_overview(cog, Resampling.average)
    shape = (int(values.shape[0]), int(values.shape[1]))
    with _QUICKLOOK_LOCK:  # one figure, drawn by one thread at a time
        canvas = _quicklook_canvas(shape, extent)
        return canvas.write(values, png, title=title, units=units, cmap=cmap)


def write_stac_item(run: PredictionRun) -> Path:
    """Write ``item.json``: a STAC Item of the run and every export (hrefs relative to it)."""
    import datetime as dt

    import pystac
    from pyproj import Transformer
    from pystac.extensions.projection import ProjectionExtension

    grid = run.grid
    tr = Transformer.from_crs(grid.pyproj_crs, "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = tr.transform_bounds(*grid.bounds)
    geometry = {
        "type": "Polygon",
        "coordinates": [[[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny]]],
    }
    created = dt.datetime.fromisoformat(run.created) if run.created else None
    item = pystac.Item(
        id=f"socmap-{run.path.name}",
        geometry=geometry,
        bbox=[minx, miny, maxx, maxy],
        datetime=created,
        properties={
            "title": "socmap soil organic carbon prediction",
            "socmap:bundle_sha256": run.config.bundle_sha256,
            "socmap:mc_passes": run.config.passes,
            "socmap:seed": run.config.seed,
            "socmap:depths": run.depth_labels,
        },
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = grid.pyproj_crs.to_epsg()
    if epsg is not None:
        proj.epsg = epsg
    else:
        proj.wkt2 = grid.pyproj_crs.to_wkt()
    proj.shape = list(grid.shape)
    proj.transform = list(grid.transform)[:6]
    files = [*run.exports.get("stores", []), *run.exports.get("cogs", []),
             *run.exports.get("quicklooks", [])]  # fmt: skip
    for rel in files:
        key, spec = _asset(run, rel)
        item.add_asset(key, pystac.Asset(**spec))
    path = run.path / "item.json"
    with atomic_path(path, overwrite=True) as tmp:
        item.set_self_href(str(path))
        item.make_asset_hrefs_relative()
        item.save_object(include_self_link=False, dest_href=str(tmp))
    return path


def open_layer(run: PredictionRun, store: str, name: str) -> Any:
    """One array of a run's Zarr store, opened read-only (read lazily, window by window)."""
    import zarr

    return zarr.open_array(store=str(run.path / store / name), mode="r", zarr_format=3)


def export_layers(
    run: PredictionRun, kind: LayerKind, labels: list[str], *, progress: bool
) -> tuple[list[str], list[str]]:
    """COGs of every (depth, stat) of one kind of layer, and mean/sd quicklooks."""
    array = open_layer(run, kind.store, kind.name)
    cogs: list[str] = []
    pngs: list[str] = []
    layers = [
        (d, s, label, stat) for d, label in enumerate(labels) for s, stat in enumerate(kind.stats)
    ]
    it = track(layers, f"writing {kind.name} COGs") if progress else layers
    for d, s, label, stat in it:
        name = f"{kind.name}_{label}_{stat}"
        cog = run.path / "cogs" / f"{name}.tif"
        cog.parent.mkdir(exist_ok=True)
        title = f"{kind.title or kind.name} {label} {_STAT_TITLES[stat]}"
        write_cog(
            Plane(array, s, d), cog, run.grid, chunk=run.config.chunk, units=kind.units,
            description=title, tags={"socmap_stat": stat, "socmap_depth": label,
                                     "socmap_variable": kind.name},
        )  # fmt: skip
        cogs.append(str(cog.relative_to(run.path)))
        if stat in ("mean", "sd"):
            png = run.path / "quicklooks" / f"{name}.png"
            png.parent.mkdir(exist_ok=True)
            cmap = kind.cmap if stat == "mean" else "magma"
            write_quicklook(cog, png, title=title, units=kind.units, cmap=cmap)
            pngs.append(str(png.relative_to(run.path)))
    return cogs, pngs


def replace_exports(
    run: PredictionRun, kind: LayerKind, cogs: list[str], pngs: list[str]
) -> dict[str, list[str]]:
    """Record a kind's COGs, quicklooks and store in a run's exports, then the STAC Item.

    The kind's earlier exports are replaced; the caller saves the run.
    """
    mine = f"{kind.name}_"
    keep = [c for c in run.exports.get("cogs", []) if not Path(c).name.startswith(mine)]
    keep_png = [p for p in run.exports.get("quicklooks", []) if not Path(p).name.startswith(mine)]
    run.exports["cogs"] = keep + cogs
    run.exports["quicklooks"] = keep_png + pngs
    run.exports["stores"] = sorted({*run.exports.get("stores", []), kind.store})
    run.exports["stac"] = [str(write_stac_item(run).relative_to(run.path))]
    return run.exports


def _asset(run: PredictionRun, rel: str) -> tuple[str, dict[str, Any]]:
    import pystac

    path = run.path / rel
    stem = path.stem if path.suffix != ".zarr" else path.name.replace(".", "_")
    parts = stem.split("_")
    variable = {"soc": "SOC (g/kg)", "stock": "SOC stock (t/ha)"}.get(parts[0], parts[0])
    title = " ".join([variable, *parts[1:]])
    if path.suffix == ".tif":
        return stem, {"href": str(path), "media_type": pystac.MediaType.COG, "roles": ["data"],
                      "title": title}  # fmt: skip
    if path.suffix == ".png":
        return f"{stem}_png", {"href": str(path), "media_type": pystac.MediaType.PNG,
                               "roles": ["overview"], "title": f"{title} quicklook"}  # fmt: skip
    return stem, {"href": str(path), "media_type": "application/vnd+zarr", "roles": ["data"],
                  "title": f"Zarr store {path.name}"}  # fmt: skip


class Plane:
    """``layer[stat, depth]`` as a lazily sliced 2-D array (reads one window at a time)."""

    def __init__(self, array: Any, stat: int, depth: int) -> None:
        self.array, self.stat, self.depth = array, stat, depth

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        return np.asarray(self.array[self.stat, self.depth, key[0], key[1]])

"""Read local raster layers (GeoTIFF, COG, anything GDAL opens) onto a target grid.

Each read touches only the source pixels under the target (sub-)grid plus a small margin for
the resampling kernel, so a cube can be built tile by tile in bounded memory. Values come back
as float32 with NaN for nodata and the catalog's ``scale``/``offset`` applied.

Sources are opened with rioxarray (lazy, one GDAL handle per thread) and warped with GDAL
(``rasterio.warp.reproject``, the call behind ``rio.reproject``) using the layer's resampling.
Between CRSs GDAL's approximate transformer is used (at most 1/8 source pixel of position
error, as in ``gdalwarp``), so values can differ by that much between tile sizes.

When the source pixels line up exactly with the target grid (same CRS, same resolution,
whole-pixel offset) the window is copied as is, which is what every resampling method would
return there, only faster and bit-exact.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from types import TracebackType

import numpy as np
import rasterio
import rasterio.errors
import rasterio.warp
import rioxarray
import xarray as xr
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.crs import CRS as RioCRS
from rasterio.enums import Resampling

from socmap._records import file_sha256
from socmap.catalog import CovariateSpec
from socmap.errors import CatalogError, CRSError, InputNotFound, RasterError
from socmap.grid import Grid, Window

__all__ = [
    "RESAMPLING",
    "LayerSource",
    "raster_has_values",
    "read_layer",
    "read_raster",
    "source_checksum",
]

#: Catalog resampling names and the GDAL methods behind them.
RESAMPLING: dict[str, Resampling] = {
    "bilinear": Resampling.bilinear,
    "average": Resampling.average,
    "cubic": Resampling.cubic,
    "nearest": Resampling.nearest,
    "mode": Resampling.mode,
}

#: Largest source window read in one piece (pixels); bigger reads are split by target quadrant.
MAX_SOURCE_PIXELS = 4096 * 4096

_ALIGN_TOLERANCE = 1e-6  # pixels


def source_checksum(path: str | Path, *, block_size: int = 1 << 20) -> str:
    """Return the sha256 hex digest of a file, read in blocks.

    Parameters
    ----------
    path
        File to hash.
    block_size
        Bytes read at a time; memory use does not depend on the file size.

    Raises
    ------
    InputNotFound
        If ``path`` is not a file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = pathlib.Path(tmp) / "x.bin"
    ...     _ = p.write_bytes(b"abc")
    ...     source_checksum(p)[:16]
    'ba7816bf8f01cfea'
    """
    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"source file {str(p)!r} does not exist; check the catalog source path")
    return file_sha256(p, block_size=block_size)


class LayerSource:
    """One catalog layer opened for repeated windowed reads.

    The file is opened once; reads from several threads are safe because every thread gets
    its own GDAL handle (rioxarray ``lock=False``). Use it as a context manager, or call
    :meth:`close`.

    Parameters
    ----------
    spec
        The catalog entry (band, kind, resampling, scale/offset, nodata).
    path
        Local path of the raster (``spec.resolve_source(catalog.base_dir)``).

    Raises
    ------
    InputNotFound
        If ``path`` does not exist.
    CRSError
        If the raster has no CRS.
    RasterError
        If the file cannot be read or the band is out of range.
    CatalogError
        If ``spec.resampling`` is not a known method.
    """

    def __init__(self, spec: CovariateSpec, path: str | Path) -> None:
        self.spec = spec
        self.path = Path(path)
        if not self.path.exists():
            raise InputNotFound(
                f"source {str(self.path)!r} of covariate {spec.name!r} does not exist; "
                "check the catalog 'source' (relative paths are taken from the catalog folder)"
            )
        if spec.resampling not in RESAMPLING:
            raise CatalogError(
                f"covariate {spec.name!r} has resampling {spec.resampling!r}; "
                f"use one of {sorted(RESAMPLING)!r}"
            )
        self.resampling: Resampling = RESAMPLING[spec.resampling]
        try:
            with warnings.catch_warnings():
                # A file without georeferencing gets a clearer CRSError below.
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                da = rioxarray.open_rasterio(self.path, lock=False, cache=False, masked=False)
        except (rasterio.errors.RasterioError, ValueError, OSError) as exc:
            msg = str(exc).replace("\n", " ")
            raise RasterError(
                f"cannot read {str(self.path)!r} (covariate {spec.name!r}) as a raster: {msg}; "
                "check that GDAL can open it (gdalinfo) and that it is a single file, not a folder"
            ) from exc
        if not isinstance(da, xr.DataArray):
            raise RasterError(
                f"{str(self.path)!r} (covariate {spec.name!r}) holds subdatasets "
                f"({type(da).__name__!r}); point the catalog at one subdataset or convert it "
                "to a GeoTIFF"
            )
        if da.rio.crs is None:
            raise CRSError(
                f"raster {str(self.path)!r} (covariate {spec.name!r}) has no CRS; assign one with "
                "`gdal_edit.py -a_srs EPSG:XXXX file.tif` or `da.rio.write_crs('EPSG:XXXX')` and "
                "save it again"
            )
        self.band_index = self._band_index(da)
        self._da = da.isel(band=self.band_index - 1)
        self.crs = da.rio.crs
        self.transform: Affine = da.rio.transform()
        self.shape: tuple[int, int] = (int(da.rio.height), int(da.rio.width))
        self.dtype = np.dtype(da.dtype)
        if self.dtype.kind not in "iuf":  # complex or other: a float cast would lose data
            raise RasterError(
                f"raster {str(self.path)!r} (covariate {spec.name!r}) holds {self.dtype} values; "
                "socmap reads real numbers: export the band you need (e.g. the amplitude with "
                "`gdal_calc.py --calc='abs(A)'`) and point the catalog at it"
            )
        raster_nodata = da.rio.nodata
        self.nodata: float | None = (
            float(spec.nodata)
            if spec.nodata is not None
            else (None if raster_nodata is None else float(raster_nodata))
        )
        self._crs_equal: dict[str, bool] = {}
        self._rio_crs: dict[str, RioCRS] = {}
        self._local = threading.local()

    # ------------------------------------------------------------------ setup helpers
    def _band_index(self, da: xr.DataArray) -> int:
        count = int(da.sizes["band"])
        band = self.spec.band
        if isinstance(band, str):
            names = da.attrs.get("long_name")
            names_t = (names,) if isinstance(names, str) else tuple(names or ())
            if band not in names_t:
                raise RasterError(
                    f"covariate {self.spec.name!r}: band {band!r} is not a band description of "
                    f"{str(self.path)!r} (descriptions: {names_t!r}); give a 1-based band index "
                    "or one of the descriptions"
                )
            return names_t.index(band) + 1
        if not 1 <= band <= count:
            raise RasterError(
                f"covariate {self.spec.name!r}: band {band!r} is out of range for "
                f"{str(self.path)!r}, which has {count} band(s); bands are numbered from 1"
            )
        return int(band)

    def close(self) -> None:
        """Close the file handle of the calling thread (worker handles close with their thread)."""
        self._da.close()

    def __enter__(self) -> LayerSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"LayerSource({self.spec.name!r}, {str(self.path)!r}, crs={self.crs.to_string()!r}, "
            f"shape={self.shape!r}, nodata={self.nodata!r})"
        )

    # ------------------------------------------------------------------ geometry
    def _same_crs(self, crs: str) -> bool:
        if crs not in self._crs_equal:
            self._crs_equal[crs] = bool(
                CRS.from_user_input(crs).equals(CRS.from_wkt(self.crs.to_wkt()))
            )
        return self._crs_equal[crs]

    def _transformer(self, crs: str) -> Transformer:
        """Target-to-source transformer, cached per thread (creating one costs ~30 ms)."""
        cache: dict[str, Transformer] = self._local.__dict__.setdefault("transformers", {})
        if crs not in cache:
            cache[crs] = Transformer.from_crs(crs, self.crs.to_wkt(), always_xy=True)
        return cache[crs]

    def _aligned_offset(self, grid: Grid) -> tuple[int, int] | None:
        """Whole-pixel ``(row, col)`` of ``grid``'s origin in the source, if the pixels line up."""
        s, t = self.transform, grid.transform
        if s.b != 0 or s.d != 0 or not self._same_crs(grid.crs):
            return None
        if not (
            math.isclose(s.a, t.a, rel_tol=1e-9, abs_tol=0.0)
            and math.isclose(s.e, t.e, rel_tol=1e-9, abs_tol=0.0)
        ):
            return None
        col = (t.c - s.c) / s.a
        row = (t.f - s.f) / s.e
        if abs(col - round(col)) > _ALIGN_TOLERANCE or abs(row - round(row)) > _ALIGN_TOLERANCE:
            return None
        return round(row), round(col)

    def source_window(self, grid: Grid) -> Window | None:
        """Source pixels needed to resample onto ``grid`` (with a kernel margin), or ``None``.

        ``None`` means the grid does not overlap the raster at all.
        """
        height, width = self.shape
        bounds = grid.bounds
        if not self._same_crs(grid.crs):
            try:
                bounds = self._transformer(grid.crs).transform_bounds(*bounds, densify_pts=21)
            except Exception:  # outside the projection's domain: read it all
                bounds = (math.inf,) * 4
        if not all(math.isfinite(v) for v in bounds):
            return Window(0, height, 0, width)
        left, bottom, right, top = bounds
        inv = ~self.transform
        corners = [inv @ (x, y) for x in (left, right) for y in (bottom, top)]
        cols = [c for c, _ in corners]
        rows = [r for _, r in corners]
        # Target pixel size in source pixels: downsampling kernels widen with it.
        ratio = max(
            (max(cols) - min(cols)) / grid.width,
            (max(rows) - min(rows)) / grid.height,
            1.0,
        )
        margin = 3 + math.ceil(2 * ratio)
        col0 = max(0, math.floor(min(cols)) - margin)
        col1 = min(width, math.ceil(max(cols)) + margin)
        row0 = max(0, math.floor(min(rows)) - margin)
        row1 = min(height, math.ceil(max(rows)) + margin)
        if col1 <= col0 or row1 <= row0:
            return None
        return Window(row0, row1, col0, col1)

    # ------------------------------------------------------------------ reading
    def _to_float(self, values: np.ndarray) -> np.ndarray:
        """Cast to float32 and set nodata to NaN (compared in the source dtype)."""
        out = values.astype(np.float32, copy=True)
        nd = self.nodata
        if nd is None or math.isnan(nd):
            return out
        if values.dtype.kind in "iu":
            info = np.iinfo(values.dtype)
            if float(nd).is_integer() and info.min <= nd <= info.max:
                out[values == values.dtype.type(nd)] = np.nan
        elif values.dtype.kind == "f":
            out[values == values.dtype.type(nd)] = np.nan
        else:
            out[values == nd] = np.nan
        return out

    def _read_source(self, window: Window) -> np.ndarray:
        try:
            values = self._da.isel(
                y=slice(window.row0, window.row1), x=slice(window.col0, window.col1)
            )
            return self._to_float(np.asarray(values.values))
        except rasterio.errors.RasterioError as exc:
            msg = str(exc).replace("\n", " ")
            raise RasterError(
                f"reading window {window!r} of {str(self.path)!r} (covariate "
                f"{self.spec.name!r}) failed: {msg}; the file may be truncated or corrupt"
            ) from exc

    def read(self, grid: Grid) -> np.ndarray:
        """Read the layer onto ``grid``.

        Parameters
        ----------
        grid
            Target grid, typically a tile's sub-grid.

        Returns
        -------
        numpy.ndarray
            float32 array shaped ``grid.shape``; NaN where the source has nodata or does not
            reach; ``scale`` and ``offset`` applied.
        """
        out = self._read_raw(grid)
        if self.spec.scale != 1.0 or self.spec.offset != 0.0:
            # Affine in the value, so it commutes with every continuous resampling.
            out *= np.float32(self.spec.scale)
            out += np.float32(self.spec.offset)
        return out

    def _read_raw(self, grid: Grid) -> np.ndarray:
        offset = self._aligned_offset(grid)
        if offset is not None:
            return self._read_aligned(grid, *offset)
        window = self.source_window(grid)
        if window is None:
            return np.full(grid.shape, np.nan, dtype=np.float32)
        h, w = window.shape
        if h * w > MAX_SOURCE_PIXELS and (grid.height > 1 or grid.width > 1):
            return self._read_split(grid)
        return self._warp(self._read_source(window), window, grid)

    def _read_aligned(self, grid: Grid, row: int, col: int) -> np.ndarray:
        out = np.full(grid.shape, np.nan, dtype=np.float32)
        height, width = self.shape
        r0, r1 = max(row, 0), min(row + grid.height, height)
        c0, c1 = max(col, 0), min(col + grid.width, width)
        if r1 > r0 and c1 > c0:
            block = self._read_source(Window(r0, r1, c0, c1))
            out[r0 - row : r1 - row, c0 - col : c1 - col] = block
        return out

    def _read_split(self, grid: Grid) -> np.ndarray:
        """Read a heavy downsampling in quadrants so no source window exceeds the cap."""
        out = np.empty(grid.shape, dtype=np.float32)
        hh = max(1, grid.height // 2)
        hw = max(1, grid.width // 2)
        for tile in grid.tiles((hh, hw)):
            out[tile.core.slices] = self._read_raw(tile.grid)
        return out

    def _warp(self, values: np.ndarray, window: Window, grid: Grid) -> np.ndarray:
        # The GDAL call behind rio.reproject, made directly: building xarray coordinates for
        # every tile and band cost ~6x the warp itself on small tiles.
        out = np.full(grid.shape, np.nan, dtype=np.float32)
        xscale, yscale = self._warp_scale(grid)
        rasterio.warp.reproject(
            values,
            out,
            src_transform=self.transform @ Affine.translation(window.col0, window.row0),
            src_crs=self.crs,
            src_nodata=np.nan,
            dst_transform=grid.transform,
            dst_crs=self._dst_crs(grid.crs),
            dst_nodata=np.nan,
            resampling=self.resampling,
            # GDAL otherwise estimates the scale per call from the window sizes, which goes
            # wrong for slivers (a 1-pixel-wide edge tile looks like downsampling and gets a
            # wider kernel); a local, tile-size-independent scale keeps tiles consistent.
            XSCALE=xscale,
            YSCALE=yscale,
        )
        return out

    def _warp_scale(self, grid: Grid) -> tuple[float, float]:
        """Destination pixels per source pixel along x and y, measured at the grid centre."""
        s, t = self.transform, grid.transform
        if s.b == 0 and s.d == 0 and self._same_crs(grid.crs):
            return abs(s.a) / t.a, abs(s.e) / abs(t.e)
        cx = t.c + t.a * grid.width / 2
        cy = t.f + t.e * grid.height / 2
        hx, hy = t.a / 2, -t.e / 2
        xs = np.array([cx - hx, cx + hx, cx, cx])
        ys = np.array([cy, cy, cy - hy, cy + hy])
        sx, sy = self._transformer(grid.crs).transform(xs, ys)
        inv = ~s
        cols = inv.a * sx + inv.b * sy + inv.c
        rows = inv.d * sx + inv.e * sy + inv.f
        step_x = math.hypot(cols[1] - cols[0], rows[1] - rows[0])
        step_y = math.hypot(cols[3] - cols[2], rows[3] - rows[2])
        if not (math.isfinite(step_x) and math.isfinite(step_y)) or step_x <= 0 or step_y <= 0:
            return 1.0, 1.0
        return 1.0 / step_x, 1.0 / step_y

    def _dst_crs(self, crs: str) -> RioCRS:
        if crs not in self._rio_crs:
            self._rio_crs[crs] = RioCRS.from_user_input(crs)
        return self._rio_crs[crs]


def read_layer(spec: CovariateSpec, path: str | Path, grid: Grid) -> np.ndarray:
    """Read one catalog layer onto a target grid.

    Only the source pixels under ``grid`` (plus a margin for the resampling kernel) are read,
    then warped onto ``grid`` with the layer's resampling (bilinear/average/cubic for
    continuous layers, nearest/mode for categorical ones).

    Parameters
    ----------
    spec
        Catalog entry: band, kind, resampling, scale, offset and nodata. ``spec.nodata`` wins
        over the raster's own nodata value.
    path
        Local raster path.
    grid
        Target grid or a tile's sub-grid.

    Returns
    -------
    numpy.ndarray
        float32 ``grid.shape`` array, NaN for nodata, ``value * scale + offset``.

    Raises
    ------
    InputNotFound
        Missing file.
    CRSError
        Raster without a CRS.
    RasterError
        Band out of range, or the file cannot be read.

    Examples
    --------
    >>> from socmap.catalog import load_catalog
    >>> cat = load_catalog("meuse")
    >>> spec = cat["dist"]
    >>> grid = cat.grid.to_grid()
    >>> a = read_layer(spec, spec.resolve_source(cat.base_dir), grid)
    >>> a.shape == grid.shape, a.dtype
    (True, dtype('float32'))
    """
    with LayerSource(spec, path) as src:
        return src.read(grid)


def read_raster(path: str | Path, grid: Grid, resampling: str = "nearest") -> np.ndarray:
    """Read band 1 of any single-band raster onto ``grid`` (float64, NaN for nodata).

    For rasters outside a catalog: stratum maps (``"nearest"``), prior maps
    (``"bilinear"``). The raster's own nodata value becomes NaN.

    Raises
    ------
    InputNotFound
        Missing file.
    CRSError
        Raster without a CRS.
    """
    import rasterio
    from rasterio.warp import reproject

    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"raster {str(p)!r} does not exist; check the path")
    out = np.full(grid.shape, np.nan, dtype=np.float64)
    with rasterio.open(p) as src:
        if src.crs is None:
            raise CRSError(f"raster {str(p)!r} has no CRS; set one (gdal_edit.py -a_srs) and retry")
        reproject(
            rasterio.band(src, 1),
            out,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            src_nodata=src.nodata,
            dst_nodata=np.nan,
            resampling=RESAMPLING[resampling],
        )
    return out


def raster_has_values(path: str | Path) -> bool:
    """Whether band 1 of a raster holds any finite value that is not its nodata.

    Read block by block, stopping at the first block with a value, so a real map costs one
    block and only an empty one is read whole. For ``socmap run --plan``: a stratum raster
    of nodata alone would otherwise be found only after the map was predicted.
    """
    import rasterio

    with rasterio.open(Path(path)) as src:
        for _, window in src.block_windows(1):
            block = src.read(1, window=window, masked=True)
            values = np.ma.filled(block.astype(np.float64), np.nan)
            if np.isfinite(values).any():
                return True
    return False

"""The pixel grid every cube, pull, tile and output is defined on.

A :class:`Grid` is an immutable value: a CRS, a north-up affine transform and a shape
``(height, width)``. Operations return new grids; nothing re-derives bounds on its own.
Two grids that differ only by floating-point noise in the transform compare equal; any
other difference raises :class:`~socmap.errors.GridMismatch` from :meth:`Grid.check_same`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError

from socmap.errors import CRSError, GridMismatch, InputNotFound, RasterError

__all__ = ["MAX_PIXELS", "Grid", "Tile", "Window", "check_grid_size", "normalise_crs"]

#: Relative tolerance, in pixels, under which two transforms are the same grid.
PIXEL_TOLERANCE = 1e-6


def normalise_crs(crs: Any) -> str:
    """Return a canonical string for ``crs``: ``"EPSG:n"`` where possible, else WKT.

    Parameters
    ----------
    crs
        Anything :class:`pyproj.CRS` accepts (EPSG code, ``"EPSG:4326"``, WKT, PROJ string,
        rasterio or pyproj CRS object).

    Raises
    ------
    CRSError
        If ``crs`` is missing or cannot be parsed.

    Examples
    --------
    >>> normalise_crs(4326)
    'EPSG:4326'
    """
    if isinstance(crs, str | int):
        return _normalise_cached(crs)
    return _normalise(crs)


@lru_cache(maxsize=256)
def _normalise_cached(crs: str | int) -> str:
    # Parsing a CRS costs about a millisecond; grids are built per tile, so cache it.
    return _normalise(crs)


def _normalise(crs: Any) -> str:
    if crs is None or (isinstance(crs, str) and not crs.strip()):
        raise CRSError(
            f"CRS is {crs!r}: every grid needs one; give e.g. EPSG:4326 (CLI: --crs EPSG:4326 "
            "or a table's crs column; a raster: gdal_edit.py -a_srs EPSG:4326; Python: "
            "crs='EPSG:4326')"
        )
    try:
        parsed = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    except PyprojCRSError as exc:
        raise CRSError(
            f"cannot parse CRS {crs!r} ({exc}); use an EPSG code such as 'EPSG:28355'"
        ) from exc
    flat = parsed.is_projected or parsed.is_geographic  # a compound CRS with heights is too
    if parsed.is_geocentric or (parsed.is_vertical and not flat):  # once read as x/y
        kind = (
            "geocentric (X, Y, Z from the Earth's centre)"
            if parsed.is_geocentric
            else ("vertical (heights only)")
        )
        raise CRSError(
            f"CRS {crs!r} is {kind}, not a map's; give a geographic or projected CRS such as "
            "EPSG:4326 (CLI: --crs EPSG:4326)"
        )
    epsg = parsed.to_epsg(min_confidence=90)
    return f"EPSG:{epsg}" if epsg is not None else parsed.to_wkt()


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels, ``rows [row0, row1)`` by ``cols [col0, col1)``."""

    row0: int
    row1: int
    col0: int
    col1: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the window."""
        return (self.row1 - self.row0, self.col1 - self.col0)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Numpy slices ``(rows, cols)``."""
        return (slice(self.row0, self.row1), slice(self.col0, self.col1))


@dataclass(frozen=True)
class Tile:
    """One tile of a grid: the pixels it owns plus a halo for neighbourhood models.

    Attributes
    ----------
    index
        ``(tile_row, tile_col)`` in the tiling.
    core
        Window of pixels this tile is responsible for, in parent-grid pixels.
    outer
        ``core`` grown by the halo and clipped to the parent grid.
    grid
        The grid of ``outer``.
    """

    index: tuple[int, int]
    core: Window
    outer: Window
    grid: Grid

    @property
    def core_in_outer(self) -> tuple[slice, slice]:
        """Slices that cut ``core`` out of an array shaped like ``outer``."""
        r0 = self.core.row0 - self.outer.row0
        c0 = self.core.col0 - self.outer.col0
        h, w = self.core.shape
        return (slice(r0, r0 + h), slice(c0, c0 + w))


@dataclass(frozen=True, eq=False)
class Grid:
    """An immutable north-up pixel grid.

    Parameters
    ----------
    crs
        Coordinate reference system; normalised to ``"EPSG:n"`` or WKT.
    transform
        Affine transform from pixel ``(col, row)`` to map ``(x, y)`` of the pixel's
        upper-left corner. Must be north-up (no rotation, negative ``e``).
    shape
        ``(height, width)`` in pixels, i.e. ``(y, x)``.

    Examples
    --------
    >>> g = Grid.from_bbox((0, 0, 1000, 500), resolution=100, crs="EPSG:32755")
    >>> g.shape
    (5, 10)
    >>> g.bounds
    (0.0, 0.0, 1000.0, 500.0)
    >>> g.crop((250, 120, 610, 400)).shape
    (3, 5)
    """

    crs: str
    transform: Affine
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "crs", normalise_crs(self.crs))
        t = Affine(*tuple(self.transform)[:6])
        if t.b != 0 or t.d != 0:
            raise GridMismatch(
                f"transform {tuple(t)[:6]!r} is rotated or sheared; socmap grids are north-up. "
                "Warp the raster to a north-up grid first (gdalwarp)."
            )
        if t.a <= 0 or t.e >= 0:
            raise GridMismatch(
                f"transform {tuple(t)[:6]!r} must have positive x and negative y pixel size "
                "(north-up); flip the raster with gdalwarp."
            )
        object.__setattr__(self, "transform", t)
        h, w = (int(v) for v in self.shape)
        if h <= 0 or w <= 0:
            raise GridMismatch(f"grid shape {self.shape!r} must be positive (height, width)")
        object.__setattr__(self, "shape", (h, w))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_bbox(
        cls,
        bbox: tuple[float, float, float, float],
        resolution: float | tuple[float, float],
        crs: Any,
        *,
        anchor: bool = True,
    ) -> Grid:
        """Build the grid covering ``bbox`` at ``resolution``.

        Parameters
        ----------
        bbox
            ``(minx, miny, maxx, maxy)`` in ``crs`` units.
        resolution
            Pixel size, one number or ``(xres, yres)``, positive, in ``crs`` units.
        crs
            Coordinate reference system.
        anchor
            Snap the edges outwards to whole multiples of the resolution, so grids built
            from different boxes at one resolution align. Otherwise the grid starts at
            ``(minx, maxy)`` exactly.
        """
        minx, miny, maxx, maxy = (float(v) for v in bbox)
        if not (maxx > minx and maxy > miny):
            raise GridMismatch(
                f"bbox {bbox!r} is empty or inverted; give (minx, miny, maxx, maxy) with "
                "maxx > minx and maxy > miny"
            )
        if isinstance(resolution, tuple | list):
            xres, yres = float(resolution[0]), float(resolution[1])
        else:
            xres = yres = float(resolution)
        if xres <= 0 or yres <= 0:
            raise GridMismatch(f"resolution {resolution!r} must be positive")
        if anchor:
            minx = math.floor(minx / xres + PIXEL_TOLERANCE) * xres
            maxy = math.ceil(maxy / yres - PIXEL_TOLERANCE) * yres
        width = max(1, math.ceil((maxx - minx) / xres - PIXEL_TOLERANCE))
        height = max(1, math.ceil((maxy - miny) / yres - PIXEL_TOLERANCE))
        return cls(crs, Affine(xres, 0.0, minx, 0.0, -yres, maxy), (height, width))

    @classmethod
    def from_raster(cls, path: str | Path) -> Grid:
        """Read the grid of a raster file (GeoTIFF/COG or anything rasterio opens)."""
        import warnings

        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

        path = Path(path)
        if not path.exists():
            raise InputNotFound(f"raster {str(path)!r} does not exist; check the path")
        what = "--grid takes a built-in region name, a YAML file with a grid: mapping or a "
        what += "georeferenced raster (.tif)"
        try:
            with warnings.catch_warnings():  # a file without a transform is refused below
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                src = rasterio.open(path)
        except RasterioIOError as exc:
            raise RasterError(
                f"cannot read {str(path)!r} as a raster ({str(exc).rstrip('.')}); {what}"
            ) from None
        with src:
            if src.crs is None:
                raise CRSError(
                    f"raster {str(path)!r} has no CRS; assign one with "
                    f"`gdal_edit.py -a_srs EPSG:XXXX` or `rio.write_crs()` ({what})"
                )
            return cls(src.crs, src.transform, (src.height, src.width))

    @classmethod
    def from_xarray(cls, obj: Any) -> Grid:
        """Read the grid of an xarray object with rioxarray spatial metadata."""
        import rioxarray  # noqa: F401  (registers the .rio accessor)

        crs = obj.rio.crs
        if crs is None:
            raise CRSError(
                "array has no CRS; set it with `obj.rio.write_crs('EPSG:XXXX')` before use"
            )
        return cls(crs, obj.rio.transform(recalc=True), (obj.rio.height, obj.rio.width))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Grid:
        """Inverse of :meth:`to_dict`; also accepts ``{bbox, resolution, crs}``."""
        if "transform" in d:
            return cls(
                d["crs"], Affine(*d["transform"][:6]), (int(d["shape"][0]), int(d["shape"][1]))
            )
        missing = {"bbox", "resolution", "crs"} - set(d)
        if missing:
            raise GridMismatch(
                f"grid spec {dict(d)!r} lacks {sorted(missing)!r}; give crs, transform and "
                "shape, or crs, bbox and resolution"
            )
        return cls.from_bbox(tuple(d["bbox"]), d["resolution"], d["crs"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: ``crs``, ``transform`` (6 numbers) and ``shape``."""
        return {
            "crs": self.crs,
            "transform": [float(v) for v in tuple(self.transform)[:6]],
            "shape": list(self.shape),
        }

    # ------------------------------------------------------------------ properties
    @property
    def height(self) -> int:
        """Number of rows (y)."""
        return self.shape[0]

    @property
    def width(self) -> int:
        """Number of columns (x)."""
        return self.shape[1]

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size ``(xres, yres)``, both positive."""
        return (self.transform.a, -self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` of the outer pixel edges."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @cached_property
    def pyproj_crs(self) -> CRS:
        """The CRS as a :class:`pyproj.CRS`."""
        return CRS.from_user_input(self.crs)

    @property
    def is_geographic(self) -> bool:
        """Whether the CRS is in degrees."""
        return bool(self.pyproj_crs.is_geographic)

    @property
    def xs(self) -> np.ndarray:
        """X coordinates of pixel centres (length ``width``)."""
        return self.transform.c + self.transform.a * (np.arange(self.width) + 0.5)

    @property
    def ys(self) -> np.ndarray:
        """Y coordinates of pixel centres (length ``height``), north to south."""
        return self.transform.f + self.transform.e * (np.arange(self.height) + 0.5)

    @property
    def centre_lonlat(self) -> tuple[float, float]:
        """Longitude and latitude (WGS84) of the grid's centre."""
        from pyproj import Transformer

        minx, miny, maxx, maxy = self.bounds
        to_geo = Transformer.from_crs(self.pyproj_crs, "EPSG:4326", always_xy=True)
        lon, lat = to_geo.transform((minx + maxx) / 2, (miny + maxy) / 2)
        return float(lon), float(lat)

    def pixel_areas_m2(self, centre: tuple[float, float] | None = None) -> np.ndarray:
        """Area of every pixel in m², measured in an equal-area projection.

        Pixel corners are projected to a Lambert azimuthal equal-area CRS centred on
        ``centre`` (lon, lat; default :attr:`centre_lonlat`) and each quadrilateral's area
        is taken there, so degree grids and conformal projections (UTM) get true areas.
        Pass the parent grid's centre when measuring windows, so a tile's pixels have the
        areas they have in the whole grid.

        Examples
        --------
        >>> g = Grid("EPSG:4326", Affine(1.0, 0, 0, 0, -1.0, 1.0), (2, 1))
        >>> a = g.pixel_areas_m2()
        >>> (a[:, 0] / 1e9).round(2).tolist()  # 1 degree at the equator: about 12,309 km²
        [12.31, 12.31]
        """
        from pyproj import Transformer

        lon, lat = centre if centre is not None else self.centre_lonlat
        laea = CRS.from_proj4(f"+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m")
        to_laea = Transformer.from_crs(self.pyproj_crs, laea, always_xy=True)
        t = self.transform
        cols, rows = np.meshgrid(np.arange(self.width + 1.0), np.arange(self.height + 1.0))
        x, y = to_laea.transform(t.c + t.a * cols + t.b * rows, t.f + t.d * cols + t.e * rows)
        x, y = np.asarray(x), np.asarray(y)
        # shoelace over the corners (r, c) -> (r, c+1) -> (r+1, c+1) -> (r+1, c)
        x0, x1, x2, x3 = x[:-1, :-1], x[:-1, 1:], x[1:, 1:], x[1:, :-1]
        y0, y1, y2, y3 = y[:-1, :-1], y[:-1, 1:], y[1:, 1:], y[1:, :-1]
        twice = (
            (x0 * y1 - x1 * y0) + (x1 * y2 - x2 * y1) + (x2 * y3 - x3 * y2) + (x3 * y0 - x0 * y3)
        )
        return np.abs(twice) / 2.0

    # ------------------------------------------------------------------ geometry
    def rowcol(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fractional ``(row, col)`` of map coordinates; pixel centres are at ``i + 0.5``."""
        t = self.transform
        col = (np.asarray(x, dtype=float) - t.c) / t.a
        row = (np.asarray(y, dtype=float) - t.f) / t.e
        return row, col

    def window(self, window: Window) -> Grid:
        """Return the sub-grid of a pixel window (which must lie inside this grid)."""
        if not (0 <= window.row0 < window.row1 <= self.height) or not (
            0 <= window.col0 < window.col1 <= self.width
        ):
            raise GridMismatch(f"window {window!r} is outside grid of shape {self.shape!r}")
        t = self.transform @ Affine.translation(window.col0, window.row0)
        return Grid(self.crs, t, window.shape)

    def crop(self, bbox: tuple[float, float, float, float]) -> Grid:
        """Return the smallest sub-grid whose pixels cover ``bbox``, aligned to this grid.

        Raises
        ------
        GridMismatch
            If ``bbox`` does not intersect the grid.
        """
        minx, miny, maxx, maxy = bbox
        r_top, c_left = self.rowcol(minx, maxy)
        r_bot, c_right = self.rowcol(maxx, miny)
        col0 = max(0, math.floor(float(c_left) + PIXEL_TOLERANCE))
        row0 = max(0, math.floor(float(r_top) + PIXEL_TOLERANCE))
        col1 = min(self.width, math.ceil(float(c_right) - PIXEL_TOLERANCE))
        row1 = min(self.height, math.ceil(float(r_bot) - PIXEL_TOLERANCE))
        if col1 <= col0 or row1 <= row0:
            raise GridMismatch(
                f"bbox {tuple(bbox)!r} does not intersect grid bounds {self.bounds!r}; "
                "check the CRS of the bbox"
            )
        return self.window(Window(row0, row1, col0, col1))

    def tiles(self, size: int | tuple[int, int], halo: int = 0) -> Iterator[Tile]:
        """Split the grid into tiles of ``size`` pixels, each with a ``halo``.

        Parameters
        ----------
        size
            Tile size in pixels, ``n`` or ``(rows, cols)``. Edge tiles are smaller.
        halo
            Extra pixels on each side, for models that look at a neighbourhood. It should
            equal the model's receptive-field radius; it is clipped at the grid edge.

        Yields
        ------
        Tile
            Tiles in row-major order; their ``core`` windows partition the grid.
        """
        th, tw = (size, size) if isinstance(size, int) else size
        if th <= 0 or tw <= 0 or halo < 0:
            raise GridMismatch(f"tile size {size!r} must be positive and halo {halo!r} >= 0")
        for i, r0 in enumerate(range(0, self.height, th)):
            for j, c0 in enumerate(range(0, self.width, tw)):
                core = Window(r0, min(r0 + th, self.height), c0, min(c0 + tw, self.width))
                outer = Window(
                    max(0, core.row0 - halo),
                    min(self.height, core.row1 + halo),
                    max(0, core.col0 - halo),
                    min(self.width, core.col1 + halo),
                )
                yield Tile((i, j), core, outer, self.window(outer))

    # ------------------------------------------------------------------ comparison
    def difference(self, other: Grid) -> str | None:
        """Describe how ``other`` differs from this grid, or ``None`` if they are equal."""
        if self.shape != other.shape:
            return f"shape {self.shape!r} != {other.shape!r}"
        if self.crs != other.crs and not self.pyproj_crs.equals(other.pyproj_crs):
            return f"CRS {self.crs!r} != {other.crs!r}"
        res = min(self.resolution)
        a = np.asarray(tuple(self.transform)[:6])
        b = np.asarray(tuple(other.transform)[:6])
        if np.any(np.abs(a - b) > PIXEL_TOLERANCE * res):
            return f"transform {tuple(a)!r} != {tuple(b)!r}"
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Grid):
            return NotImplemented
        return self.difference(other) is None

    def __hash__(self) -> int:
        # Equality is tolerant, so only exact parts may enter the hash.
        return hash(self.shape)

    def check_same(self, other: Grid, what: str = "grid") -> None:
        """Raise :class:`GridMismatch` unless ``other`` equals this grid.

        Parameters
        ----------
        other
            Grid to compare.
        what
            Name of the other object, used in the message.
        """
        diff = self.difference(other)
        if diff is not None:
            raise GridMismatch(
                f"{what} is not on the expected grid: {diff}. Rebuild it on the target grid "
                "(socmap cube build --grid ...) instead of resampling silently."
            )

    def __repr__(self) -> str:
        xres, yres = self.resolution
        return (
            f"Grid(crs={self.crs!r}, shape={self.shape!r}, resolution=({xres:g}, {yres:g}), "
            f"bounds={tuple(round(v, 6) for v in self.bounds)!r})"
        )


#: Largest grid a cube is built or pulled on unless ``SOCMAP_MAX_PIXELS`` says otherwise
#: (2e9 pixels: ~45 000 x 45 000, 8 GB per float32 band); guards against a mistyped
#: resolution (1 instead of 1000 m) that would otherwise grow memory until killed.
MAX_PIXELS = 2_000_000_000


def check_grid_size(grid: Grid, what: str = "cube") -> None:
    """Refuse a grid larger than ``SOCMAP_MAX_PIXELS`` (default :data:`MAX_PIXELS`).

    Raises
    ------
    GridMismatch
        The grid has more pixels than the limit; the message gives its shape, resolution
        and CRS units, and how to raise the limit.
    """
    raw = os.environ.get("SOCMAP_MAX_PIXELS", "")
    try:
        limit = int(float(raw)) if raw else MAX_PIXELS
    except ValueError:
        raise GridMismatch(f"SOCMAP_MAX_PIXELS {raw!r} must be a number of pixels") from None
    n = grid.height * grid.width
    if n > limit:
        units = "degrees" if grid.is_geographic else "CRS units (usually metres)"
        raise GridMismatch(
            f"the {what} grid is {grid.height:,} x {grid.width:,} = {n:,} pixels at "
            f"resolution {grid.resolution[0]:g} {units}, above the limit of {limit:,}; check "
            "the resolution and bbox (a resolution of 1 where 1000 was meant?), or raise the "
            "limit with the environment variable SOCMAP_MAX_PIXELS"
        )

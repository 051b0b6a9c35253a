"""Build, open and describe covariate cubes.

A cube is a Zarr v3 store holding one float32 array ``covariates(band, y, x)``:

- ``band`` coordinate: the catalog's layer names, in catalog order;
- ``y``/``x`` coordinates: pixel centres; CRS and transform in rioxarray's ``spatial_ref``;
- NaN for nodata; chunks hold every band of a spatial tile (default 512 x 512);
- attrs of ``covariates``: per-band lists aligned with ``band_names`` (``band_units``,
  ``band_kind``, ``band_group``, ``band_classes``, ``band_resampling``, ``band_scale``,
  ``band_offset``, ``band_nodata``, ``band_description``, ``band_source``,
  ``band_source_path``, ``band_source_sha256``, ``band_nodata_fraction``,
  ``band_unknown_class_pixels``, ``band_unknown_classes`` (code -> pixels set to nodata
  under ``unknown_classes="nodata"``); cubes pulled from Earth Engine add ``band_ee_expression``)
  and provenance (``catalog_name``, ``catalog_sha256``, ``socmap_version``, ``created``,
  ``grid``, ``chunk``).

:func:`build_cube` writes it tile by tile (one tile = one chunk, so memory stays at a few
chunks whatever the grid size); :func:`open_cube` opens it lazily with dask.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import hashlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import dask.array as dsa
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import zarr
from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.errors import NotGeoreferencedWarning

from socmap._io import atomic_path, check_replaceable
from socmap._progress import track
from socmap.catalog import Catalog, CovariateSpec, load_catalog
from socmap.errors import (
    BandMismatch,
    CatalogError,
    CRSError,
    DimensionOrderError,
    GridMismatch,
    InputNotFound,
    RasterError,
)
from socmap.grid import Grid, Tile
from socmap.sources.local import LayerSource, source_checksum

__all__ = [
    "CUBE_DIMS",
    "CUBE_FORMAT",
    "CUBE_VAR",
    "CubeInfo",
    "band_table",
    "build_cube",
    "cube_grid",
    "describe_cube",
    "open_cube",
    "stand_ins",
]

CUBE_VAR = "covariates"
CUBE_DIMS = ("band", "y", "x")
#: Value of the ``socmap_cube`` attr; bump when the layout changes.
CUBE_FORMAT = "1"
#: Upper bound on GDAL's block cache while a cube is built (bytes).
GDAL_CACHE_BYTES = 128 * 2**20

#: Attrs holding one entry per band, aligned with ``band_names``.
BAND_ATTRS = (
    "band_names",
    "band_units",
    "band_kind",
    "band_group",
    "band_classes",
    "band_resampling",
    "band_scale",
    "band_offset",
    "band_nodata",
    "band_description",
    "band_source",
    "band_source_path",
    "band_source_sha256",
    "band_nodata_fraction",
    "band_unknown_class_pixels",
    "band_unknown_classes",
    "band_ee_expression",
    "band_stands_for",
)

T = TypeVar("T")
R = TypeVar("R")


# ---------------------------------------------------------------------- helpers
def _jsonable_number(value: float | None) -> float | str | None:
    """Return ``value`` for JSON attrs: finite floats as is, NaN/inf as strings."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else str(v)


def _catalog_digest(cat: Catalog) -> str:
    """sha256 of the catalog file, or of its JSON dump when it was built in code."""
    if cat.digest:
        return cat.digest
    return hashlib.sha256(cat.model_dump_json().encode()).hexdigest()


def _socmap_version() -> str:
    from socmap import __version__

    return __version__


def _bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """Map ``fn`` over ``items`` on a thread pool, at most ``2 * workers`` in flight.

    Results come in completion order. The first error cancels what has not started and is
    re-raised once running tasks finish.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    it = iter(items)
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="socmap-cube")
    try:
        pending = {pool.submit(fn, item) for item in islice(it, 2 * workers)}
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                result = fut.result()
                nxt = next(it, _SENTINEL)
                if nxt is not _SENTINEL:
                    pending.add(pool.submit(fn, nxt))  # type: ignore[arg-type]
                yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_SENTINEL = object()


def _resolve_catalog(catalog: Catalog | str | Path) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else load_catalog(catalog)


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


def _resolve_grid(cat: Catalog, grid: Grid | None) -> Grid:
    if grid is None:
        if cat.grid is None:
            raise CatalogError(
                f"catalog {cat.name!r} has no 'grid' and no grid was given; pass grid=Grid(...) "
                "(CLI: --grid region.yaml) or add grid: {crs, bbox, resolution} to the catalog"
            )
        grid = cat.grid.to_grid()
    check_grid_size(grid)
    return grid


def _check_local(cat: Catalog) -> None:
    ee = [c.name for c in cat.covariates if c.is_earth_engine]
    if ee:
        raise CatalogError(
            f"catalog {cat.name!r} has Earth Engine sources for {ee!r}; a local build reads files "
            "only: put the ee:// layers in a catalog of their own and run `socmap ee pull` on it "
            "(it writes a cube of its own), and build the local layers with `socmap cube build`"
        )


def _spec_band_attrs(specs: Sequence[CovariateSpec]) -> dict[str, Any]:
    """Per-band attrs that come from the catalog entries alone (any source kind)."""
    return {
        "band_names": [s.name for s in specs],
        "band_units": [s.units for s in specs],
        "band_kind": [s.kind for s in specs],
        "band_group": [s.group for s in specs],
        "band_classes": [
            None if s.classes is None else {str(k): v for k, v in s.classes.items()} for s in specs
        ],
        "band_resampling": [s.resampling for s in specs],
        "band_scale": [float(s.scale) for s in specs],
        "band_offset": [float(s.offset) for s in specs],
        "band_description": [s.description for s in specs],
        "band_source": [s.source for s in specs],
        "band_stands_for": [s.stands_for for s in specs],
    }


def _band_attrs(
    cat: Catalog, sources: Sequence[LayerSource], checksums: dict[Path, str]
) -> dict[str, Any]:
    attrs = _spec_band_attrs(cat.covariates)
    attrs["band_nodata"] = [_jsonable_number(src.nodata) for src in sources]
    attrs["band_source_path"] = [str(src.path) for src in sources]
    attrs["band_source_sha256"] = [checksums[src.path] for src in sources]
    return {key: attrs[key] for key in BAND_ATTRS if key in attrs}


def _write_template(
    path: Path, grid: Grid, names: list[str], attrs: dict[str, Any], chunk: int
) -> None:
    """Write coordinates, CRS and attrs; the data array stays unwritten (NaN fill)."""
    shape = (len(names), *grid.shape)
    chunks = (len(names), min(chunk, grid.height), min(chunk, grid.width))
    data = dsa.full(shape, np.nan, dtype=np.float32, chunks=chunks)
    arr = xr.DataArray(
        data,
        dims=CUBE_DIMS,
        coords={"band": np.asarray(names, dtype=object), "y": grid.ys, "x": grid.xs},
        name=CUBE_VAR,
        attrs=attrs,
    )
    arr = arr.rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    arr.encoding.update({"chunks": chunks, "fill_value": np.float32(np.nan)})
    arr.x.attrs.update({"axis": "X", "long_name": "x coordinate of pixel centre"})
    arr.y.attrs.update({"axis": "Y", "long_name": "y coordinate of pixel centre"})
    ds = arr.to_dataset()
    ds.attrs["title"] = f"socmap covariate cube ({attrs['catalog_name']})"
    ds.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=False)


@contextlib.contextmanager
def _gdal_cache_capped(limit: int) -> Iterator[None]:
    """Cap GDAL's process-wide block cache (default 5% of RAM) and restore it afterwards.

    Every source block a build touches would otherwise stay cached; on a 24 GB machine that
    alone pushed an 8192 x 8192 build past 1.5 GB of RSS.
    """
    previous = get_gdal_config("GDAL_CACHEMAX")
    if isinstance(previous, int) and previous <= limit:
        yield
        return
    set_gdal_config("GDAL_CACHEMAX", limit)
    try:
        yield
    finally:
        if isinstance(previous, int):
            set_gdal_config("GDAL_CACHEMAX", previous)


@dataclass
class _TileResult:
    valid: np.ndarray  # valid pixels per band
    unknown: list[dict[str, int]]  # per band: code outside the class list -> pixels


#: What to do with categorical codes missing from a band's class list.
UNKNOWN_CLASS_POLICIES = ("refuse", "nodata")


def mask_unknown_classes(
    block: np.ndarray, class_codes: Sequence[np.ndarray | None]
) -> list[dict[str, int]]:
    """Set codes outside each categorical band's class list to NaN, in place; count them.

    Parameters
    ----------
    block
        ``(band, y, x)`` float values.
    class_codes
        Sorted class codes per band, ``None`` for a continuous band.

    Returns
    -------
    list of dict
        Per band, ``{code: pixels}`` of the codes that were not in the list.

    Examples
    --------
    >>> b = np.array([[[1.0, 7.0, np.nan, 7.0]]], dtype=np.float32)
    >>> mask_unknown_classes(b, [np.array([1.0, 2.0])]), b.tolist()
    ([{'7': 2}], [[[1.0, nan, nan, nan]]])
    """
    found: list[dict[str, int]] = []
    for i, codes in enumerate(class_codes):
        counts: dict[str, int] = {}
        if codes is not None:
            bad = ~np.isnan(block[i]) & ~np.isin(block[i], codes)
            if bad.any():
                values, n = np.unique(block[i][bad], return_counts=True)
                counts = {f"{v:g}": int(k) for v, k in zip(values, n, strict=True)}
                block[i][bad] = np.nan
        found.append(counts)
    return found


def add_class_counts(total: list[dict[str, int]], part: Sequence[Mapping[str, int]]) -> None:
    """Add per-band ``{code: pixels}`` counts ``part`` into ``total``, in place."""
    for mine, theirs in zip(total, part, strict=True):
        for code, n in theirs.items():
            mine[code] = mine.get(code, 0) + int(n)


def check_unknown_classes(
    names: Sequence[str], found: Sequence[Mapping[str, int]], policy: str
) -> None:
    """Refuse categorical codes missing from the catalog unless ``policy`` is ``"nodata"``.

    Raises
    ------
    CatalogError
        A bad ``policy``, or unknown codes under ``"refuse"``: the message lists each band's
        codes with their pixel counts, and both fixes.
    """
    if policy not in UNKNOWN_CLASS_POLICIES:
        raise CatalogError(
            f"unknown_classes {policy!r} must be one of {list(UNKNOWN_CLASS_POLICIES)!r}"
        )
    flagged = {n: dict(f) for n, f in zip(names, found, strict=True) if f}
    if flagged and policy == "refuse":
        listed = "; ".join(
            f"{band!r}: "
            + ", ".join(f"{c} ({k} px)" for c, k in sorted(codes.items())[:10])
            + (f" and {len(codes) - 10} more codes" if len(codes) > 10 else "")
            for band, codes in flagged.items()
        )
        raise CatalogError(
            f"categorical codes missing from the catalog's class list: {listed}; add them to "
            "the band's 'classes' in the catalog, or pass --unknown-classes nodata "
            "(Python: unknown_classes='nodata') to map them as nodata (nothing was written)"
        )


def unknown_pixels(found: Sequence[Mapping[str, int]]) -> list[int]:
    """Pixels per band set to nodata as unknown classes (the ``band_unknown_class_pixels``)."""
    return [int(sum(f.values())) for f in found]


def _make_tile_writer(
    array: Any, sources: Sequence[LayerSource], class_codes: list[np.ndarray | None]
) -> Callable[[Tile], _TileResult]:
    n = len(sources)

    def write(tile: Tile) -> _TileResult:
        h, w = tile.core.shape
        block = np.empty((n, h, w), dtype=np.float32)
        for i, src in enumerate(sources):
            block[i] = src.read(tile.grid)
        # Codes outside the class list cannot be embedded: counted, then refused or NaN.
        unknown = mask_unknown_classes(block, class_codes)
        array[:, tile.core.row0 : tile.core.row1, tile.core.col0 : tile.core.col1] = block
        valid = np.count_nonzero(~np.isnan(block), axis=(1, 2)).astype(np.int64)
        return _TileResult(valid=valid, unknown=unknown)

    return write


# ---------------------------------------------------------------------- build
def build_cube(
    catalog: Catalog | str | Path,
    grid: Grid | None,
    out: str | Path,
    *,
    chunk: int = 512,
    overwrite: bool = False,
    workers: int | None = None,
    unknown_classes: str = "refuse",
    progress: bool = True,
) -> Path:
    """Build a covariate cube from a catalog of local rasters.

    Every layer is resampled onto ``grid`` tile by tile (one tile per chunk), so memory stays
    at a few chunks whatever the grid size. The store is written next to ``out`` and renamed
    into place at the end: a failed build leaves nothing behind. While it runs, GDAL's
    process-wide block cache is capped at :data:`GDAL_CACHE_BYTES` (then restored).

    Parameters
    ----------
    catalog
        A :class:`~socmap.catalog.Catalog`, a catalog YAML path, or a built-in catalog name.
    grid
        Target grid; ``None`` uses the catalog's ``grid``.
    out
        Output Zarr store (a directory, conventionally ``*.zarr``).
    chunk
        Spatial chunk size in pixels; chunks hold all bands.
    overwrite
        Replace an existing ``out``.
    workers
        Threads reading tiles; default ``min(4, cpu_count)``. ``1`` runs in the caller's thread.
    unknown_classes
        Categorical codes missing from a band's ``classes``: ``"refuse"`` (default; the error
        lists them with their pixel counts) or ``"nodata"`` (set to NaN and counted in the
        ``band_unknown_class_pixels`` attr).
    progress
        Show progress bars (on a terminal; see ``SOCMAP_PROGRESS``).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    CatalogError
        No grid anywhere, Earth Engine sources in the catalog, a malformed catalog, or
        categorical codes missing from the catalog under ``unknown_classes="refuse"``.
    InputNotFound, CRSError, RasterError
        A source is missing, has no CRS or cannot be read; a band has no valid pixel on the grid.
    OutputExists
        ``out`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = build_cube("meuse", None, pathlib.Path(tmp) / "meuse.zarr", progress=False)
    ...     open_cube(path).sizes["band"]
    3
    """
    cat = _resolve_catalog(catalog)
    target = _resolve_grid(cat, grid)
    if not isinstance(chunk, int) or chunk <= 0:
        raise GridMismatch(f"chunk {chunk!r} must be a positive number of pixels, e.g. 512")
    out = Path(out)
    check_replaceable(out, "cube", is_socmap_cube, overwrite)
    _check_local(cat)
    check_unknown_classes([], [], unknown_classes)  # a bad policy fails before any work
    n_workers = max(1, workers if workers is not None else min(4, os.cpu_count() or 1))

    # Open and validate every source before any output exists.
    sources = [LayerSource(spec, spec.resolve_source(cat.base_dir)) for spec in cat.covariates]
    try:
        unique_paths = list(dict.fromkeys(src.path for src in sources))
        iterator: Iterable[Path] = unique_paths
        if progress and len(unique_paths) > 1:
            iterator = track(unique_paths, "checksumming sources")
        checksums = {p: source_checksum(p) for p in iterator}
        attrs: dict[str, Any] = {
            "socmap_cube": CUBE_FORMAT,
            **_band_attrs(cat, sources, checksums),
            "catalog_name": cat.name,
            "catalog_sha256": _catalog_digest(cat),
            "socmap_version": _socmap_version(),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "grid": target.to_dict(),
            "chunk": chunk,
        }
        class_codes: list[np.ndarray | None] = [
            None if spec.classes is None else np.asarray(sorted(spec.classes), dtype=np.float32)
            for spec in cat.covariates
        ]
        names = cat.band_names
        tiles = list(target.tiles(chunk))
        with atomic_path(out, overwrite=True) as tmp:  # replaceable: checked above
            _write_template(tmp, target, names, attrs, chunk)
            array = zarr.open_array(store=str(tmp / CUBE_VAR), mode="r+", zarr_format=3)
            writer = _make_tile_writer(array, sources, class_codes)
            valid = np.zeros(len(names), dtype=np.int64)
            unknown: list[dict[str, int]] = [{} for _ in names]
            with warnings.catch_warnings(), _gdal_cache_capped(GDAL_CACHE_BYTES):
                # rasterio's in-memory warp datasets emit a spurious NotGeoreferencedWarning
                # under threads (its own catch_warnings is not thread-safe); ours always carry
                # a transform. Restoring the filters afterwards also undoes any filter state
                # those racing catch_warnings blocks leave behind.
                warnings.filterwarnings(
                    "ignore", category=NotGeoreferencedWarning, module=r"rasterio\.warp"
                )
                results: Iterable[_TileResult] = _bounded_map(writer, tiles, n_workers)
                if progress:
                    results = track(results, f"building cube {cat.name!r}", total=len(tiles))
                for res in results:
                    valid += res.valid
                    add_class_counts(unknown, res.unknown)
            empty = [name for name, v in zip(names, valid, strict=True) if v == 0]
            if empty:
                raise RasterError(
                    f"band(s) {empty!r} have no valid pixel on {target!r}; check that the grid "
                    "overlaps the source rasters, that their CRS is right, and the catalog "
                    "'nodata' value"
                )
            n_pixels = target.height * target.width
            array.attrs.update(
                {
                    "band_nodata_fraction": [float(1 - v / n_pixels) for v in valid],
                    "band_unknown_class_pixels": unknown_pixels(unknown),
                    "band_unknown_classes": unknown,
                }
            )
            check_unknown_classes(names, unknown, unknown_classes)
    finally:
        for src in sources:
            src.close()
    return out


# ---------------------------------------------------------------------- open
def _check_dims(cube: xr.DataArray, what: str) -> None:
    dims = tuple(str(d) for d in cube.dims)
    if dims == CUBE_DIMS:
        return
    if sorted(dims) == sorted(CUBE_DIMS):
        raise DimensionOrderError(
            f"{what} has dims {dims!r}; cubes are {CUBE_DIMS!r}: fix it with "
            f".transpose('band', 'y', 'x') before writing or using it"
        )
    raise RasterError(
        f"{what} has dims {dims!r}, not {CUBE_DIMS!r}; it is not a socmap covariate cube "
        "(build one with `socmap cube build`)"
    )


def _subset_band_attrs(attrs: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """Re-align the per-band attr lists with ``names``."""
    stored = list(attrs.get("band_names", []))
    pos = {n: i for i, n in enumerate(stored)}
    out = dict(attrs)
    for key in BAND_ATTRS:
        values = attrs.get(key)
        if isinstance(values, list) and len(values) == len(stored):
            out[key] = [values[pos[n]] for n in names]
    return out


def is_socmap_cube(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Zarr store socmap wrote as a cube (its ``socmap_cube`` attr).

    Examples
    --------
    >>> import tempfile
    >>> is_socmap_cube(tempfile.mkdtemp())
    False
    """
    import json

    meta = Path(path) / CUBE_VAR / "zarr.json"  # the attrs live on the covariates array
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(attrs, dict) and "socmap_cube" in attrs


def open_cube(
    path: str | Path,
    *,
    grid: Grid | None = None,
    bands: Sequence[str] | None = None,
) -> xr.DataArray:
    """Open a covariate cube lazily.

    Parameters
    ----------
    path
        The Zarr store written by :func:`build_cube`.
    grid
        If given, the cube must lie on it (tolerant to floating-point noise).
    bands
        If given, select these bands in this order.

    Returns
    -------
    xarray.DataArray
        Dask-backed ``covariates(band, y, x)`` with the CRS set (``.rio.crs``) and the
        per-band attrs aligned with the returned bands.

    Raises
    ------
    InputNotFound
        ``path`` does not exist.
    RasterError
        ``path`` is not a socmap cube.
    DimensionOrderError
        The array's dims are not ``(band, y, x)``.
    GridMismatch
        ``grid`` given and the cube is on another grid.
    BandMismatch
        Requested bands are missing or repeated.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = build_cube("meuse", None, pathlib.Path(tmp) / "m.zarr", progress=False)
    ...     cube = open_cube(out, bands=["soil", "dist"])
    ...     list(cube.band.values), str(cube.rio.crs)
    (['soil', 'dist'], 'EPSG:28992')
    """
    p = Path(path)
    if not p.exists():
        raise InputNotFound(
            f"cube {str(p)!r} does not exist; build it with `socmap cube build` or check the path"
        )
    try:
        ds = xr.open_zarr(p, zarr_format=3, consolidated=False, decode_coords="all")
    except Exception as exc:  # zarr/xarray raise a variety of types for non-stores
        msg = str(exc).replace("\n", " ")
        raise RasterError(
            f"{str(p)!r} is not a Zarr v3 store ({type(exc).__name__}: {msg}); "
            "build a cube with `socmap cube build`"
        ) from exc
    if CUBE_VAR not in ds.data_vars:
        raise RasterError(
            f"{str(p)!r} is not a socmap cube: no {CUBE_VAR!r} array "
            f"(has {sorted(map(str, ds.data_vars))!r}); build one with `socmap cube build`"
        )
    cube = ds[CUBE_VAR]
    _check_dims(cube, f"cube {str(p)!r}")
    if "band" not in cube.coords:
        raise BandMismatch(
            f"cube {str(p)!r} has no 'band' coordinate naming its layers; rebuild it with "
            "`socmap cube build`"
        )
    if cube.rio.crs is None:
        raise CRSError(
            f"cube {str(p)!r} has no CRS (no 'spatial_ref' grid mapping); rebuild it with "
            "`socmap cube build` or set one with `.rio.write_crs()`"
        )
    names = [str(b) for b in cube.band.values]
    cube = cube.assign_coords(band=np.asarray(names, dtype=object))
    cube.attrs = dict(ds[CUBE_VAR].attrs)
    if grid is not None:
        grid.check_same(cube_grid(cube), what=f"cube {str(p)!r}")
    if bands is not None:
        wanted = [str(b) for b in bands]
        dupes = sorted({b for b in wanted if wanted.count(b) > 1})
        if dupes:
            raise BandMismatch(f"bands {dupes!r} are requested twice; list each band once")
        missing = [b for b in wanted if b not in names]
        if missing:
            raise BandMismatch(
                f"cube {str(p)!r} lacks bands {missing!r}; it has {names!r}. Add them to the "
                "catalog and rebuild the cube, or drop them from the request"
            )
        attrs = _subset_band_attrs(cube.attrs, wanted)
        cube = cube.sel(band=wanted)
        cube.attrs = attrs
    return cube


def cube_grid(cube: xr.DataArray) -> Grid:
    """Return the :class:`~socmap.grid.Grid` a cube (or a spatial slice of one) lies on.

    Raises
    ------
    CRSError
        The array has no CRS.
    DimensionOrderError
        Dims are not ``(band, y, x)``.
    """
    _check_dims(cube, "cube")
    crs = cube.rio.crs
    if crs is None:
        raise CRSError("cube has no CRS; set it with `.rio.write_crs('EPSG:XXXX')`")
    return Grid(crs, cube.rio.transform(), (int(cube.sizes["y"]), int(cube.sizes["x"])))


def _band_lookup(cube: xr.DataArray) -> tuple[list[str], dict[str, int]]:
    names = [str(b) for b in cube.band.values]
    stored = cube.attrs.get("band_names")
    if not isinstance(stored, list):
        raise RasterError(
            "cube attrs lack 'band_names' (attrs were dropped, or it is not a socmap cube); "
            "open it with socmap.cube.open_cube and keep attrs (xr.set_options(keep_attrs=True))"
        )
    pos = {str(n): i for i, n in enumerate(stored)}
    missing = [n for n in names if n not in pos]
    if missing:
        raise BandMismatch(
            f"bands {missing!r} have no metadata in the cube attrs (known: {stored!r}); "
            "rebuild the cube with `socmap cube build`"
        )
    return names, pos


def band_table(cube: xr.DataArray) -> pd.DataFrame:
    """One row per band: ``name, units, kind, group, n_classes, source``.

    Works on any band subset or order of an opened cube: metadata is looked up by name.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = build_cube("meuse", None, pathlib.Path(tmp) / "m.zarr", progress=False)
    ...     table = band_table(open_cube(out))
    >>> list(table["name"]), list(table["n_classes"])
    (['dist', 'ffreq', 'soil'], [0, 3, 3])
    """
    names, pos = _band_lookup(cube)
    a = cube.attrs

    def col(key: str) -> list[Any]:
        values = a.get(key)
        if not isinstance(values, list):
            return [None] * len(names)
        return [values[pos[n]] for n in names]

    classes = col("band_classes")
    return pd.DataFrame(
        {
            "name": names,
            "units": col("band_units"),
            "kind": col("band_kind"),
            "group": col("band_group"),
            "n_classes": [len(c) if c else 0 for c in classes],
            "source": col("band_source"),
            "stands_for": col("band_stands_for"),
        }
    )


def stand_ins(cube: xr.DataArray, known: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{global band: cube band}`` for the cube's layers that stand in for global inputs.

    Parameters
    ----------
    cube
        An opened cube whose catalog entries may carry ``stands_for``.
    known
        ``{global band: units}`` of the global inputs; a stand-in for a band not listed, or
        in other units, raises :class:`~socmap.errors.CatalogError`. ``None``: the embedded
        10' catalog.
    """
    if known is None:
        known = {c.name: c.units for c in load_catalog("global_10arcmin").covariates}
    table = band_table(cube)
    out: dict[str, str] = {}
    for name, units, value in zip(table["name"], table["units"], table["stands_for"], strict=True):
        if not isinstance(value, str) or not value:  # None (NaN in the table): no stand-in
            continue
        target = value
        if target not in known:
            raise CatalogError(
                f"cube band {name!r} stands for {target!r}, which is not a global input "
                f"({sorted(known)!r}); fix stands_for in its catalog entry"
            )
        if units != known[target]:
            raise CatalogError(
                f"cube band {name!r} is in {units!r} but stands for {target!r} in "
                f"{known[target]!r}; set scale/offset and units so they match"
            )
        if target in out:
            raise CatalogError(
                f"cube bands {out[target]!r} and {name!r} both stand for {target!r}; keep one"
            )
        out[target] = str(name)
    return out


# ---------------------------------------------------------------------- describe
@dataclass(frozen=True, eq=False)
class CubeInfo:
    """Summary of a cube: where, which grid, which bands and how much of each is nodata.

    Attributes
    ----------
    path
        The store.
    grid
        Its grid.
    bands
        :func:`band_table` plus ``nodata_fraction`` (computed from the data).
    chunks
        Chunk shape ``(band, y, x)``.
    dtype
        Data type of the array.
    attrs
        All attrs of the ``covariates`` array.
    """

    path: Path
    grid: Grid
    bands: pd.DataFrame
    chunks: tuple[int, int, int]
    dtype: str
    attrs: dict[str, Any] = field(repr=False)

    def to_text(self) -> str:
        """Human-readable summary for the CLI."""
        g = self.grid
        xres, yres = g.resolution
        a = self.attrs
        digest = str(a.get("catalog_sha256", ""))[:12]
        lines = [
            f"cube     {self.path}",
            f"crs      {g.crs if len(g.crs) < 60 else g.crs[:57] + '...'}",
            f"shape    {len(self.bands)} bands x {g.height} rows x {g.width} cols "
            f"(resolution {xres:g} x {yres:g})",
            f"bounds   {tuple(round(v, 6) for v in g.bounds)}",
            f"chunks   {self.chunks}  dtype {self.dtype}",
            f"catalog  {a.get('catalog_name', '?')} (sha256 {digest}...)  "
            f"built {a.get('created', '?')} with socmap {a.get('socmap_version', '?')}",
            "bands:",
        ]
        table = self.bands[["name", "units", "kind", "group", "n_classes"]].copy()
        table["nodata %"] = (100 * self.bands["nodata_fraction"]).map(lambda v: f"{v:.2f}")
        lines.extend("  " + line for line in table.to_string(index=False).splitlines())
        return "\n".join(lines)


def describe_cube(path: str | Path, *, progress: bool = True) -> CubeInfo:
    """Open a cube and measure the nodata fraction of every band.

    The data are scanned one row of chunks at a time with dask, so memory stays bounded.

    Parameters
    ----------
    path
        The cube.
    progress
        Show a progress bar (on a terminal).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = build_cube("meuse", None, pathlib.Path(tmp) / "m.zarr", progress=False)
    ...     info = describe_cube(out, progress=False)
    >>> info.grid.shape, info.chunks
    ((104, 78), (3, 104, 78))
    """
    cube = open_cube(path)
    grid = cube_grid(cube)
    data = cube.data
    counts = np.zeros(cube.sizes["band"], dtype=np.int64)
    row_chunks: Iterable[int] = data.chunks[1]
    if progress:
        row_chunks = track(list(row_chunks), "scanning cube")
    row0 = 0
    for height in row_chunks:
        strip = data[:, row0 : row0 + height, :]
        counts += np.asarray(dsa.isnan(strip).sum(axis=(1, 2)).compute(), dtype=np.int64)
        row0 += height
    table = band_table(cube)
    table["nodata_fraction"] = counts / float(grid.height * grid.width)
    chunks = tuple(int(c[0]) for c in data.chunks)
    return CubeInfo(
        path=Path(path),
        grid=grid,
        bands=table,
        chunks=(chunks[0], chunks[1], chunks[2]),
        dtype=str(cube.dtype),
        attrs=dict(cube.attrs),
    )

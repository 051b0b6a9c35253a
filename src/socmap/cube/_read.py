"""Open, check and describe covariate cubes (lazily, with dask)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from socmap._progress import track
from socmap.catalog import load_catalog
from socmap.cube._format import BAND_ATTRS, CUBE_DIMS, CUBE_VAR
from socmap.errors import (
    BandMismatch,
    CatalogError,
    CRSError,
    DimensionOrderError,
    InputNotFound,
    RasterError,
)
from socmap.grid import Grid

__all__ = [
    "CubeInfo",
    "band_table",
    "cube_grid",
    "describe_cube",
    "open_cube",
    "stand_ins",
]


#: What reading a damaged chunk raises (zarr's codecs on a truncated or edited chunk file).
UNREADABLE = (RuntimeError, ValueError)


class CubeDamaged(RasterError):
    """A cube's stored data cannot be read: a chunk file is truncated or was edited."""


def unreadable_cube(where: str, exc: BaseException) -> CubeDamaged:
    """Refuse, in one line, a cube whose stored data cannot be read (once internal errors)."""
    from socmap._io import read_failure

    return CubeDamaged(
        f"{where} holds data that cannot be read ({read_failure(exc)}): a chunk file of the "
        "store is damaged or was edited; rebuild the cube with `socmap cube build` (with "
        "--overwrite to replace it)"
    )


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
    >>> from socmap.cube import build_cube, open_cube
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
    >>> from socmap.cube import build_cube, open_cube
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
        known = load_catalog("global_10arcmin").band_units
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

    def coverage_gaps(self, tolerance: float = 0.01) -> dict[str, float]:
        """Bands with more nodata than the best-covered band by over ``tolerance``.

        A map has no value where any band is missing, so these bands shrink it; returns
        ``name -> nodata fraction``.
        """
        frac = self.bands.set_index("name")["nodata_fraction"].astype(float)
        if frac.empty:
            return {}
        return {str(k): float(v) for k, v in frac.items() if v - frac.min() > tolerance}

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
    >>> from socmap.cube import build_cube, open_cube
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
        try:
            counts += np.asarray(dsa.isnan(strip).sum(axis=(1, 2)).compute(), dtype=np.int64)
        except UNREADABLE as exc:
            raise unreadable_cube(f"cube {str(path)!r}", exc) from None
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

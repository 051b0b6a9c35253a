"""Build a covariate cube from a catalog of local rasters, tile by tile."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import zarr
from rasterio.env import get_gdal_config, set_gdal_config
from rasterio.errors import NotGeoreferencedWarning

from socmap._io import atomic_path, check_replaceable
from socmap._parallel import bounded_map
from socmap._progress import track
from socmap.catalog import Catalog, resolve_catalog, resolve_grid
from socmap.cube._format import (
    BAND_ATTRS,
    CUBE_VAR,
    add_class_counts,
    band_coverage_attrs,
    check_chunk,
    check_unknown_classes,
    cube_attrs,
    is_socmap_cube,
    jsonable_number,
    mask_unknown_classes,
    spec_band_attrs,
    write_template,
)
from socmap.errors import (
    CatalogError,
    RasterError,
)
from socmap.grid import Grid, Tile
from socmap.sources.local import LayerSource, source_checksum

__all__ = ["GDAL_CACHE_BYTES", "build_cube"]


#: Upper bound on GDAL's block cache while a cube is built (bytes).
GDAL_CACHE_BYTES = 128 * 2**20


def _check_local(cat: Catalog) -> None:
    ee = [c.name for c in cat.covariates if c.is_earth_engine]
    if ee:
        raise CatalogError(
            f"catalog {cat.name!r} has Earth Engine sources for {ee!r}; a local build reads files "
            "only: put the ee:// layers in a catalog of their own and run `socmap ee pull` on it "
            "(it writes a cube of its own), and build the local layers with `socmap cube build`"
        )


def _band_attrs(
    cat: Catalog, sources: Sequence[LayerSource], checksums: dict[Path, str]
) -> dict[str, Any]:
    attrs = spec_band_attrs(cat.covariates)
    attrs["band_nodata"] = [jsonable_number(src.nodata) for src in sources]
    attrs["band_source_path"] = [str(src.path) for src in sources]
    attrs["band_source_sha256"] = [checksums[src.path] for src in sources]
    return {key: attrs[key] for key in BAND_ATTRS if key in attrs}


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
    >>> from socmap.cube import build_cube, open_cube
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = build_cube("meuse", None, pathlib.Path(tmp) / "meuse.zarr", progress=False)
    ...     open_cube(path).sizes["band"]
    3
    """
    cat = resolve_catalog(catalog)
    target = resolve_grid(cat, grid)
    check_chunk(chunk)
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
        attrs = cube_attrs(cat, target, chunk, _band_attrs(cat, sources, checksums))
        class_codes: list[np.ndarray | None] = [
            None if spec.classes is None else np.asarray(sorted(spec.classes), dtype=np.float32)
            for spec in cat.covariates
        ]
        names = cat.band_names
        tiles = list(target.tiles(chunk))
        with atomic_path(out, overwrite=True) as tmp:  # replaceable: checked above
            write_template(tmp, target, names, attrs, chunk)
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
                results: Iterable[_TileResult] = bounded_map(writer, tiles, n_workers)
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
            array.attrs.update(band_coverage_attrs(target, valid, unknown))
            check_unknown_classes(names, unknown, unknown_classes)
    finally:
        for src in sources:
            src.close()
    return out

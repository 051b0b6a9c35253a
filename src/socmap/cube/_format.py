"""The cube format, shared by every cube writer (local build, Earth Engine pull).

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

A writer checks its chunk (:func:`check_chunk`), creates the store with
:func:`write_template` and :func:`cube_attrs`, fills it window by window, and counts and
handles categorical codes outside the catalog's classes with the ``*_unknown_class*``
helpers.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as dsa
import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from socmap._versions import __version__
from socmap.catalog import Catalog, CovariateSpec, catalog_digest
from socmap.errors import (
    CatalogError,
    ConfigError,
)
from socmap.grid import Grid

__all__ = [
    "BAND_ATTRS",
    "CUBE_DIMS",
    "CUBE_FORMAT",
    "CUBE_VAR",
    "UNKNOWN_CLASS_POLICIES",
    "add_class_counts",
    "band_coverage_attrs",
    "catalog_digest",
    "check_chunk",
    "check_unknown_classes",
    "cube_attrs",
    "is_socmap_cube",
    "jsonable_number",
    "mask_unknown_classes",
    "spec_band_attrs",
    "unknown_pixels",
    "write_template",
]

CUBE_VAR = "covariates"

CUBE_DIMS = ("band", "y", "x")

#: Value of the ``socmap_cube`` attr; bump when the layout changes.
CUBE_FORMAT = "1"

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


def jsonable_number(value: float | None) -> float | str | None:
    """Return ``value`` for JSON attrs: finite floats as is, NaN/inf as strings."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else str(v)


def spec_band_attrs(specs: Sequence[CovariateSpec]) -> dict[str, Any]:
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


def write_template(
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


def band_coverage_attrs(
    grid: Grid, valid: Sequence[int] | np.ndarray, unknown: Sequence[Mapping[str, int]]
) -> dict[str, Any]:
    """Per-band coverage attrs of a filled cube, from its valid-pixel and unknown-class counts.

    Every writer stores the same three lists once the last window is in, so that
    ``cube info`` and the report read one layout whatever wrote the cube.

    Parameters
    ----------
    grid
        The cube's grid (its pixel count is the denominator of the nodata fraction).
    valid
        Pixels per band holding a value.
    unknown
        Per band ``{code: pixels}`` of categorical codes set to nodata as unknown classes.

    Returns
    -------
    dict
        ``band_nodata_fraction``, ``band_unknown_class_pixels`` and ``band_unknown_classes``.
    """
    n_pixels = grid.height * grid.width
    return {
        "band_nodata_fraction": [float(1 - v / n_pixels) for v in valid],
        "band_unknown_class_pixels": unknown_pixels(unknown),
        "band_unknown_classes": unknown,
    }


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


def check_chunk(chunk: object) -> int:
    """Return a cube chunk size, or raise :class:`ConfigError` for anything but a positive int."""
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
        raise ConfigError(f"chunk {chunk!r} must be a positive number of pixels, e.g. 512")
    return chunk


def cube_attrs(
    cat: Catalog, grid: Grid, chunk: int, band_attrs: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """Attrs of a new cube: the format, the per-band lists and the provenance."""
    return {
        "socmap_cube": CUBE_FORMAT,
        **band_attrs,
        "catalog_name": cat.name,
        "catalog_sha256": catalog_digest(cat),
        "socmap_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "grid": grid.to_dict(),
        "chunk": chunk,
        **extra,
    }

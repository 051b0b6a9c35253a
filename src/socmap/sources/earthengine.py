"""Google Earth Engine covariate source: request tiling for ``ee.data.computePixels``.

This is the only module that imports ``ee`` (the ``[ee]`` extra), and only inside the
functions that talk to Earth Engine; the tiling arithmetic below needs nothing but numbers.

computePixels limits (Earth Engine REST reference, ``projects.image.computePixels``): at
most 48 MB of uncompressed data per request (pixels x bands x bytes per band), at most 32K
pixels in either dimension and at most 1024 bands; larger requests fail with 400. A masked
NumPy response carries one more byte per pixel (the mask), which counts against the limit.

Tiles are whole multiples of the cube's chunk, so every request fills whole Zarr chunks and
its completion can be recorded chunk-exactly, and an interrupted pull resumes.

Status: tiling arithmetic only; the pull itself (auth, retries, the fake-server tests) is
issue 6's remaining work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from socmap.errors import ConfigError
from socmap.grid import Grid, Window

__all__ = [
    "MAX_BANDS",
    "MAX_DIMENSION",
    "REQUEST_LIMIT_BYTES",
    "bytes_per_pixel",
    "plan_requests",
    "request_tile",
]

#: computePixels' limit on uncompressed bytes per request (48 MB = 48 x 2^20 bytes).
REQUEST_LIMIT_BYTES = 48 * 2**20
#: computePixels' limit on pixels in either dimension.
MAX_DIMENSION = 32768
#: computePixels' limit on bands per request.
MAX_BANDS = 1024


def bytes_per_pixel(dtypes: Sequence[str], *, mask: bool = True) -> int:
    """Uncompressed bytes one pixel costs in a request: every band, plus the mask byte.

    Examples
    --------
    >>> bytes_per_pixel(["float32"] * 16)
    65
    >>> bytes_per_pixel(["uint8", "int16"], mask=False)
    3
    """
    if not dtypes:
        raise ConfigError("a request needs at least one band")
    if len(dtypes) > MAX_BANDS:
        raise ConfigError(
            f"{len(dtypes)} bands exceed computePixels' {MAX_BANDS}; split the catalog"
        )
    return int(sum(np.dtype(d).itemsize for d in dtypes)) + (1 if mask else 0)


def request_tile(
    dtypes: Sequence[str],
    chunk: int,
    *,
    mask: bool = True,
    limit: int = REQUEST_LIMIT_BYTES,
    max_dimension: int = MAX_DIMENSION,
) -> int:
    """Side (pixels) of the largest square request that fits: a whole number of chunks.

    Raises
    ------
    ConfigError
        Not even one chunk fits (too many or too wide bands for the chunk size).

    Examples
    --------
    >>> request_tile(["float32"] * 16, 512)  # 1024^2 x 65 B = 65 MiB > 48 MiB; 512^2: 16 MiB
    512
    >>> request_tile(["uint8"], 512)  # 2 B per pixel: 4608^2 x 2 = 40.5 MiB
    4608
    """
    per_pixel = bytes_per_pixel(dtypes, mask=mask)
    if chunk < 1:
        raise ConfigError(f"chunk {chunk!r} must be >= 1 pixel")
    side = min(math.isqrt(limit // per_pixel), max_dimension)
    chunks = side // chunk
    if chunks < 1:
        raise ConfigError(
            f"one {chunk}x{chunk} chunk of {len(dtypes)} bands ({per_pixel} bytes per pixel "
            f"with the mask) exceeds computePixels' {limit} bytes; use a smaller chunk or "
            "fewer bands per pull"
        )
    return chunks * chunk


def plan_requests(grid: Grid, side: int) -> list[Window]:
    """Windows of at most ``side`` x ``side`` pixels covering ``grid`` exactly, row-major.

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid("EPSG:32755", Affine(30.0, 0, 0, 0, -30.0, 0), (1000, 700))
    >>> [w.shape for w in plan_requests(g, 512)]
    [(512, 512), (512, 188), (488, 512), (488, 188)]
    """
    return [tile.core for tile in grid.tiles(side)]

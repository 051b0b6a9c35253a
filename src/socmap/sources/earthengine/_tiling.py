"""Request tiling for ``ee.data.computePixels``: pure arithmetic, no ``ee`` import.

computePixels limits (Earth Engine REST reference, ``projects.image.computePixels``): at
most 48 MB of uncompressed data per request (pixels x bands x bytes per band), at most 32K
pixels in either dimension and at most 1024 bands; larger requests fail with 400. A masked
NumPy response carries one more byte per pixel (the mask), which counts against the limit.

Tiles are whole multiples of the cube's chunk, so every request fills whole Zarr chunks and
its completion can be recorded chunk-exactly, and an interrupted pull resumes. When one
chunk of every band does not fit, the bands are split into groups (:func:`band_groups`),
each fetched by its own request over the same window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from socmap.errors import ConfigError
from socmap.grid import Grid, Window

__all__ = [
    "MAX_BANDS",
    "MAX_DIMENSION",
    "REQUEST_LIMIT_BYTES",
    "band_groups",
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


def band_groups(
    dtypes: Sequence[str],
    chunk: int,
    *,
    mask: bool = True,
    limit: int = REQUEST_LIMIT_BYTES,
) -> list[list[int]]:
    """Split band indices into consecutive groups that each fit one chunk per request.

    Groups are as large as :data:`MAX_BANDS` and the byte limit allow for one
    ``chunk`` x ``chunk`` request, and as even as possible, so a window is fetched with the
    fewest requests.

    Raises
    ------
    ConfigError
        A single band does not fit one chunk (use a smaller chunk).

    Examples
    --------
    >>> [len(g) for g in band_groups(["float32"] * 16, 512)]
    [16]
    >>> [len(g) for g in band_groups(["float32"] * 100, 512)]  # 47 fit: 512² x 189 B
    [33, 34, 33]
    """
    n = len(dtypes)
    if n == 0:
        raise ConfigError("a request needs at least one band")
    sizes = [int(np.dtype(d).itemsize) for d in dtypes]
    budget = limit // (chunk * chunk) - (1 if mask else 0)
    if chunk < 1 or budget < max(sizes):
        raise ConfigError(
            f"one {chunk}x{chunk} chunk of a single {max(sizes)}-byte band (plus the mask byte) "
            f"exceeds computePixels' {limit} bytes; use a smaller chunk"
        )
    # Fewest groups: greedy count with the widest band, then spread the bands evenly.
    per_group = min(MAX_BANDS, budget // max(sizes))
    k = -(-n // per_group)
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [list(range(a, b)) for a, b in itertools.pairwise(bounds)]

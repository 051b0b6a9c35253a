"""Google Earth Engine covariate source: fetch ``ee://`` layers' pixels, sample sites.

This subpackage is the only part of socmap that imports ``ee`` (the ``[ee]`` extra), and only
inside the functions that talk to Earth Engine, so socmap works without the extra.

* :func:`initialize` -- authenticate (service-account key file or default credentials);
* :class:`PixelFetcher` -- ``ee.data.computePixels`` with socmap's own retries (exponential
  backoff, seeded jitter); :func:`socmap.cube.pull_cube` builds a cube with it (bounded
  concurrency, resumable, atomically published output);
* :func:`sample_sites` -- the catalog's values at profile sites, pixel-exactly on the Grid;
* request tiling (:func:`request_tile`, :func:`plan_requests`, :func:`band_groups`) under
  computePixels' limits: 48 MiB per request with the mask byte, 32768 pixels per side,
  1024 bands.

How catalog entries become Earth Engine expressions is described in ``_expr``: the ``ee:``
mapping of a catalog entry (:class:`socmap.catalog.EESpec`) selects a band of an image or of
a filtered, reduced collection, optionally derives a normalized difference or a slope, and
resamples in the source's projection; ``scale``/``offset`` are applied after the pull, as
for local rasters.
"""

from __future__ import annotations

from socmap.sources.earthengine._auth import EE_SCOPES, initialize
from socmap.sources.earthengine._client import FetchStats, PixelFetcher, RetryPolicy, pixel_grid
from socmap.sources.earthengine._expr import (
    MASKED,
    REDUCE_RESOLUTION_MAX_PIXELS,
    asset_id,
    band_expression,
    band_image,
    check_ee_only,
    request_image,
)
from socmap.sources.earthengine._sample import sample_sites
from socmap.sources.earthengine._tiling import (
    MAX_BANDS,
    MAX_DIMENSION,
    REQUEST_LIMIT_BYTES,
    band_groups,
    bytes_per_pixel,
    plan_requests,
    request_tile,
)

__all__ = [
    "EE_SCOPES",
    "MASKED",
    "MAX_BANDS",
    "MAX_DIMENSION",
    "REDUCE_RESOLUTION_MAX_PIXELS",
    "REQUEST_LIMIT_BYTES",
    "FetchStats",
    "PixelFetcher",
    "RetryPolicy",
    "asset_id",
    "band_expression",
    "band_groups",
    "band_image",
    "bytes_per_pixel",
    "check_ee_only",
    "initialize",
    "pixel_grid",
    "plan_requests",
    "request_image",
    "request_tile",
    "sample_sites",
]

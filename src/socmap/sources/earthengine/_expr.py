"""Earth Engine expressions for catalog entries (the only place that builds ``ee`` objects).

One ``ee://`` covariate becomes one single-band ``ee.Image`` named after the covariate:

* an image asset: ``Image.load`` -> ``select`` -> ``toFloat`` -> mask the catalog ``nodata``
  -> derive (normalized difference or slope) -> resample;
* a collection: ``ImageCollection.load`` -> date and property filters -> per image
  ``select`` -> ``toFloat`` -> mask ``nodata`` -> resample -> reduce (median, ...) -> derive.

Every band is requested as float32, so a request's bytes per pixel are 4 per band plus the
mask byte whatever the source type (integers up to 2^24 are exact). Resampling runs in the
source's own projection: ``bilinear``/``cubic`` through ``Image.resample``, ``average``/``mode``
through ``Image.reduceResolution`` (mean or mode of the source pixels in each grid pixel, at
most :data:`REDUCE_RESOLUTION_MAX_PIXELS` of them), ``nearest`` is Earth Engine's default.
A collection is resampled image by image, before the reducer: a composite has no native
projection of its own to resample in.

A request stacks its bands with ``addBands`` and ends with ``unmask(MASKED, sameFootprint=False)``:
masked pixels come back as :data:`MASKED` (the lowest float32), which the client turns into
NaN. The NPY response carries no mask of its own (masked pixels arrive as 0 otherwise), so
this is what keeps a masked pixel from reading as a real zero.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from socmap.catalog import EE_SCHEME, Catalog, CovariateSpec, EESpec
from socmap.errors import CatalogError, MissingDependency

__all__ = [
    "MASKED",
    "REDUCE_RESOLUTION_MAX_PIXELS",
    "asset_id",
    "band_expression",
    "band_image",
    "check_ee_only",
    "import_ee",
    "request_image",
    "serialize",
]

#: Value of masked pixels in a response (unmasked server-side; the client maps it to NaN).
MASKED = float(np.finfo(np.float32).min)
#: ``maxPixels`` of ``reduceResolution``: source pixels averaged into one grid pixel, at most
#: a 32 x 32 block. Earth Engine fails a request that would need more, with its own message.
REDUCE_RESOLUTION_MAX_PIXELS = 1024

_RESAMPLE_MODES = {"bilinear": "bilinear", "cubic": "bicubic"}
# Open ends of a one-sided date range (Earth Engine's DateRange needs both ends).
_EPOCH = dt.date(1970, 1, 1)
_FAR_FUTURE = dt.date(2100, 1, 1)


def import_ee() -> Any:
    """Import the Earth Engine client, or say how to install it."""
    try:
        import ee
    except ImportError as exc:
        raise MissingDependency(
            "Earth Engine pulls need the earthengine-api package: pip install 'socmap[ee]'"
        ) from exc
    return ee


def asset_id(spec: CovariateSpec) -> str:
    """Return the Earth Engine asset id of an ``ee://`` covariate.

    Examples
    --------
    >>> spec = CovariateSpec(name="dem", source="ee://NASA/NASADEM_HGT/001", band="elevation",
    ...                      units="m", kind="continuous", group="terrain")
    >>> asset_id(spec)
    'NASA/NASADEM_HGT/001'
    """
    if not spec.is_earth_engine:
        raise CatalogError(
            f"covariate {spec.name!r} has source {spec.source!r}, not an Earth Engine asset "
            f"({EE_SCHEME}ASSET_ID); build local layers with `socmap cube build`"
        )
    return spec.source[len(EE_SCHEME) :].strip("/")


def _selectors(spec: CovariateSpec, ee_spec: EESpec) -> list[str | int]:
    if ee_spec.derive == "normalized_difference":
        assert ee_spec.bands is not None  # validated by EESpec
        return list(ee_spec.bands)
    band = spec.band
    return [band - 1 if isinstance(band, int) else band]


def _resample(ee: Any, image: Any, method: str | None) -> Any:
    if method in _RESAMPLE_MODES:
        return image.resample(_RESAMPLE_MODES[method])
    if method == "average":
        return image.reduceResolution(ee.Reducer.mean(), False, REDUCE_RESOLUTION_MAX_PIXELS)
    if method == "mode":
        return image.reduceResolution(ee.Reducer.mode(), False, REDUCE_RESOLUTION_MAX_PIXELS)
    if method in (None, "nearest"):
        return image
    raise CatalogError(
        f"resampling {method!r} has no Earth Engine equivalent; use bilinear, cubic, average, "
        "nearest or mode"
    )


def _filter(ee: Any, prop: str, op: str, value: float | str) -> Any:
    build = {
        "lt": ee.Filter.lt,
        "lte": ee.Filter.lte,
        "gt": ee.Filter.gt,
        "gte": ee.Filter.gte,
        "eq": ee.Filter.eq,
        "neq": ee.Filter.neq,
    }[op]
    return build(prop, value)


def band_image(spec: CovariateSpec) -> Any:
    """Build the single-band ``ee.Image`` of one ``ee://`` covariate, named ``spec.name``.

    Raises
    ------
    CatalogError
        The source is not ``ee://`` or the resampling has no Earth Engine equivalent.
    MissingDependency
        earthengine-api is not installed.
    """
    ee = import_ee()
    ee_spec = spec.ee or EESpec()
    asset = asset_id(spec)
    selectors = _selectors(spec, ee_spec)
    nodata = spec.nodata

    def prepare(image: Any) -> Any:
        image = ee.Image(image).select(selectors).toFloat()
        if nodata is not None and np.isfinite(nodata):
            image = image.updateMask(image.neq(nodata))
        return image

    if ee_spec.collection is not None:
        col_spec = ee_spec.collection
        collection = ee.ImageCollection(asset)
        if col_spec.start is not None or col_spec.end is not None:
            start = (col_spec.start or _EPOCH).isoformat()
            end = (col_spec.end or _FAR_FUTURE).isoformat()
            collection = collection.filterDate(start, end)
        for f in col_spec.filters:
            op, value = f.condition()
            collection = collection.filter(_filter(ee, f.property, op, value))
        method = spec.resampling
        collection = collection.map(lambda img: _resample(ee, prepare(img), method))
        image = getattr(collection, col_spec.reducer)()
        if ee_spec.derive == "normalized_difference":
            image = image.normalizedDifference(selectors)
    else:
        image = prepare(ee.Image(asset))
        if ee_spec.derive == "normalized_difference":
            image = image.normalizedDifference(selectors)
        elif ee_spec.derive == "slope":
            image = ee.Terrain.slope(image)
        image = _resample(ee, image, spec.resampling)
    return image.rename([spec.name])


def request_image(bands: Sequence[Any]) -> Any:
    """Stack single-band images into one request image, masked pixels set to :data:`MASKED`."""
    ee = import_ee()
    if not bands:
        raise CatalogError("a request needs at least one band")
    image = ee.Image(bands[0])
    for band in bands[1:]:
        image = image.addBands(band)
    return image.unmask(MASKED, False)


def serialize(obj: Any) -> str:
    """Canonical JSON of an Earth Engine object's Cloud API expression."""
    ee = import_ee()
    encoded = ee.serializer.encode(obj, for_cloud_api=True)
    return json.dumps(encoded, sort_keys=True, separators=(",", ":"))


def band_expression(spec: CovariateSpec) -> tuple[Any, str, str]:
    """``(image, expression JSON, its sha256)`` of one covariate."""
    image = band_image(spec)
    text = serialize(image)
    return image, text, hashlib.sha256(text.encode()).hexdigest()


def check_ee_only(cat: Catalog) -> None:
    """Refuse a catalog with local layers (a pull or an Earth Engine sample reads ee:// only)."""
    local = [c.name for c in cat.covariates if not c.is_earth_engine]
    if local:
        raise CatalogError(
            f"catalog {cat.name!r} has local sources for {local!r}; a pull fetches ee:// layers "
            "only: move those layers to a catalog of their own and build it with "
            "`socmap cube build`"
        )

"""A fake Earth Engine REST server for tests and benchmarks (a helper, not a test module).

It lets the real ``earthengine-api`` client run end to end on 127.0.0.1:

* ``GET /$discovery/rest`` serves the Cloud API discovery document shipped in the installed
  ``ee`` package (``ee/tests/cloud_api_discovery_document.json``), with ``rootUrl``/``baseUrl``
  pointed here and its paths moved to the requested API version (``v1``);
* ``GET /{version}/projects/{p}/algorithms`` serves the shipped algorithm list
  (``ee/tests/algorithms.json``), which ``ee.Initialize`` needs;
* ``POST /token`` is an OAuth token endpoint for service-account JWT assertions (it checks
  the RS256 signature when given the public key);
* ``POST /{version}/projects/{p}/image:computePixels`` decodes the serialized expression
  (``values``/``result`` with ``functionInvocationValue``, ``constantValue``,
  ``valueReference``, ``argumentReference``, ``functionDefinitionValue``, ...), evaluates the
  functions socmap's pulls emit over synthetic assets, and answers NPY bytes: a structured
  array with one field per band. Masked pixels are returned as 0, as the real service does
  (the NPY format carries no mask), which is why socmap unmasks them to a sentinel itself.

Synthetic assets are smooth deterministic functions of the pixel-centre coordinates of the
request (sums of sines, one per asset and band, keyed by a CRC of their names), so a test
can compute the expected cube directly with :func:`band_values`. Every asset has masked
pixels ("water", where a mask field is low), SoilGrids-like assets also have raw nodata
(-32768) in patches, and the Sentinel-2-like collection has per-image clouds.

Functions evaluated: ``Image.load``, ``ImageCollection.load``, ``Image.select``,
``Image.toFloat``, ``Image.constant``, ``Image.neq``, ``Image.updateMask``,
``Image.normalizedDifference``, ``Terrain.slope`` (central differences at the source's
native spacing), ``Image.resample`` and ``Image.reduceResolution`` (checked, then identity:
the synthetic fields are continuous functions evaluated at pixel centres, so the fake has no
native grid to interpolate), ``Reducer.mean``/``mode``, ``Image.rename``, ``Image.addBands``,
``Image.unmask``, ``Collection.filter``, ``Filter.dateRangeContains``, ``DateRange``,
``Date``, ``Filter.lessThan``/``greaterThan``/``equals``/``not``, ``Collection.map``,
``reduce.median``/``mean``/``min``/``max``/``mode`` and ``ImageCollection.mosaic``. Anything
else is answered 400 with Earth Engine's wording.

Failure injection (:meth:`FakeEarthEngine.configure`): a seeded fraction of computePixels
requests answered 429 or 503 (decided per request body and attempt, so thread timing does
not change which requests fail), slow responses, a switch that fails every computePixels
request permanently after N successful ones (an interrupted pull), and a byte limit.
Every request is recorded (:class:`Record`), with the size of pixel requests and the
number of computePixels requests in flight at once.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import http.server
import importlib.util
import io
import json
import re
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: computePixels' real limits (the fake enforces them unless configured lower).
LIMIT_BYTES = 48 * 2**20
MAX_DIMENSION = 32768
MAX_BANDS = 1024

SOILGRIDS_DEPTHS = ("0-5cm", "5-15cm", "15-30cm", "30-60cm", "60-100cm", "100-200cm")
S2_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B11", "B12")


# ---------------------------------------------------------------------- synthetic world
@dataclass(frozen=True)
class Band:
    """A lazy band: ``fn(X, Y, geographic) -> (values, valid)`` at pixel centres."""

    name: str
    dtype: np.dtype
    fn: Callable[[np.ndarray, np.ndarray, bool], tuple[np.ndarray, np.ndarray]]
    spacing: float = 30.0  # native pixel size (metres) of the source, for Terrain.slope

    def renamed(self, name: str) -> Band:
        return Band(name, self.dtype, self.fn, self.spacing)


@dataclass(frozen=True)
class CollectionImage:
    """An image of a synthetic collection: its properties and bands."""

    props: dict[str, Any]
    bands: list[Band]


_request_cache = threading.local()


def smooth(key: str, x: np.ndarray, y: np.ndarray, geographic: bool) -> np.ndarray:
    """A deterministic smooth field in [0, 1]: three plane waves, 3-12 km wavelengths.

    Within one request the same field at the same coordinates is computed once (bands of an
    asset share their mask fields, and masking reads a band twice).
    """
    store = getattr(_request_cache, "store", None)
    if store is not None:
        hit = store.get((key, id(x), id(y), geographic))
        if hit is not None:
            return hit[2]
    z = _smooth(key, x, y, geographic)
    if store is not None:
        store[(key, id(x), id(y), geographic)] = (x, y, z)  # x, y kept alive: ids stay unique
    return z


def _smooth(key: str, x: np.ndarray, y: np.ndarray, geographic: bool) -> np.ndarray:
    unit = 0.01 if geographic else 1000.0  # ~1 km in degrees or metres
    u, v = x / unit, y / unit
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    z = np.zeros(np.broadcast(u, v).shape)
    for _ in range(3):
        angle, wavelength, phase = (
            rng.uniform(0, 2 * np.pi),
            rng.uniform(3, 12),
            rng.uniform(0, 2 * np.pi),
        )
        k = 2 * np.pi / wavelength
        z += np.sin(k * np.cos(angle) * u + k * np.sin(angle) * v + phase)
    return (z + 3.0) / 6.0


def _field_band(
    key: str,
    name: str,
    dtype: str,
    lo: float,
    hi: float,
    *,
    mask_key: str | None,
    mask_below: float = 0.2,
    nodata_key: str | None = None,
    nodata: float = -32768,
    spacing: float = 30.0,
) -> Band:
    dt_ = np.dtype(dtype)

    def fn(x: np.ndarray, y: np.ndarray, geographic: bool) -> tuple[np.ndarray, np.ndarray]:
        raw = lo + (hi - lo) * smooth(f"{key}/{name}", x, y, geographic)
        values = (np.rint(raw) if dt_.kind in "iu" else raw).astype(dt_)
        if nodata_key is not None:
            values[smooth(nodata_key, x, y, geographic) < 0.15] = dt_.type(nodata)
        valid = np.ones(values.shape, dtype=bool)
        if mask_key is not None:
            valid &= smooth(mask_key, x, y, geographic) >= mask_below
        return values, valid

    return Band(name, dt_, fn, spacing)


def _soilgrids(prop: str, lo: float, hi: float) -> list[Band]:
    asset = f"projects/soilgrids-isric/{prop}_mean"
    return [
        _field_band(
            asset, f"{prop}_{d}_mean", "int16", lo, hi, mask_key="soilgrids/water",
            nodata_key="soilgrids/nodata", spacing=250.0,
        )
        for d in SOILGRIDS_DEPTHS
    ]  # fmt: skip


def _images() -> dict[str, list[Band]]:
    worldclim_ranges = {1: (-50, 300), 12: (0, 3000)}
    images: dict[str, list[Band]] = {
        "projects/soilgrids-isric/soc_mean": _soilgrids("soc", 20, 900),
        "projects/soilgrids-isric/bdod_mean": _soilgrids("bdod", 80, 170),
        "projects/soilgrids-isric/cfvo_mean": _soilgrids("cfvo", 0, 400),
        "NASA/NASADEM_HGT/001": [
            _field_band("NASA/NASADEM_HGT/001", "elevation", "int16", 0, 900, mask_key=None),
            _field_band("NASA/NASADEM_HGT/001", "num", "uint8", 1, 23, mask_key=None),
            _field_band("NASA/NASADEM_HGT/001", "swb", "uint8", 0, 0, mask_key=None),
        ],
        "USGS/SRTMGL1_003": [
            _field_band("USGS/SRTMGL1_003", "elevation", "int16", 0, 900, mask_key=None)
        ],
        "WORLDCLIM/V1/BIO": [
            _field_band(
                "WORLDCLIM/V1/BIO", f"bio{i:02d}", "int16", *worldclim_ranges.get(i, (0, 1000)),
                mask_key="worldclim/sea", mask_below=0.1, spacing=927.67,
            )
            for i in range(1, 20)
        ],
        # A small test asset: three float bands, a categorical band and a masked patch.
        "test/image": [
            _field_band("test/image", "a", "float32", 100, 5000, mask_key="test/water"),
            _field_band("test/image", "b", "float32", 100, 5000, mask_key="test/water"),
            _field_band("test/image", "c", "int16", -200, 200, mask_key=None,
                        nodata_key="test/nodata", nodata=-999),
            _field_band("test/image", "cls", "uint8", 1, 5, mask_key="test/water"),
            _field_band("test/image", "dem", "float32", 0, 600, mask_key="test/water"),
        ],
    }  # fmt: skip
    return images


def _millis(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)


#: Dates and cloud cover of the Sentinel-2-like collection's images.
S2_SCENES = (
    ("2023-01-12", 5.0),
    ("2023-03-03", 12.0),
    ("2023-05-22", 35.0),
    ("2023-07-01", 8.0),
    ("2023-09-19", 60.0),
    ("2023-11-08", 18.0),
    ("2024-02-14", 3.0),
)


def _collections() -> dict[str, list[CollectionImage]]:
    s2 = "COPERNICUS/S2_SR_HARMONIZED"
    scenes = []
    for i, (day, cloud) in enumerate(S2_SCENES):
        bands = [
            _field_band(f"{s2}/{i}", b, "uint16", 200, 4000, mask_key=f"{s2}/{i}/cloud",
                        mask_below=0.45)
            for b in S2_BANDS
        ]  # fmt: skip
        props = {
            "system:index": f"scene{i}",
            "system:time_start": _millis(day),
            "CLOUDY_PIXEL_PERCENTAGE": cloud,
        }
        scenes.append(CollectionImage(props, bands))
    cti = "projects/sat-io/open-datasets/Geomorpho90m/cti"
    tiles = []
    for i in range(2):
        band = _field_band(cti, "b1", "float32", -5, 20, mask_key=f"{cti}/tile{i}",
                           mask_below=0.5, spacing=90.0)  # fmt: skip
        tiles.append(CollectionImage({"system:index": f"tile{i}"}, [band]))
    return {s2: scenes, cti: tiles, EMBEDDING: _embedding_tiles()}


#: The AlphaEarth-like annual embedding collection: years x tiles, 64 unit-length bands.
EMBEDDING = "GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL"
EMBEDDING_YEARS = (2022, 2023)


def _embedding_band(year: int, tile: int, k: int) -> Band:
    keys = [f"{EMBEDDING}/{year}/A{j:02d}" for j in range(64)]

    def fn(x: np.ndarray, y: np.ndarray, geographic: bool) -> tuple[np.ndarray, np.ndarray]:
        fields = [smooth(key, x, y, geographic) - 0.5 for key in keys]
        norm = np.sqrt(np.sum(np.square(fields), axis=0))
        values = (fields[k] / norm).astype(np.float32)
        return values, smooth(f"{EMBEDDING}/tile{tile}", x, y, geographic) >= 0.5 * tile

    return Band(f"A{k:02d}", np.dtype("float32"), fn, 10.0)


def _embedding_tiles() -> list[CollectionImage]:
    images = []
    for year in EMBEDDING_YEARS:
        for tile in range(2):  # tile 0 covers everything, tile 1 a part: mosaic order matters
            props = {
                "system:index": f"{year}_{tile}",
                "system:time_start": _millis(f"{year}-01-01"),
            }
            images.append(
                CollectionImage(props, [_embedding_band(year, tile, k) for k in range(64)])
            )
    return images


@lru_cache(maxsize=1)
def world() -> tuple[dict[str, list[Band]], dict[str, list[CollectionImage]]]:
    """The synthetic images and collections, by asset id."""
    return _images(), _collections()


def band_values(
    asset: str, band: str, x: np.ndarray, y: np.ndarray, *, geographic: bool = False,
    image: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Raw values and validity of a synthetic band at map coordinates (for expected cubes).

    ``image`` picks an image of a collection (by position).
    """
    images, collections = world()
    bands = images[asset] if image is None else collections[asset][image].bands
    (found,) = [b for b in bands if b.name == band]
    return found.fn(np.asarray(x, dtype=float), np.asarray(y, dtype=float), geographic)


def slope_values(
    asset: str, band: str, x: np.ndarray, y: np.ndarray, *, geographic: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``Terrain.slope`` of a synthetic band as the fake computes it (float32 degrees)."""
    images, _ = world()
    (found,) = [b for b in images[asset] if b.name == band]
    return _slope(_to_float(found), geographic)(np.asarray(x, float), np.asarray(y, float))


def _to_float(band: Band) -> Band:
    def fn(x: np.ndarray, y: np.ndarray, g: bool) -> tuple[np.ndarray, np.ndarray]:
        v, ok = band.fn(x, y, g)
        return v.astype(np.float32), ok

    return Band(band.name, np.dtype(np.float32), fn, band.spacing)


def _slope(band: Band, geographic: bool) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    h = band.spacing / 111320.0 if geographic else band.spacing

    def at(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e, ok_e = band.fn(x + h, y, geographic)
        w, ok_w = band.fn(x - h, y, geographic)
        n, ok_n = band.fn(x, y + h, geographic)
        s, ok_s = band.fn(x, y - h, geographic)
        dx = 2 * band.spacing * (np.cos(np.radians(y)) if geographic else 1.0)
        dy = 2 * band.spacing
        dzdx = (e.astype(np.float64) - w) / dx
        dzdy = (n.astype(np.float64) - s) / dy
        slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy))).astype(np.float32)
        return slope, ok_e & ok_w & ok_n & ok_s

    return at


# ---------------------------------------------------------------------- evaluation
class EEError(Exception):
    """An error answered to the client: HTTP status and Earth Engine-style message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Function:
    names: list[str]
    body: str
    values: dict[str, Any]


def _parse_date(value: Any) -> int:
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        day = dt.datetime.fromisoformat(value)
        if day.tzinfo is None:
            day = day.replace(tzinfo=dt.UTC)
        return int(day.timestamp() * 1000)
    raise EEError(f"Date: cannot parse {value!r}")


class Evaluator:
    """Evaluate a serialized expression into lazy synthetic images."""

    def __init__(self, geographic: bool) -> None:
        self.geographic = geographic
        self.images, self.collections = world()

    def run(self, expression: dict[str, Any]) -> Any:
        values = expression.get("values")
        result = expression.get("result")
        if not isinstance(values, dict) or result not in values:
            raise EEError("Invalid expression: no 'result' in 'values'.")
        return self._node(values[result], values, {})

    def _node(self, node: dict[str, Any], values: dict[str, Any], env: dict[str, Any]) -> Any:
        if "constantValue" in node:
            return node["constantValue"]
        if "integerValue" in node:
            return int(node["integerValue"])
        if "valueReference" in node:
            return self._node(values[node["valueReference"]], values, env)
        if "argumentReference" in node:
            return env[node["argumentReference"]]
        if "arrayValue" in node:
            return [self._node(v, values, env) for v in node["arrayValue"].get("values", [])]
        if "dictionaryValue" in node:
            items = node["dictionaryValue"].get("values", {})
            return {k: self._node(v, values, env) for k, v in items.items()}
        if "functionDefinitionValue" in node:
            fd = node["functionDefinitionValue"]
            return _Function(list(fd.get("argumentNames", [])), fd["body"], values)
        if "functionInvocationValue" in node:
            fi = node["functionInvocationValue"]
            args = {k: self._node(v, values, env) for k, v in fi.get("arguments", {}).items()}
            if "functionName" not in fi:
                raise EEError("Calls of user functions by reference are not supported here.")
            return self.call(fi["functionName"], args)
        raise EEError(f"Unsupported value node with keys {sorted(node)!r}.")

    def _apply(self, fn: _Function, args: Sequence[Any]) -> Any:
        env = dict(zip(fn.names, args, strict=True))
        return self._node(fn.values[fn.body], fn.values, env)

    # -------------------------------------------------------------- functions
    def call(self, name: str, a: dict[str, Any]) -> Any:
        method = getattr(self, "f_" + name.replace(".", "_"), None)
        if method is None:
            raise EEError(f"Unknown or unsupported algorithm: '{name}'.")
        return method(**a)

    def f_Image_load(self, id: str, version: Any = None) -> list[Band]:
        if id not in self.images:
            raise EEError(
                f"Image.load: Image asset '{id}' not found (does not exist or caller does not "
                "have access)."
            )
        return list(self.images[id])

    def f_ImageCollection_load(self, id: str, **_: Any) -> list[CollectionImage]:
        if id not in self.collections:
            raise EEError(f"ImageCollection.load: ImageCollection asset '{id}' not found.")
        return list(self.collections[id])

    def f_Image_select(
        self,
        input: list[Band],
        bandSelectors: list[Any],
        newNames: Any = None,
    ) -> list[Band]:
        out: list[Band] = []
        for sel in bandSelectors:
            if isinstance(sel, int):
                if not 0 <= sel < len(input):
                    raise EEError(f"Image.select: Band index {sel} out of range.")
                out.append(input[sel])
            else:
                hits = [b for b in input if re.fullmatch(str(sel), b.name)]
                if not hits:
                    names = [b.name for b in input]
                    raise EEError(
                        f"Image.select: Pattern '{sel}' did not match any bands. Available "
                        f"bands: {names}"
                    )
                out.extend(hits)
        if newNames:
            out = [b.renamed(n) for b, n in zip(out, newNames, strict=True)]
        return out

    def f_Image_toFloat(self, value: list[Band]) -> list[Band]:
        return [_to_float(b) for b in value]

    def f_Image_constant(self, value: Any) -> list[Band]:
        dtype = np.dtype(np.float64 if isinstance(value, float) else np.int32)

        def fn(x: np.ndarray, y: np.ndarray, g: bool) -> tuple[np.ndarray, np.ndarray]:
            return np.full(x.shape, value, dtype=dtype), np.ones(x.shape, dtype=bool)

        return [Band("constant", dtype, fn)]

    def f_Image_neq(self, image1: list[Band], image2: list[Band]) -> list[Band]:
        other = image2 if len(image2) == len(image1) else image2 * len(image1)

        def make(a: Band, b: Band) -> Band:
            def fn(x: np.ndarray, y: np.ndarray, g: bool) -> tuple[np.ndarray, np.ndarray]:
                va, oka = a.fn(x, y, g)
                vb, okb = b.fn(x, y, g)
                return (va != vb).astype(np.uint8), oka & okb

            return Band(a.name, np.dtype(np.uint8), fn, a.spacing)

        return [make(a, b) for a, b in zip(image1, other, strict=True)]

    def f_Image_updateMask(self, image: list[Band], mask: list[Band]) -> list[Band]:
        masks = mask if len(mask) == len(image) else mask * len(image)

        def make(a: Band, m: Band) -> Band:
            def fn(x: np.ndarray, y: np.ndarray, g: bool) -> tuple[np.ndarray, np.ndarray]:
                v, ok = a.fn(x, y, g)
                mv, mok = m.fn(x, y, g)
                return v, ok & mok & (mv != 0)

            return Band(a.name, a.dtype, fn, a.spacing)

        return [make(a, m) for a, m in zip(image, masks, strict=True)]

    def f_Image_normalizedDifference(
        self,
        input: list[Band],
        bandNames: list[str],
    ) -> list[Band]:
        first, second = (self.f_Image_select(input, [n])[0] for n in bandNames)

        def fn(x: np.ndarray, y: np.ndarray, g: bool) -> tuple[np.ndarray, np.ndarray]:
            a, oka = first.fn(x, y, g)
            b, okb = second.fn(x, y, g)
            a, b = a.astype(np.float32), b.astype(np.float32)
            total = a + b
            with np.errstate(divide="ignore", invalid="ignore"):
                nd = (a - b) / total
            return nd.astype(np.float32), oka & okb & (total != 0)

        return [Band("nd", np.dtype(np.float32), fn, first.spacing)]

    def f_Terrain_slope(self, input: list[Band]) -> list[Band]:
        if len(input) != 1:
            raise EEError("Terrain.slope: the input must have exactly one band (elevation).")
        at = _slope(input[0], self.geographic)
        return [Band("slope", np.dtype(np.float32), lambda x, y, g: at(x, y), input[0].spacing)]

    def f_Image_resample(self, image: list[Band], mode: str = "bilinear") -> list[Band]:
        if mode not in ("bilinear", "bicubic"):
            raise EEError(f"Image.resample: Unknown resampling mode '{mode}'.")
        return image

    def f_Reducer_mean(self) -> str:
        return "mean"

    def f_Reducer_mode(self, **_: Any) -> str:
        return "mode"

    def f_Image_reduceResolution(
        self,
        image: list[Band],
        reducer: str,
        bestEffort: bool = False,
        maxPixels: int = 64,
    ) -> list[Band]:
        if reducer not in ("mean", "mode") or int(maxPixels) < 1:
            raise EEError("Image.reduceResolution: unsupported reducer or maxPixels.")
        return image

    def f_Image_rename(self, input: list[Band], names: list[str]) -> list[Band]:
        if len(names) != len(input):
            raise EEError(
                f"Image.rename: The number of names ({len(names)}) must match the number of "
                f"bands ({len(input)})."
            )
        return [b.renamed(n) for b, n in zip(input, names, strict=True)]

    def f_Image_addBands(
        self,
        dstImg: list[Band],
        srcImg: list[Band],
        names: Any = None,
        overwrite: bool = False,
    ) -> list[Band]:
        have = {b.name for b in dstImg}
        clash = [b.name for b in srcImg if b.name in have]
        if clash and not overwrite:
            raise EEError(
                f"Image.addBands: Can't add a band named '{clash[0]}' to image because a band "
                "with this name already exists."
            )
        return [b for b in dstImg if b.name not in {s.name for s in srcImg}] + list(srcImg)

    def f_Image_unmask(
        self,
        input: list[Band],
        value: Any = 0,
        sameFootprint: bool = True,
    ) -> list[Band]:
        fill = value[0] if isinstance(value, list) else None

        def make(a: Band) -> Band:
            def fn(x: np.ndarray, y: np.ndarray, g: bool) -> tuple[np.ndarray, np.ndarray]:
                v, ok = a.fn(x, y, g)
                f = fill.fn(x, y, g)[0] if fill is not None else np.full(v.shape, value)
                return np.where(ok, v, f.astype(a.dtype)), np.ones(v.shape, dtype=bool)

            return Band(a.name, a.dtype, fn, a.spacing)

        # The synthetic assets cover the world, so their footprint is everywhere.
        return [make(a) for a in input]

    def f_DateRange(self, start: Any, end: Any = None, **_: Any) -> tuple[int, int]:
        s = _parse_date(start)
        return s, _parse_date(end) if end is not None else s + 86_400_000

    def f_Date(self, value: Any, **_: Any) -> int:
        return _parse_date(value)

    def f_Filter_dateRangeContains(
        self,
        leftValue: tuple[int, int],
        rightField: str,
        **_: Any,
    ) -> Callable[[dict[str, Any]], bool]:
        start, end = leftValue
        return lambda p: start <= p.get(rightField, -1) < end

    def _compare(self, op: Callable[[Any, Any], bool], leftField: str, rightValue: Any) -> Any:
        return lambda p: leftField in p and op(p[leftField], rightValue)

    def f_Filter_lessThan(self, leftField: str, rightValue: Any, **_: Any) -> Any:
        return self._compare(lambda a, b: a < b, leftField, rightValue)

    def f_Filter_greaterThan(self, leftField: str, rightValue: Any, **_: Any) -> Any:
        return self._compare(lambda a, b: a > b, leftField, rightValue)

    def f_Filter_equals(self, leftField: str, rightValue: Any, **_: Any) -> Any:
        return self._compare(lambda a, b: a == b, leftField, rightValue)

    def f_Filter_not(self, filter: Any) -> Any:
        return lambda p: not filter(p)

    def f_Collection_filter(
        self,
        collection: list[CollectionImage],
        filter: Any,
    ) -> list[CollectionImage]:
        return [img for img in collection if filter(img.props)]

    def f_Collection_map(
        self,
        collection: list[CollectionImage],
        baseAlgorithm: _Function,
        **_: Any,
    ) -> list[CollectionImage]:
        return [
            CollectionImage(img.props, self._apply(baseAlgorithm, [img.bands]))
            for img in collection
        ]

    def _reduce(self, collection: list[CollectionImage], how: str) -> list[Band]:
        if not collection:
            return []  # an empty composite has no bands, as in Earth Engine
        out = []
        for band in collection[0].bands:
            members = [next(b for b in img.bands if b.name == band.name) for img in collection]
            out.append(_reduced(band, members, how))
        return out

    def f_reduce_median(self, collection: list[CollectionImage]) -> list[Band]:
        return self._reduce(collection, "median")

    def f_reduce_mean(self, collection: list[CollectionImage]) -> list[Band]:
        return self._reduce(collection, "mean")

    def f_reduce_min(self, collection: list[CollectionImage]) -> list[Band]:
        return self._reduce(collection, "min")

    def f_reduce_max(self, collection: list[CollectionImage]) -> list[Band]:
        return self._reduce(collection, "max")

    def f_reduce_mode(self, collection: list[CollectionImage]) -> list[Band]:
        return self._reduce(collection, "mode")

    def f_ImageCollection_mosaic(self, collection: list[CollectionImage]) -> list[Band]:
        return self._reduce(collection, "mosaic")


def reduce_stack(stack: np.ndarray, valid: np.ndarray, how: str) -> np.ndarray:
    """Reduce ``(images, ...)`` values over images, ignoring invalid ones."""
    if how == "mosaic":  # the last valid image on top
        out = np.zeros(stack.shape[1:], dtype=stack.dtype)
        for layer, ok in zip(stack, valid, strict=True):
            out = np.where(ok, layer, out)
        return out
    if how == "mode":
        flat, ok_flat = stack.reshape(len(stack), -1), valid.reshape(len(valid), -1)
        res = np.zeros(flat.shape[1], dtype=stack.dtype)
        for j in range(flat.shape[1]):
            vals = flat[ok_flat[:, j], j]
            if vals.size:
                uniq, counts = np.unique(vals, return_counts=True)
                res[j] = uniq[np.argmax(counts)]
        return res.reshape(stack.shape[1:])
    reducers = {"median": np.nanmedian, "mean": np.nanmean, "min": np.nanmin, "max": np.nanmax}
    if how not in reducers:
        raise EEError(f"unsupported reducer {how!r}")
    # Pixels masked in every image get quiet zeros (the result is masked there anyway).
    data = np.where(valid.any(axis=0)[None], np.where(valid, stack, np.nan), 0)
    return reducers[how](data, axis=0)


def _reduced(band: Band, members: list[Band], how: str) -> Band:
    def fn(x: np.ndarray, y: np.ndarray, g: bool) -> tuple[np.ndarray, np.ndarray]:
        pairs = [m.fn(x, y, g) for m in members]
        stack = np.stack([v for v, _ in pairs])
        valid = np.stack([ok for _, ok in pairs])
        return reduce_stack(stack, valid, how).astype(band.dtype), valid.any(axis=0)

    return Band(band.name, band.dtype, fn, band.spacing)


# ---------------------------------------------------------------------- server
@dataclass
class Record:
    """One request the fake server answered."""

    kind: str
    path: str
    status: int
    authorization: str | None
    started: float
    finished: float = 0.0
    width: int = 0
    height: int = 0
    bands: tuple[str, ...] = ()
    band_bytes: int = 0
    request_bytes: int = 0  # pixels x (band bytes + 1 mask byte), as computePixels counts
    response_bytes: int = 0
    translate: tuple[float, float] = (0.0, 0.0)
    body_sha256: str = ""
    error: str = ""


@dataclass
class FailurePlan:
    """Failure injection settings (see :meth:`FakeEarthEngine.configure`)."""

    seed: int = 0
    fail_rate: float = 0.0
    fail_statuses: tuple[int, ...] = (429, 503)
    slow_rate: float = 0.0
    slow_s: float = 0.0
    fail_after: int | None = None
    fail_after_status: int = 503
    limit_bytes: int = LIMIT_BYTES


def _ee_package_tests() -> Path:
    spec = importlib.util.find_spec("ee")
    if spec is None or spec.origin is None:
        raise RuntimeError("earthengine-api is not installed; pip install 'socmap[ee]'")
    return Path(spec.origin).parent / "tests"


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeEarthEngine:
    """The fake server: start it, point ``ee.Initialize(url=fake.url)`` at it, stop it.

    Parameters
    ----------
    token
        The access token the token endpoint hands out (and API calls must carry when
        ``require_auth``).
    public_key
        PEM of the service account's public key: when given, JWT assertions must verify.
    client_email
        When given, assertions must be issued by this account.
    require_auth
        Answer 401 to API calls without ``Authorization: Bearer <token>``.
    """

    def __init__(
        self,
        *,
        token: str = "fake-access-token",
        public_key: bytes | None = None,
        client_email: str | None = None,
        require_auth: bool = True,
    ) -> None:
        self.token = token
        self.public_key = public_key
        self.client_email = client_email
        self.require_auth = require_auth
        self.plan = FailurePlan()
        self.records: list[Record] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.successes = 0
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        tests = _ee_package_tests()
        self._discovery = json.loads((tests / "cloud_api_discovery_document.json").read_text())
        self._algorithms = (tests / "algorithms.json").read_bytes()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # -------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """Base URL (``http://127.0.0.1:PORT``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def token_uri(self) -> str:
        """URL of the OAuth token endpoint."""
        return f"{self.url}/token"

    def start(self) -> FakeEarthEngine:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeEarthEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, **settings: Any) -> None:
        """Set failure injection (fields of :class:`FailurePlan`); others keep their values."""
        with self._lock:
            for key, value in settings.items():
                if not hasattr(self.plan, key):
                    raise TypeError(f"unknown setting {key!r}")
                setattr(self.plan, key, value)

    def reset(self) -> None:
        """Forget records and counters, and switch failure injection off."""
        with self._lock:
            self.plan = FailurePlan()
            self.records = []
            self.in_flight = self.max_in_flight = self.successes = 0
            self._attempts = {}

    def pixel_records(self, status: int | None = None) -> list[Record]:
        """computePixels records, optionally only those answered ``status``."""
        with self._lock:
            return [
                r for r in self.records
                if r.kind == "computePixels" and (status is None or r.status == status)
            ]  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """Summary of the computePixels requests so far (JSON-ready)."""
        records = self.pixel_records()
        statuses: dict[str, int] = {}
        for r in records:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        return {
            "requests": len(records),
            "statuses": statuses,
            "max_in_flight": self.max_in_flight,
            "max_request_bytes": max((r.request_bytes for r in records), default=0),
            "response_bytes": sum(r.response_bytes for r in records if r.status == 200),
            "max_width": max((r.width for r in records), default=0),
            "max_height": max((r.height for r in records), default=0),
        }

    # -------------------------------------------------------------- handlers
    def discovery(self, query: dict[str, list[str]]) -> bytes:
        version = query.get("version", ["v1"])[0]
        doc = json.loads(json.dumps(self._discovery))
        doc["rootUrl"] = doc["baseUrl"] = self.url + "/"
        text = json.dumps(doc).replace('"v1alpha/', f'"{version}/')
        return text.replace('"v1alpha"', f'"{version}"').encode()

    def algorithms(self) -> bytes:
        return self._algorithms

    def token_response(self, body: bytes) -> tuple[int, dict[str, Any]]:
        form = urllib.parse.parse_qs(body.decode())
        assertion = form.get("assertion", [""])[0]
        try:
            head, payload, signature = assertion.split(".")
            claims = json.loads(_b64decode(payload))
            if self.public_key is not None:
                from cryptography.hazmat.primitives import hashes, serialization
                from cryptography.hazmat.primitives.asymmetric import padding

                key = serialization.load_pem_public_key(self.public_key)
                key.verify(  # type: ignore[union-attr, call-arg]
                    _b64decode(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                    hashes.SHA256(),
                )  # fmt: skip
            if self.client_email is not None and claims.get("iss") != self.client_email:
                raise ValueError("issuer")
            # google-auth addresses service-account assertions to Google's endpoint.
            if claims.get("aud") not in (self.token_uri, "https://oauth2.googleapis.com/token"):
                raise ValueError("audience")
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        return 200, {"access_token": self.token, "expires_in": 3600, "token_type": "Bearer"}

    def authorized(self, header: str | None) -> bool:
        return not self.require_auth or header == f"Bearer {self.token}"

    def compute_pixels(self, body: bytes, record: Record) -> tuple[int, bytes, str]:
        """Answer one computePixels request: ``(status, body, content type)``."""
        digest = hashlib.sha256(body).hexdigest()
        record.body_sha256 = digest
        with self._lock:
            plan = self.plan
            attempt = self._attempts.get(digest, 0)
            self._attempts[digest] = attempt + 1
        rng = np.random.default_rng([plan.seed, int(digest[:12], 16), attempt])
        fail_u, status_u, slow_u = rng.random(3)
        if plan.slow_rate and slow_u < plan.slow_rate:
            time.sleep(plan.slow_s)
        try:
            request = json.loads(body)
            grid = request.get("grid") or {}
            dims = grid.get("dimensions") or {}
            width, height = int(dims.get("width", 0)), int(dims.get("height", 0))
            t = grid.get("affineTransform") or {}
            record.width, record.height = width, height
            record.translate = (float(t.get("translateX", 0)), float(t.get("translateY", 0)))
            if request.get("fileFormat") != "NPY":
                raise EEError(f"fileFormat {request.get('fileFormat')!r} is not served here")
            if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
                raise EEError(
                    f"Grid dimensions {width}x{height} must be between 1 and {MAX_DIMENSION}."
                )
            crs = grid.get("crsCode") or grid.get("crsWkt")
            geographic = _is_geographic(crs)
            image = Evaluator(geographic).run(request["expression"])
            if not isinstance(image, list) or not all(isinstance(b, Band) for b in image):
                raise EEError("The expression does not evaluate to an image.")
            if not image or len(image) > MAX_BANDS:
                raise EEError(f"An image must have between 1 and {MAX_BANDS} bands.")
            record.bands = tuple(b.name for b in image)
            record.band_bytes = sum(b.dtype.itemsize for b in image)
            record.request_bytes = width * height * (record.band_bytes + 1)
            if record.request_bytes > plan.limit_bytes:
                raise EEError(
                    f"Total request size ({record.request_bytes} bytes) must be less than or "
                    f"equal to {plan.limit_bytes} bytes."
                )
        except EEError as exc:
            return exc.status, _error_body(exc.status, str(exc)), "application/json"
        except (KeyError, TypeError, ValueError) as exc:
            return 400, _error_body(400, f"Invalid request: {exc}"), "application/json"
        if plan.fail_rate and fail_u < plan.fail_rate:
            statuses = plan.fail_statuses
            status = statuses[int(status_u * len(statuses)) % len(statuses)]
            message = (
                "Too many concurrent aggregations." if status == 429
                else "The service is currently unavailable."
            )  # fmt: skip
            return status, _error_body(status, message), "application/json"
        with self._lock:
            # Successes are counted when granted, so concurrent requests cannot overshoot
            # fail_after: exactly N requests succeed before the service "goes down".
            broken = plan.fail_after is not None and self.successes >= plan.fail_after
            if not broken:
                self.successes += 1
        if broken:
            status = plan.fail_after_status
            message = "The service is currently unavailable."
            return status, _error_body(status, message), "application/json"
        data = _render(image, grid, width, height, geographic)
        return 200, data, "application/octet-stream"


@lru_cache(maxsize=16)
def _is_geographic(crs: str | None) -> bool:
    from pyproj import CRS

    return bool(CRS.from_user_input(crs or "EPSG:4326").is_geographic)


def _render(image: list[Band], grid: dict[str, Any], width: int, height: int, geo: bool) -> bytes:
    """Evaluate ``image`` at the grid's pixel centres and write the NPY response."""
    t = grid.get("affineTransform") or {}
    sx, shx, tx = float(t.get("scaleX", 1)), float(t.get("shearX", 0)), float(t["translateX"])
    shy, sy, ty = float(t.get("shearY", 0)), float(t.get("scaleY", -1)), float(t["translateY"])
    cols = np.arange(width, dtype=np.float64) + 0.5
    rows = np.arange(height, dtype=np.float64) + 0.5
    x = tx + sx * cols[None, :] + (shx * rows[:, None] if shx else 0.0)
    y = ty + sy * rows[:, None] + (shy * cols[None, :] if shy else 0.0)
    x, y = np.broadcast_arrays(x, y)
    out = np.zeros((height, width), dtype=[(b.name, b.dtype) for b in image])
    _request_cache.store = {}
    try:
        for band in image:
            values, valid = band.fn(x, y, geo)
            out[band.name] = np.where(valid, values, 0)  # masked pixels come back as 0
    finally:
        _request_cache.store = None
    buf = io.BytesIO()
    np.save(buf, out, allow_pickle=False)
    return buf.getvalue()


def _error_body(status: int, message: str) -> bytes:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND",
             429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
    error = {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}
    return json.dumps({"error": error}).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test output is the client's

    @property
    def fake(self) -> FakeEarthEngine:
        return self.server.fake  # type: ignore[attr-defined, no-any-return]

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, kind: str, status: int, started: float, **extra: Any) -> Record:
        rec = Record(kind, self.path, status, self.headers.get("Authorization"), started, **extra)
        rec.finished = time.perf_counter()
        with self.fake._lock:
            self.fake.records.append(rec)
        return rec

    def do_GET(self) -> None:
        started = time.perf_counter()
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path.startswith("/_fake/"):  # control endpoints for benchmarks (no auth)
            self._control(url.path.removeprefix("/_fake/"), query)
            return
        if url.path == "/$discovery/rest":
            body, kind = self.fake.discovery(query), "discovery"
        elif url.path.endswith("/algorithms"):
            body, kind = self.fake.algorithms(), "algorithms"
        else:
            self._record("unknown", 404, started)
            self._send(404, _error_body(404, f"Not found: {url.path}"))
            return
        if not self.fake.authorized(self.headers.get("Authorization")):
            self._record(kind, 401, started)
            self._send(401, _error_body(401, "Request had invalid authentication credentials."))
            return
        self._record(kind, 200, started, response_bytes=len(body))
        self._send(200, body)

    def _control(self, command: str, query: dict[str, list[str]]) -> None:
        if command == "reset":
            self.fake.reset()
            doc: dict[str, Any] = {"ok": True}
        elif command == "configure":
            self.fake.configure(**json.loads(query.get("settings", ["{}"])[0]))
            doc = {"ok": True}
        elif command == "stats":
            doc = self.fake.stats()
        else:
            self._send(404, _error_body(404, f"unknown control command {command!r}"))
            return
        self._send(200, json.dumps(doc).encode())

    def do_POST(self) -> None:
        started = time.perf_counter()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/token":
            status, doc = self.fake.token_response(body)
            self._record("token", status, started)
            self._send(status, json.dumps(doc).encode())
            return
        if not url.path.endswith("/image:computePixels"):
            self._record("unknown", 404, started)
            self._send(404, _error_body(404, f"Not found: {url.path}"))
            return
        if not self.fake.authorized(self.headers.get("Authorization")):
            self._record("computePixels", 401, started)
            self._send(401, _error_body(401, "Request had invalid authentication credentials."))
            return
        fake = self.fake
        with fake._lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        rec = Record("computePixels", self.path, 0, self.headers.get("Authorization"), started)
        try:
            status, data, content_type = fake.compute_pixels(body, rec)
            rec.status, rec.response_bytes = status, len(data)
            if status != 200:
                rec.error = json.loads(data)["error"]["message"]
        finally:
            # Recorded before the answer is sent: a client holding its answer finds it recorded.
            with fake._lock:
                fake.in_flight -= 1
                rec.finished = time.perf_counter()
                fake.records.append(rec)
        self._send(status, data, content_type)


# ---------------------------------------------------------------------- key files
def service_account_key(
    path: Path,
    base_url: str,
    *,
    project: str = "fake-project",
    email: str = "puller@fake-project.iam.gserviceaccount.com",
    key_bits: int = 2048,
) -> tuple[Path, bytes]:
    """Write a service-account JSON key whose ``token_uri`` is ``{base_url}/token``.

    Returns the path and the public key PEM (give it to the fake to check signatures).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": hashlib.sha256(public_pem).hexdigest()[:40],
        "private_key": private_pem,
        "client_email": email,
        "client_id": "100000000000000000000",
        "auth_uri": f"{base_url}/auth",
        "token_uri": f"{base_url}/token",
    }
    path.write_text(json.dumps(info, indent=2))
    return path, public_pem


@contextlib.contextmanager
def no_outbound_auth_lookups() -> Iterator[None]:
    """Stop google-auth's regional-access-boundary lookup (iamcredentials.googleapis.com).

    google-auth looks up a service account's allowed regions after each token refresh; with
    the fake server nothing may leave the loopback interface.
    """
    from google.auth import credentials as gcred

    cls = getattr(gcred, "CredentialsWithRegionalAccessBoundary", None)
    name = "_is_regional_access_boundary_lookup_required"
    if cls is None or not hasattr(cls, name):
        yield
        return
    original = cls.__dict__[name]
    setattr(cls, name, lambda self: False)
    try:
        yield
    finally:
        setattr(cls, name, original)


def _serve_forever() -> None:  # pragma: no cover - used by benchmarks/bench_ee_pull.py
    """Run the fake in this process: print its URL, serve until stdin closes.

    Drive it over HTTP: ``GET /_fake/reset``, ``/_fake/configure?settings={json}`` and
    ``/_fake/stats``.
    """
    import sys

    fake = FakeEarthEngine().start()
    print(fake.url, flush=True)
    sys.stdin.read()
    fake.stop()


if __name__ == "__main__":  # pragma: no cover
    _serve_forever()

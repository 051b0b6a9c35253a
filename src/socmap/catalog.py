"""Covariate catalogs and depth sets: schema, loading and source resolution.

A covariate catalog is a YAML file listing the layers a cube is built from::

    name: edgeroi
    grid: {crs: "EPSG:28355", bbox: [741400, 6646000, 788900, 6678100], resolution: 100}
    covariates:
      - name: dem
        source: embedded://edgeroi/covariates_250m/DEMSRT5.tif
        band: 1
        units: m
        kind: continuous
        group: terrain
        resampling: bilinear
        nodata: -9999

``source`` is a path relative to the catalog file, an absolute path, ``embedded://...``
for data shipped inside socmap, or ``ee://...`` for an Earth Engine asset. Categorical
layers carry their class list (``classes: {code: label}``) and must resample with
``nearest`` or ``mode``; continuous layers use ``bilinear``, ``average`` or ``cubic``.

An ``ee://`` entry names an Earth Engine image (``ee://NASA/NASADEM_HGT/001``) or image
collection, and ``band`` is the Earth Engine band name (or a 1-based index). An optional
``ee:`` mapping says how the layer is computed on Earth Engine before it is pulled
(:mod:`socmap.sources.earthengine`)::

      - name: ndvi
        source: ee://COPERNICUS/S2_SR_HARMONIZED
        units: "1"
        kind: continuous
        group: vegetation
        resampling: bilinear
        ee:
          collection:                 # an ImageCollection, filtered and reduced
            start: 2023-01-01         # inclusive
            end: 2024-01-01           # exclusive
            filters: [{property: CLOUDY_PIXEL_PERCENTAGE, lt: 20}]
            reducer: median           # median, mean, min, max, mode or mosaic
          derive: normalized_difference   # or slope (degrees, from an elevation band)
          bands: [B8, B4]             # (first - second) / (first + second)
          native_scale: 10            # metres: the source's pixel size

``nodata`` is a raw source value masked on Earth Engine before resampling; ``scale`` and
``offset`` are applied after the pull, exactly as for local rasters.

``stands_for: etopo_elev_m`` says a regional layer measures a global input of the pretrained
model (same quantity, same units after ``scale``/``offset``): a fine-tuned model then reads it in
place of the coarse global layer, in its training table and in its maps
(:func:`socmap.cube.stand_ins`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from socmap.errors import BandMismatch, CatalogError, InputNotFound
from socmap.grid import Grid, check_grid_size

__all__ = [
    "CATEGORICAL_RESAMPLING",
    "CONTINUOUS_RESAMPLING",
    "EE_DERIVED",
    "EE_REDUCERS",
    "KNOWN_GROUPS",
    "Catalog",
    "CovariateSpec",
    "DepthSet",
    "EECollectionSpec",
    "EEPropertyFilter",
    "EESpec",
    "catalog_digest",
    "catalog_dir",
    "embedded_data_dir",
    "get_depth_set",
    "load_catalog",
    "load_depth_sets",
    "load_grid",
    "resolve_catalog",
    "resolve_grid",
]

Kind = Literal["continuous", "categorical"]
CONTINUOUS_RESAMPLING = ("bilinear", "average", "cubic")
CATEGORICAL_RESAMPLING = ("nearest", "mode")
KNOWN_GROUPS = (
    "climate",
    "terrain",
    "spectral",
    "vegetation",
    "parent_material",
    "land_cover",
    "soil",
    "radiometrics",
    "hydrology",
    "other",
)
EMBEDDED_SCHEME = "embedded://"
EE_SCHEME = "ee://"


def embedded_data_dir() -> Path:
    """Folder of the datasets shipped inside the package (``socmap/_data``)."""
    return Path(__file__).parent / "_data"


def catalog_dir() -> Path:
    """Folder of the built-in catalogs.

    ``$SOCMAP_CATALOGS`` wins; otherwise ``socmap/catalogs`` inside the package, so a wheel
    install has them as a source checkout does.
    """
    env = os.environ.get("SOCMAP_CATALOGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "catalogs"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GridSpec(_Strict):
    """A grid given as CRS, bbox and resolution (as in a catalog or region file)."""

    crs: str
    bbox: tuple[float, float, float, float]
    resolution: float = Field(gt=0)

    def to_grid(self) -> Grid:
        """Build the :class:`~socmap.grid.Grid`."""
        return Grid.from_bbox(self.bbox, self.resolution, self.crs)


#: Reducers an ``ee.collection`` may use (``reduce.*`` and ``ImageCollection.mosaic``).
EE_REDUCERS = ("median", "mean", "min", "max", "mode", "mosaic")
#: Derived layers an ``ee:`` entry may compute from its source bands.
EE_DERIVED = ("normalized_difference", "slope")
_EE_OPERATORS = ("lt", "lte", "gt", "gte", "eq", "neq")


class EEPropertyFilter(_Strict):
    """A property filter of an image collection: ``{property: NAME, lt: 20}``.

    Exactly one operator (``lt``, ``lte``, ``gt``, ``gte``, ``eq``, ``neq``) is given.
    """

    property: str = Field(min_length=1)
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None
    eq: float | str | None = None
    neq: float | str | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> EEPropertyFilter:
        given = [op for op in _EE_OPERATORS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(
                f"filter on {self.property!r} needs exactly one of {_EE_OPERATORS!r}, "
                f"got {given!r}; write e.g. {{property: {self.property}, lt: 20}}"
            )
        return self

    def condition(self) -> tuple[str, float | str]:
        """``(operator, value)`` of the filter."""
        for op in _EE_OPERATORS:
            value = getattr(self, op)
            if value is not None:
                return op, value
        raise AssertionError("validated to have one operator")  # pragma: no cover


class EECollectionSpec(_Strict):
    """How an image collection becomes one image: date range, filters, reducer."""

    start: dt.date | None = None
    end: dt.date | None = None
    filters: tuple[EEPropertyFilter, ...] = ()
    reducer: Literal["median", "mean", "min", "max", "mode", "mosaic"] = "median"

    @model_validator(mode="after")
    def _dates(self) -> EECollectionSpec:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(
                f"collection end {self.end.isoformat()!r} must be after start "
                f"{self.start.isoformat()!r} (end is exclusive)"
            )
        return self


class EESpec(_Strict):
    """Earth Engine settings of an ``ee://`` covariate (the ``ee:`` mapping)."""

    collection: EECollectionSpec | None = None
    derive: Literal["normalized_difference", "slope"] | None = None
    bands: tuple[str, str] | None = None
    native_scale: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _derivation(self) -> EESpec:
        if self.derive == "normalized_difference" and self.bands is None:
            raise ValueError(
                "derive: normalized_difference needs its two input bands: bands: [B8, B4] "
                "computes (B8 - B4) / (B8 + B4)"
            )
        if self.derive != "normalized_difference" and self.bands is not None:
            raise ValueError(
                f"bands {list(self.bands)!r} are the inputs of derive: normalized_difference "
                f"(derive is {self.derive!r}); use 'band' to select one band"
            )
        if self.derive == "slope" and self.collection is not None:
            raise ValueError(
                "derive: slope needs a single elevation image with its own projection, not a "
                "reduced collection; use an image asset such as ee://NASA/NASADEM_HGT/001"
            )
        return self


class CovariateSpec(_Strict):
    """One covariate layer of a catalog.

    ``stands_for`` names a global input (a band of the pretrained model's catalog, e.g.
    ``etopo_elev_m``) that this layer measures too, in the same units after ``scale`` and
    ``offset``: a fine-tuned model then reads it in place of the coarse global layer, at the
    sites and in the map, so the prior sharpens inside the region.
    """

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]*$")
    source: str
    band: int | str = 1
    units: str
    kind: Kind
    group: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    classes: dict[int, str] | None = None
    resampling: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    description: str = ""
    ee: EESpec | None = None
    stands_for: str | None = None

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_from_list(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {int(c): str(c) for c in v}
        return v

    @model_validator(mode="after")
    def _check_kind(self) -> CovariateSpec:
        allowed = CATEGORICAL_RESAMPLING if self.kind == "categorical" else CONTINUOUS_RESAMPLING
        if self.resampling is None:
            object.__setattr__(self, "resampling", allowed[0])
        elif self.resampling not in allowed:
            raise ValueError(
                f"resampling {self.resampling!r} is not valid for a {self.kind} layer; "
                f"use one of {allowed!r}"
            )
        for name, value in (("scale", self.scale), ("offset", self.offset)):
            if not math.isfinite(value):
                raise ValueError(f"{name} {value!r} must be a finite number")
        if self.scale == 0:
            raise ValueError("scale 0 would map every pixel to the offset; use 1 for no scaling")
        if self.kind == "categorical":
            if not self.classes:
                raise ValueError("a categorical layer needs its class list: classes: {code: label}")
            if self.scale != 1.0 or self.offset != 0.0:
                raise ValueError(
                    "a categorical layer cannot have scale/offset; class codes are labels"
                )
        elif self.classes is not None:
            raise ValueError("classes are only allowed on kind: categorical")
        return self

    @model_validator(mode="after")
    def _check_earth_engine(self) -> CovariateSpec:
        if not self.is_earth_engine:
            if self.ee is not None:
                raise ValueError(
                    f"'ee' settings apply to ee:// sources only, and source is "
                    f"{self.source!r}; remove 'ee' or point 'source' at ee://ASSET_ID"
                )
            return self
        if not self.source[len(EE_SCHEME) :].strip("/"):
            raise ValueError(
                f"source {self.source!r} names no asset; write ee://ASSET_ID, e.g. "
                "ee://NASA/NASADEM_HGT/001"
            )
        if isinstance(self.band, int) and self.band < 1:
            raise ValueError(
                f"band {self.band!r} must be an Earth Engine band name or a 1-based index"
            )
        derive = self.ee.derive if self.ee is not None else None
        if derive is not None and self.kind != "continuous":
            raise ValueError(f"derive: {derive} gives a continuous layer; set kind: continuous")
        if derive == "normalized_difference" and "band" in self.model_fields_set:
            raise ValueError(
                "a normalized difference reads ee.bands, not 'band'; remove 'band' "
                f"(got {self.band!r})"
            )
        return self

    @property
    def is_earth_engine(self) -> bool:
        """Whether the source is an Earth Engine reference."""
        return self.source.startswith(EE_SCHEME)

    def resolve_source(self, base: Path) -> Path:
        """Local path of the source; relative paths are taken from ``base``."""
        if self.is_earth_engine:
            raise CatalogError(
                f"covariate {self.name!r} comes from Earth Engine ({self.source!r}); pull it with "
                "`socmap ee pull`, not from local files"
            )
        if self.source.startswith(EMBEDDED_SCHEME):
            root = embedded_data_dir().resolve()
            path = (root / self.source[len(EMBEDDED_SCHEME) :]).resolve()
            if not path.is_relative_to(root):
                raise CatalogError(
                    f"source {self.source!r} of covariate {self.name!r} leaves socmap's embedded "
                    "data; embedded:// names a file shipped with socmap (use a plain path for "
                    "your own files)"
                )
            return path
        scheme = self.source.split("://", 1)[0].lower() if "://" in self.source else ""
        if scheme:
            raise CatalogError(
                f"source {self.source!r} of covariate {self.name!r} is a {scheme}:// address; "
                "socmap reads local rasters: download it first (e.g. `gdal_translate "
                f"/vsicurl/{self.source} {self.name}.tif`) and give the file's path"
            )
        p = Path(self.source).expanduser()
        return p if p.is_absolute() else base / p


def _duplicate_message(catalog: str, band: str) -> str:
    return (
        f"catalog {catalog!r} lists band {band!r} twice; band names must be unique, "
        "rename or remove one entry"
    )


class Catalog(_Strict):
    """A covariate catalog: a name, an optional default grid and its layers."""

    name: str
    description: str = ""
    grid: GridSpec | None = None
    covariates: tuple[CovariateSpec, ...] = Field(min_length=1)
    base_dir: Path = Field(default=Path("."), exclude=True)
    digest: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Catalog:
        seen: set[str] = set()
        for c in self.covariates:
            if c.name in seen:
                # pydantic wraps this in a ValidationError; load_catalog checks first.
                raise ValueError(_duplicate_message(self.name, c.name))
            seen.add(c.name)
        return self

    @property
    def band_names(self) -> list[str]:
        """Names of the layers, in catalog order."""
        return [c.name for c in self.covariates]

    @property
    def band_units(self) -> dict[str, str]:
        """``{layer: units}`` after ``scale`` and ``offset``, in catalog order."""
        return {c.name: c.units for c in self.covariates}

    def __getitem__(self, name: str) -> CovariateSpec:
        for c in self.covariates:
            if c.name == name:
                return c
        raise BandMismatch(
            f"catalog {self.name!r} has no band {name!r}; bands: {self.band_names!r}"
        )


def _format_validation_error(what: str, err: ValidationError, data: Any) -> str:
    first = err.errors()[0]
    loc = list(first["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "covariates" and isinstance(loc[1], int):
        entries = data.get("covariates") if isinstance(data, Mapping) else None
        name = None
        if (
            isinstance(entries, list)
            and loc[1] < len(entries)
            and isinstance(entries[loc[1]], Mapping)
        ):
            name = entries[loc[1]].get("name")
        where = f"entry {loc[1]} ({name!r})" + (
            f", field {'.'.join(map(str, loc[2:]))}" if loc[2:] else ""
        )
    elif loc:
        where = f"field {'.'.join(map(str, loc))}"
    msg = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = "" if isinstance(value, Mapping) else f" (got {_short_repr(value)})"
    return f"{what}: {where}: {msg}{shown}".replace(": :", ":")


def _short_repr(value: Any) -> str:
    """``repr`` cut to a few items and levels (once: a YAML alias bomb gave a 226 MB line)."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 6, 6, 80, 80
    return short.repr(value)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the constructor below says so
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (YAML would keep only the last; "
                    "keep one)",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, what: str) -> tuple[Any, str]:
    if not path.exists():
        raise InputNotFound(f"{what} {str(path)!r} does not exist; check the path")
    if path.is_dir():
        raise CatalogError(f"{what} {str(path)!r} is a folder; give the YAML file")
    raw = path.read_bytes()
    try:
        data = yaml.load(raw, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise CatalogError(
            " ".join(f"{what} {str(path)!r} is not valid YAML: {exc}".split())
        ) from exc
    return data, hashlib.sha256(raw).hexdigest()


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a covariate catalog.

    Parameters
    ----------
    path
        The YAML file, or the name of a built-in catalog (``"edgeroi"``, ``"global_10arcmin"``).

    Raises
    ------
    CatalogError
        On an unknown kind, an invalid resampling, a missing field and so on.
    BandMismatch
        If a band name appears twice.
    """
    p = Path(path)
    if not p.suffix and not p.exists():
        p = catalog_dir() / "covariates" / f"{path}.yaml"
    data, digest = _read_yaml(p, "catalog")
    if not isinstance(data, Mapping):
        raise CatalogError(f"catalog {str(p)!r} must be a mapping with 'name' and 'covariates'")
    entries = data.get("covariates")
    if isinstance(entries, list):
        names = [e.get("name") for e in entries if isinstance(e, Mapping)]
        dupes = sorted({n for n in names if names.count(n) > 1 and n is not None})
        if dupes:
            raise BandMismatch(_duplicate_message(str(data.get("name", p.stem)), dupes[0]))
    try:
        return Catalog.model_validate({**data, "base_dir": p.parent.resolve(), "digest": digest})
    except ValidationError as err:
        raise CatalogError(_format_validation_error(f"catalog {str(p)!r}", err, data)) from None


class DepthSet(_Strict):
    """A named list of depth intervals in cm, top to bottom."""

    name: str
    description: str = ""
    intervals: tuple[tuple[float, float], ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> DepthSet:
        prev_bottom = -1.0
        for top, bottom in self.intervals:
            if not (0 <= top < bottom):
                raise ValueError(f"interval {(top, bottom)!r} must have 0 <= top < bottom (cm)")
            if top < prev_bottom:
                raise ValueError(f"interval {(top, bottom)!r} overlaps the one above it")
            prev_bottom = bottom
        return self

    @cached_property
    def labels(self) -> list[str]:
        """Interval labels such as ``"0-5cm"``."""
        return [f"{top:g}-{bottom:g}cm" for top, bottom in self.intervals]

    @property
    def tops(self) -> list[float]:
        """Upper limits in cm."""
        return [t for t, _ in self.intervals]

    @property
    def bottoms(self) -> list[float]:
        """Lower limits in cm."""
        return [b for _, b in self.intervals]


def load_depth_sets(path: str | Path | None = None) -> dict[str, DepthSet]:
    """Load every depth set in ``depths.yaml`` (the built-in one by default)."""
    p = Path(path) if path is not None else catalog_dir() / "depths.yaml"
    data, _ = _read_yaml(p, "depth catalog")
    sets = data.get("depth_sets") if isinstance(data, Mapping) else None
    if not isinstance(sets, Mapping):
        raise CatalogError(
            f"depth catalog {str(p)!r} needs a 'depth_sets' mapping of name -> intervals"
        )
    out: dict[str, DepthSet] = {}
    for name, body in sets.items():
        try:
            out[str(name)] = DepthSet.model_validate({"name": name, **body})
        except (ValidationError, TypeError) as err:
            detail = (
                _format_validation_error(f"depth set {name!r}", err, body)
                if isinstance(err, ValidationError)
                else f"depth set {name!r} must be a mapping with 'intervals'"
            )
            raise CatalogError(detail) from None
    return out


def get_depth_set(name: str | DepthSet, path: str | Path | None = None) -> DepthSet:
    """Look up a depth set by name (``"globalsoilmap"``, ``"vm0033"``, ``"0-30"``)."""
    if isinstance(name, DepthSet):
        return name
    sets = load_depth_sets(path)
    key = name.lower()
    if key not in sets:
        raise CatalogError(f"unknown depth set {name!r}; choose one of {sorted(sets)!r}")
    return sets[key]


def _file_or_builtin(spec: str | Path, folder: str, unknown: Callable[[list[str]], str]) -> Path:
    """Resolve a file path, or a bare name of a built-in YAML in ``catalog_dir()/folder``.

    Parameters
    ----------
    spec
        A path, or a name without suffix that is not an existing file
        (``catalog_dir()/folder/NAME.yaml``).
    folder
        Folder of the built-in YAML files under :func:`catalog_dir`.
    unknown
        Builds the error message from the sorted built-in names.

    Returns
    -------
    pathlib.Path
        ``spec`` as a path, or the built-in file it names.

    Raises
    ------
    InputNotFound
        A bare name that is no built-in file.
    """
    p = Path(spec)
    if not p.exists() and not p.suffix:
        builtin = catalog_dir() / folder / f"{spec}.yaml"
        if not builtin.exists():
            known = sorted(f.stem for f in (catalog_dir() / folder).glob("*.yaml"))
            raise InputNotFound(unknown(known))
        p = builtin
    return p


def load_grid(spec: str | Path | Grid) -> Grid:
    """Resolve a grid specification to a :class:`~socmap.grid.Grid`.

    Parameters
    ----------
    spec
        One of: a ``Grid``; a raster file (its grid is used); a YAML file with a ``grid:``
        mapping (``crs``, ``bbox``, ``resolution``), such as a region or covariate catalog;
        or the name of a built-in region (``catalogs/regions/NAME.yaml``).

    Raises
    ------
    CatalogError
        If the YAML has no usable ``grid`` mapping.
    InputNotFound
        If the file or region does not exist.
    """
    if isinstance(spec, Grid):
        return spec
    p = _file_or_builtin(
        spec,
        "regions",
        lambda known: (
            f"grid {str(spec)!r} is neither a file nor a built-in region; regions: {known!r}, "
            "or pass a raster (.tif) or a YAML file with a grid: mapping"
        ),
    )
    if p.suffix.lower() in (".yaml", ".yml"):
        data, _ = _read_yaml(p, "grid file")
        body = data.get("grid") if isinstance(data, Mapping) else None
        if not isinstance(body, Mapping):
            raise CatalogError(
                f"grid file {str(p)!r} has no 'grid' mapping; add grid: {{crs, bbox, resolution}}"
            )
        try:
            return GridSpec.model_validate(body).to_grid()
        except ValidationError as err:
            raise CatalogError(
                _format_validation_error(f"grid file {str(p)!r}", err, body)
            ) from None
    return Grid.from_raster(p)


def resolve_catalog(catalog: Catalog | str | Path) -> Catalog:
    """Return ``catalog`` itself, or load it from a YAML path or a built-in name."""
    return catalog if isinstance(catalog, Catalog) else load_catalog(catalog)


def resolve_grid(cat: Catalog, grid: Grid | None) -> Grid:
    """Return ``grid``, or the catalog's own grid; refuse an oversized one (check_grid_size)."""
    if grid is None:
        if cat.grid is None:
            raise CatalogError(
                f"catalog {cat.name!r} has no 'grid' and no grid was given; pass grid=Grid(...) "
                "(CLI: --grid region.yaml) or add grid: {crs, bbox, resolution} to the catalog"
            )
        grid = cat.grid.to_grid()
    check_grid_size(grid)
    return grid


def catalog_digest(cat: Catalog) -> str:
    """Return the sha256 of the catalog file, or of its JSON dump when it was built in code."""
    if cat.digest:
        return cat.digest
    return hashlib.sha256(cat.model_dump_json().encode()).hexdigest()

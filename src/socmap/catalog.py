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
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from socmap.errors import BandMismatch, CatalogError, InputNotFound
from socmap.grid import Grid

__all__ = [
    "CATEGORICAL_RESAMPLING",
    "CONTINUOUS_RESAMPLING",
    "KNOWN_GROUPS",
    "Catalog",
    "CovariateSpec",
    "DepthSet",
    "catalog_dir",
    "embedded_data_dir",
    "get_depth_set",
    "load_catalog",
    "load_depth_sets",
    "load_grid",
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

    ``$SOCMAP_CATALOGS`` wins; otherwise the repository's ``catalogs/`` folder next to
    ``src/`` (the layout of a source checkout and an editable install).
    """
    env = os.environ.get("SOCMAP_CATALOGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "catalogs"


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


class CovariateSpec(_Strict):
    """One covariate layer of a catalog."""

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
            return embedded_data_dir() / self.source[len(EMBEDDED_SCHEME) :]
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
    shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
    return f"{what}: {where}: {msg}{shown}".replace(": :", ":")


def _read_yaml(path: Path, what: str) -> tuple[Any, str]:
    if not path.exists():
        raise InputNotFound(f"{what} {str(path)!r} does not exist; check the path")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise CatalogError(
            f"{what} {str(path)!r} is not valid YAML: {exc}".replace("\n", " ")
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
    p = Path(spec)
    if not p.exists() and not p.suffix:
        region = catalog_dir() / "regions" / f"{spec}.yaml"
        if not region.exists():
            known = sorted(f.stem for f in (catalog_dir() / "regions").glob("*.yaml"))
            raise InputNotFound(
                f"grid {str(spec)!r} is neither a file nor a built-in region; regions: {known!r}, "
                "or pass a raster (.tif) or a YAML file with a grid: mapping"
            )
        p = region
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

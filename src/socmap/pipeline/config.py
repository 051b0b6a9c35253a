"""The scheduled-run configuration: one YAML file, validated with pydantic.

A run configuration names everything a regional remapping needs::

    name: edgeroi
    output: runs/edgeroi              # versions, the `latest` pointer and the stage cache
    region: edgeroi                   # region name, grid YAML, raster or {crs, bbox, resolution}
    cube: {catalog: edgeroi, chunk: 512}
    profiles: {path: edgeroi}         # "edgeroi" (embedded) or a profile table file
    model: {bundle: global_gsm, strategy: auto, depths: globalsoilmap}
    predict: {passes: 32}
    stocks: {bd: auto}
    strata: {source: geology}
    design: {budget: 20, min_spacing_m: 1000}
    report: {title: "Edgeroi SOC stocks"}

Input paths (catalog, profiles, bundle, strata, BD table) are relative to the configuration
file; ``output`` is relative to the working directory (or give ``--output``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from socmap.catalog import GridSpec, _file_or_builtin, _format_validation_error, _read_yaml
from socmap.errors import ConfigError, SocmapError
from socmap.units import BD_RANGE, MAX_MC_PASSES, MAX_SEED

__all__ = [
    "CubeStep",
    "DesignStep",
    "ModelStep",
    "PredictStep",
    "ProfilesStep",
    "ReportStep",
    "RunSpec",
    "StocksStep",
    "StrataStep",
    "load_run_config",
]

#: Name of the embedded Edgeroi profiles in ``profiles.path``.
EMBEDDED_PROFILES = ("edgeroi",)


class _Step(BaseModel):
    # no inf or nan in a number (once: bd_sd, min_spacing_m or block_size_m .inf passed --plan
    # and failed a stage later, after the cube and the model were built)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML's true/false would pass as 1/0 (once `passes: true` mapped with one pass)
        annotation = cls.model_fields[info.field_name or ""].annotation
        if isinstance(value, bool) and annotation is not bool and bool not in get_args(annotation):
            raise ValueError(f"{str(value).lower()} is a yes/no, not a number or a name")
        return value


class EarthEngineAuth(_Step):
    """How an Earth Engine pull authenticates (never the credentials themselves)."""

    project: str | None = None
    key_file: str | None = None
    url: str | None = None  # a proxy or test server; default Google's
    workers: int = Field(default=4, ge=1, le=64)
    max_retries: int = Field(default=8, ge=0, le=20)


class CubeStep(_Step):
    """The covariate cube: built from local rasters, or pulled when the catalog is ``ee://``."""

    catalog: str
    chunk: int = Field(default=512, ge=16, le=8192)
    #: Categorical codes missing from the catalog's classes: refuse, or map as nodata.
    unknown_classes: Literal["refuse", "nodata"] = "refuse"
    earthengine: EarthEngineAuth = EarthEngineAuth()


class ProfilesStep(_Step):
    """The region's cores: ``edgeroi`` (embedded) or a profile table (CSV, Parquet, GeoPackage)."""

    path: str
    soc_units: str = "g/kg"
    crs: str | None = None
    mapping: dict[str, str] | None = None
    #: Error-level QC checks to train with anyway (recorded in the bundle).
    accept_qc: list[str] = Field(default_factory=list)


class ModelStep(_Step):
    """Fine-tuning of a pretrained bundle on the cores, with its calibration CV."""

    bundle: str = "global_gsm"
    strategy: Literal[
        "full",
        "freeze-encoders",
        "head",
        "l2sp",
        "instances",
        "prior-residual",
        "recalibrate",
        "rf",
        "rf-log",
        "stacked",
        "prior-stacked",
        "auto",
    ] = "auto"
    depths: str = "globalsoilmap"
    max_depth_cm: float | None = Field(default=100.0, gt=0)
    cv_folds: int = Field(default=5, ge=0, le=20)
    block_size_m: float = Field(default=2000.0, gt=0)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    jobs: int = Field(default=1, ge=1, le=64)

    @field_validator("depths")
    @classmethod
    def _known_depths(cls, value: str) -> str:
        from socmap.catalog import get_depth_set

        try:
            get_depth_set(value)
        except SocmapError as err:
            raise ValueError(str(err)) from None
        return value


class PredictStep(_Step):
    """Tiled prediction with Monte Carlo dropout."""

    passes: int = Field(default=32, ge=1, le=MAX_MC_PASSES)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    batch_size: int = Field(default=1024, ge=16)


class StocksStep(_Step):
    """Carbon stocks: bulk density and coarse fragments as in ``socmap stocks``."""

    bd: str | float = "auto"
    bd_sd: float = Field(default=0.0, ge=0)
    bd_table: str | None = None
    cf: str | float = 0.0
    cf_sd: float = Field(default=0.0, ge=0)

    @field_validator("bd")
    @classmethod
    def _plausible_bd(cls, value: str | float) -> str | float:
        low, high = BD_RANGE
        if isinstance(value, float | int) and not low <= value <= high:
            raise ValueError(
                f"a constant bulk density must lie in {low}..{high} g/cm3; or name a cube band, "
                "'auto' or 'ptf'"
            )
        return value

    @field_validator("cf")
    @classmethod
    def _fraction_cf(cls, value: str | float) -> str | float:
        if isinstance(value, float | int) and not 0 <= value < 1:
            raise ValueError("coarse fragments are a volume fraction in [0, 1), e.g. 0.15")
        return value

    @model_validator(mode="after")
    def _table_needs_strata(self) -> StocksStep:
        # the table is read only for per-stratum BD; anything else would ignore it silently
        if self.bd_table is not None and not str(self.bd).startswith("strata:"):
            raise ValueError(
                f"bd_table {self.bd_table!r} is read only with bd: strata:BAND, and bd is "
                f"{self.bd!r}; name the stratum band (e.g. bd: 'strata:soil') or remove bd_table"
            )
        return self


class StrataStep(_Step):
    """Stratum totals: a polygon file, a stratum raster or a categorical cube band."""

    source: str
    field: str = "stratum"
    conservative: float = Field(default=0.90, ge=0.5, lt=1)
    target_relative_error: float = Field(default=0.20, gt=0, lt=1)
    min_cores: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _field_needs_polygons(self) -> StrataStep:
        from socmap._io import VECTOR_SUFFIXES

        if self.field != "stratum" and Path(self.source).suffix.lower() not in VECTOR_SUFFIXES:
            # once ignored at --plan; `socmap strata` refuses it, so the run would stop there
            raise ValueError(
                f"strata.field {self.field!r} names a column of a polygon file, and "
                f"strata.source {self.source!r} is a raster or a cube band, whose values are the "
                "strata; remove field"
            )
        return self


class DesignStep(_Step):
    """New core sites by Neyman allocation over the strata."""

    budget: int = Field(ge=1)
    min_spacing_m: float = Field(default=0.0, ge=0)


class ReportStep(_Step):
    """The HTML/Markdown report."""

    #: one line: no line break or other control character (once checked only at the end)
    title: str | None = Field(default=None, pattern=r"^[^\x00-\x1f\x7f]*$")
    benchmark: str | None = None


class RunSpec(BaseModel):
    """A validated run configuration (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    output: str | None = None
    region: str | GridSpec | None = None
    cube: CubeStep
    profiles: ProfilesStep
    model: ModelStep = ModelStep()
    predict: PredictStep = PredictStep()
    stocks: StocksStep = StocksStep()
    strata: StrataStep | None = None
    design: DesignStep | None = None
    report: ReportStep = ReportStep()
    keep: int = Field(default=5, ge=1, description="versions kept; older ones are pruned")
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _design_needs_strata(self) -> RunSpec:
        if self.design is not None and self.strata is None:
            raise ValueError("design needs strata: add a strata: {source: ...} section")
        return self

    def resolve(self, value: str) -> Path:
        """Resolve an input path of the configuration against the configuration file."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def output_dir(self, override: str | Path | None = None) -> Path:
        """Return the run root: ``override``, else ``output``, else ``runs/<name>``."""
        if override is not None:
            return Path(override)
        return Path(self.output).expanduser() if self.output else Path("runs") / self.name

    def step_dict(self, name: str) -> dict[str, Any]:
        """One section as plain JSON-able data (``None`` for an absent optional one)."""
        value = getattr(self, name)
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return {"value": value}

    def sha256(self) -> str:
        """Hash of the validated configuration (defaults filled in, paths as written)."""
        doc = self.model_dump(mode="json")
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def load_run_config(path: str | Path) -> RunSpec:
    """Load and validate a run configuration.

    Parameters
    ----------
    path
        A YAML file, or the name of a built-in one (``catalogs/runs/NAME.yaml``, e.g.
        ``edgeroi``, the demo's configuration).

    Raises
    ------
    InputNotFound
        Neither a file nor a built-in configuration.
    ConfigError
        Invalid YAML or a field that fails validation (the message names it).
    """
    p = _file_or_builtin(
        path,
        "runs",
        lambda known: (
            f"run configuration {str(path)!r} is neither a file nor a built-in one "
            f"({known!r}); pass a YAML file"
        ),
    )
    data, _ = _read_yaml(p, "run configuration")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"run configuration {str(p)!r} must be a mapping with name, cube and profiles"
        )
    try:
        return RunSpec.model_validate({**data, "base_dir": p.parent.resolve()})
    except ValidationError as err:
        raise ConfigError(
            _format_validation_error(f"run configuration {str(p)!r}", err, data)
        ) from None

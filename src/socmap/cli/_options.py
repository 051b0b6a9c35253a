"""Options and helpers the commands share.

Profile reading, region and cross-validation options, and Earth Engine sign-in options.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import pandas as pd
import typer

from socmap.cli._app import (
    out,
)

if TYPE_CHECKING:
    from socmap.validate import ColumnFolds


class ProfileFormat(StrEnum):
    """Layouts ``socmap profiles`` can read."""

    generic = "generic"
    bluecarbon = "bluecarbon"
    global_ = "global"
    edgeroi = "edgeroi"


class UnknownClasses(StrEnum):
    """What ``cube build`` and ``ee pull`` do with codes missing from a band's classes."""

    refuse = "refuse"
    nodata = "nodata"


UnknownClassesOpt = Annotated[
    UnknownClasses,
    typer.Option(
        help="Categorical codes missing from a band's 'classes' in the catalog: refuse (list "
        "them) or map them as nodata (counted)."
    ),
]


def print_unknown_classes(path: Path) -> None:
    """Say how many pixels of each band were set to nodata as unknown classes."""
    from socmap.cube import open_cube

    attrs = open_cube(path).attrs
    found = attrs.get("band_unknown_classes") or []
    for band, codes in zip(attrs.get("band_names", []), found, strict=False):
        if codes:
            listed = ", ".join(f"{c} ({n} px)" for c, n in sorted(codes.items())[:10])
            out.print(
                f"{band}: {sum(codes.values())} pixels with codes missing from the catalog "
                f"set to nodata: {listed}"
            )


class ExtractMethod(StrEnum):
    """Sampling methods for ``socmap extract``."""

    nearest = "nearest"
    bilinear = "bilinear"


def parse_mapping(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(
                f"--map {item!r} must look like canonical=column, e.g. soc_g_kg=OC"
            )
        key, _, value = item.partition("=")
        if key.strip() in mapping:  # once the last won, and the message blamed a column
            raise typer.BadParameter(
                f"--map {item!r} maps {key.strip()!r} a second time (first to "
                f"{mapping[key.strip()]!r}); give each canonical column once"
            )
        mapping[key.strip()] = value.strip()
    return mapping


def load_profiles(
    fmt: ProfileFormat,
    path: Path | None,
    samples: Path | None,
    mapping: list[str] | None,
    crs: str | None,
    soc_units: str,
) -> pd.DataFrame:
    from socmap import profiles

    # options a format does not read are refused, not ignored (once `profiles qc MY.csv
    # --format edgeroi` checked the embedded Edgeroi profiles at exit 0, not MY.csv)
    if fmt is ProfileFormat.edgeroi and path is not None:
        raise typer.BadParameter(
            f"--format edgeroi reads socmap's embedded Edgeroi profiles, so the table "
            f"{str(path)!r} would be ignored; drop it, or read it with --format generic"
        )
    if samples is not None and fmt is not ProfileFormat.bluecarbon:
        raise typer.BadParameter(
            f"--samples {str(samples)!r} is read only with --format bluecarbon (the format is "
            f"{fmt.value}); drop --samples, or add --format bluecarbon"
        )
    unread = [f for f, given in (("--map", mapping), ("--crs", crs), ("--soc-units", soc_units
              not in ("g/kg", None))) if given]  # fmt: skip
    if unread and fmt is not ProfileFormat.generic:
        raise typer.BadParameter(
            f"{', '.join(unread)} appl{'y' if len(unread) > 1 else 'ies'} to --format generic "
            f"tables only; --format {fmt.value} "
            f"reads its own columns, CRS and units, so drop {', '.join(unread)}"
        )
    if fmt is ProfileFormat.edgeroi:
        return profiles.read_edgeroi()
    if fmt is ProfileFormat.global_:
        return profiles.read_global_table(path)
    if path is None:
        raise typer.BadParameter(f"--format {fmt.value} needs an INPUT file")
    if fmt is ProfileFormat.bluecarbon:
        if samples is None:
            raise typer.BadParameter(
                "--format bluecarbon needs INPUT=core_locations.csv and --samples core_samples.csv"
            )
        return profiles.read_bluecarbon(path, samples)
    return profiles.read_profiles(
        path, mapping=parse_mapping(mapping), crs=crs, soc_units=soc_units
    )


InputArg = Annotated[
    Path | None,
    typer.Argument(
        help="Profile table (CSV, Parquet; GeoPackage, GeoJSON or shapefile points); optional "
        "for edgeroi/global."
    ),
]


FormatOpt = Annotated[
    ProfileFormat, typer.Option("--format", "-f", help="Input layout.", case_sensitive=False)
]


SamplesOpt = Annotated[
    Path | None, typer.Option(help="core_samples.csv of the blue-carbon template pair.")
]


MapOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--map", help="Column mapping canonical=column (repeatable), generic format only."
    ),
]


CrsOpt = Annotated[str | None, typer.Option(help="CRS of x/y for generic tables, e.g. EPSG:4326.")]


ProfilesOpt = Annotated[
    Path | None, typer.Option("--profiles", help="Profile table (see --format).")
]


UnitsOpt = Annotated[
    str, typer.Option(help="SOC units of generic tables: g/kg, %, permille, mg/g.")
]


AcceptQcOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--accept-qc",
        help="Train even though the profiles fail this QC check (repeatable; see `socmap "
        "profiles qc`); recorded in the bundle.",
    ),
]


RunArg = Annotated[Path, typer.Argument(help="A prediction run.")]


SchedulerOpt = Annotated[
    str | None, typer.Option(help="Address of a running dask scheduler (tcp://host:8786).")
]


WorkersOpt = Annotated[
    int | None,
    typer.Option(
        min=0, help="Tiles computed at once (threads, one torch thread each); 0: one by one."
    ),
]


# The stock options, shared by `socmap stocks` and `socmap predict --stocks` (None: the
# default of `socmap stocks`, so predict can tell an option given without --stocks).
BdOpt = Annotated[
    str | None,
    typer.Option(
        help="auto, ptf, a cube band, a constant in g/cm3, or strata:BAND (per-stratum "
        "constants from --bd-table, by the codes of a stratum band). Default: auto."
    ),
]
BdTableOpt = Annotated[
    Path | None,
    typer.Option(
        help="CSV of per-stratum BD for --bd strata:BAND: stratum, bd_g_cm3, bd_sd_g_cm3; "
        "a 'default' row covers unlisted strata."
    ),
]
BdSdOpt = Annotated[
    float | None, typer.Option(help="SD of a BD band or constant (g/cm3). Default: 0.")
]
BdUnitsOpt = Annotated[
    str | None,
    typer.Option(help="Units of a BD band: g/cm3 (default), or cg/cm3 (SoilGrids bdod)."),
]
CfOpt = Annotated[
    str | None,
    typer.Option(help="Coarse fragments: a volume fraction in [0, 1) or a band. Default: 0."),
]
CfSdOpt = Annotated[
    float | None, typer.Option(help="SD of the coarse-fragment fraction. Default: 0.")
]


def stock_options(
    bd: str | None,
    bd_table: Path | None,
    bd_sd: float | None,
    bd_units: str | None,
    cf: str | None,
    cf_sd: float | None,
) -> dict[str, Any]:
    """Check the stock options (before torch loads) and read --bd-table: stocks_for_run kwargs."""
    from socmap.stocks import read_stratum_bd
    from socmap.stocks._options import check_stock_options

    def number_or_name(text: str) -> str | float:
        try:
            return float(text)
        except ValueError:
            return text

    kwargs: dict[str, Any] = {
        "bd": number_or_name("auto" if bd is None else bd),
        "bd_sd": 0.0 if bd_sd is None else bd_sd,
        "bd_units": "g/cm3" if bd_units is None else bd_units,
        "cf": number_or_name("0" if cf is None else cf),
        "cf_sd": 0.0 if cf_sd is None else cf_sd,
    }
    check_stock_options(
        kwargs["bd"], kwargs["bd_sd"], kwargs["bd_units"], kwargs["cf"], kwargs["cf_sd"],
        None if bd_table is None else {},
    )  # fmt: skip
    strata, default = read_stratum_bd(bd_table) if bd_table is not None else (None, None)
    return {**kwargs, "bd_strata": strata, "bd_default": default}


DeviceOpt = Annotated[
    str,
    typer.Option(
        help="Where the network runs: cpu, cuda (cuda:N) or auto (CUDA when torch sees a "
        "GPU); the same map to float32 tolerance."
    ),
]


JobsOpt = Annotated[
    int, typer.Option("--jobs", "-j", help="Folds fitted at once (processes); -1 = every core.")
]


StrataOpt = Annotated[
    str,
    typer.Option(
        help="Stratum polygons (.gpkg, .geojson, .shp), a stratum raster, or a cube band."
    ),
]


FieldOpt = Annotated[str, typer.Option(help="Stratum column of a polygon file.")]


BLOCK_UNITS = "e.g. 2km, 2000m, 0.1deg or 5°; a plain number is in the cube CRS's units"


BlockSizeOpt = Annotated[
    str,
    typer.Option(
        help="Spatial block size of the CV folds and of the fine-tuning early-stopping split "
        f"(and inner model choice), {BLOCK_UNITS}."
    ),
]


FoldsColumnOpt = Annotated[
    str | None,
    typer.Option(
        help="Use your own folds: a column of the profile table with each profile's fold id "
        "(replaces --folds; --block-size still sizes the early-stopping split)."
    ),
]


TrainSetsOpt = Annotated[
    Path | None,
    typer.Option(
        help="CSV of training profiles per fold: columns fold,repeat,site_id (optional n, a size "
        "label); fold is 0..k-1, or the --folds-column id. Replaces the random draws "
        "(--sizes, --repeats)."
    ),
]


TargetOpt = Annotated[
    str,
    typer.Option(
        help="Column to model and validate instead of soc_g_kg (harmonised over depth like SOC; "
        "non-negative)."
    ),
]


def check_at_least(*checks: tuple[str, int | None, int]) -> None:
    """Refuse ``(option, value, least)`` with ``value < least``, naming option and value."""
    for option, value, least in checks:
        if value is not None and value < least:
            raise typer.BadParameter(f"{option} {value} must be >= {least}")


def check_at_most(*checks: tuple[str, int | None, int]) -> None:
    """Refuse ``(option, value, most)`` with ``value > most``, naming option and value."""
    for option, value, most in checks:
        if value is not None and value > most:
            raise typer.BadParameter(f"{option} {value} must be <= {most}")


def read_cores(path: Path | None) -> pd.DataFrame | None:
    """Read a --cores table as it is; a table without rows is refused (once 0 cores, exit 0)."""
    if path is None:
        return None
    from socmap.errors import ProfileValidationError
    from socmap.profiles import blank_site_ids, read_table

    table = read_table(path)
    if len(table) == 0:
        raise ProfileValidationError(
            f"--cores {str(path)!r} has no rows (columns {[str(c) for c in table.columns]!r}); "
            "give the cores already taken, or drop --cores"
        )
    if "site_id" in table.columns:  # once counted as one core, or as none, without a word
        ids = table["site_id"]
        blank = blank_site_ids(ids)
        if blank.any():
            raise ProfileValidationError(
                f"--cores {str(path)!r} has {int(blank.sum())} of {len(table)} rows without a "
                f"site_id (e.g. row {int(blank.to_numpy().argmax())}); give every row the id "
                "of its core"
            )
    return table


def check_block_size(text: str) -> None:
    """Fail fast, before loading anything, on a block size that cannot be parsed."""
    from socmap.validate import parse_block_size

    parse_block_size(text)


#: A plain ``--block-size`` below this, on a projected CRS, is a unit left out: "2" for 2 km
#: cuts 2 m blocks, one profile each, and the "spatial" CV is then a random one.
PLAIN_BLOCK_MIN = 10.0


def block_size_for(text: str, table: pd.DataFrame) -> float:
    """Return the block size in the units of the table's CRS (the cube's), and say it.

    Raises
    ------
    ConfigError
        A plain number below :data:`PLAIN_BLOCK_MIN` on a projected CRS (a forgotten unit).
    """
    from pyproj import CRS

    from socmap.errors import ConfigError
    from socmap.validate import parse_block_size, resolve_block_size

    size = resolve_block_size(text, table)
    name = str(table["crs"].iloc[0]) if "crs" in table.columns and len(table) else None
    crs = CRS.from_user_input(name) if name is not None else None
    unit = crs.axis_info[0].unit_name if crs is not None and crs.axis_info else "units"
    plain = parse_block_size(text)[1] is None
    if plain and crs is not None and crs.is_projected and size < PLAIN_BLOCK_MIN:
        raise ConfigError(
            f"--block-size {text!r} has no unit, so it is {size:g} {unit}(s) of {name}: "
            "blocks that small hold one profile each and the CV is not spatial; write the "
            f"unit, e.g. '{text}km', or '{text}m' if you do mean {unit}s"
        )
    out.print(f"block size {text} = {size:.6g} {unit}(s), the units of {name or '?'}")
    return size


def with_target(table: pd.DataFrame, target: str) -> pd.DataFrame:
    """Model ``target`` in place of ``soc_g_kg`` (before depth harmonisation)."""
    from socmap.errors import ProfileValidationError

    if target == "soc_g_kg":
        return table
    if target not in table.columns:
        raise ProfileValidationError(
            f"--target {target!r} is not a column of the profile table, whose columns are "
            f"{list(table.columns)!r}; name one of them"
        )
    values = pd.to_numeric(table[target], errors="coerce")
    bad = values.isna() & table[target].notna()
    if bad.any():
        raise ProfileValidationError(
            f"--target {target!r} holds non-numbers, e.g. {table[target][bad].iloc[0]!r}; "
            "give a numeric column"
        )
    out.print(f"target: {target} (modelled in place of soc_g_kg)")
    return table.assign(soc_g_kg=values)


def user_folds(column: str | None, profiles: pd.DataFrame) -> ColumnFolds | None:
    """``ColumnFolds(column)``, checked on the profile table (profiles whole), or None."""
    if column is None:
        return None
    from socmap.validate import ColumnFolds

    folds = ColumnFolds(column)
    folds.fold_ids(profiles)  # raises on a missing column or a profile in two folds
    return folds


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    ok = len(values) == 4 and all(math.isfinite(v) for v in values)
    if ok:
        minlon, minlat, maxlon, maxlat = values
        ok = -180 <= minlon < maxlon <= 180 and -90 <= minlat < maxlat <= 90
    if not ok:  # once 'exclude_bbox ... must be', the Python name, for nan or a swapped box
        raise typer.BadParameter(
            f"--exclude-bbox {text!r} must be minlon,minlat,maxlon,maxlat in degrees with "
            "min < max, e.g. 149.2,-30.6,150.1,-29.8"
        )
    return values[0], values[1], values[2], values[3]


class SelectMethod(StrEnum):
    """Sample selection algorithms of ``socmap spectra select``."""

    kennard_stone = "kennard-stone"
    kmeans = "kmeans"


class NanChoice(StrEnum):
    """What ``socmap spectra`` commands do with spectra holding NaN values."""

    error = "error"
    interpolate = "interpolate"
    drop = "drop"


KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="Service-account JSON key; default: your credentials (earthengine authenticate).",
    ),
]


ProjectOpt = Annotated[str | None, typer.Option(help="Cloud project registered for Earth Engine.")]


UrlOpt = Annotated[
    str | None,
    typer.Option(help="Earth Engine REST base URL (default Google's; a proxy or test server)."),
]


EEWorkersOpt = Annotated[int, typer.Option("--workers", min=1, help="Requests in flight at once.")]


RetriesOpt = Annotated[
    int, typer.Option(min=0, help="Retries per request on 429/5xx (exponential backoff).")
]


@dataclass(frozen=True)
class ProfileSource:
    """The profile table a command reads, as the shared profile options gave it."""

    path: Path | None
    fmt: ProfileFormat
    samples: Path | None
    mapping: list[str] | None
    crs: str | None
    soc_units: str
    accept_qc: tuple[str, ...]

    def load(self) -> pd.DataFrame:
        """Read the table (see :func:`load_profiles`)."""
        return load_profiles(
            self.fmt, self.path, self.samples, self.mapping, self.crs, self.soc_units
        )


#: Default of a command's ``profiles`` parameter, only there to keep the signature valid:
#: :func:`profile_options` replaces the parameter by the options.
PROFILES = cast("ProfileSource", None)

#: The profile options (name, annotation, default) :func:`profile_options` adds.
_PROFILE_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("profiles_path", ProfilesOpt, None),
    ("fmt", FormatOpt, ProfileFormat.generic),
    ("samples", SamplesOpt, None),
    ("mapping", MapOpt, None),
    ("crs", CrsOpt, None),
    ("soc_units", UnitsOpt, "g/kg"),
    ("accept_qc", AcceptQcOpt, None),
)


def profile_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the shared profile options, where its ``profiles`` parameter stands.

    The command declares ``profiles: ProfileSource = PROFILES`` and receives the options
    as one :class:`ProfileSource`; its help lists ``--profiles``, ``--format``,
    ``--samples``, ``--map``, ``--crs``, ``--soc-units`` and ``--accept-qc`` in that place.
    Typer calls commands with keyword arguments only, so every parameter becomes
    keyword-only (the order of the help stays the order of the signature).
    """
    sig = inspect.signature(command, eval_str=True)
    names = [name for name, _, _ in _PROFILE_OPTIONS]
    params = []
    for param in sig.parameters.values():
        if param.name == "profiles":
            params += [
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                  annotation=annotation)
                for name, annotation, default in _PROFILE_OPTIONS
            ]  # fmt: skip
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        values = {name: kwargs.pop(name) for name in names}
        source = ProfileSource(
            values["profiles_path"], values["fmt"], values["samples"], values["mapping"],
            values["crs"], values["soc_units"], tuple(values["accept_qc"] or ()),
        )  # fmt: skip
        command(**kwargs, profiles=source)

    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return wrapper

"""The ``socmap`` command line: a thin shell over the library.

Each command parses its options, calls one library function and prints what it did.
Errors on bad input print one line on stderr and exit with status 2; outputs are written
through a temporary path and renamed, so a failed command leaves nothing half-written.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup
from typer.exceptions import TyperException

from socmap._versions import __version__
from socmap.errors import ConfigError, SocmapError

if TYPE_CHECKING:
    from socmap.validate import ColumnFolds

#: Commands in data-flow order, by help panel: ``socmap --help`` lists them so.
PANELS: dict[str, tuple[str, ...]] = {
    "1 Covariates": ("cube", "ee"),
    "2 Profiles and training tables": ("profiles", "extract"),
    "3 Models": ("pretrain", "finetune", "cv"),
    "4 Maps": ("predict", "stocks", "strata", "posterior", "compare"),
    "5 Field work and reports": ("design", "report", "view"),
    "The whole chain": ("run", "demo"),
    "Spectra and benchmarks": ("spectra", "benchmark"),
}
_ORDER = [name for names in PANELS.values() for name in names]
_PANEL = {name: panel for panel, names in PANELS.items() for name in names}


class _DataFlowGroup(TyperGroup):
    """Lists the commands in data-flow order (:data:`PANELS`), not registration order."""

    def list_commands(self, ctx: Any) -> list[str]:  # typer vendors its own click
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))


app = typer.Typer(
    name="socmap",
    help="Maps of soil organic carbon and stocks from few cores: global-to-regional transfer, "
    "honest uncertainty, reports for carbon standards.",
    cls=_DataFlowGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a top-level command under its help panel."""
    return app.command(name, rich_help_panel=_PANEL[name])


def _group(name: str, help: str) -> typer.Typer:
    """Register a command group under its help panel."""
    group = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(group, name=name, rich_help_panel=_PANEL[name])
    return group


cube_app = _group("cube", "Build and inspect covariate cubes (Zarr).")
ee_app = _group("ee", "Pull covariates from Google Earth Engine (the \\[ee] extra).")
profiles_app = _group("profiles", "Read, QC and harmonise soil-profile tables.")
benchmark_app = _group("benchmark", "Benchmarks that write result tables.")
spectra_app = _group("spectra", "Soil spectra: choose lab samples, benchmark spectral transfer.")

out = Console(soft_wrap=True)

#: Exit status for bad input (SocmapError and friends, and file-system refusals).
EXIT_BAD_INPUT = 2
#: Exit status for an unexpected error (a bug).
EXIT_INTERNAL = 1

#: What to do about a file-system refusal, by errno.
_OS_REMEDY = {
    errno.EACCES: "check the permissions of the folder or write elsewhere (--out)",
    errno.EPERM: "check the permissions of the folder or write elsewhere (--out)",
    errno.EROFS: "the file system is read-only; write elsewhere (--out)",
    errno.ENOSPC: "free disk space or write elsewhere (--out)",
    errno.EDQUOT: "free disk space or write elsewhere (--out)",
    errno.ENOTDIR: "a file stands where a folder is needed; move it or choose another path",
    errno.EISDIR: "a folder stands where a file is needed; choose a file path",
    errno.EEXIST: "something already exists there; choose another path",
    errno.ENOENT: "check the path (does its folder exist?)",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def os_error_line(exc: OSError) -> str:
    """One line for a file-system refusal: what failed, on which path, and the fix.

    Examples
    --------
    >>> os_error_line(PermissionError(13, "Permission denied", "/srv/out"))
    "Permission denied: '/srv/out'; check the permissions of the folder or write elsewhere (--out)"
    """
    what = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = ": " + " -> ".join(repr(str(p)) for p in paths) if paths else ""
    remedy = _OS_REMEDY.get(exc.errno or -1, "check the path and the file system")
    return f"{what}{where}; {remedy}".replace("\n", " ")


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


def _print_unknown_classes(path: Path) -> None:
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


def _version(value: bool) -> None:
    if value:
        out.print(f"socmap {__version__}")
        raise typer.Exit()


#: Set by ``--debug`` (or ``SOCMAP_DEBUG=1``): unexpected errors keep their traceback.
_debug = {"on": False}


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the Python traceback of an unexpected error."),
    ] = False,
) -> None:
    """socmap: soil organic carbon mapping with global-to-regional transfer."""
    _debug["on"] = _debug["on"] or debug


# --------------------------------------------------------------------------- helpers
def _parse_mapping(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(
                f"--map {item!r} must look like canonical=column, e.g. soc_g_kg=OC"
            )
        key, _, value = item.partition("=")
        mapping[key.strip()] = value.strip()
    return mapping


def _load_profiles(
    fmt: ProfileFormat,
    path: Path | None,
    samples: Path | None,
    mapping: list[str] | None,
    crs: str | None,
    soc_units: str,
) -> pd.DataFrame:
    from socmap import profiles

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
        path, mapping=_parse_mapping(mapping), crs=crs, soc_units=soc_units
    )


InputArg = Annotated[
    Path | None,
    typer.Argument(help="Profile table (CSV, Parquet, GeoPackage); optional for edgeroi/global."),
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
SchedulerOpt = Annotated[
    str | None, typer.Option(help="Address of a running dask scheduler (tcp://host:8786).")
]
WorkersOpt = Annotated[
    int | None, typer.Option(help="LocalCluster worker processes; 0 runs in this process.")
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


# --------------------------------------------------------------------------- cube
@cube_app.command("build")
def cube_build(
    catalog: Annotated[str, typer.Argument(help="Catalog YAML, or a built-in name (edgeroi).")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output Zarr store.")],
    grid: Annotated[
        str | None,
        typer.Option(help="Target grid: region name, region/catalog YAML, or a raster to copy."),
    ] = None,
    chunk: Annotated[int, typer.Option(help="Spatial chunk size in pixels.")] = 512,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
    unknown_classes: UnknownClassesOpt = UnknownClasses.refuse,
) -> None:
    """Build a covariate cube from a catalog onto a grid.

    Example: [bold]socmap cube build edgeroi --grid edgeroi --out edgeroi.zarr[/bold]
    """
    from socmap.catalog import load_catalog, load_grid
    from socmap.cube import build_cube, describe_cube

    cat = load_catalog(catalog)
    target = load_grid(grid) if grid is not None else None
    path = build_cube(
        cat, target, out_path, chunk=chunk, overwrite=overwrite,
        unknown_classes=unknown_classes.value,
    )  # fmt: skip
    _print_unknown_classes(path)
    info = describe_cube(path, progress=False)
    out.print(f"wrote cube {str(path)!r}: {len(info.bands)} bands on {info.grid!r}")


@cube_app.command("info")
def cube_info(cube: Annotated[Path, typer.Argument(help="Cube Zarr store.")]) -> None:
    """Describe a cube: bands, CRS, shape, chunks and nodata fraction per band.

    Example: [bold]socmap cube info edgeroi.zarr[/bold]
    """
    from socmap.cube import describe_cube

    out.print(describe_cube(cube).to_text())


# --------------------------------------------------------------------------- profiles
@profiles_app.command("qc")
def profiles_qc(
    input_path: InputArg = None,
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for flags and summary.")
    ] = Path("qc"),
    fmt: FormatOpt = ProfileFormat.generic,
    samples: SamplesOpt = None,
    mapping: MapOpt = None,
    crs: CrsOpt = None,
    soc_units: UnitsOpt = "g/kg",
    strict: Annotated[bool, typer.Option(help="Fail on the first error-level problem.")] = False,
) -> None:
    """QC a profile table: write a flags table and a summary; nothing is dropped.

    Examples: [bold]socmap profiles qc --format edgeroi --out qc/[/bold];
    [bold]socmap profiles qc core_locations.csv --format bluecarbon
    --samples core_samples.csv[/bold]
    """
    from socmap.profiles import qc_profiles, write_qc

    table = _load_profiles(fmt, input_path, samples, mapping, crs, soc_units)
    report = qc_profiles(table, strict=strict)
    flags_path, summary_path = write_qc(report, out_dir)
    n_sites = table["site_id"].nunique()
    out.print(
        f"QC of {len(table)} horizons in {n_sites} sites: {len(report.flags)} flags "
        f"({len(report.errors())} errors)"
    )
    fired = report.summary[report.summary["n_rows"] > 0]
    if len(fired):
        _print_frame(fired[["check", "severity", "n_rows", "n_sites"]], "QC problems found")
    out.print(f"flags: {flags_path}\nsummary: {summary_path}")


@profiles_app.command("harmonise")
def profiles_harmonise(
    input_path: InputArg = None,
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Harmonised table (.parquet or .csv).")
    ] = Path("harmonised.parquet"),
    fmt: FormatOpt = ProfileFormat.generic,
    samples: SamplesOpt = None,
    mapping: MapOpt = None,
    crs: CrsOpt = None,
    soc_units: UnitsOpt = "g/kg",
    depths: Annotated[
        str, typer.Option(help="Depth set from catalogs/depths.yaml.")
    ] = "globalsoilmap",
    lam: Annotated[float, typer.Option(help="Spline smoothing parameter lambda.")] = 0.1,
) -> None:
    """Harmonise horizons onto standard depths with an equal-area spline.

    Example: [bold]socmap profiles harmonise --format edgeroi --depths vm0033 -o h.parquet[/bold]
    """
    from socmap.depth import harmonise
    from socmap.extraction import check_table_path, write_table

    check_table_path(out_path)
    table = _load_profiles(fmt, input_path, samples, mapping, crs, soc_units)
    cols = [c for c in ("soc_g_kg", "bd_g_cm3") if c in table.columns and table[c].notna().any()]
    result = harmonise(table, depths, value_cols=cols, lam=lam)
    write_table(result.table, out_path)
    sites_path = out_path.with_name(out_path.stem + "_sites.csv")
    write_table(result.sites, sites_path)
    counts = ", ".join(f"{k} {v}" for k, v in result.summary().items())
    out.print(f"harmonised {len(result.sites)} sites onto {depths!r} ({counts})")
    out.print(f"table: {out_path}\nper-site fit: {sites_path}")


# --------------------------------------------------------------------------- extract
@_command("extract")
def extract_cmd(
    cube: Annotated[Path, typer.Argument(help="Cube Zarr store.")],
    table: Annotated[
        Path, typer.Argument(help="Table with site_id, x, y, crs (.parquet or .csv).")
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Training table output.")] = Path(
        "training.parquet"
    ),
    method: Annotated[ExtractMethod, typer.Option(help="Sampling method.")] = ExtractMethod.nearest,
) -> None:
    """Sample a cube at the sites of a table, giving the training table.

    Example: [bold]socmap extract edgeroi.zarr harmonised.parquet -o training.parquet[/bold]
    """
    from socmap.cube import open_cube
    from socmap.extraction import check_table_path, extract, write_table
    from socmap.profiles import read_table

    check_table_path(out_path)
    result = extract(open_cube(cube), read_table(table), method=method.value)
    write_table(result.table, out_path)
    counts = ", ".join(f"{k} {v}" for k, v in result.summary.items() if v)
    out.print(f"sampled {len(result.bands)} bands at sites ({counts}); wrote {out_path}")


# --------------------------------------------------------------------------- blocks, folds
_BLOCK_UNITS = "e.g. 2km, 2000m, 0.1deg or 5°; a plain number is in the cube CRS's units"
BlockSizeOpt = Annotated[
    str,
    typer.Option(
        help="Spatial block size of the CV folds and of the fine-tuning early-stopping split "
        f"(and inner model choice), {_BLOCK_UNITS}."
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


def _check_at_least(*checks: tuple[str, int | None, int]) -> None:
    """Refuse ``(option, value, least)`` with ``value < least``, naming option and value."""
    for option, value, least in checks:
        if value is not None and value < least:
            raise typer.BadParameter(f"{option} {value} must be >= {least}")


def _check_block_size(text: str) -> None:
    """Fail fast, before loading anything, on a block size that cannot be parsed."""
    from socmap.validate import parse_block_size

    parse_block_size(text)


def _block_size_for(text: str, table: pd.DataFrame) -> float:
    """Return the block size in the units of the table's CRS (the cube's); say so if converted."""
    from socmap.validate import parse_block_size, resolve_block_size

    size = resolve_block_size(text, table)
    if parse_block_size(text)[1] is not None:
        crs = str(table["crs"].iloc[0]) if "crs" in table.columns and len(table) else "?"
        out.print(f"block size {text} = {size:.6g} in the units of {crs}")
    return size


def _with_target(table: pd.DataFrame, target: str) -> pd.DataFrame:
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


def _user_folds(column: str | None, profiles: pd.DataFrame) -> ColumnFolds | None:
    """``ColumnFolds(column)``, checked on the profile table (profiles whole), or None."""
    if column is None:
        return None
    from socmap.validate import ColumnFolds

    folds = ColumnFolds(column)
    folds.fold_ids(profiles)  # raises on a missing column or a profile in two folds
    return folds


# --------------------------------------------------------------------------- pretrain
def _parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise typer.BadParameter(
            f"--exclude-bbox {text!r} must be minlon,minlat,maxlon,maxlat, "
            "e.g. 149.2,-30.6,150.1,-29.8"
        )
    return values[0], values[1], values[2], values[3]


@_command("pretrain")
def pretrain_cmd(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
    depths: Annotated[str, typer.Option(help="Depth set; every interval is trained.")] = (
        "globalsoilmap"
    ),
    folds: Annotated[int, typer.Option(help="Spatial CV folds.")] = 10,
    block_size: Annotated[
        str,
        typer.Option(
            help="Spatial block size of the CV folds and of the early-stopping split, e.g. "
            "5deg, 5° or 500km; a plain number is in degrees."
        ),
    ] = "5deg",
    exclude_bbox: Annotated[
        str | None, typer.Option(help="Leave out minlon,minlat,maxlon,maxlat (a target region).")
    ] = None,
    exclude_region: Annotated[
        str | None, typer.Option(help="Leave out a built-in region or grid file, e.g. edgeroi.")
    ] = None,
    sources: Annotated[
        list[str] | None,
        typer.Option("--sources", help="Keep only these source_db patterns (repeatable)."),
    ] = None,
    commercial_only: Annotated[
        bool, typer.Option(help="Keep only sources whose licence allows commercial use.")
    ] = False,
    jobs: JobsOpt = 1,
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 0,
    max_epochs: Annotated[int | None, typer.Option(help="Cap on training epochs.")] = None,
    mc_passes: Annotated[int, typer.Option(help="MC dropout passes for CV predictions.")] = 32,
    cv: Annotated[bool, typer.Option(help="Run the spatial CV (and calibration).")] = True,
    balance: Annotated[
        str,
        typer.Option(
            help="Rebalance rows by 'climate' (default), 'source', another column, or 'none'."
        ),
    ] = "climate",
    catalog: Annotated[
        str,
        typer.Option(
            help="Covariates of the global model: a catalog name or YAML (local rasters or "
            "Earth Engine), sampled at the global sites; default the embedded 10' layers."
        ),
    ] = "global_10arcmin",
) -> None:
    """Pretrain the global network on the embedded global table, with 5-degree block CV.

    Example: [bold]socmap pretrain --out global.socmap --exclude-region edgeroi --seed 0[/bold]
    """
    from socmap.model.pretrain import pretrain, region_bbox_lonlat
    from socmap.validate import resolve_block_size

    block_size_deg = resolve_block_size(block_size, units="degrees")
    bbox = _parse_bbox(exclude_bbox)
    if exclude_region is not None:
        if bbox is not None:
            raise typer.BadParameter("give --exclude-bbox or --exclude-region, not both")
        bbox = region_bbox_lonlat(exclude_region)
    result = pretrain(
        out_path,
        depths=depths,
        folds=folds,
        block_size_deg=block_size_deg,
        n_jobs=jobs,
        seed=seed,
        sources=sources,
        commercial_only=commercial_only,
        exclude_bbox=bbox,
        train={"max_epochs": max_epochs} if max_epochs else None,
        mc_passes=mc_passes,
        cv=cv,
        balance=None if balance == "none" else balance,
        catalog=catalog,
    )
    out.print(
        f"pretrained on {result.counts['rows_with_target']} samples from "
        f"{result.counts['profiles_read'] - result.counts.get('excluded_by_bbox', 0)} profiles"
    )
    if result.cv is not None:
        _print_frame(result.cv.summary().round(3).reset_index(), "spatial CV (SOC g/kg)")
    out.print(f"bundle: {result.bundle}")


@_command("finetune")
def finetune_cmd(
    bundle: Annotated[Path, typer.Argument(help="Pretrained bundle directory.")],
    cube: Annotated[Path, typer.Option(help="The region's covariate cube (Zarr).")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Fine-tuned bundle to write.")],
    profiles_path: ProfilesOpt = None,
    fmt: FormatOpt = ProfileFormat.generic,
    samples: SamplesOpt = None,
    mapping: MapOpt = None,
    crs: CrsOpt = None,
    soc_units: UnitsOpt = "g/kg",
    accept_qc: AcceptQcOpt = None,
    strategy: Annotated[
        str, typer.Option(help="full, freeze-encoders, head, l2sp, instances or auto.")
    ] = "full",
    depths: Annotated[str, typer.Option(help="Depth set of the targets.")] = "globalsoilmap",
    max_depth: Annotated[
        float | None, typer.Option(help="Use intervals whose top is above this depth (cm).")
    ] = 100.0,
    block_size: Annotated[
        str,
        typer.Option(
            help="Spatial block size of the fine-tuning early-stopping split and of the "
            f"calibration CV and AOA folds, {_BLOCK_UNITS}."
        ),
    ] = "2km",
    cv_folds: Annotated[
        int, typer.Option(help="Folds of the calibration CV (0: no calibration).")
    ] = 5,
    jobs: JobsOpt = 1,
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 0,
) -> None:
    """Fine-tune a pretrained bundle on a region's profiles and covariate cube.

    The bundle also gets the calibration of its intervals (from a spatial CV of the same
    strategy), its CV metrics and the area of applicability of the training sites.

    Example: [bold]socmap finetune global.socmap --profiles x --format edgeroi
    --cube edgeroi.zarr --strategy freeze-encoders --out edgeroi.socmap[/bold]
    """
    from socmap.cube import open_cube
    from socmap.model.bundle import load_bundle
    from socmap.model.finetune import finetune_bundle
    from socmap.training import regional_training_table

    _check_block_size(block_size)
    load_bundle(bundle)  # a missing or broken bundle fails before the table work
    table = _load_profiles(fmt, profiles_path, samples, mapping, crs, soc_units)
    data = regional_training_table(
        table, open_cube(cube), depths=depths, max_depth_cm=max_depth, accept_qc=accept_qc or ()
    )
    res = finetune_bundle(
        bundle,
        data,
        out_path,
        strategy=strategy,
        depth_set=depths,
        block_size=_block_size_for(block_size, data.table),
        cv_folds=cv_folds,
        seed=seed,
        n_jobs=jobs,
        progress=True,
    )
    est = res.estimator
    out.print(
        f"fine-tuned ({est.strategy_}) on {data.counts['rows_with_target']} samples from "
        f"{data.table['site_id'].nunique()} sites, {len(data.regional_bands)} regional "
        f"covariates, {est.history_.epochs_run} epochs; AOA threshold "
        f"{res.aoa.threshold_:.3f} ({res.aoa.cv_})"
    )
    if res.cv is not None:
        _print_frame(res.cv.summary().round(3).reset_index(), "calibration CV (SOC g/kg)")
    out.print(f"bundle: {res.bundle}")


@_command("predict")
def predict_cmd(
    bundle: Annotated[Path, typer.Argument(help="Model bundle (fine-tuned or global).")],
    cube: Annotated[Path, typer.Argument(help="Covariate cube (Zarr).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")],
    passes: Annotated[int, typer.Option(help="Monte Carlo dropout passes (T).")] = 32,
    batch_size: Annotated[
        int,
        typer.Option(help="Pixels per forward batch (memory; results equal to float32 rounding)."),
    ] = 1024,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a run with another config.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the dropout masks and noise.")] = 0,
) -> None:
    """Map SOC over a cube, tile by tile: Zarr, COGs, quicklooks and a STAC Item.

    Rerunning the same command after an interruption resumes it and finishes the rest.

    Example: [bold]socmap predict edgeroi.socmap edgeroi.zarr --out runs/edgeroi[/bold]
    """
    # cheap checks before torch is imported
    _check_at_least(
        ("--passes", passes, 1), ("--batch-size", batch_size, 1), ("--workers", workers, 0)
    )
    from socmap.predict import predict_cube

    run = predict_cube(
        bundle,
        cube,
        out_dir,
        passes=passes,
        batch_size=batch_size,
        seed=seed,
        scheduler=scheduler,
        workers=workers,
        overwrite=overwrite,
    )
    s = run.summary
    out.print(
        f"{s['tiles']} tiles ({s['tiles_resumed']} resumed), "
        f"{s.get('pixels_with_value', s['pixels_predicted'])} pixels with a value, "
        f"{s['pixels_nodata']} nodata (NaN), {len(run.config.intervals)} depth "
        f"intervals, {s['seconds']:.1f} s"
    )
    for kind, paths in run.exports.items():
        out.print(f"{kind}: {len(paths)} files under {run.path}")
    out.print(f"run: {run.path}")


@_command("stocks")
def stocks_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished `socmap predict` run.")],
    bd: Annotated[
        str,
        typer.Option(
            help="auto, ptf, a cube band, a constant in g/cm3, or strata:BAND (per-stratum "
            "constants from --bd-table, by the codes of a stratum band)."
        ),
    ] = "auto",
    bd_table: Annotated[
        Path | None,
        typer.Option(
            help="CSV of per-stratum BD for --bd strata:BAND: stratum, bd_g_cm3, bd_sd_g_cm3; "
            "a 'default' row covers unlisted strata."
        ),
    ] = None,
    bd_sd: Annotated[float, typer.Option(help="SD of a BD band or constant (g/cm3).")] = 0.0,
    bd_units: Annotated[
        str, typer.Option(help="Units of a BD band: g/cm3, or cg/cm3 (SoilGrids bdod).")
    ] = "g/cm3",
    cf: Annotated[
        str, typer.Option(help="Coarse fragments: a volume fraction in [0, 1) or a band.")
    ] = "0",
    cf_sd: Annotated[float, typer.Option(help="SD of the coarse-fragment fraction.")] = 0.0,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace stocks with other options.")] = False,
) -> None:
    """Carbon stocks per depth interval and cumulative (t C/ha), with joint MC uncertainty.

    Example: [bold]socmap stocks runs/edgeroi --bd ptf[/bold]
    """
    from socmap.predict import stocks_for_run
    from socmap.stocks import read_stratum_bd

    strata, default = read_stratum_bd(bd_table) if bd_table is not None else (None, None)

    def number_or_name(text: str) -> str | float:
        try:
            return float(text)
        except ValueError:
            return text

    res = stocks_for_run(
        run_dir,
        bd=number_or_name(bd),
        bd_sd=bd_sd,
        bd_units=bd_units,
        cf=number_or_name(cf),
        cf_sd=cf_sd,
        bd_strata=strata,
        bd_default=default,
        scheduler=scheduler,
        workers=workers,
        overwrite=overwrite,
    )
    out.print(res.describe())
    out.print(f"stock maps: {run_dir / 'cogs'} (stock_*.tif); store: {run_dir / 'stock.zarr'}")


@_command("strata")
def strata_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run with stocks (`socmap stocks`).")],
    strata: StrataOpt,
    field: FieldOpt = "stratum",
    cores: Annotated[
        Path | None,
        typer.Option(
            help="Harmonised core samples (.parquet or .csv) on the run's depths, with a stratum "
            "column or x, y, crs: core counts, CV and the cores still needed."
        ),
    ] = None,
    target_error: Annotated[
        float, typer.Option(help="Target relative error (95 % half-width / mean).")
    ] = 0.20,
    confidence: Annotated[float, typer.Option(help="Confidence of the target.")] = 0.95,
    conservative: Annotated[
        float, typer.Option(help="Two-sided confidence whose lower bound is reported.")
    ] = 0.90,
    min_cores: Annotated[int, typer.Option(help="Minimum cores per stratum (VM0033: 3).")] = 3,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Stratum stocks: area, mean and total (Mg C, t CO2e), SE, 90/95 % intervals, flags.

    Example: [bold]socmap strata runs/edgeroi --strata geology --cores vm0033.parquet[/bold]
    """
    from socmap.predict import strata_for_run
    from socmap.profiles import read_table
    from socmap.strata import StrataConfig

    config = StrataConfig(
        target_relative_error=target_error,
        target_confidence=confidence,
        conservative_confidence=conservative,
        min_cores=min_cores,
    )
    res = strata_for_run(
        run_dir,
        strata,
        field=field,
        cores=read_table(cores) if cores is not None else None,
        config=config,
        scheduler=scheduler,
        workers=workers,
    )
    deepest = res.table["layer"].iloc[-1]
    for row in res.table[res.table["layer"] == deepest].itertuples(index=False):
        flags = [] if row.min_cores_ok else [f"{row.n_cores} cores < {min_cores}"]
        if not row.precision_ok:
            flags.append(f"relative error {row.relative_error:.0%} > {target_error:.0%}")
        out.print(
            f"{row.stratum}: {row.area_ha:.1f} ha, {deepest} {row.mean_t_c_ha:.1f} t C/ha "
            f"(95 % {row.ci95_low:.1f}-{row.ci95_high:.1f}), total {row.total_t_co2e:.0f} t CO2e, "
            f"conservative {row.conservative_t_co2e:.0f} t CO2e"
            + (f"; {'; '.join(flags)}" if flags else "")
        )
    missing = res.metadata["strata_without_pixels"]
    if missing:
        out.print(
            f"{len(missing)} strata cover no pixel centre of the map and have no row: "
            f"{', '.join(missing)} (smaller than a pixel, or outside the map)"
        )
    out.print(f"stratum table: {res.path}")


@_command("design")
def design_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A prediction run (its sd and AOA maps).")],
    strata: StrataOpt,
    budget: Annotated[int, typer.Option(help="Number of new cores.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the design files.")],
    field: FieldOpt = "stratum",
    layer: Annotated[
        str | None,
        typer.Option(help="Layer whose sd guides the design (default: the deepest stock total)."),
    ] = None,
    min_spacing: Annotated[float, typer.Option(help="Minimum distance between cores (m).")] = 0.0,
    min_cores: Annotated[
        int, typer.Option(help="Cores every stratum should have (existing ones count).")
    ] = 3,
    cores: Annotated[
        Path | None,
        typer.Option(help="Cores already taken (.parquet/.csv: site_id, stratum or x, y, crs)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the site draws.")] = 0,
) -> None:
    """Neyman-allocated, uncertainty-weighted, spaced core sites (GeoPackage + field CSV).

    Example: [bold]socmap design runs/edgeroi --strata geology --budget 30 -o design/[/bold]
    """
    from socmap.design import design_for_run
    from socmap.profiles import read_table

    sites, allocation, paths = design_for_run(
        run_dir, strata, budget, out_dir, field=field, layer=layer, min_spacing=min_spacing,
        minimum=min_cores, cores=read_table(cores) if cores is not None else None, seed=seed,
    )  # fmt: skip
    for stratum, allocated, placed in zip(
        allocation["stratum"], allocation["allocated"], allocation["placed"], strict=True
    ):
        short = f" (placed {placed}: no room at this spacing)" if placed < allocated else ""
        out.print(f"{stratum}: {allocated} cores{short}")
    out.print(f"{len(sites)} sites: {paths['csv']} and {paths['gpkg']}")


@_command("posterior")
def posterior_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A prediction run.")],
    prior: Annotated[
        list[str],
        typer.Option(help="DEPTH=MEAN.tif,SE.tif, e.g. 0-5cm=soc_mean.tif,soc_se.tif (repeat)."),
    ],
    layer: Annotated[str, typer.Option(help="soc (g/kg) or stock (t/ha).")] = "soc",
    soilgrids: Annotated[
        str | None, typer.Option(help="SoilGrids property of stored integers: soc, ocs, ...")
    ] = None,
    scale: Annotated[float, typer.Option(help="Factor applied to both prior rasters.")] = 1.0,
) -> None:
    """Bayesian update of a prior map (e.g. SoilGrids) with the run's prediction, per pixel.

    Example: [bold]socmap posterior runs/x --prior 0-5cm=mean.tif,se.tif --soilgrids soc[/bold]
    """
    from socmap.posterior import posterior_for_run

    priors: dict[str, tuple[str, str]] = {}
    for item in prior:
        depth, _, files = item.partition("=")
        paths = files.split(",")
        if not depth or len(paths) != 2 or not all(paths):
            raise typer.BadParameter(
                f"--prior {item!r} must be DEPTH=MEAN.tif,SE.tif, e.g. 0-5cm=mean.tif,se.tif"
            )
        priors[depth] = (paths[0], paths[1])
    res = posterior_for_run(run_dir, priors, layer=layer, soilgrids=soilgrids, scale=scale)
    for depth in res.depths:
        out.print(
            f"{depth}: mean prior weight {res.mean_prior_weight[depth]:.2f}, "
            f"{res.pixels_without_prior[depth]} mapped pixels without a prior"
        )
    out.print(f"posterior: {res.path}")


@_command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A prediction run.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default RUN/report).")
    ] = None,
    benchmark: Annotated[
        Path | None, typer.Option(help="A transfer benchmark folder (summary.csv).")
    ] = None,
    qc: Annotated[Path | None, typer.Option(help="A QC summary CSV.")] = None,
    title: Annotated[str | None, typer.Option(help="Page title.")] = None,
    pdf: Annotated[
        bool, typer.Option(help="Also print report.pdf with a headless Chromium.")
    ] = False,
) -> None:
    """Self-contained HTML report (and Markdown): provenance, CV, calibration, maps, strata.

    Example: [bold]socmap report runs/edgeroi --benchmark bench/[/bold]
    """
    from socmap.report.build import build_report

    paths = build_report(run_dir, out_dir, benchmark=benchmark, qc=qc, title=title, pdf=pdf)
    extra = ", " + paths["pdf"].name if "pdf" in paths else ""
    out.print(f"report: {paths['html']} (and {paths['markdown'].name}{extra})")


@_command("view")
def view_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A prediction run.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Map page (default RUN/report/map.html).")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in the default browser.")
    ] = True,
) -> None:
    """Interactive offline map of a run: every layer, design sites, strata, values on click.

    Example: [bold]socmap view runs/edgeroi[/bold]
    """
    import webbrowser

    from socmap.report.map import build_map

    page = build_map(run_dir, out_path)
    out.print(f"map: {page}")
    if open_browser and not webbrowser.open(page.resolve().as_uri()):
        out.print("no browser to open it here; open the file above in any browser")


@_command("cv")
def cv_cmd(
    cube: Annotated[Path, typer.Option(help="The region's covariate cube (Zarr).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the CV tables.")],
    method: Annotated[
        str, typer.Option(help="rf, stacked, global, depthwise, instances or a strategy.")
    ] = "rf",
    bundle: Annotated[
        Path | None, typer.Option(help="Pretrained bundle (network methods and stacking).")
    ] = None,
    profiles_path: ProfilesOpt = None,
    fmt: FormatOpt = ProfileFormat.generic,
    samples: SamplesOpt = None,
    mapping: MapOpt = None,
    crs: CrsOpt = None,
    soc_units: UnitsOpt = "g/kg",
    accept_qc: AcceptQcOpt = None,
    block_size: BlockSizeOpt = "2km",
    folds: Annotated[int, typer.Option(help="Spatial CV folds.")] = 10,
    folds_column: FoldsColumnOpt = None,
    train_sets: Annotated[
        Path | None,
        typer.Option(
            help="CSV of the training profiles of each fold: columns fold,site_id (fold is "
            "0..k-1, or the --folds-column id); by default every training-fold profile."
        ),
    ] = None,
    target: TargetOpt = "soc_g_kg",
    depths: Annotated[str, typer.Option(help="Depth set of the targets.")] = "globalsoilmap",
    max_depth: Annotated[float, typer.Option(help="Deepest interval top (cm).")] = 100.0,
    jobs: JobsOpt = 1,
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 0,
) -> None:
    """Spatial block cross-validation of one method on a region.

    folds.csv also records what each fold's fit chose (strategy_, history_.best_epoch, ...).

    Example: [bold]socmap cv --format edgeroi --cube edgeroi.zarr --method rf --out cv/[/bold]
    """
    from socmap.cube import open_cube
    from socmap.extraction import write_table
    from socmap.model.transfer import BASELINES, method_names, transfer_methods
    from socmap.training import regional_training_table
    from socmap.validate import BlockKFold, cross_validate, read_train_sets

    known = method_names()
    if method not in known:
        raise typer.BadParameter(f"--method {method!r} is not a method; choose from {known!r}")
    if method != "rf" and bundle is None:
        raise typer.BadParameter(f"--method {method} needs --bundle (a pretrained bundle)")
    _check_block_size(block_size)
    chosen = read_train_sets(train_sets) if train_sets is not None else None
    table = _with_target(
        _load_profiles(fmt, profiles_path, samples, mapping, crs, soc_units), target
    )
    own_folds = _user_folds(folds_column, table)
    data = regional_training_table(
        table, open_cube(cube), depths=depths, max_depth_cm=max_depth, accept_qc=accept_qc or ()
    )
    size = _block_size_for(block_size, data.table)
    (estimator,) = transfer_methods(
        [method],
        bundle if bundle is not None else "",
        data.regional_bands,
        data.continuous_regional_bands,
        block_size=size,
        seed=seed,
    ).values()
    result = cross_validate(
        estimator,
        data.table,
        own_folds if own_folds is not None else BlockKFold(folds, size, random_state=seed),
        train_sites=chosen,
        aoa_bands=data.continuous_regional_bands,
        n_jobs=jobs,
    )
    oof_path = write_table(result.oof, out_dir / "oof.parquet")
    metrics_path = write_table(result.metrics, out_dir / "metrics.csv")
    assert result.folds is not None  # cross_validate always reports its folds
    folds_path = write_table(result.folds, out_dir / "folds.csv")
    label = method if method in BASELINES else f"finetune:{method}"
    _print_frame(result.summary().round(3).reset_index(), f"{label}: spatial CV (SOC g/kg)")
    m = result.metrics.set_index(["depth", "metric"])["value"]
    out.print(
        f"90% intervals cover {m[('all', 'picp_90')]:.3f} raw, "
        f"{m[('all', 'calibrated_picp_90')]:.3f} calibrated"
    )
    _print_frame(result.folds.round(3), "folds: training sites and area of applicability")
    out.print(f"out-of-fold predictions: {oof_path}\nmetrics: {metrics_path}\nfolds: {folds_path}")


@benchmark_app.command("transfer")
def benchmark_transfer_cmd(
    cube: Annotated[Path, typer.Option(help="The region's covariate cube (Zarr).")],
    bundle: Annotated[Path, typer.Option(help="Pretrained bundle (excluding the region).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    profiles_path: ProfilesOpt = None,
    fmt: FormatOpt = ProfileFormat.generic,
    samples: SamplesOpt = None,
    mapping: MapOpt = None,
    crs: CrsOpt = None,
    soc_units: UnitsOpt = "g/kg",
    accept_qc: AcceptQcOpt = None,
    block_size: BlockSizeOpt = "2km",
    folds: Annotated[int, typer.Option(help="Spatial CV folds.")] = 10,
    folds_column: FoldsColumnOpt = None,
    train_sets: TrainSetsOpt = None,
    target: TargetOpt = "soc_g_kg",
    sizes: Annotated[str, typer.Option(help="Training profiles per fold.")] = "20,50,100,all",
    repeats: Annotated[int, typer.Option(help="Draws per size.")] = 5,
    methods: Annotated[
        str,
        typer.Option(help="Comma list: rf, stacked, global, depthwise, instances, strategies."),
    ] = "rf,stacked,global,full,freeze-encoders,head,l2sp",
    depths: Annotated[str, typer.Option(help="Depth set of the targets.")] = "globalsoilmap",
    max_depth: Annotated[float, typer.Option(help="Deepest interval top (cm).")] = 100.0,
    mc_passes: Annotated[int, typer.Option(help="MC dropout passes.")] = 16,
    n_estimators: Annotated[int, typer.Option(help="Trees per forest.")] = 500,
    jobs: JobsOpt = 1,
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 0,
) -> None:
    """Skill against the number of regional profiles, for every method, under spatial CV.

    fits.csv records what each fold's fit chose (strategy_, history_.best_epoch, ...).

    Example: [bold]socmap benchmark transfer --format edgeroi --cube edgeroi.zarr
    --bundle global.socmap --sizes 20,50,100,all --repeats 5 --out bench/[/bold]
    """
    from socmap.cube import open_cube
    from socmap.model.transfer import transfer_methods
    from socmap.training import regional_training_table
    from socmap.validate import BlockKFold, read_train_sets
    from socmap.validate.benchmark import parse_sizes, transfer_benchmark

    _check_block_size(block_size)
    size_list = parse_sizes(sizes)
    _check_at_least(
        ("--repeats", repeats, 1),
        ("--folds", folds, 2),
        ("--mc-passes", mc_passes, 1),
        ("--n-estimators", n_estimators, 1),
    )
    chosen = read_train_sets(train_sets) if train_sets is not None else None
    table = _with_target(
        _load_profiles(fmt, profiles_path, samples, mapping, crs, soc_units), target
    )
    own_folds = _user_folds(folds_column, table)
    data = regional_training_table(
        table, open_cube(cube), depths=depths, max_depth_cm=max_depth, accept_qc=accept_qc or ()
    )
    size = _block_size_for(block_size, data.table)
    estimators = transfer_methods(
        [m.strip() for m in methods.split(",") if m.strip()],
        bundle,
        data.regional_bands,
        data.continuous_regional_bands,
        block_size=size,
        n_estimators=n_estimators,
        mc_passes=mc_passes,
        seed=seed,
    )
    result = transfer_benchmark(
        estimators,
        data.table,
        own_folds if own_folds is not None else BlockKFold(folds, size, random_state=seed),
        sizes=size_list,
        repeats=repeats,
        seed=seed,
        reference="rf" if "rf" in estimators else next(iter(estimators)),
        aoa_bands=data.continuous_regional_bands,
        train_sets=chosen,
        n_jobs=jobs,
    )
    paths = result.write(out_dir)
    out.print(result.to_markdown())
    out.print("\n".join(f"{k}: {v}" for k, v in paths.items()))


# --------------------------------------------------------------------------- spectra
class SelectMethod(StrEnum):
    """Sample selection algorithms of ``socmap spectra select``."""

    kennard_stone = "kennard-stone"
    kmeans = "kmeans"


@spectra_app.command("select")
def spectra_select_cmd(
    table: Annotated[Path, typer.Argument(help="Spectra table (CSV or Parquet, band columns).")],
    n: Annotated[int, typer.Option("--n", help="Samples to choose.")],
    out_path: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="CSV of the chosen rows, with selection_order and input_row."
        ),
    ],
    method: Annotated[SelectMethod, typer.Option(help="Selection algorithm.")] = (
        SelectMethod.kennard_stone
    ),
    quantity: Annotated[
        str, typer.Option(help="What the table holds: reflectance or absorbance.")
    ] = "reflectance",
    step: Annotated[
        float | None, typer.Option(help="Resample onto this step first (nm or cm-1).")
    ] = None,
    components: Annotated[
        int | None, typer.Option(help="Select on this many principal components.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed (k-means).")] = 0,
) -> None:
    """Choose the samples to send to the lab: spread over the spectral space.

    The spectra go through absorbance and SNV (and the grid, with --step) before selecting.
    Example: [bold]socmap spectra select field_scans.csv --n 30 --out to_lab.csv[/bold]
    """
    from socmap._io import atomic_path
    from socmap.spectra import (
        Preprocess,
        kennard_stone,
        kmeans_select,
        read_spectra,
        snv,
        to_absorbance,
    )

    if quantity not in ("reflectance", "absorbance"):
        raise ConfigError(f"--quantity {quantity!r} must be 'reflectance' or 'absorbance'")
    spectra = read_spectra(table, quantity=quantity)  # type: ignore[arg-type]
    if step is None:  # keep the measured bands
        prepared = snv(to_absorbance(spectra))
    else:
        first, last = float(spectra.axis[0]), float(spectra.axis[-1])
        prepared = Preprocess(first, last, step, unit=spectra.unit).apply(spectra)
    for note in prepared.notes:
        out.print(f"note: {note}")
    if method == SelectMethod.kennard_stone:
        idx = kennard_stone(prepared.values, n, n_components=components)
    else:
        idx = kmeans_select(prepared.values, n, n_components=components, seed=seed)
    frame = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
    chosen = frame.iloc[idx].copy()
    chosen.insert(0, "selection_order", range(1, len(idx) + 1))
    # The row in the user's file (1 = the first row below the header), so a table without
    # sample ids can still be matched back to its samples.
    chosen.insert(1, "input_row", [int(i) + 1 for i in idx])
    with atomic_path(out_path) as tmp:
        chosen.to_csv(tmp, index=False)
    out.print(f"chose {len(idx)} of {spectra.n_samples} samples ({method.value}): {out_path}")


@spectra_app.command("benchmark")
def spectra_benchmark_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    sites: Annotated[
        str | None, typer.Option(help="Comma list of embedded sites (default: all with SOC).")
    ] = None,
    methods: Annotated[
        str,
        typer.Option(
            help="Comma list of local-pls, local-rf, local-cnn, global-pls, global-cnn, "
            "dtl-i-pls, dtl-i, dtl-r, dtl-ir, or all (local-pls is always run)."
        ),
    ] = "all",
    n_local: Annotated[int, typer.Option(help="Kennard-Stone local samples per site.")] = 30,
    k: Annotated[int, typer.Option(help="RS-LOCAL instances borrowed from the library.")] = 100,
    repeats: Annotated[int, typer.Option(help="Repeats with different seeds.")] = 3,
    freeze_front: Annotated[int, typer.Option(help="Conv blocks frozen in DTL-R/IR.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of every random step.")] = 0,
) -> None:
    """Local, global and transfer models (DTL-I, DTL-R, DTL-IR) at the embedded field sites.

    Kennard-Stone picks --n-local samples per site; the rest of the site is the test set.
    Example: [bold]socmap spectra benchmark --sites CV.98,O.32 --repeats 1 --out spec/[/bold]
    """
    from socmap.spectra.benchmark import (
        METHODS,
        SpectralBenchmarkConfig,
        spectral_benchmark,
        write_spectral_benchmark,
    )

    config = SpectralBenchmarkConfig(
        n_local=n_local, k=k, repeats=repeats, freeze_front=freeze_front, seed=seed
    )
    names = [s.strip() for s in sites.split(",") if s.strip()] if sites else None
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    chosen = list(METHODS) if chosen == ["all"] else chosen
    result = spectral_benchmark(names, chosen, config)
    paths = write_spectral_benchmark(result, out_dir)
    mean = result.summary[result.summary["site"] == "mean"]
    _print_frame(
        mean[["method", "rmse", "me", "ccc", "delta_rmse_pct", "picp90"]].round(3),
        "mean over sites (g/kg; ΔRMSE% vs local PLSR)",
    )
    out.print("\n".join(f"{k}: {v}" for k, v in paths.items()))


# --------------------------------------------------------------------------- Earth Engine
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
EEWorkersOpt = Annotated[int, typer.Option("--workers", help="Requests in flight at once.")]
RetriesOpt = Annotated[
    int, typer.Option(help="Retries per request on 429/5xx (exponential backoff).")
]


@ee_app.command("pull")
def ee_pull(
    catalog: Annotated[str, typer.Argument(help="Catalog name or YAML with ee:// layers.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Output cube (Zarr).")],
    grid: Annotated[
        str | None, typer.Option(help="Region name, grid YAML or raster; default: the catalog's.")
    ] = None,
    chunk: Annotated[int, typer.Option(help="Spatial chunk size in pixels.")] = 512,
    workers: EEWorkersOpt = 4,
    max_retries: RetriesOpt = 8,
    key: KeyOpt = None,
    project: ProjectOpt = None,
    url: UrlOpt = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing cube or partial pull.")
    ] = False,
    unknown_classes: UnknownClassesOpt = UnknownClasses.refuse,
) -> None:
    """Pull an Earth Engine catalog onto a grid as a covariate cube (computePixels).

    Requests are sized under computePixels' limits, retried with backoff on 429/5xx and
    recorded as they land: rerunning an interrupted pull resumes it.

    Example: [bold]socmap ee pull soilgrids_priors --grid edgeroi --out sg.zarr --project P[/bold]
    """
    from socmap.catalog import load_grid, resolve_catalog
    from socmap.cube import describe_cube, pull_cube
    from socmap.sources.earthengine import check_ee_only, initialize

    cat = resolve_catalog(catalog)
    target = load_grid(grid) if grid else None
    check_ee_only(cat)  # a wrong catalog or grid is refused before any sign-in
    initialize(service_account_key=key, project=project, url=url)
    path = pull_cube(
        cat,
        target,
        out_path,
        chunk=chunk,
        workers=workers,
        max_retries=max_retries,
        overwrite=overwrite,
        unknown_classes=unknown_classes.value,
    )
    _print_unknown_classes(path)
    out.print(describe_cube(path, progress=False).to_text())


@ee_app.command("sample")
def ee_sample(
    catalog: Annotated[str, typer.Argument(help="Catalog name or YAML with ee:// layers.")],
    sites: Annotated[
        Path, typer.Argument(help="Table with site_id and x/y(+crs) or longitude/latitude.")
    ],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Training table (.parquet/.csv).")],
    grid: Annotated[
        str | None, typer.Option(help="Region name, grid YAML or raster; default: the catalog's.")
    ] = None,
    workers: EEWorkersOpt = 4,
    max_retries: RetriesOpt = 8,
    key: KeyOpt = None,
    project: ProjectOpt = None,
    url: UrlOpt = None,
) -> None:
    """Sample an Earth Engine catalog at profile sites, pixel-exactly on the grid.

    Every input row is kept; sites off the grid or without coordinates are flagged and counted.

    Example: [bold]socmap ee sample soilgrids_priors cores.csv --grid edgeroi --out t.parquet[/bold]
    """
    from socmap.catalog import load_grid, resolve_catalog
    from socmap.extraction import check_table_path, write_table
    from socmap.profiles import read_table
    from socmap.sources.earthengine import check_ee_only, initialize, sample_sites

    check_table_path(out_path)
    cat = resolve_catalog(catalog)
    target = load_grid(grid) if grid else None
    site_table = read_table(sites)
    check_ee_only(cat)  # a wrong catalog, grid or site table is refused before any sign-in
    initialize(service_account_key=key, project=project, url=url)
    table = sample_sites(
        cat,
        site_table,
        target,
        workers=workers,
        max_retries=max_retries,
    )
    path = write_table(table, out_path)
    counts = ", ".join(f"{k} {v}" for k, v in table.attrs["extract_summary"].items() if v)
    out.print(f"{len(table)} rows, sites: {counts}")
    out.print(f"table: {path}")


# --------------------------------------------------------------------------- scheduled runs
@_command("run")
def run_cmd(
    config: Annotated[
        str, typer.Argument(help="Run configuration (YAML) or a built-in one: edgeroi.")
    ],
    output: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run root (default: config 'output').")
    ] = None,
    force: Annotated[
        list[str] | None,
        typer.Option(help="Recompute this stage and those after it (repeatable), e.g. cube."),
    ] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    plan: Annotated[
        bool, typer.Option("--plan", help="Only show which stages would be reused or computed.")
    ] = False,
    output_alias: Annotated[
        Path | None, typer.Option("--output", hidden=True, help="Old name of --out.")
    ] = None,
) -> None:
    """Run the whole chain from one YAML, recomputing only what changed, and publish it.

    cube (build or Earth Engine pull) -> QC + harmonise -> fine-tune + CV -> predict ->
    stocks -> strata (+ design) -> report. Each version goes to ROOT/runs/VERSION with a
    manifest; ROOT/latest switches only when a version is complete. A rerun with nothing
    changed does nothing.

    Example: [bold]socmap run edgeroi --out runs/edgeroi[/bold]
    """
    from socmap.pipeline import preview_run, run_pipeline

    if output_alias is not None:
        if output is not None and output != output_alias:
            raise ConfigError(
                f"--out {str(output)!r} and --output {str(output_alias)!r} disagree; give "
                "--out only"
            )
        output = output_alias
    if plan:
        for p in preview_run(config, output=output, force=tuple(force or ())):
            out.print(f"{p.name:<9} {p.status:<9} {p.key[:12]}")
        return
    outcome = run_pipeline(
        config,
        output=output,
        force=tuple(force or ()),
        scheduler=scheduler,
        workers=workers,
        log=out.print,
    )
    if outcome.published:
        out.print(f"manifest: {outcome.root / 'runs' / str(outcome.version) / 'manifest.json'}")


@_command("compare")
def compare_cmd(
    run_a: Annotated[Path, typer.Argument(help="The earlier prediction run (with stocks).")],
    run_b: Annotated[Path, typer.Argument(help="The later prediction run, same grid.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    strata: Annotated[
        str | None,
        typer.Option(help="Strata for runs without a stratum table (file or cube band)."),
    ] = None,
    field: Annotated[str | None, typer.Option(help="Stratum column of a polygon file.")] = None,
    layer: Annotated[
        list[str] | None, typer.Option(help="Stock layer(s) to compare (default: all shared).")
    ] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Map and tabulate the stock change B - A between two runs, with uncertainty per stratum.

    Writes change.zarr (mean, sd, 90 % interval, P(increase), significance class per layer),
    COGs and quicklooks, and change_by_stratum.csv with conservative changes.

    Example: [bold]socmap compare runs/x/runs/V1/run runs/x/runs/V2/run --out change/[/bold]
    """
    from socmap.compare import compare_runs

    res = compare_runs(
        run_a,
        run_b,
        out_dir,
        layers=layer or None,
        strata=strata,
        field=field,
        overwrite=overwrite,
        scheduler=scheduler,
        workers=workers,
    )
    out.print(res.describe())
    out.print(f"change: {res.path}")


# --------------------------------------------------------------------------- demo
@_command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "demo_output"
    ),
) -> None:
    """Run the main job on the embedded Edgeroi data.

    Builds the Edgeroi covariate cube, QCs and harmonises the Edgeroi profiles to
    GlobalSoilMap depths, writes the training table, fine-tunes the global bundle, maps SOC
    and stocks with uncertainty, tabulates stocks by geology unit, designs new cores, and ends
    with the HTML report.

    Example: [bold]socmap demo --out demo_output[/bold]
    """
    from socmap.demo import run_demo

    result = run_demo(out_dir, log=out.print)
    out.print(result.to_text())


# --------------------------------------------------------------------------- entry point
def _print_frame(frame: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    out.print(table)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; bad input becomes one line on stderr and exit status 2.

    An unexpected error is one line too (exit status 1), unless ``--debug`` or
    ``SOCMAP_DEBUG=1`` asks for its traceback.
    """
    _debug["on"] = os.environ.get("SOCMAP_DEBUG", "") not in ("", "0")
    try:
        rv = app(args=argv, prog_name="socmap", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("socmap: aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as exc:  # usage errors: bad option, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print(f"socmap: error: {message}".replace("\n", " "), file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except SocmapError as exc:
        print(f"socmap: error: {exc}".replace("\n", " "), file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as exc:  # the file system refused: permissions, a file in the way, disk full
        if _debug["on"]:
            raise
        print(f"socmap: error: {os_error_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:  # a bug: one line and how to see and report it
        if _debug["on"]:
            raise
        print(
            f"socmap: internal error: {type(exc).__name__}: {exc}".replace("\n", " ")
            + f" (socmap {__version__}; rerun with --debug for the traceback and report it"
            " with the command you ran)",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERNAL)
    # Without standalone mode click returns the exit code of --help and typer.Exit.
    sys.exit(rv if isinstance(rv, int) else 0)

"""Profile commands: ``socmap profiles qc|harmonise`` and ``socmap extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from socmap.cli._app import (
    command,
    out,
    print_frame,
    profiles_app,
)
from socmap.cli._options import (
    AcceptQcOpt,
    CrsOpt,
    ExtractMethod,
    FormatOpt,
    InputArg,
    MapOpt,
    ProfileFormat,
    SamplesOpt,
    UnitsOpt,
    load_profiles,
)


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
    from socmap._io import check_out_folder
    from socmap.profiles import qc_profiles, write_qc

    check_out_folder(
        out_dir, [input_path, samples], files=("flags.csv", "summary.csv", "summary.md")
    )
    table = load_profiles(fmt, input_path, samples, mapping, crs, soc_units)
    report = qc_profiles(table, strict=strict)
    flags_path, summary_path = write_qc(report, out_dir)
    n_sites = table["site_id"].nunique()
    out.print(
        f"QC of {len(table)} horizons in {n_sites} sites: {len(report.flags)} flags "
        f"({len(report.errors())} errors)"
    )
    fired = report.summary[report.summary["n_rows"] > 0]
    if len(fired):
        print_frame(fired[["check", "severity", "n_rows", "n_sites"]], "QC problems found")
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
    accept_qc: AcceptQcOpt = None,
) -> None:
    """Harmonise horizons onto standard depths with an equal-area spline.

    The profiles pass the error-level checks of `socmap profiles qc` first (depths in metres,
    SOC in %, overlapping horizons...): a harmonised table no longer shows those mistakes,
    so they stop here unless --accept-qc names them.

    Example: [bold]socmap profiles harmonise --format edgeroi --depths vm0033 -o h.parquet[/bold]
    """
    from socmap.depth import harmonise
    from socmap.errors import ProfileValidationError
    from socmap.extraction import check_table_path, write_table
    from socmap.profiles import qc_profiles

    check_table_path(out_path, [input_path, samples])
    sites_path = out_path.with_name(out_path.stem + "_sites.csv")
    check_table_path(sites_path, [input_path, samples], "--out (its per-site table)")
    table = load_profiles(fmt, input_path, samples, mapping, crs, soc_units)
    accepted = qc_profiles(table).require(tuple(accept_qc or ()))
    for check, rows in accepted.items():
        out.print(f"note: QC check {check} fails on {rows} rows; accepted (--accept-qc)")
    cols = [c for c in ("soc_g_kg", "bd_g_cm3") if c in table.columns and table[c].notna().any()]
    if not cols:
        raise ProfileValidationError(
            f"the profiles have no SOC or bulk-density value to harmonise (soc_g_kg and "
            f"bd_g_cm3 are missing or empty in all {len(table)} rows); check the column "
            "names (--map soc_g_kg=YOUR_COLUMN) and --soc-units"
        )
    result = harmonise(table, depths, value_cols=cols, lam=lam)
    result.require_values()
    write_table(result.table, out_path)
    write_table(result.sites, sites_path)
    counts = ", ".join(f"{k} {v}" for k, v in result.summary().items())
    out.print(f"harmonised {len(result.sites)} sites onto {depths!r} ({counts})")
    out.print(f"table: {out_path}\nper-site fit: {sites_path}")


@command("extract")
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
    from socmap.extraction import check_table_path, extract, require_covariate_values, write_table
    from socmap.profiles import read_table

    check_table_path(out_path, [table, cube])
    covariates = open_cube(cube)
    result = extract(covariates, read_table(table), method=method.value)
    require_covariate_values(result, covariates)
    write_table(result.table, out_path)
    counts = ", ".join(f"{k} {v}" for k, v in result.summary.items() if v)
    out.print(f"sampled {len(result.bands)} bands at sites ({counts}); wrote {out_path}")

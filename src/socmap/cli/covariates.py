"""Covariate commands: ``socmap cube build|info`` and ``socmap ee pull|sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from socmap.cli._app import (
    cube_app,
    ee_app,
    out,
)
from socmap.cli._options import (
    EEWorkersOpt,
    KeyOpt,
    ProjectOpt,
    RetriesOpt,
    UnknownClasses,
    UnknownClassesOpt,
    UrlOpt,
    check_at_least,
    print_unknown_classes,
)


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
    print_unknown_classes(path)
    info = describe_cube(path, progress=False)
    out.print(f"wrote cube {str(path)!r}: {len(info.bands)} bands on {info.grid!r}")
    gaps = info.coverage_gaps()
    best = 100 * float(info.bands["nodata_fraction"].min())
    if gaps:
        listed = ", ".join(f"{k} {100 * v:.1f} %" for k, v in gaps.items())
        out.print(
            f"bands with gaps (nodata; the best-covered band {best:.1f} %): {listed}. Pixels "
            "missing any band get no prediction: check the sources cover the grid "
            "(`socmap cube info` lists every band)"
        )
    elif best > 1:
        out.print(
            f"every band is nodata on {best:.1f} % of the grid or more (outside the sources or "
            "their mask); those pixels get no prediction"
        )


@cube_app.command("info")
def cube_info(cube: Annotated[Path, typer.Argument(help="Cube Zarr store.")]) -> None:
    """Describe a cube: bands, CRS, shape, chunks and nodata fraction per band.

    Example: [bold]socmap cube info edgeroi.zarr[/bold]
    """
    from socmap.cube import describe_cube

    out.print(describe_cube(cube).to_text())


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

    check_at_least(("--chunk", chunk, 1))  # before the catalog, the grid and any sign-in
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
    print_unknown_classes(path)
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

    check_table_path(out_path, [sites])
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

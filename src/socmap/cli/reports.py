"""Field-work and report commands: ``socmap design``, ``report`` and ``view``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from socmap.cli._app import (
    command,
    out,
)
from socmap.cli._options import (
    FieldOpt,
    RunArg,
    StrataOpt,
    read_cores,
)
from socmap.errors import ConfigError
from socmap.units import MAX_SEED


@command("design")
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
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of the site draws.")] = 0,
) -> None:
    """Neyman-allocated, uncertainty-weighted, spaced core sites (GeoPackage + field CSV).

    Example: [bold]socmap design runs/edgeroi --strata geology --budget 30 -o design/[/bold]
    """
    from socmap.design import design_for_run

    if layer is not None and not layer.strip():  # once read as no --layer: the default
        raise ConfigError(
            f"--layer {layer!r} names no layer; name a stock layer of the run (e.g. 0-30cm), "
            "or drop --layer for the deepest stock total"
        )
    taken = read_cores(cores)
    sites, allocation, paths = design_for_run(
        run_dir, strata, budget, out_dir, field=field, layer=layer, min_spacing=min_spacing,
        minimum=min_cores, cores=taken, seed=seed,
    )  # fmt: skip
    if taken is not None:  # cores off every stratum are counted, as `socmap strata` does
        total = taken["site_id"].nunique() if "site_id" in taken.columns else len(taken)
        lost = total - int(allocation["existing_cores"].sum())
        if lost:
            out.print(
                f"{lost} of {total} cores given with --cores lie in no stratum of the design "
                "(outside every stratum, or in one without mapped pixels); they do not count "
                "towards --min-cores"
            )
    for stratum, allocated, placed in zip(
        allocation["stratum"], allocation["allocated"], allocation["placed"], strict=True
    ):
        short = f" (placed {placed}: no room at this spacing)" if placed < allocated else ""
        out.print(f"{stratum}: {allocated} cores{short}")
    below = allocation["existing_cores"] + allocation["allocated"] < min_cores
    if below.any():  # the budget cannot top every stratum up: say which stay short
        names = ", ".join(str(v) for v in allocation.loc[below, "stratum"])
        out.print(
            f"{int(below.sum())} of {len(allocation)} strata stay below --min-cores "
            f"{min_cores} with --budget {budget} ({names}); raise --budget to reach it"
        )
    out.print(f"{len(sites)} sites: {paths['csv']} and {paths['gpkg']}")


@command("report")
def report_cmd(
    run_dir: RunArg,
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


@command("view")
def view_cmd(
    run_dir: RunArg,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Map page (default RUN/report/map.html).")
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in the default browser.")
    ] = True,
    serve_tiles: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Serve the map at full resolution (tiles and values from the run) on "
            "127.0.0.1 until Ctrl-C, instead of writing one page strided to 600 pixels.",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port of --serve (0: any free port).")
    ] = 8765,
) -> None:
    """Interactive offline map of a run: every layer, design sites, strata, values on click.

    Example: [bold]socmap view runs/edgeroi[/bold]; a large map at full resolution:
    [bold]socmap view runs/edgeroi --serve[/bold]
    """
    import webbrowser

    # an option the other mode does not read is refused, not ignored
    if serve_tiles and out_path is not None:
        raise typer.BadParameter(
            f"--out {str(out_path)!r} is not written with --serve (it serves the run, no page "
            "is saved); drop --out, or drop --serve to write the page"
        )
    if not serve_tiles and port != 8765:
        raise typer.BadParameter(
            f"--port {port} is read only with --serve; add --serve, or drop --port"
        )
    if serve_tiles:
        from socmap.report.tiles import serve

        server = serve(run_dir, port=port)
        out.print(f"serving {run_dir} at {server.url} (Ctrl-C stops)")
        if open_browser:
            webbrowser.open(server.url)
        try:
            server.thread.join()
        except KeyboardInterrupt:
            server.stop()
        return
    from socmap.report.map import build_map

    page = build_map(run_dir, out_path)
    out.print(f"map: {page}")
    if open_browser and not webbrowser.open(page.resolve().as_uri()):
        out.print("no browser to open it here; open the file above in any browser")

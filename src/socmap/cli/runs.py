"""Whole-chain commands: ``socmap run`` and ``socmap demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from socmap.cli._app import (
    command,
    out,
)
from socmap.cli._options import (
    DeviceOpt,
    SchedulerOpt,
    WorkersOpt,
)
from socmap.errors import ConfigError


@command("run")
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
    device: DeviceOpt = "cpu",
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
        device=device,
        log=out.print,
    )
    if outcome.published:
        out.print(f"manifest: {outcome.root / 'runs' / str(outcome.version) / 'manifest.json'}")


@command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "demo_output"
    ),
) -> None:
    """Run the main job on the embedded Edgeroi data: `socmap run edgeroi`, summarised.

    Builds the Edgeroi covariate cube, QCs and harmonises the Edgeroi profiles to
    GlobalSoilMap depths, writes the training table, fine-tunes the global bundle, maps SOC
    and stocks with uncertainty, tabulates stocks by geology unit, designs new cores, and ends
    with the HTML report; outputs under OUT/latest. A second demo into the same folder reuses
    every unchanged stage.

    Example: [bold]socmap demo --out demo_output[/bold]
    """
    from socmap.demo import run_demo

    result = run_demo(out_dir, log=out.print)
    out.print(result.to_text())

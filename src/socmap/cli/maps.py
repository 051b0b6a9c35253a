"""Map commands: ``socmap predict``, ``stocks``, ``strata``, ``posterior`` and ``compare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from socmap.cli._app import (
    command,
    out,
)
from socmap.cli._options import (
    BdOpt,
    BdSdOpt,
    BdTableOpt,
    BdUnitsOpt,
    CfOpt,
    CfSdOpt,
    DeviceOpt,
    FieldOpt,
    RunArg,
    SchedulerOpt,
    StrataOpt,
    WorkersOpt,
    check_at_least,
    check_at_most,
    read_cores,
    stock_options,
)
from socmap.errors import ConfigError
from socmap.units import MAX_MC_PASSES, MAX_SEED


@command("predict")
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
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed of the dropout masks and noise.")
    ] = 0,
    device: DeviceOpt = "cpu",
    stocks: Annotated[
        bool,
        typer.Option(
            "--stocks",
            help="Also map carbon stocks, from the same Monte Carlo passes (the bytes of "
            "`socmap stocks RUN` with the same --bd and --cf options).",
        ),
    ] = False,
    bd: BdOpt = None,
    bd_table: BdTableOpt = None,
    bd_sd: BdSdOpt = None,
    bd_units: BdUnitsOpt = None,
    cf: CfOpt = None,
    cf_sd: CfSdOpt = None,
) -> None:
    """Map SOC over a cube, tile by tile: Zarr, COGs, quicklooks and a STAC Item.

    Rerunning the same command after an interruption resumes it and finishes the rest.
    With --stocks, carbon stocks follow in the same process, reusing the passes.

    Examples: [bold]socmap predict edgeroi.socmap edgeroi.zarr --out runs/edgeroi[/bold];
    [bold]socmap predict edgeroi.socmap edgeroi.zarr -o runs/edgeroi --stocks --bd ptf[/bold]
    """
    # cheap checks before torch is imported
    check_at_least(
        ("--passes", passes, 1), ("--batch-size", batch_size, 1), ("--workers", workers, 0)
    )
    check_at_most(("--passes", passes, MAX_MC_PASSES))
    stock_flags = {"--bd": bd, "--bd-table": bd_table, "--bd-sd": bd_sd,
                   "--bd-units": bd_units, "--cf": cf, "--cf-sd": cf_sd}  # fmt: skip
    given = [flag for flag, value in stock_flags.items() if value is not None]
    if given and not stocks:  # they would do nothing: say so rather than ignore them
        raise typer.BadParameter(
            f"{' '.join(given)} set the stocks, which predict maps only with --stocks; add "
            "--stocks, or give them to `socmap stocks RUN` later"
        )
    options = stock_options(bd, bd_table, bd_sd, bd_units, cf, cf_sd) if stocks else None
    if options is not None:  # the BD and CF bands, before any SOC is mapped
        from socmap.stocks import check_stock_inputs

        check_stock_inputs(cube, options["bd"], options["bd_units"], options["cf"],
                           options["bd_strata"], options["bd_default"])  # fmt: skip
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
        device=device,
        keep_passes=stocks,  # only --stocks reads them again in this process
    )
    s = run.summary
    out.print(
        f"{s['tiles']} tiles ({s['tiles_resumed']} resumed), "
        f"{s.get('pixels_with_value', s['pixels_predicted'])} pixels with a value, "
        f"{s['pixels_nodata']} nodata (NaN), {len(run.config.intervals)} depth "
        f"intervals, {s['seconds']:.1f} s"
    )
    for band, n in (s.get("unknown_class_pixels") or {}).items():
        if n:  # once only in run.json: a cube coded otherwise than the training data
            out.print(
                f"note: {n} of {s['pixels_predicted']} mapped pixels hold classes of {band!r} "
                "that the model was not trained on; it read them as an unknown class (check "
                f"that the cube codes {band!r} as the training data did)"
            )
    if options is not None:
        from socmap.stocks import stocks_for_run

        res = stocks_for_run(
            run.path, **options, scheduler=scheduler, workers=workers, overwrite=overwrite,
            device=device,
        )  # fmt: skip
        _print_stocks(res)
    for kind, paths in run.exports.items():
        out.print(f"{kind}: {len(paths)} files under {run.path}")
    out.print(f"run: {run.path}")


@command("stocks")
def stocks_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished `socmap predict` run.")],
    bd: BdOpt = "auto",
    bd_table: BdTableOpt = None,
    bd_sd: BdSdOpt = 0.0,
    bd_units: BdUnitsOpt = "g/cm3",
    cf: CfOpt = "0",
    cf_sd: CfSdOpt = 0.0,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace stocks with other options.")] = False,
    device: DeviceOpt = "cpu",
) -> None:
    """Carbon stocks per depth interval and cumulative (t C/ha), with joint MC uncertainty.

    Example: [bold]socmap stocks runs/edgeroi --bd ptf[/bold]
    """
    # before the network loads (seconds)
    options = stock_options(bd, bd_table, bd_sd, bd_units, cf, cf_sd)
    from socmap.stocks import stocks_for_run

    res = stocks_for_run(
        run_dir, **options, scheduler=scheduler, workers=workers, overwrite=overwrite,
        device=device,
    )  # fmt: skip
    _print_stocks(res)


def _print_stocks(res: Any) -> None:
    out.print(res.describe())
    path = res.run.path
    out.print(f"stock maps: {path / 'cogs'} (stock_*.tif); store: {path / 'stock.zarr'}")


@command("strata")
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
    device: DeviceOpt = "cpu",
) -> None:
    """Stratum stocks: area, mean and total (Mg C, t CO2e), SE, 90/95 % intervals, flags.

    Example: [bold]socmap strata runs/edgeroi --strata geology --cores vm0033.parquet[/bold]
    """
    # in the CLI's words (StrataConfig names its Python fields), before the run loads
    if not 0 < target_error < 1:
        raise ConfigError(f"--target-error {target_error!r} must be in (0, 1), e.g. 0.2 for 20 %")
    for option, value in (("--confidence", confidence), ("--conservative", conservative)):
        if not 0.5 <= value < 1:
            raise ConfigError(f"{option} {value!r} must be in [0.5, 1), e.g. 0.9 or 0.95")
    check_at_least(("--min-cores", min_cores, 1))
    from socmap.strata import StrataConfig, strata_for_run

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
        cores=read_cores(cores),
        config=config,
        scheduler=scheduler,
        workers=workers,
        device=device,
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
            f"{', '.join(missing)} (smaller than a pixel, outside the map, or without geometry)"
        )
    outside, mapped = res.metadata["mapped_pixels_outside_strata"], res.metadata["mapped_pixels"]
    if outside:  # once said nowhere: the totals covered part of the map
        out.print(
            f"{outside} of {mapped} mapped pixels lie in no stratum and count in no stratum's "
            "total (the strata cover part of the map)"
        )
    for line in _cores_lines(res.metadata.get("cores"), res.path.parent / "cores.csv"):
        out.print(line)
    out.print(f"stratum table: {res.path}")


def _cores_lines(counts: dict[str, Any] | None, listing: Path) -> list[str]:
    """Console lines counting the cores that count in no stratum (none when all do)."""
    if not counts:
        return []
    total, where = counts["total"], f"listed in {listing}"
    lines = []
    if counts["outside"]:
        lines.append(
            f"{counts['outside']} of {total} cores fall outside every stratum; {where} "
            "(stratum 'outside strata')"
        )
    if counts["unknown_strata"]:
        lines.append(
            f"{counts['unknown_strata']} of {total} cores name strata the map does not have "
            f"({', '.join(counts['unknown_names'])}) and count in no stratum; {where}"
        )
    off = counts.get("samples_off_intervals") or [0, []]
    if off[0]:  # once ignored without a word: a core without them counted as none
        lines.append(
            f"{off[0]} core samples lie on depths that are none of the run's intervals "
            f"({', '.join(off[1])}) and give no stock; harmonise them onto the run's depths "
            "with `socmap profiles harmonise --depths`"
        )
    if counts["without_pixels"]:
        lines.append(
            f"{counts['without_pixels']} of {total} cores are in strata that cover no pixel "
            f"centre and have no row; {where}"
        )
    return lines


@command("posterior")
def posterior_cmd(
    run_dir: RunArg,
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
        if depth in priors:  # once: the later one replaced the earlier without a word
            raise typer.BadParameter(
                f"--prior {item!r} gives depth {depth!r} a second time; give each depth once"
            )
        priors[depth] = (paths[0], paths[1])
    res = posterior_for_run(run_dir, priors, layer=layer, soilgrids=soilgrids, scale=scale)
    for depth in res.depths:
        out.print(
            f"{depth}: mean prior weight {res.mean_prior_weight[depth]:.2f}, "
            f"{res.pixels_without_prior[depth]} mapped pixels without a prior"
        )
    out.print(f"posterior: {res.path}")


@command("compare")
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

    if field is not None and strata is None:  # once ignored without a word
        raise ConfigError(
            f"--field {field!r} names the stratum column of the --strata polygon file, and no "
            "--strata was given; add --strata FILE or drop --field"
        )

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

"""Model commands: ``socmap pretrain``, ``finetune``, ``cv`` and ``benchmark transfer``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from socmap._io import check_out_folder
from socmap._parallel import check_n_jobs
from socmap.cli._app import (
    benchmark_app,
    command,
    out,
    print_frame,
)
from socmap.cli._options import (
    BLOCK_UNITS,
    PROFILES,
    BlockSizeOpt,
    FoldsColumnOpt,
    JobsOpt,
    ProfileSource,
    TargetOpt,
    TrainSetsOpt,
    block_size_for,
    check_at_least,
    check_at_most,
    check_block_size,
    parse_bbox,
    profile_options,
    user_folds,
    with_target,
)
from socmap.errors import ConfigError
from socmap.model.methods import BASELINES, check_bundle_strategy, check_methods, method_names
from socmap.units import MAX_MC_PASSES, MAX_SEED

if TYPE_CHECKING:
    from socmap.training import RegionalTable
    from socmap.validate import ColumnFolds

# Options several model commands share, declared once so that their help stays alike.
CubeOpt = Annotated[Path, typer.Option(help="The region's covariate cube (Zarr).")]
FoldsOpt = Annotated[int, typer.Option(help="Spatial CV folds.")]
DepthsOpt = Annotated[str, typer.Option(help="Depth set of the targets.")]
MaxDepthOpt = Annotated[float, typer.Option(help="Deepest interval top (cm).")]
#: Most trees per forest (500 is the default; far more only costs time).
MAX_TREES = 100_000
#: Most draws per training size of `benchmark transfer` (each refits every method per fold).
MAX_REPEATS = 1000

SeedOpt = Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed of every random step.")]


def _print_cv_and_bundle(cv: Any, bundle: Path, title: str) -> None:
    """Print a fit's CV summary (when it ran one) and where its bundle went.

    Parameters
    ----------
    cv
        The fit's :class:`~socmap.validate.CVResult`, or ``None`` when it ran no CV.
    bundle
        The bundle written.
    title
        Title of the CV table.
    """
    if cv is not None:
        print_frame(cv.summary().round(3).reset_index(), title)
    out.print(f"bundle: {bundle}")


def _cv_inputs(
    profiles: ProfileSource,
    target: str,
    folds_column: str | None,
    cube: Path,
    depths: str,
    max_depth: float,
    block_size: str,
) -> tuple[RegionalTable, ColumnFolds | None, float]:
    """Read what a spatial CV of a region needs, in the order its checks should fail.

    Parameters
    ----------
    profiles, target
        The profile options and the column modelled (``--target``).
    folds_column
        ``--folds-column``: user folds, checked on the profile table.
    cube, depths, max_depth
        The region's covariate cube, the depth set and the deepest interval top (cm).
    block_size
        ``--block-size`` as given.

    Returns
    -------
    tuple
        The regional training table, the user folds (or ``None``) and the block size in the
        units of the table's CRS.
    """
    from socmap.cube import open_cube
    from socmap.training import regional_training_table

    table = with_target(profiles.load(), target)
    own_folds = user_folds(folds_column, table)
    data = regional_training_table(
        table, open_cube(cube), depths=depths, max_depth_cm=max_depth, accept_qc=profiles.accept_qc
    )
    return data, own_folds, block_size_for(block_size, data.table)


def check_bundle_out(path: Path, inputs: Sequence[Path | None] = ()) -> None:
    """Refuse an --out that holds a user's files or an input: a bundle replaces only a model.

    The input bundle itself is refused too: the fine-tuned bundle would replace the
    pretrained one it came from.
    """
    from socmap._io import check_replaceable, is_socmap_model_dir, refuse_input_as_output

    refuse_input_as_output(path, inputs)
    check_replaceable(path, "model bundle", is_socmap_model_dir, overwrite=True)


@command("pretrain")
def pretrain_cmd(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Bundle directory to write.")],
    depths: Annotated[str, typer.Option(help="Depth set; every interval is trained.")] = (
        "globalsoilmap"
    ),
    folds: FoldsOpt = 10,
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
    seed: SeedOpt = 0,
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
    check_at_least(("--max-epochs", max_epochs, 1), ("--mc-passes", mc_passes, 1))
    check_at_most(("--mc-passes", mc_passes, MAX_MC_PASSES))  # as `socmap predict --passes`
    check_n_jobs(jobs)
    check_bundle_out(out_path)
    for option, given in (("--exclude-region", exclude_region), ("--catalog", catalog)):
        if given is not None and not str(given).strip():  # once read as the folder '.'
            raise typer.BadParameter(
                f"{option} {given!r} is empty (an unset shell variable?); name a built-in "
                f"{'region' if option == '--exclude-region' else 'catalog'} or a YAML file, "
                f"or drop {option}"
            )
    from socmap.model.pretrain import pretrain, region_bbox_lonlat
    from socmap.validate import resolve_block_size

    block_size_deg = resolve_block_size(block_size, units="degrees")
    bbox = parse_bbox(exclude_bbox)
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
        train=None if max_epochs is None else {"max_epochs": max_epochs},
        mc_passes=mc_passes,
        cv=cv,
        balance=None if balance == "none" else balance,
        catalog=catalog,
    )
    out.print(
        f"pretrained on {result.counts['rows_with_target']} samples from "
        f"{result.counts['profiles_read'] - result.counts.get('excluded_by_bbox', 0)} profiles"
    )
    _print_cv_and_bundle(result.cv, result.bundle, "spatial CV (SOC g/kg)")


@command("finetune")
@profile_options
def finetune_cmd(
    bundle: Annotated[Path, typer.Argument(help="Pretrained bundle directory.")],
    cube: CubeOpt,
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Fine-tuned bundle to write.")],
    profiles: ProfileSource = PROFILES,
    strategy: Annotated[
        str,
        typer.Option(
            help="auto (chosen by inner spatial CV among rf, rf-log, prior-residual and "
            "recalibrate, and freeze-encoders from 200 profiles); one of those "
            "(prior-residual: the network plus a regional "
            "residual forest); stacked (a log forest reading the network's prediction); "
            "prior-stacked (the mean of those two); "
            "or a network fine-tuning strategy: full, freeze-encoders, "
            "head, l2sp, instances."
        ),
    ] = "auto",
    depths: DepthsOpt = "globalsoilmap",
    max_depth: Annotated[
        float | None, typer.Option(help="Use intervals whose top is above this depth (cm).")
    ] = 100.0,
    block_size: Annotated[
        str,
        typer.Option(
            help="Spatial block size of the fine-tuning early-stopping split and of the "
            f"calibration CV and AOA folds, {BLOCK_UNITS}."
        ),
    ] = "2km",
    cv_folds: Annotated[
        int, typer.Option(help="Folds of the calibration CV (0: no calibration).")
    ] = 5,
    jobs: JobsOpt = 1,
    seed: SeedOpt = 0,
) -> None:
    """Fine-tune a pretrained bundle on a region's profiles and covariate cube.

    The bundle also gets the calibration of its intervals (from a spatial CV of the same
    strategy), its CV metrics and the area of applicability of the training sites.

    Example: [bold]socmap finetune global.socmap --profiles x --format edgeroi
    --cube edgeroi.zarr --out edgeroi.socmap[/bold]
    """
    check_block_size(block_size)
    check_bundle_strategy(strategy)  # before torch loads (seconds)
    check_n_jobs(jobs)
    # before the training, not after it
    check_bundle_out(out_path, [bundle, cube, profiles.path, profiles.samples])
    if cv_folds < 0 or cv_folds == 1:
        raise ConfigError(f"--cv-folds {cv_folds!r} must be 0 (no calibration) or at least 2")
    from socmap.cube import open_cube
    from socmap.model.finetune import finetune_bundle
    from socmap.predict import check_cube_serves
    from socmap.training import regional_training_table

    cube_arr = open_cube(cube)
    # loads the bundle (a missing or broken one fails before the table work); the fine-tuned
    # bundle keeps the pretrained network, so it maps only where it can read it
    check_cube_serves(
        bundle, cube_arr, "The fine-tuned bundle could not map this cube: rebuild the cube with "
        "those bands, or fine-tune a bundle pretrained on the bands you have",
    )  # fmt: skip
    table = profiles.load()
    data = regional_training_table(
        table, cube_arr, depths=depths, max_depth_cm=max_depth, accept_qc=profiles.accept_qc
    )
    res = finetune_bundle(
        bundle,
        data,
        out_path,
        strategy=strategy,
        depth_set=depths,
        block_size=block_size_for(block_size, data.table),
        cv_folds=cv_folds,
        seed=seed,
        n_jobs=jobs,
        progress=True,
    )
    epochs = "" if res.epochs is None else f", {res.epochs} epochs"
    out.print(
        f"fine-tuned ({res.strategy}) on {data.counts['rows_with_target']} samples from "
        f"{data.table['site_id'].nunique()} sites, {len(data.regional_bands)} regional "
        f"covariates{epochs}; AOA threshold {res.aoa.threshold_:.3f} ({res.aoa.cv_})"
    )
    _print_cv_and_bundle(res.cv, res.bundle, "calibration CV (SOC g/kg)")


@command("cv")
@profile_options
def cv_cmd(
    cube: CubeOpt,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the CV tables.")],
    method: Annotated[
        str,
        typer.Option(
            help="rf, rf-log, auto, prior-residual, prior-stacked, recalibrate, blend, stacked, "
            "global, global-gbm, depthwise, instances or a fine-tuning strategy (full, "
            "freeze-encoders, head, l2sp)."
        ),
    ] = "rf",
    bundle: Annotated[
        Path | None, typer.Option(help="Pretrained bundle (network methods and stacking).")
    ] = None,
    profiles: ProfileSource = PROFILES,
    block_size: BlockSizeOpt = "2km",
    folds: FoldsOpt = 10,
    folds_column: FoldsColumnOpt = None,
    train_sets: Annotated[
        Path | None,
        typer.Option(
            help="CSV of the training profiles of each fold: columns fold,site_id (fold is "
            "0..k-1, or the --folds-column id); by default every training-fold profile."
        ),
    ] = None,
    target: TargetOpt = "soc_g_kg",
    depths: DepthsOpt = "globalsoilmap",
    max_depth: MaxDepthOpt = 100.0,
    jobs: JobsOpt = 1,
    seed: SeedOpt = 0,
) -> None:
    """Spatial block cross-validation of one method on a region.

    folds.csv also records what each fold's fit chose (strategy_, history_.best_epoch, ...).

    Example: [bold]socmap cv --format edgeroi --cube edgeroi.zarr --method rf --out cv/[/bold]
    """
    check_at_least(("--folds", folds, 2))  # before torch loads (seconds)
    check_n_jobs(jobs)
    known = method_names()
    if method not in known:
        raise typer.BadParameter(f"--method {method!r} is not a method; choose from {known!r}")
    if method != "rf" and bundle is None:
        raise typer.BadParameter(f"--method {method} needs --bundle (a pretrained bundle)")
    from socmap.extraction import write_table
    from socmap.model.transfer import transfer_methods
    from socmap.validate import BlockKFold, cross_validate, read_train_sets

    check_block_size(block_size)
    inputs = [cube, bundle, train_sets, profiles.path, profiles.samples]
    check_out_folder(out_dir, inputs, files=("oof.parquet", "metrics.csv", "folds.csv"))
    chosen = read_train_sets(train_sets) if train_sets is not None else None
    data, own_folds, size = _cv_inputs(
        profiles, target, folds_column, cube, depths, max_depth, block_size
    )
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
    oof_path = write_table(result.oof, out_dir / "oof.parquet", record=True)
    metrics_path = write_table(result.metrics, out_dir / "metrics.csv", record=True)
    assert result.folds is not None  # cross_validate always reports its folds
    folds_path = write_table(result.folds, out_dir / "folds.csv", record=True)
    label = method if method in BASELINES else f"finetune:{method}"
    print_frame(result.summary().round(3).reset_index(), f"{label}: spatial CV (SOC g/kg)")
    out.print(result.coverage_line(0.9))  # says so when calibrated widths are infinite
    print_frame(result.folds.round(3), "folds: training sites and area of applicability")
    out.print(f"out-of-fold predictions: {oof_path}\nmetrics: {metrics_path}\nfolds: {folds_path}")


@benchmark_app.command("transfer")
@profile_options
def benchmark_transfer_cmd(
    cube: CubeOpt,
    bundle: Annotated[Path, typer.Option(help="Pretrained bundle (excluding the region).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    profiles: ProfileSource = PROFILES,
    block_size: BlockSizeOpt = "2km",
    folds: FoldsOpt = 10,
    folds_column: FoldsColumnOpt = None,
    train_sets: TrainSetsOpt = None,
    target: TargetOpt = "soc_g_kg",
    sizes: Annotated[str, typer.Option(help="Training profiles per fold.")] = "20,50,100,all",
    repeats: Annotated[int, typer.Option(help="Draws per size.")] = 5,
    methods: Annotated[
        str,
        typer.Option(help="Comma list: rf, stacked, global, depthwise, instances, strategies."),
    ] = "rf,stacked,global,full,freeze-encoders,head,l2sp",
    depths: DepthsOpt = "globalsoilmap",
    max_depth: MaxDepthOpt = 100.0,
    mc_passes: Annotated[int, typer.Option(help="MC dropout passes.")] = 16,
    n_estimators: Annotated[int, typer.Option(help="Trees per forest.")] = 500,
    jobs: JobsOpt = 1,
    seed: SeedOpt = 0,
) -> None:
    """Skill against the number of regional profiles, for every method, under spatial CV.

    fits.csv records what each fold's fit chose (strategy_, history_.best_epoch, ...).

    Example: [bold]socmap benchmark transfer --format edgeroi --cube edgeroi.zarr
    --bundle global.socmap --sizes 20,50,100,all --repeats 5 --out bench/[/bold]
    """
    check_block_size(block_size)
    check_at_least(
        ("--repeats", repeats, 1),
        ("--folds", folds, 2),
        ("--mc-passes", mc_passes, 1),
        ("--n-estimators", n_estimators, 1),
    )
    check_at_most(
        ("--mc-passes", mc_passes, MAX_MC_PASSES),  # as `socmap predict --passes`
        ("--n-estimators", n_estimators, MAX_TREES),  # once 2**63 trees: fitted until killed
        ("--repeats", repeats, MAX_REPEATS),  # once a billion draws per size: run until killed
    )
    check_n_jobs(jobs)
    method_list = check_methods([m.strip() for m in methods.split(",") if m.strip()])
    from socmap.model.transfer import transfer_methods  # torch: after the cheap checks
    from socmap.validate import BlockKFold, read_train_sets
    from socmap.validate.benchmark import parse_sizes, transfer_benchmark

    size_list = parse_sizes(sizes)
    inputs = [cube, bundle, train_sets, profiles.path, profiles.samples]
    written = ("results.csv", "summary.csv", "summary.md", "skill_vs_n.png", "timings.csv")
    check_out_folder(out_dir, inputs, files=(*written, "fits.csv"))
    chosen = read_train_sets(train_sets) if train_sets is not None else None
    data, own_folds, size = _cv_inputs(
        profiles, target, folds_column, cube, depths, max_depth, block_size
    )
    estimators = transfer_methods(
        method_list,
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

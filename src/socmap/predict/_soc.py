"""SOC maps: the run engine's first product, and :func:`predict_cube`, its entry point.

A run's ``soc.zarr`` holds ``soc(stat, depth, y, x)`` in g/kg with the dissimilarity index
and the area-of-applicability mask as planes; :func:`soc_block` computes one tile
(:func:`~socmap.predict._engine.predict_block`), and :func:`export_run` writes its COGs,
quicklooks and the STAC Item.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from socmap._io import refuse_input_as_output, remove_path
from socmap._parallel import check_scheduler
from socmap.errors import BandMismatch, ConfigError, RasterError
from socmap.predict._engine import (
    STATS,
    TileModel,
    forget_passes,
    load_tile_model,
    predict_block,
    resolve_device,
)
from socmap.predict._export import (
    export_layers,
    open_layer,
    write_cog,
    write_quicklook,
    write_stac_item,
)
from socmap.predict._run import (
    CONTEXT_STORE,
    SOC_STORE,
    TILES_DIR,
    LayerKind,
    PredictionRun,
    RunConfig,
    compute_layers,
    prepare_run,
)
from socmap.units import MAX_MC_PASSES

__all__ = ["SOC", "export_run", "predict_cube", "soc_block"]


def soc_block(
    tm: TileModel, block: np.ndarray, names: list[str], job: Any, options: dict[str, Any]
) -> dict[str, Any]:
    """SOC statistics, DI and AOA of one tile (``options`` unused: the run holds them all)."""
    return predict_block(
        tm, block, names, passes=job.passes, batch_size=job.batch_size, seed=job.seed,
        device=job.device, keep_passes=job.keep_passes,
    )  # fmt: skip


SOC = LayerKind(
    "soc",
    SOC_STORE,
    TILES_DIR,
    "g/kg",
    "soil organic carbon content (fine earth)",
    (
        ("di", "dissimilarity index (Meyer & Pebesma 2021)"),
        ("aoa", "inside the area of applicability (1) or not (0)"),
    ),
    block=soc_block,
    title="SOC",
    cmap="YlOrBr",
)


def _cube_id(cube: Any) -> str:
    a = cube.attrs
    ident = json.dumps([a.get("catalog_sha256"), a.get("created"), a.get("grid")], default=str)
    return "sha256:" + hashlib.sha256(ident.encode()).hexdigest()


def _context_bands(
    needed: Sequence[str],
    have: Sequence[str],
    remedy: str = "Rebuild the cube with those bands or fine-tune a model on the bands you have",
) -> list[str]:
    from socmap.predict._context import context_bands

    missing = [b for b in needed if b not in have]
    if not missing:
        return []
    available = set(context_bands())
    unavailable = [b for b in missing if b not in available]
    if unavailable:
        raise BandMismatch(
            f"the cube lacks bands {unavailable!r} that the model reads, and the global context "
            f"catalog does not have them either; the cube has {list(have)!r}. {remedy}"
        )
    return missing


def check_cube_serves(bundle: str | Path, cube: Any, remedy: str) -> None:
    """Refuse a cube that cannot give every band the bundle's network reads.

    A band comes from the cube, a stand-in band of the cube, or the global context
    (as :func:`predict_cube` takes them); ``remedy`` ends the message.

    Raises
    ------
    BandMismatch
        A band the network reads is in none of them.
    """
    from socmap.cube import stand_ins

    tm = load_tile_model(bundle)
    have = [str(b) for b in cube.band.values]
    standing = {g: b for g, b in stand_ins(cube).items() if g in tm.input_bands}
    _context_bands(tm.input_bands, [*have, *standing], remedy)


def predict_cube(
    bundle: str | Path,
    cube: str | Path,
    out: str | Path,
    *,
    passes: int = 32,
    batch_size: int = 1024,
    seed: int = 0,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    exports: bool = True,
    progress: bool = True,
    device: str = "cpu",
    keep_passes: bool = True,
) -> PredictionRun:
    """Map SOC over a covariate cube with a model bundle, tile by tile.

    Parameters
    ----------
    bundle
        Model bundle (fine-tuned or global).
    cube
        Covariate cube (Zarr); global covariates the bundle reads and the cube lacks are
        taken from the embedded 10' rasters, pixel by containing pixel.
    out
        Run directory. An existing run with the same configuration resumes; one with another
        configuration is an error unless ``overwrite``.
    passes
        Monte Carlo dropout passes (T).
    batch_size
        Pixels per forward batch: memory and speed. Results agree across batch sizes to
        float32 rounding (a matrix product summed in another order may differ in the last
        bit); a given batch size is bitwise reproducible.
    seed
        Run seed of the dropout masks (one set per pass for the whole map).
    scheduler
        Address of a running dask.distributed scheduler (``tcp://host:8786``); default
        threads in this process.
    workers
        Tiles computed at once, on threads of this process (one torch thread each);
        default ``min(tiles, cores)``. ``0`` computes one tile after another with torch's
        own thread count.
    overwrite
        Replace an existing run with another configuration.
    exports
        Write COGs, PNG quicklooks and the STAC Item at the end.
    progress
        Progress bar over tiles.
    device
        Where the network runs: ``cpu``, ``cuda`` (``cuda:N``) or ``auto`` (CUDA when torch
        sees a GPU). The dropout masks are drawn on the CPU, so a GPU gives the same map to
        float32 tolerance; the run's configuration (and resuming it) does not depend on it.
    keep_passes
        Keep the map's Monte Carlo passes in memory (up to
        :data:`~socmap.predict._engine.PASS_CACHE_BYTES`, when the whole map fits) for
        stocks and stratum totals computed next in this process; ``False`` when nothing
        will follow (``socmap predict`` without ``--stocks``), so the memory stays free.

    Returns
    -------
    PredictionRun

    Raises
    ------
    BandMismatch
        The cube (plus the global context) lacks bands the bundle reads, or holds one in
        other units than the bundle was trained on; raised before any output exists.
    OutputExists
        ``out`` holds a run with another configuration and ``overwrite`` is false.
    ConfigError
        Bad ``passes``, ``batch_size`` or ``workers``; a ``scheduler`` that is no address
        or does not answer (checked before anything is written).
    """
    from socmap.cube import band_table, cube_grid, open_cube, stand_ins
    from socmap.cube._read import CubeDamaged

    for option, value, least in (("--passes", passes, 1), ("--batch-size", batch_size, 1),
                                 ("--workers", workers, 0)):  # fmt: skip
        if value is not None and int(value) < least:
            raise ConfigError(
                f"{option} {value!r} must be >= {least} (Python: {option[2:].replace('-', '_')}=)"
            )
    if int(passes) > MAX_MC_PASSES:
        raise ConfigError(f"--passes {passes!r} must be <= {MAX_MC_PASSES}; 32 to 256 is plenty")
    check_scheduler(scheduler)  # before the run folder exists: a refusal leaves nothing
    refuse_input_as_output(out, [bundle, cube])  # a run inside the cube spoils the cube
    where = resolve_device(device)
    tm = load_tile_model(bundle)
    cube_arr = open_cube(cube)
    grid = cube_grid(cube_arr)
    have = [str(b) for b in cube_arr.band.values]
    bands = band_table(cube_arr)
    tm.bundle.check_units(dict(zip(bands["name"], bands["units"], strict=True)))
    standing = {g: b for g, b in stand_ins(cube_arr).items() if g in tm.input_bands}
    context = _context_bands(tm.input_bands, [*have, *standing])
    chunk = int(cube_arr.attrs.get("chunk") or cube_arr.data.chunksize[1])
    config = RunConfig(
        bundle=str(Path(bundle).resolve()),
        bundle_sha256=tm.weights_sha256,
        cube=str(Path(cube).resolve()),
        cube_id=_cube_id(cube_arr),
        grid=grid.to_dict(),
        chunk=chunk,
        bands=list(tm.band_names),
        context_bands=context,
        stand_ins=standing,
        intervals=[[t, b] for t, b in tm.intervals],
        stats=list(STATS),
        passes=int(passes),
        batch_size=int(batch_size),
        seed=int(seed),
    )
    run_dir = Path(out)
    fresh = not run_dir.exists()
    run = prepare_run(run_dir, config, overwrite)
    if context and not (run_dir / CONTEXT_STORE).exists():
        from socmap.predict._context import build_context

        build_context(grid, context, run_dir / CONTEXT_STORE)
    forget_passes()  # the last map's passes would only crowd this one's out
    try:
        run.summary = compute_layers(
            run, SOC, tm.depth_labels, scheduler=scheduler, workers=workers, progress=progress,
            device=where, keep_passes=keep_passes,
        )  # fmt: skip
    except CubeDamaged:  # a run of this cube cannot finish: leave nothing behind (once a
        if fresh:  # 'running' run folder that only a rebuilt cube, with --overwrite, replaced)
            remove_path(run_dir)
        raise
    if run.summary["pixels_with_value"] == 0:
        run.status = "failed"
        run.save()
        raise RasterError(
            f"run {str(run_dir)!r} mapped no pixel: {run.summary['pixels_nodata']} pixels lack "
            f"a covariate and {run.summary['pixels_predicted']} gave no finite SOC; check the "
            "cube's nodata (socmap cube info) and the bundle, then predict into a new folder"
        )
    run.status = "predicted"
    run.save()
    if exports:
        export_run(run, progress=progress)
    return run


def export_run(run: PredictionRun, *, progress: bool = True) -> dict[str, list[str]]:
    """Write the SOC, DI and AOA COGs, quicklooks and the STAC Item; record them."""
    cogs, pngs = export_layers(run, SOC, run.depth_labels, progress=progress)
    for name, title in (("di", "dissimilarity index"), ("aoa", "area of applicability (1 inside)")):
        cog = run.path / "cogs" / f"{name}.tif"
        write_cog(open_layer(run, SOC.store, name), cog, run.grid, chunk=run.config.chunk,
                  units="1", description=title)  # fmt: skip
        cogs.append(str(cog.relative_to(run.path)))
    png = run.path / "quicklooks" / "aoa.png"
    write_quicklook(
        run.path / "cogs" / "aoa.tif", png, title="area of applicability", units="inside (1)"
    )
    pngs.append(str(png.relative_to(run.path)))
    run.exports = {"cogs": cogs, "quicklooks": pngs, "stores": [SOC.store]}
    run.exports["stac"] = [str(write_stac_item(run).relative_to(run.path))]
    run.status = "complete"
    run.save()
    return run.exports

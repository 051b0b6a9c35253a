"""The stages of a scheduled run and what each one's cache key depends on.

cube -> profiles -> finetune (with its CV) -> predict -> stocks -> strata (+ design) -> report

Each stage declares its upstream stages, the configuration it reads and the
fingerprints of the external files it reads. Its cache key is a hash of those and of its
upstream keys, so new cores change the keys of ``profiles`` and everything after it, a new
covariate catalog (or date range) those of ``cube`` and everything after it, and nothing else.

A stage writes into a fresh directory. Stages after ``predict`` extend the prediction run
directory; they start from a hard-linked copy of the previous stage's run (every socmap
writer replaces files by renaming, so a linked file is never modified in place).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socmap._io import RASTER_SUFFIXES
from socmap._records import tree_sha256
from socmap.pipeline.config import EMBEDDED_PROFILES, RunSpec

__all__ = ["STAGES", "Stage", "StageContext", "link_tree", "rewrite_paths"]

Log = Callable[[str], object]


@dataclass
class StageContext:
    """What a stage function gets: the configuration, upstream outputs and run options."""

    spec: RunSpec
    upstream: dict[str, Path]
    scheduler: str | None = None
    workers: int | None = None
    progress: bool = True
    log: Log = print
    device: str = "cpu"  # where the maps' network runs (resolved); not part of any key


@dataclass(frozen=True)
class Stage:
    """One step of the chain."""

    name: str
    upstream: tuple[str, ...]
    params: Callable[[RunSpec], dict[str, Any]]
    run: Callable[[StageContext, Path], dict[str, Any]]
    inputs: Callable[[RunSpec], dict[str, str]] = field(default=lambda spec: {})
    enabled: Callable[[RunSpec], bool] = field(default=lambda spec: True)


# ---------------------------------------------------------------------- fingerprints
def _file_input(spec: RunSpec, value: str | None) -> str:
    if value is None:
        return ""
    p = spec.resolve(value)
    if not p.exists():
        from socmap.errors import InputNotFound

        raise InputNotFound(f"{str(p)!r} named in the run configuration does not exist")
    return tree_sha256(p)


def _cube_inputs(spec: RunSpec) -> dict[str, str]:
    from socmap.catalog import catalog_digest, load_catalog
    from socmap.grid import check_grid_size

    cat = load_catalog(_catalog_path(spec))
    grid = _grid(spec)
    check_grid_size(grid)
    out = {"catalog": catalog_digest(cat), "grid": str(grid.to_dict())}
    for cov in cat.covariates:
        if not cov.is_earth_engine:  # an EE layer is pinned by its catalog entry
            out[f"source:{cov.name}"] = tree_sha256(cov.resolve_source(cat.base_dir))
    return out


def _profiles_inputs(spec: RunSpec) -> dict[str, str]:
    from socmap.errors import ConfigError
    from socmap.profiles import check_qc_names

    check_qc_names(spec.profiles.accept_qc, "profiles.accept_qc", ConfigError)
    if spec.profiles.path in EMBEDDED_PROFILES:
        from socmap.catalog import embedded_data_dir

        return {"profiles": tree_sha256(embedded_data_dir() / spec.profiles.path)}
    digest = {"profiles": _file_input(spec, spec.profiles.path)}
    from socmap.extraction import require_sites_on_grid

    # cores that miss the region would fail only after the cube is built (or pulled)
    table = _read_profiles(spec)
    require_sites_on_grid(table, _grid(spec), "run's grid")
    # and so would a table without SOC, or one the profiles stage's QC stops
    import pandas as pd

    if not pd.to_numeric(table["soc_g_kg"], errors="coerce").notna().any():
        raise ConfigError(
            f"profiles.path {spec.profiles.path!r} has no soc_g_kg value in its {len(table)} "
            "rows; map your SOC column with profiles.mapping: {soc_g_kg: YOUR_COLUMN}"
        )
    from socmap.errors import ProfileValidationError
    from socmap.profiles import qc_profiles

    try:
        qc_profiles(table).require(tuple(spec.profiles.accept_qc))
    except ProfileValidationError as exc:  # its remedies name the options of the commands
        raise ProfileValidationError(
            f"{exc} (in the run configuration: profiles.accept_qc: [CHECK, ...], "
            "profiles.soc_units)"
        ) from None
    return digest


def _bundle_path(spec: RunSpec) -> Path:
    """Resolve the user's bundle folder, else a shipped bundle of that name, else fail clearly."""
    from socmap.catalog import embedded_data_dir

    p = spec.resolve(spec.model.bundle)
    if p.exists():
        return p
    shipped = embedded_data_dir() / "bundles"
    if (shipped / spec.model.bundle / "model.json").is_file():
        return shipped / spec.model.bundle
    from socmap.errors import InputNotFound

    names = sorted(d.name for d in shipped.iterdir() if (d / "model.json").is_file())
    raise InputNotFound(
        f"model.bundle {spec.model.bundle!r}: {str(p)!r} does not exist and no bundle shipped "
        f"with socmap has that name ({names!r}); fix the path in the run configuration"
    )


def _bundle_inputs(spec: RunSpec) -> dict[str, str]:
    from socmap.model.bundle import load_bundle

    path = _bundle_path(spec)
    load_bundle(path)  # a broken bundle fails now, not after the cube is built or pulled
    return {"bundle": tree_sha256(path)}


def _catalog_path(spec: RunSpec) -> str | Path:
    p = spec.resolve(spec.cube.catalog)
    return p if p.exists() else spec.cube.catalog


def _grid(spec: RunSpec) -> Any:
    from socmap.catalog import GridSpec, load_catalog, load_grid

    if isinstance(spec.region, GridSpec):
        return spec.region.to_grid()
    if spec.region is not None:
        p = spec.resolve(spec.region)
        return load_grid(p if p.exists() else spec.region)
    cat = load_catalog(_catalog_path(spec))
    if cat.grid is None:
        from socmap.errors import ConfigError

        raise ConfigError(
            f"run {spec.name!r} has no region and catalog {cat.name!r} has no grid; add "
            "region: NAME or region: {crs, bbox, resolution} to the run configuration"
        )
    return cat.grid.to_grid()


def link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` as hard links (a real copy across file systems)."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link, symlinks=True)


#: Files whose text may cite paths (provenance, metadata, reports); Zarr chunks are binary.
TEXT_SUFFIXES = (".json", ".html", ".md", ".csv", ".yaml", ".yml", ".txt", ".xml", ".geojson")
_REWRITE_MAX_BYTES = 8 * 1024 * 1024


def rewrite_paths(root: Path, mapping: dict[str, str]) -> int:
    """Replace path prefixes in the text files under ``root``; return how many changed.

    Stages write into a temporary folder and the runner renames it, and a published version
    links cached outputs into ``runs/<version>``: provenance written on the way would cite
    paths that no longer exist. Each changed file is written anew (a hard link to a cached
    file is broken, never edited through).

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.json").write_text('{"run": "/tmp/.tmp-1/run"}')
    >>> rewrite_paths(d, {"/tmp/.tmp-1": "/srv/final"}), (d / "a.json").read_text()
    (1, '{"run": "/srv/final/run"}')
    """
    # Longest first: a path that holds another is replaced whole.
    pairs = sorted(((k, v) for k, v in mapping.items() if k and k != v), key=lambda kv: -len(kv[0]))
    changed = 0
    for path in root.rglob("*"):
        if (path.suffix.lower() not in TEXT_SUFFIXES or not path.is_file() or path.is_symlink()
                or path.stat().st_size > _REWRITE_MAX_BYTES):  # fmt: skip
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = text
        for old, replacement in pairs:
            new = new.replace(old, replacement)
        if new != text:
            fresh = path.with_name(f".rewrite-{path.name}")
            fresh.write_text(new, encoding="utf-8")
            shutil.copymode(path, fresh)
            fresh.replace(path)
            changed += 1
    return changed


# ---------------------------------------------------------------------- stage bodies
def _cube(ctx: StageContext, out: Path) -> dict[str, Any]:
    from socmap.catalog import load_catalog
    from socmap.cube import build_cube, open_cube

    spec = ctx.spec
    cat = load_catalog(_catalog_path(spec))
    grid = _grid(spec)
    path = out / "cube.zarr"
    if any(c.is_earth_engine for c in cat.covariates):
        from socmap.cube import pull_cube
        from socmap.sources import earthengine as ee_source

        auth = spec.cube.earthengine
        key = spec.resolve(auth.key_file) if auth.key_file else None
        ee_source.initialize(service_account_key=key, project=auth.project, url=auth.url)
        pull_cube(
            cat, grid, path, chunk=spec.cube.chunk, workers=auth.workers,
            max_retries=auth.max_retries, unknown_classes=spec.cube.unknown_classes,
            progress=ctx.progress,
        )  # fmt: skip
    else:
        build_cube(cat, grid, path, chunk=spec.cube.chunk,
                   unknown_classes=spec.cube.unknown_classes, progress=ctx.progress)  # fmt: skip
    cube = open_cube(path)
    return {
        "bands": int(cube.sizes["band"]),
        "shape": [int(cube.sizes["y"]), int(cube.sizes["x"])],
        "nodata_fraction": dict(
            zip(cube.attrs["band_names"], cube.attrs["band_nodata_fraction"], strict=True)
        ),
    }


def _read_profiles(spec: RunSpec) -> Any:
    from socmap.profiles import read_edgeroi, read_profiles

    if spec.profiles.path in EMBEDDED_PROFILES:
        return read_edgeroi()
    from socmap.errors import SocmapError

    p = spec.profiles
    try:
        return read_profiles(
            spec.resolve(p.path), mapping=p.mapping, crs=p.crs, soc_units=p.soc_units
        )
    except SocmapError as exc:  # its remedies name the options of the commands (--soc-units)
        raise type(exc)(
            f"{exc} (in the run configuration: profiles.path, profiles.mapping, profiles.crs, "
            "profiles.soc_units)"
        ) from None


def _profiles(ctx: StageContext, out: Path) -> dict[str, Any]:
    from socmap.depth import harmonise
    from socmap.profiles import qc_profiles, write_qc
    from socmap.report.figures import plot_spline_fits

    spec = ctx.spec
    profiles = _read_profiles(spec)
    report = qc_profiles(profiles)
    write_qc(report, out / "qc")
    accepted = report.require(spec.profiles.accept_qc)  # stop before the model stages
    harmonised = harmonise(profiles, spec.model.depths, value_cols=("soc_g_kg",))
    profiles.to_parquet(out / "profiles.parquet")
    harmonised.table.to_parquet(out / "harmonised.parquet")
    harmonised.sites.to_parquet(out / "harmonised_sites.parquet")
    harmonised.horizons.to_parquet(out / "harmonised_horizons.parquet")
    plot_spline_fits(profiles, harmonised.table, out / "figures" / "spline_fits.png")
    return {
        "sites": int(profiles["site_id"].nunique()),
        "horizons": len(profiles),
        "horizons_with_soc": int(profiles["soc_g_kg"].notna().sum()),
        "qc_flags": len(report.flags),
        "qc_accepted": accepted,
        "harmonised": {k: int(v) for k, v in harmonised.summary().items()},
    }


def _finetune(ctx: StageContext, out: Path) -> dict[str, Any]:
    import pandas as pd

    from socmap.cube import open_cube
    from socmap.depth import Harmonised
    from socmap.model.finetune import finetune_bundle
    from socmap.training import regional_training_table

    m = ctx.spec.model
    up = ctx.upstream["profiles"]
    profiles = pd.read_parquet(up / "profiles.parquet")
    parts = [up / f"harmonised{s}.parquet" for s in ("", "_sites", "_horizons")]
    # the profiles stage's splines, not fitted again (a stage cached by an older socmap
    # lacks the sites and horizons: then they are)
    harmonised = Harmonised(*map(pd.read_parquet, parts)) if all(map(Path.is_file, parts)) else None
    cube = open_cube(ctx.upstream["cube"] / "cube.zarr")
    data = regional_training_table(
        profiles, cube, depths=m.depths, max_depth_cm=m.max_depth_cm,
        accept_qc=ctx.spec.profiles.accept_qc, harmonised=harmonised,
    )  # fmt: skip
    _training_outputs(data.table, cube, out / "training")
    tuned = finetune_bundle(
        _bundle_path(ctx.spec), data, out / "bundle", strategy=m.strategy, depth_set=m.depths,
        block_size=f"{m.block_size_m}m", cv_folds=m.cv_folds, seed=m.seed, n_jobs=m.jobs,
        progress=ctx.progress,
    )  # fmt: skip
    metrics: dict[str, Any] = {
        "strategy": tuned.strategy,
        "aoa_threshold": float(tuned.aoa.threshold_),
    }
    if tuned.cv is not None:
        pooled = tuned.cv.metrics[tuned.cv.metrics["depth"] == "all"]
        metrics["cv"] = {
            f"all:{m}": float(v) for m, v in zip(pooled["metric"], pooled["value"], strict=True)
        }
    return metrics


def _training_outputs(table: Any, cube: Any, folder: Path) -> None:
    """Write the training table the model sees, and the cube's bands with its sites."""
    from socmap.extraction import write_table
    from socmap.report.figures import plot_cube_bands

    folder.mkdir(parents=True)
    write_table(table, folder / "training_table.parquet")
    plot_cube_bands(cube, folder / "cube_bands.png", sites=table.drop_duplicates("site_id"))


def _predict(ctx: StageContext, out: Path) -> dict[str, Any]:
    from socmap.predict import predict_cube

    p = ctx.spec.predict
    run = predict_cube(
        ctx.upstream["finetune"] / "bundle", ctx.upstream["cube"] / "cube.zarr", out / "run",
        passes=p.passes, seed=p.seed, batch_size=p.batch_size, scheduler=ctx.scheduler,
        workers=ctx.workers, progress=ctx.progress, device=ctx.device,
    )  # fmt: skip
    return {k: v for k, v in run.summary.items() if isinstance(v, int | float | str)}


def _number_or_name(value: str | float) -> str | float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _stocks(ctx: StageContext, out: Path) -> dict[str, Any]:
    from socmap.stocks import read_stratum_bd, stocks_for_run

    s = ctx.spec.stocks
    link_tree(ctx.upstream["predict"] / "run", out / "run")
    strata, default = read_stratum_bd(ctx.spec.resolve(s.bd_table)) if s.bd_table else (None, None)
    res = stocks_for_run(
        out / "run", bd=_number_or_name(s.bd), bd_sd=s.bd_sd, cf=_number_or_name(s.cf),
        cf_sd=s.cf_sd, bd_strata=strata, bd_default=default, scheduler=ctx.scheduler,
        workers=ctx.workers, overwrite=True, progress=ctx.progress, device=ctx.device,
    )  # fmt: skip
    return {"stocks": res.describe()}


def _strata(ctx: StageContext, out: Path) -> dict[str, Any]:
    import pandas as pd

    from socmap.design import design_for_run
    from socmap.strata import StrataConfig, strata_for_run

    spec = ctx.spec
    assert spec.strata is not None
    st = spec.strata
    link_tree(ctx.upstream["stocks"] / "run", out / "run")
    cores = pd.read_parquet(ctx.upstream["profiles"] / "harmonised.parquet")
    source = spec.resolve(st.source)
    strata_source: str | Path = source if source.exists() else st.source
    res = strata_for_run(
        out / "run", strata_source, field=st.field, cores=cores,
        config=StrataConfig(
            target_relative_error=st.target_relative_error,
            conservative_confidence=st.conservative, min_cores=st.min_cores,
        ),
        scheduler=ctx.scheduler, workers=ctx.workers, progress=ctx.progress, device=ctx.device,
    )  # fmt: skip
    deepest = res.table[res.table["layer"] == res.table["layer"].iloc[-1]]
    metrics: dict[str, Any] = {
        "layer": str(deepest["layer"].iloc[0]),
        "strata": len(deepest),
        "area_ha": float(deepest["area_ha"].sum()),
        "total_t_co2e": float(deepest["total_t_co2e"].sum()),
        "conservative_t_co2e": float(deepest["conservative_t_co2e"].sum()),
        "strata_short_of_cores": int((~deepest["min_cores_ok"].astype(bool)).sum()),
        "strata_short_of_precision": int((~deepest["precision_ok"].astype(bool)).sum()),
    }
    if spec.design is not None:
        sites, _, _ = design_for_run(
            out / "run", strata_source, spec.design.budget, out / "run" / "design",
            field=st.field, min_spacing=spec.design.min_spacing_m, cores=cores,
            seed=spec.model.seed,
        )  # fmt: skip
        metrics["design_sites"] = len(sites)
    return metrics


def _report(ctx: StageContext, out: Path) -> dict[str, Any]:
    from socmap.report.build import build_report

    spec = ctx.spec
    previous = "strata" if "strata" in ctx.upstream else "stocks"
    link_tree(ctx.upstream[previous] / "run", out / "run")
    bench = spec.resolve(spec.report.benchmark) if spec.report.benchmark else None
    paths = build_report(
        out / "run",
        title=spec.report.title or f"socmap run {spec.name}",
        benchmark=bench,
        qc=ctx.upstream["profiles"] / "qc" / "summary.csv",
    )
    return {"report": str(Path(paths["html"]).relative_to(out))}


def _sections(*names: str) -> Callable[[RunSpec], dict[str, Any]]:
    return lambda spec: {n: spec.step_dict(n) for n in names}


def _catalog_bands(spec: RunSpec, kind: str | None = None) -> list[str]:
    """Bands of the run's cube catalog (of one ``kind`` when given)."""
    from socmap.catalog import load_catalog

    covariates = load_catalog(_catalog_path(spec)).covariates
    return [c.name for c in covariates if kind is None or c.kind == kind]


def _strata_inputs(spec: RunSpec) -> dict[str, str]:
    assert spec.strata is not None
    p = spec.resolve(spec.strata.source)
    if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES:
        from socmap.errors import ConfigError
        from socmap.sources.local import raster_has_values

        if not raster_has_values(p):  # once refused at the strata stage, after the map
            raise ConfigError(
                f"strata.source {str(p)!r} holds no stratum (every pixel is nodata); give a "
                "stratum raster with class values, a polygon file or a categorical band"
            )
    if p.exists():
        return {"strata": tree_sha256(p)}
    bands = _catalog_bands(spec, "categorical")
    if spec.strata.source not in bands:
        from socmap.errors import ConfigError

        raise ConfigError(
            f"strata.source {spec.strata.source!r} is neither a file ({str(p)!r} does not "
            f"exist) nor a categorical band of the cube ({bands!r}); give a polygon file, a "
            "stratum raster or one of those bands"
        )
    return {"strata": f"band:{spec.strata.source}"}


def _stocks_inputs(spec: RunSpec) -> dict[str, str]:
    """Digest the BD table; refuse a BD or CF band the cube will not have."""
    named = {"stocks.bd": spec.stocks.bd, "stocks.cf": spec.stocks.cf}
    bands_named = {
        option: str(value).removeprefix("strata:")
        for option, value in named.items()
        if isinstance(_number_or_name(value), str) and value not in ("auto", "ptf")
    }
    bands = _catalog_bands(spec) if bands_named else []  # read the catalog once, if at all
    for option, band in bands_named.items():
        value = named[option]
        if band not in bands:
            from socmap.errors import BandMismatch

            raise BandMismatch(
                f"{option} {value!r} names a band the cube will not have (bands {bands!r}); "
                "give one of them, 'auto', 'ptf' or a number"
            )
    if str(spec.stocks.bd).startswith("strata:"):  # as `socmap stocks` refuses it, but first
        classes = _catalog_bands(spec, "categorical")
        if bands_named["stocks.bd"] not in classes:
            from socmap.errors import ConfigError

            raise ConfigError(
                f"stocks.bd {spec.stocks.bd!r} names a continuous band, not strata; name a "
                f"categorical band whose class codes bd_table lists ({classes!r})"
            )
    from socmap.errors import SocmapError
    from socmap.stocks._bulk_density import read_stratum_bd
    from socmap.stocks._options import _check_bd_spread, _check_cf_spread

    s = spec.stocks
    try:  # as `socmap stocks` refuses them (once passed --plan, to fail after predict)
        _check_bd_spread(_number_or_name(s.bd), s.bd_sd)
        _check_cf_spread(_number_or_name(s.cf), s.cf_sd)
        if s.bd_table is not None and spec.resolve(s.bd_table).is_file():
            read_stratum_bd(spec.resolve(s.bd_table))
    except SocmapError as exc:  # its remedies name the options of `socmap stocks`
        raise type(exc)(
            f"{exc} (in the run configuration: stocks.bd, stocks.bd_sd, stocks.cf, stocks.cf_sd, "
            "stocks.bd_table)"
        ) from None
    return {"bd_table": _file_input(spec, spec.stocks.bd_table)}


def _report_inputs(spec: RunSpec) -> dict[str, str]:
    """Fingerprint the benchmark folder, checked before anything runs.

    Once a missing one failed the report stage at the end of the chain, after every other stage.
    """
    if spec.report.benchmark is None:
        return {}
    folder = spec.resolve(spec.report.benchmark)
    if folder.exists() and not (folder / "summary.csv").is_file():
        from socmap.errors import ConfigError

        raise ConfigError(
            f"report.benchmark {str(folder)!r} holds no summary.csv; it takes the folder that "
            "`socmap benchmark transfer -o DIR` writes"
        )
    return {"benchmark": _file_input(spec, spec.report.benchmark)}


STAGES: tuple[Stage, ...] = (
    Stage("cube", (), _sections("region", "cube"), _cube, _cube_inputs),
    Stage(
        "profiles",
        (),
        lambda spec: {**_sections("profiles")(spec), "depths": spec.model.depths},
        _profiles,
        _profiles_inputs,
    ),
    Stage(
        "finetune",
        ("cube", "profiles"),
        _sections("model"),
        _finetune,
        _bundle_inputs,
    ),
    Stage("predict", ("finetune", "cube"), _sections("predict"), _predict),
    Stage(
        "stocks",
        ("predict",),
        _sections("stocks"),
        _stocks,
        _stocks_inputs,
    ),
    Stage(
        "strata",
        ("stocks", "profiles"),
        _sections("strata", "design"),
        _strata,
        _strata_inputs,
        enabled=lambda spec: spec.strata is not None,
    ),
    Stage(
        "report",
        ("strata", "stocks", "profiles"),
        _sections("report", "name"),
        _report,
        _report_inputs,
    ),
)

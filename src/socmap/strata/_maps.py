"""Stratum totals of a prediction run: whole-map stock draws summed per stratum, tile by tile.

``socmap strata RUN --strata STRATA`` rasterises the strata onto the run's grid
(``strata_codes.zarr``: one int32 code per pixel, -1 outside every stratum), then runs one
task per tile that regenerates the tile's joint stock draws (the same draws as ``socmap
stocks``: same seed, same counter-based residuals) and adds up, per stratum and draw, stock x
pixel area, with pixel areas taken in an equal-area projection. The tile sums go into the
tile's completion record, so an interrupted pass resumes. Summing the tiles gives each
stratum's draws of total stock; divided by its mapped area they are draws of its mean stock,
which :func:`socmap.strata.stratum_table` turns into the reported table.

Pixels inside a stratum without a prediction (nodata covariates) are not dropped: their
area is reported per stratum as ``unmapped_area_ha`` and the mean applies to the mapped
area only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap._io import VECTOR_SUFFIXES, atomic_path
from socmap._records import tree_sha256
from socmap.errors import BandMismatch, ConfigError, InputNotFound
from socmap.grid import Grid, Window
from socmap.predict._engine import TileModel, encode_block, resolve_device
from socmap.predict._run import LayerKind, PredictionRun, compute_layers, open_run
from socmap.stocks._maps import layer_draws
from socmap.strata._table import StrataConfig, core_stocks, project_table, stratum_table
from socmap.units import CO2_PER_C

__all__ = [
    "STRATA",
    "StrataResult",
    "core_table",
    "cores_with_strata",
    "rasterise_strata",
    "strata_for_run",
    "stratum_block",
]

STRATA_DIR = "strata"
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img")

APPROXIMATION = (
    "Draws are whole-map realisations of the network (one set of dropout masks per draw), so "
    "its uncertainty is fully correlated across pixels; the residual (aleatoric) noise and "
    "the bulk-density residuals are drawn independently per pixel, so they average out over "
    "a stratum. Spatial autocorrelation of those residuals is ignored: on that account the SE "
    "is a lower bound."
)


@dataclass
class StrataResult:
    """What :func:`strata_for_run` wrote: the table, its CSV and its metadata."""

    run: PredictionRun
    table: pd.DataFrame
    path: Path
    metadata: dict[str, Any]


# ---------------------------------------------------------------------- strata raster
def rasterise_strata(
    grid: Grid, source: str | Path, *, field: str = "stratum", cube: Any = None
) -> tuple[np.ndarray, list[str]]:
    """Stratum codes on ``grid`` (int32, -1 outside every stratum) and the code labels.

    ``source`` is a polygon file (GeoPackage, GeoJSON, shapefile; ``field`` names the
    stratum column; polygons are burnt at pixel centres), a raster file (resampled with
    nearest neighbour; its values are the strata), or the name of a cube band.
    """
    path = Path(str(source))
    if path.suffix.lower() in VECTOR_SUFFIXES:
        return _from_polygons(grid, path, field)
    if path.suffix.lower() in RASTER_SUFFIXES:
        from socmap.sources.local import read_raster

        return _codes_from_values(read_raster(path, grid, "nearest"))
    names = [] if cube is None else [str(b) for b in cube.band.values]
    if str(source) not in names:
        raise BandMismatch(
            f"strata {str(source)!r} is neither a polygon file ({', '.join(VECTOR_SUFFIXES)}), "
            f"a raster ({', '.join(RASTER_SUFFIXES)}) nor a cube band ({names!r})"
        )
    codes, labels = _codes_from_values(
        np.asarray(cube.sel(band=str(source)).values, dtype=np.float64)
    )
    return codes, _class_names(cube, str(source), labels)


def _class_names(cube: Any, band: str, labels: list[str]) -> list[str]:
    """Label strata of a categorical cube band by their class names (codes otherwise)."""
    classes = cube.attrs.get("band_classes")
    names = [str(b) for b in cube.band.values]
    table = classes[names.index(band)] if isinstance(classes, list) else None
    if not isinstance(table, dict):
        return labels
    named = [str(table.get(code, code)) for code in labels]
    if len(set(named)) < len(named):  # keep them unique
        named = [f"{code} {name}" for code, name in zip(labels, named, strict=True)]
    return named


def _codes_from_values(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    finite = np.isfinite(values)
    uniq = np.unique(values[finite])
    codes = np.full(values.shape, -1, dtype=np.int32)
    codes[finite] = np.searchsorted(uniq, values[finite]).astype(np.int32)
    return codes, [f"{v:g}" for v in uniq]


def _from_polygons(grid: Grid, path: Path, field: str) -> tuple[np.ndarray, list[str]]:
    import geopandas as gpd
    from rasterio.features import rasterize

    if not path.exists():
        raise InputNotFound(f"stratum polygons {str(path)!r} do not exist")
    try:
        frame = gpd.read_file(path)
    except Exception as exc:  # pyogrio/GDAL errors: corrupt or not a vector file
        raise ConfigError(
            f"cannot read stratum polygons {str(path)!r} ({type(exc).__name__}: {exc}); check "
            "that it opens in QGIS or ogrinfo, or export it again as GeoPackage"
        ) from exc
    if field not in frame.columns:
        raise ConfigError(
            f"stratum polygons {str(path)!r} lack the column {field!r}; pick one of "
            f"{[c for c in frame.columns if c != 'geometry']!r} (CLI: --field)"
        )
    if frame.crs is None:
        raise ConfigError(f"stratum polygons {str(path)!r} have no CRS; set one and retry")
    shaped = frame.geometry.notna() & ~frame.geometry.is_empty
    named = frame[field].notna()
    if not (shaped & named).any():
        raise ConfigError(
            f"stratum polygons {str(path)!r} have no feature with both a geometry and a "
            f"{field!r} value ({len(frame)} features); check the file and --field"
        )
    unnamed = np.flatnonzero((shaped & ~named).to_numpy())
    if len(unnamed):  # their area would silently belong to no stratum
        raise ConfigError(
            f"{len(unnamed)} features of {str(path)!r} have a geometry but no {field!r} value "
            f"(feature rows {unnamed[:5].tolist()!r}); give each a stratum or delete it"
        )
    # A named feature without geometry keeps its label: it is then reported as a stratum
    # without pixels, not dropped.
    labels = sorted({str(v) for v in frame.loc[named, field]})
    file_crs = frame.crs.to_string()
    frame = frame.loc[shaped & named].to_crs(grid.crs)
    code_of = {lab: i for i, lab in enumerate(labels)}
    shapes = [(g, code_of[str(v)]) for g, v in zip(frame.geometry, frame[field], strict=True)]
    codes = rasterize(
        shapes, out_shape=grid.shape, transform=grid.transform, fill=-1, dtype="int32"
    )
    if not (codes >= 0).any():
        left, bottom, right, top = (float(v) for v in frame.total_bounds)
        raise ConfigError(
            f"no stratum polygon of {str(path)!r} covers a pixel centre of the map: the "
            f"polygons span x {left:.6g}..{right:.6g}, y {bottom:.6g}..{top:.6g} in the map's "
            f"CRS, the map x {grid.bounds[0]:.6g}..{grid.bounds[2]:.6g}, y "
            f"{grid.bounds[1]:.6g}..{grid.bounds[3]:.6g}; check the file's CRS ({file_crs}: "
            "is it the one the coordinates are in?) and that it overlaps the mapped area"
        )
    return codes, labels


def _write_codes(path: Path, codes: np.ndarray, chunk: int) -> None:
    import zarr

    with atomic_path(path, overwrite=True) as tmp:
        arr = zarr.create_array(
            store=str(tmp),
            shape=codes.shape,
            chunks=(min(chunk, codes.shape[0]), min(chunk, codes.shape[1])),
            dtype="int32",
            fill_value=-1,
            zarr_format=3,
        )
        arr[...] = codes


# ---------------------------------------------------------------------- per tile
def stratum_block(
    tm: TileModel,
    block: np.ndarray,
    names: list[str],
    job: Any,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Per-stratum sums over one tile of stock draws x pixel area (Mg C), and the areas."""
    import zarr

    window = Window(job.row0, job.row1, job.col0, job.col1)
    codes = np.asarray(
        zarr.open_array(store=options["codes"], mode="r")[window.slices[0], window.slices[1]]
    ).ravel()
    area = Grid.from_dict(json.loads(job.grid)).window(window).pixel_areas_m2(
        tuple(options["centre"])
    ).ravel() / 1e4  # fmt: skip
    enc = encode_block(tm, block, names)
    present = [int(c) for c in np.unique(codes) if c >= 0]
    sums: dict[int, np.ndarray] = {}
    for sel, layers in layer_draws(tm, enc, block, names, job, options):
        here = codes[sel]
        weighted = layers * area[sel][None, None, :]
        for c in present:
            pick = here == c
            if pick.any():
                part = weighted[:, :, pick].sum(axis=2, dtype=np.float64)
                sums[c] = part if c not in sums else sums[c] + part
    strata = {}
    for c in present:
        inside = codes == c
        strata[str(c)] = {
            "sum_mg_c": sums[c].tolist() if c in sums else None,
            "area_ha": float(area[inside & enc.valid].sum()),
            "unmapped_area_ha": float(area[inside & ~enc.valid].sum()),
            "pixels": int((inside & enc.valid).sum()),
            "unmapped_pixels": int((inside & ~enc.valid).sum()),
        }
    return {
        "strata": strata,
        **enc.counts(),
    }


#: Per-stratum sums of stock draws x area; ``store`` is the stratum-code raster it reads.
STRATA = LayerKind(
    "strata",
    "strata_codes.zarr",
    "tiles_strata",
    "Mg C",
    "stratum stock sums",
    tabular=True,
    block=stratum_block,
)


# ---------------------------------------------------------------------- the run
def strata_for_run(
    run_dir: str | Path,
    strata: str | Path,
    *,
    field: str = "stratum",
    cores: pd.DataFrame | None = None,
    config: StrataConfig | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> StrataResult:
    """Stratum totals with intervals, conservative estimates and compliance flags.

    Parameters
    ----------
    run_dir
        A run with stocks (``socmap stocks``): its BD and coarse-fragment options are the
        ones the draws use.
    strata
        Polygon file, stratum raster or cube band (see :func:`rasterise_strata`).
    field
        Stratum column of a polygon file.
    cores
        Optional harmonised core samples on the run's depth intervals (``site_id, top_cm,
        bottom_cm, soc_g_kg``, ``bd_g_cm3`` where measured, and ``stratum`` or ``x, y,
        crs`` to look the stratum up on the map) for core counts, CV and the additional
        cores needed (:func:`socmap.strata.core_stocks`).
    config
        Reporting rules (:class:`~socmap.strata.StrataConfig`).
    scheduler, workers, progress, device
        As in :func:`~socmap.predict.predict_cube`.

    Returns
    -------
    StrataResult
        The table (also ``RUN/strata/strata.csv``) and its metadata (``strata.json``).

    Raises
    ------
    ConfigError
        The run has no stocks yet.
    """
    from socmap.cube import open_cube

    where = resolve_device(device)
    run = open_run(run_dir)
    options = run.stocks.get("options")
    if run.stocks.get("status") not in ("computed", "complete") or not isinstance(options, dict):
        raise ConfigError(
            f"run {str(run.path)!r} has no stocks yet; run `socmap stocks {run.path}` first "
            "(the stratum totals use its bulk-density options)"
        )
    cfg = config or StrataConfig()
    grid = run.grid
    cube = open_cube(run.config.cube)
    path = Path(str(strata))
    source_id = tree_sha256(path) if path.exists() else f"band:{strata}"
    codes, labels = rasterise_strata(grid, strata, field=field, cube=cube)
    codes_path = run.path / STRATA.store
    strata_options = {
        **options,
        "codes": str(codes_path),
        "centre": list(grid.centre_lonlat),
        "strata_source": str(strata),
        "strata_field": field,
        "strata_sha256": source_id,
        "strata_labels": labels,
    }
    previous = run.strata.get("options") if isinstance(run.strata, dict) else None
    if previous != strata_options or not codes_path.exists():
        import shutil

        shutil.rmtree(run.path / STRATA.records, ignore_errors=True)
        _write_codes(codes_path, codes, run.config.chunk)
    run.strata = {"options": strata_options, "status": "running"}
    run.save()
    layers = list(run.stocks["labels"])
    summary = compute_layers(
        run, STRATA, layers, options=strata_options, scheduler=scheduler, workers=workers,
        progress=progress, device=where,
    )  # fmt: skip
    draws, areas, unmapped = _aggregate(run, labels, len(layers))
    stocks_of_cores = None
    with_strata = None
    if cores is not None:
        with_strata = cores_with_strata(cores, grid, codes, labels)
        stocks_of_cores = core_stocks(
            with_strata,
            [(float(t), float(b)) for t, b in run.config.intervals],
            [(float(t), float(b)) for t, b in options["totals"]],
            cf=float(options["cf"]) if isinstance(options.get("cf"), int | float) else 0.0,
        )
    table = stratum_table(draws, areas, layers, stocks_of_cores, cfg)
    table.insert(3, "unmapped_area_ha", table["stratum"].map(unmapped))
    metadata = _metadata(run, cfg, strata_options, summary)
    # Strata whose polygons hold no pixel centre have no row; they are named, not dropped.
    metadata["strata_without_pixels"] = [lab for lab in labels if lab not in draws]
    out = run.path / STRATA_DIR
    out.mkdir(exist_ok=True)
    with atomic_path(out / "strata.csv", overwrite=True) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "project.csv", overwrite=True) as tmp:
        project_table(draws, areas, layers, cfg).to_csv(tmp, index=False)
    with atomic_path(out / "strata.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(metadata, indent=2))
    cores_path = out / "cores.csv"
    if with_strata is not None and stocks_of_cores is not None:
        with atomic_path(cores_path, overwrite=True) as tmp:
            core_table(with_strata, stocks_of_cores, grid).to_csv(tmp, index=False)
    else:  # cores of an earlier call must not pass for these strata's
        cores_path.unlink(missing_ok=True)
    run.strata.update(status="computed", summary=summary)
    run.save()
    return StrataResult(run=run, table=table, path=out / "strata.csv", metadata=metadata)


def cores_with_strata(
    cores: pd.DataFrame, grid: Grid, codes: np.ndarray, labels: list[str]
) -> pd.DataFrame:
    """Give the cores a ``stratum`` column: their own, or the map's at their location.

    A core's own stratum wins; cores without one (no column, or an empty value) get the
    stratum of the map at their location ("outside strata" off every stratum).
    """
    out = cores.reset_index(drop=True)  # a repeated index would misalign the assignments below
    own = out["stratum"] if "stratum" in out.columns else pd.Series(pd.NA, index=out.index)
    known = own.notna() & (own.astype(str).str.strip() != "")
    out["stratum"] = own.where(known, "outside strata").astype(str)
    if known.all():
        return out
    absent = [c for c in ("x", "y", "crs") if c not in cores.columns]
    if absent:
        raise ConfigError(
            f"{int((~known).sum())} cores have no stratum and lack {absent!r} to find it on "
            "the map; add a stratum column or coordinates"
        )
    from pyproj import Transformer

    for crs, group in out.loc[~known].groupby("crs"):
        to_grid = Transformer.from_crs(str(crs), grid.crs, always_xy=True)
        x, y = to_grid.transform(group["x"].to_numpy(float), group["y"].to_numpy(float))
        row, col = (np.floor(v).astype(int) for v in grid.rowcol(x, y))
        inside = (row >= 0) & (row < grid.height) & (col >= 0) & (col < grid.width)
        code = np.full(len(group), -1)
        code[inside] = codes[row[inside], col[inside]]
        out.loc[group.index, "stratum"] = [labels[c] if c >= 0 else "outside strata" for c in code]
    return out


def core_table(cores: pd.DataFrame, stocks: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """One row per core: its stratum, its location on ``grid`` and its stock per layer.

    ``x, y`` are in the grid's CRS (NaN for a core given without coordinates); the stocks
    (t C/ha) are those the stratum table's core counts and CV use, one ``stock_<layer>``
    column per layer (NaN where the core lacks it).
    """
    from pyproj import Transformer

    first = cores.drop_duplicates("site_id").reset_index(drop=True)
    out = first[["site_id", "stratum"]].copy()
    out["x"] = np.nan
    out["y"] = np.nan
    if {"x", "y", "crs"} <= set(first.columns):
        for crs, group in first.groupby("crs"):
            to_grid = Transformer.from_crs(str(crs), grid.crs, always_xy=True)
            x, y = to_grid.transform(group["x"].to_numpy(float), group["y"].to_numpy(float))
            out.loc[group.index, "x"], out.loc[group.index, "y"] = x, y
    wide = stocks.pivot_table(
        index="site_id", columns="layer", values="stock_t_ha", aggfunc="first", dropna=False
    )
    wide = wide.reindex(columns=list(dict.fromkeys(stocks["layer"])))  # the run's layer order
    wide.columns = [f"stock_{c}" for c in wide.columns]
    return out.merge(wide, left_on="site_id", right_index=True, how="left")


def _aggregate(
    run: PredictionRun, labels: list[str], n_layers: int
) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float]]:
    sums: dict[str, np.ndarray] = {}
    areas: dict[str, float] = {}
    unmapped: dict[str, float] = {}
    for tile in run.grid.tiles(run.config.chunk):
        key = f"{tile.core.row0}_{tile.core.col0}"
        record = json.loads((run.path / STRATA.records / f"{key}.json").read_text())
        for code, part in record["strata"].items():
            label = labels[int(code)]
            areas[label] = areas.get(label, 0.0) + part["area_ha"]
            unmapped[label] = unmapped.get(label, 0.0) + part["unmapped_area_ha"]
            if part["sum_mg_c"] is not None:
                s = np.asarray(part["sum_mg_c"], dtype=np.float64)
                sums[label] = s if label not in sums else sums[label] + s
    draws: dict[str, np.ndarray] = {}
    for label in labels:
        if label in sums and areas.get(label, 0.0) > 0:
            draws[label] = sums[label] / areas[label]
        elif label in areas:
            draws[label] = np.full((run.config.passes, n_layers), np.nan)
    return draws, {k: v for k, v in areas.items() if k in draws}, unmapped


def _metadata(
    run: PredictionRun, cfg: StrataConfig, options: dict[str, Any], summary: dict[str, Any]
) -> dict[str, Any]:
    return {
        "format": "socmap-strata/1",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run": str(run.path),
        "bundle_sha256": run.config.bundle_sha256,
        "draws": run.config.passes,
        "strata_source": options["strata_source"],
        "strata_sha256": options["strata_sha256"],
        "bd": options["bd"],
        "config": cfg.to_dict(),
        "units": {
            "area_ha": "ha, pixel areas in a Lambert azimuthal equal-area projection",
            "mean_t_c_ha": "t C/ha (Mg C/ha), area-weighted mean over the mapped area",
            "total_mg_c": "Mg C = mean x mapped area",
            "total_t_co2e": f"t CO2e = Mg C x 44/12 ({CO2_PER_C:.6f})",
        },
        "formulas": {
            "se": "standard deviation of the draws of the stratum mean",
            "intervals": "percentiles of the draws (90 %: 5-95; 95 %: 2.5-97.5)",
            "relative_error": "95 % interval half-width / mean",
            "conservative": (
                "lower bound of the two-sided interval at conservative_confidence "
                f"({cfg.conservative_confidence:g})"
            ),
            "cores_needed": (
                "smallest n with n >= (t CV / E)^2, t Student's two-sided quantile at "
                "target_confidence with n - 1 degrees of freedom, CV the cores' coefficient of "
                "variation, E the target relative error"
            ),
            "standard": (
                "VM0033 (Verra) stratified estimation: at least min_cores cores per stratum, "
                "target precision as configured"
            ),
        },
        "approximation": APPROXIMATION,
        "summary": summary,
    }

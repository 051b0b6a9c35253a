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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap._io import RASTER_SUFFIXES, VECTOR_SUFFIXES, atomic_path
from socmap._parallel import check_scheduler
from socmap._records import tree_sha256
from socmap.errors import BandMismatch, ConfigError, CRSError, InputNotFound
from socmap.grid import Grid, Window
from socmap.predict._engine import TileModel, encode_block, resolve_device
from socmap.predict._run import LayerKind, PredictionRun, compute_layers, open_run
from socmap.sources.sites import sites_to_grid_crs
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
#: The stratum of a core off every stratum of the map (listed in ``strata/cores.csv``).
OUTSIDE = "outside strata"

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
    if field != "stratum":  # once ignored without a word
        raise ConfigError(
            f"--field {field!r} names a column of a polygon file, and strata {str(source)!r} "
            "is a raster or a cube band, whose values are the strata; drop --field"
        )
    if path.suffix.lower() in RASTER_SUFFIXES:
        from socmap.sources.local import read_raster

        codes, labels = _codes_from_values(
            read_raster(path, grid, "nearest"), f"raster {str(path)!r}"
        )
        return _require_a_stratum(codes, labels, f"strata raster {str(path)!r}", grid)
    names = [] if cube is None else [str(b) for b in cube.band.values]
    if str(source) not in names:
        raise BandMismatch(
            f"strata {str(source)!r} is neither a polygon file ({', '.join(VECTOR_SUFFIXES)}), "
            f"a raster ({', '.join(RASTER_SUFFIXES)}) nor a cube band ({names!r})"
        )
    kinds = cube.attrs.get("band_kind")
    kind = kinds[names.index(str(source))] if isinstance(kinds, list) else None
    if kind == "continuous":  # once one stratum per distinct value: thousands of them
        categorical = [n for n, k in zip(names, kinds, strict=False) if k == "categorical"]
        raise ConfigError(
            f"strata {str(source)!r} is a continuous cube band; strata are classes: give a "
            f"categorical band ({categorical!r}), a raster of class codes or a polygon file"
        )
    codes, labels = _codes_from_values(
        np.asarray(cube.sel(band=str(source)).values, dtype=np.float64), f"band {str(source)!r}"
    )
    _require_a_stratum(codes, labels, f"strata band {str(source)!r}", grid)
    return codes, _class_names(cube, str(source), labels)


def _require_a_stratum(
    codes: np.ndarray, labels: list[str], what: str, grid: Grid
) -> tuple[np.ndarray, list[str]]:
    """Refuse strata with no class at any pixel of the map (once an internal KeyError)."""
    if labels and (codes >= 0).any():
        return codes, labels
    b = grid.bounds
    raise ConfigError(
        f"{what} has no class value at any pixel of the map (x {b[0]:.6g}..{b[2]:.6g}, y "
        f"{b[1]:.6g}..{b[3]:.6g} in {grid.crs}): it is all nodata there, or lies elsewhere; "
        "give strata that cover the mapped area (check the raster's nodata value and CRS)"
    )


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


#: Most strata a raster or a band may hold: more are a continuous layer, not classes.
MAX_STRATA = 1000


def _codes_from_values(values: np.ndarray, what: str) -> tuple[np.ndarray, list[str]]:
    finite = np.isfinite(values)
    uniq = np.unique(values[finite])
    fractional = uniq[uniq != np.round(uniq)]
    if len(fractional) or len(uniq) > MAX_STRATA:
        example = fractional[0] if len(fractional) else uniq[-1]
        raise ConfigError(
            f"strata {what} holds {len(uniq)} distinct values (e.g. {example:g}), so it is a "
            f"continuous layer, not classes (whole-number codes, at most {MAX_STRATA}); "
            "give a raster of class codes, a categorical cube band or a polygon file"
        )
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
    if frame.empty:  # before the column check: an empty GeoJSON has no columns to pick from
        raise _no_features(path, field, 0)
    if field not in frame.columns or field == frame.geometry.name:  # once one WKT per stratum
        raise ConfigError(
            f"stratum polygons {str(path)!r} lack the column {field!r}; pick one of "
            f"{[c for c in frame.columns if c != frame.geometry.name]!r} (CLI: --field)"
        )
    if frame.crs is None:
        raise ConfigError(f"stratum polygons {str(path)!r} have no CRS; set one and retry")
    shaped = frame.geometry.notna() & ~frame.geometry.is_empty
    named = frame[field].notna()
    if not (shaped & named).any():
        raise _no_features(path, field, len(frame))
    unnamed = np.flatnonzero((shaped & ~named).to_numpy())
    if len(unnamed):  # their area would silently belong to no stratum
        raise ConfigError(
            f"{len(unnamed)} features of {str(path)!r} have a geometry but no {field!r} value "
            f"(feature rows {unnamed[:5].tolist()!r}); give each a stratum or delete it"
        )
    kinds = frame.geometry.geom_type.where(shaped)
    flat = np.flatnonzero((shaped & ~kinds.isin(["Polygon", "MultiPolygon"])).to_numpy())
    if len(flat):  # a point or a line burns a pixel or two and would pass for a tiny stratum
        found = sorted(set(kinds.iloc[flat].astype(str)))
        raise ConfigError(
            f"stratum polygons {str(path)!r} hold {', '.join(found)} geometries ({len(flat)} "
            f"features, rows {flat[:5].tolist()!r}); strata must be areas (Polygon or "
            "MultiPolygon): buffer points and lines into polygons or delete them"
        )
    # A named feature without geometry keeps its label: it is then reported as a stratum
    # without pixels, not dropped.
    labels = sorted({str(v) for v in frame.loc[named, field]})
    file_crs = frame.crs.to_string()
    given = frame.loc[shaped & named]
    frame = given.to_crs(grid.crs)
    _require_finite(given, frame, path, grid)
    code_of = {lab: i for i, lab in enumerate(labels)}
    shapes = [(g, code_of[str(v)]) for g, v in zip(frame.geometry, frame[field], strict=True)]
    _require_disjoint(shapes, labels, grid, path)
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


def _no_features(path: Path, field: str, n: int) -> ConfigError:
    """Refuse a polygon file without a usable feature (empty, or none named)."""
    return ConfigError(
        f"stratum polygons {str(path)!r} have no feature with both a geometry and a "
        f"{field!r} value ({n} features); check the file and --field"
    )


def _require_finite(given: Any, mapped: Any, path: Path, grid: Grid) -> None:
    """Refuse polygons that do not reproject to finite coordinates: a wrong CRS label.

    ``given`` are the features in the file's CRS, ``mapped`` the same in the map's.
    """
    bounds = mapped.geometry.bounds.to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(bounds).all(axis=1))
    if not len(bad):
        return
    x, y = given.geometry.iloc[bad[0]].representative_point().coords[0][:2]
    raise ConfigError(
        f"{len(bad)} of {len(given)} stratum polygons of {str(path)!r} have no position in the "
        f"map's CRS {grid.crs}: e.g. the point x {x:.6g}, y {y:.6g} does not exist in the "
        f"file's CRS {given.crs.to_string()}, so that CRS label is probably wrong; assign the "
        "CRS the coordinates are in (QGIS: Layer > Set CRS; or `ogr2ogr -a_srs EPSG:XXXX "
        "out.gpkg in.gpkg`) and retry"
    )


def _require_disjoint(
    shapes: list[tuple[Any, int]], labels: list[str], grid: Grid, path: Path
) -> None:
    """Refuse strata that share pixel centres: the overlap would silently go to one of them.

    Each stratum is burnt on its own, by the rule the stratum map uses (pixel centres), so
    the check sees exactly the pixels whose area would be given to the wrong stratum.
    """
    from rasterio.features import rasterize

    if len({code for _, code in shapes}) < 2:
        return
    owner = np.full(grid.shape, -1, dtype=np.int32)  # the first stratum at each pixel
    area_ha: np.ndarray | None = None
    pairs: dict[tuple[int, int], tuple[int, float]] = {}
    for code in sorted({code for _, code in shapes}):
        mine = [(g, 1) for g, c in shapes if c == code]
        mask = rasterize(mine, out_shape=grid.shape, transform=grid.transform, fill=0,
                         dtype="uint8").astype(bool)  # fmt: skip
        clash = mask & (owner >= 0)
        if clash.any():
            area_ha = grid.pixel_areas_m2() / 1e4 if area_ha is None else area_ha
            for other in np.unique(owner[clash]):
                both = clash & (owner == other)
                pairs[(int(other), code)] = (int(both.sum()), float(area_ha[both].sum()))
        owner[mask & (owner < 0)] = code
    if not pairs:
        return
    (a, b), (n, hectares) = max(pairs.items(), key=lambda item: item[1][0])
    more = f"; {len(pairs)} pairs of strata overlap in all" if len(pairs) > 1 else ""
    raise ConfigError(
        f"strata {labels[a]!r} and {labels[b]!r} of {str(path)!r} overlap on {n} pixels of the "
        f"map ({hectares:.4g} ha{more}), whose area would count in one of them only; make the "
        "polygons disjoint (e.g. cut one by the other: QGIS Vector > Geoprocessing > "
        "Difference) and retry"
    )


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
def _require_core_stocks(
    cores: pd.DataFrame, stocks: pd.DataFrame, intervals: Sequence[Sequence[float]]
) -> None:
    """Refuse --cores of which no core gives a stock (once counted as 0 cores, exit 0)."""
    if len(cores) == 0:
        raise ConfigError(
            "the --cores table has no rows (a header only); give the harmonised core samples "
            "or drop --cores"
        )
    if stocks["stock_t_ha"].notna().any():
        return
    want = [f"{float(t):g}-{float(b):g}cm" for t, b in intervals]
    soc = pd.to_numeric(cores["soc_g_kg"], errors="coerce")
    given = sorted(
        {f"{float(t):g}-{float(b):g}cm" for t, b in zip(cores["top_cm"], cores["bottom_cm"],
                                                          strict=True)}
    )  # fmt: skip
    if soc.notna().sum() == 0:
        why = f"none of its {len(cores)} samples has a soc_g_kg value"
        fix = "fill soc_g_kg (or map your column with `socmap profiles harmonise --map`)"
    else:
        why = f"their depths {given[:6]!r} match none of the run's intervals {want!r}"
        fix = "harmonise them onto the run's depths with `socmap profiles harmonise --depths`"
    n = cores["site_id"].nunique() if "site_id" in cores.columns else len(cores)
    raise ConfigError(f"none of the {n} cores given with --cores has a stock: {why}; {fix}")


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
        The run or its stocks did not finish, or it has no stocks yet; stratum polygons
        that overlap, are not areas or do not reproject (a wrong CRS label); cores that
        cannot be found on the map. Each is refused before anything is written.
    """
    from socmap.cube import open_cube

    check_scheduler(scheduler)  # before anything is written
    where = resolve_device(device)
    run = open_run(run_dir)
    run.require_finished(["stocks"])
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
    stocks_of_cores = None
    with_strata = None
    if cores is not None:  # checked before anything is written: a refusal changes nothing
        cores = numeric_cores(cores, ("top_cm", "bottom_cm", "soc_g_kg", "bd_g_cm3"))
        with_strata = cores_with_strata(cores, grid, codes, labels)
        stocks_of_cores = core_stocks(
            with_strata,
            [(float(t), float(b)) for t, b in run.config.intervals],
            [(float(t), float(b)) for t, b in options["totals"]],
            cf=float(options["cf"]) if isinstance(options.get("cf"), int | float) else 0.0,
        )
        _require_core_stocks(with_strata, stocks_of_cores, run.config.intervals)
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
    table = stratum_table(draws, areas, layers, stocks_of_cores, cfg)
    table.insert(3, "unmapped_area_ha", table["stratum"].map(unmapped))
    metadata = _metadata(run, cfg, strata_options, summary)
    # Strata whose polygons hold no pixel centre have no row; they are named, not dropped.
    metadata["strata_without_pixels"] = [lab for lab in labels if lab not in draws]
    # mapped pixels off every stratum count in no total: counted, not dropped without a word
    metadata["mapped_pixels"], metadata["mapped_pixels_outside_strata"] = _pixels_outside(run)
    if with_strata is not None:  # cores in no stratum are counted, not dropped
        metadata["cores"] = _core_counts(with_strata, labels, draws)
        metadata["cores"]["samples_off_intervals"] = _samples_off(with_strata, run.config.intervals)
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


def numeric_cores(cores: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Return the cores with ``columns`` (those present) as finite-or-empty floats.

    Raises
    ------
    ProfileValidationError
        A cell holds text that is no number (once an internal ValueError), or an infinite
        value (once refused as 'depths match none of the run's intervals').
    """
    from socmap.errors import ProfileValidationError
    from socmap.profiles._schema import _parse_numeric

    out = cores.copy()
    for column in (c for c in columns if c in cores.columns):
        values = _parse_numeric(cores[column], "--cores", column)
        infinite = np.isinf(values.to_numpy(dtype=np.float64))
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            raise ProfileValidationError(
                f"--cores column {column!r} holds an infinite value at row {row} "
                f"({float(values.iloc[row])}; {int(infinite.sum())} of {len(values)} rows); give "
                "finite numbers, or leave the cell empty"
            )
        out[column] = values.to_numpy(dtype=np.float64)
    return out


def cores_with_strata(
    cores: pd.DataFrame, grid: Grid, codes: np.ndarray, labels: list[str]
) -> pd.DataFrame:
    """Give the cores a ``stratum`` column: their own, or the map's at their location.

    A core's own stratum wins; cores without one (no column, or an empty value) get the
    stratum of the map at their location ("outside strata" off every stratum).

    Raises
    ------
    ConfigError
        Cores without a stratum lack coordinates, or none of them lies on the map.
    CRSError
        Their coordinates are no place in their ``crs`` (a wrong label), or it is unknown.
    """
    out = cores.reset_index(drop=True)  # a repeated index would misalign the assignments below
    out = numeric_cores(out, ("x", "y"))
    own = out["stratum"] if "stratum" in out.columns else pd.Series(pd.NA, index=out.index)
    known = own.notna() & (own.astype(str).str.strip() != "")
    out["stratum"] = own.where(known, OUTSIDE).astype(str)
    if known.all():
        return out
    absent = [c for c in ("x", "y", "crs") if c not in cores.columns]
    if absent:
        raise ConfigError(
            f"{int((~known).sum())} cores have no stratum and lack {absent!r} to find it on "
            "the map; add a stratum column or coordinates"
        )
    todo = out.loc[~known]
    todo = todo.assign(site_id=todo["site_id"] if "site_id" in todo.columns else todo.index)
    x, y = sites_to_grid_crs(todo, grid)
    _require_cores_on_map(todo, x, y, grid)
    row, col = grid.rowcol(x, y)
    inside = (row >= 0) & (row < grid.height) & (col >= 0) & (col < grid.width)
    code = np.full(len(todo), -1)
    code[inside] = codes[row[inside].astype(int), col[inside].astype(int)]
    out.loc[todo.index, "stratum"] = [labels[c] if c >= 0 else OUTSIDE for c in code]
    return out


def _require_cores_on_map(cores: pd.DataFrame, x: np.ndarray, y: np.ndarray, grid: Grid) -> None:
    """Refuse cores that cannot be looked up on the map, or none of which lies on it.

    ``cores`` are those without a stratum of their own (``site_id, x, y, crs``), ``x, y``
    their position in the map's CRS.
    """

    def core(i: int) -> str:
        c = cores.iloc[i]
        return f"core {str(c['site_id'])!r} at x {float(c['x']):.6g}, y {float(c['y']):.6g}"

    def count(mask: np.ndarray) -> str:
        return f"{cores.loc[mask, 'site_id'].nunique()} of the {n} cores without a stratum"

    n = cores["site_id"].nunique()
    unplaced = ~(np.isfinite(cores["x"].to_numpy(float)) & np.isfinite(cores["y"].to_numpy(float)))
    if unplaced.any():
        first = str(cores["site_id"].iloc[int(np.flatnonzero(unplaced)[0])])
        raise ConfigError(
            f"{count(unplaced)} have no x, y to find their stratum on the map (e.g. core "
            f"{first!r}); give them coordinates, or a stratum column, in the --cores table"
        )
    unmapped = ~(np.isfinite(x) & np.isfinite(y))
    if unmapped.any():  # finite coordinates that are no place in their CRS: a wrong label
        i = int(np.flatnonzero(unmapped)[0])
        raise CRSError(
            f"{count(unmapped)} have no position in the map's CRS {grid.crs}: e.g. {core(i)} is "
            f"no place in its crs {cores['crs'].iloc[i]!s}, so that label is probably wrong "
            "(metres labelled EPSG:4326?); set the crs column of the --cores table to the CRS "
            "the x, y are in"
        )
    row, col = grid.rowcol(x, y)
    if not ((row >= 0) & (row < grid.height) & (col >= 0) & (col < grid.width)).any():
        b = grid.bounds
        raise ConfigError(
            f"none of the {n} cores without a stratum lies on the map (x {b[0]:.6g}..{b[2]:.6g}"
            f", y {b[1]:.6g}..{b[3]:.6g} in {grid.crs}): e.g. {core(0)} in "
            f"{cores['crs'].iloc[0]!s} lies at x {x[0]:.6g}, y {y[0]:.6g} there; check the "
            "x, y and crs columns of the --cores table (is crs the CRS the coordinates are "
            "in? are x and y swapped?) or give each core a stratum column"
        )


def _core_counts(cores: pd.DataFrame, labels: list[str], rows: Any) -> dict[str, int | list[str]]:
    """How many cores there are, and how many count in no stratum's row, and why.

    ``outside`` lie off every stratum of the map; ``unknown_strata`` name, in their own
    stratum column, a stratum the map does not have (listed as ``unknown_names``);
    ``without_pixels`` are in a stratum that covers no pixel centre (``rows`` are the strata
    that have a row).
    """
    per_core = cores.drop_duplicates("site_id") if "site_id" in cores.columns else cores
    stratum = per_core["stratum"].astype(str)
    outside = stratum == OUTSIDE
    unknown = ~outside & ~stratum.isin(labels)
    return {
        "total": len(per_core),
        "outside": int(outside.sum()),
        "unknown_strata": int(unknown.sum()),
        "unknown_names": sorted(set(stratum[unknown])),
        "without_pixels": int((stratum.isin(labels) & ~stratum.isin(list(rows))).sum()),
    }


def _samples_off(cores: pd.DataFrame, intervals: Sequence[Sequence[float]]) -> list[Any]:
    """Count the core samples on depths that are none of the run's intervals, and list those.

    Returns ``[count, depths]``: such samples give no stock (a core's stock per interval is
    its sample of exactly that interval), so they are counted, not ignored without a word.
    """
    want = {(float(t), float(b)) for t, b in intervals}
    tops, bottoms = cores["top_cm"].to_numpy(float), cores["bottom_cm"].to_numpy(float)
    off = [(t, b) for t, b in zip(tops, bottoms, strict=True) if (t, b) not in want]
    return [len(off), sorted({f"{t:g}-{b:g}cm" for t, b in off})[:6]]


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


def _pixels_outside(run: PredictionRun) -> tuple[int, int]:
    """Count the mapped pixels of the run, and those of them in no stratum."""
    mapped = inside = 0
    for tile in run.grid.tiles(run.config.chunk):
        key = f"{tile.core.row0}_{tile.core.col0}"
        record = json.loads((run.path / STRATA.records / f"{key}.json").read_text())
        mapped += int(record.get("n_valid", 0))
        inside += sum(int(part.get("pixels", 0)) for part in record["strata"].values())
    return mapped, mapped - inside


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

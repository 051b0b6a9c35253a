"""Carbon-stock maps of a prediction run, with joint Monte Carlo uncertainty (a run-engine product).

``socmap stocks RUN`` streams the run's cube through the same network again, tile by tile,
and regenerates the run's Monte Carlo SOC realisations exactly (same dropout masks, same
counter-based aleatoric noise; see :mod:`socmap.predict._engine`); in the process that
mapped SOC (``socmap run``, the demo, a notebook) it reuses that map's passes where they fit
in memory (:func:`~socmap.predict._engine.run_passes`). Each realisation holds all
depth intervals of one sampled network; it is combined with one draw of bulk density and of
coarse fragments (:func:`socmap.stocks.stock_draws`), so the correlations between SOC and BD
and between layers are kept, then summed into cumulative totals draw by draw
(:func:`socmap.stocks.cumulative_draws`) and summarised per pixel. BD and CF residuals are
counter-based normals of (seed, pixel, draw), so stock maps do not depend on tiling either.

Bulk density, in order of preference: a BD band of the cube (g/cm³, or SoilGrids ``bdod``
in cg/cm³), the WoSIS 2017 pedotransfer function (SOC and depth), or a constant with an sd.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from socmap._parallel import check_scheduler
from socmap.errors import BandMismatch, ConfigError, OutputExists, UnitsError
from socmap.predict._engine import (
    STATS,
    EncodedBlock,
    TileModel,
    counter_normal,
    draws_from,
    encode_block,
    run_passes,
)
from socmap.predict._export import export_layers, replace_exports
from socmap.predict._run import LayerKind, PredictionRun, compute_layers, open_run
from socmap.stocks._bulk_density import BandBD, PedotransferBD, StratumBD
from socmap.stocks._draws import cumulative_draws, stock_draws, summarise
from socmap.stocks._formula import from_soilgrids
from socmap.stocks._intervals import default_totals
from socmap.stocks._options import check_stock_options
from socmap.units import BD_RANGE

__all__ = [
    "STOCK",
    "StockRun",
    "check_stock_inputs",
    "export_stocks",
    "layer_draws",
    "stock_block",
    "stocks_for_run",
]

_BD_SEED_OFFSET = 7_919  # separates the BD and CF residual streams from the SOC noise
_CF_SEED_OFFSET = 104_729


@dataclass
class StockRun:
    """What :func:`stocks_for_run` wrote."""

    run: PredictionRun
    labels: list[str]
    options: dict[str, Any]
    summary: dict[str, Any]

    def describe(self) -> str:
        """One line: the layers, the BD source and the mean cumulative stocks."""
        ds = self.run.open(STOCK.store)
        parts = []
        for label in self.labels:
            if label in self.options.get("total_labels", []):
                mean = float(ds["stock"].sel(stat="mean", depth=label).mean(skipna=True))
                parts.append(f"{label} mean {mean:.1f} t C/ha")
        unused = self.options.get("bd_strata_unused")
        note = (
            f"; BD table codes {unused!r} are not classes of the stratum band (not used)"
            if unused
            else ""
        )
        return (
            f"{len(self.labels)} layers (intervals and totals), BD from {self.options['bd']}; "
            + ", ".join(parts)
            + note
        )


def _band(option: Any, block: np.ndarray, names: list[str]) -> np.ndarray | None:
    """Pixel values of a ``band:NAME`` or ``strata:NAME`` option; None for a constant or PTF."""
    if isinstance(option, str) and option.startswith(("band:", "strata:")):
        return block[names.index(option.split(":", 1)[1])].astype(np.float64).ravel()
    return None


def _bd_source(options: dict[str, Any], values: np.ndarray | None) -> Any:
    if options["bd"] == "ptf":
        return PedotransferBD()
    if options["bd"].startswith("strata:"):
        table: dict[Hashable, tuple[float, float]] = {
            float(k): (float(m), float(sd)) for k, (m, sd) in options["bd_strata"].items()
        }
        default = options.get("bd_default")
        return StratumBD(table, None if default is None else (default[0], default[1]))
    if values is not None:
        if options.get("bd_units") == "cg/cm3":
            values = from_soilgrids(values, "bdod")
        return BandBD(values, options.get("bd_sd", 0.0))
    return BandBD(float(options["bd"]), options.get("bd_sd", 0.0))


def layer_draws(
    tm: TileModel,
    enc: EncodedBlock,
    block: np.ndarray,
    names: list[str],
    job: Any,
    options: dict[str, Any],
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Joint stock draws of a tile's valid pixels (``enc``, from ``block``), batch by batch.

    Yields ``(pixels, draws)``: flat indices of the batch's pixels in the tile, and their
    stocks ``(T, intervals + totals, n)`` in t/ha. Draw ``t`` of every pixel belongs to the
    same whole-map realisation (pass ``t``'s dropout masks; counter-based residuals), so
    sums over pixels are draws of areal totals.
    """
    _, h, w = block.shape
    totals = [tuple(t) for t in options["totals"]]
    width = int(json.loads(job.grid)["shape"][1])
    rr, cc = np.divmod(np.arange(h * w), w)
    ids = ((job.row0 + rr) * width + (job.col0 + cc)).astype(np.uint64)
    bd_band = _band(options["bd"], block, names)
    cf_band = _band(options.get("cf"), block, names)
    if cf_band is not None:
        cf_band = np.nan_to_num(cf_band)  # a pixel without CF data has no coarse fragments
    where = enc.where
    for start in range(0, len(where), int(job.batch_size)):
        sel = where[start : start + int(job.batch_size)]
        sl = slice(start, start + len(sel))
        means, logvars = run_passes(
            tm, enc, sl, passes=job.passes, seed=job.seed, device=job.device, keep=job.keep_passes
        )
        soc = draws_from(tm, means, logvars, job.seed, ids[sel])
        passes = soc.shape[0]
        counters = (
            ids[sel][None, None, :] * np.uint64(passes)
            + np.arange(passes, dtype=np.uint64)[:, None, None]
        )
        bd = _bd_source(options, None if bd_band is None else bd_band[sel])
        cf = float(options.get("cf", 0.0)) if cf_band is None else cf_band[sel]
        strata = (
            bd_band[sel] if options["bd"].startswith("strata:") and bd_band is not None else None
        )
        draws = stock_draws(
            soc,
            tm.intervals,
            bd,
            cf,
            cf_sd=options.get("cf_sd", 0.0),
            covariates=None if strata is None else {"stratum": strata},
            z_bd=counter_normal(job.seed + _BD_SEED_OFFSET, counters),
            z_cf=counter_normal(job.seed + _CF_SEED_OFFSET, counters),
        )
        yield sel, np.concatenate([draws, cumulative_draws(draws, tm.intervals, totals)], axis=1)


def stock_block(
    tm: TileModel, block: np.ndarray, names: list[str], job: Any, options: dict[str, Any]
) -> dict[str, Any]:
    """Stock statistics of one tile: ``stock`` ``(5, intervals + totals, h, w)`` in t/ha."""
    _, h, w = block.shape
    enc = encode_block(tm, block, names)
    n_layers = len(tm.intervals) + len(options["totals"])
    out = np.full((len(STATS), n_layers, h * w), np.nan, dtype=np.float32)
    for sel, layers in layer_draws(tm, enc, block, names, job, options):
        summary = summarise(layers, axis=0)
        for i, stat in enumerate(STATS):
            out[i][:, sel] = getattr(summary, stat)
    return {
        "stock": out.reshape(len(STATS), n_layers, h, w),
        **enc.counts(),
    }


STOCK = LayerKind(
    "stock",
    "stock.zarr",
    "tiles_stock",
    "t/ha",
    "soil organic carbon stock",
    block=stock_block,
    title="stock",
    cmap="YlGn",
)


def check_stock_inputs(
    cube: Any,
    bd: str | float = "auto",
    bd_units: str = "g/cm3",
    cf: str | float = 0.0,
    bd_strata: Mapping[Any, tuple[float, float]] | None = None,
    bd_default: tuple[float, float] | None = None,
) -> tuple[str, dict[str, list[float]] | None, str | float]:
    """Resolve the BD and CF options against a cube (an open cube or its path).

    Everything :func:`stocks_for_run` can check without the SOC map: the BD source, its
    units, the stratum table against the band's codes, the CF band. ``socmap predict
    --stocks`` calls it before mapping SOC, so a bad option costs no map.

    Returns
    -------
    bd_option, strata_table, cf_option
        ``"band:NAME"``, ``"ptf"``, ``"strata:BAND"`` or a constant; the stratum table
        (code -> [mean, sd]) for ``strata:``; ``"band:NAME"`` or the CF constant.

    Raises
    ------
    BandMismatch, UnitsError, ConfigError
        A band the cube lacks, ``bd_units`` without a BD band, or a stratum table that
        does not cover the band's codes.
    """
    from socmap.cube import open_cube

    if not hasattr(cube, "band"):
        cube = open_cube(cube)
    names = [str(b) for b in cube.band.values]
    bd_option = _resolve_bd(bd, names)
    if bd_units != "g/cm3" and not bd_option.startswith("band:"):  # 'auto' found no BD band
        raise UnitsError(
            f"--bd-units {bd_units!r} applies to a BD band only, and --bd {bd!r} uses "
            f"{bd_option!r} (the cube has no bd_g_cm3 or bdod band); drop --bd-units or name "
            "the BD band with --bd"
        )
    strata_table: dict[str, list[float]] | None = None
    if bd_option.startswith("strata:"):
        strata_table = _stratum_table(cube, bd_option.split(":", 1)[1], bd_strata, bd_default)
    cf_option: str | float = cf
    if isinstance(cf, str):
        if cf not in names:
            raise BandMismatch(f"CF band {cf!r} is not in the cube; it has {names!r}")
        cf_option = f"band:{cf}"
    return bd_option, strata_table, cf_option


def stocks_for_run(
    run_dir: str | Path,
    *,
    bd: str | float = "auto",
    bd_sd: float = 0.0,
    bd_units: str = "g/cm3",
    cf: str | float = 0.0,
    cf_sd: float = 0.0,
    bd_strata: Mapping[Any, tuple[float, float]] | None = None,
    bd_default: tuple[float, float] | None = None,
    totals: Sequence[tuple[float, float]] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    exports: bool = True,
    progress: bool = True,
    device: str = "cpu",
) -> StockRun:
    """Compute stock maps per depth interval and cumulative, in t C/ha, for a run.

    Parameters
    ----------
    run_dir
        A finished :func:`~socmap.predict.predict_cube` run.
    bd
        ``"auto"`` (a cube band named ``bd_g_cm3`` or ``bdod``, else the pedotransfer
        function), ``"ptf"``, a band name of the cube, a constant in g/cm³, or
        ``"strata:BAND"``: per-stratum constants (``bd_strata``) looked up by the stratum
        codes of a cube band, as the blue-carbon workflow's defaults.
    bd_sd
        Standard deviation of a band or constant BD (the PTF carries its own).
    bd_strata, bd_default
        For ``bd="strata:BAND"``: stratum code -> ``(mean, sd)`` in g/cm³, and the pair for
        codes not in the table (None: every code of the band must be listed).
    bd_units
        ``"g/cm3"``, or ``"cg/cm3"`` for a SoilGrids ``bdod`` band.
    cf, cf_sd
        Coarse-fragment volume fraction: a constant in [0, 1) or a band name, and its sd.
    totals
        Cumulative depths; default those of the bundle's intervals (0-30 and 0-100 cm).
    scheduler, workers, overwrite, exports, progress, device
        As in :func:`~socmap.predict.predict_cube`; ``overwrite`` replaces stocks computed
        with other options.

    Raises
    ------
    ConfigError
        Not a finished run, intervals that do not cover a total, or a ``scheduler`` that
        is no address or does not answer.
    BandMismatch
        A BD or CF band the cube lacks.
    OutputExists
        Stocks with other options exist and ``overwrite`` is false.
    """
    # the options first: refusing a bad number must not wait for torch to load
    check_stock_options(bd, bd_sd, bd_units, cf, cf_sd, bd_strata)
    check_scheduler(scheduler)  # before stock.zarr exists: a refusal leaves nothing
    from socmap.catalog import DepthSet
    from socmap.cube import open_cube
    from socmap.predict._engine import load_tile_model, resolve_device

    where = resolve_device(device)
    run = open_run(run_dir)
    run.require_finished()
    if load_tile_model(run.config.bundle).weights_sha256 != run.config.bundle_sha256:
        raise ConfigError(
            f"bundle {run.config.bundle!r} changed since run {str(run.path)!r} was predicted; "
            "its Monte Carlo draws cannot be regenerated: predict again into a new run"
        )
    cube = open_cube(run.config.cube)
    bd_option, strata_table, cf_option = check_stock_inputs(
        cube, bd, bd_units, cf, bd_strata, bd_default
    )
    _check_bands_before_writing(run, cube, bd_option, bd_units, cf_option)
    intervals = [(float(t), float(b)) for t, b in run.config.intervals]
    if totals:
        chosen = [(float(t), float(b)) for t, b in totals]
    else:
        chosen = list(default_totals(DepthSet(name="run", intervals=tuple(intervals))))
    labels_iv = [f"{t:g}-{b:g}cm" for t, b in intervals]
    total_labels = [f"{t:g}-{b:g}cm" for t, b in chosen]
    if set(total_labels) & set(labels_iv):
        dup = sorted(set(total_labels) & set(labels_iv))
        raise ConfigError(f"totals {dup!r} equal a mapped interval; drop them from totals")
    options = {
        "bd": bd_option,
        "bd_sd": float(bd_sd),
        "bd_units": bd_units,
        "cf": cf_option,
        "cf_sd": float(cf_sd),
        "totals": [list(t) for t in chosen],
        "total_labels": total_labels,
    }
    if strata_table is not None:
        options["bd_strata"] = strata_table
        options["bd_default"] = None if bd_default is None else [float(v) for v in bd_default]
        unused = _codes_not_in_band(cube, bd_option.split(":", 1)[1], strata_table)
        if unused:
            options["bd_strata_unused"] = unused
    store = run.path / STOCK.store
    if store.exists() and run.stocks.get("options") != options:
        if not overwrite:
            raise OutputExists(
                f"stocks of run {str(run.path)!r} exist with other options; pass "
                "--overwrite to replace them (Python: overwrite=True)"
            )
        import shutil

        shutil.rmtree(store)
        shutil.rmtree(run.path / STOCK.records, ignore_errors=True)
    run.stocks = {"options": options, "labels": labels_iv + total_labels, "status": "running"}
    run.save()
    labels = labels_iv + total_labels
    summary = compute_layers(
        run, STOCK, labels, options=options, scheduler=scheduler, workers=workers,
        progress=progress, device=where,
    )  # fmt: skip
    run.stocks.update(status="computed", summary=summary)
    run.save()
    if exports:
        export_stocks(run, labels, progress=progress)
    return StockRun(run=run, labels=labels, options=options, summary=summary)


def export_stocks(
    run: PredictionRun, labels: list[str], *, progress: bool = True
) -> dict[str, list[str]]:
    """Add the stock COGs and quicklooks to a run's exports and STAC Item."""
    cogs, pngs = export_layers(run, STOCK, labels, progress=progress)
    replace_exports(run, STOCK, cogs, pngs)
    run.stocks["status"] = "complete"
    run.save()
    return run.exports


def _stratum_table(
    cube: Any,
    band: str,
    table: Mapping[Any, tuple[float, float]] | None,
    default: tuple[float, float] | None,
) -> dict[str, list[float]]:
    """Validate a per-stratum BD table against the stratum band's classes, before any work."""
    from socmap.cube import band_table

    if not table:
        raise ConfigError(
            f"bd='strata:{band}' needs a table of stratum code -> (mean, sd) g/cm3 "
            "(CLI: --bd-table FILE.csv with columns stratum, bd_g_cm3, bd_sd_g_cm3)"
        )
    try:
        codes: dict[Hashable, tuple[float, float]] = {float(k): v for k, v in table.items()}
    except (TypeError, ValueError):
        raise ConfigError(
            f"stratum codes {list(table)!r} must be the numbers the band {band!r} holds"
        ) from None
    checked = StratumBD(codes, default)  # validates every pair (0 < mean < 2.65, sd >= 0)
    bands = band_table(cube)
    row = bands[bands["name"] == band].iloc[0]
    if row["kind"] != "categorical":  # once: 'stratum 0.0 has no bulk density', and a table
        # that covered the band's few values would have mapped BD by a quantity's values
        kinds = dict(zip(bands["name"], bands["kind"], strict=True))
        raise ConfigError(
            f"--bd strata:{band}: {band!r} is a continuous band, not strata; name a "
            "categorical band whose class codes the --bd-table lists (categorical bands: "
            f"{[str(n) for n, k in kinds.items() if k == 'categorical']!r})"
        )
    classes = (cube.attrs.get("band_classes") or [None] * len(cube.band))[
        [str(b) for b in cube.band.values].index(band)
    ]
    if row["kind"] == "categorical" and classes and default is None:
        missing = [c for c in classes if float(c) not in checked.table]
        if missing:
            raise ConfigError(
                f"stratum band {band!r} has classes {missing!r} without a bulk density; add "
                "them to the --bd-table, or a row with stratum 'default' for every class it "
                "does not list"
            )
    return {f"{k:g}": [float(m), float(sd)] for k, (m, sd) in checked.table.items()}


def _codes_not_in_band(cube: Any, band: str, table: Mapping[str, Any]) -> list[str]:
    """Codes of a per-stratum BD table that the stratum band's class list does not hold.

    They are harmless (a table written for a wider area) or a sign of the wrong band or code
    scheme; the run records them and says so, rather than ignoring them without a word.
    """
    names = [str(b) for b in cube.band.values]
    classes = (cube.attrs.get("band_classes") or [None] * len(names))[names.index(band)]
    if not classes:
        return []
    held = {float(c) for c in classes}
    return [code for code in table if float(code) not in held]


def _check_bands_before_writing(
    run: PredictionRun, cube: Any, bd_option: str, bd_units: str, cf_option: str | float
) -> None:
    """Refuse a BD or CF band of class codes or out of range, before stock.zarr is touched.

    The tiles check the same ranges, but only once the stocks were marked running (and with
    --overwrite the old stocks removed): the corrected command then met 'exist with other
    options'. Values are checked where the run mapped SOC, as the tiles see them.
    """
    from socmap.cube import band_table

    checks = []
    if bd_option.startswith("band:"):
        scale = 0.01 if bd_units == "cg/cm3" else 1.0
        checks.append(("--bd", bd_option[5:], BD_RANGE, False, scale))
    if isinstance(cf_option, str) and cf_option.startswith("band:"):
        checks.append(("--cf", cf_option[5:], (0.0, 1.0), True, 1.0))
    if not checks:
        return
    kinds = dict(zip(*(band_table(cube)[c] for c in ("name", "kind")), strict=True))
    soc = run.open()["soc"].sel(stat="mean").isel(depth=0)
    for option, band, (lo, hi), hi_open, scale in checks:
        if kinds.get(band) == "categorical":
            raise ConfigError(
                f"{option} {band!r} is a categorical band (class codes, not a quantity); give a "
                "continuous band" + (", or strata:BAND with --bd-table" if option == "--bd" else "")
            )
        # window by window, as the tiles read them: memory stays bounded on any grid
        n_bad, n_seen, example = 0, 0, float("nan")
        for tile in run.grid.tiles(run.config.chunk):
            r, c = tile.core.slices
            mapped = np.isfinite(np.asarray(soc.isel(y=r, x=c).values))
            window = cube.sel(band=band).isel(y=r, x=c).values
            values = np.asarray(window, dtype=np.float64)[mapped] * scale
            with np.errstate(invalid="ignore"):
                bad = (values < lo) | ((values >= hi) if hi_open else (values > hi))
            if bad.any() and n_bad == 0:
                example = float(values[bad][0])
            n_bad, n_seen = n_bad + int(bad.sum()), n_seen + values.size
        if n_bad:
            units = f" {bd_units}" if option == "--bd" else " (volume fraction)"
            if option == "--cf":
                fix = "give CF as a volume fraction (% / 100), and set nodata cells to NaN"
            elif bd_units == "cg/cm3":
                fix = "check the band is SoilGrids bdod (cg/cm3), and set nodata cells to NaN"
            else:
                fix = "give BD in g/cm3 (--bd-units cg/cm3 reads a SoilGrids bdod band), and set "
                fix += "nodata cells (often 0) to NaN"
            raise UnitsError(
                f"{option} band {band!r} must lie in [{lo / scale:g}, {hi / scale:g}"
                f"{')' if hi_open else ']'}{units} where the run mapped SOC; {n_bad} of "
                f"{n_seen} pixels do not (e.g. {example / scale:g}); {fix}"
            )


def _resolve_bd(bd: str | float, names: list[str]) -> str:
    if isinstance(bd, int | float):
        if not 0 < float(bd) < 2.65:
            raise ConfigError(f"bulk density {bd!r} g/cm3 is implausible; give 0 < BD < 2.65")
        return str(float(bd))
    if bd == "auto":
        for band in ("bd_g_cm3", "bdod"):
            if band in names:
                return f"band:{band}"
        return "ptf"
    if bd == "ptf":
        return "ptf"
    if bd.startswith("strata:"):
        band = bd.split(":", 1)[1]
        if band not in names:
            raise BandMismatch(
                f"stratum band {band!r} is not in the cube (bands {names!r}); name the band "
                "that holds the stratum codes"
            )
        return bd
    if bd not in names:
        raise BandMismatch(
            f"BD band {bd!r} is not in the cube (bands {names!r}); give a band, 'ptf' or a "
            "constant in g/cm3"
        )
    return f"band:{bd}"

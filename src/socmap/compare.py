"""Stock change between two prediction runs of one region: maps and a per-stratum table.

Scheduled remapping produces successive runs of the same region (new cores, new imagery).
:func:`compare_runs` (CLI: ``socmap compare RUN_A RUN_B``) maps and tabulates the change
B − A of their carbon stocks (t C/ha), with its uncertainty:

* **per pixel**, for every stock layer both runs have: the mean change ``mean_b - mean_a``,
  its sd ``sqrt(sd_a² + sd_b²)``, the 90 % interval ``mean ± z₀.₉₅ sd``, the probability of
  an increase ``Φ(mean / sd)`` and a class: +1 where the 90 % interval lies above 0, −1
  where it lies below, 0 where it contains 0 (:func:`change_stats`);
* **per stratum** and layer, from the two runs' stratum tables (``strata/strata.csv``): the
  change of the area-weighted mean stock, its SE ``sqrt(se_a² + se_b²)``, 90 % and 95 %
  intervals, totals in Mg C and t CO₂e and a conservative change (:func:`change_by_stratum`).

**Independence.** Both sd formulas treat the two runs' errors as independent. Successive
runs share covariates and most of their cores, so their errors are positively correlated
and the variance of the difference is smaller than the sum of the variances: these sds
overstate the uncertainty of the change. That is the conservative side for claiming a
change (fewer pixels and strata are called significant, conservative changes are further
below the mean), not for claiming that nothing changed.

**Conservative change.** The lower bound of the change's two-sided 90 % interval (a
one-sided 95 % lower bound). For an increase (a removal) it is the bound closer to zero, so
no more is credited than the data show; for a decrease (a loss, an emission or a reversal)
it is the bound further from zero, so a loss is not understated. That is the asymmetry of
the conservativeness principle of carbon standards (removals not overestimated, emissions
not underestimated; Verra VCS, VM0033/VM0042), and it matches ``conservative_t_c_ha`` of
the stratum table, the lower bound of the stock. Where the interval contains zero the
conservative change is zero or negative: no increase can be claimed.

The maps are computed tile by tile on the runs' chunks (memory: one tile of both runs'
stock stores); every output goes to a temporary directory renamed into place at the end.
Pixels without a value in either run stay NaN and are counted per layer; strata and layers
present in one run only are reported, never dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from socmap._io import atomic_path, check_replaceable, refuse_input_as_output
from socmap._parallel import check_scheduler
from socmap._progress import track
from socmap.errors import ConfigError, GridMismatch
from socmap.units import CO2_PER_C, Z90, Z95

__all__ = [
    "CHANGE_STATS",
    "INDEPENDENCE",
    "ComparisonResult",
    "change_by_stratum",
    "change_stats",
    "compare_runs",
]

#: Statistics of ``change(stat, depth, y, x)`` in ``change.zarr``, with their units.
CHANGE_STATS = ("mean", "sd", "ci90_low", "ci90_high", "p_increase", "significant")
_STAT_UNITS = {
    "mean": "t/ha",
    "sd": "t/ha",
    "ci90_low": "t/ha",
    "ci90_high": "t/ha",
    "p_increase": "1",
    "significant": "class",
}
_STAT_TITLES = {
    "mean": "mean change",
    "sd": "sd of the change",
    "ci90_low": "90 % interval, lower bound",
    "ci90_high": "90 % interval, upper bound",
    "p_increase": "probability of an increase",
    "significant": "significant change (+1 increase, -1 decrease, 0 none)",
}

INDEPENDENCE = (
    "The sd (per pixel) and SE (per stratum) of the change treat the two runs' errors as "
    "independent: sd_change = sqrt(sd_a^2 + sd_b^2). Successive runs share covariates and "
    "most cores, so their errors are positively correlated and the true uncertainty of the "
    "change is smaller: these figures overstate it. That is conservative for claiming a "
    "change (fewer significant pixels and strata, lower conservative changes), not for "
    "claiming that nothing changed."
)
NORMAL = (
    "Intervals and probabilities of the change use a normal approximation with that sd "
    "(mean +/- 1.645 sd for 90 %, +/- 1.960 sd for 95 %; P(increase) = Phi(mean / sd)); the "
    "runs' own stock intervals are percentiles of Monte Carlo draws and may be skewed."
)
CONSERVATIVE = (
    "conservative change = lower bound of the two-sided 90 % interval of the change (a "
    "one-sided 95 % lower bound). For an increase (removal) it is the bound closer to zero: "
    "credit no more than the data show. For a decrease (loss, emission, reversal) it is the "
    "bound further from zero: a loss is not understated. This is the asymmetry of the "
    "conservativeness principle of carbon standards (removals not overestimated, emissions "
    "not underestimated), and matches conservative_t_c_ha of strata.csv (lower bound of the "
    "stock). An interval containing zero gives a conservative change <= 0: no increase can "
    "be claimed."
)

CHANGE_STORE = "change.zarr"
TABLE_CSV = "change_by_stratum.csv"
TABLE_JSON = "change_by_stratum.json"
SUMMARY_JSON = "comparison.json"
FORMAT = "socmap-comparison/1"
_STRATA_CSV = Path("strata") / "strata.csv"
_STRATA_COLUMNS = (
    "stratum",
    "layer",
    "area_ha",
    "unmapped_area_ha",
    "mean_t_c_ha",
    "se_t_c_ha",
    "n_cores",
)
#: Relative tolerance under which the two runs' stratum areas are the same (summation order).
AREA_RTOL = 1e-6


# ---------------------------------------------------------------------- arithmetic
def change_stats(
    mean_a: npt.ArrayLike,
    sd_a: npt.ArrayLike,
    mean_b: npt.ArrayLike,
    sd_b: npt.ArrayLike,
) -> dict[str, np.ndarray]:
    """Change B − A of two independent normal estimates, element by element.

    Parameters
    ----------
    mean_a, sd_a, mean_b, sd_b
        Means and standard deviations of the two runs (broadcast together).

    Returns
    -------
    dict
        One float64 array per :data:`CHANGE_STATS`: ``mean`` = B − A, ``sd`` =
        ``sqrt(sd_a² + sd_b²)`` (independent errors; see :data:`INDEPENDENCE`),
        ``ci90_low``/``ci90_high`` = ``mean ∓ 1.645 sd``, ``p_increase`` = ``Φ(mean / sd)``
        (with sd 0: 1, 0.5 or 0 by the sign of the mean) and ``significant`` = +1 where the
        90 % interval lies above 0, −1 where below, 0 otherwise. NaN wherever any input
        is NaN.

    Examples
    --------
    >>> s = change_stats(40.0, 3.0, 50.0, 4.0)
    >>> [round(float(s[k]), 3) for k in ("mean", "sd", "ci90_low", "p_increase")]
    [10.0, 5.0, 1.776, 0.977]
    >>> float(s["significant"]), float(change_stats(40.0, 3.0, np.nan, 4.0)["mean"])
    (1.0, nan)
    """
    ma, sa, mb, sb = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (mean_a, sd_a, mean_b, sd_b))
    )
    valid = np.isfinite(ma) & np.isfinite(sa) & np.isfinite(mb) & np.isfinite(sb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, mb - ma, np.nan)
        sd = np.where(valid, np.sqrt(sa**2 + sb**2), np.nan)
        low, high = _interval(mean, sd, Z90)
        # sd 0 (e.g. both runs without uncertainty): the change is certain, Phi(+-inf)
        p = np.where(sd > 0, special.ndtr(mean / sd), 0.5 * (1.0 + np.sign(mean)))
    significant = np.where(low > 0, 1.0, np.where(high < 0, -1.0, 0.0))
    return {
        "mean": mean,
        "sd": sd,
        "ci90_low": low,
        "ci90_high": high,
        "p_increase": np.where(valid, p, np.nan),
        "significant": np.where(valid, significant, np.nan),
    }


def _interval(mean: np.ndarray, sd: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    half = z * sd
    return mean - half, mean + half


# ---------------------------------------------------------------------- stratum table
def change_by_stratum(
    table_a: pd.DataFrame,
    table_b: pd.DataFrame,
    layers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per stratum and layer, the change B − A of two runs' stratum tables.

    Parameters
    ----------
    table_a, table_b
        Stratum tables of the two runs (``strata/strata.csv``, from
        :func:`socmap.predict.strata_for_run`): at least ``stratum, layer, area_ha,
        unmapped_area_ha, mean_t_c_ha, se_t_c_ha, n_cores``.
    layers
        Layers to compare, in this order; default the layers of both tables (order of A).

    Returns
    -------
    pandas.DataFrame
        One row per stratum and layer of either table (A's strata first, then B's new
        ones): ``stratum, layer, presence`` (``both``, ``only_a``, ``only_b``),
        ``area_ha_a, area_ha_b, area_differs, area_ha`` (the smaller of the two: the area
        the totals use), ``unmapped_area_ha_a, unmapped_area_ha_b, mean_a_t_c_ha,
        se_a_t_c_ha, mean_b_t_c_ha, se_b_t_c_ha, change_t_c_ha`` (B − A),
        ``se_change_t_c_ha`` (``sqrt(se_a² + se_b²)``), ``ci90_low, ci90_high, ci95_low,
        ci95_high, p_increase, significant_90, direction, conservative_change_t_c_ha``
        (lower bound of the 90 % interval; see the module docstring),
        ``total_change_mg_c, total_change_t_co2e, conservative_change_mg_c,
        conservative_change_t_co2e, n_cores_a, n_cores_b``. A stratum of one table only
        has NaN for the other run and the change, ``significant_90`` False and
        ``direction`` ``"only in A"``/``"only in B"``.

    Raises
    ------
    ConfigError
        A table lacks columns, lists a stratum and layer twice, or a requested layer is
        in neither table.

    Examples
    --------
    >>> a = pd.DataFrame({"stratum": ["m"], "layer": ["0-30cm"], "area_ha": [10.0],
    ...                   "unmapped_area_ha": [0.0], "mean_t_c_ha": [40.0],
    ...                   "se_t_c_ha": [3.0], "n_cores": [5]})
    >>> b = a.assign(mean_t_c_ha=50.0, se_t_c_ha=4.0)
    >>> row = change_by_stratum(a, b).iloc[0]
    >>> float(row["change_t_c_ha"]), float(row["se_change_t_c_ha"]), row["direction"]
    (10.0, 5.0, 'increase')
    >>> round(float(row["conservative_change_mg_c"]), 2)  # (10 - 1.645 x 5) x 10 ha
    17.76
    """
    a = _checked(table_a, "A")
    b = _checked(table_b, "B")
    in_a, in_b = list(dict.fromkeys(a["layer"])), list(dict.fromkeys(b["layer"]))
    if layers is None:
        chosen = [lay for lay in in_a if lay in in_b]
    else:
        chosen = list(layers)
        unknown = [lay for lay in chosen if lay not in in_a and lay not in in_b]
        if unknown:
            raise ConfigError(
                f"layers {unknown!r} are in neither stratum table; choose from A's {in_a!r} "
                f"or B's {in_b!r}"
            )
    cols = ["area_ha", "unmapped_area_ha", "mean_t_c_ha", "se_t_c_ha", "n_cores"]
    key = ["stratum", "layer"]
    merged = pd.merge(
        a.loc[a["layer"].isin(chosen), key + cols],
        b.loc[b["layer"].isin(chosen), key + cols],
        on=key,
        how="outer",
        suffixes=("_a", "_b"),
        indicator=True,
        sort=False,
    )
    # rows in a stable, readable order: A's strata, then strata new in B; layers as chosen
    strata = list(dict.fromkeys([*a["stratum"], *b["stratum"]]))
    merged["_s"] = merged["stratum"].map({s: i for i, s in enumerate(strata)})
    merged["_l"] = merged["layer"].map({lay: i for i, lay in enumerate(chosen)})
    merged = merged.sort_values(["_s", "_l"], kind="stable").reset_index(drop=True)
    presence = (
        merged["_merge"]
        .astype(str)
        .map({"both": "both", "left_only": "only_a", "right_only": "only_b"})
    )
    ma, sa = merged["mean_t_c_ha_a"].to_numpy(float), merged["se_t_c_ha_a"].to_numpy(float)
    mb, sb = merged["mean_t_c_ha_b"].to_numpy(float), merged["se_t_c_ha_b"].to_numpy(float)
    s = change_stats(ma, sa, mb, sb)
    lo95, hi95 = _interval(s["mean"], s["sd"], Z95)
    area_a, area_b = merged["area_ha_a"].to_numpy(float), merged["area_ha_b"].to_numpy(float)
    both = (presence == "both").to_numpy()
    with np.errstate(invalid="ignore"):
        differs = both & ~np.isclose(area_a, area_b, rtol=AREA_RTOL, atol=0.0)
    # the totals use the smaller area: where the runs mapped different pixels of a stratum,
    # the change per ha is only known over (at most) the area both cover
    area = np.where(both, np.fmin(area_a, area_b), np.nan)
    significant = s["significant"]
    where = presence.to_numpy()
    direction = np.select(
        [
            where == "only_a",
            where == "only_b",
            np.isnan(significant),
            significant > 0,
            significant < 0,
        ],
        ["only in A", "only in B", "no estimate", "increase", "decrease"],
        default="no significant change",
    )
    out = pd.DataFrame(
        {
            "stratum": merged["stratum"],
            "layer": merged["layer"],
            "presence": presence,
            "area_ha_a": area_a,
            "area_ha_b": area_b,
            "area_differs": differs,
            "area_ha": area,
            "unmapped_area_ha_a": merged["unmapped_area_ha_a"].to_numpy(float),
            "unmapped_area_ha_b": merged["unmapped_area_ha_b"].to_numpy(float),
            "mean_a_t_c_ha": ma,
            "se_a_t_c_ha": sa,
            "mean_b_t_c_ha": mb,
            "se_b_t_c_ha": sb,
            "change_t_c_ha": s["mean"],
            "se_change_t_c_ha": s["sd"],
            "ci90_low": s["ci90_low"],
            "ci90_high": s["ci90_high"],
            "ci95_low": lo95,
            "ci95_high": hi95,
            "p_increase": s["p_increase"],
            "significant_90": np.nan_to_num(np.abs(significant)) > 0,
            "direction": direction,
            "conservative_change_t_c_ha": s["ci90_low"],
            "total_change_mg_c": s["mean"] * area,
            "total_change_t_co2e": s["mean"] * area * CO2_PER_C,
            "conservative_change_mg_c": s["ci90_low"] * area,
            "conservative_change_t_co2e": s["ci90_low"] * area * CO2_PER_C,
            "n_cores_a": merged["n_cores_a"].astype("Int64"),
            "n_cores_b": merged["n_cores_b"].astype("Int64"),
        }
    )
    return out


def _checked(table: pd.DataFrame, which: str) -> pd.DataFrame:
    absent = [c for c in _STRATA_COLUMNS if c not in table.columns]
    if absent:
        raise ConfigError(
            f"stratum table of run {which} lacks columns {absent!r}; recompute it with "
            "`socmap strata RUN --strata S`"
        )
    t = table.assign(stratum=table["stratum"].astype(str), layer=table["layer"].astype(str))
    dup = t.duplicated(["stratum", "layer"])
    if dup.any():
        pairs = t.loc[dup, ["stratum", "layer"]].to_records(index=False).tolist()
        raise ConfigError(
            f"stratum table of run {which} lists (stratum, layer) {pairs!r} more than once; "
            "recompute it with `socmap strata RUN --strata S`"
        )
    return t


# ---------------------------------------------------------------------- result
@dataclass
class ComparisonResult:
    """What :func:`compare_runs` wrote.

    Attributes
    ----------
    path
        The output directory (``change.zarr``, ``cogs/``, ``quicklooks/``,
        ``change_by_stratum.csv``/``.json``, ``comparison.json``).
    table
        The per-stratum change (:func:`change_by_stratum`).
    layers
        Layers compared; ``layers_only_a``/``layers_only_b`` are the stock layers of one run
        only (not compared).
    pixels
        Per layer: pixels compared, pixels without a value in A only, in B only and in
        both, the area compared (ha), its area-weighted mean change (t C/ha) and the areas
        of significant increase and decrease (ha).
    metadata
        The content of ``comparison.json``.
    """

    path: Path
    table: pd.DataFrame
    layers: list[str]
    layers_only_a: list[str]
    layers_only_b: list[str]
    pixels: dict[str, dict[str, float]]
    metadata: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One paragraph: the headline layer's change on the map and per stratum."""
        layer = self.layers[-1]  # the deepest total where the runs have totals
        px = self.pixels[layer]
        name_a = self.metadata.get("run_a", {}).get("name", "A")
        name_b = self.metadata.get("run_b", {}).get("name", "B")
        extra = ""
        if self.layers_only_a or self.layers_only_b:
            extra = (
                " Layers of one run only, not compared: A "
                f"{', '.join(self.layers_only_a) or 'none'}; B "
                f"{', '.join(self.layers_only_b) or 'none'}."
            )
        text = (
            f"Stock change B − A ({name_b} − {name_a}) on {len(self.layers)} layers "
            f"({', '.join(self.layers)}). For {layer}: mean change "
            f"{px['mean_change_t_c_ha']:+.2f} t C/ha over {px['area_ha_compared']:,.1f} ha "
            f"({int(px['compared']):,} pixels compared; {int(px['nodata_a_only']):,} without a "
            f"value in A only, {int(px['nodata_b_only']):,} in B only, "
            f"{int(px['nodata_both']):,} in neither); the 90 % interval excludes zero on "
            f"{px['area_ha_increase']:,.1f} ha of increase and {px['area_ha_decrease']:,.1f} "
            "ha of decrease."
        )
        rows = self.table[self.table["layer"] == layer]
        both = rows[rows["presence"] == "both"]
        if len(rows):
            text += (
                f" Per stratum ({layer}): {int(both['significant_90'].sum())} of {len(both)} "
                f"strata changed significantly; total change "
                f"{both['total_change_mg_c'].sum():+,.0f} Mg C "
                f"({both['total_change_t_co2e'].sum():+,.0f} t CO2e), conservative "
                f"{both['conservative_change_mg_c'].sum():+,.0f} Mg C (the sum of the strata's "
                "lower bounds, conservative for the total whatever their correlation)"
            )
            one = (rows["presence"] != "both").sum()
            if one:
                text += f"; {int(one)} strata in one run only (not compared)"
            unmapped = int((both["direction"] == "no estimate").sum())
            if unmapped:
                text += f"; {unmapped} strata without an estimate in a run (not in the sums)"
            flagged = int(both["area_differs"].sum())
            if flagged:
                text += f"; {flagged} strata with different mapped areas (flagged)"
            text += "."
        if not self.metadata.get("same_stock_options", True):
            extra += (
                " The runs' stock options differ (bulk density, coarse fragments or totals; "
                "see comparison.json): part of the change may come from that, not the soil."
            )
        return (
            text + extra + " The uncertainty treats the runs' errors as independent; they share "
            "covariates and most cores, so it is overstated: conservative for claiming a change."
        )


# ---------------------------------------------------------------------- the runs
def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    out: str | Path,
    *,
    layers: Sequence[str] | None = None,
    strata: str | Path | None = None,
    field: str | None = None,
    overwrite: bool = False,
    exports: bool = True,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> ComparisonResult:
    """Map and tabulate the stock change B − A between two runs on the same grid.

    Parameters
    ----------
    run_a, run_b
        Prediction runs with stocks (``socmap stocks``): A the earlier, B the later.
    out
        Output directory, written atomically (see :class:`ComparisonResult`).
    layers
        Stock layers to compare (``"0-30cm"``, ...); default every layer both runs have.
        Layers of one run only are reported in the result, never silently left out.
    strata
        Strata (polygon file, stratum raster or cube band; see
        :func:`socmap.predict.rasterise_strata`) for a run that has no stratum table yet:
        it is computed into that run with :func:`socmap.predict.strata_for_run`, without
        cores (``n_cores`` 0; run ``socmap strata --cores`` first for core counts). A run
        whose table comes from other strata is an error. Default: the runs' own tables.
    field
        Stratum column of a polygon file (default ``"stratum"``).
    overwrite
        Replace an existing ``out``.
    exports
        Write the COGs (one per layer and statistic) and the PNG quicklooks.
    scheduler, workers
        As in :func:`~socmap.predict.predict_cube`; used only to compute a missing stratum
        table (the change itself is cheap arithmetic on the stored maps, in this process).
    progress
        Progress bars over tiles and exports.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    ConfigError
        Not a run, a run without stocks, a layer that is not in both runs, no shared
        layer, no stratum table and no ``strata``, stratum tables stale or from other
        strata, ``out`` inside a run; A and B the same folder or runs with identical
        predictions (a copy); a ``scheduler`` that is no address or does not answer.
    GridMismatch
        The runs are on different grids.
    OutputExists
        ``out`` exists and ``overwrite`` is false.
    """
    from socmap.predict import open_run

    # checked even when no stratum table is computed: a wrong address is never ignored
    check_scheduler(scheduler)
    a, b = open_run(run_a), open_run(run_b)
    for run in (a, b):  # an interrupted run's maps are part NaN
        run.require_finished(["stocks"])
    for run, which in ((a, "A"), (b, "B")):
        if (
            run.stocks.get("status") not in ("computed", "complete")
            or not (run.path / "stock.zarr").exists()
        ):
            raise ConfigError(
                f"run {which} {str(run.path)!r} has no stocks; compute them first with "
                f"`socmap stocks {run.path}`"
            )
    diff = a.grid.difference(b.grid)
    if diff is not None:
        raise GridMismatch(
            f"runs are on different grids ({diff}): A {str(a.path)!r} is on {a.grid!r}, "
            f"B {str(b.path)!r} on {b.grid!r}; remap one run onto the other's grid (build its "
            "covariate cube on that grid with `socmap cube build --grid ...` and predict again)"
        )
    labels_a, labels_b = _stock_labels(a), _stock_labels(b)
    shared = [lay for lay in labels_a if lay in labels_b]
    only_a = [lay for lay in labels_a if lay not in labels_b]
    only_b = [lay for lay in labels_b if lay not in labels_a]
    if layers is not None:
        unknown = [lay for lay in layers if lay not in shared]
        if unknown or not layers:
            raise ConfigError(
                f"--layer {list(layers)!r} must be stock layers of both runs; the runs share "
                f"{shared!r} (A only {only_a!r}, B only {only_b!r})"
            )
        chosen = list(dict.fromkeys(layers))
    else:
        chosen = shared
    if not chosen:
        raise ConfigError(
            f"the runs share no stock layer: A has {labels_a!r}, B has {labels_b!r}; compute "
            "stocks with common totals (`socmap stocks RUN`)"
        )
    dest = Path(out)
    for run, which in ((a, "A"), (b, "B")):
        here, there = dest.resolve(), run.path.resolve()
        # replacing ``out`` must never replace (or write into) an input run
        if here == there or there in here.parents or here in there.parents:
            raise ConfigError(
                f"output {str(dest)!r} is inside or contains run {which} {str(run.path)!r}; "
                "choose a directory apart from both runs"
            )
    for run in (a, b):  # nor into a run's cube or bundle (once a comparison in the cube)
        refuse_input_as_output(dest, [run.config.cube, run.config.bundle])
    check_replaceable(dest, "comparison", lambda p: (p / SUMMARY_JSON).is_file(), overwrite)
    _check_two_runs(a, b)
    tables = _stratum_tables(a, b, strata, field, scheduler, workers, progress)
    table = change_by_stratum(tables[0], tables[1], chosen)
    with atomic_path(dest, overwrite=True) as tmp:  # replaceable: checked above
        tmp.mkdir(parents=True)
        pixels = _write_change(a, b, chosen, tmp / CHANGE_STORE, progress=progress)
        files: dict[str, list[str]] = {"stores": [CHANGE_STORE]}
        if exports:
            names = (a.path.name, b.path.name)
            files.update(_export(a.grid, a.config.chunk, tmp, chosen, names, progress=progress))
        table_meta = _table_metadata(a, b, table, chosen)
        with atomic_path(tmp / TABLE_CSV) as t:
            table.to_csv(t, index=False)
        with atomic_path(tmp / TABLE_JSON) as t:
            t.write_text(json.dumps(_json_ready(table_meta), indent=2) + "\n")
        files["tables"] = [TABLE_CSV, TABLE_JSON]
        metadata = {
            "format": FORMAT,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "run_a": _run_record(a),
            "run_b": _run_record(b),
            "same_run": a.path.resolve() == b.path.resolve(),
            # a change of bulk-density method between runs shows up as a stock change
            "same_stock_options": a.stocks.get("options") == b.stocks.get("options"),
            "same_model_and_seed": (
                a.config.bundle_sha256 == b.config.bundle_sha256 and a.config.seed == b.config.seed
            ),
            "grid": a.grid.to_dict(),
            "chunk": a.config.chunk,
            "layers": chosen,
            "layers_only_a": only_a,
            "layers_only_b": only_b,
            "pixels": pixels,
            "stats": {
                s: {"units": _STAT_UNITS[s], "meaning": _STAT_TITLES[s]} for s in CHANGE_STATS
            },
            "assumptions": {"independence": INDEPENDENCE, "normal": NORMAL},
            "files": files,
        }
        with atomic_path(tmp / SUMMARY_JSON) as t:
            t.write_text(json.dumps(_json_ready(metadata), indent=2) + "\n")
    return ComparisonResult(dest, table, chosen, only_a, only_b, pixels, metadata)


def _json_ready(value: Any) -> Any:
    """NaN and infinities as null: JSON has no NaN."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _stock_labels(run: Any) -> list[str]:
    ds = run.open("stock.zarr")
    return [str(v) for v in ds["depth"].values]


#: Run settings that do not change the predicted numbers: where the inputs were read from
#: (a copied bundle or cube is identified by its hash) and how the work was cut up.
_NOT_PREDICTION = ("bundle", "cube", "chunk", "batch_size")


def _prediction_key(run: Any) -> dict[str, Any]:
    """Return what determines a run's predictions: its configuration less the paths."""
    from dataclasses import asdict

    return {k: v for k, v in asdict(run.config).items() if k not in _NOT_PREDICTION}


def _check_two_runs(a: Any, b: Any) -> None:
    """Refuse a run compared with itself, a link to it or a copy of it.

    The sd of the change treats A and B as independent, so one run twice gives a zero
    change with a doubled sd and a negative conservative change: a loss from nothing.
    """
    if a.path.resolve() == b.path.resolve():
        why = f"are the same folder ({str(a.path.resolve())!r})"
    elif _prediction_key(a) == _prediction_key(b):
        why = (
            "hold the same predictions (same bundle hash, cube, seed and passes in run.json: "
            "one is a copy of the other)"
        )
    else:
        return
    raise ConfigError(
        f"runs A {str(a.path)!r} and B {str(b.path)!r} {why}; a change needs two different "
        "runs, e.g. the earlier survey's run as A and a later survey's run (its own bundle "
        "or cube) as B"
    )


def _run_record(run: Any) -> dict[str, Any]:
    path = run.path.resolve()
    # a published version of `socmap run` is VERSION/run: name it by its version
    name = f"{path.parent.name}/{path.name}" if path.name == "run" else path.name
    return {
        "path": str(path),
        "name": name,
        "created": run.created,
        "bundle_sha256": run.config.bundle_sha256,
        "cube_id": run.config.cube_id,
        "seed": run.config.seed,
        "passes": run.config.passes,
        "stock_options": run.stocks.get("options"),
        "strata_source": (run.strata.get("options") or {}).get("strata_source"),
    }


def _stratum_tables(
    a: Any,
    b: Any,
    strata: str | Path | None,
    field: str | None,
    scheduler: str | None,
    workers: int | None,
    progress: bool,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both runs' stratum tables, computing a missing one from ``strata``; checked first."""
    have = {which: _has_strata(run) for run, which in ((a, "A"), (b, "B"))}
    for run, which in ((a, "A"), (b, "B")):
        if have[which]:
            _check_strata(run, which, strata, field)
        elif strata is None:
            other = (b if which == "A" else a).strata.get("options") or {}
            hint = f", e.g. --strata {other['strata_source']} as the other run" if other else ""
            raise ConfigError(
                f"run {which} {str(run.path)!r} has no stratum table ({_STRATA_CSV}) and no "
                f"strata were given; pass --strata S{hint} (Python: strata=) or run "
                f"`socmap strata {run.path} --strata S` first"
            )
    tables = []
    for run, which in ((a, "A"), (b, "B")):
        if not have[which]:
            from socmap.strata import strata_for_run

            assert strata is not None  # checked above
            strata_for_run(
                run.path, strata, field=field or "stratum", scheduler=scheduler,
                workers=workers, progress=progress,
            )  # fmt: skip
        tables.append(
            pd.read_csv(
                run.path / _STRATA_CSV,
                dtype={"stratum": str, "layer": str},
                keep_default_na=False,  # a stratum called "NA" is a stratum
                na_values=[""],
            )
        )
    return tables[0], tables[1]


def _has_strata(run: Any) -> bool:
    return bool(
        (run.path / _STRATA_CSV).is_file() and run.strata.get("status") in ("computed", "complete")
    )


def _check_strata(run: Any, which: str, strata: str | Path | None, field: str | None) -> None:
    """Refuse a stratum table of stale stocks, or of other strata than the ones given."""
    from socmap._io import VECTOR_SUFFIXES
    from socmap._records import tree_sha256

    options = run.strata.get("options") or {}
    stale = sorted(k for k, v in (run.stocks.get("options") or {}).items() if options.get(k) != v)
    if stale:
        raise ConfigError(
            f"the stratum table of run {which} {str(run.path)!r} was computed with other stock "
            f"options (differ in {stale!r}); recompute it with `socmap strata {run.path} "
            f"--strata {options.get('strata_source', 'S')}`"
        )
    if strata is None:
        return
    path = Path(str(strata))
    ident = tree_sha256(path) if path.exists() else f"band:{strata}"
    other_field = (
        path.suffix.lower() in VECTOR_SUFFIXES
        and field is not None
        and options.get("strata_field") != field
    )
    if options.get("strata_sha256") != ident or other_field:
        raise ConfigError(
            f"run {which} {str(run.path)!r} has a stratum table of other strata "
            f"({options.get('strata_source')!r}, field {options.get('strata_field')!r}) than "
            f"{str(strata)!r}; leave strata out to compare the existing tables, or recompute "
            f"them with `socmap strata {run.path} --strata {strata}`"
        )


# ---------------------------------------------------------------------- maps
def _write_change(
    a: Any, b: Any, layers: list[str], store: Path, *, progress: bool
) -> dict[str, dict[str, float]]:
    """Write ``change(stat, depth, y, x)`` tile by tile; count and measure per layer."""
    import zarr

    from socmap.predict._run import write_template

    grid, chunk = a.grid, int(a.config.chunk)
    write_template(store, grid, layers, chunk, _change_kind())
    out = zarr.open_array(store=str(store / "change"), mode="r+", zarr_format=3)
    arrays, picks = [], []
    for run in (a, b):
        ds = run.open("stock.zarr")
        stat_names = [str(s) for s in ds["stat"].values]
        depths = [str(d) for d in ds["depth"].values]
        arrays.append(zarr.open_array(store=str(run.path / "stock.zarr" / "stock"), mode="r"))
        picks.append(
            (stat_names.index("mean"), stat_names.index("sd"), [depths.index(x) for x in layers])
        )
    keys = ("compared", "nodata_a_only", "nodata_b_only", "nodata_both", "area_ha_compared",
            "_sum_change_area", "area_ha_increase", "area_ha_decrease")  # fmt: skip
    acc = {lay: dict.fromkeys(keys, 0.0) for lay in layers}
    centre = grid.centre_lonlat
    tiles = list(grid.tiles(chunk))
    for tile in track(tiles, "comparing tiles") if progress else tiles:
        r, c = tile.core.slices
        # one tile of both runs: (layers, h, w) of mean and sd each
        (ma, sa), (mb, sb) = (
            (np.asarray(arr[m, :, r, c])[d], np.asarray(arr[s, :, r, c])[d])
            for arr, (m, s, d) in zip(arrays, picks, strict=True)
        )
        res = change_stats(ma, sa, mb, sb)
        out[:, :, r, c] = np.stack([res[k] for k in CHANGE_STATS]).astype(np.float32)
        area = grid.window(tile.core).pixel_areas_m2(centre) / 1e4
        ok_a = np.isfinite(ma) & np.isfinite(sa)
        ok_b = np.isfinite(mb) & np.isfinite(sb)
        for k, lay in enumerate(layers):
            both = ok_a[k] & ok_b[k]
            tot = acc[lay]
            tot["compared"] += int(both.sum())
            tot["nodata_a_only"] += int((~ok_a[k] & ok_b[k]).sum())
            tot["nodata_b_only"] += int((ok_a[k] & ~ok_b[k]).sum())
            tot["nodata_both"] += int((~ok_a[k] & ~ok_b[k]).sum())
            tot["area_ha_compared"] += float(area[both].sum())
            tot["_sum_change_area"] += float((res["mean"][k][both] * area[both]).sum())
            tot["area_ha_increase"] += float(area[res["significant"][k] == 1].sum())
            tot["area_ha_decrease"] += float(area[res["significant"][k] == -1].sum())
    summary = {}
    for lay, tot in acc.items():
        total = tot.pop("_sum_change_area")
        tot["mean_change_t_c_ha"] = (
            total / tot["area_ha_compared"] if tot["area_ha_compared"] > 0 else math.nan
        )
        for name in ("compared", "nodata_a_only", "nodata_b_only", "nodata_both"):
            tot[name] = int(tot[name])
        summary[lay] = tot
    return summary


def _change_kind() -> Any:
    """Return the change map as a run-engine layer kind (a store template; no tile function)."""
    from socmap.predict._run import LayerKind

    return LayerKind(
        "change",
        CHANGE_STORE,
        "",
        "t/ha",
        "change of soil organic carbon stock, run B - run A",
        stats=CHANGE_STATS,
        attrs=(
            ("stat_units", json.dumps(_STAT_UNITS)),
            ("significant_classes",
             json.dumps({"1": "90 % interval above 0", "0": "contains 0", "-1": "below 0"})),
            ("independence", INDEPENDENCE),
        ),
    )  # fmt: skip


def _export(
    grid: Any,
    chunk: int,
    root: Path,
    layers: list[str],
    names: tuple[str, str],
    *,
    progress: bool,
) -> dict[str, list[str]]:
    """COGs of every (layer, stat) and one three-panel quicklook per layer."""
    import zarr

    from socmap.predict._export import Plane, write_cog

    array = zarr.open_array(store=str(root / CHANGE_STORE / "change"), mode="r", zarr_format=3)
    (root / "cogs").mkdir()
    (root / "quicklooks").mkdir()
    cogs, pngs = [], []
    items = list(enumerate(layers))
    for d, layer in track(items, "writing change COGs") if progress else items:
        paths = {}
        for s, stat in enumerate(CHANGE_STATS):
            cog = root / "cogs" / f"change_{layer}_{stat}.tif"
            write_cog(
                Plane(array, s, d), cog, grid, chunk=chunk, units=_STAT_UNITS[stat],
                description=f"stock change {layer} (B - A): {_STAT_TITLES[stat]}",
                tags={"socmap_stat": stat, "socmap_depth": layer,
                      "socmap_variable": "stock_change"},
            )  # fmt: skip
            paths[stat] = cog
            cogs.append(str(cog.relative_to(root)))
        png = root / "quicklooks" / f"change_{layer}.png"
        _quicklook(paths, png, f"SOC stock change {layer}: {names[1]} − {names[0]}")
        pngs.append(str(png.relative_to(root)))
    return {"cogs": cogs, "quicklooks": pngs}


def _overview(cog: Path) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Read a COG from its overviews, at most 800 pixels across (NaN nodata), and its extent."""
    from rasterio.enums import Resampling

    from socmap.predict._export import read_overview

    return read_overview(cog, Resampling.nearest)


def _quicklook(cogs: dict[str, Path], png: Path, title: str) -> Path:
    """Mean change on a diverging scale centred on 0, its sd, and the significance classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import BoundaryNorm, ListedColormap

    mean, extent = _overview(cogs["mean"])
    sd, _ = _overview(cogs["sd"])
    sig, _ = _overview(cogs["significant"])
    h, w = mean.shape
    fig, axes = plt.subplots(1, 3, figsize=(15.0, 5.0 * h / w + 1.2))
    finite = np.abs(mean[np.isfinite(mean)])
    # symmetric limits put 0 at the middle of the diverging map (white: no change)
    lim = float(np.percentile(finite, 98)) if finite.size else 0.0
    lim = lim if lim > 0 else 1e-9
    panels = [
        (mean, "BrBG", -lim, lim, "mean change, B − A", "t C/ha", None),
        (sd, "magma", None, None, "sd of the change (independent runs)", "t C/ha", None),
        (sig, ListedColormap(["#a6611a", "#e8e8e8", "#018571"]), None, None,
         "90 % interval excludes 0", None, BoundaryNorm([-1.5, -0.5, 0.5, 1.5], 3)),
    ]  # fmt: skip
    for ax, (data, cmap, vmin, vmax, heading, units, norm) in zip(axes, panels, strict=True):
        if vmin is None and norm is None:
            vals = data[np.isfinite(data)]
            vmin, vmax = (float(v) for v in np.percentile(vals, [2, 98])) if vals.size else (0, 1)
            vmax = vmax if vmax > vmin else vmin + 1e-9
        im = ax.imshow(data, cmap=cmap, vmin=None if norm else vmin, vmax=None if norm else vmax,
                       norm=norm, extent=extent, interpolation="nearest")  # fmt: skip
        ax.set_title(heading, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")  # map coordinates, not 1e6 offsets
        bar = fig.colorbar(im, ax=ax, shrink=0.8, label=units)
        if norm is not None:
            bar.set_ticks([-1, 0, 1], labels=["decrease", "none", "increase"])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(png, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return png


# ---------------------------------------------------------------------- metadata
def _table_metadata(a: Any, b: Any, table: pd.DataFrame, layers: list[str]) -> dict[str, Any]:
    from socmap.strata._maps import APPROXIMATION

    def strata_of(run: Any) -> dict[str, Any]:
        opts = run.strata.get("options") or {}
        return {k: opts.get(k) for k in ("strata_source", "strata_field", "strata_sha256")}

    presence = table.drop_duplicates("stratum").set_index("stratum")["presence"]
    sources = strata_of(a), strata_of(b)
    return {
        "format": "socmap-stratum-change/1",
        "run_a": str(a.path.resolve()),
        "run_b": str(b.path.resolve()),
        "layers": layers,
        "strata_a": sources[0],
        "strata_b": sources[1],
        "same_strata_source": sources[0]["strata_sha256"] == sources[1]["strata_sha256"],
        "strata_only_a": [str(s) for s in presence.index[presence == "only_a"]],
        "strata_only_b": [str(s) for s in presence.index[presence == "only_b"]],
        "strata_area_differs": sorted(
            {str(s) for s in table.loc[table["area_differs"], "stratum"]}
        ),
        "units": {
            "area_ha": "ha; area_ha = min(area_ha_a, area_ha_b), the area the totals use",
            "mean_*_t_c_ha, change_t_c_ha": "t C/ha (= Mg C/ha), area-weighted stratum means",
            "total_change_mg_c": "Mg C = change_t_c_ha x area_ha",
            "total_change_t_co2e": f"t CO2e = Mg C x 44/12 ({CO2_PER_C:.6f})",
        },
        "formulas": {
            "change_t_c_ha": "mean_b_t_c_ha - mean_a_t_c_ha",
            "se_change_t_c_ha": "sqrt(se_a_t_c_ha^2 + se_b_t_c_ha^2)",
            "ci90": f"change -/+ {Z90:.4f} se_change (normal approximation)",
            "ci95": f"change -/+ {Z95:.4f} se_change (normal approximation)",
            "p_increase": "Phi(change / se_change)",
            "significant_90": "the 90 % interval excludes 0",
            "conservative_change_t_c_ha": CONSERVATIVE,
            "area_differs": (
                f"|area_ha_a - area_ha_b| > {AREA_RTOL:g} x area_ha_b: the runs' means cover "
                "different pixels of the stratum (other strata or other nodata); recompute "
                "both tables on a common mask for a verifiable change"
            ),
        },
        "independence": INDEPENDENCE,
        "normal_approximation": NORMAL,
        "stratum_se": (
            "se_a and se_b are the runs' own stratum SEs (strata.json): " + APPROXIMATION
        ),
    }

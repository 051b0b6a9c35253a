"""Stratum tables from draws of stratum mean stocks: totals, intervals, cores, flags."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from socmap.errors import ConfigError
from socmap.units import CO2_PER_C

__all__ = [
    "CO2_PER_C",
    "StrataConfig",
    "core_stocks",
    "cores_needed",
    "project_table",
    "stratum_table",
]


@dataclass(frozen=True)
class StrataConfig:
    """Reporting rules; defaults follow VM0033 and the blue-carbon MMRV workflow.

    Parameters
    ----------
    target_relative_error
        Target half-width of the interval as a fraction of the mean (0.20).
    target_confidence
        Confidence of that interval (0.95).
    conservative_confidence
        Two-sided confidence whose lower bound is the conservative estimate (0.90).
    min_cores
        Minimum cores per stratum (3).
    """

    target_relative_error: float = 0.20
    target_confidence: float = 0.95
    conservative_confidence: float = 0.90
    min_cores: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.target_relative_error < 1:
            raise ConfigError(
                f"target relative error {self.target_relative_error!r} must be in (0, 1), "
                "e.g. 0.2 for 20 %"
            )
        for name in ("target_confidence", "conservative_confidence"):
            value = getattr(self, name)
            if not 0.5 <= value < 1:
                raise ConfigError(f"{name} {value!r} must be in [0.5, 1), e.g. 0.9 or 0.95")
        if self.min_cores < 1:
            raise ConfigError(f"min_cores {self.min_cores!r} must be >= 1")

    def to_dict(self) -> dict[str, float | int]:
        """JSON form, recorded in the output metadata."""
        return asdict(self)


def cores_needed(cv: float, n_cores: int, relative_error: float, confidence: float) -> int:
    """Smallest number of cores ``n`` with ``(t CV / E)^2 <= n`` (Cochran 1977, §4.4).

    ``t`` is Student's two-sided quantile at ``confidence`` with ``n - 1`` degrees of
    freedom, so the answer is the fixed point of ``n = (t CV / E)^2``, not that formula with
    the degrees of freedom of the cores at hand (with 2 cores, t = 12.7 would ask for
    hundreds). ``n_cores`` is accepted for the record and does not change the answer.

    Examples
    --------
    >>> cores_needed(0.5, 10, 0.2, 0.95)  # t(0.975, 26) = 2.056: (2.056 * 0.5 / 0.2)^2 = 26.4
    27
    >>> cores_needed(0.0, 5, 0.2, 0.95)
    1
    """
    if not math.isfinite(cv) or cv < 0:
        raise ConfigError(f"coefficient of variation {cv!r} must be a finite number >= 0")
    if cv == 0:
        return 1
    q = 0.5 + confidence / 2
    n = max(2, math.ceil((float(stats.norm.ppf(q)) * cv / relative_error) ** 2))
    while (float(stats.t.ppf(q, n - 1)) * cv / relative_error) ** 2 > n:
        n += 1
    return n


def _cv(values: npt.ArrayLike) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2 or v.mean() <= 0:
        return float("nan")
    return float(v.std(ddof=1) / v.mean())


def stratum_table(
    draws: Mapping[str, npt.ArrayLike],
    areas_ha: Mapping[str, float],
    layers: Sequence[str],
    core_stocks: pd.DataFrame | None = None,
    config: StrataConfig | None = None,
) -> pd.DataFrame:
    """One row per stratum and layer with the reported quantities (see the module docstring).

    Parameters
    ----------
    draws
        Stratum -> ``(T, L)`` draws of the stratum's area-weighted mean stock (t C/ha), one
        column per layer.
    areas_ha
        Stratum -> mapped area (ha) the mean applies to.
    layers
        Labels of the ``L`` layers (``"0-15cm"``, ``"0-30cm"``, ...).
    core_stocks
        Optional ``stratum, layer, stock_t_ha`` rows, one per core and layer, for the core
        counts, CV and additional cores. Strata without cores get ``n_cores`` 0.
    config
        Reporting rules (:class:`StrataConfig`).

    Returns
    -------
    pandas.DataFrame
        Columns ``stratum, layer, area_ha, mean_t_c_ha, se_t_c_ha, ci90_low, ci90_high,
        ci95_low, ci95_high, relative_error, conservative_t_c_ha, total_mg_c,
        total_t_co2e, conservative_mg_c, conservative_t_co2e, n_cores, cv_cores,
        cores_needed, additional_cores, min_cores_ok, precision_ok``.

    Raises
    ------
    ConfigError
        Draws of the wrong shape, a stratum without an area, fewer than 2 draws.

    Examples
    --------
    >>> d = {"marsh": np.array([[10.0], [12.0], [14.0]])}
    >>> t = stratum_table(d, {"marsh": 2.0}, ["0-30cm"])
    >>> t.loc[0, ["mean_t_c_ha", "total_mg_c"]].tolist()
    [12.0, 24.0]
    """
    cfg = config or StrataConfig()
    missing = [s for s in draws if s not in areas_ha]
    if missing:
        raise ConfigError(f"strata {missing!r} have draws but no area; give areas_ha for them")
    lo90, hi90 = 5.0, 95.0
    c95 = cfg.target_confidence
    tail = 100 * (1 - c95) / 2
    cons = 100 * (1 - cfg.conservative_confidence) / 2
    rows = []
    for stratum, raw in draws.items():
        d = np.asarray(raw, dtype=np.float64)
        if d.ndim != 2 or d.shape[1] != len(layers) or d.shape[0] < 2:
            raise ConfigError(
                f"draws of stratum {stratum!r} have shape {d.shape!r}; need (draws >= 2, "
                f"{len(layers)} layers)"
            )
        area = float(areas_ha[stratum])
        for k, layer in enumerate(layers):
            col = d[:, k]
            mean = float(col.mean())
            lo95, hi95 = (float(v) for v in np.percentile(col, [tail, 100 - tail]))
            conservative = float(np.percentile(col, cons))
            cores = _cores(core_stocks, stratum, layer)
            cv = _cv(cores)
            need = None
            if math.isfinite(cv):
                need = cores_needed(cv, len(cores), cfg.target_relative_error, c95)
            rel = (hi95 - lo95) / 2 / mean if mean > 0 else float("nan")
            rows.append(
                {
                    "stratum": stratum,
                    "layer": layer,
                    "area_ha": area,
                    "mean_t_c_ha": mean,
                    "se_t_c_ha": float(col.std(ddof=1)),
                    "ci90_low": float(np.percentile(col, lo90)),
                    "ci90_high": float(np.percentile(col, hi90)),
                    "ci95_low": lo95,
                    "ci95_high": hi95,
                    "relative_error": rel,
                    "conservative_t_c_ha": conservative,
                    "total_mg_c": mean * area,
                    "total_t_co2e": mean * area * CO2_PER_C,
                    "conservative_mg_c": conservative * area,
                    "conservative_t_co2e": conservative * area * CO2_PER_C,
                    "n_cores": len(cores),
                    "cv_cores": cv,
                    "cores_needed": need,
                    "additional_cores": None if need is None else max(0, need - len(cores)),
                    "min_cores_ok": len(cores) >= cfg.min_cores,
                    "precision_ok": bool(rel <= cfg.target_relative_error),
                }
            )
    table = pd.DataFrame(rows)
    for name in ("cores_needed", "additional_cores"):
        table[name] = table[name].astype("Int64")
    return table


def project_table(
    draws: Mapping[str, npt.ArrayLike],
    areas_ha: Mapping[str, float],
    layers: Sequence[str],
    config: StrataConfig | None = None,
) -> pd.DataFrame:
    """Project totals per layer: every stratum's draws summed, draw by draw.

    Draw ``t`` of every stratum comes from the same whole-map realisation, so the project's
    draw ``t`` is ``sum_s area_s * draws_s[t]`` and its percentiles are the project's
    intervals; adding the strata's own intervals instead would ignore that their errors
    move together. Strata with non-finite draws (no mapped pixel) are left out and named.

    Parameters
    ----------
    draws, areas_ha, layers, config
        As in :func:`stratum_table`.

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer, area_ha, strata, strata_left_out, mean_t_c_ha,
        total_mg_c, total_ci95_low, total_ci95_high, relative_error, total_t_co2e,
        co2e_ci95_low, co2e_ci95_high, conservative_t_co2e`` (CO₂e in t, C in Mg).

    Examples
    --------
    >>> d = {"a": np.array([[10.0], [12.0]]), "b": np.array([[2.0], [4.0]])}
    >>> t = project_table(d, {"a": 1.0, "b": 3.0}, ["0-30cm"])
    >>> t.loc[0, ["area_ha", "total_mg_c", "mean_t_c_ha"]].tolist()
    [4.0, 20.0, 5.0]
    """
    cfg = config or StrataConfig()
    used = {k: np.asarray(v, dtype=np.float64) for k, v in draws.items()}
    left_out = sorted(k for k, v in used.items() if not np.isfinite(v).all())
    used = {k: v for k, v in used.items() if k not in left_out}
    missing = [k for k in used if k not in areas_ha]
    if missing:
        raise ConfigError(f"strata {missing!r} have draws but no area; give areas_ha for them")
    tail = 100 * (1 - cfg.target_confidence) / 2
    cons = 100 * (1 - cfg.conservative_confidence) / 2
    area = float(sum(float(areas_ha[k]) for k in used))
    rows = []
    for k, layer in enumerate(layers):
        if used:
            total = np.sum([float(areas_ha[s]) * d[:, k] for s, d in used.items()], axis=0)
        else:
            total = np.full(2, np.nan)
        mean = float(total.mean())
        lo, hi = (float(v) for v in np.percentile(total, [tail, 100 - tail]))
        rows.append(
            {
                "layer": layer,
                "area_ha": area,
                "strata": len(used),
                "strata_left_out": ", ".join(left_out),
                "mean_t_c_ha": mean / area if area > 0 else float("nan"),
                "total_mg_c": mean,
                "total_ci95_low": lo,
                "total_ci95_high": hi,
                "relative_error": (hi - lo) / 2 / mean if mean > 0 else float("nan"),
                "total_t_co2e": mean * CO2_PER_C,
                "co2e_ci95_low": lo * CO2_PER_C,
                "co2e_ci95_high": hi * CO2_PER_C,
                "conservative_t_co2e": float(np.percentile(total, cons)) * CO2_PER_C,
            }
        )
    return pd.DataFrame(rows)


def _cores(core_stocks: pd.DataFrame | None, stratum: str, layer: str) -> np.ndarray:
    if core_stocks is None or core_stocks.empty:
        return np.empty(0)
    absent = [c for c in ("stratum", "layer", "stock_t_ha") if c not in core_stocks.columns]
    if absent:
        raise ConfigError(
            f"core stocks lack columns {absent!r}; give one row per core and layer with "
            "stratum, layer, stock_t_ha"
        )
    pick = (core_stocks["stratum"].astype(str) == str(stratum)) & (core_stocks["layer"] == layer)
    values = core_stocks.loc[pick, "stock_t_ha"].to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def core_stocks(
    cores: pd.DataFrame,
    intervals: Sequence[tuple[float, float]],
    totals: Sequence[tuple[float, float]] = (),
    *,
    cf: float = 0.0,
) -> pd.DataFrame:
    """Stocks (t C/ha) of each core for the mapped intervals and cumulative totals.

    Parameters
    ----------
    cores
        Harmonised core samples: ``site_id, stratum, top_cm, bottom_cm, soc_g_kg`` and,
        where measured, ``bd_g_cm3``. Samples without BD take the median of the shipped
        pedotransfer function (:class:`socmap.stocks.PedotransferBD`).
    intervals
        Depth intervals of the map (cm); a core's sample must match an interval exactly.
    totals
        Cumulative depths (cm), each the sum of the intervals it covers.
    cf
        Coarse-fragment volume fraction of the cores.

    Returns
    -------
    pandas.DataFrame
        ``site_id, stratum, layer, stock_t_ha, bd_source`` (``measured`` or ``ptf``); NaN
        where the core lacks an interval (never dropped).

    Examples
    --------
    >>> c = pd.DataFrame({"site_id": ["a", "a"], "stratum": "m", "top_cm": [0.0, 15.0],
    ...                   "bottom_cm": [15.0, 30.0], "soc_g_kg": [20.0, 10.0],
    ...                   "bd_g_cm3": [1.0, 1.2]})
    >>> core_stocks(c, [(0, 15), (15, 30)], [(0, 30), (0, 20)])["stock_t_ha"].tolist()
    [30.0, 18.0, 48.0, 36.0]
    """
    from socmap.stocks import PedotransferBD, stock_t_ha

    need = ["site_id", "stratum", "top_cm", "bottom_cm", "soc_g_kg"]
    absent = [c for c in need if c not in cores.columns]
    if absent:
        raise ConfigError(
            f"cores lack columns {absent!r}; give harmonised samples with {need!r} "
            "(and bd_g_cm3 where measured)"
        )
    table = cores.copy()
    soc = table["soc_g_kg"].to_numpy(dtype=np.float64)
    mid = (table["top_cm"].to_numpy(float) + table["bottom_cm"].to_numpy(float)) / 2
    measured = (
        table["bd_g_cm3"].to_numpy(dtype=np.float64)
        if "bd_g_cm3" in table.columns
        else np.full(len(table), np.nan)
    )
    ok_soc = np.isfinite(soc)
    ptf = np.full(len(table), np.nan)
    if ok_soc.any():
        ptf[ok_soc] = PedotransferBD().predict(soc[ok_soc], mid[ok_soc])
    bd = np.where(np.isfinite(measured), measured, ptf)
    table["_stock"] = stock_t_ha(
        np.where(ok_soc, soc, np.nan),
        bd,
        (table["bottom_cm"] - table["top_cm"]).to_numpy(float),
        cf,
    )
    table["_bd_source"] = np.where(np.isfinite(measured), "measured", "ptf")
    # One pass over the samples (a boolean filter per core and interval was quadratic):
    # cores in order of first appearance, and each core's first sample of each interval.
    cores_seen: dict[tuple[Any, Any], None] = {}
    first: dict[tuple[Any, Any, float, float], tuple[float, str]] = {}
    for site, stratum, top, bottom, stock, source in zip(
        table["site_id"].tolist(),
        table["stratum"].tolist(),
        table["top_cm"].to_numpy(float).tolist(),
        table["bottom_cm"].to_numpy(float).tolist(),
        table["_stock"].tolist(),
        table["_bd_source"].tolist(),
        strict=True,
    ):
        if pd.isna(site) or pd.isna(stratum):
            continue  # as groupby: a core without a site or stratum has no row
        cores_seen.setdefault((site, stratum), None)
        first.setdefault((site, stratum, top, bottom), (float(stock), str(source)))
    rows = []
    for site, stratum in cores_seen:
        by_interval = {}
        for top, bottom in intervals:
            value, source = first.get((site, stratum, float(top), float(bottom)), (np.nan, ""))
            by_interval[(top, bottom)] = value
            rows.append((site, stratum, f"{top:g}-{bottom:g}cm", value, source))
        for top, bottom in totals:
            # as in socmap.stocks.cumulative_draws: each interval weighted by its overlap
            parts = [
                v * (min(b, bottom) - max(a, top)) / (b - a)
                for (a, b), v in by_interval.items()
                if min(b, bottom) > max(a, top)
            ]
            value = float(np.sum(parts)) if parts else float("nan")
            rows.append((site, stratum, f"{top:g}-{bottom:g}cm", value, "sum"))
    return pd.DataFrame(rows, columns=["site_id", "stratum", "layer", "stock_t_ha", "bd_source"])

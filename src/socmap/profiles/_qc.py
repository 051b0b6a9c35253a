"""Quality control: flag problems in a canonical profile table, never drop them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS, Geod, Transformer

from socmap._io import atomic_path
from socmap._progress import track
from socmap._tables import markdown_table
from socmap.errors import (
    ProfileValidationError,
    SocmapError,
    UnitsError,
)
from socmap.grid import normalise_crs
from socmap.profiles._schema import (
    _NUMERIC,
    REQUIRED_COLUMNS,
    _as_str,
    _check_columns,
    _check_not_empty,
    _one_line,
    _parse_numeric,
)
from socmap.units import BD_RANGE

#: Where a projected point may lie outside its CRS's area of use before it is flagged (degrees).
AREA_OF_USE_MARGIN_DEG = 1.0
#: Depth tolerance (cm) for overlaps; absorbs float32 noise in legacy tables.
DEPTH_TOLERANCE_CM = 1e-3
#: Percent-units heuristic: topsoil is ``top_cm`` below this depth.
PERCENT_TOPSOIL_CM = 30.0
#: A source whose topsoil SOC median is below this (g/kg) ...
PERCENT_MEDIAN_BELOW = 2.5
#: ... and whose topsoil 99th percentile is at most this (organic carbon cannot exceed ~60 %;
#: a percentile, not the max, so a few out-of-range values do not hide a whole table in %) ...
PERCENT_Q99_AT_MOST = 60.0
#: ... over at least this many topsoil horizons is likely in %.
PERCENT_MIN_SAMPLES = 20
#: The tenfold mirror: a source whose topsoil SOC median is above this (g/kg, 6 % OC) ...
TENFOLD_MEDIAN_ABOVE = 60.0
#: ... and at most this (above it, peat: a g/kg table read as % rarely reaches it) ...
TENFOLD_MEDIAN_AT_MOST = 350.0
#: ... unless its bulk density median is below this (g/cm3: organic soils are light), is
#: likely g/kg read as %.
TENFOLD_BD_BELOW = 1.0
#: A site whose topsoil SOC values are all below this (g/kg) may be in % (warning only).
PERCENT_SITE_BELOW = 1.0
#: A source whose deepest bottom is at most this (cm) and whose depths are fractional has
#: its depths in metres (a 0-0.15, 0.15-0.3 m table read as cm).
METRE_MAX_BOTTOM_CM = 3.0

#: QC checks in the order they run: name -> (severity, description).
QC_CHECKS: dict[str, tuple[str, str]] = {
    "missing_site_id": ("error", "site_id is empty"),
    "site_without_samples": (
        "error",
        "a site with no horizon data (no depths, no SOC), e.g. a blue-carbon core location "
        "with no samples",
    ),
    "missing_crs": ("error", "crs is empty"),
    "missing_coordinates": (
        "error",
        "x or y is missing, e.g. a blue-carbon sample whose core has no location",
    ),
    "coordinates_out_of_range": (
        "error",
        "geographic: longitude outside [-180, 180] or latitude outside [-90, 90]; projected: "
        f"outside the CRS's area of use (+{AREA_OF_USE_MARGIN_DEG:g}°)",
    ),
    "swapped_lat_lon": (
        "error",
        "x and y look swapped: |y| > 90 while |x| <= 90, or swapping puts an outside point "
        "inside the CRS's area of use",
    ),
    "site_multiple_locations": (
        "error",
        "one site_id at locations further apart than location_tolerance_m (geodesic)",
    ),
    "missing_depth": ("error", "top_cm or bottom_cm is missing"),
    "negative_depth": ("error", "top_cm or bottom_cm is negative"),
    "nonpositive_thickness": ("error", "bottom_cm <= top_cm"),
    "likely_metre_depths": (
        "error",
        f"a source whose deepest bottom is <= {METRE_MAX_BOTTOM_CM:g} cm with fractional "
        "depths: depths are likely in m rather than cm",
    ),
    "overlapping_horizons": ("error", "two horizons of one site overlap in depth"),
    "missing_soc": ("warning", "soc_g_kg is missing; the horizon is kept"),
    "soc_out_of_range": ("error", "soc_g_kg outside soc_range"),
    "bd_out_of_range": ("error", "bd_g_cm3 outside bd_range"),
    "cf_out_of_range": ("error", "cf_vol outside [0, 1]"),
    "likely_percent_units": (
        "error",
        f"a source whose topsoil (top < {PERCENT_TOPSOIL_CM:g} cm) SOC median is < "
        f"{PERCENT_MEDIAN_BELOW:g} and 99th percentile <= {PERCENT_Q99_AT_MOST:g} over >= "
        f"{PERCENT_MIN_SAMPLES} horizons: SOC is likely in % rather than g/kg",
    ),
    "likely_gkg_read_as_percent": (
        "error",
        f"a source whose topsoil SOC median is in ({TENFOLD_MEDIAN_ABOVE:g}, "
        f"{TENFOLD_MEDIAN_AT_MOST:g}] g/kg over >= {PERCENT_MIN_SAMPLES} horizons, with no bulk "
        f"density or a median of >= {TENFOLD_BD_BELOW:g} g/cm3: organic-soil carbon on "
        "mineral soils, likely g/kg read as % (ten times too high)",
    ),
    "likely_percent_site": (
        "warning",
        f"a site whose topsoil SOC values are all < {PERCENT_SITE_BELOW:g} g/kg: possibly % "
        "(or a very low-carbon arid soil)",
    ),
}
_FLAG_COLUMNS = ("row", "site_id", "check", "severity", "value", "message")


# ---------------------------------------------------------------------------- QC
def check_qc_names(
    accept: Sequence[str],
    option: str = "--accept-qc",
    error: type[SocmapError] = ProfileValidationError,
) -> None:
    """Refuse names in ``accept`` that are not QC checks (:data:`QC_CHECKS`).

    Raises
    ------
    SocmapError
        ``error``, naming ``option`` (the CLI option or config key), the unknown names and
        the choices.
    """
    unknown = sorted(set(accept) - set(QC_CHECKS))
    if unknown:
        raise error(f"{option} {unknown!r} names no QC check; choose from {list(QC_CHECKS)!r}")


@dataclass(frozen=True, eq=False)
class QCReport:
    """Result of :func:`qc_profiles`.

    Attributes
    ----------
    flags
        One row per problem: ``row`` (positional row of the table, ``<NA>`` for site- or
        source-level problems), ``site_id``, ``check`` (a key of :data:`QC_CHECKS`),
        ``severity`` (``"error"`` or ``"warning"``), ``value`` (the offending value as text)
        and ``message`` (what is wrong and how to fix it).
    summary
        One row per check in :data:`QC_CHECKS` (zero counts included): ``check``,
        ``severity``, ``n_rows`` (table rows affected), ``n_sites`` (sites affected),
        ``description``.
    table
        The input table with a ``qc_flags`` column: the ``;``-joined check names of each row
        (site- and source-level checks mark every row of the site or source), ``""`` if clean.
    """

    flags: pd.DataFrame
    summary: pd.DataFrame
    table: pd.DataFrame

    def errors(self) -> pd.DataFrame:
        """Return the error-level flags."""
        return self.flags[self.flags["severity"] == "error"]

    def warnings(self) -> pd.DataFrame:
        """Return the warning-level flags."""
        return self.flags[self.flags["severity"] == "warning"]

    @property
    def ok(self) -> bool:
        """Whether no error-level problem was found (warnings allowed)."""
        return bool((self.flags["severity"] != "error").all())

    def require(self, accept: Sequence[str] = ()) -> dict[str, int]:
        """Stop on error-level checks unless the user accepted them by name.

        Training on a table that fails QC (SOC in % read as g/kg, overlapping horizons)
        gives a confident wrong model, so errors stop it; ``accept`` names the checks the
        user has looked at and wants to train with anyway.

        Parameters
        ----------
        accept
            Check names (keys of :data:`QC_CHECKS`) to let through.

        Returns
        -------
        dict
            ``{check: rows}`` of the accepted error checks that were found (for provenance).

        Raises
        ------
        ProfileValidationError
            An error check not in ``accept`` (each listed with its row and site counts, an
            example and both fixes), or an unknown name in ``accept``.
        """
        check_qc_names(accept)
        found = self.summary[(self.summary["severity"] == "error") & (self.summary["n_rows"] > 0)]
        refused = found[~found["check"].isin(list(accept))]
        if len(refused):
            errors = self.errors()
            listed = "; ".join(
                f"{r.check} ({r.n_rows} rows, {r.n_sites} sites, e.g. "
                f"{errors.loc[errors['check'] == r.check, 'message'].iloc[0]})"
                for r in refused.itertuples(index=False)
            )
            raise ProfileValidationError(
                f"the profiles fail QC: {listed}; fix the table (see `socmap profiles qc`), or "
                f"pass --accept-qc {' --accept-qc '.join(refused['check'])} to train on it "
                "anyway (recorded in the bundle)"
            )
        rows = found["n_rows"].to_numpy(dtype=np.int64).tolist()
        return {str(c): int(n) for c, n in zip(found["check"], rows, strict=True)}


class _Collector:
    """Accumulate flags and the table rows each one marks."""

    def __init__(self, site_ids: np.ndarray) -> None:
        self.site_ids = site_ids
        self.frames: list[pd.DataFrame] = []
        self.marks: list[tuple[np.ndarray, str]] = []

    def rows(
        self, check: str, pos: np.ndarray, values: Sequence[str], messages: Sequence[str]
    ) -> None:
        """Row-level flags at positions ``pos``."""
        if len(pos) == 0:
            return
        self.frames.append(
            pd.DataFrame(
                {
                    "row": pd.array(pos, dtype="Int64"),
                    "site_id": self.site_ids[pos],
                    "check": check,
                    "severity": QC_CHECKS[check][0],
                    "value": list(values),
                    "message": list(messages),
                }
            )
        )
        self.marks.append((np.asarray(pos), check))

    def missing(self, check: str, pos: np.ndarray, message: str) -> None:
        """Row-level flags of a missing value (``nan``) at ``pos``, all with ``message``."""
        self.rows(check, pos, ["nan"] * len(pos), [message] * len(pos))

    def pairs(
        self,
        check: str,
        pos: np.ndarray,
        first: np.ndarray,
        second: np.ndarray,
        message: Callable[[str, str], str],
    ) -> None:
        """Row-level flags at ``pos`` whose value is the pair ``(first[i], second[i])``.

        Parameters
        ----------
        check
            Name of the check (a key of :data:`QC_CHECKS`).
        pos
            Row positions flagged.
        first, second
            The two values of every row, shown with :func:`_fmt`.
        message
            Builds a row's message from its two shown values.
        """
        shown = [(_fmt(first[i]), _fmt(second[i])) for i in pos]
        self.rows(check, pos, [f"({a}, {b})" for a, b in shown], [message(a, b) for a, b in shown])

    def group(self, check: str, site_id: Any, pos: np.ndarray, value: str, message: str) -> None:
        """One flag for a site or source, marking every row in ``pos``."""
        self.frames.append(
            pd.DataFrame(
                {
                    "row": pd.array([pd.NA], dtype="Int64"),
                    "site_id": [site_id],
                    "check": check,
                    "severity": QC_CHECKS[check][0],
                    "value": [value],
                    "message": [message],
                }
            )
        )
        self.marks.append((np.asarray(pos), check))

    def flags(self) -> pd.DataFrame:
        if not self.frames:
            empty = pd.DataFrame({c: pd.Series(dtype="str") for c in _FLAG_COLUMNS})
            empty["row"] = pd.array([], dtype="Int64")
            return empty
        out = pd.concat(self.frames, ignore_index=True)
        for c in ("site_id", "check", "severity", "value", "message"):
            out[c] = out[c].astype("str")
        return out[list(_FLAG_COLUMNS)]

    def marked(self) -> pd.DataFrame:
        if not self.marks:
            return pd.DataFrame({"pos": pd.Series(dtype="int64"), "check": pd.Series(dtype="str")})
        return pd.DataFrame(
            {
                "pos": np.concatenate([m[0] for m in self.marks]).astype("int64"),
                "check": np.concatenate(
                    [np.full(len(m[0]), m[1], dtype=object) for m in self.marks]
                ),
            }
        )


def _fmt(v: Any) -> str:
    """Short text of a number (``nan`` for missing)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "nan"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return str(v)


def _inside(
    lon: np.ndarray, lat: np.ndarray, bounds: tuple[float, ...], margin: float
) -> np.ndarray:
    """Whether points lie inside an area of use ``(west, south, east, north)`` (+ margin)."""
    west, south, east, north = bounds
    ok_lat = (lat >= south - margin) & (lat <= north + margin)
    if west <= east:
        ok_lon = (lon >= west - margin) & (lon <= east + margin)
    else:  # crosses the antimeridian
        ok_lon = (lon >= west - margin) | (lon <= east + margin)
    return np.asarray(ok_lat & ok_lon & np.isfinite(lon) & np.isfinite(lat))


@dataclass
class _Ctx:
    """State the QC checks share."""

    t: pd.DataFrame
    site: np.ndarray
    site_ok: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    soc: np.ndarray
    empty_site: np.ndarray
    site_rows: dict[Any, np.ndarray]
    lon: np.ndarray
    lat: np.ndarray
    out: _Collector
    soc_range: tuple[float, float]
    bd_range: tuple[float, float]
    tolerance_m: float


def _check_ids(c: _Ctx) -> None:
    c.out.missing(
        "missing_site_id",
        np.flatnonzero(~c.site_ok),
        "site_id is empty; give every horizon the id of its profile or core",
    )
    for sid in pd.unique(c.site[c.empty_site & c.site_ok]):
        rows = c.site_rows[sid]
        if c.empty_site[rows].all():
            c.out.group(
                "site_without_samples",
                sid,
                rows,
                "no depths, no SOC",
                f"site {sid!r} has no horizon data (no depths, no SOC); add its samples (for "
                "blue-carbon cores: rows in core_samples.csv) or remove the site",
            )


def _check_coordinates(c: _Ctx) -> None:
    t = c.t
    x = t["x"].to_numpy(dtype=float)
    y = t["y"].to_numpy(dtype=float)
    crs = t["crs"]
    c.out.missing(
        "missing_crs",
        np.flatnonzero(crs.isna().to_numpy()),
        "crs is empty; pass --crs (Python: crs= to read_profiles) or fill the crs column",
    )
    miss = np.isnan(x) | np.isnan(y)
    c.out.pairs(
        "missing_coordinates",
        np.flatnonzero(miss),
        x,
        y,
        lambda a, b: (
            f"x/y is ({a}, {b}); add the site's coordinates (for blue-carbon cores: add the core "
            "to core_locations.csv)"
        ),
    )
    out_pos: list[np.ndarray] = []
    swap_pos: list[np.ndarray] = []
    for name in crs.dropna().unique():
        rows = np.flatnonzero((crs == name).to_numpy() & ~miss)
        if len(rows) == 0:
            continue
        pc = CRS.from_user_input(name)
        xs, ys = x[rows], y[rows]
        aou = pc.area_of_use
        bounds = aou.bounds if aou is not None else None
        if pc.is_geographic:
            lon, lat = xs, ys
            bad = ~np.isfinite(xs) | ~np.isfinite(ys) | (np.abs(xs) > 180) | (np.abs(ys) > 90)
            swapped = (np.abs(ys) > 90) & (np.abs(xs) <= 90)
            if bounds is not None:
                swapped |= ~_inside(xs, ys, bounds, 0.0) & _inside(ys, xs, bounds, 0.0)
        else:
            to_ll = Transformer.from_crs(pc, "EPSG:4326", always_xy=True)
            lon, lat = (np.asarray(v, dtype=float) for v in to_ll.transform(xs, ys))
            if bounds is not None:
                bad = ~_inside(lon, lat, bounds, AREA_OF_USE_MARGIN_DEG)
                slon, slat = (np.asarray(v, dtype=float) for v in to_ll.transform(ys, xs))
                swapped = bad & _inside(slon, slat, bounds, AREA_OF_USE_MARGIN_DEG)
            else:
                bad = ~(np.isfinite(lon) & np.isfinite(lat))
                swapped = np.zeros(len(rows), dtype=bool)
        good = ~bad & np.isfinite(lon) & np.isfinite(lat)
        c.lon[rows[good]] = lon[good]
        c.lat[rows[good]] = lat[good]
        out_pos.append(rows[bad])
        swap_pos.append(rows[swapped])
        where = (
            "longitude [-180, 180] / latitude [-90, 90]"
            if pc.is_geographic
            else f"the area of use of {name} ({aou.name if aou else 'unknown'})"
        )

        def outside(a: str, b: str, where: str = where) -> str:
            return (
                f"(x, y) = ({a}, {b}) is outside {where}; check the CRS and which columns hold "
                "x and y"
            )

        def swapped_axes(a: str, b: str, name: str = name) -> str:
            return (
                f"(x, y) = ({a}, {b}) looks like y/x (latitude/longitude) swapped for {name}; "
                "swap the columns (mapping={'x': ..., 'y': ...})"
            )

        c.out.pairs("coordinates_out_of_range", rows[bad], x, y, outside)
        c.out.pairs("swapped_lat_lon", rows[swapped], x, y, swapped_axes)


def _check_locations(c: _Ctx) -> None:
    t = c.t
    have = np.isfinite(c.lon) & np.isfinite(c.lat) & c.site_ok
    if not have.any():
        return
    pts = pd.DataFrame(
        {
            "site": c.site[have],
            "x": t["x"].to_numpy()[have],
            "y": t["y"].to_numpy()[have],
            "crs": t["crs"].to_numpy()[have],
            "lon": c.lon[have],
            "lat": c.lat[have],
        }
    ).drop_duplicates(["site", "x", "y", "crs"])
    multi = pts[pts["site"].duplicated(keep=False)]
    if multi.empty:
        return
    geod = Geod(ellps="WGS84")
    # All pairs of distinct locations per site, measured in one vectorised call.
    a_idx: list[np.ndarray] = []
    b_idx: list[np.ndarray] = []
    for idx in multi.groupby("site", sort=False).indices.values():
        idx = np.asarray(idx)
        i, j = np.triu_indices(len(idx), k=1)
        a_idx.append(idx[i])
        b_idx.append(idx[j])
    a = np.concatenate(a_idx)
    b = np.concatenate(b_idx)
    lon = multi["lon"].to_numpy()
    lat = multi["lat"].to_numpy()
    _, _, dist = geod.inv(lon[a], lat[a], lon[b], lat[b])
    far = pd.Series(np.asarray(dist), index=multi["site"].to_numpy()[a]).groupby(level=0).max()
    n_loc = multi.groupby("site", sort=False).size().to_dict()
    for sid, d in far[far > c.tolerance_m].items():
        rows = c.site_rows[sid]
        c.out.group(
            "site_multiple_locations",
            sid,
            rows,
            f"{int(n_loc[sid])} locations up to {d:.1f} m apart",
            f"site {sid!r} has {int(n_loc[sid])} locations up to {d:.1f} m apart (tolerance "
            f"{c.tolerance_m:g} m); fix the coordinates or give each location its own site_id",
        )


def _check_depths(c: _Ctx) -> None:
    top, bottom = c.top, c.bottom
    miss = (np.isnan(top) | np.isnan(bottom)) & ~c.empty_site
    c.out.pairs(
        "missing_depth",
        np.flatnonzero(miss),
        top,
        bottom,
        lambda a, b: f"top_cm/bottom_cm is ({a}, {b}); give both horizon limits in cm",
    )
    with np.errstate(invalid="ignore"):
        neg = (top < 0) | (bottom < 0)
        thin = bottom <= top
    c.out.pairs(
        "negative_depth",
        np.flatnonzero(neg),
        top,
        bottom,
        lambda a, b: (
            f"depths ({a}, {b}) cm include a negative value; depths are cm below the (mineral) "
            "surface: re-reference organic layers to start at 0"
        ),
    )
    c.out.pairs(
        "nonpositive_thickness",
        np.flatnonzero(thin),
        top,
        bottom,
        lambda a, b: (
            f"bottom_cm {b} <= top_cm {a}; the bottom must be deeper than the top (swap them if "
            "reversed)"
        ),
    )
    # Overlaps: sort each site's valid horizons by top; a top above the running maximum
    # bottom of the earlier horizons overlaps one of them.
    valid = np.isfinite(top) & np.isfinite(bottom) & (bottom > top) & c.site_ok
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return
    d = pd.DataFrame({"site": c.site[idx], "top": top[idx], "bottom": bottom[idx], "pos": idx})
    d = d.sort_values(["site", "top", "bottom"], kind="stable")
    prev = d.groupby("site", sort=False)["bottom"].cummax()
    prev = prev.groupby(d["site"], sort=False).shift(1)
    s_site = d["site"].to_numpy()
    s_top = d["top"].to_numpy()
    s_bot = d["bottom"].to_numpy()
    s_pos = d["pos"].to_numpy()
    new_group = np.r_[True, s_site[1:] != s_site[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(d)), 0))
    found: dict[int, tuple[str, str]] = {}
    for k in np.flatnonzero((d["top"] < prev - DEPTH_TOLERANCE_CM).to_numpy()):
        # The earlier horizon with the deepest bottom is one this horizon overlaps.
        j = group_start[k] + int(np.argmax(s_bot[group_start[k] : k]))
        for a, b in ((k, j), (j, k)):
            found.setdefault(
                int(s_pos[a]),
                (
                    f"{_fmt(s_top[a])}-{_fmt(s_bot[a])} cm",
                    f"horizon {_fmt(s_top[a])}-{_fmt(s_bot[a])} cm overlaps {_fmt(s_top[b])}-"
                    f"{_fmt(s_bot[b])} cm (row {int(s_pos[b])}) of site {s_site[a]!r}; fix the "
                    "depths, or give duplicate profiles their own site_id",
                ),
            )
    order = sorted(found)
    c.out.rows(
        "overlapping_horizons",
        np.array(order, dtype=np.int64),
        [found[p][0] for p in order],
        [found[p][1] for p in order],
    )


def _check_depth_units(c: _Ctx) -> None:
    """Heuristic for depths given in m where cm are expected; see :data:`QC_CHECKS`."""
    src = c.t["source"].fillna("<no source>").to_numpy()
    ok = np.isfinite(c.top) & np.isfinite(c.bottom)
    for name in pd.unique(src):
        rows = np.flatnonzero((src == name) & ok)
        if len(rows) < 2:
            continue
        depths = np.r_[c.top[rows], c.bottom[rows]]
        deepest = float(depths.max())
        if 0 < deepest <= METRE_MAX_BOTTOM_CM and np.any(depths != np.round(depths)):
            label = "table (no source)" if name == "<no source>" else f"source {name!r}"
            c.out.group(
                "likely_metre_depths",
                np.nan,
                rows,
                f"{label}: deepest bottom {deepest:g}",
                f"{label}: the deepest horizon ends at {deepest:g} and depths are fractional; "
                "they look like m rather than cm: multiply top_cm and bottom_cm by 100",
            )


def _check_values(c: _Ctx) -> None:
    t = c.t
    soc = c.soc
    c.out.missing(
        "missing_soc",
        np.flatnonzero(np.isnan(soc) & ~c.empty_site),
        "soc_g_kg is missing; the horizon is kept but cannot train or validate a model",
    )
    _flag_outside(
        c, "soc_out_of_range", "soc_g_kg", soc, c.soc_range, "g/kg",
        "check the value and its unit (--soc-units converts %, permille, mg/g; Python: "
        "read_profiles(..., soc_units=...))",
    )  # fmt: skip
    _flag_outside(
        c, "bd_out_of_range", "bd_g_cm3", t["bd_g_cm3"].to_numpy(dtype=float), c.bd_range,
        "g/cm3", "check the value (kg/m3 must be divided by 1000)",
    )  # fmt: skip
    _flag_outside(
        c, "cf_out_of_range", "cf_vol", t["cf_vol"].to_numpy(dtype=float), (0.0, 1.0), "",
        "give coarse fragments as a volume fraction (map a % column with "
        "mapping={'cf_vol_pct': ...})",
    )  # fmt: skip


def _flag_outside(
    c: _Ctx,
    check: str,
    column: str,
    values: np.ndarray,
    bounds: tuple[float, float],
    unit: str,
    fix: str,
) -> None:
    """Flag every row whose ``values`` fall outside ``bounds`` (NaN is not flagged)."""
    lo, hi = bounds
    with np.errstate(invalid="ignore"):
        pos = np.flatnonzero((values < lo) | (values > hi))
    shown = [_fmt(values[i]) for i in pos]
    unit = f" {unit}" if unit else ""
    c.out.rows(
        check,
        pos,
        shown,
        [f"{column} {v} is outside [{lo:g}, {hi:g}]{unit}; {fix}" for v in shown],
    )


def _check_percent(c: _Ctx) -> None:
    """Heuristic for SOC given in % where g/kg is expected; see :data:`QC_CHECKS`."""
    t = c.t
    soc = c.soc
    topsoil = (c.top < PERCENT_TOPSOIL_CM) & np.isfinite(soc)
    src = t["source"].fillna("<no source>").to_numpy()
    flagged_groups: set[str] = set()
    for name in pd.unique(src):
        in_group = src == name
        vals = soc[in_group & topsoil]
        if len(vals) < PERCENT_MIN_SAMPLES:
            continue
        med, q99 = float(np.median(vals)), float(np.quantile(vals, 0.99))
        if med < PERCENT_MEDIAN_BELOW and q99 <= PERCENT_Q99_AT_MOST:
            flagged_groups.add(str(name))
            label = "table (no source)" if name == "<no source>" else f"source {name!r}"
            c.out.group(
                "likely_percent_units",
                np.nan,
                np.flatnonzero(in_group),
                f"{label}: topsoil median {med:.3g}, q99 {q99:.3g}, n={len(vals)}",
                f"{label}: topsoil SOC median {med:.3g} and 99th percentile {q99:.3g} over "
                f"{len(vals)} "
                "horizons look like % rather than g/kg; if so, read them with --soc-units % "
                "(Python: soc_units='%')",
            )
        elif TENFOLD_MEDIAN_ABOVE < med <= TENFOLD_MEDIAN_AT_MOST:
            _check_tenfold(c, str(name), in_group, topsoil, med, len(vals))
    cand = topsoil & c.site_ok & ~np.isin(src, list(flagged_groups))
    if not cand.any():
        return
    d = pd.DataFrame({"site": c.site[cand], "soc": soc[cand]})
    stats = d.groupby("site", sort=False)["soc"].agg(["max", "size"])
    low = stats[(stats["max"] < PERCENT_SITE_BELOW) & (stats["max"] > 0)]
    for sid, r in low.iterrows():
        c.out.group(
            "likely_percent_site",
            sid,
            c.site_rows[sid],
            f"topsoil max {r['max']:.3g} (n={int(r['size'])})",
            f"all {int(r['size'])} topsoil SOC value(s) of site {sid!r} are below "
            f"{PERCENT_SITE_BELOW:g} g/kg (max {r['max']:.3g}); if they are %, multiply by 10",
        )


def _check_tenfold(
    c: _Ctx, name: str, in_group: np.ndarray, topsoil: np.ndarray, med: float, n: int
) -> None:
    """Flag a source with organic-soil SOC on mineral (or unknown) bulk density."""
    bd = (
        c.t["bd_g_cm3"].to_numpy(dtype=np.float64)[in_group & topsoil]
        if "bd_g_cm3" in c.t.columns
        else np.array([])
    )
    bd = bd[np.isfinite(bd)]
    bd_med = float(np.median(bd)) if len(bd) else None
    if bd_med is not None and bd_med < TENFOLD_BD_BELOW:
        return  # light, organic soils: the carbon is plausible
    label = "table (no source)" if name == "<no source>" else f"source {name!r}"
    density = (
        "no bulk density to show organic soils"
        if bd_med is None
        else f"a mineral bulk density median of {bd_med:.3g} g/cm3"
    )
    c.out.group(
        "likely_gkg_read_as_percent",
        np.nan,
        np.flatnonzero(in_group),
        f"{label}: topsoil median {med:.3g} g/kg, n={n}",
        f"{label}: topsoil SOC median {med:.3g} g/kg over {n} horizons is organic-soil "
        f"carbon, with {density}; values in g/kg read with --soc-units % are ten times too "
        "high: read them with --soc-units g/kg (the default)",
    )


_CHECK_STAGES: tuple[tuple[str, Callable[[_Ctx], None]], ...] = (
    ("ids", _check_ids),
    ("coordinates", _check_coordinates),
    ("locations", _check_locations),
    ("depths", _check_depths),
    ("depth units", _check_depth_units),
    ("values", _check_values),
    ("units", _check_percent),
)


def qc_profiles(
    table: pd.DataFrame,
    *,
    strict: bool = False,
    soc_range: tuple[float, float] = (0, 600),
    bd_range: tuple[float, float] = BD_RANGE,
    location_tolerance_m: float = 1.0,
) -> QCReport:
    """Check a canonical profile table and flag every problem; never drop anything.

    Parameters
    ----------
    table
        A canonical profile table (from one of the readers). Optional columns may be absent.
    strict
        Raise on the first error-level problem instead of returning the report.
    soc_range
        Allowed SOC, g/kg (inclusive). 600 g/kg is about the carbon content of pure peat.
    bd_range
        Allowed fine-earth bulk density, g/cm³ (inclusive; 2.65 is quartz).
    location_tolerance_m
        Rows of one site further apart than this (geodesic metres) flag
        ``site_multiple_locations``.

    Returns
    -------
    QCReport
        Flags, a per-check summary and the table with a ``qc_flags`` column. The checks are
        listed in :data:`QC_CHECKS`. The percent heuristic: per ``source`` (the whole table
        when it has none), topsoil (``top_cm`` < 30) SOC with median < 2.5 and 99th
        percentile <= 60 over at least 20 horizons is an error (real g/kg topsoil medians are
        5-15, and OC cannot exceed ~60 %, so many larger values prove g/kg); per site, all
        topsoil SOC in (0, 1) g/kg is a warning (arid soils do this in g/kg too). % data with
        a topsoil median above 2.5 % (e.g. many blue-carbon cores) cannot be told from g/kg by
        magnitude alone.

    Raises
    ------
    ProfileValidationError
        Missing required columns or an empty table; with ``strict=True``, the first error-level
        problem (its site, value and fix, and the total counts).
    UnitsError
        With ``strict=True``, when that first error is ``likely_percent_units``.
    CRSError
        A ``crs`` value that cannot be parsed.

    Examples
    --------
    >>> t = pd.DataFrame({"site_id": ["A", "A"], "x": [150.0, 150.0], "y": [-30.0, -30.0],
    ...                   "crs": "EPSG:4326", "top_cm": [0.0, 20.0], "bottom_cm": [30.0, 40.0],
    ...                   "soc_g_kg": [12.0, 8.0]})
    >>> rep = qc_profiles(t)
    >>> rep.flags[["row", "check"]].values.tolist()
    [[0, 'overlapping_horizons'], [1, 'overlapping_horizons']]
    """
    what = "profile table"
    _check_columns(
        table,
        REQUIRED_COLUMNS,
        what,
        "map your column names with --map CANONICAL=YOURS (Python: read_profiles(..., mapping=))",
    )
    _check_not_empty(table, what)
    t = table.reset_index(drop=True)
    for name in ("bd_g_cm3", "cf_vol", "stratum", "date", "source"):
        if name not in t.columns:
            t[name] = np.nan
    for name in _NUMERIC:
        t[name] = _parse_numeric(t[name], name, name)
    t["crs"] = _as_str(t["crs"])
    for v in t["crs"].dropna().unique():
        normalise_crs(v)  # raises CRSError with a fix when unparseable
    t["source"] = _as_str(t["source"])
    site = _as_str(t["site_id"]).to_numpy(dtype=object)
    site_ok = pd.notna(site)
    top = t["top_cm"].to_numpy(dtype=float)
    bottom = t["bottom_cm"].to_numpy(dtype=float)
    soc = t["soc_g_kg"].to_numpy(dtype=float)
    ctx = _Ctx(
        t=t,
        site=site,
        site_ok=site_ok,
        top=top,
        bottom=bottom,
        soc=soc,
        empty_site=_empty_sites(site, np.isnan(top) & np.isnan(bottom) & np.isnan(soc)),
        site_rows={
            k: np.asarray(v)
            for k, v in pd.Series(np.arange(len(t))).groupby(site, sort=False).indices.items()
        },
        lon=np.full(len(t), np.nan),
        lat=np.full(len(t), np.nan),
        out=_Collector(site),
        soc_range=(float(soc_range[0]), float(soc_range[1])),
        bd_range=(float(bd_range[0]), float(bd_range[1])),
        tolerance_m=float(location_tolerance_m),
    )
    stages = _CHECK_STAGES if len(t) < 50_000 else track(_CHECK_STAGES, "QC checks")
    for _, fn in stages:
        fn(ctx)
    flags = ctx.out.flags()
    marked = ctx.out.marked().drop_duplicates()
    summary = _summary(marked, site)
    annotated = table.copy()
    joined = marked.groupby("pos", sort=False)["check"].agg(";".join)
    tags = np.full(len(t), "", dtype=object)
    tags[joined.index.to_numpy()] = joined.to_numpy()
    annotated["qc_flags"] = pd.array(tags, dtype="str")
    report = QCReport(flags=flags, summary=summary, table=annotated)
    if strict:
        _raise_first(report)
    return report


def _empty_sites(site: np.ndarray, empty_row: np.ndarray) -> np.ndarray:
    """Rows of sites whose every row has no depths and no SOC (a location without samples)."""
    if not empty_row.any():
        return empty_row
    all_empty = pd.Series(empty_row).groupby(pd.Series(site), dropna=False).transform("all")
    return np.asarray(all_empty, dtype=bool) & empty_row & pd.notna(site)


def _summary(marked: pd.DataFrame, site: np.ndarray) -> pd.DataFrame:
    rows = []
    for check, (severity, description) in QC_CHECKS.items():
        pos = marked.loc[marked["check"] == check, "pos"].to_numpy()
        sites = pd.unique(site[pos]) if len(pos) else np.array([])
        rows.append(
            {
                "check": check,
                "severity": severity,
                "n_rows": len(pos),
                "n_sites": int(pd.notna(sites).sum()),
                "description": description,
            }
        )
    out = pd.DataFrame(rows)
    out["n_rows"] = out["n_rows"].astype("int64")
    out["n_sites"] = out["n_sites"].astype("int64")
    return out


def _raise_first(report: QCReport) -> None:
    errors = report.errors()
    if errors.empty:
        return
    first = errors.iloc[0]
    n_warn = len(report.flags) - len(errors)
    where = f"site {first['site_id']!r}" if pd.notna(first["site_id"]) else "table"
    if pd.notna(first["row"]):
        where += f" row {int(first['row'])}"
    msg = (
        f"QC {first['check']} at {where}: {first['message']} ({len(errors)} error(s) and "
        f"{n_warn} warning(s) in total; `socmap profiles qc` without --strict lists them; "
        "Python: qc_profiles(strict=False) and write_qc())"
    )
    cls = UnitsError if first["check"] == "likely_percent_units" else ProfileValidationError
    raise cls(_one_line(msg))


def write_qc(report: QCReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write a QC report: ``flags.csv``, ``summary.csv`` and ``summary.md``.

    Each file is written atomically (temporary sibling, then rename).

    Parameters
    ----------
    report
        From :func:`qc_profiles`.
    out_dir
        Folder; created if needed.

    Returns
    -------
    tuple of Path
        ``(flags.csv, summary.md)``; ``summary.csv`` sits next to them.

    Examples
    --------
    >>> import tempfile
    >>> from socmap.profiles import read_edgeroi
    >>> rep = qc_profiles(read_edgeroi())
    >>> flags, md = write_qc(rep, tempfile.mkdtemp())
    >>> flags.name, md.name
    ('flags.csv', 'summary.md')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flags_path, csv_path, md_path = out / "flags.csv", out / "summary.csv", out / "summary.md"
    with atomic_path(flags_path, record=True) as tmp:
        report.flags.to_csv(tmp, index=False)
    with atomic_path(csv_path, record=True) as tmp:
        report.summary.to_csv(tmp, index=False)
    with atomic_path(md_path, record=True) as tmp:
        tmp.write_text(_summary_markdown(report), encoding="utf-8")
    return flags_path, md_path


def _summary_markdown(report: QCReport) -> str:
    t = report.table
    n_sites = t["site_id"].nunique(dropna=True)
    n_err = len(report.errors())
    n_warn = len(report.flags) - n_err
    lines = [
        "# Profile QC summary",
        "",
        f"{len(t)} rows, {n_sites} sites; {n_err} error flag(s), {n_warn} warning flag(s). "
        "Nothing was dropped; every problem is a row of `flags.csv`.",
        "",
    ]
    table = report.summary[["check", "severity", "n_rows", "n_sites", "description"]]
    table = table.rename(columns={"n_rows": "rows", "n_sites": "sites"})
    lines += [markdown_table(table, columns={"check": "`{}`".format}), ""]
    return "\n".join(lines)

"""The canonical profile table: columns, units and shared checks."""

from __future__ import annotations

import difflib
import gzip
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap._io import VECTOR_SUFFIXES
from socmap.errors import (
    InputNotFound,
    MissingDependency,
    ProfileValidationError,
)

#: Column order of every table the readers return.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "site_id",
    "x",
    "y",
    "crs",
    "top_cm",
    "bottom_cm",
    "soc_g_kg",
    "bd_g_cm3",
    "cf_vol",
    "stratum",
    "date",
    "source",
)
#: Columns a profile table must provide (``crs`` may instead come from the ``crs=`` argument).
REQUIRED_COLUMNS: tuple[str, ...] = CANONICAL_COLUMNS[:7]
_NUMERIC = ("x", "y", "top_cm", "bottom_cm", "soc_g_kg", "bd_g_cm3", "cf_vol")
_STRING = ("site_id", "crs", "stratum", "date", "source")

#: Factor that converts each accepted SOC unit to g/kg.
SOC_UNITS: dict[str, float] = {"g/kg": 1.0, "%": 10.0, "permille": 1.0, "mg/g": 1.0, "dg/kg": 0.1}
_UNIT_ALIASES: dict[str, str] = {
    "g/kg": "g/kg",
    "g kg-1": "g/kg",
    "g kg^-1": "g/kg",
    "g.kg-1": "g/kg",
    "g_kg": "g/kg",
    "%": "%",
    "percent": "%",
    "pct": "%",
    "wt%": "%",
    "permille": "permille",
    "per mille": "permille",
    "‰": "permille",
    "mg/g": "mg/g",
    "mg g-1": "mg/g",
    "dg/kg": "dg/kg",
}
# Mapping keys that name the SOC column together with its unit (``soc_g_kg`` uses soc_units).
_SOC_KEYS: dict[str, str | None] = {
    "soc_g_kg": None,
    "soc_pct": "%",
    "soc_permille": "permille",
    "soc_mg_g": "mg/g",
}
_EXTRA_KEYS = (*tuple(k for k in _SOC_KEYS if k != "soc_g_kg"), "cf_vol_pct")
_UNITS_COLUMNS = ("soc_units", "soc_unit", "units", "unit")
# Common names for canonical columns, used only to suggest a mapping in error messages.
_ALIASES: dict[str, tuple[str, ...]] = {
    "site_id": ("profile_id", "core_id", "id", "site", "profile", "sourceid", "plot_id", "pit"),
    "x": ("lon", "long", "longitude", "easting", "east", "x_coord", "longda94"),
    "y": ("lat", "latitude", "northing", "north", "y_coord", "latgda94"),
    "top_cm": ("top", "upper", "depth_top_cm", "depth_top", "hzn_top", "uhdicm", "from_cm"),
    "bottom_cm": ("bottom", "lower", "depth_bottom_cm", "depth_bottom", "hzn_bot", "lhdicm"),
    "soc_g_kg": ("soc", "oc", "orgc", "organic_carbon", "orcdrc", "c_org", "toc", "soc_pct"),
    "bd_g_cm3": ("bd", "bulk_density", "bulk_density_g_cm3", "bdod", "bld"),
    "cf_vol": ("cf", "coarse_fragments", "crfvol", "gravel"),
}
_NA_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_VECTOR_SUFFIXES = VECTOR_SUFFIXES


# ---------------------------------------------------------------------------- helpers
def _one_line(text: object) -> str:
    """Collapse whitespace so a message stays on one line."""
    return " ".join(str(text).split())


def _close(name: str, options: Sequence[str], n: int = 3) -> list[str]:
    """Close matches of ``name`` among ``options``, case-insensitively."""
    lower = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    return [lower[h] for h in hits]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suf in (*_CSV_SUFFIXES, *_PARQUET_SUFFIXES, *_VECTOR_SUFFIXES):
        if name.endswith(suf):
            return suf
    return "".join(path.suffixes[-2:]) or path.suffix


def _require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputNotFound(f"{what} {str(p)!r} does not exist; check the path")
    return p


def _geopandas() -> Any:
    try:
        import geopandas
    except ImportError as exc:  # pragma: no cover - geopandas is a core dependency
        raise MissingDependency(
            "reading GeoPackage/GeoParquet needs geopandas; pip install 'socmap' (it is a core "
            "dependency) or pip install geopandas pyogrio"
        ) from exc
    return geopandas


def _sniff_delimiter(path: Path) -> str:
    """Pick ``,``, ``;`` or tab from the header line (European CSVs often use ``;``)."""
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _check_columns(df: pd.DataFrame, required: Sequence[str], what: str, fix: str = "") -> None:
    """Raise if ``df`` lacks any of ``required``, naming close matches."""
    missing = [c for c in required if c not in df.columns]
    if not missing:
        return
    cols = [str(c) for c in df.columns]
    hints = []
    for name in missing:
        close = _close(name, cols)
        if close:
            hints.append(f"{name!r} ~ {close!r}")
    hint = f"; close matches: {', '.join(hints)}" if hints else ""
    raise ProfileValidationError(
        f"{what} lacks column(s) {missing!r}; expected {list(required)!r}, found {cols!r}{hint}"
        f"{'; ' + fix if fix else ''}"
    )


def _check_not_empty(df: pd.DataFrame, what: str) -> None:
    if len(df) == 0:
        raise ProfileValidationError(
            f"{what} has 0 rows (columns {[str(c) for c in df.columns]!r}); give a table with at "
            "least one horizon"
        )


# ---------------------------------------------------------------------------- coercion
def _parse_numeric(values: pd.Series, name: str, column: str) -> pd.Series:
    """Float64 copy of ``values``; raise on anything that is not a number or empty."""
    if pd.api.types.is_bool_dtype(values):
        raise ProfileValidationError(f"{name} column {column!r} holds booleans; give numbers")
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64")
    text = values.astype("str").str.strip()
    blank = text.isna() | text.str.lower().isin(_NA_TOKENS)
    num = pd.to_numeric(text.where(~blank), errors="coerce")
    bad = num.isna() & ~blank
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        val = values.iloc[pos]
        if re.fullmatch(r"-?\d+,\d+", str(val).strip()):
            fix = (
                "it looks like a decimal comma: save the table again with '.' as the decimal "
                "mark (a spreadsheet's CSV export setting; Python: pandas.read_csv(path, "
                "sep=';', decimal=',') and pass the DataFrame)"
            )
        elif re.match(r"\s*[<>]", str(val)):
            fix = "censored values need a number: replace them with the limit (or half of it)"
        else:
            fix = "fix the value or leave the cell empty"
        raise ProfileValidationError(
            f"{name} column {column!r} must be numeric but row {pos} holds {val!r} "
            f"({int(bad.sum())} non-numeric value(s)); {fix}"
        )
    return num.astype("float64")


def blank_site_ids(ids: pd.Series) -> pd.Series:
    """Which ``site_id`` values are missing or only white space (a row without its site).

    Examples
    --------
    >>> blank_site_ids(pd.Series(["A1", " ", None, "B"])).tolist()
    [False, True, True, False]
    """
    return ids.isna() | ids.astype(str).str.strip().eq("")


def _as_str(values: pd.Series) -> pd.Series:
    """Convert to strings: whole-number floats lose their ``.0``; blanks become NaN."""
    if pd.api.types.is_float_dtype(values):
        arr = values.to_numpy(dtype=float)
        finite = arr[np.isfinite(arr)]
        if np.all(finite == np.round(finite)):
            values = values.astype("Int64")
    if pd.api.types.is_datetime64_any_dtype(values):
        out = values.dt.strftime("%Y-%m-%d")
    else:
        out = values.astype("str")
    out = out.str.strip()
    return out.where(out.notna() & (out != ""), np.nan).astype("str")


def _finalise(
    columns: Mapping[str, pd.Series], extras: pd.DataFrame | None, n: int
) -> pd.DataFrame:
    """Assemble the canonical table: canonical columns in order, typed, then extras."""
    data: dict[str, Any] = {}
    for name in CANONICAL_COLUMNS:
        col = columns.get(name)
        if col is None:
            data[name] = np.full(n, np.nan)
        else:
            data[name] = col.to_numpy()
    out = pd.DataFrame(data, index=pd.RangeIndex(n))
    for name in _NUMERIC:
        out[name] = out[name].astype("float64")
    for name in _STRING:
        out[name] = out[name].astype("str")
    if extras is not None and len(extras.columns):
        ext = extras.reset_index(drop=True)
        out = pd.concat([out, ext], axis=1)
    return out

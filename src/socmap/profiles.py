"""Soil-profile tables: readers onto one canonical layout, and quality control.

Every reader returns the canonical profile table: one row per horizon (or sample), with the
columns of :data:`CANONICAL_COLUMNS` first, in that order, then any extra input columns.

========== ======= ==============================================================
column     dtype   meaning
========== ======= ==============================================================
site_id    str     profile / core identifier
x, y       float   site coordinates in ``crs`` (longitude/latitude when geographic)
crs        str     normalised with :func:`socmap.grid.normalise_crs` (``"EPSG:n"``)
top_cm     float   horizon upper limit, cm below the surface
bottom_cm  float   horizon lower limit, cm
soc_g_kg   float   soil organic carbon, g/kg
bd_g_cm3   float   fine-earth bulk density, g/cm³ (NaN when not measured)
cf_vol     float   coarse-fragment volume fraction, 0–1 (NaN when not measured)
stratum    str     stratum label (blue-carbon cores, stratified designs)
date       str     sampling date, ISO 8601 (``"2021-03-04"``) or a year (``"1995"``)
source     str     data source / database
========== ======= ==============================================================

Quality control (:func:`qc_profiles`) flags problems and never drops a row: each problem
is one row of :attr:`QCReport.flags` with its check name, and the annotated table gets a
``qc_flags`` column. Problems that make a table unreadable (missing file, wrong columns,
mixed or unknown units, non-numeric depths) raise a :mod:`socmap.errors` subclass instead.
"""

from __future__ import annotations

import difflib
import fnmatch
import gzip
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pyproj import CRS, Geod, Transformer

from socmap._io import atomic_path
from socmap._progress import track
from socmap.catalog import embedded_data_dir
from socmap.errors import (
    CatalogError,
    CRSError,
    InputNotFound,
    MissingDependency,
    ProfileValidationError,
    UnitsError,
)
from socmap.grid import normalise_crs

__all__ = [
    "CANONICAL_COLUMNS",
    "QC_CHECKS",
    "REQUIRED_COLUMNS",
    "SOC_UNITS",
    "QCReport",
    "qc_profiles",
    "read_bluecarbon",
    "read_edgeroi",
    "read_global_covariates_at_sites",
    "read_global_table",
    "read_profiles",
    "read_table",
    "write_qc",
]

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
_GPKG_SUFFIXES = (".gpkg",)

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
#: A site whose topsoil SOC values are all below this (g/kg) may be in % (warning only).
PERCENT_SITE_BELOW = 1.0

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
    "likely_percent_site": (
        "warning",
        f"a site whose topsoil SOC values are all < {PERCENT_SITE_BELOW:g} g/kg: possibly % "
        "(or a very low-carbon arid soil)",
    ),
}
_FLAG_COLUMNS = ("row", "site_id", "check", "severity", "value", "message")


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
    for suf in (*_CSV_SUFFIXES, *_PARQUET_SUFFIXES, *_GPKG_SUFFIXES):
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


# ---------------------------------------------------------------------------- read_table
def read_table(path: str | Path, *, layer: str | None = None) -> pd.DataFrame:
    r"""Read a profile table file as it is, without mapping it onto the canonical layout.

    Parameters
    ----------
    path
        A ``.csv`` or ``.csv.gz`` file (``,``, ``;`` or tab separated, UTF-8), a ``.parquet``
        file (GeoParquet too) or a ``.gpkg`` GeoPackage.
    layer
        GeoPackage layer; needed only when the file has more than one.

    Returns
    -------
    pandas.DataFrame
        The file's columns. For GeoPackage and GeoParquet the point geometry becomes ``x`` and
        ``y`` columns plus a ``crs`` column (when the layer has a CRS); empty geometries give
        NaN coordinates, which :func:`qc_profiles` flags.

    Raises
    ------
    InputNotFound
        If ``path`` does not exist.
    ProfileValidationError
        If the suffix is not supported, the file cannot be parsed or is empty, or a
        GeoPackage has no point geometry.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("id;lon;lat\nA;150.1;-30.2\n")
    >>> read_table(p).columns.tolist()
    ['id', 'lon', 'lat']
    """
    p = _require_file(path, "profile table")
    suffix = _suffix(p)
    if suffix in _CSV_SUFFIXES:
        return _read_csv(p)
    if suffix in _PARQUET_SUFFIXES:
        return _read_parquet(p)
    if suffix in _GPKG_SUFFIXES:
        return _read_gpkg(p, layer)
    raise ProfileValidationError(
        f"cannot read {str(p)!r}: suffix {suffix!r} is not one of .csv, .csv.gz, .parquet, "
        ".gpkg; export the table to CSV, Parquet or GeoPackage"
    )


def _read_csv(p: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(p, sep=_sniff_delimiter(p), encoding="utf-8-sig", low_memory=False)
    except pd.errors.EmptyDataError as exc:
        raise ProfileValidationError(
            f"{str(p)!r} is empty (no header, no rows); give a CSV with a header line and at "
            "least one horizon"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ProfileValidationError(
            f"{str(p)!r} is not UTF-8 text ({_one_line(exc)}); re-save it as UTF-8 CSV"
        ) from exc
    except (pd.errors.ParserError, OSError, EOFError) as exc:
        raise ProfileValidationError(
            f"cannot parse {str(p)!r} as CSV ({_one_line(exc)}); check the delimiter and quoting"
        ) from exc


def _read_parquet(p: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        meta = pq.read_schema(p).metadata or {}
        if b"geo" in meta:
            return _points_to_xy(_geopandas().read_parquet(p), p)
        return pd.read_parquet(p)
    except ProfileValidationError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise ProfileValidationError(
            f"cannot read {str(p)!r} as Parquet ({_one_line(exc)}); rewrite it with "
            "DataFrame.to_parquet()"
        ) from exc


def _read_gpkg(p: Path, layer: str | None) -> pd.DataFrame:
    gpd = _geopandas()
    import pyogrio

    try:
        layers = pyogrio.list_layers(p)
    except Exception as exc:
        raise ProfileValidationError(
            f"cannot open {str(p)!r} as a GeoPackage ({_one_line(exc)}); check the file"
        ) from exc
    names = [str(row[0]) for row in layers]
    if layer is None and len(names) > 1:
        raise ProfileValidationError(
            f"GeoPackage {str(p)!r} has {len(names)} layers {names!r}; choose one with "
            "read_table(path, layer=...) and pass the DataFrame to read_profiles"
        )
    if layer is not None and layer not in names:
        raise ProfileValidationError(
            f"GeoPackage {str(p)!r} has no layer {layer!r}; layers are {names!r}"
            f" (close: {_close(layer, names)!r})"
        )
    try:
        gdf = gpd.read_file(p, layer=layer if layer is not None else names[0])
    except Exception as exc:
        raise ProfileValidationError(
            f"cannot read GeoPackage {str(p)!r} ({_one_line(exc)}); check the file"
        ) from exc
    return _points_to_xy(gdf, p)


def _points_to_xy(gdf: Any, p: Path) -> pd.DataFrame:
    """Turn point geometry into ``x``/``y`` (+ ``crs``) columns."""
    gpd = _geopandas()
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf._geometry_column_name not in gdf.columns:
        raise ProfileValidationError(
            f"{str(p)!r} has no point geometry (an attribute-only table); add point geometry "
            "or export it as CSV with coordinate columns and pass crs="
        )
    geom = gdf.geometry
    absent = geom.isna().to_numpy() | geom.is_empty.to_numpy()
    kinds = geom.geom_type[~absent]
    bad = kinds[kinds != "Point"]
    if len(bad):
        raise ProfileValidationError(
            f"{str(p)!r} holds {len(bad)} non-point geometries (first {bad.iloc[0]!r}); profile "
            "tables need Point geometry: explode multipoints or take centroids first"
        )
    clash = [c for c in ("x", "y", "crs") if c in gdf.columns]
    if clash:
        raise ProfileValidationError(
            f"{str(p)!r} has point geometry and also columns {clash!r}; drop or rename those "
            "columns so the geometry can become x/y/crs"
        )
    xs = np.full(len(gdf), np.nan)
    ys = np.full(len(gdf), np.nan)
    pts = geom[~absent]
    xs[~absent] = pts.x.to_numpy()
    ys[~absent] = pts.y.to_numpy()
    out = pd.DataFrame(gdf.drop(columns=gdf._geometry_column_name))
    out["x"] = xs
    out["y"] = ys
    if gdf.crs is not None:
        out["crs"] = normalise_crs(gdf.crs)
    return out


# ---------------------------------------------------------------------------- units
def _normalise_unit(unit: object, what: str = "soc_units") -> str:
    """Map a unit spelling onto a key of :data:`SOC_UNITS`."""
    text = " ".join(str(unit).strip().lower().split())
    if text in _UNIT_ALIASES:
        return _UNIT_ALIASES[text]
    if re.search(r"\b(s?om|loi)\b|organic matter|humus", text):
        raise UnitsError(
            f"{what} {unit!r} looks like organic matter; socmap reads organic carbon only. "
            "Convert OM to OC yourself (any factor, e.g. 0.58, is an assumption socmap will not "
            "make) and pass the OC unit, e.g. soc_units='%'"
        )
    raise UnitsError(
        f"{what} {unit!r} is not a known SOC unit; use one of {sorted(SOC_UNITS)!r} "
        f"(close: {_close(text, list(_UNIT_ALIASES))!r})"
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
                "it looks like a decimal comma: read the file with pandas.read_csv(path, "
                "sep=';', decimal=',') and pass the DataFrame"
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


# ---------------------------------------------------------------------------- read_profiles
def read_profiles(
    source: str | Path | pd.DataFrame,
    *,
    mapping: Mapping[str, str] | None = None,
    crs: Any = None,
    soc_units: str = "g/kg",
    source_name: str | None = None,
) -> pd.DataFrame:
    """Read any profile table and map it onto the canonical layout.

    Parameters
    ----------
    source
        A file (see :func:`read_table`) or a DataFrame.
    mapping
        ``{canonical_name: input_column}``. Canonical columns not in ``mapping`` are taken from
        input columns of the same name. Besides :data:`CANONICAL_COLUMNS` the keys may be
        ``soc_pct``, ``soc_permille`` or ``soc_mg_g`` (an SOC column in that unit, instead of
        ``soc_g_kg`` + ``soc_units``) and ``cf_vol_pct`` (coarse fragments in volume %).
    crs
        CRS of ``x``/``y`` when the table has no ``crs`` column (GeoPackage layers bring their
        own). Rows with an empty ``crs`` cell take this value.
    soc_units
        Unit of the SOC column: ``"g/kg"``, ``"%"``, ``"permille"``, ``"mg/g"`` (also
        ``"dg/kg"``, SoilGrids' integer unit). Values are converted to g/kg. Only organic
        *carbon* is accepted: organic matter units raise, because the OM-to-OC factor is an
        assumption the caller must make. A ``soc_units``/``units`` column in the table must hold
        one unit that agrees with this argument; it is consumed, not kept.
    source_name
        Fills empty ``source`` cells; defaults to the file name (nothing for a DataFrame).

    Returns
    -------
    pandas.DataFrame
        The canonical table (see the module docstring) followed by the remaining input columns,
        in input order, with a fresh ``RangeIndex``. Rows keep the input order; nothing is
        dropped.

    Raises
    ------
    ProfileValidationError
        Empty table; missing columns (with close matches); a mapping key or column that does
        not exist; non-numeric depths, coordinates, SOC, BD or CF; an extra column whose name
        clashes with a canonical one.
    UnitsError
        Unknown or organic-matter ``soc_units``; mixed units (a units column with several
        values, or two SOC columns in different units).
    CRSError
        No CRS for the coordinates, an unparseable CRS, or a ``crs`` column that disagrees with
        ``crs=``.

    Examples
    --------
    >>> df = pd.DataFrame({"pid": ["A", "A"], "lon": [150.1, 150.1], "lat": [-30.2, -30.2],
    ...                    "top": [0, 10], "bottom": [10, 30], "oc": [1.2, 0.8]})
    >>> t = read_profiles(df, crs=4326, soc_units="%", mapping={"site_id": "pid", "x": "lon",
    ...                   "y": "lat", "top_cm": "top", "bottom_cm": "bottom", "soc_g_kg": "oc"})
    >>> t[["site_id", "crs", "soc_g_kg"]].values.tolist()
    [['A', 'EPSG:4326', 12.0], ['A', 'EPSG:4326', 8.0]]
    """
    if isinstance(source, pd.DataFrame):
        raw = source.copy()
        what = "profile table"
        default_name = source_name
    else:
        raw = read_table(source)
        what = f"profile table {str(source)!r}"
        default_name = source_name if source_name is not None else Path(source).name
    raw.columns = [str(c) for c in raw.columns]
    _check_not_empty(raw, what)
    unit = _normalise_unit(soc_units)
    cols = _resolve_columns(raw, mapping, what)

    # SOC: exactly one column, in exactly one unit.
    soc_keys = [k for k in _SOC_KEYS if k in cols]
    if len(soc_keys) > 1:
        given = {k: cols[k] for k in soc_keys}
        raise UnitsError(
            f"{what} gives SOC in more than one unit {given!r}; map exactly one SOC column "
            "(and convert the others yourself if you need to merge them)"
        )
    soc_key = soc_keys[0]
    key_unit = _SOC_KEYS[soc_key]
    if key_unit is not None:
        if unit not in ("g/kg", key_unit):
            raise UnitsError(
                f"{what}: SOC column {cols[soc_key]!r} is given as {soc_key!r} ({key_unit}) but "
                f"soc_units={soc_units!r}; drop one of the two"
            )
        unit = key_unit
    units_col = next(
        (c for c in _UNITS_COLUMNS if c in raw.columns and c not in cols.values()), None
    )
    if units_col is not None:
        present = raw[units_col].dropna().astype("str").str.strip()
        found = sorted({_normalise_unit(v, f"units column {units_col!r} value") for v in present})
        if len(found) > 1:
            raise UnitsError(
                f"{what} column {units_col!r} mixes SOC units {sorted(set(present))!r}; convert to "
                "one unit first or split the table and read each part with its soc_units"
            )
        if found and found[0] != unit:
            raise UnitsError(
                f"{what} column {units_col!r} says SOC is in {present.iloc[0]!r} but soc_units "
                f"resolves to {unit!r}; pass soc_units={found[0]!r}"
            )

    out: dict[str, pd.Series] = {}
    for name in ("x", "y", "top_cm", "bottom_cm", "bd_g_cm3", "cf_vol"):
        if name in cols:
            out[name] = _parse_numeric(raw[cols[name]], name, cols[name])
    if "cf_vol_pct" in cols:
        if "cf_vol" in cols:
            raise UnitsError(
                f"{what} maps both cf_vol ({cols['cf_vol']!r}) and cf_vol_pct "
                f"({cols['cf_vol_pct']!r}); map one coarse-fragment column"
            )
        out["cf_vol"] = _parse_numeric(raw[cols["cf_vol_pct"]], "cf_vol_pct", cols["cf_vol_pct"])
        out["cf_vol"] = out["cf_vol"] / 100.0
    soc = _parse_numeric(raw[cols[soc_key]], soc_key, cols[soc_key])
    out["soc_g_kg"] = soc * SOC_UNITS[unit]
    for name in ("site_id", "stratum", "date", "source"):
        if name in cols:
            out[name] = _as_str(raw[cols[name]])
    if default_name is not None:
        src = out.get("source", pd.Series(np.nan, index=raw.index, dtype="str"))
        out["source"] = src.fillna(default_name)
    out["crs"] = _resolve_crs(raw, cols, crs, what)

    consumed = set(cols.values()) | ({units_col} if units_col else set())
    extras = raw[[c for c in raw.columns if c not in consumed]]
    clash = [c for c in extras.columns if c in CANONICAL_COLUMNS]
    if clash:
        raise ProfileValidationError(
            f"{what} columns {clash!r} clash with canonical columns filled from other input "
            f"columns (mapping {dict(mapping or {})!r}); rename or drop them"
        )
    return _finalise(out, extras, len(raw))


def _resolve_columns(
    raw: pd.DataFrame, mapping: Mapping[str, str] | None, what: str
) -> dict[str, str]:
    """``{canonical or special key: input column}`` for every key the table provides."""
    keys = (*CANONICAL_COLUMNS, *_EXTRA_KEYS)
    cols: dict[str, str] = {}
    for key, col in dict(mapping or {}).items():
        if key not in keys:
            raise ProfileValidationError(
                f"mapping key {key!r} is not a canonical column; keys are {list(keys)!r} "
                f"(close: {_close(key, keys)!r}). The mapping is {{canonical_name: input_column}}"
            )
        if col not in raw.columns:
            raise ProfileValidationError(
                f"mapping {key!r}: {col!r} is not a column of the {what}; columns are "
                f"{list(raw.columns)!r} (close: {_close(str(col), list(raw.columns))!r})"
            )
        cols[key] = col
    mapped_inputs = set(cols.values())
    for key in keys:
        if key not in cols and key in raw.columns and key not in mapped_inputs:
            cols[key] = key
    needed = ["site_id", "x", "y", "top_cm", "bottom_cm"]
    missing = [k for k in needed if k not in cols]
    if not any(k in cols for k in _SOC_KEYS):
        missing.append("soc_g_kg")
    if missing:
        lower = {str(c).lower(): str(c) for c in raw.columns}
        suggest: dict[str, str] = {}
        for key in missing:
            cands = [lower[a] for a in _ALIASES.get(key, ()) if a in lower]
            cands += _close(key, list(raw.columns), n=1)
            if cands:
                suggest[key] = cands[0]
        hint = f"; perhaps mapping={suggest!r}" if suggest else ""
        raise ProfileValidationError(
            f"{what} lacks required column(s) {missing!r}; expected {list(REQUIRED_COLUMNS)!r} "
            f"(crs may come from crs=), found {list(raw.columns)!r}{hint}"
        )
    return cols


def _resolve_crs(raw: pd.DataFrame, cols: Mapping[str, str], crs: Any, what: str) -> pd.Series:
    """Per-row normalised CRS strings from the table's ``crs`` column and/or ``crs=``."""
    given = normalise_crs(crs) if crs is not None else None
    if "crs" not in cols:
        if given is None:
            raise CRSError(
                f"{what} has x/y but no CRS; pass crs= (e.g. crs='EPSG:4326' for longitude/"
                "latitude) or add a 'crs' column"
            )
        return pd.Series(given, index=raw.index, dtype="str")
    col = _as_str(raw[cols["crs"]])
    if col.isna().all() and given is None:
        raise CRSError(f"{what} column {cols['crs']!r} is empty; pass crs= (e.g. crs='EPSG:4326')")
    norm = {v: normalise_crs(v) for v in col.dropna().unique()}
    out = col.map(norm).astype("str")
    if given is not None:
        other = sorted({v for v in norm.values() if v != given})
        if other:
            raise CRSError(
                f"{what} column {cols['crs']!r} holds {other!r} but crs={crs!r}; drop crs= or "
                "fix the column"
            )
        out = out.fillna(given)
    return out


# ---------------------------------------------------------------------------- joins
def _join_sites(
    sites: pd.DataFrame, horizons: pd.DataFrame, key: str, what: tuple[str, str]
) -> pd.DataFrame:
    """Horizons left-joined to their sites, plus one row per site that has no horizons.

    A horizon whose site is unknown keeps NaN site columns (QC: ``missing_coordinates``); a
    site without horizons becomes a row with NaN depths and SOC (QC: ``site_without_samples``).
    """
    sites = sites.assign(**{key: _as_str(sites[key])})
    horizons = horizons.assign(**{key: _as_str(horizons[key])})
    dup = sites[key][sites[key].duplicated()]
    if len(dup):
        raise ProfileValidationError(
            f"{what[0]} lists {key} {dup.iloc[0]!r} more than once ({len(dup)} duplicate(s)); "
            "give each site exactly one location row"
        )
    merged = horizons.merge(
        sites, on=key, how="left", suffixes=("", "_site"), validate="many_to_one"
    )
    lonely = sites[~sites[key].isin(horizons[key])]
    if len(lonely):
        merged = pd.concat([merged, lonely], ignore_index=True)
    return merged


def _frame(obj: str | Path | pd.DataFrame, what: str) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        df = obj.copy()
    else:
        _require_file(obj, what)
        df = read_table(obj)
    df.columns = [str(c) for c in df.columns]
    return df


# ---------------------------------------------------------------------------- blue carbon
_BC_LOCATION_COLUMNS = ("core_id", "longitude", "latitude", "stratum")
_BC_SAMPLE_COLUMNS = (
    "core_id",
    "depth_top_cm",
    "depth_bottom_cm",
    "soc_g_kg",
    "bulk_density_g_cm3",
)


def read_bluecarbon(
    locations: str | Path | pd.DataFrame, samples: str | Path | pd.DataFrame
) -> pd.DataFrame:
    """Read a blue-carbon MMRV template pair into the canonical table.

    Parameters
    ----------
    locations
        ``core_locations.csv``: ``core_id``, ``longitude``, ``latitude`` (WGS84), ``stratum``
        and any extra columns (kept). Each core appears once.
    samples
        ``core_samples.csv``: ``core_id``, ``depth_top_cm``, ``depth_bottom_cm``, ``soc_g_kg``,
        ``bulk_density_g_cm3`` and any extra columns (kept). Extra columns present in both
        files get the suffix ``_site`` on the location side.

    Returns
    -------
    pandas.DataFrame
        One row per sample, in ``samples`` order, with ``crs = "EPSG:4326"`` and ``source =
        "bluecarbon"``. Nothing is dropped: a sample whose ``core_id`` has no location keeps NaN
        coordinates (QC: ``missing_coordinates``), and a location with no samples is appended
        as one row with NaN depths and SOC (QC: ``site_without_samples``).

    Raises
    ------
    InputNotFound
        If a file does not exist.
    ProfileValidationError
        Missing template columns, a ``core_id`` listed twice in ``locations``, an empty file,
        or non-numeric depths/SOC/BD.

    Examples
    --------
    >>> locs = pd.DataFrame({"core_id": ["M1"], "longitude": [153.2], "latitude": [-27.4],
    ...                      "stratum": ["mangrove"]})
    >>> samp = pd.DataFrame({"core_id": ["M1"], "depth_top_cm": [0], "depth_bottom_cm": [30],
    ...                      "soc_g_kg": [62.0], "bulk_density_g_cm3": [0.7]})
    >>> read_bluecarbon(locs, samp)[["site_id", "stratum", "bd_g_cm3"]].values.tolist()
    [['M1', 'mangrove', 0.7]]
    """
    locs = _frame(locations, "core locations file")
    samp = _frame(samples, "core samples file")
    fix = "use the blue-carbon MMRV template column names"
    _check_columns(locs, _BC_LOCATION_COLUMNS, "core locations table", fix)
    _check_columns(samp, _BC_SAMPLE_COLUMNS, "core samples table", fix)
    _check_not_empty(locs, "core locations table")
    _check_not_empty(samp, "core samples table")
    for df in (locs, samp):
        df["core_id"] = _as_str(df["core_id"])
    merged = _join_sites(locs, samp, "core_id", ("core locations table", "core samples table"))
    mapping = {
        "site_id": "core_id",
        "x": "longitude",
        "y": "latitude",
        "top_cm": "depth_top_cm",
        "bottom_cm": "depth_bottom_cm",
        "soc_g_kg": "soc_g_kg",
        "bd_g_cm3": "bulk_density_g_cm3",
        "stratum": "stratum",
    }
    for cand in ("date", "sampling_date", "date_site", "sampling_date_site"):
        if cand in merged.columns:
            mapping["date"] = cand
            break
    return read_profiles(
        merged, mapping=mapping, crs="EPSG:4326", soc_units="g/kg", source_name="bluecarbon"
    )


# ---------------------------------------------------------------------------- Edgeroi
def read_edgeroi(
    sites: str | Path | pd.DataFrame | None = None,
    horizons: str | Path | pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Read the embedded Edgeroi profiles (359 sites, 2,338 horizons) as a canonical table.

    Parameters
    ----------
    sites, horizons
        ``edgeroi_sites.csv`` and ``edgeroi_horizons.csv`` (files or DataFrames); default the
        copies embedded in ``socmap/_data/edgeroi``.

    Returns
    -------
    pandas.DataFrame
        Coordinates are GDA94 / MGA zone 55 (``x_epsg28355``, ``y_epsg28355``, ``crs =
        "EPSG:28355"``), the CRS of the Edgeroi grids. ``ORCDRC`` is already g/kg. Horizons
        without SOC keep NaN (QC counts them as ``missing_soc``). Depths are rounded to 0.01 cm
        because the source stores them as float32 (``89.99999761581421``). Rows are sorted by
        site and depth. Extras: ``LSQINT``, ``HZDUSD``, ``clay_pct``, ``sand_pct``,
        ``silt_pct``, ``ph_h2o`` (renamed from ``CLYPPT``, ``SNDPPT``, ``SLTPPT``, ``PHIHO5``
        to match the global table), ``LONGDA94``, ``LATGDA94``, ``TAXGAUC``, ``NOTEOBS``.

    Examples
    --------
    >>> t = read_edgeroi()
    >>> t["site_id"].nunique(), len(t), int(t["soc_g_kg"].notna().sum())
    (359, 2338, 2089)
    """
    base = embedded_data_dir() / "edgeroi"
    s = _frame(sites if sites is not None else base / "edgeroi_sites.csv", "Edgeroi sites file")
    h = _frame(
        horizons if horizons is not None else base / "edgeroi_horizons.csv",
        "Edgeroi horizons file",
    )
    _check_columns(s, ("SOURCEID", "x_epsg28355", "y_epsg28355"), "Edgeroi sites table")
    _check_columns(h, ("SOURCEID", "UHDICM", "LHDICM", "ORCDRC"), "Edgeroi horizons table")
    _check_not_empty(h, "Edgeroi horizons table")
    merged = _join_sites(s, h, "SOURCEID", ("Edgeroi sites table", "Edgeroi horizons table"))
    merged = merged.rename(
        columns={
            "CLYPPT": "clay_pct",
            "SNDPPT": "sand_pct",
            "SLTPPT": "silt_pct",
            "PHIHO5": "ph_h2o",
        }
    )
    table = read_profiles(
        merged,
        mapping={
            "site_id": "SOURCEID",
            "x": "x_epsg28355",
            "y": "y_epsg28355",
            "top_cm": "UHDICM",
            "bottom_cm": "LHDICM",
            "soc_g_kg": "ORCDRC",
        },
        crs="EPSG:28355",
        soc_units="g/kg",
        source_name="edgeroi",
    )
    table["top_cm"] = table["top_cm"].round(2)
    table["bottom_cm"] = table["bottom_cm"].round(2)
    return table.sort_values(["site_id", "top_cm"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------- global table
_GLOBAL_DIR = "global_profiles"
_GLOBAL_HORIZONS = "global_soc_horizons_harmonized.csv.gz"
_GLOBAL_SITES = "global_profiles_sites_with_global_covariates.csv.gz"


def _load_sources_yaml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(f"cannot parse {str(path)!r} ({_one_line(exc)}); fix the YAML") from exc
    entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
        raise CatalogError(
            f"{str(path)!r} must hold 'sources: {{pattern: {{licence, commercial, "
            f"attribution}}}}', got {type(entries).__name__!r}; fix the file"
        )
    return {str(k): v for k, v in entries.items()}


def _licence_of(source_db: str, entries: Mapping[str, Mapping[str, Any]]) -> tuple[str, bool]:
    for pattern, entry in entries.items():
        if fnmatch.fnmatchcase(source_db, pattern):
            return str(entry.get("licence", "unknown")), entry.get("commercial") is True
    return "unknown (not in sources.yaml)", False


def read_global_table(
    path: str | Path | None = None,
    *,
    sources: Sequence[str] | None = None,
    commercial_only: bool = False,
) -> pd.DataFrame:
    """Read the global harmonised profile table (WISE3 + AfSP + ISIS) as a canonical table.

    Parameters
    ----------
    path
        The harmonised horizons file; default the embedded
        ``global_profiles/global_soc_horizons_harmonized.csv.gz``. Licences come from
        ``sources.yaml`` next to it (the embedded one when absent).
    sources
        Keep only these ``source_db`` values; glob patterns allowed (``"AfSP:*"``).
    commercial_only
        Keep only sources whose ``sources.yaml`` entry has ``commercial: true``. No embedded
        source allows commercial use today, so this raises on the embedded table.

    Returns
    -------
    pandas.DataFrame
        ``profile_id`` → ``site_id``, ``lon``/``lat`` → ``x``/``y`` (``EPSG:4326``),
        ``source_db`` → ``source``, ``coarse_frag_vol_pct`` / 100 → ``cf_vol``, ``year`` →
        ``date``. Extras: ``clay_pct``, ``silt_pct``, ``sand_pct``, ``ph_h2o``,
        ``source_qc_flag`` (the table's own ``qc_flag``) and ``licence`` (per row, from
        ``sources.yaml``). ``mid_depth_cm`` is not kept (it is ``(top + bottom) / 2``).

    Raises
    ------
    ProfileValidationError
        A ``sources`` pattern that matches nothing, a filter that leaves no rows, or missing
        columns.

    Examples
    --------
    >>> t = read_global_table(sources=["ISRIC-ISIS"])
    >>> t["source"].unique().tolist(), t["crs"].iloc[0]
    (['ISRIC-ISIS'], 'EPSG:4326')
    """
    p = _require_file(
        path if path is not None else embedded_data_dir() / _GLOBAL_DIR / _GLOBAL_HORIZONS,
        "global profile table",
    )
    yml = p.parent / "sources.yaml"
    if not yml.exists():
        yml = embedded_data_dir() / _GLOBAL_DIR / "sources.yaml"
    entries = _load_sources_yaml(yml)
    raw = read_table(p)
    _check_columns(
        raw,
        ("source_db", "profile_id", "lon", "lat", "top_cm", "bottom_cm", "soc_g_kg"),
        f"global table {str(p)!r}",
    )
    _check_not_empty(raw, f"global table {str(p)!r}")
    raw["source_db"] = _as_str(raw["source_db"])
    available = sorted(raw["source_db"].dropna().unique().tolist())
    keep = pd.Series(True, index=raw.index)
    if sources is not None:
        patterns = [sources] if isinstance(sources, str) else list(sources)
        hit: set[str] = set()
        for pat in patterns:
            matched = [s for s in available if fnmatch.fnmatchcase(s, pat)]
            if not matched:
                raise ProfileValidationError(
                    f"sources pattern {pat!r} matches no source_db; available: {available!r} "
                    f"(close: {_close(pat, available)!r})"
                )
            hit.update(matched)
        keep &= raw["source_db"].isin(hit)
    licences = {s: _licence_of(s, entries) for s in available}
    if commercial_only:
        allowed = [s for s, (_, ok) in licences.items() if ok]
        kept = sorted(raw.loc[keep, "source_db"].dropna().unique().tolist())
        keep &= raw["source_db"].isin(allowed)
        if not keep.any():
            terms = "; ".join(f"{s}: {licences[s][0]}" for s in kept)
            raise ProfileValidationError(
                f"commercial_only=True leaves no rows: none of {kept!r} has commercial: true in "
                f"{str(yml)!r} ({terms}); drop commercial_only or use licence-compatible data"
            )
    raw = raw.loc[keep]
    raw = raw.drop(columns=[c for c in ("mid_depth_cm",) if c in raw.columns])
    raw = raw.rename(columns={"qc_flag": "source_qc_flag"})
    raw["licence"] = raw["source_db"].map(lambda s: licences.get(s, ("unknown", False))[0])
    mapping = {
        "site_id": "profile_id",
        "x": "lon",
        "y": "lat",
        "top_cm": "top_cm",
        "bottom_cm": "bottom_cm",
        "soc_g_kg": "soc_g_kg",
        "source": "source_db",
    }
    if "bd_g_cm3" in raw.columns:
        mapping["bd_g_cm3"] = "bd_g_cm3"
    if "coarse_frag_vol_pct" in raw.columns:
        mapping["cf_vol_pct"] = "coarse_frag_vol_pct"
    if "year" in raw.columns:
        mapping["date"] = "year"
    return read_profiles(raw, mapping=mapping, crs="EPSG:4326", soc_units="g/kg")


def read_global_covariates_at_sites(path: str | Path | None = None) -> pd.DataFrame:
    """Read a sites-with-covariates table: one row per profile with the 10′ global covariates.

    Parameters
    ----------
    path
        Default the embedded
        ``global_profiles/global_profiles_sites_with_global_covariates.csv.gz``; the Edgeroi
        ``edgeroi_sites_with_global_covariates.csv`` has the same layout (without
        ``source_db``).

    Returns
    -------
    pandas.DataFrame
        ``site_id`` (from ``profile_id``), ``x``, ``y`` (from ``lon``/``lat``), ``crs``
        (``EPSG:4326``), ``source`` (from ``source_db``, NaN when absent), then the covariate
        columns in file order. Join to a profile table on ``site_id``.

    Raises
    ------
    ProfileValidationError
        Missing ``profile_id``/``lon``/``lat``, an empty table, or a ``profile_id`` listed twice.

    Examples
    --------
    >>> c = read_global_covariates_at_sites()
    >>> c.columns[:5].tolist(), c["site_id"].is_unique
    (['site_id', 'x', 'y', 'crs', 'source'], True)
    """
    p = _require_file(
        path if path is not None else embedded_data_dir() / _GLOBAL_DIR / _GLOBAL_SITES,
        "sites-with-covariates table",
    )
    raw = read_table(p)
    what = f"sites-with-covariates table {str(p)!r}"
    _check_columns(raw, ("profile_id", "lon", "lat"), what)
    _check_not_empty(raw, what)
    ids = _as_str(raw["profile_id"])
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ProfileValidationError(
            f"{what} lists profile_id {dup.iloc[0]!r} {int((ids == dup.iloc[0]).sum())} times; "
            "one row per site is required for joins"
        )
    head = pd.DataFrame(
        {
            "site_id": ids,
            "x": _parse_numeric(raw["lon"], "x", "lon"),
            "y": _parse_numeric(raw["lat"], "y", "lat"),
            "crs": pd.Series("EPSG:4326", index=raw.index, dtype="str"),
            "source": _as_str(raw["source_db"])
            if "source_db" in raw.columns
            else pd.Series(np.nan, index=raw.index, dtype="str"),
        }
    )
    rest = raw.drop(columns=[c for c in ("profile_id", "lon", "lat", "source_db") if c in raw])
    return pd.concat([head, rest], axis=1).reset_index(drop=True)


# ---------------------------------------------------------------------------- QC
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
    pos = np.flatnonzero(~c.site_ok)
    c.out.rows(
        "missing_site_id",
        pos,
        ["nan"] * len(pos),
        ["site_id is empty; give every horizon the id of its profile or core"] * len(pos),
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
    pos = np.flatnonzero(crs.isna().to_numpy())
    c.out.rows(
        "missing_crs",
        pos,
        ["nan"] * len(pos),
        ["crs is empty; pass crs= to read_profiles or fill the crs column"] * len(pos),
    )
    miss = np.isnan(x) | np.isnan(y)
    pos = np.flatnonzero(miss)
    c.out.rows(
        "missing_coordinates",
        pos,
        [f"({_fmt(x[i])}, {_fmt(y[i])})" for i in pos],
        [
            f"x/y is ({_fmt(x[i])}, {_fmt(y[i])}); add the site's coordinates (for blue-carbon "
            "cores: add the core to core_locations.csv)"
            for i in pos
        ],
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
        pos = rows[bad]
        c.out.rows(
            "coordinates_out_of_range",
            pos,
            [f"({_fmt(x[i])}, {_fmt(y[i])})" for i in pos],
            [
                f"(x, y) = ({_fmt(x[i])}, {_fmt(y[i])}) is outside {where}; check the CRS and "
                "which columns hold x and y"
                for i in pos
            ],
        )
        pos = rows[swapped]
        c.out.rows(
            "swapped_lat_lon",
            pos,
            [f"({_fmt(x[i])}, {_fmt(y[i])})" for i in pos],
            [
                f"(x, y) = ({_fmt(x[i])}, {_fmt(y[i])}) looks like y/x (latitude/longitude) "
                f"swapped for {name}; swap the columns (mapping={{'x': ..., 'y': ...}})"
                for i in pos
            ],
        )


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
    pos = np.flatnonzero(miss)
    c.out.rows(
        "missing_depth",
        pos,
        [f"({_fmt(top[i])}, {_fmt(bottom[i])})" for i in pos],
        [
            f"top_cm/bottom_cm is ({_fmt(top[i])}, {_fmt(bottom[i])}); give both horizon "
            "limits in cm"
            for i in pos
        ],
    )
    with np.errstate(invalid="ignore"):
        neg = (top < 0) | (bottom < 0)
        thin = bottom <= top
    pos = np.flatnonzero(neg)
    c.out.rows(
        "negative_depth",
        pos,
        [f"({_fmt(top[i])}, {_fmt(bottom[i])})" for i in pos],
        [
            f"depths ({_fmt(top[i])}, {_fmt(bottom[i])}) cm include a negative value; depths "
            "are cm below the (mineral) surface: re-reference organic layers to start at 0"
            for i in pos
        ],
    )
    pos = np.flatnonzero(thin)
    c.out.rows(
        "nonpositive_thickness",
        pos,
        [f"({_fmt(top[i])}, {_fmt(bottom[i])})" for i in pos],
        [
            f"bottom_cm {_fmt(bottom[i])} <= top_cm {_fmt(top[i])}; the bottom must be deeper "
            "than the top (swap them if reversed)"
            for i in pos
        ],
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


def _check_values(c: _Ctx) -> None:
    t = c.t
    soc = c.soc
    pos = np.flatnonzero(np.isnan(soc) & ~c.empty_site)
    c.out.rows(
        "missing_soc",
        pos,
        ["nan"] * len(pos),
        ["soc_g_kg is missing; the horizon is kept but cannot train or validate a model"]
        * len(pos),
    )
    lo, hi = c.soc_range
    with np.errstate(invalid="ignore"):
        pos = np.flatnonzero((soc < lo) | (soc > hi))
    c.out.rows(
        "soc_out_of_range",
        pos,
        [_fmt(soc[i]) for i in pos],
        [
            f"soc_g_kg {_fmt(soc[i])} is outside [{lo:g}, {hi:g}] g/kg; check the value and its "
            "unit (read_profiles(..., soc_units=...) converts %, permille, mg/g)"
            for i in pos
        ],
    )
    bd = t["bd_g_cm3"].to_numpy(dtype=float)
    lo, hi = c.bd_range
    with np.errstate(invalid="ignore"):
        pos = np.flatnonzero((bd < lo) | (bd > hi))
    c.out.rows(
        "bd_out_of_range",
        pos,
        [_fmt(bd[i]) for i in pos],
        [
            f"bd_g_cm3 {_fmt(bd[i])} is outside [{lo:g}, {hi:g}] g/cm3; check the value (kg/m3 "
            "must be divided by 1000)"
            for i in pos
        ],
    )
    cf = t["cf_vol"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        pos = np.flatnonzero((cf < 0) | (cf > 1))
    c.out.rows(
        "cf_out_of_range",
        pos,
        [_fmt(cf[i]) for i in pos],
        [
            f"cf_vol {_fmt(cf[i])} is outside [0, 1]; give coarse fragments as a volume "
            "fraction (map a % column with mapping={'cf_vol_pct': ...})"
            for i in pos
        ],
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
                "horizons look like % rather than g/kg; if so, re-read with soc_units='%'",
            )
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


_CHECK_STAGES: tuple[tuple[str, Callable[[_Ctx], None]], ...] = (
    ("ids", _check_ids),
    ("coordinates", _check_coordinates),
    ("locations", _check_locations),
    ("depths", _check_depths),
    ("values", _check_values),
    ("units", _check_percent),
)


def qc_profiles(
    table: pd.DataFrame,
    *,
    strict: bool = False,
    soc_range: tuple[float, float] = (0, 600),
    bd_range: tuple[float, float] = (0.05, 2.65),
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
        table, REQUIRED_COLUMNS, what, "read it with socmap.profiles.read_profiles(..., mapping=)"
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
        f"{n_warn} warning(s) in total; run qc_profiles(strict=False) and write_qc() to list them)"
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
    >>> rep = qc_profiles(read_edgeroi())
    >>> flags, md = write_qc(rep, tempfile.mkdtemp())
    >>> flags.name, md.name
    ('flags.csv', 'summary.md')
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flags_path, csv_path, md_path = out / "flags.csv", out / "summary.csv", out / "summary.md"
    with atomic_path(flags_path) as tmp:
        report.flags.to_csv(tmp, index=False)
    with atomic_path(csv_path) as tmp:
        report.summary.to_csv(tmp, index=False)
    with atomic_path(md_path) as tmp:
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
        "| check | severity | rows | sites | description |",
        "|---|---|---:|---:|---|",
    ]
    for r in report.summary.itertuples(index=False):
        desc = str(r.description).replace("|", "\\|")
        lines.append(f"| `{r.check}` | {r.severity} | {r.n_rows} | {r.n_sites} | {desc} |")
    lines.append("")
    return "\n".join(lines)

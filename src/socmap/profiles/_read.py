"""Readers: generic tables, blue-carbon templates, the global table and Edgeroi."""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from socmap._io import duplicated_header
from socmap.catalog import embedded_data_dir
from socmap.errors import (
    CatalogError,
    CRSError,
    ProfileValidationError,
    UnitsError,
)
from socmap.grid import normalise_crs
from socmap.profiles._schema import (
    _ALIASES,
    _CSV_SUFFIXES,
    _EXTRA_KEYS,
    _PARQUET_SUFFIXES,
    _SOC_KEYS,
    _UNIT_ALIASES,
    _UNITS_COLUMNS,
    _VECTOR_SUFFIXES,
    CANONICAL_COLUMNS,
    REQUIRED_COLUMNS,
    SOC_UNITS,
    _as_str,
    _check_columns,
    _check_not_empty,
    _close,
    _finalise,
    _geopandas,
    _one_line,
    _parse_numeric,
    _require_file,
    _sniff_delimiter,
    _suffix,
)


# ---------------------------------------------------------------------------- read_table
def read_table(path: str | Path, *, layer: str | None = None) -> pd.DataFrame:
    r"""Read a profile table file as it is, without mapping it onto the canonical layout.

    Parameters
    ----------
    path
        A ``.csv`` or ``.csv.gz`` file (``,``, ``;`` or tab separated, UTF-8), a ``.parquet``
        file (GeoParquet too) or a vector file of points (GeoPackage, GeoJSON, shapefile,
        FlatGeobuf: :data:`socmap._io.VECTOR_SUFFIXES`).
    layer
        Layer of a vector file; needed only when the file has more than one.

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
    if suffix in _VECTOR_SUFFIXES:
        return _read_vector(p, layer)
    readable = ", ".join((*_CSV_SUFFIXES, *_PARQUET_SUFFIXES, *_VECTOR_SUFFIXES))
    raise ProfileValidationError(
        f"cannot read {str(p)!r}: suffix {suffix!r} is not one of {readable}; export the "
        "table to CSV, Parquet or GeoPackage"
    )


def _read_csv(p: Path) -> pd.DataFrame:
    try:
        sep = _sniff_delimiter(p)
        repeated = duplicated_header(p, sep=sep, encoding="utf-8-sig")
        if "nan" in repeated:  # empty header cells (once: "repeats the column(s) ['nan']")
            raise ProfileValidationError(
                f"{str(p)!r} has columns without a name in its header line (empty cells, e.g. "
                "trailing separators a spreadsheet added); delete those columns or name them"
            )
        if repeated:
            raise ProfileValidationError(
                f"{str(p)!r} repeats the column(s) {repeated!r}; keep one of each (pandas would "
                f"read the second as '{repeated[0]}.1')"
            )
        frame = pd.read_csv(p, sep=sep, encoding="utf-8-sig", low_memory=False)
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
    # ' SOC ' from a spreadsheet export: --map strips its names, so strip the header too
    names = [c.strip() if isinstance(c, str) else c for c in frame.columns]
    twice = sorted({str(c) for c in names if names.count(c) > 1})
    if twice:
        raise ProfileValidationError(
            f"{str(p)!r} repeats the column(s) {twice!r} once spaces around the names are "
            "removed; keep one of each"
        )
    frame.columns = names
    return frame


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


def _read_vector(p: Path, layer: str | None) -> pd.DataFrame:
    gpd = _geopandas()
    import pyogrio

    try:
        layers = pyogrio.list_layers(p)
    except Exception as exc:
        raise ProfileValidationError(
            f"cannot open {str(p)!r} as a vector file ({_one_line(exc)}); check the file"
        ) from exc
    names = [str(row[0]) for row in layers]
    if layer is None and len(names) > 1:
        raise ProfileValidationError(
            f"{str(p)!r} has {len(names)} layers {names!r}; copy the one with the profiles to "
            f"a file of its own (`ogr2ogr cores.gpkg {p.name} {names[0]}`), or in Python "
            "read_table(path, layer=...) and pass the DataFrame to read_profiles"
        )
    if layer is not None and layer not in names:
        raise ProfileValidationError(
            f"{str(p)!r} has no layer {layer!r}; layers are {names!r}"
            f" (close: {_close(layer, names)!r})"
        )
    try:
        gdf = gpd.read_file(p, layer=layer if layer is not None else names[0])
    except Exception as exc:
        raise ProfileValidationError(
            f"cannot read {str(p)!r} ({_one_line(exc)}); check the file"
        ) from exc
    return _points_to_xy(gdf, p)


def _points_to_xy(gdf: Any, p: Path) -> pd.DataFrame:
    """Turn point geometry into ``x``/``y`` (+ ``crs``) columns."""
    gpd = _geopandas()
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf._geometry_column_name not in gdf.columns:
        raise ProfileValidationError(
            f"{str(p)!r} has no point geometry (an attribute-only table); add point geometry "
            "or export it as CSV with coordinate columns and pass --crs (Python: crs=)"
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
def _normalise_unit(unit: object, what: str = "--soc-units") -> str:
    """Map a unit spelling onto a key of :data:`SOC_UNITS`."""
    text = " ".join(str(unit).strip().lower().split())
    if text in _UNIT_ALIASES:
        return _UNIT_ALIASES[text]
    if re.search(r"\b(s?om|loi)\b|organic matter|humus", text):
        raise UnitsError(
            f"{what} {unit!r} looks like organic matter; socmap reads organic carbon only. "
            "Convert OM to OC yourself (any factor, e.g. 0.58, is an assumption socmap will not "
            "make) and pass the OC unit, e.g. --soc-units % (Python: soc_units='%')"
        )
    raise UnitsError(
        f"{what} {unit!r} is not a known SOC unit; use one of {sorted(SOC_UNITS)!r} "
        f"(close: {_close(text, list(_UNIT_ALIASES))!r})"
    )


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
                "one unit first or split the table and read each part with its --soc-units"
            )
        if found and found[0] != unit:
            raise UnitsError(
                f"{what} column {units_col!r} says SOC is in {present.iloc[0]!r} but soc_units "
                f"resolves to {unit!r}; pass --soc-units {found[0]} (Python: "
                f"soc_units={found[0]!r})"
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
        taken = set(cols.values())  # a column that already fills a role is no candidate
        for key in missing:
            cands = [lower[a] for a in _ALIASES.get(key, ()) if a in lower]
            cands += _close(key, [c for c in raw.columns if c not in taken], n=1)
            cands = [c for c in cands if c not in taken]
            if cands:
                suggest[key] = cands[0]
        hint = (
            "; perhaps "
            + " ".join(f"--map {shlex.quote(f'{k}={v}')}" for k, v in suggest.items())
            + f" (Python: mapping={suggest!r})"
            if suggest
            else ""
        )
        raise ProfileValidationError(
            f"{what} lacks required column(s) {missing!r}; expected {list(REQUIRED_COLUMNS)!r} "
            f"(crs may come from --crs), found {list(raw.columns)!r}{hint}"
        )
    return cols


def _resolve_crs(raw: pd.DataFrame, cols: Mapping[str, str], crs: Any, what: str) -> pd.Series:
    """Per-row normalised CRS strings from the table's ``crs`` column and/or ``crs=``."""
    given = normalise_crs(crs) if crs is not None else None
    if "crs" not in cols:
        if given is None:
            raise CRSError(
                f"{what} has x/y but no CRS; pass --crs (e.g. --crs EPSG:4326 for longitude/"
                "latitude; Python: crs=) or add a 'crs' column"
            )
        return pd.Series(given, index=raw.index, dtype="str")
    col = _as_str(raw[cols["crs"]])
    if col.isna().all() and given is None:
        raise CRSError(
            f"{what} column {cols['crs']!r} is empty; pass --crs (e.g. --crs EPSG:4326; "
            "Python: crs=) or fill the column"
        )
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

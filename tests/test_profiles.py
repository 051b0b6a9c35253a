"""Tests for socmap.profiles: readers, unit handling, bad input and every QC check."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.catalog import embedded_data_dir
from socmap.errors import CatalogError, CRSError, InputNotFound, ProfileValidationError, UnitsError
from socmap.profiles import (
    CANONICAL_COLUMNS,
    QC_CHECKS,
    REQUIRED_COLUMNS,
    SOC_UNITS,
    QCReport,
    qc_profiles,
    read_bluecarbon,
    read_edgeroi,
    read_global_covariates_at_sites,
    read_global_table,
    read_profiles,
    read_table,
    write_qc,
)

BLUECARBON = Path(__file__).parent / "data" / "bluecarbon"
LOCATIONS = BLUECARBON / "core_locations.csv"
SAMPLES = BLUECARBON / "core_samples.csv"


# ---------------------------------------------------------------------------- fixtures
def clean_table() -> pd.DataFrame:
    """Two geographic sites, three contiguous horizons each, plausible g/kg values."""
    return pd.DataFrame(
        {
            "site_id": ["A", "A", "A", "B", "B", "B"],
            "x": [150.10, 150.10, 150.10, 149.80, 149.80, 149.80],
            "y": [-30.20, -30.20, -30.20, -30.05, -30.05, -30.05],
            "crs": "EPSG:4326",
            "top_cm": [0.0, 10.0, 30.0, 0.0, 15.0, 30.0],
            "bottom_cm": [10.0, 30.0, 60.0, 15.0, 30.0, 50.0],
            "soc_g_kg": [14.2, 9.1, 4.3, 21.0, 12.5, 6.0],
            "bd_g_cm3": [1.25, 1.35, 1.45, 1.10, 1.20, 1.40],
            "cf_vol": [0.05, 0.10, 0.20, 0.0, 0.0, 0.02],
        }
    )


def many_sites(n: int, topsoil_soc: np.ndarray, source: str = "survey") -> pd.DataFrame:
    """``n`` one-horizon (0-10 cm) geographic sites with the given SOC values."""
    return pd.DataFrame(
        {
            "site_id": [f"S{i:03d}" for i in range(n)],
            "x": np.linspace(140.0, 141.0, n),
            "y": np.linspace(-30.0, -29.0, n),
            "crs": "EPSG:4326",
            "top_cm": 0.0,
            "bottom_cm": 10.0,
            "soc_g_kg": topsoil_soc,
            "source": source,
        }
    )


def generic_frame() -> pd.DataFrame:
    """A non-canonical input layout with extras, SOC in %."""
    return pd.DataFrame(
        {
            "pid": ["P1", "P1", "P2"],
            "lon": [150.1, 150.1, 149.9],
            "lat": [-30.2, -30.2, -30.1],
            "upper": [0, 10, 0],
            "lower": [10, 30, 20],
            "oc_pct": [1.5, 0.9, 2.25],
            "texture": ["clay", "clay", "loam"],
            "notes": ["", "x", "y"],
        }
    )


GENERIC_MAPPING = {
    "site_id": "pid",
    "x": "lon",
    "y": "lat",
    "top_cm": "upper",
    "bottom_cm": "lower",
    "soc_g_kg": "oc_pct",
}


@pytest.fixture(scope="module")
def edgeroi() -> pd.DataFrame:
    return read_edgeroi()


@pytest.fixture(scope="module")
def global_table() -> pd.DataFrame:
    return read_global_table()


@pytest.fixture(scope="module")
def global_report(global_table: pd.DataFrame) -> QCReport:
    return qc_profiles(global_table)


def checks_of(report: QCReport) -> set[str]:
    return set(report.flags["check"])


# ---------------------------------------------------------------------------- read_table
def test_read_table_csv_sniffs_semicolons_and_gzip(tmp_path: Path) -> None:
    df = generic_frame()
    df.to_csv(tmp_path / "a.csv", sep=";", index=False)
    df.to_csv(tmp_path / "b.csv.gz", index=False)
    for name in ("a.csv", "b.csv.gz"):
        back = read_table(tmp_path / name)
        assert back.columns.tolist() == df.columns.tolist()
        assert back["oc_pct"].tolist() == df["oc_pct"].tolist()


def test_read_table_utf8_bom(tmp_path: Path) -> None:
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeffsite_id,x\nA,1\n".encode())
    assert read_table(p).columns.tolist() == ["site_id", "x"]


def test_generic_csv_parquet_roundtrip_identical(tmp_path: Path) -> None:
    df = generic_frame()
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_parquet(tmp_path / "p.parquet")
    a = read_profiles(tmp_path / "p.csv", mapping=GENERIC_MAPPING, crs=4326, soc_units="%")
    b = read_profiles(tmp_path / "p.parquet", mapping=GENERIC_MAPPING, crs=4326, soc_units="%")
    assert a.columns.tolist()[: len(CANONICAL_COLUMNS)] == list(CANONICAL_COLUMNS)
    # Blank CSV cells become NaN while Parquet keeps "", so compare the canonical part.
    pd.testing.assert_frame_equal(
        a[list(CANONICAL_COLUMNS)].drop(columns="source"),
        b[list(CANONICAL_COLUMNS)].drop(columns="source"),
    )
    assert a["source"].unique().tolist() == ["p.csv"]
    assert b["source"].unique().tolist() == ["p.parquet"]
    assert a["soc_g_kg"].tolist() == pytest.approx([15.0, 9.0, 22.5])
    assert a.columns.tolist()[len(CANONICAL_COLUMNS) :] == ["texture", "notes"]


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson", ".shp", ".fgb"])
def test_vector_points_roundtrip_projected(tmp_path: Path, suffix: str) -> None:
    gpd = pytest.importorskip("geopandas")
    shapely = pytest.importorskip("shapely")
    xs = [758572.8, 752191.7]
    ys = [6661724.4, 6663721.5]
    gdf = gpd.GeoDataFrame(
        {
            "site": ["E1", "E2"],
            "top": [0.0, 0.0],
            "bottom": [10.0, 20.0],
            "soc": [12.0, 8.5],
            "landuse": ["crop", "pasture"],
        },
        geometry=[shapely.Point(x, y) for x, y in zip(xs, ys, strict=True)],
        crs="EPSG:28355",
    )
    path = tmp_path / f"pts{suffix}"
    gdf.to_file(path, **({"layer": "profiles"} if suffix == ".gpkg" else {}))
    raw = read_table(path)
    assert raw["crs"].unique().tolist() == ["EPSG:28355"]
    t = read_profiles(
        path,
        mapping={"site_id": "site", "top_cm": "top", "bottom_cm": "bottom", "soc_g_kg": "soc"},
    )
    assert t["x"].tolist() == pytest.approx(xs)
    assert t["y"].tolist() == pytest.approx(ys)
    assert t["crs"].unique().tolist() == ["EPSG:28355"]
    assert t["landuse"].tolist() == ["crop", "pasture"]
    assert qc_profiles(t).ok


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
def test_geopackage_without_crs_needs_crs_argument(tmp_path: Path) -> None:
    gpd = pytest.importorskip("geopandas")
    shapely = pytest.importorskip("shapely")
    gdf = gpd.GeoDataFrame(
        {"site_id": ["A"], "top_cm": [0.0], "bottom_cm": [5.0], "soc_g_kg": [20.0]},
        geometry=[shapely.Point(150.0, -30.0)],
    )
    path = tmp_path / "nocrs.gpkg"
    gdf.to_file(path)
    with pytest.raises(CRSError, match="crs="):
        read_profiles(path)
    assert read_profiles(path, crs="EPSG:4326")["crs"].tolist() == ["EPSG:4326"]


def test_geopackage_empty_geometry_is_kept_and_flagged(tmp_path: Path) -> None:
    gpd = pytest.importorskip("geopandas")
    shapely = pytest.importorskip("shapely")
    gdf = gpd.GeoDataFrame(
        {
            "site_id": ["A", "B"],
            "top_cm": [0.0, 0.0],
            "bottom_cm": [5.0, 5.0],
            "soc_g_kg": [20.0, 9.0],
        },
        geometry=[shapely.Point(150.0, -30.0), None],
        crs=4326,
    )
    gdf.to_file(tmp_path / "e.gpkg")
    t = read_profiles(tmp_path / "e.gpkg")
    assert len(t) == 2 and np.isnan(t.loc[1, "x"])
    rep = qc_profiles(t)
    assert rep.flags.loc[rep.flags["check"] == "missing_coordinates", "row"].tolist() == [1]


def test_geoparquet_roundtrip(tmp_path: Path) -> None:
    gpd = pytest.importorskip("geopandas")
    shapely = pytest.importorskip("shapely")
    gdf = gpd.GeoDataFrame(
        {"site_id": ["A"], "top_cm": [0.0], "bottom_cm": [5.0], "soc_g_kg": [20.0]},
        geometry=[shapely.Point(150.0, -30.0)],
        crs=4326,
    )
    gdf.to_parquet(tmp_path / "g.parquet")
    t = read_profiles(tmp_path / "g.parquet")
    assert (t.loc[0, "x"], t.loc[0, "y"], t.loc[0, "crs"]) == (150.0, -30.0, "EPSG:4326")


def test_multilayer_geopackage_needs_layer(tmp_path: Path) -> None:
    gpd = pytest.importorskip("geopandas")
    shapely = pytest.importorskip("shapely")
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(1, 2)], crs=4326)
    path = tmp_path / "m.gpkg"
    gdf.to_file(path, layer="one")
    gdf.to_file(path, layer="two")
    with pytest.raises(ProfileValidationError, match=r"ogr2ogr cores.gpkg m.gpkg one.*layer="):
        read_table(path)
    assert read_table(path, layer="two")["x"].tolist() == [1.0]


# ---------------------------------------------------------------------------- read_profiles
@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("g/kg", 1.0),
        ("g kg-1", 1.0),
        ("%", 10.0),
        ("percent", 10.0),
        ("permille", 1.0),
        ("‰", 1.0),
        ("mg/g", 1.0),
        ("dg/kg", 0.1),
    ],
)
def test_soc_units_convert_to_g_kg(unit: str, factor: float) -> None:
    t = read_profiles(generic_frame(), mapping=GENERIC_MAPPING, crs=4326, soc_units=unit)
    assert t["soc_g_kg"].tolist() == pytest.approx([1.5 * factor, 0.9 * factor, 2.25 * factor])


def test_unit_specific_mapping_keys() -> None:
    m = {k: v for k, v in GENERIC_MAPPING.items() if k != "soc_g_kg"}
    df = generic_frame().assign(cf=[5.0, 20.0, 0.0])
    t = read_profiles(df, mapping={**m, "soc_pct": "oc_pct", "cf_vol_pct": "cf"}, crs=4326)
    assert t["soc_g_kg"].tolist() == pytest.approx([15.0, 9.0, 22.5])
    assert t["cf_vol"].tolist() == pytest.approx([0.05, 0.2, 0.0])
    assert "cf" not in t.columns


def test_canonical_names_need_no_mapping_and_types_are_fixed() -> None:
    t = read_profiles(
        clean_table().drop(columns="crs").assign(site_id=[1, 1, 1, 2, 2, 2]), crs=4326
    )
    assert t.columns.tolist() == list(CANONICAL_COLUMNS)
    assert t["site_id"].tolist() == ["1", "1", "1", "2", "2", "2"]
    assert str(t["site_id"].dtype) == "str" and t["x"].dtype == np.float64
    assert t["stratum"].isna().all() and t["source"].isna().all()


def test_crs_column_fills_blanks_from_argument() -> None:
    df = clean_table()
    df.loc[0, "crs"] = np.nan
    df.loc[1, "crs"] = "epsg:4326"
    t = read_profiles(df, crs="EPSG:4326")
    assert t["crs"].unique().tolist() == ["EPSG:4326"]


def test_consistent_units_column_is_consumed() -> None:
    df = generic_frame().assign(units="%")
    t = read_profiles(df, mapping=GENERIC_MAPPING, crs=4326, soc_units="%")
    assert "units" not in t.columns
    assert t["soc_g_kg"].iloc[0] == pytest.approx(15.0)


def test_source_name_fills_blank_source() -> None:
    df = clean_table().assign(source=["lab1", np.nan, "lab1", np.nan, np.nan, np.nan])
    t = read_profiles(df, source_name="field-2024")
    assert t["source"].tolist() == ["lab1", "field-2024", "lab1", *["field-2024"] * 3]


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(0, 60, allow_nan=False), min_size=1, max_size=8),
    unit=st.sampled_from(sorted(SOC_UNITS)),
)
def test_unit_conversion_property(values: list[float], unit: str) -> None:
    n = len(values)
    df = pd.DataFrame(
        {
            "site_id": "A",
            "x": 1.0,
            "y": 2.0,
            "top_cm": np.arange(n) * 10.0,
            "bottom_cm": np.arange(n) * 10.0 + 10,
            "soc_g_kg": values,
        }
    )
    t = read_profiles(df, crs=4326, soc_units=unit)
    np.testing.assert_allclose(t["soc_g_kg"], np.asarray(values) * SOC_UNITS[unit])


# ---------------------------------------------------------------------------- bad input
def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match="does not exist"):
        read_profiles(tmp_path / "nope.csv", crs=4326)


def test_unsupported_suffix_raises(tmp_path: Path) -> None:
    p = tmp_path / "profiles.xlsx"
    p.write_bytes(b"PK\x03\x04")
    with pytest.raises(ProfileValidationError, match=r"'\.xlsx' is not one of"):
        read_table(p)


def test_empty_file_raises(tmp_path: Path) -> None:
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(ProfileValidationError, match="is empty"):
        read_table(p)


def test_header_only_table_raises(tmp_path: Path) -> None:
    p = tmp_path / "header.csv"
    p.write_text("site_id,x,y,top_cm,bottom_cm,soc_g_kg\n")
    with pytest.raises(ProfileValidationError, match="0 rows"):
        read_profiles(p, crs=4326)


def test_missing_columns_name_close_matches() -> None:
    df = generic_frame()
    with pytest.raises(ProfileValidationError) as exc:
        read_profiles(df, crs=4326)
    msg = str(exc.value)
    assert "lacks required column(s)" in msg and "'site_id'" in msg
    assert "'x': 'lon'" in msg and "'y': 'lat'" in msg and "\n" not in msg


def test_misspelt_canonical_column_suggests_it() -> None:
    df = clean_table().rename(columns={"soc_g_kg": "soc_gkg"})
    with pytest.raises(ProfileValidationError, match="'soc_g_kg': 'soc_gkg'"):
        read_profiles(df)


def test_unknown_mapping_key_raises() -> None:
    with pytest.raises(ProfileValidationError, match=r"mapping key 'soc_gkg'.*close: \['soc_g_kg'"):
        read_profiles(generic_frame(), mapping={**GENERIC_MAPPING, "soc_gkg": "oc_pct"}, crs=4326)


def test_mapping_to_absent_column_raises() -> None:
    with pytest.raises(ProfileValidationError, match=r"'oc_pc' is not a column.*'oc_pct'"):
        read_profiles(generic_frame(), mapping={**GENERIC_MAPPING, "soc_g_kg": "oc_pc"}, crs=4326)


def test_unknown_soc_units_raises() -> None:
    with pytest.raises(UnitsError, match=r"'kg/m3' is not a known SOC unit"):
        read_profiles(generic_frame(), mapping=GENERIC_MAPPING, crs=4326, soc_units="kg/m3")


def test_organic_matter_units_are_refused() -> None:
    with pytest.raises(UnitsError, match="organic carbon only"):
        read_profiles(generic_frame(), mapping=GENERIC_MAPPING, crs=4326, soc_units="OM %")


def test_mixed_units_column_raises() -> None:
    df = generic_frame().assign(soc_units=["%", "%", "g/kg"])
    with pytest.raises(UnitsError, match="mixes SOC units"):
        read_profiles(df, mapping=GENERIC_MAPPING, crs=4326, soc_units="%")


def test_units_column_disagreeing_with_argument_raises() -> None:
    df = generic_frame().assign(units="percent")
    with pytest.raises(UnitsError, match=r"pass --soc-units % \(Python: soc_units='%'\)"):
        read_profiles(df, mapping=GENERIC_MAPPING, crs=4326)


def test_two_soc_columns_in_different_units_raise() -> None:
    df = generic_frame().assign(oc_gkg=[15.0, 9.0, 22.5])
    m = {**GENERIC_MAPPING, "soc_g_kg": "oc_gkg", "soc_pct": "oc_pct"}
    with pytest.raises(UnitsError, match="more than one unit"):
        read_profiles(df, mapping=m, crs=4326)


def test_non_numeric_depth_raises_with_row_and_value() -> None:
    df = generic_frame().astype({"upper": object})
    df.loc[1, "upper"] = "ten"
    with pytest.raises(ProfileValidationError, match=r"top_cm column 'upper'.*row 1 holds 'ten'"):
        read_profiles(df, mapping=GENERIC_MAPPING, crs=4326)


def test_non_numeric_soc_decimal_comma_hint(tmp_path: Path) -> None:
    p = tmp_path / "eu.csv"
    p.write_text("site_id;x;y;top_cm;bottom_cm;soc_g_kg\nA;1;2;0;10;1,5\n")
    with pytest.raises(ProfileValidationError, match="decimal comma"):
        read_profiles(p, crs=4326)


def test_censored_soc_value_raises() -> None:
    df = clean_table().astype({"soc_g_kg": object})
    df.loc[2, "soc_g_kg"] = "<0.5"
    with pytest.raises(ProfileValidationError, match="censored"):
        read_profiles(df)


def test_gpkg_without_point_geometry_raises(tmp_path: Path) -> None:
    gpd = pytest.importorskip("geopandas")
    shapely = pytest.importorskip("shapely")
    poly = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    poly.to_file(tmp_path / "poly.gpkg")
    with pytest.raises(ProfileValidationError, match=r"non-point geometries.*'Polygon'"):
        read_table(tmp_path / "poly.gpkg")
    pyogrio = pytest.importorskip("pyogrio")
    pyogrio.write_dataframe(pd.DataFrame({"a": [1]}), tmp_path / "attr.gpkg")
    with pytest.raises(ProfileValidationError, match="no point geometry"):
        read_table(tmp_path / "attr.gpkg")


def test_no_crs_for_xy_table_raises() -> None:
    with pytest.raises(CRSError, match="no CRS"):
        read_profiles(generic_frame(), mapping=GENERIC_MAPPING)


def test_unparseable_crs_raises() -> None:
    with pytest.raises(CRSError, match="cannot parse CRS"):
        read_profiles(generic_frame(), mapping=GENERIC_MAPPING, crs="EPSG:notacode")


def test_crs_column_conflicting_with_argument_raises() -> None:
    with pytest.raises(CRSError, match=r"holds \['EPSG:4326'\] but crs="):
        read_profiles(clean_table(), crs="EPSG:28355")


def test_extra_column_clashing_with_canonical_name_raises() -> None:
    df = generic_frame().assign(x=1.0)
    with pytest.raises(ProfileValidationError, match=r"columns \['x'\] clash"):
        read_profiles(df, mapping=GENERIC_MAPPING, crs=4326)


def test_qc_on_non_canonical_table_raises() -> None:
    with pytest.raises(ProfileValidationError, match="lacks column"):
        qc_profiles(generic_frame())
    with pytest.raises(ProfileValidationError, match="0 rows"):
        qc_profiles(clean_table().iloc[:0])


# ---------------------------------------------------------------------------- QC checks
def _set(**cells: tuple[list[int], object]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for col, (rows, value) in cells.items():
            df[col] = df[col].astype(object) if isinstance(value, str) else df[col]
            df.loc[rows, col] = value
        return df

    return f


def _add_empty_site(df: pd.DataFrame) -> pd.DataFrame:
    row = {"site_id": "C", "x": 150.3, "y": -30.3, "crs": "EPSG:4326"}
    return pd.concat([df, pd.DataFrame([row])], ignore_index=True)


def _projected(x: float, y: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def f(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df["crs"] = "EPSG:28355"
        df["x"] = [758572.8] * 3 + [752191.7] * 3
        df["y"] = [6661724.4] * 3 + [6663721.5] * 3
        df.loc[[0, 1, 2], ["x", "y"]] = (x, y)
        return df

    return f


QC_CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[int]]] = {
    # check -> (mutation of the clean table, rows that check must mark in qc_flags)
    "missing_site_id": (_set(site_id=([0], np.nan)), [0]),
    "site_without_samples": (_add_empty_site, [6]),
    "missing_crs": (_set(crs=([4], np.nan)), [4]),
    "missing_coordinates": (_set(x=([1], np.nan)), [1]),
    "coordinates_out_of_range": (_set(x=([0, 1, 2], 200.0)), [0, 1, 2]),
    "swapped_lat_lon": (_set(x=([3, 4, 5], -30.05), y=([3, 4, 5], 149.8)), [3, 4, 5]),
    "site_multiple_locations": (_set(x=([2], 150.11)), [0, 1, 2]),
    "missing_depth": (_set(bottom_cm=([5], np.nan)), [5]),
    "negative_depth": (_set(top_cm=([0], -5.0)), [0]),
    "nonpositive_thickness": (_set(bottom_cm=([4], 15.0)), [4]),
    "overlapping_horizons": (_set(top_cm=([1], 5.0)), [0, 1]),
    "missing_soc": (_set(soc_g_kg=([2], np.nan)), [2]),
    "soc_out_of_range": (_set(soc_g_kg=([0, 3], 700.0)), [0, 3]),
    "bd_out_of_range": (_set(bd_g_cm3=([1], 3.1)), [1]),
    "cf_out_of_range": (_set(cf_vol=([2], 15.0)), [2]),
    "likely_percent_site": (_set(soc_g_kg=([3, 4], 0.4)), [3, 4, 5]),
}


def test_qc_cases_cover_every_check() -> None:
    # likely_percent_units needs >= 20 sites and likely_metre_depths a whole source in m;
    # both have their own tests below.
    own_tests = {"likely_percent_units", "likely_metre_depths", "likely_gkg_read_as_percent"}
    assert set(QC_CASES) | own_tests == set(QC_CHECKS)


def test_clean_table_has_no_flags() -> None:
    rep = qc_profiles(clean_table())
    assert rep.flags.empty and rep.ok
    assert rep.table["qc_flags"].tolist() == [""] * 6
    assert rep.summary["n_rows"].sum() == 0
    assert rep.summary["check"].tolist() == list(QC_CHECKS)


@pytest.mark.parametrize("check", sorted(QC_CASES))
def test_each_qc_check_fires_on_its_bad_table(check: str) -> None:
    mutate, rows = QC_CASES[check]
    table = mutate(clean_table())
    rep = qc_profiles(table)
    assert check in checks_of(rep)
    marked = [i for i, tags in enumerate(rep.table["qc_flags"]) if check in tags.split(";")]
    assert marked == rows
    assert len(rep.table) == len(table)  # nothing dropped
    flags = rep.flags[rep.flags["check"] == check]
    assert (flags["severity"] == QC_CHECKS[check][0]).all()
    assert flags["message"].str.len().gt(20).all() and not flags["message"].str.contains("\n").any()
    summary = rep.summary.set_index("check")
    assert summary.loc[check, "n_rows"] == len(rows)


def test_out_of_range_and_swapped_in_projected_crs() -> None:
    far = qc_profiles(_projected(758572.8, 1_000_000.0)(clean_table()))
    assert "coordinates_out_of_range" in checks_of(far)
    assert "swapped_lat_lon" not in checks_of(far)
    swapped = qc_profiles(_projected(6661724.4, 758572.8)(clean_table()))
    rows = swapped.flags.loc[swapped.flags["check"] == "swapped_lat_lon", "row"].tolist()
    assert rows == [0, 1, 2]
    assert qc_profiles(_projected(758572.8, 6661724.4)(clean_table())).ok


def test_location_tolerance_in_metres_projected() -> None:
    base = _projected(758572.8, 6661724.4)(clean_table())
    near = base.copy()
    near.loc[1, "x"] += 0.5
    assert qc_profiles(near, location_tolerance_m=1.0).ok
    far = base.copy()
    far.loc[1, "x"] += 5.0
    rep = qc_profiles(far, location_tolerance_m=1.0)
    flag = rep.flags[rep.flags["check"] == "site_multiple_locations"]
    assert flag["site_id"].tolist() == ["A"] and flag["row"].isna().all()
    assert "5.0 m apart" in flag["value"].iloc[0]
    assert qc_profiles(far, location_tolerance_m=10.0).ok


def test_geographic_distance_is_geodesic() -> None:
    df = clean_table()
    df.loc[2, "y"] = -30.2 + 0.001  # ~111 m north
    rep = qc_profiles(df)
    value = rep.flags.loc[rep.flags["check"] == "site_multiple_locations", "value"].iloc[0]
    metres = float(value.split("up to ")[1].split(" m")[0])
    assert 105 < metres < 115


def test_soc_range_is_configurable_and_negative_soc_flags() -> None:
    df = _set(soc_g_kg=([1], -1.0))(clean_table())
    assert "soc_out_of_range" in checks_of(qc_profiles(df))
    assert qc_profiles(clean_table(), soc_range=(0, 20)).flags["row"].tolist() == [3]


def test_empty_row_inside_a_site_with_data_is_not_a_site_without_samples() -> None:
    df = pd.concat(
        [
            clean_table(),
            pd.DataFrame([{"site_id": "A", "x": 150.1, "y": -30.2, "crs": "EPSG:4326"}]),
        ],
        ignore_index=True,
    )
    rep = qc_profiles(df)
    assert rep.table.loc[6, "qc_flags"] == "missing_depth;missing_soc"
    assert "site_without_samples" not in checks_of(rep)


def test_qc_report_table_can_be_read_and_checked_again() -> None:
    rep = qc_profiles(_set(soc_g_kg=([0], 700.0))(clean_table()))
    again = qc_profiles(read_profiles(rep.table))
    assert again.table["qc_flags"].tolist() == rep.table["qc_flags"].tolist()
    assert list(again.table.columns).count("qc_flags") == 1


def test_lower_bounds_of_bd_and_cf_flag() -> None:
    rep = qc_profiles(_set(bd_g_cm3=([1], 0.01), cf_vol=([4], -0.1))(clean_table()))
    assert rep.flags[["row", "check"]].values.tolist() == [
        [1, "bd_out_of_range"],
        [4, "cf_out_of_range"],
    ]
    assert qc_profiles(clean_table(), bd_range=(1.2, 2.0)).flags["row"].tolist() == [3]


def test_several_checks_on_one_row_join_with_semicolons() -> None:
    df = _set(soc_g_kg=([0], 700.0), bd_g_cm3=([0], 3.0))(clean_table())
    rep = qc_profiles(df)
    assert rep.table.loc[0, "qc_flags"] == "soc_out_of_range;bd_out_of_range"
    assert rep.table.loc[1, "qc_flags"] == ""


def test_overlap_with_duplicated_profile_flags_all_copies() -> None:
    df = pd.concat([clean_table(), clean_table().iloc[:3]], ignore_index=True)
    rep = qc_profiles(df)
    rows = sorted(rep.flags.loc[rep.flags["check"] == "overlapping_horizons", "row"].tolist())
    assert rows == [0, 1, 2, 6, 7, 8]


def test_touching_horizons_with_float_noise_do_not_overlap() -> None:
    df = clean_table()
    df.loc[0, "bottom_cm"] = 10.000000149011612  # float32 noise as in legacy tables
    assert qc_profiles(df).ok


@settings(max_examples=25, deadline=None)
@given(
    thicknesses=st.lists(st.integers(1, 40), min_size=2, max_size=6),
    seed=st.integers(0, 2**16),
    dup=st.booleans(),
)
def test_overlap_detection_is_order_invariant(thicknesses: list[int], seed: int, dup: bool) -> None:
    bottoms = np.cumsum(thicknesses).astype(float)
    tops = np.r_[0.0, bottoms[:-1]]
    df = pd.DataFrame(
        {
            "site_id": "P",
            "x": 150.0,
            "y": -30.0,
            "crs": "EPSG:4326",
            "top_cm": tops,
            "bottom_cm": bottoms,
            "soc_g_kg": 10.0,
        }
    )
    if dup:
        df = pd.concat([df, df.iloc[[len(df) // 2]]], ignore_index=True)
    order = np.random.default_rng(seed).permutation(len(df))
    rep = qc_profiles(df.iloc[order].reset_index(drop=True))
    n_overlap = int((rep.flags["check"] == "overlapping_horizons").sum())
    assert n_overlap == (2 if dup else 0)


def test_likely_percent_units_fires_on_percent_source() -> None:
    rng = np.random.default_rng(7)
    pct = many_sites(30, rng.uniform(0.4, 3.5, 30), source="lab-pct")
    gkg = many_sites(30, rng.uniform(4.0, 35.0, 30), source="lab-gkg")
    gkg["site_id"] = "G" + gkg["site_id"]
    rep = qc_profiles(pd.concat([pct, gkg], ignore_index=True))
    flags = rep.flags[rep.flags["check"] == "likely_percent_units"]
    assert len(flags) == 1 and "'lab-pct'" in flags["value"].iloc[0]
    assert "median" in flags["message"].iloc[0] and "soc_units='%'" in flags["message"].iloc[0]
    assert flags["row"].isna().all()
    marked = rep.table["qc_flags"].str.contains("likely_percent_units")
    assert marked.tolist() == [True] * 30 + [False] * 30
    # The site-level warning is not repeated inside a flagged source.
    assert "likely_percent_site" not in checks_of(rep)


def test_likely_metre_depths_fires_on_a_source_in_metres_only() -> None:
    metres = clean_table().assign(source="field-m")
    metres[["top_cm", "bottom_cm"]] = metres[["top_cm", "bottom_cm"]] / 100
    cm = clean_table().assign(source="lab-cm", site_id=lambda t: "C" + t["site_id"])
    rep = qc_profiles(pd.concat([metres, cm], ignore_index=True))
    flags = rep.flags[rep.flags["check"] == "likely_metre_depths"]
    assert len(flags) == 1 and "'field-m'" in flags["value"].iloc[0]
    assert "multiply top_cm and bottom_cm by 100" in flags["message"].iloc[0]
    marked = rep.table["qc_flags"].str.contains("likely_metre_depths")
    assert marked.tolist() == [True] * len(metres) + [False] * len(cm)
    # a shallow surface survey in whole centimetres is not metres
    surface = clean_table().assign(top_cm=0.0, bottom_cm=2.0)
    assert "likely_metre_depths" not in checks_of(qc_profiles(surface))


def test_likely_percent_units_needs_enough_samples_and_no_large_values() -> None:
    few = many_sites(10, np.full(10, 1.0))
    assert "likely_percent_units" not in checks_of(qc_profiles(few))
    big = many_sites(30, np.r_[np.full(25, 1.0), np.full(5, 80.0)])
    assert "likely_percent_units" not in checks_of(qc_profiles(big))
    # One out-of-range value does not hide a source in %.
    one_outlier = many_sites(200, np.r_[np.full(199, 1.0), 900.0])
    assert "likely_percent_units" in checks_of(qc_profiles(one_outlier))


def test_g_kg_read_as_percent_is_an_error_unless_the_soils_are_light() -> None:
    rng = np.random.default_rng(3)
    gkg = rng.uniform(4.0, 35.0, 30)  # a mineral topsoil survey in g/kg ...
    as_pct = read_profiles(
        many_sites(30, gkg).rename(columns={"soc_g_kg": "oc"}),
        mapping={"soc_g_kg": "oc"},
        soc_units="%",  # ... read as %: ten times too high
    )
    rep = qc_profiles(as_pct)
    flags = rep.flags[rep.flags["check"] == "likely_gkg_read_as_percent"]
    assert len(flags) == 1 and flags["severity"].iloc[0] == "error"
    assert "--soc-units g/kg" in flags["message"].iloc[0]
    assert rep.table["qc_flags"].str.contains("likely_gkg_read_as_percent").all()
    assert "likely_gkg_read_as_percent" not in checks_of(qc_profiles(many_sites(30, gkg)))
    # the same carbon with a mineral bulk density is still an error; with a light one it is
    # a plausible organic soil (a mangrove, a histic horizon), and peat is above the range
    assert "likely_gkg_read_as_percent" in checks_of(qc_profiles(as_pct.assign(bd_g_cm3=1.3)))
    assert "likely_gkg_read_as_percent" not in checks_of(qc_profiles(as_pct.assign(bd_g_cm3=0.4)))
    peat = many_sites(30, rng.uniform(380.0, 520.0, 30))
    assert "likely_gkg_read_as_percent" not in checks_of(qc_profiles(peat))
    few = many_sites(10, np.full(10, 150.0))  # too few horizons to judge a source
    assert "likely_gkg_read_as_percent" not in checks_of(qc_profiles(few))


def test_strict_raises_first_error_with_counts() -> None:
    df = _set(bottom_cm=([4], 15.0), soc_g_kg=([2], np.nan))(clean_table())
    with pytest.raises(ProfileValidationError) as exc:
        qc_profiles(df, strict=True)
    msg = str(exc.value)
    assert "nonpositive_thickness" in msg and "site 'B' row 4" in msg
    assert "bottom_cm 15 <= top_cm 15" in msg and "swap them" in msg
    assert "1 error(s) and 1 warning(s)" in msg and "\n" not in msg
    assert not isinstance(exc.value, UnitsError)


def test_strict_passes_with_warnings_only() -> None:
    rep = qc_profiles(_set(soc_g_kg=([2], np.nan))(clean_table()), strict=True)
    assert rep.ok and len(rep.warnings()) == 1 and rep.errors().empty


def test_strict_raises_units_error_for_percent() -> None:
    with pytest.raises(UnitsError, match="soc_units='%'"):
        qc_profiles(many_sites(25, np.full(25, 1.2)), strict=True)


def test_qc_raises_on_bad_crs_value() -> None:
    with pytest.raises(CRSError):
        qc_profiles(clean_table().assign(crs="not a crs"))


# ---------------------------------------------------------------------------- write_qc
def test_write_qc_writes_flags_and_summaries(tmp_path: Path) -> None:
    rep = qc_profiles(_set(soc_g_kg=([0], 700.0), top_cm=([1], 5.0))(clean_table()))
    flags_path, md_path = write_qc(rep, tmp_path / "qc")
    assert flags_path == tmp_path / "qc" / "flags.csv"
    back = pd.read_csv(flags_path)
    assert back["check"].tolist() == rep.flags["check"].tolist()
    assert back.columns.tolist() == ["row", "site_id", "check", "severity", "value", "message"]
    summary = pd.read_csv(tmp_path / "qc" / "summary.csv")
    assert summary.set_index("check").loc["overlapping_horizons", "n_rows"] == 2
    md = md_path.read_text()
    assert re.search(r"\| `soc_out_of_range` +\| error +\| +1 \| +1 \|", md)
    assert sorted(p.name for p in (tmp_path / "qc").iterdir()) == [
        ".socmap-outputs.json",  # the ledger: a rerun may replace these three, nothing else
        "flags.csv",
        "summary.csv",
        "summary.md",
    ]
    write_qc(rep, tmp_path / "qc")  # overwriting leaves no temporary files behind
    assert len(list((tmp_path / "qc").iterdir())) == 4


# ---------------------------------------------------------------------------- blue carbon
def test_bluecarbon_fixtures() -> None:
    t = read_bluecarbon(LOCATIONS, SAMPLES)
    assert t.columns.tolist()[: len(CANONICAL_COLUMNS)] == list(CANONICAL_COLUMNS)
    assert t["site_id"].nunique() == 6 and len(t) == 37
    assert sorted(t["stratum"].unique()) == ["mangrove", "saltmarsh"]
    assert (t["crs"] == "EPSG:4326").all() and (t["source"] == "bluecarbon").all()
    fine = t[t["site_id"] == "MG-01"]
    assert fine["top_cm"].tolist() == list(np.arange(0.0, 100.0, 5.0))
    assert fine["bottom_cm"].tolist() == list(np.arange(5.0, 101.0, 5.0))
    composite = t[t["site_id"] == "SM-01"]
    assert composite[["top_cm", "bottom_cm"]].values.tolist() == [[0.0, 30.0]]
    assert t["soc_g_kg"].between(20, 150).all() and t["bd_g_cm3"].between(0.3, 1.2).all()
    assert t.loc[0, "date"] == "2024-03-12"
    assert {"sample_id", "elevation_m_ahd", "site_name"} <= set(t.columns)
    rep = qc_profiles(t)
    assert rep.flags.empty


def test_bluecarbon_fixtures_regenerate_identically(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_fixtures", BLUECARBON / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    locs, samples = mod.make()
    locs.to_csv(tmp_path / "l.csv", index=False)
    samples.to_csv(tmp_path / "s.csv", index=False)
    assert (tmp_path / "l.csv").read_text() == LOCATIONS.read_text()
    assert (tmp_path / "s.csv").read_text() == SAMPLES.read_text()


def test_bluecarbon_orphans_are_kept_and_flagged() -> None:
    locs = pd.read_csv(LOCATIONS)
    samples = pd.read_csv(SAMPLES)
    locs = pd.concat(
        [
            locs[locs["core_id"] != "SM-01"],
            locs[locs["core_id"] == "SM-01"].assign(core_id="SM-09"),
        ],
        ignore_index=True,
    )
    t = read_bluecarbon(locs, samples)
    assert len(t) == len(samples) + 1
    rep = qc_profiles(t)
    orphan = rep.flags[rep.flags["check"] == "missing_coordinates"]
    assert orphan["site_id"].tolist() == ["SM-01"]
    empty = rep.flags[rep.flags["check"] == "site_without_samples"]
    assert empty["site_id"].tolist() == ["SM-09"]
    assert "core_samples.csv" in empty["message"].iloc[0]
    # The empty core row is not double-counted as missing depth or SOC.
    assert {"missing_depth", "missing_soc"}.isdisjoint(checks_of(rep))


def test_bluecarbon_missing_template_column_raises(tmp_path: Path) -> None:
    pd.read_csv(SAMPLES).rename(columns={"depth_top_cm": "depth_top"}).to_csv(
        tmp_path / "s.csv", index=False
    )
    with pytest.raises(ProfileValidationError, match=r"\['depth_top_cm'\].*'depth_top'"):
        read_bluecarbon(LOCATIONS, tmp_path / "s.csv")


def test_bluecarbon_duplicate_core_location_raises() -> None:
    locs = pd.read_csv(LOCATIONS)
    locs = pd.concat([locs, locs.iloc[[2]]], ignore_index=True)
    with pytest.raises(ProfileValidationError, match="'MG-03' more than once"):
        read_bluecarbon(locs, SAMPLES)


def test_bluecarbon_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound):
        read_bluecarbon(tmp_path / "core_locations.csv", SAMPLES)


# ---------------------------------------------------------------------------- Edgeroi
def test_edgeroi_real_counts(edgeroi: pd.DataFrame) -> None:
    t = edgeroi
    assert t["site_id"].nunique() == 359
    assert len(t) == 2338
    assert int(t["soc_g_kg"].notna().sum()) == 2089
    assert t["crs"].unique().tolist() == ["EPSG:28355"]
    assert t.columns.tolist()[: len(CANONICAL_COLUMNS)] == list(CANONICAL_COLUMNS)
    assert {"clay_pct", "sand_pct", "silt_pct", "ph_h2o", "TAXGAUC"} <= set(t.columns)
    # MGA55 eastings/northings of the lower Namoi valley, depths rounded from float32.
    assert t["x"].between(740_000, 790_000).all() and t["y"].between(6_640_000, 6_680_000).all()
    assert (t["top_cm"] == t["top_cm"].round(2)).all()
    # Sorted by site then depth.
    assert t.groupby("site_id")["top_cm"].apply(lambda s: s.is_monotonic_increasing).all()


def test_edgeroi_qc_counts(edgeroi: pd.DataFrame) -> None:
    rep = qc_profiles(edgeroi)
    assert rep.ok
    summary = rep.summary.set_index("check")["n_rows"]
    assert summary["missing_soc"] == 2338 - 2089
    assert summary.drop("missing_soc").sum() == 0


def test_percent_heuristic_on_real_data(
    edgeroi: pd.DataFrame, global_table: pd.DataFrame, global_report: QCReport
) -> None:
    # Measured: Edgeroi 0 sources / 0 sites; global 0 sources and 127 of 31,185 sites with
    # topsoil (0.4 %: mostly Sahel and desert profiles), so the site warning is rare.
    e = qc_profiles(edgeroi).summary.set_index("check")
    assert e.loc["likely_percent_units", "n_sites"] == 0
    assert e.loc["likely_percent_site", "n_sites"] == 0
    g = global_report.summary.set_index("check")
    assert g.loc["likely_percent_units", "n_rows"] == 0
    n_topsoil_sites = global_table.loc[global_table["top_cm"] < 30, "site_id"].nunique()
    assert g.loc["likely_percent_site", "n_sites"] / n_topsoil_sites < 0.005
    # The same real tables divided by 10 (i.e. given in %) are caught.
    as_pct = edgeroi.assign(soc_g_kg=edgeroi["soc_g_kg"] / 10)
    assert "likely_percent_units" in checks_of(qc_profiles(as_pct))
    # Every global source with >= 20 topsoil horizons is caught (all but AfSP:NCSS, n=3),
    # WISE3 included despite its few SOC values above 600 g/kg.
    topsoil = global_table[global_table["top_cm"] < 30]  # all the heuristic looks at
    g_pct = qc_profiles(topsoil.assign(soc_g_kg=topsoil["soc_g_kg"] / 10))
    flagged = g_pct.flags.loc[g_pct.flags["check"] == "likely_percent_units", "value"]
    caught = {v.split("'")[1] for v in flagged}
    assert caught == set(global_table["source"].unique()) - {"AfSP:NCSS"}


def test_edgeroi_orphan_horizon_and_empty_site_are_kept() -> None:
    base = embedded_data_dir() / "edgeroi"
    sites = pd.read_csv(base / "edgeroi_sites.csv").iloc[:5]
    horizons = pd.read_csv(base / "edgeroi_horizons.csv")
    keep = horizons["SOURCEID"].isin(sites["SOURCEID"].iloc[:4])
    orphan = horizons[~keep].iloc[[0]].assign(SOURCEID="NOT_A_SITE")
    t = read_edgeroi(sites, pd.concat([horizons[keep], orphan], ignore_index=True))
    assert len(t) == int(keep.sum()) + 2
    rep = qc_profiles(t)
    assert rep.flags.loc[rep.flags["check"] == "missing_coordinates", "site_id"].tolist() == [
        "NOT_A_SITE"
    ]
    assert rep.flags.loc[rep.flags["check"] == "site_without_samples", "site_id"].tolist() == [
        sites["SOURCEID"].iloc[4]
    ]


# ---------------------------------------------------------------------------- global table
def test_global_table_mapping(global_table: pd.DataFrame) -> None:
    t = global_table
    assert len(t) == 101_417 and t["site_id"].nunique() == 31_231
    assert t.columns.tolist() == [
        *CANONICAL_COLUMNS,
        "clay_pct",
        "silt_pct",
        "sand_pct",
        "ph_h2o",
        "source_qc_flag",
        "licence",
    ]
    assert t["crs"].unique().tolist() == ["EPSG:4326"]
    assert t["cf_vol"].max() <= 1.0 and t["cf_vol"].max() == pytest.approx(0.95)
    assert set(t["date"].dropna().str.len()) == {4}  # years
    assert t.loc[t["source"] == "ISRIC-WISE3", "licence"].str.startswith("CC BY-SA 4.0").all()
    assert (
        t.loc[t["source"].str.startswith("AfSP:"), "licence"].str.contains("non-commercial").all()
    )
    assert int(t["source_qc_flag"].notna().sum()) == 10_356 + 24 + 16 + 9 + 9


def test_global_table_qc_matches_source_flags(global_report: QCReport) -> None:
    s = global_report.summary.set_index("check")["n_rows"]
    # The staging's own qc_flag counts: 16 SOC > 600, 9 negative tops, 9 bottom <= top.
    assert s["soc_out_of_range"] == 16
    assert s["negative_depth"] == 9
    assert s["nonpositive_thickness"] == 9
    assert s["missing_coordinates"] == 0 and s["coordinates_out_of_range"] == 0


def test_global_table_source_filter() -> None:
    t = read_global_table(sources=["AfSP:*", "ISRIC-ISIS"])
    assert len(t) == 63_686 + 3_880
    assert t["source"].str.startswith("AfSP:").sum() == 63_686


def test_global_table_unknown_source_pattern_raises() -> None:
    with pytest.raises(ProfileValidationError, match=r"'ISRIC-WISE' matches no source_db.*close"):
        read_global_table(sources=["ISRIC-WISE"])


def test_global_table_commercial_only_raises_on_embedded() -> None:
    with pytest.raises(ProfileValidationError, match="commercial_only=True leaves no rows"):
        read_global_table(commercial_only=True)


def test_global_table_commercial_only_with_own_sources_yaml(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "source_db": ["OpenLab", "OpenLab", "Closed"],
            "profile_id": ["O1", "O1", "C1"],
            "lon": [10.0, 10.0, 11.0],
            "lat": [50.0, 50.0, 51.0],
            "top_cm": [0, 10, 0],
            "bottom_cm": [10, 30, 20],
            "soc_g_kg": [20.0, 10.0, 15.0],
        }
    )
    df.to_csv(tmp_path / "table.csv", index=False)
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  OpenLab: {licence: CC-BY-4.0, commercial: true}\n"
        "  Closed: {licence: research only, commercial: false}\n"
    )
    t = read_global_table(tmp_path / "table.csv", commercial_only=True)
    assert t["site_id"].unique().tolist() == ["O1"]
    assert t["licence"].unique().tolist() == ["CC-BY-4.0"]
    assert t["date"].isna().all() and t["cf_vol"].isna().all()


def test_global_table_malformed_sources_yaml_raises(tmp_path: Path) -> None:
    pd.DataFrame(
        {
            "source_db": ["X"],
            "profile_id": ["P"],
            "lon": [1.0],
            "lat": [2.0],
            "top_cm": [0],
            "bottom_cm": [5],
            "soc_g_kg": [3.0],
        }
    ).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "sources.yaml").write_text("sources: [X, Y]\n")
    with pytest.raises(CatalogError, match="must hold 'sources:"):
        read_global_table(tmp_path / "t.csv")


def test_global_covariates_at_sites_join(global_table: pd.DataFrame) -> None:
    c = read_global_covariates_at_sites()
    assert len(c) == 31_231 and c["site_id"].is_unique
    assert c.columns.tolist()[:5] == ["site_id", "x", "y", "crs", "source"]
    assert "wc_bio1_mat_degC" in c.columns
    assert set(global_table["site_id"]) == set(c["site_id"])
    e = read_global_covariates_at_sites(
        embedded_data_dir() / "edgeroi" / "edgeroi_sites_with_global_covariates.csv"
    )
    assert len(e) == 359 and e["source"].isna().all()


def test_required_columns_are_canonical_prefix() -> None:
    assert CANONICAL_COLUMNS[: len(REQUIRED_COLUMNS)] == REQUIRED_COLUMNS


def test_a_repeated_column_in_a_profile_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(
        "site_id,x,y,crs,top_cm,bottom_cm,soc_g_kg,soc_g_kg\na,1,2,EPSG:4326,0,10,12,1.2\n"
    )
    with pytest.raises(ProfileValidationError, match=r"repeats the column\(s\) \['soc_g_kg'\]"):
        read_profiles(tmp_path / "p.csv")


def test_a_missing_column_gets_cli_mapping_hints_never_a_column_in_use() -> None:
    df = pd.DataFrame({"site_id": ["a"], "x": [1.0], "y": [2.0], "crs": ["EPSG:4326"],
                       "top_cm": [0], "soc_g_kg": [10.0]})  # fmt: skip
    with pytest.raises(ProfileValidationError, match=r"\['bottom_cm'\]") as exc:
        read_profiles(df)
    assert "perhaps" not in str(exc.value)  # top_cm is taken: suggesting it would be nonsense
    renamed = df.rename(columns={"top_cm": "Top", "soc_g_kg": "OC"}).assign(Bottom=30)
    with pytest.raises(ProfileValidationError, match=r"perhaps --map top_cm=Top --map "
                       r"bottom_cm=Bottom --map soc_g_kg=OC \(Python: mapping="):  # fmt: skip
        read_profiles(renamed)

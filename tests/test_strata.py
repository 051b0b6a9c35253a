"""Stratum totals and their sources: the table math, polygons and cores checked on a map."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from shapely.geometry import LineString, Point, box

from socmap.errors import ConfigError, CRSError
from socmap.grid import Grid
from socmap.strata import CO2_PER_C, StrataConfig, cores_needed, project_table, stratum_table


def test_hand_computed_two_strata():
    # 5 draws per stratum, one layer; percentiles by linear interpolation (numpy default)
    draws = {
        "marsh": np.array([[40.0], [50.0], [60.0], [45.0], [55.0]]),
        "flat": np.array([[10.0], [10.0], [10.0], [10.0], [10.0]]),
    }
    cores = pd.DataFrame(
        {
            "stratum": ["marsh"] * 4 + ["flat"] * 2,
            "layer": "0-30cm",
            "stock_t_ha": [30.0, 50.0, 70.0, 50.0, 9.0, 11.0],
        }
    )
    t = stratum_table(draws, {"marsh": 100.0, "flat": 20.0}, ["0-30cm"], cores).set_index("stratum")
    m = t.loc["marsh"]
    assert m["mean_t_c_ha"] == 50.0
    assert m["se_t_c_ha"] == pytest.approx(np.sqrt(250 / 4))  # deviations 10,0,10,5,5
    assert m["total_mg_c"] == 5000.0
    assert m["total_t_co2e"] == pytest.approx(5000.0 * 44 / 12)
    # sorted draws 40 45 50 55 60: 2.5th pct = 40 + 0.1 * 5 = 40.5; 97.5th = 59.5
    assert (m["ci95_low"], m["ci95_high"]) == pytest.approx((40.5, 59.5))
    assert (m["ci90_low"], m["ci90_high"]) == pytest.approx((41.0, 59.0))
    assert m["relative_error"] == pytest.approx(9.5 / 50)
    assert m["conservative_t_c_ha"] == pytest.approx(41.0)  # 5th percentile (90 % two-sided)
    assert m["conservative_mg_c"] == pytest.approx(4100.0)
    # cores: 30 50 70 50 -> mean 50, sd 16.33, CV 0.3266. By hand: the smallest n with
    # n >= (t(0.975, n - 1) CV / 0.2)^2 is 13: (2.179 * 0.3266 / 0.2)^2 = 12.66 <= 13,
    # while n = 12 needs (2.201 * 0.3266 / 0.2)^2 = 12.92 > 12.
    cv = np.std([30, 50, 70, 50], ddof=1) / 50
    assert m["cv_cores"] == pytest.approx(cv)
    assert (stats.t.ppf(0.975, 12) * cv / 0.2) ** 2 <= 13
    assert (stats.t.ppf(0.975, 11) * cv / 0.2) ** 2 > 12
    assert m["cores_needed"] == 13
    assert m["additional_cores"] == 9
    assert bool(m["min_cores_ok"]) and bool(m["precision_ok"])
    f = t.loc["flat"]
    assert f["se_t_c_ha"] == 0.0 and f["relative_error"] == 0.0
    assert f["n_cores"] == 2 and not bool(f["min_cores_ok"])
    # CV 0.1414: n = 4 needs (3.182 * 0.1414 / 0.2)^2 = 5.06 > 4; n = 5 needs 3.85 <= 5
    assert f["cores_needed"] == 5 and f["additional_cores"] == 3


def test_cores_formula_and_its_edges():
    # the fixed point: the answer n satisfies n >= (t(n - 1) CV / E)^2 and n - 1 does not
    for cv in (0.1, 0.4, 0.9):
        n = cores_needed(cv, 3, 0.2, 0.95)
        assert (stats.t.ppf(0.975, n - 1) * cv / 0.2) ** 2 <= n
        assert n == 2 or (stats.t.ppf(0.975, n - 2) * cv / 0.2) ** 2 > n - 1
    # at hand cores do not change the answer; looser targets need fewer
    assert cores_needed(0.4, 30, 0.2, 0.95) == cores_needed(0.4, 2, 0.2, 0.95)
    assert cores_needed(0.4, 30, 0.3, 0.95) < cores_needed(0.4, 30, 0.2, 0.95)
    assert cores_needed(0.4, 30, 0.2, 0.90) < cores_needed(0.4, 30, 0.2, 0.95)
    with pytest.raises(ConfigError, match="coefficient of variation"):
        cores_needed(float("nan"), 3, 0.2, 0.95)


def test_conservative_estimate_follows_its_confidence():
    rng = np.random.default_rng(0)
    d = {"s": rng.normal(30, 3, size=(4000, 1))}
    loose = stratum_table(
        d, {"s": 1.0}, ["0-30cm"], config=StrataConfig(conservative_confidence=0.5)
    )
    strict = stratum_table(
        d, {"s": 1.0}, ["0-30cm"], config=StrataConfig(conservative_confidence=0.95)
    )
    assert loose.loc[0, "conservative_t_c_ha"] > strict.loc[0, "conservative_t_c_ha"]
    # a normal's 2.5th percentile is mean - 1.96 sd
    assert strict.loc[0, "conservative_t_c_ha"] == pytest.approx(30 - 1.96 * 3, abs=0.3)
    assert strict.loc[0, "conservative_t_c_ha"] <= strict.loc[0, "mean_t_c_ha"]


def test_units_and_co2e():
    assert abs(CO2_PER_C * 12 - 44) < 1e-12
    t = stratum_table({"a": np.array([[12.0, 1.0], [12.0, 3.0]])}, {"a": 3.0}, ["x", "y"])
    row = t.set_index("layer").loc["x"]
    assert row["total_mg_c"] == 36.0  # t C/ha x ha = t C = Mg C
    assert row["total_t_co2e"] == pytest.approx(132.0)
    assert t.set_index("layer").loc["y", "mean_t_c_ha"] == 2.0


def test_bad_inputs_raise_config_errors():
    with pytest.raises(ConfigError, match="no area"):
        stratum_table({"a": np.ones((3, 1))}, {}, ["x"])
    with pytest.raises(ConfigError, match="need \\(draws >= 2, 1 layers\\)"):
        stratum_table({"a": np.ones((3, 2))}, {"a": 1.0}, ["x"])
    with pytest.raises(ConfigError, match="target relative error"):
        StrataConfig(target_relative_error=20)
    with pytest.raises(ConfigError, match="lack columns"):
        stratum_table({"a": np.ones((3, 1))}, {"a": 1.0}, ["x"], pd.DataFrame({"stratum": ["a"]}))


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.1, 50.0), min_size=1, max_size=4),
    st.integers(0, 10_000),
)
def test_project_total_is_the_sum_of_the_stratum_totals(areas, seed):
    rng = np.random.default_rng(seed)
    draws = {f"s{i}": rng.gamma(4.0, 10.0, size=(40, 2)) for i in range(len(areas))}
    area = {f"s{i}": a for i, a in enumerate(areas)}
    strata = stratum_table(draws, area, ["0-30cm", "0-100cm"])
    project = project_table(draws, area, ["0-30cm", "0-100cm"])
    for layer in ("0-30cm", "0-100cm"):
        row = project.set_index("layer").loc[layer]
        assert row["total_mg_c"] == pytest.approx(
            strata.loc[strata.layer == layer, "total_mg_c"].sum()
        )
        assert row["area_ha"] == pytest.approx(sum(areas))
        assert row["co2e_ci95_low"] <= row["total_t_co2e"] <= row["co2e_ci95_high"]
        assert row["conservative_t_co2e"] <= row["total_t_co2e"]


def test_project_interval_follows_how_the_strata_errors_move_together():
    """Draws that move together add their intervals; opposite ones cancel."""
    up = np.linspace(10.0, 20.0, 101)[:, None]
    together = project_table({"a": up, "b": up}, {"a": 1.0, "b": 1.0}, ["0-30cm"]).iloc[0]
    opposite = project_table({"a": up, "b": 30.0 - up}, {"a": 1.0, "b": 1.0}, ["0-30cm"]).iloc[0]
    one = stratum_table({"a": up}, {"a": 1.0}, ["0-30cm"]).iloc[0]
    assert together["total_ci95_high"] - together["total_ci95_low"] == pytest.approx(
        2 * (one["ci95_high"] - one["ci95_low"])
    )
    assert opposite["total_ci95_low"] == pytest.approx(opposite["total_ci95_high"]) == 30.0
    # A stratum without mapped pixels (NaN draws) is left out and named.
    gap = project_table(
        {"a": up, "empty": np.full_like(up, np.nan)}, {"a": 1.0, "empty": 0.0}, ["0-30cm"]
    ).iloc[0]
    assert gap["strata"] == 1 and gap["strata_left_out"] == "empty"
    assert gap["total_mg_c"] == pytest.approx(15.0)


def test_core_table_puts_each_core_on_the_grid_with_its_stock_per_layer():
    from socmap.grid import Grid
    from socmap.strata._maps import core_table

    grid = Grid.from_bbox((700000, 6600000, 701000, 6601000), 100, "EPSG:28355")
    cores = pd.DataFrame(
        {"site_id": ["a", "a", "b", "c"], "stratum": ["m", "m", "m", "n"],
         "x": [700050.0, 700050.0, 149.0, np.nan], "y": [6600050.0, 6600050.0, -30.7, np.nan],
         "crs": ["EPSG:28355", "EPSG:28355", "EPSG:4326", "EPSG:28355"]}
    )  # fmt: skip
    stocks = pd.DataFrame(
        {"site_id": ["a", "a", "b", "b", "c", "c"], "layer": ["0-15cm", "0-30cm"] * 3,
         "stock_t_ha": [10.0, 22.0, 5.0, np.nan, 7.0, 13.0]}
    )  # fmt: skip
    table = core_table(cores, stocks, grid)
    assert list(table.columns) == ["site_id", "stratum", "x", "y", "stock_0-15cm", "stock_0-30cm"]
    assert list(table["site_id"]) == ["a", "b", "c"]  # one row per core, none dropped
    assert table.loc[0, ["x", "y"]].tolist() == [700050.0, 6600050.0]
    # a core given in lon/lat lands in the grid's CRS (MGA zone 55 eastings near 149 E)
    assert 690000 < table.loc[1, "x"] < 710000 and np.isnan(table.loc[1, "stock_0-30cm"])
    assert np.isnan(table.loc[2, "x"]) and table.loc[2, "stock_0-30cm"] == 13.0


# ---------------------------------------------------------------------- stratum sources
#: The meuse map's grid (EPSG:28992, 40 m pixels), split at x = 180000 on a pixel edge.
MEUSE = Grid("EPSG:28992", Affine(40.0, 0.0, 178440.0, 0.0, -40.0, 333760.0), (104, 78))
MID_X = 180000.0


def _layer(tmp_path, name, strata, geometries, crs="EPSG:28992"):
    import geopandas as gpd

    gpd.GeoDataFrame({"stratum": strata}, geometry=geometries, crs=crs).to_file(tmp_path / name)
    return tmp_path / name


def test_overlapping_strata_are_refused_naming_both_and_the_shared_pixels(tmp_path):
    from socmap.strata import rasterise_strata

    x0, y0, x1, y1 = MEUSE.bounds
    west, east = box(x0, y0, MID_X, y1), box(MID_X, y0, x1, y1)
    both = _layer(tmp_path, "overlap.gpkg", ["all", "west"], [box(x0, y0, x1, y1), west])
    # the whole west half (39 columns x 104 rows) once went silently to one of the two
    with pytest.raises(
        ConfigError,
        match=r"strata 'all' and 'west' of .*overlap.gpkg' overlap "
        r"on 4056 pixels of the map \(64\d\.?\d* ha\).*make the polygons disjoint",
    ):
        rasterise_strata(MEUSE, both)  # fmt: skip
    # polygons that only share an edge are disjoint: every pixel in exactly one stratum
    codes, labels = rasterise_strata(MEUSE, _layer(tmp_path, "halves.gpkg", ["w", "e"],
                                                   [west, east]))  # fmt: skip
    assert labels == ["e", "w"] and (codes >= 0).all() and (codes[:, :39] == 1).all()


def test_a_layer_of_points_or_lines_is_not_a_stratum(tmp_path):
    from socmap.strata import rasterise_strata

    x0, y0, x1, y1 = MEUSE.bounds
    shapes = [box(x0, y0, MID_X, y1), Point(180500.0, 332000.0), LineString([(x0, y0), (x1, y1)])]
    path = _layer(tmp_path, "mixed.gpkg", ["a", "b", "c"], shapes)
    # a point burnt one pixel: a 0.2 ha stratum nobody drew
    with pytest.raises(
        ConfigError,
        match=r"mixed.gpkg' hold LineString, Point geometries \(2 "
        r"features, rows \[1, 2\]\); strata must be areas",
    ):
        rasterise_strata(MEUSE, path)  # fmt: skip


def test_an_empty_feature_collection_says_it_has_no_feature(tmp_path):
    from socmap.strata import rasterise_strata

    path = tmp_path / "empty.geojson"
    path.write_text('{"type":"FeatureCollection","features":[]}')
    # once "lack the column 'stratum'; pick one of []": a file without columns to pick
    with pytest.raises(
        ConfigError,
        match=r"have no feature with both a geometry and a "
        r"'stratum' value \(0 features\)",
    ):
        rasterise_strata(MEUSE, path)  # fmt: skip


def test_polygons_whose_crs_label_is_wrong_name_a_coordinate_and_the_fix(tmp_path):
    from socmap.strata import rasterise_strata

    x0, y0, x1, y1 = MEUSE.bounds
    halves = [box(x0, y0, MID_X, y1), box(MID_X, y0, x1, y1)]
    path = _layer(tmp_path, "degrees.gpkg", ["w", "e"], halves, crs="EPSG:4326")
    # once "the polygons span x inf..inf": metres labelled as degrees
    with pytest.raises(
        ConfigError,
        match=r"2 of 2 stratum polygons .* e.g. the point x "
        r"179220, y 331680 does not exist in the file's CRS EPSG:4326, so that "
        r"CRS label is probably wrong; assign the CRS",
    ):
        rasterise_strata(MEUSE, path)  # fmt: skip


def test_cores_off_the_map_or_with_a_wrong_crs_label_are_refused_without_warnings():
    from socmap.strata import cores_with_strata

    codes = np.zeros(MEUSE.shape, dtype=np.int32)
    cores = pd.DataFrame({"site_id": ["s0", "s0", "s1"], "x": [179540.0, 179540.0, 180020.0],
                          "y": [330820.0, 330820.0, 332020.0], "crs": "EPSG:28992"})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a numpy cast warning once leaked
        assert cores_with_strata(cores, MEUSE, codes, ["m"])["stratum"].tolist() == ["m"] * 3
        # metres labelled as degrees: once 0 cores in every stratum, silently
        with pytest.raises(
            CRSError,
            match=r"2 of the 2 cores without a stratum have no "
            r"position in the map's CRS EPSG:28992: e.g. core 's0' at x 179540, "
            r"y 330820 is no place in its crs EPSG:4326",
        ):
            cores_with_strata(cores.assign(crs="EPSG:4326"), MEUSE, codes, ["m"])  # fmt: skip
        with pytest.raises(
            ConfigError,
            match=r"none of the 2 cores without a stratum lies on "
            r"the map \(x 178440..181560.*core 's0' at x 279540",
        ):
            cores_with_strata(cores.assign(x=cores["x"] + 1e5), MEUSE, codes, ["m"])
        with pytest.raises(
            ConfigError,
            match=r"1 of the 2 cores without a stratum have no x, y"
            r" .*\(e.g. core 's1'\)",
        ):
            cores_with_strata(cores.assign(y=[330820.0, 330820.0, np.nan]), MEUSE, codes,
                              ["m"])  # fmt: skip


def test_cores_in_no_stratum_are_kept_and_counted():
    from socmap.strata._maps import _core_counts, cores_with_strata

    codes = np.zeros(MEUSE.shape, dtype=np.int32)
    codes[:, :39] = -1  # the west half lies outside every stratum
    cores = pd.DataFrame({"site_id": ["w", "e", "own"], "stratum": [None, None, "typo"],
                          "x": [179540.0, 180020.0, np.nan], "y": [330820.0] * 3,
                          "crs": "EPSG:28992"})  # fmt: skip
    located = cores_with_strata(cores, MEUSE, codes, ["m"])
    assert located["stratum"].tolist() == ["outside strata", "m", "typo"]
    assert _core_counts(located, ["m"], ["m"]) == {
        "total": 3, "outside": 1, "unknown_strata": 1, "unknown_names": ["typo"],
        "without_pixels": 0,
    }  # fmt: skip
    assert _core_counts(located, ["m"], [])["without_pixels"] == 1

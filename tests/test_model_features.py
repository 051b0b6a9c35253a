import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.catalog import load_catalog
from socmap.errors import BandMismatch, BundleError, ConfigError, ProfileValidationError
from socmap.model.features import DEPTH_FEATURES, FeatureSpec

BANDS = pd.DataFrame(
    {
        "name": ["t", "p", "elev", "lc"],
        "kind": ["continuous", "continuous", "continuous", "categorical"],
        "group": ["climate", "climate", "terrain", "land_cover"],
    }
)


def make_table(n: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    top = rng.choice([0.0, 5.0, 15.0, 30.0], size=n)
    return pd.DataFrame(
        {
            "site_id": [f"s{i}" for i in range(n)],
            "t": rng.normal(15, 5, n),
            "p": rng.gamma(2.0, 400.0, n),
            "elev": rng.normal(300, 100, n),
            "lc": rng.choice([1, 3, 7], size=n).astype(float),
            "top_cm": top,
            "bottom_cm": top + rng.choice([5.0, 10.0, 15.0, 30.0], size=n),
            "soc_g_kg": rng.gamma(2.0, 8.0, n),
        }
    )


def test_from_global_catalog_groups_and_vocabularies():
    spec = FeatureSpec.from_catalog(load_catalog("global_10arcmin"))
    assert spec.groups == {
        "climate": ("wc_bio1_mat_degC", "wc_bio12_map_mm"),
        "terrain": ("etopo_elev_m", "etopo_relief_sd_m"),
        "vegetation": ("tree_cover_pct",),
    }
    assert spec.categorical["glcnmo_cover"] == tuple(range(1, 21))
    assert spec.vocab_sizes == {"glcnmo_cover": 21, "glcnmo_cover_cls": 9}
    assert spec.categorical_groups["glcnmo_cover_cls"] == "land_cover"
    assert not spec.is_fitted  # no statistics yet


def test_band_subset_and_unknown_band():
    spec = FeatureSpec.from_catalog(BANDS, bands=["elev", "t"])
    # catalog order is kept within groups
    assert spec.groups == {"climate": ("t",), "terrain": ("elev",)}
    assert spec.categorical == {}
    with pytest.raises(BandMismatch, match=r"'nope'"):
        FeatureSpec.from_catalog(BANDS, bands=["t", "nope"])
    with pytest.raises(BandMismatch, match="kind"):
        FeatureSpec.from_catalog(BANDS.assign(kind="ordinal"))
    with pytest.raises(BandMismatch, match="group"):
        FeatureSpec.from_catalog(BANDS.drop(columns="group"))


def test_fit_statistics_are_nan_aware_with_std_floor():
    table = make_table()
    table.loc[[0, 3], "t"] = np.nan
    table.loc[5, "p"] = np.inf
    table["elev"] = 42.0  # constant band
    spec = FeatureSpec.from_catalog(BANDS).fit(table)
    assert spec.mean["t"] == pytest.approx(np.nanmean(table["t"]))
    assert spec.std["t"] == pytest.approx(np.nanstd(table["t"]))
    finite_p = table["p"][np.isfinite(table["p"])]
    assert spec.mean["p"] == pytest.approx(finite_p.mean())
    assert spec.std["elev"] == spec.std_floor
    assert spec.categorical["lc"] == (1, 3, 7)  # learned, sorted
    assert spec.target_mean == pytest.approx(np.log1p(table["soc_g_kg"]).mean())
    enc = spec.encode(table)
    assert np.all(enc.cont[:, 2] == 0.0) and np.all(enc.mask[:, 2] == 0.0)


def test_all_missing_band_cannot_be_fitted():
    table = make_table().assign(t=np.nan)
    with pytest.raises(ProfileValidationError, match=r"'t' has no finite value"):
        FeatureSpec.from_catalog(BANDS).fit(table)


def test_missing_values_are_normalised_first_then_flagged():
    table = make_table()
    spec = FeatureSpec.from_catalog(BANDS).fit(table)
    probe = table.iloc[:3].copy()
    probe["t"] = [0.0, np.nan, -np.inf]
    enc = spec.encode(probe)
    # a real zero is a value, standardised away from 0; a missing value is 0 with mask 1
    assert enc.cont[0, 0] == pytest.approx((0.0 - spec.mean["t"]) / spec.std["t"], rel=1e-6)
    assert enc.cont[0, 0] != 0.0 and enc.mask[0, 0] == 0.0
    assert enc.cont[1, 0] == 0.0 and enc.mask[1, 0] == 1.0
    assert enc.cont[2, 0] == 0.0 and enc.mask[2, 0] == 1.0
    assert enc.n_missing["t"] == 2
    assert enc.cont.dtype == np.float32 and enc.mask.dtype == np.float32
    assert enc.cat.dtype == np.int64


def test_categorical_missing_unknown_and_non_integer_codes():
    spec = FeatureSpec.from_catalog(BANDS).fit(make_table())
    probe = make_table(4)
    probe["lc"] = [7.0, np.nan, 99.0, 1.0]
    enc = spec.encode(probe)
    assert enc.cat[:, 0].tolist() == [3, 0, 0, 1]
    assert enc.n_missing["lc"] == 1 and enc.n_unknown["lc"] == 1
    probe["lc"] = [7.0, 2.5, 1.0, 1.0]
    with pytest.raises(ProfileValidationError, match=r"non-integer class codes, first 2\.5"):
        spec.encode(probe)


def test_depth_features_and_target():
    spec = FeatureSpec.from_catalog(BANDS).fit(make_table())
    probe = make_table(3)
    probe[["top_cm", "bottom_cm"]] = [[0, 5], [30, 60], [100, 200]]
    probe["soc_g_kg"] = [0.0, 9.0, np.nan]
    enc = spec.encode(probe)
    depth = spec.encode_depth(probe)
    assert len(DEPTH_FEATURES) == enc.depth.shape[1] == depth.shape[1] == 3
    np.testing.assert_allclose(depth[:, 0], [0.0, 0.3, 1.0], rtol=1e-6)
    np.testing.assert_allclose(depth[:, 1], [0.05, 0.6, 2.0], rtol=1e-6)
    np.testing.assert_allclose(depth[:, 2], np.log([0.5, 3.0, 10.0]), rtol=1e-6)
    # encode() puts a row inside one depth atom at that atom's depth.
    w = enc.atom_weight
    assert w is not None and enc.atom_depth is not None
    single = (w > 1 - 1e-6).any(axis=1)
    np.testing.assert_array_equal(enc.depth[single], enc.atom_depth[w[single].argmax(axis=1)])
    np.testing.assert_allclose(enc.target[:2], np.log1p([0.0, 9.0]), rtol=1e-6)
    assert np.isnan(enc.target[2])
    assert np.isnan(spec.encode(probe.drop(columns="soc_g_kg")).target).all()


@pytest.mark.parametrize(
    ("column", "values", "match"),
    [
        ("bottom_cm", [5, 10, 0], r"1 rows .* row 2: top_cm=5\.0, bottom_cm=0\.0"),
        ("top_cm", [0, -1, 0], r"first at row 1"),
        ("bottom_cm", [5, np.nan, 10], r"bottom_cm=nan"),
        ("soc_g_kg", [1.0, -2.0, 3.0], r"negative soc_g_kg, first -2\.0"),
        ("t", ["a", "b", "c"], r"column 't' must be numeric"),
    ],
)
def test_invalid_rows_raise(column, values, match):
    spec = FeatureSpec.from_catalog(BANDS).fit(make_table())
    probe = make_table(3)
    probe[["top_cm", "bottom_cm"]] = [[0, 5], [5, 10], [5, 10]]
    probe[column] = values
    with pytest.raises(ProfileValidationError, match=match):
        spec.encode(probe)


def test_missing_columns_and_unfitted_spec_raise_band_mismatch():
    table = make_table()
    unfitted = FeatureSpec.from_catalog(BANDS)
    with pytest.raises(ConfigError, match="not fitted"):
        unfitted.encode(table)
    spec = unfitted.fit(table)
    with pytest.raises(BandMismatch, match=r"\['p', 'lc'\]"):
        spec.encode(table.drop(columns=["p", "lc"]))
    with pytest.raises(BandMismatch, match="top_cm"):
        spec.encode(table.drop(columns=["top_cm"]))


def test_json_round_trip_and_bad_dicts():
    spec = FeatureSpec.from_catalog(BANDS).fit(make_table())
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    table = make_table(7, seed=3)
    a, b = spec.encode(table), again.encode(table)
    assert np.array_equal(a.cont, b.cont) and np.array_equal(a.cat, b.cat)
    with pytest.raises(BundleError, match="format"):
        FeatureSpec.from_dict({"groups": {}})
    bad = spec.to_dict() | {"target": "log10"}
    with pytest.raises(BundleError, match="'log10'"):
        FeatureSpec.from_dict(bad)


def test_add_group_from_stats_or_table():
    table = make_table().assign(ndvi=np.linspace(0, 1, 50), clay=np.linspace(10, 40, 50))
    spec = FeatureSpec.from_catalog(BANDS).fit(table)
    grown = spec.add_group("regional", ["ndvi", "clay"], table)
    assert list(grown.groups) == ["climate", "terrain", "regional"]
    assert grown.continuous_bands[-2:] == ["ndvi", "clay"]
    assert grown.mean["ndvi"] == pytest.approx(0.5)
    assert grown.mean["t"] == spec.mean["t"]
    by_stats = spec.add_group("regional", ["ndvi", "clay"], {"ndvi": (0.5, 0.2), "clay": (25, 5)})
    enc = by_stats.encode(table)
    assert enc.cont.shape[1] == 5
    np.testing.assert_allclose(enc.cont[:, 3], (table["ndvi"] - 0.5) / 0.2, rtol=1e-5)
    assert spec.encode(table).cont.shape[1] == 3  # original untouched
    with pytest.raises(BandMismatch, match="already exists"):
        spec.add_group("climate", ["ndvi"], table)
    with pytest.raises(BandMismatch, match=r"\['t'\]"):
        spec.add_group("regional", ["t"], table)
    with pytest.raises(BandMismatch, match=r"\['clay'\]"):
        spec.add_group("regional", ["ndvi", "clay"], {"ndvi": (0.5, 0.2)})


def test_encode_global_site_table_counts_every_missing_value():
    from socmap.profiles import read_global_covariates_at_sites

    sites = read_global_covariates_at_sites()
    table = sites.assign(top_cm=0.0, bottom_cm=30.0)
    spec = FeatureSpec.from_catalog(load_catalog("global_10arcmin")).fit(table)
    enc = spec.encode(table)
    for band in spec.band_names:
        assert enc.n_missing[band] == int(sites[band].isna().sum())
    assert enc.mask.sum() == sum(enc.n_missing[b] for b in spec.continuous_bands) > 0
    assert sum(enc.n_unknown.values()) == 0
    assert np.isfinite(enc.cont).all()
    assert np.isnan(enc.target).all()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))),
        min_size=2,
        max_size=30,
    )
)
def test_encoding_is_invertible_where_present(values):
    table = pd.DataFrame({"t": values, "top_cm": 0.0, "bottom_cm": 10.0})
    raw = np.asarray(values)
    spec = FeatureSpec(groups={"climate": ("t",)}, mean={"t": 3.0}, std={"t": 7.0})
    enc = spec.encode(table)
    present = np.isfinite(raw)
    assert np.array_equal(enc.mask[:, 0] == 1.0, ~present)
    np.testing.assert_allclose(enc.cont[present, 0] * 7.0 + 3.0, raw[present], rtol=1e-5, atol=1e-3)
    assert np.all(enc.cont[~present, 0] == 0.0)


def test_balance_weights_and_climate_zones():
    from socmap.model.estimator import balance_weights, climate_zone

    t = pd.DataFrame(
        {
            "wc_bio1_mat_degC": [25.0, 25.0, 25.0, 5.0, np.nan],
            "wc_bio12_map_mm": [100.0, 120.0, 90.0, 900.0, 500.0],
            "source": ["AfSP:a", "AfSP:b", "AfSP:a", "ISRIC-WISE3", "ISRIC-WISE3"],
        }
    )
    assert climate_zone(t).tolist() == ["T3P0", "T3P0", "T3P0", "T1P2", "unknown"]
    w = balance_weights(t, "climate", 1.0)
    assert w is not None and w.mean() == pytest.approx(1.0)
    # power 1 equalises the classes' total weights
    totals = pd.Series(w).groupby(climate_zone(t).to_numpy()).sum()
    assert np.allclose(totals, totals.iloc[0])
    # sources are grouped by the part before ':'
    ws = balance_weights(t, "source", 1.0)
    assert ws is not None and ws[0] == ws[1] and ws[0] < ws[3]
    assert balance_weights(t, None) is None
    with pytest.raises(ProfileValidationError, match="neither 'climate' nor a column"):
        balance_weights(t, "biome")

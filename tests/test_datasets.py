import numpy as np
import pandas as pd
import pytest

from socmap.catalog import load_catalog
from socmap.datasets import global_training_table, synthetic_soil_field
from socmap.errors import ProfileValidationError


@pytest.fixture(scope="module")
def global_table():
    return global_training_table()


def test_global_training_table_keeps_every_profile_interval(global_table):
    t, counts = global_table.table, global_table.counts
    assert counts["profiles_read"] == 31231
    assert len(t) == 31231 * 6 == counts["rows"]
    assert counts["rows_with_target"] == int(t["soc_g_kg"].notna().sum())
    assert global_table.bands == load_catalog("global_10arcmin").band_names
    assert set(global_table.bands) <= set(t.columns)
    # every site got its covariates (24 coastal sites are NaN in climate only)
    assert t["etopo_elev_m"].notna().all()
    assert t.groupby("site_id")["wc_bio1_mat_degC"].first().isna().sum() == 24


def test_exclude_bbox_leaves_the_region_out_and_counts_it(global_table):
    kenya = (33.9, -4.7, 41.9, 5.0)
    tt = global_training_table(exclude_bbox=kenya)
    inside = global_table.table["x"].between(33.9, 41.9) & global_table.table["y"].between(
        -4.7, 5.0
    )
    n_inside = global_table.table.loc[inside, "site_id"].nunique()
    assert n_inside > 100
    assert tt.counts["excluded_by_bbox"] == n_inside
    assert not (tt.table["x"].between(33.9, 41.9) & tt.table["y"].between(-4.7, 5.0)).any()
    assert tt.table["site_id"].nunique() == 31231 - n_inside
    with pytest.raises(ProfileValidationError, match="exclude_bbox"):
        global_training_table(exclude_bbox=(10, 0, 0, 5))
    with pytest.raises(ProfileValidationError, match="no global profile is left"):
        global_training_table(exclude_bbox=(-180, -90, 180, 90))


def test_max_depth_drops_deep_intervals_with_a_count():
    tt = global_training_table(max_depth_cm=100)
    assert tt.table["top_cm"].max() == 60
    assert tt.counts["rows_below_max_depth"] == 31231


def test_synthetic_field_is_seeded_and_has_a_known_answer():
    a = synthetic_soil_field(50, seed=7)
    b = synthetic_soil_field(50, seed=7)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert not a.table.equals(synthetic_soil_field(50, seed=8).table)
    t = a.table
    assert (t["soc_g_kg"] > 0).all() and (t["soc_true_g_kg"] > 0).all()
    # SOC decreases with depth at every site (the field's depth term is monotone)
    wide = t.pivot(index="site_id", columns="top_cm", values="soc_true_g_kg")
    assert (np.diff(wide.to_numpy(), axis=1) < 0).all()
    # the noise is multiplicative with the requested sd
    resid = np.log(t["soc_g_kg"]) - np.log(t["soc_true_g_kg"])
    assert resid.std() == pytest.approx(0.15, rel=0.2)


def test_regional_shift_changes_the_relation_not_the_covariates():
    base = synthetic_soil_field(100, seed=1)
    shifted = synthetic_soil_field(100, seed=1, region_shift=0.5)
    cols = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]
    pd.testing.assert_frame_equal(base.table[cols], shifted.table[cols])
    assert (shifted.table["soc_true_g_kg"] > base.table["soc_true_g_kg"]).all()


def test_missing_covariates_are_per_site():
    t = synthetic_soil_field(200, seed=2, missing_fraction=0.2).table
    frac = t.groupby("site_id")["ndvi"].apply(lambda s: s.isna().mean())
    assert set(frac.unique()) <= {0.0, 1.0}
    assert 0.1 < (frac == 1).mean() < 0.3
    assert t["landcover"].notna().all()


def test_synthetic_field_refuses_no_sites():
    from socmap.datasets import synthetic_soil_field
    from socmap.errors import ConfigError

    with pytest.raises(ConfigError, match="n_sites 0 must be a positive number"):
        synthetic_soil_field(0)

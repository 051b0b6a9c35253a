import numpy as np
import pandas as pd
import pytest

from socmap.datasets import synthetic_soil_field
from socmap.errors import ProfileValidationError
from socmap.model.baselines import RegionalForest
from socmap.validate import BlockKFold
from socmap.validate.cv import cross_validate

BANDS = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]


@pytest.fixture(scope="module")
def field():
    t = synthetic_soil_field(160, depths="vm0033", seed=4).table
    t.loc[t.index[::17], "soc_g_kg"] = np.nan  # some rows without a target
    return t


def _cv(seed=0):
    return BlockKFold(n_splits=5, block_size=10.0, random_state=seed)


def _forest():
    return RegionalForest(BANDS, n_estimators=40, random_state=0)


def test_oof_covers_every_row_with_a_target_once(field):
    res = cross_validate(_forest(), field, _cv(), progress=False)
    assert res.n_rows_without_target == int(field["soc_g_kg"].isna().sum())
    assert len(res.oof) == int(field["soc_g_kg"].notna().sum())
    assert set(res.oof["fold"]) == set(range(5))
    assert res.oof["mean_log"].notna().all()
    # profiles are never split across folds
    assert (res.oof.groupby("site_id")["fold"].nunique() == 1).all()
    summary = res.summary()
    assert set(summary.index) == {"0-15cm", "15-30cm", "30-50cm", "50-100cm", "all"}
    assert summary.loc["all", "r2"] > 0.5
    m = res.metrics.set_index(["depth", "metric"])["value"]
    for tag in ("50", "80", "90", "95"):
        assert 0 <= m[("all", f"picp_{tag}")] <= 1
        assert 0 <= m[("all", f"calibrated_picp_{tag}")] <= 1


class Overconfident(RegionalForest):
    def predict_log(self, X):
        mean, sd = super().predict_log(X)
        return mean, 0.3 * sd


def test_calibration_brings_coverage_to_nominal(field):
    est = Overconfident(BANDS, n_estimators=40, random_state=0)
    res = cross_validate(est, field, _cv(), progress=False)
    m = res.metrics.set_index(["depth", "metric"])["value"]
    # intervals from a too-small sd under-cover; cross-fitted conformal calibration fixes it
    assert m[("all", "picp_90")] < 0.6
    assert m[("all", "calibrated_picp_90")] == pytest.approx(0.9, abs=0.05)


def test_model_selection_never_reads_the_test_fold(field):
    """Poison the held-out targets: out-of-fold predictions must not change."""
    base = cross_validate(_forest(), field, _cv(), progress=False).oof
    for k in range(5):
        poisoned = field.copy()
        in_fold = poisoned["site_id"].isin(base.loc[base["fold"] == k, "site_id"])
        poisoned.loc[in_fold & poisoned["soc_g_kg"].notna(), "soc_g_kg"] = 1e4
        again = cross_validate(_forest(), poisoned, _cv(), progress=False).oof
        rows = (again["fold"] == k).to_numpy()
        np.testing.assert_array_equal(again.loc[rows, "mean_log"], base.loc[rows, "mean_log"])
        assert not np.array_equal(
            again["mean_log"], base["mean_log"]
        )  # the poison is visible elsewhere


def test_fit_sees_only_training_rows(field):
    seen: list[set] = []

    class Spy(RegionalForest):
        def fit(self, X, y=None):
            seen.append(set(X["site_id"]))
            return super().fit(X, y)

    res = cross_validate(Spy(BANDS, n_estimators=5, random_state=0), field, _cv(), progress=False)
    for k, train_sites in enumerate(seen):
        test_sites = set(res.oof.loc[res.oof["fold"] == k, "site_id"])
        assert train_sites.isdisjoint(test_sites)


def test_same_seed_same_table(field):
    a = cross_validate(_forest(), field, _cv(1), progress=False).metrics
    b = cross_validate(_forest(), field, _cv(1), progress=False).metrics
    pd.testing.assert_frame_equal(a, b)


def test_bad_input(field):
    with pytest.raises(ProfileValidationError, match="target column"):
        cross_validate(_forest(), field.drop(columns="soc_g_kg"), _cv(), progress=False)
    with pytest.raises(ProfileValidationError, match="no row"):
        cross_validate(_forest(), field.assign(soc_g_kg=np.nan), _cv(), progress=False)


def test_parallel_folds_give_the_same_table(field):
    serial = cross_validate(_forest(), field, _cv(), progress=False)
    parallel = cross_validate(_forest(), field, _cv(), n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(serial.oof, parallel.oof)
    pd.testing.assert_frame_equal(serial.metrics, parallel.metrics)


def test_area_of_applicability_is_reported_per_fold(field):
    bands = ["temperature", "precipitation", "elevation", "ndvi"]
    res = cross_validate(_forest(), field, _cv(), aoa_bands=bands, progress=False)
    folds = res.folds
    assert list(folds["fold"]) == [0, 1, 2, 3, 4]
    assert (folds["aoa_threshold"] > 0).all()
    assert folds["aoa_inside"].between(0, 1).all()
    assert folds["n_train_sites"].sum() == 4 * folds["n_test_sites"].sum()
    oof = res.oof
    for k, g in oof.groupby("fold"):
        threshold = folds.loc[folds["fold"] == k, "aoa_threshold"].iloc[0]
        np.testing.assert_array_equal(g["inside_aoa"], g["di"] <= threshold)
        sites = g.drop_duplicates("site_id")
        assert folds.loc[k, "aoa_inside"] == pytest.approx(sites["inside_aoa"].mean())
    # without bands the folds table has no AOA columns
    plain = cross_validate(_forest(), field, _cv(), progress=False)
    assert "aoa_threshold" not in plain.folds.columns and "di" not in plain.oof.columns

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from socmap.datasets import synthetic_soil_field
from socmap.errors import BandMismatch, ProfileValidationError
from socmap.model.baselines import RegionalForest, StackedForest

BANDS = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]


@pytest.fixture(scope="module")
def fields():
    train = synthetic_soil_field(150, seed=0, missing_fraction=0.05).table
    test = synthetic_soil_field(100, seed=1).table
    return train, test


def _r2(obs, pred):
    obs, pred = np.log1p(obs), np.log1p(pred)
    return 1 - np.sum((obs - pred) ** 2) / np.sum((obs - obs.mean()) ** 2)


def test_forest_learns_the_field_and_is_seeded(fields):
    train, test = fields
    rf = RegionalForest(BANDS, n_estimators=60, random_state=3).fit(train)
    pred = rf.predict(test)
    assert _r2(test["soc_true_g_kg"], pred) > 0.8
    again = RegionalForest(BANDS, n_estimators=60, random_state=3).fit(train).predict(test)
    np.testing.assert_array_equal(pred, again)
    mean, sd = rf.predict_log(test)
    np.testing.assert_allclose(np.expm1(mean), pred, rtol=1e-10)
    assert (sd >= 0).all() and sd.mean() > 0


def test_rows_without_target_are_counted_not_used(fields):
    train, _ = fields
    holed = train.copy()
    holed.loc[::3, "soc_g_kg"] = np.nan
    rf = RegionalForest(BANDS, n_estimators=10, random_state=0).fit(holed)
    assert rf.n_rows_without_target_ == int(holed["soc_g_kg"].isna().sum())


def test_stacking_uses_the_global_prediction(fields):
    train, test = fields

    def oracle(t):
        return np.log1p(t["soc_true_g_kg"].to_numpy())

    stacked = StackedForest(oracle, bands=["landcover"], n_estimators=60, random_state=0)
    plain = RegionalForest(["landcover"], n_estimators=60, random_state=0)
    s = _r2(test["soc_true_g_kg"], stacked.fit(train).predict(test))
    p = _r2(test["soc_true_g_kg"], plain.fit(train).predict(test))
    assert s > 0.9 > p
    assert clone(stacked).get_params()["global_predict"] is oracle


def test_bad_input(fields):
    train, _ = fields
    with pytest.raises(BandMismatch, match="bands"):
        RegionalForest().fit(train)
    with pytest.raises(BandMismatch, match="lacks columns"):
        RegionalForest(["nope"]).fit(train)
    with pytest.raises(ProfileValidationError, match="target"):
        RegionalForest(BANDS, target="soc_pct").fit(train)
    with pytest.raises(ProfileValidationError, match="DataFrame"):
        RegionalForest(BANDS).fit(train.to_numpy())
    with pytest.raises(NotFittedError):
        RegionalForest(BANDS).predict(train)
    with pytest.raises(ProfileValidationError, match="global_predict"):
        StackedForest(bands=BANDS).fit(train)


def test_raw_target_forest_reports_log_scale_mean_and_spread(fields):
    from socmap.model.baselines import RANGER_DEFAULTS

    train, test = fields
    rf = RegionalForest(BANDS, target_transform="identity", random_state=0, **RANGER_DEFAULTS)
    rf.set_params(n_estimators=40).fit(train)
    assert rf.forest_.max_features == "sqrt" and rf.forest_.min_samples_split == 6
    per_tree = np.stack([t.predict(rf._features(test)) for t in rf.forest_.estimators_])
    mean, sd = rf.predict_log(test)
    # log1p of the mean tree prediction (SOC in g/kg), sd of the trees' log1p predictions
    np.testing.assert_allclose(mean, np.log1p(per_tree.mean(axis=0)), rtol=1e-12)
    np.testing.assert_allclose(sd, np.log1p(per_tree).std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(rf.predict(test), np.expm1(mean), rtol=1e-10)
    assert _r2(test["soc_true_g_kg"], rf.predict(test)) > 0.75
    assert (sd > 0).all()
    # the forest mean on SOC is above the back-transformed log forest (a median-type estimate)
    log_rf = RegionalForest(BANDS, n_estimators=40, random_state=0).fit(train)
    assert rf.predict(test).mean() > log_rf.predict(test).mean()
    stacked = StackedForest(lambda t: np.zeros(len(t)), BANDS, 10, target_transform="identity")
    assert clone(stacked).get_params()["target_transform"] == "identity"
    assert np.isfinite(stacked.fit(train).predict_log(test)[1]).all()


def test_target_transform_is_checked(fields):
    from socmap.errors import ConfigError

    train, _ = fields
    with pytest.raises(ConfigError, match="target_transform 'log10'"):
        RegionalForest(BANDS, target_transform="log10").fit(train)

"""GlobalGBM: the gradient-boosting global baseline."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from socmap.datasets import global_training_table
from socmap.errors import BandMismatch, ConfigError, ProfileValidationError
from socmap.model.global_gbm import GlobalGBM


@pytest.fixture(scope="module")
def table():
    t = global_training_table().table.dropna(subset=["soc_g_kg"])
    sites = t["site_id"].drop_duplicates().sample(1500, random_state=0)
    return t[t["site_id"].isin(sites)].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(table):
    return GlobalGBM(table=None, max_iter=60).fit(table)


def test_learns_the_depth_gradient_and_beats_the_mean(fitted, table):
    pred = fitted.predict(table)
    obs = table["soc_g_kg"].to_numpy()
    baseline = np.abs(obs - np.median(obs)).mean()
    assert np.abs(obs - pred).mean() < 0.9 * baseline
    top = pred[table["top_cm"].to_numpy() == 0].mean()
    deep = pred[table["top_cm"].to_numpy() == 60].mean()
    assert top > 1.5 * deep


def test_any_interval_is_the_thickness_weighted_mean_of_its_atoms(fitted, table):
    site = table.drop_duplicates("site_id").head(20)
    parts = [site.assign(top_cm=t, bottom_cm=b) for t, b in ((0, 5), (5, 15), (15, 30))]
    soc = [fitted.predict(p) for p in parts]
    whole = fitted.predict(site.assign(top_cm=0, bottom_cm=30))
    np.testing.assert_allclose(whole, (5 * soc[0] + 10 * soc[1] + 15 * soc[2]) / 30, rtol=1e-9)


def test_same_seed_same_predictions_and_sd_is_the_residual_sd(fitted, table):
    again = clone(fitted).fit(table)
    np.testing.assert_array_equal(fitted.predict(table), again.predict(table))
    _, sd = fitted.predict_log(table.head(3))
    assert np.all(sd == fitted.residual_sd_) and 0.2 < fitted.residual_sd_ < 2


def test_global_table_fit_is_computed_once_per_parameter_set(table):
    a = GlobalGBM(max_iter=5, exclude_bbox=(-20, -40, 60, 40)).fit(None)
    b = GlobalGBM(max_iter=5, exclude_bbox=(-20, -40, 60, 40)).fit(table)  # rows ignored
    assert a.model_ is b.model_
    assert a.n_training_rows_ < 60_000  # Africa left out


def test_bad_inputs(table):
    with pytest.raises(ProfileValidationError, match="needs a training table"):
        GlobalGBM(table=None).fit(None)
    with pytest.raises(ConfigError, match="must be 'global' or None"):
        GlobalGBM(table="mine").fit(table)
    model = GlobalGBM(table=None, max_iter=5).fit(table)
    with pytest.raises(BandMismatch, match="wc_bio1_mat_degC"):
        model.predict(pd.DataFrame({"top_cm": [0], "bottom_cm": [5]}))


def test_transfer_method_matches_the_bundles_table_and_left_out_region():
    from socmap.catalog import embedded_data_dir
    from socmap.model.bundle import load_bundle
    from socmap.model.transfer import transfer_methods

    bundle = embedded_data_dir() / "bundles" / "global_gsm"
    (gbm,) = transfer_methods(["global-gbm"], bundle, [], []).values()
    meta = load_bundle(bundle).metadata
    assert isinstance(gbm, GlobalGBM)
    assert gbm.depths == "globalsoilmap" and list(gbm.exclude_bbox) == meta["exclude_bbox"]
    assert (gbm.balance, gbm.balance_power) == (meta["balance"], meta["balance_power"])
    ens, residual = transfer_methods(["global-ens", "prior-residual-ens"], bundle, [], []).values()
    members = [type(m).__name__ for m in ens.members]
    assert members == ["GlobalModel", "GlobalGBM"]
    assert ens.members[1].get_params() == gbm.get_params()  # the same booster as global-gbm
    assert type(residual.prior).__name__ == "GlobalEnsemble"
    assert residual.prior.get_params(deep=False)["members"][0].bundle == str(bundle)


def test_global_fits_are_cached_per_setting_without_evicting_each_other(monkeypatch):
    """A benchmark mixing two global settings fits each once, not once per alternation."""
    from socmap.model import global_gbm

    calls = []

    def fake_fit(self, X):
        calls.append(self.balance)
        self.model_ = f"fitted {self.balance}"
        return self

    monkeypatch.setattr(global_gbm, "_FITTED", {})
    monkeypatch.setattr(GlobalGBM, "_fit", fake_fit)
    for _ in range(3):
        for balance in (None, "climate"):
            assert GlobalGBM(balance=balance).fit().model_ == f"fitted {balance}"
    assert calls == [None, "climate"]
    for k in range(global_gbm._FITTED_MAX + 2):  # bounded: the oldest settings go first
        GlobalGBM(max_iter=10 + k).fit()
    assert len(global_gbm._FITTED) == global_gbm._FITTED_MAX

"""Prior-based transfer (prior + residual, recalibration, blend) and auto, on known answers.

The region has a regional shift (``region_shift``), 20 training profiles and 100 test ones.
Priors stand in for the pretrained network: ``Oracle`` is the region's noise-free truth up to
a level shift (or slope, or pure noise); ``GlobalTruth`` is the global field without the
regional shift, which is what a well-pretrained network knows.
"""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, clone

from socmap.datasets import synthetic_soil_field
from socmap.errors import BandMismatch, ConfigError, ProfileValidationError
from socmap.model.baselines import (
    RANGER_DEFAULTS,
    GlobalModel,
    RegionalForest,
    StackedForest,
    table_features,
)
from socmap.model.prior import (
    SHRINK_GRID,
    BlendRegressor,
    PriorResidualRegressor,
    RecalibratedRegressor,
    SelectedPrior,
    inner_splits,
    oof_log,
)
from socmap.model.transfer import (
    AUTO_CANDIDATES,
    FORESTS,
    AutoTransferRegressor,
    FineTunedRegressor,
    transfer_methods,
)

BANDS = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]
REGION = (10.0, -5.0, 20.0, 5.0)
TABLE_ONLY = ("rf", "rf-log", "prior-residual", "recalibrate")


class Oracle:
    """log1p of the noise-free SOC times ``slope`` plus ``shift``; or noise (``noise > 0``)."""

    def __init__(self, shift=0.0, slope=1.0, noise=0.0, seed=0):
        self.shift, self.slope, self.noise, self.seed = shift, slope, noise, seed

    def predict_log(self, t):
        truth = np.log1p(t["soc_true_g_kg"].to_numpy(float))
        mean = self.slope * truth + self.shift
        if self.noise:
            rng = np.random.default_rng(self.seed)
            mean = np.full(len(t), truth.mean()) + rng.normal(0, self.noise, len(t))
        return mean, np.full(len(t), 0.2)


class GlobalTruth:
    """The synthetic field without its regional shift, at the table's sites (same draws)."""

    def predict_log(self, t):
        world = synthetic_soil_field(120, depths="vm0033", seed=5, bbox=REGION).table
        truth = world.set_index(["site_id", "top_cm"])["soc_true_g_kg"]
        values = truth.loc[list(zip(t["site_id"], t["top_cm"], strict=True))].to_numpy()
        return np.log1p(values), np.full(len(t), 0.2)


class Fixed(BaseEstimator):
    """A component that learns nothing: its ``prior``'s prediction."""

    def __init__(self, prior=None):
        self.prior = prior

    def fit(self, X=None, y=None):
        self.fitted_ = True
        return self

    def predict_log(self, X):
        return self.prior.predict_log(X)


@pytest.fixture(scope="module")
def region():
    t = synthetic_soil_field(120, depths="vm0033", seed=5, region_shift=0.6, bbox=REGION).table
    sites = t["site_id"].unique()
    return t[t["site_id"].isin(sites[:20])], t[t["site_id"].isin(sites[20:])]


@pytest.fixture(scope="module")
def forest_mae(region):
    train, test = region
    rf = RegionalForest(BANDS, target_transform="identity", random_state=0, **RANGER_DEFAULTS)
    return _mae(rf.set_params(n_estimators=50).fit(train), test)


def _mae(est, test):
    return float(np.mean(np.abs(est.predict(test) - test["soc_g_kg"].to_numpy())))


def _bias(est, test):
    return float(np.mean(est.predict_log(test)[0] - np.log1p(test["soc_true_g_kg"])))


def _residual(prior, **kw):
    return PriorResidualRegressor(prior=prior, bands=BANDS, n_estimators=50, block_size=1.0, **kw)


def test_prior_residual_recovers_a_constant_shift_and_beats_the_forest(region, forest_mae):
    train, test = region
    est = _residual(Oracle(shift=-0.4)).fit(train)
    weight = est.shrinkage_["level"]  # empirical Bayes (test_level_sd_... checks the formula)
    assert 0.5 < weight < 1
    assert est.level_ == pytest.approx(0.4 * weight, abs=0.04)
    assert abs(_bias(est, test)) < 0.03
    assert est.shrinkage_["residual"] in SHRINK_GRID
    assert set(est.inner_mae_) == set(SHRINK_GRID) and est.inner_split_ == "blocks"
    assert _mae(est, test) < 0.65 * forest_mae
    # the sd adds the shrunk tree spread to the prior's 0.2
    _, sd = est.predict_log(test)
    assert (sd >= 0.2).all() and sd.max() > 0.2
    linear = _residual(Oracle(shift=-0.4), residual="linear").fit(train)
    assert abs(_bias(linear, test)) < 0.03
    np.testing.assert_array_equal(linear.predict_log(test)[1], 0.2)


def test_a_residual_model_reading_the_prior_corrects_a_compressed_prior(region):
    # the prior squeezes the range (slope 0.5): its residual is a function of the prior itself
    train, test = region
    prior = Oracle(shift=1.0, slope=0.5)
    truth = test["soc_true_g_kg"].to_numpy()

    def error(est):  # against the noise-free field: the noise would hide the difference
        return float(np.mean(np.abs(est.predict(test) - truth)))

    plain = _residual(prior, shrink=1.0).fit(train)
    reading = _residual(prior, shrink=1.0, prior_feature=True).fit(train)
    assert error(reading) < 0.8 * error(plain)
    adjustment = reading.adjustment()
    assert adjustment.prior_input and not plain.adjustment().prior_input
    # the adjustment a bundle stores predicts what the estimator does, given the prior
    p, sd = prior.predict_log(test)
    features = table_features(test, BANDS)
    mean, _ = adjustment.apply(features, p, sd)
    np.testing.assert_allclose(mean, reading.predict_log(test)[0], rtol=1e-12)
    linear = _residual(prior, shrink=1.0, residual="linear")
    assert error(clone(linear).set_params(prior_feature=True).fit(train)) < 0.8 * error(
        linear.fit(train)
    )


def test_recalibration_recovers_level_and_slope(region, forest_mae):
    train, test = region
    shifted = RecalibratedRegressor(prior=Oracle(shift=-0.4)).fit(train)
    assert shifted.slope_ == pytest.approx(1.0, abs=0.02)
    assert abs(_bias(shifted, test)) < 0.05
    assert _mae(shifted, test) < 0.65 * forest_mae
    # log1p(y) = 1.25 * p - 0.625 when p = 0.8 * log1p(y) + 0.5
    free = RecalibratedRegressor(prior=Oracle(0.5, slope=0.8), prior_strength=0).fit(train)
    assert free.slope_ == pytest.approx(1.25, abs=0.04)
    assert free.intercept_ == pytest.approx(-0.625, abs=0.1)
    shrunk = RecalibratedRegressor(prior=Oracle(0.5, slope=0.8)).fit(train)
    assert 1.0 < shrunk.slope_ < free.slope_  # pulled towards b = 1
    assert shrunk.shrinkage_ == pytest.approx(20 / 22)
    np.testing.assert_allclose(shrunk.predict_log(test)[1], 0.2 * shrunk.slope_)
    staged = RecalibratedRegressor(
        prior=Oracle(shift=-0.4), per_depth=True, then="residual", bands=BANDS,
        n_estimators=20, block_size=1.0,
    ).fit(train)  # fmt: skip
    assert sorted(staged.depth_offsets_) == [(0.0, 15.0), (15.0, 30.0), (30.0, 50.0), (50.0, 100.0)]
    assert staged.residual_ is not None and staged.residual_.shrinkage_["level"] == 0
    assert abs(_bias(staged, test)) < 0.05


def test_a_prior_without_the_regional_shift_is_repaired_with_20_profiles(region, forest_mae):
    train, test = region
    prior_mae = float(
        np.mean(np.abs(np.expm1(GlobalTruth().predict_log(test)[0]) - test["soc_g_kg"]))
    )
    residual = _residual(GlobalTruth()).fit(train)
    recalibrated = RecalibratedRegressor(prior=GlobalTruth()).fit(train)
    assert prior_mae > 2 * forest_mae  # the global model alone is badly off in the region
    assert _mae(residual, test) < 0.7 * forest_mae
    assert _mae(recalibrated, test) < 0.7 * forest_mae
    # the shift is 0.6 * (0.5 + 0.8 * ndvi): about 0.5 in this region
    assert residual.level_ == pytest.approx(0.5, abs=0.1)


def test_blend_weight_follows_the_better_component(region):
    train, test = region
    forest = RegionalForest(BANDS, n_estimators=30, random_state=0)
    right = BlendRegressor(Fixed(Oracle()), forest, block_size=1.0).fit(train)
    noise = BlendRegressor(Fixed(Oracle(noise=0.6)), forest, block_size=1.0).fit(train)
    assert right.weight_ >= 0.9 and noise.weight_ <= 0.1
    assert set(right.inner_mae_) == {round(0.1 * i, 1) for i in range(11)}
    assert right.inner_mae_[1.0] < right.inner_mae_[0.0]
    if right.weight_ == 1.0:
        assert right.forest_ is None  # a component with weight 0 is not fitted
        np.testing.assert_array_equal(right.predict_log(test)[0], Oracle().predict_log(test)[0])
    half = BlendRegressor(Fixed(Oracle()), forest, weights=[0.5], block_size=1.0).fit(train)
    mean, sd = half.predict_log(test)
    a, b = Oracle().predict_log(test)[0], half.forest_.predict_log(test)[0]
    np.testing.assert_allclose(mean, (a + b) / 2)
    assert (sd >= 0.2 * np.sqrt(0.5) - 1e-12).all()


def test_auto_keeps_the_forest_when_the_prior_is_noise(region):
    train, _ = region
    est = _auto(Oracle(noise=0.5)).fit(train)
    # prior-residual is the incumbent: the forest had to beat it by more than 1 SE
    assert est.choice_ in FORESTS and est.estimator_ is not None
    assert "by > 1 SE" in est.reason_
    assert min(est.inner_mae_["rf"], est.inner_mae_["rf-log"]) < est.inner_mae_["prior-residual"]
    assert est.reason_.startswith(est.choice_)
    with pytest.raises(ConfigError, match="beside a pretrained network, and none was given"):
        est.save("unused")


def test_auto_takes_a_prior_method_when_the_prior_is_right_up_to_a_shift(region, forest_mae):
    train, test = region
    est = _auto(Oracle(shift=-0.4)).fit(train)
    assert est.choice_ in ("prior-residual", "recalibrate")
    assert est.reason_.startswith(est.choice_) and len(est.reason_) < 80
    assert _mae(est, test) < 0.65 * forest_mae
    summary = est.summary()
    assert summary["choice"] == est.choice_ and summary["network"] is False
    assert set(summary["inner_mae"]) == set(TABLE_ONLY)
    json.dumps(summary, allow_nan=False)  # fits a bundle's model.json
    # the choice is the lowest inner MAE, and the same model refitted alone predicts the same
    assert est.choice_ == min(est.inner_mae_, key=est.inner_mae_.get)
    np.testing.assert_array_equal(
        est.predict_log(test)[0], clone(est._candidate(est.choice_)).fit(train).predict_log(test)[0]
    )
    # without a preferred candidate, a forest within tie_se standard errors of the winner is kept
    tied = _auto(Oracle(shift=-0.4), tie_se=1e6, prefer=None).fit(train)
    assert tied.choice_ in FORESTS and "within 1e+06 SE" in tied.reason_


def test_auto_keeps_the_preferred_candidate_within_tie_se(region):
    train, _ = region
    prior_first = _auto(Oracle(noise=0.5), tie_se=1e6).fit(train)
    assert prior_first.choice_ == "prior-residual" and "within" in prior_first.reason_


def test_prior_stacked_mixes_its_members_on_any_prior(region, forest_mae):
    train, test = region
    est = _auto(Oracle(shift=-0.4), candidates=("rf", "prior-stacked"), prefer="prior-stacked")
    est.fit(train)
    assert est.choice_ == "prior-stacked"
    mixed = est.estimator_
    assert [type(m).__name__ for m in mixed.members_] == ["PriorResidualRegressor",
                                                          "StackedForest"]  # fmt: skip
    (m1, _), (m2, _) = (m.predict_log(test) for m in mixed.members_)
    np.testing.assert_allclose(mixed.predict_log(test)[0], (2 * m1 + m2) / 3, rtol=1e-12)
    assert _mae(est, test) < 0.75 * forest_mae


def test_auto_scores_a_mixture_from_its_members_fitting_each_once(region, monkeypatch):
    train, _ = region
    fits = {"PriorResidualRegressor": 0, "StackedForest": 0}
    for cls in (PriorResidualRegressor, StackedForest):
        real = cls.fit

        def counted(self, X, y=None, _real=real):
            fits[type(self).__name__] += 1
            return _real(self, X, y)

        monkeypatch.setattr(cls, "fit", counted)
    est = _auto(Oracle(noise=0.3), candidates=("prior-residual", "prior-stacked"), prefer=None)
    est.fit(train)
    folds = est.inner_folds_
    # each member once per inner fold, plus the final fit of the choice (and of its members)
    final = {"prior-residual": (1, 0), "prior-stacked": (1, 1)}[est.choice_]
    assert fits == {"PriorResidualRegressor": folds + final[0], "StackedForest": folds + final[1]}
    # and the score is the one the mixture fitted on its own gets, fold by fold
    rows = est._rows_with_target(train)
    splits, _ = inner_splits(rows, folds, est.block_size, est.units, est.random_state)
    mean, _ = oof_log(est._candidate("prior-stacked"), rows, splits)
    own = np.abs(rows["soc_g_kg"].to_numpy(dtype=float) - np.expm1(mean)).mean()
    assert est.inner_mae_["prior-stacked"] == pytest.approx(own, rel=1e-10)


def _auto(prior, **kw):
    # the candidates and incumbent these tests were written for (the defaults add
    # prior-stacked, which test_prior_stacked_mixes_its_members_on_any_prior covers)
    settings = {"candidates": TABLE_ONLY, "prefer": "prior-residual", **kw}
    return AutoTransferRegressor(
        prior=prior,
        regional_bands=BANDS[:4],
        regional_categorical=BANDS[4:],
        n_estimators=30,
        block_size=1.0,
        **settings,
    )


def test_raw_target_forest_is_the_rf_method():
    methods = transfer_methods(
        ["rf", "rf-log", "prior-residual", "recalibrate", "blend", "auto", "head"],
        "some.bundle",
        BANDS,
        BANDS[:4],
        n_estimators=40,
    )
    assert list(methods) == [
        "rf", "rf-log", "prior-residual", "recalibrate", "blend", "finetune:auto", "finetune:head",
    ]  # fmt: skip
    rf = methods["rf"].get_params()
    assert rf["target_transform"] == "identity" and rf["n_estimators"] == 40
    assert (rf["max_features"], rf["min_samples_split"], rf["min_samples_leaf"]) == ("sqrt", 6, 1)
    assert methods["rf-log"].get_params()["target_transform"] == "log1p"
    assert methods["prior-residual"].bands == BANDS
    blend = methods["blend"]
    assert isinstance(blend.network, FineTunedRegressor)
    assert blend.network.strategy == "freeze-encoders"
    assert blend.forest.get_params() == methods["rf"].get_params()
    auto = methods["finetune:auto"]
    assert auto.candidates == AUTO_CANDIDATES and auto.n_estimators == 40
    assert len(AUTO_CANDIDATES) <= 5 and {"rf", "prior-residual"} <= set(AUTO_CANDIDATES)


def test_inner_splits_fall_back_to_whole_profiles(region):
    train, _ = region
    splits, kind = inner_splits(train, 3, 100.0)  # one block holds every site
    assert kind == "profiles" and len(splits) == 3
    for tr, te in splits:
        assert not set(train["site_id"].iloc[tr]) & set(train["site_id"].iloc[te])
    with pytest.raises(ConfigError, match="inner_folds 1"):
        inner_splits(train, 1, 1.0)
    with pytest.raises(ProfileValidationError, match="only 2 profiles"):
        inner_splits(train[train["site_id"].isin(train["site_id"].unique()[:2])], 3, 100.0)


def test_bad_input(region):
    train, _ = region
    with pytest.raises(ConfigError, match="no prior"):
        PriorResidualRegressor(bands=BANDS).fit(train)
    with pytest.raises(ConfigError, match="prior 'str' has no predict_log"):
        RecalibratedRegressor(prior="model").fit(train)
    with pytest.raises(BandMismatch, match="bands"):
        PriorResidualRegressor(prior=Oracle()).fit(train)
    with pytest.raises(ConfigError, match="shrink 2"):
        _residual(Oracle(), shrink=2).fit(train)
    with pytest.raises(ConfigError, match="residual 'magic'"):
        _residual(Oracle(), residual="magic").fit(train)
    with pytest.raises(ConfigError, match="prior_strength -1"):
        RecalibratedRegressor(prior=Oracle(), prior_strength=-1).fit(train)
    with pytest.raises(ConfigError, match="then 'more'"):
        RecalibratedRegressor(prior=Oracle(), then="more").fit(train)
    with pytest.raises(ConfigError, match="network= and forest="):
        BlendRegressor(forest=Fixed(Oracle())).fit(train)
    with pytest.raises(ConfigError, match=r"weights \[1.5\]"):
        BlendRegressor(Fixed(Oracle()), Fixed(Oracle()), weights=[1.5]).fit(train)
    with pytest.raises(ConfigError, match="auto candidates \\['magic'\\]"):
        AutoTransferRegressor(candidates=("magic",)).fit(train)
    with pytest.raises(ConfigError, match="need covariates"):
        AutoTransferRegressor(candidates=("rf",), block_size=1.0).fit(train)
    with pytest.raises(ConfigError, match="tie_se -1"):
        _auto(Oracle(), tie_se=-1).fit(train)
    with pytest.raises(ProfileValidationError, match="DataFrame"):
        _residual(Oracle()).fit(train.to_numpy())
    # an unfitted GlobalModel prior is loaded on fit (here: a bundle that does not exist)
    with pytest.raises(Exception, match="nope"):
        _residual(GlobalModel("nope")).fit(train)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shift=st.floats(-1.0, 1.0),
    slope=st.floats(0.5, 1.5),
    seed=st.integers(0, 2**16),
)
def test_shrink_zero_reproduces_the_prior_exactly(region, shift, slope, seed):
    train, test = region
    prior = Oracle(shift, slope)
    est = _residual(prior, shrink=0.0, level=False, random_state=seed).set_params(n_estimators=3)
    mean, sd = est.fit(train).predict_log(test)
    expected, expected_sd = prior.predict_log(test)
    np.testing.assert_array_equal(mean, expected)
    np.testing.assert_array_equal(sd, expected_sd)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shift=st.floats(-1.0, 1.0),
    noise=st.floats(0.0, 1.0),
    weights=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
)
def test_blend_weight_is_a_grid_value_and_the_mean_a_convex_mix(region, shift, noise, weights):
    train, test = region
    a, b = Oracle(shift=shift), Oracle(noise=noise, seed=1)
    est = BlendRegressor(Fixed(a), Fixed(b), weights=weights, block_size=1.0).fit(train)
    assert est.weight_ in [float(w) for w in weights] and 0 <= est.weight_ <= 1
    mean, _ = est.predict_log(test)
    lo = np.minimum(a.predict_log(test)[0], b.predict_log(test)[0])
    hi = np.maximum(a.predict_log(test)[0], b.predict_log(test)[0])
    assert (mean >= lo - 1e-12).all() and (mean <= hi + 1e-12).all()


class Member(BaseEstimator):
    """A global model whose log error is ``+error`` at odd sites and ``-error`` at even ones."""

    def __init__(self, error=0.0, sign=1.0):
        self.error, self.sign = error, sign

    def fit(self, X=None, y=None):
        self.fitted_ = True
        return self

    def predict_log(self, t):
        truth = np.log1p(t["soc_true_g_kg"].to_numpy(float))
        odd = t["site_id"].str.extract(r"(\d+)$")[0].astype(int).to_numpy() % 2
        return truth + self.sign * self.error * np.where(odd == 1, 1.0, -1.0), np.full(len(t), 0.2)


def test_an_ensemble_of_two_global_models_whose_errors_cancel_is_the_better_prior(region):
    from socmap.model.prior import GlobalEnsemble

    train, test = region
    a, b = Member(0.5, 1.0), Member(0.5, -1.0)  # opposite errors site by site
    ens = GlobalEnsemble([a, b]).fit()
    mean, sd = ens.predict_log(test)
    np.testing.assert_allclose(mean, np.log1p(test["soc_true_g_kg"]), atol=1e-12)
    np.testing.assert_allclose(sd, np.sqrt(0.2**2 + 0.5**2))  # the members' disagreement
    alone = _mae(_residual(a).fit(train), test)
    both = _mae(_residual(GlobalEnsemble([a, b])).fit(train), test)  # fitted inside
    assert both < 0.6 * alone
    with pytest.raises(ConfigError, match="needs members"):
        GlobalEnsemble([]).fit()


def test_median_level_resists_a_few_profiles_far_above_the_prior(region):
    """Three of 20 profiles 2.0 above an exact prior: the mean level moves, the median not."""
    train, _ = region
    train = train.copy()
    outliers = train["site_id"].isin(train["site_id"].unique()[:3])
    train.loc[outliers, "soc_g_kg"] = np.expm1(np.log1p(train.loc[outliers, "soc_g_kg"]) + 2.0)
    est = {
        how: _residual(Oracle(), shrink=0.0, level=how, level_sd=None, prior_strength=0.0).fit(
            train
        )
        for how in ("mean", "median")
    }
    resid = np.log1p(train["soc_g_kg"]) - np.log1p(train["soc_true_g_kg"])
    per_site = resid.groupby(train["site_id"].to_numpy()).mean()
    assert est["mean"].level_ == pytest.approx(per_site.mean())
    assert est["median"].level_ == pytest.approx(per_site.median())
    assert est["mean"].level_ > 0.25 and abs(est["median"].level_) < 0.1
    assert est["median"].level_stat_ == "median"


@pytest.mark.parametrize(("shift", "expected"), [(0.0, "none"), (-0.5, ("mean", "median"))])
def test_level_cv_chooses_no_level_for_an_unbiased_prior_and_one_for_a_shifted_one(
    region, shift, expected
):
    train, test = region
    est = _residual(Oracle(shift=shift), level="cv", level_sd=None).fit(train)
    assert set(est.inner_mae_) == {
        (stat, s) for stat in ("none", "mean", "median") for s in SHRINK_GRID
    }
    assert est.level_stat_ in expected
    assert abs(_bias(est, test)) < 0.05
    if est.level_stat_ == "none":
        assert est.level_ == 0.0 and est.shrinkage_["level"] == 0.0
    # One residual fit per fold serves every level: the shifted-forest shortcut equals a
    # forest fitted on the shifted residual, to rounding.
    mean_only = _residual(Oracle(shift=shift), level="mean", level_sd=None).fit(train)
    for s in SHRINK_GRID:
        assert est.inner_mae_[("mean", s)] == pytest.approx(mean_only.inner_mae_[s], rel=1e-6)
    with pytest.raises(ConfigError, match="level 'average'"):
        _residual(Oracle(), level="average").fit(train)


@pytest.mark.parametrize(
    ("shifts", "expected"),
    [((-0.5, 0.0), "unbiased"), ((0.0, 0.5), "unbiased"), ((-0.5, 0.5), "mean")],
)
def test_selected_prior_keeps_the_member_that_fits_the_cores(region, shifts, expected):
    """Known answer: an exact prior beside a shifted one is chosen; opposite shifts average."""
    train, test = region
    names = ["biased", "unbiased"] if shifts[1] == 0.0 else ["unbiased", "biased"]
    if expected == "mean":
        names = ["low", "high"]
    members = [Fixed(Oracle(shift=v)) for v in shifts]
    prior = SelectedPrior(members, names=names).fit(train)
    assert prior.choice_ == expected
    assert set(prior.scores_) == {*names, "mean"}
    assert prior.scores_[expected] == min(prior.scores_.values())
    assert abs(_bias(prior, test)) < 0.05
    # As the prior of prior + residual it is chosen on that model's training rows.
    est = _residual(SelectedPrior(members, names=names), shrink=0.0, level=False).fit(train)
    assert est.prior_.choice_ == expected
    np.testing.assert_allclose(est.predict_log(test)[0], prior.predict_log(test)[0])
    # Without rows to score, the mean of the members.
    assert SelectedPrior(members, names=names).fit().choice_ == "mean"
    with pytest.raises(ConfigError, match="one unique name per member"):
        SelectedPrior(members, names=["a"]).fit(train)


def test_level_sd_weighs_the_level_by_its_block_clustered_standard_error(region):
    """Empirical Bayes: w = sd^2 / (sd^2 + se^2), se from the spread of block means."""
    from socmap.validate.splitters import block_ids

    train, _ = region
    est = _residual(Oracle(shift=-0.4), shrink=0.0, level_sd=0.2).fit(train)
    resid = np.log1p(train["soc_g_kg"]) - (np.log1p(train["soc_true_g_kg"]) - 0.4)
    sites = train["site_id"].to_numpy()
    per_site = resid.groupby(sites).mean()
    blocks = pd.Series(block_ids(train, sites, block_size=1.0), index=train.index)
    per_block = per_site.groupby(blocks.groupby(sites).first()).mean()
    assert 2 <= len(per_block) < len(per_site)  # profiles share blocks
    se2 = per_block.var(ddof=1) / len(per_block)
    weight = 0.04 / (0.04 + se2)
    assert est.shrinkage_["level"] == pytest.approx(weight)
    assert est.level_ == pytest.approx(weight * per_site.mean())
    # A vague prior on the level keeps nearly all of it, a tight one nearly none.
    vague = _residual(Oracle(shift=-0.4), shrink=0.0, level_sd=100.0).fit(train)
    tight = _residual(Oracle(shift=-0.4), shrink=0.0, level_sd=1e-3).fit(train)
    assert vague.shrinkage_["level"] > 0.999 and tight.shrinkage_["level"] < 0.01
    with pytest.raises(ConfigError, match="level_sd"):
        _residual(Oracle(), level_sd=0.0).fit(train)


def test_one_standard_error_rule_moves_the_choice_towards_the_prior(region):
    train, test = region
    lowest = _residual(Oracle(), level="cv").fit(train)
    key = (lowest.level_stat_, lowest.shrinkage_["residual"])
    assert lowest.inner_mae_[key] == min(lowest.inner_mae_.values())
    # Any difference is within 100 SE: the prior itself (no level, s = 0) is kept.
    lenient = _residual(Oracle(), level="cv", tie_se=100.0).fit(train)
    assert (lenient.level_stat_, lenient.shrinkage_["residual"]) == ("none", 0.0)
    # A prior 0.5 too low is corrected although the rule leans towards it.
    shifted = _residual(Oracle(shift=-0.5), level="cv", level_sd=None, tie_se=1.0).fit(train)
    assert shifted.level_stat_ in ("mean", "median")
    assert abs(_bias(shifted, test)) < 0.1
    with pytest.raises(ConfigError, match="tie_se"):
        _residual(Oracle(), tie_se=-1.0).fit(train)


class Unfitted(BaseEstimator):
    """A prior that must be fitted first; records what it was fitted on."""

    fit_on_regional_rows = False

    def __init__(self, shift=0.0):
        self.shift = shift

    def fit(self, X=None, y=None):
        self.fitted_on_ = None if X is None else len(X)
        return self

    def predict_log(self, t):
        self.fitted_on_  # noqa: B018  (raises AttributeError when not fitted)
        return np.log1p(t["soc_true_g_kg"].to_numpy(float)) + self.shift, np.full(len(t), 0.2)


class UnfittedOnRows(Unfitted):
    fit_on_regional_rows = True


@pytest.mark.parametrize("cls", [Unfitted, UnfittedOnRows])
def test_an_unfitted_prior_is_cloned_and_fitted_as_its_class_asks(region, cls):
    train, _ = region
    given = cls(shift=0.1)
    model = _residual(given, shrink=0.0, level=False).fit(train)
    assert not hasattr(given, "fitted_on_")  # the user's object is not touched
    rows = int(train["soc_g_kg"].notna().sum())
    assert model.prior_ is not given
    assert model.prior_.fitted_on_ == (rows if cls.fit_on_regional_rows else None)
    # shrink 0 and no level: the prediction is the prior's (back-transformed)
    mean, _ = model.predict_log(train)
    expected = np.log1p(train["soc_true_g_kg"].to_numpy(float)) + 0.1
    assert np.allclose(mean, expected)

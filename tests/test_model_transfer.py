"""Global-to-regional transfer on a synthetic field with a regional shift."""

import numpy as np
import pandas as pd
import pytest
import torch

from socmap.datasets import synthetic_soil_field
from socmap.errors import BandMismatch, ConfigError
from socmap.model import load_bundle
from socmap.model.baselines import RegionalForest
from socmap.model.estimator import SocNetRegressor
from socmap.model.transfer import FineTunedRegressor

BANDS = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]
REGION = (10.0, -5.0, 20.0, 5.0)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    world = synthetic_soil_field(1000, depths="vm0033", seed=0)
    est = SocNetRegressor(
        world.band_info,
        train={"max_epochs": 60, "patience": 10, "batch_size": 256},
        block_size=10.0,
        mc_passes=8,
    ).fit(world.table)
    return est, est.save(tmp_path_factory.mktemp("bundle") / "global")


@pytest.fixture(scope="module")
def region():
    t = synthetic_soil_field(170, depths="vm0033", seed=5, region_shift=0.6, bbox=REGION).table
    sites = t["site_id"].unique()
    return t[t["site_id"].isin(sites[:20])], t[t["site_id"].isin(sites[20:])]


def _rmse(est, test):
    mean, _ = est.predict_log(test)
    return float(np.sqrt(np.mean((mean - np.log1p(test["soc_true_g_kg"])) ** 2)))


@pytest.mark.slow
def test_fine_tuning_beats_scratch_and_forest_at_small_n(pretrained, region):
    global_model, bundle = pretrained
    train, test = region
    finetuned = FineTunedRegressor(bundle, strategy="full", block_size=1.0, mc_passes=8).fit(train)
    scratch = SocNetRegressor(
        pd.DataFrame(
            [{"name": b, "kind": "categorical" if b == "landcover" else "continuous",
              "group": "g", "classes": [1, 2, 3, 4] if b == "landcover" else None}
             for b in BANDS]
        ),
        train={"max_epochs": 300, "patience": 30, "batch_size": 64},
        block_size=1.0,
        mc_passes=8,
    ).fit(train)  # fmt: skip
    forest = RegionalForest(BANDS, n_estimators=200, random_state=0).fit(train)
    ft, sc, rf, gl = (_rmse(m, test) for m in (finetuned, scratch, forest, global_model))
    assert ft < 0.7 * sc and ft < 0.7 * rf
    assert ft < gl  # the regional shift is learnt from 20 cores


def test_strategies_train_what_they_say(pretrained, region):
    _, bundle = pretrained
    train, _ = region
    start = load_bundle(bundle).model.state_dict()
    for strategy in ("freeze-encoders", "head"):
        est = FineTunedRegressor(
            bundle, strategy=strategy, train={"max_epochs": 3}, block_size=1.0
        ).fit(train)
        after = est.model_.state_dict()
        for name, value in start.items():
            frozen = name.startswith(("encoders.", "embeddings."))
            if strategy == "head":
                frozen = not name.startswith(("head_in.", "head_layers.", "out."))
            assert torch.equal(value, after[name]) == frozen, (strategy, name)
        assert est.n_trainable_ < est.model_.count_parameters()


def test_regional_covariates_join_as_a_zero_initialised_group(pretrained, region):
    _, bundle = pretrained
    train, test = region
    train = train.assign(clay=np.linspace(10, 40, len(train)))
    test = test.assign(clay=25.0)
    est = FineTunedRegressor(
        bundle, regional_bands=["clay"], train={"max_epochs": 2}, block_size=1.0, mc_passes=2
    ).fit(train)
    assert est.spec_.groups["regional"] == ("clay",)
    assert est.config_.added_groups == {"regional": 1}
    mean, sd = est.predict_log(test)
    assert np.isfinite(mean).all() and (sd > 0).all()


def test_same_seed_same_bundle(pretrained, region, tmp_path):
    _, bundle = pretrained
    train, _ = region
    paths = []
    for i in range(2):
        est = FineTunedRegressor(bundle, train={"max_epochs": 3}, block_size=1.0).fit(train)
        paths.append(est.save(tmp_path / f"b{i}"))
    a, b = ((p / "weights.safetensors").read_bytes() for p in paths)
    assert a == b


def test_bad_input(pretrained, region):
    _, bundle = pretrained
    train, _ = region
    with pytest.raises(ConfigError, match="unknown strategy 'magic'"):
        FineTunedRegressor(bundle, strategy="magic").fit(train)
    with pytest.raises(BandMismatch, match="ndvi"):
        FineTunedRegressor(bundle).fit(train.drop(columns="ndvi"))
    with pytest.raises(BandMismatch, match="regional bands"):
        FineTunedRegressor(bundle, regional_bands=["clay"]).fit(train)


def test_depthwise_fits_one_model_per_interval(pretrained, region):
    from socmap.model.transfer import DepthwiseRegressor

    _, bundle = pretrained
    train, test = region
    est = DepthwiseRegressor(bundle, train={"max_epochs": 3}, block_size=1.0, mc_passes=2)
    est.fit(train)
    assert sorted(est.models_) == [(0.0, 15.0), (15.0, 30.0), (30.0, 50.0), (50.0, 100.0)]
    for (top, _), model in est.models_.items():
        # each model saw only its own interval
        assert model.history_.n_train + model.history_.n_val == int((train["top_cm"] == top).sum())
    mean, sd = est.predict_log(test)
    assert np.isfinite(mean).all() and (sd > 0).all()
    # rows are routed to their interval's model
    top_rows = test[test["top_cm"] == 0.0]
    np.testing.assert_allclose(
        est.predict_log(top_rows)[0], est.models_[(0.0, 15.0)].predict_log(top_rows)[0]
    )
    with pytest.raises(ConfigError, match="no depth-wise model"):
        est.predict_log(test.assign(top_cm=200.0, bottom_cm=300.0))


def test_instance_transfer_borrows_the_nearest_global_profiles(pretrained, region):
    from socmap.model.transfer import InstanceTransferRegressor

    _, bundle = pretrained
    train, test = region
    world = synthetic_soil_field(300, depths="vm0033", seed=9).table
    est = InstanceTransferRegressor(
        bundle, k=25, instances=world, train={"max_epochs": 3}, block_size=1.0, mc_passes=2
    ).fit(train)
    assert est.n_instances_ == 25
    h = est.history_
    # borrowed rows always train; validation rows come from the region only
    assert h.n_train + h.n_val == len(train) + 25 * 4
    assert h.n_val < len(train)
    mean, _ = est.predict_log(test)
    assert np.isfinite(mean).all()
    # the borrowed profiles are the most similar ones: their climate lies near the region's
    borrowed = est._similar(train)
    assert borrowed["site_id"].str.startswith("instance:").all()
    far = world.drop_duplicates("site_id")
    assert (
        abs(borrowed["temperature"].mean() - train["temperature"].mean())
        < abs(far["temperature"].mean() - train["temperature"].mean()) + 1e-9
    )
    with pytest.raises(ConfigError, match="k 0"):
        InstanceTransferRegressor(bundle, k=0, instances=world).fit(train)
    with pytest.raises(ConfigError, match="selection 'magic'"):
        InstanceTransferRegressor(bundle, selection="magic", instances=world).fit(train)


def test_instance_transfer_with_an_rs_local_search(pretrained, region):
    from socmap.model.transfer import InstanceTransferRegressor

    _, bundle = pretrained
    train, test = region
    world = synthetic_soil_field(300, depths="vm0033", seed=9).table
    common = {"instances": world, "train": {"max_epochs": 2}, "block_size": 1.0, "mc_passes": 2}
    est = InstanceTransferRegressor(
        bundle, k=10, selection="rs-local", search={"b": 2, "pool_factor": 4}, **common
    )
    borrowed = est._similar(train)
    nearest = InstanceTransferRegressor(bundle, k=40, **common)._similar(train)
    # the search only picks among the pool_factor * k nearest profiles
    assert 1 <= borrowed["site_id"].nunique() <= 10
    assert set(borrowed["site_id"]) <= set(nearest["site_id"])
    est.fit(train)
    assert np.isfinite(est.predict_log(test)[0]).all()


def test_regional_categorical_bands_join_as_new_embeddings(pretrained, region):
    _, bundle = pretrained
    train, test = region
    geology = np.resize([1.0, 2.0, 5.0], len(train))
    est = FineTunedRegressor(
        bundle,
        regional_bands=["clay"],
        regional_categorical=["geology"],
        train={"max_epochs": 3},
        block_size=1.0,
        mc_passes=2,
    ).fit(train.assign(clay=np.linspace(10, 40, len(train)), geology=geology))
    assert est.spec_.categorical["geology"] == (1, 2, 5)
    assert est.config_.added_vocab_sizes == {"geology": 4}
    test = test.assign(clay=25.0)
    # a class never seen in training contributes exactly what a missing class does
    unseen, _ = est.predict_log(test.assign(geology=99.0))
    missing, _ = est.predict_log(test.assign(geology=np.nan))
    np.testing.assert_array_equal(unseen, missing)
    with pytest.raises(BandMismatch, match="geology"):
        FineTunedRegressor(bundle, regional_categorical=["geology"]).fit(train)


def test_auto_chooses_the_strategy_with_the_lowest_inner_cv_mae(pretrained, region):
    from socmap.model.transfer import AutoTransferRegressor

    _, bundle = pretrained
    train, test = region
    est = AutoTransferRegressor(
        bundle,
        candidates=("freeze-encoders", "head"),
        inner_folds=2,
        train={"max_epochs": 3},
        block_size=1.0,
        mc_passes=2,
    ).fit(train)
    assert set(est.inner_mae_) == {"freeze-encoders", "head"}
    assert est.strategy_ == min(est.inner_mae_, key=est.inner_mae_.get)
    # the final model is that strategy fitted on every training row
    alone = FineTunedRegressor(
        bundle, strategy=est.strategy_, train={"max_epochs": 3}, block_size=1.0, mc_passes=2
    ).fit(train)
    np.testing.assert_array_equal(est.predict_log(test)[0], alone.predict_log(test)[0])
    with pytest.raises(ConfigError, match="auto candidates"):
        AutoTransferRegressor(bundle, candidates=("magic",)).fit(train)


def test_no_validation_split_trains_max_epochs(pretrained, region):
    _, bundle = pretrained
    train, _ = region
    est = FineTunedRegressor(bundle, val_fraction=0.0, train={"max_epochs": 4}).fit(train)
    assert est.history_.epochs_run == 4 and est.history_.n_val == 0
    assert est.history_.n_train == int(train["soc_g_kg"].notna().sum())


def test_prior_methods_repair_the_pretrained_network_in_the_region(pretrained, region):
    from socmap.model.baselines import GlobalModel
    from socmap.model.prior import PriorResidualRegressor, RecalibratedRegressor

    _, bundle = pretrained
    train, test = region
    common = {"mc_passes": 2, "random_state": 0}
    glob = GlobalModel(str(bundle), **common).fit()
    residual = PriorResidualRegressor(
        bundle, bands=BANDS, n_estimators=30, block_size=1.0, **common
    ).fit(train)
    recalibrated = RecalibratedRegressor(bundle, **common).fit(train)
    # the region's shift raises log SOC by about 0.5: both learn it from 20 profiles
    assert residual.level_ > 0.2 and recalibrated.predict_log(test)[0].mean() > (
        glob.predict_log(test)[0].mean() + 0.2
    )
    assert _rmse(residual, test) < 0.8 * _rmse(glob, test)
    assert _rmse(recalibrated, test) < 0.8 * _rmse(glob, test)


def test_auto_mixes_table_and_network_candidates(pretrained, region, tmp_path):
    from socmap.model.transfer import AutoTransferRegressor

    _, bundle = pretrained
    train, test = region
    common = {
        "inner_folds": 2,
        "train": {"max_epochs": 3},
        "block_size": 1.0,
        "mc_passes": 2,
        "n_estimators": 20,
        "regional_bands": BANDS[:4],
        "regional_categorical": BANDS[4:],
    }
    est = AutoTransferRegressor(bundle, candidates=("rf", "recalibrate", "head"), **common)
    est.fit(train)
    assert set(est.inner_mae_) == {"rf", "recalibrate", "head"}
    assert est.reason_.startswith(est.choice_) and est.strategy_ == est.choice_
    assert np.isfinite(est.predict_log(test)[0]).all()
    # with an unreachable margin the forest is kept, and a forest is no bundle
    forced = AutoTransferRegressor(bundle, candidates=("rf", "head"), tie_se=1e6, **common)
    assert forced.fit(train).choice_ == "rf"
    # the forests and the prior-based models are held by a bundle: network plus adjustment
    saved = load_bundle(forced.save(tmp_path / "forest"))
    assert saved.adjustment is not None and saved.adjustment.slope == 0
    assert saved.metadata["auto"]["choice"] == "rf"
    pr = AutoTransferRegressor(bundle, candidates=("prior-residual",), **common).fit(train)
    saved = load_bundle(pr.save(tmp_path / "pr"))
    assert saved.adjustment.slope == 1 and saved.metadata["auto"]["choice"] == "prior-residual"
    assert list(saved.adjustment.bands) == [*BANDS[:4], *BANDS[4:]]
    blend = AutoTransferRegressor(bundle, candidates=("blend",), **common).fit(train)
    with pytest.raises(ConfigError, match=r"'blend', a table-level model.*choose among"):
        blend.save(tmp_path / "blend")
    net = AutoTransferRegressor(bundle, candidates=("head",), **common).fit(train)
    meta = load_bundle(net.save(tmp_path / "net")).metadata
    assert meta["auto"]["choice"] == "head" and meta["auto"]["network"] is True
    assert meta["auto"]["inner_mae"]["head"] == pytest.approx(net.inner_mae_["head"])


def test_auto_adds_the_network_from_network_from_profiles(pretrained, region):
    from socmap.model.transfer import AUTO_NETWORK, AutoTransferRegressor

    _, bundle = pretrained
    train, _ = region
    profiles = train["site_id"].nunique()
    common = {
        "candidates": ("rf-log", "recalibrate"),
        "inner_folds": 2,
        "train": {"max_epochs": 3},
        "block_size": 1.0,
        "mc_passes": 2,
        "n_estimators": 20,
    }
    many = AutoTransferRegressor(bundle, network_from=profiles, **common).fit(train)
    assert many.candidates_ == ["rf-log", "recalibrate", AUTO_NETWORK]
    assert set(many.inner_mae_) == set(many.candidates_)
    assert many.summary()["candidates"] == many.candidates_
    # one profile short of the threshold, or None: the table-level candidates only
    for few in (profiles + 1, None):
        est = AutoTransferRegressor(bundle, network_from=few, **common).fit(train)
        assert est.candidates_ == ["rf-log", "recalibrate"]
        assert est.inner_mae_["rf-log"] == many.inner_mae_["rf-log"]
    # a network among the candidates already: none is added
    net = AutoTransferRegressor(bundle, network_from=1, **{**common, "candidates": ("head",)})
    assert net.fit(train).candidates_ == ["head"]
    for bad in ("200", 0, True, 2.5):
        with pytest.raises(ConfigError, match="network_from"):
            AutoTransferRegressor(bundle, network_from=bad, **common).fit(train)

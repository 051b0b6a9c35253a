import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from socmap.errors import ConfigError, ProfileValidationError
from socmap.model.features import FeatureSpec
from socmap.model.network import NetworkConfig, SocNet
from socmap.model.train import TrainConfig, _forward, _tensors, fit, predict

SMALL = {
    "enc_dim": 8,
    "emb_dim": 2,
    "fusion_dim": 32,
    "depth_dim": 8,
    "head": (64, 32),
    "dropout": (0.1, 0.1),
}


def synthetic(n=1200, seed=0, noise=0.05):
    """A smooth known SOC field: log1p(SOC) from two covariates, a class and depth."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n), rng.normal(0, 1, n)
    lc = rng.choice([1, 2, 3], size=n)
    top = rng.choice([0.0, 15.0, 30.0, 60.0], size=n)
    bottom = top + rng.choice([15.0, 30.0], size=n)
    logsoc = (
        3.0
        + 0.6 * np.sin(1.5 * a)
        + 0.3 * b**2 / 4
        + 0.2 * c
        + np.array([0.0, 0.4, -0.3])[lc - 1]
        - 0.8 * (top + bottom) / 200
        + rng.normal(0, noise, n)
    )
    a[rng.random(n) < 0.05] = np.nan  # some missing values, handled by the mask
    table = pd.DataFrame(
        {"a": a, "b": b, "c": c, "lc": lc, "top_cm": top, "bottom_cm": bottom}
    ).assign(soc_g_kg=np.expm1(logsoc))
    spec = FeatureSpec(groups={"g1": ("a", "b"), "g2": ("c",)}, categorical={"lc": ()}).fit(table)
    return spec, spec.encode(table)


@pytest.fixture(scope="module")
def data():
    return synthetic()


def new_model(spec, seed=0, **kw):
    return SocNet(NetworkConfig.from_spec(spec, **{**SMALL, **kw}), seed=seed)


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def r2(y, p):
    return 1 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2)


def test_learns_a_smooth_synthetic_relationship(data):
    spec, enc = data
    model = new_model(spec)
    idx = np.arange(len(enc))
    cfg = TrainConfig(max_epochs=40, batch_size=128, lr=1e-2, patience=10, seed=0)
    hist = fit(model, enc, idx[:900], idx[900:1050], cfg, progress=False)
    assert hist.train_loss[-1] < hist.train_loss[0] - 0.5
    assert hist.best_val_loss == min(hist.val_loss)
    test = idx[1050:]  # never seen by training or early stopping
    pred = predict(model, enc.subset(test), mc_passes=8, seed=0)
    score = r2(enc.target[test], pred.mean)
    assert score > 0.8, score
    assert np.all(pred.sd >= pred.sd_epistemic) and np.all(pred.sd_epistemic > 0)
    np.testing.assert_array_equal(pred.median_g_kg, np.expm1(pred.mean))
    assert np.all(pred.quantile_g_kg(0.05) < pred.median_g_kg)
    assert np.all(pred.quantile_g_kg(0.95) > pred.median_g_kg)


def test_same_seed_gives_bitwise_identical_weights_and_predictions(data):
    spec, enc = data
    cfg = TrainConfig(max_epochs=3, batch_size=128, seed=7)
    idx = np.arange(600)
    runs = []
    rng_state = torch.random.get_rng_state()
    for _ in range(2):
        model = new_model(spec, seed=1)
        hist = fit(model, enc, idx[:500], idx[500:], cfg, progress=False)
        runs.append((model.state_dict(), hist, predict(model, enc.subset(idx), mc_passes=4)))
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    (s1, h1, p1), (s2, h2, p2) = runs
    assert states_equal(s1, s2)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    assert np.array_equal(p1.mean, p2.mean) and np.array_equal(p1.sd, p2.sd)
    other = new_model(spec, seed=1)
    fit(other, enc, idx[:500], idx[500:], dataclasses.replace(cfg, seed=8), progress=False)
    assert not states_equal(s1, other.state_dict())


def test_early_stopping_restores_the_best_epoch():
    # Few noisy rows and a large learning rate: validation loss turns up quickly.
    spec, enc = synthetic(n=120, seed=3, noise=0.6)
    model = new_model(spec, head=(128, 64), dropout=(0.0, 0.0))
    cfg = TrainConfig(max_epochs=200, batch_size=16, lr=1e-2, patience=3, seed=0)
    hist = fit(model, enc, np.arange(80), np.arange(80, 120), cfg, progress=False)
    assert hist.stopped_early
    assert hist.epochs_run == hist.best_epoch + 1 + cfg.patience
    assert hist.val_loss[hist.best_epoch] == min(hist.val_loss) == hist.best_val_loss
    assert hist.val_loss[-1] > hist.best_val_loss
    # The model now holds the best epoch's weights: its validation loss is the best one.
    val = enc.subset(np.arange(80, 120))
    # (Intervals spanning several depth atoms are composed of them, in predict as in fit.)
    pred = predict(model, val, mc_passes=1, dropout=False)
    logvar = 2 * np.log(pred.sd_aleatoric)
    y = val.target
    nll = 0.5 * (logvar + (y - pred.mean) ** 2 * np.exp(-logvar))
    assert nll.mean() == pytest.approx(hist.best_val_loss, rel=1e-5)


def test_frozen_parameters_do_not_move(data):
    spec, enc = data
    model = new_model(spec)
    start = {k: v.clone() for k, v in model.state_dict().items()}

    def head_only(name):
        return name.startswith(("head_layers", "out"))

    hist = fit(
        model,
        enc,
        np.arange(300),
        np.arange(300, 400),
        TrainConfig(max_epochs=2),
        trainable=head_only,
        progress=False,
    )
    after = model.state_dict()
    for k in start:
        moved = not torch.equal(start[k], after[k])
        assert moved == head_only(k), k
    assert hist.n_trainable == sum(p.numel() for n, p in model.named_parameters() if head_only(n))
    assert all(p.requires_grad for p in model.parameters())  # flags restored
    with pytest.raises(ConfigError, match="no parameters"):
        fit(model, enc, np.arange(10), [], trainable=lambda n: False, progress=False)


def test_l2sp_pulls_towards_the_starting_weights(data):
    spec, enc = data
    distances = {}
    for alpha in (0.0, 1.0):
        model = new_model(spec)
        start = [p.detach().clone() for p in model.parameters()]
        cfg = TrainConfig(max_epochs=4, batch_size=64, lr=3e-3)
        fit(model, enc, np.arange(400), [], cfg, l2sp_alpha=alpha, progress=False)
        distances[alpha] = sum(
            float(((p.detach() - s) ** 2).sum())
            for p, s in zip(model.parameters(), start, strict=True)
        )
    assert 0 < distances[1.0] < 0.5 * distances[0.0]


def test_no_validation_rows_trains_all_epochs(data):
    spec, enc = data
    hist = fit(new_model(spec), enc, np.arange(200), [], TrainConfig(max_epochs=3), progress=False)
    assert hist.epochs_run == 3 and hist.best_epoch == 2 and not hist.stopped_early
    assert np.isnan(hist.val_loss).all() and hist.to_dict()["best_val_loss"] is None


def test_mse_loss_trains_the_mean(data):
    spec, enc = data
    model = new_model(spec)
    cfg = TrainConfig(max_epochs=5, batch_size=64, lr=3e-3, loss="mse")
    hist = fit(model, enc, np.arange(600), np.arange(600, 800), cfg, progress=False)
    assert hist.val_loss[-1] < hist.val_loss[0]
    pred = predict(model, enc.subset(np.arange(10)), mc_passes=4, aleatoric=False)
    assert np.all(pred.sd_aleatoric == 0) and np.array_equal(pred.sd, pred.sd_epistemic)


def test_predict_single_pass_without_dropout_equals_eval_forward(data):
    spec, enc = data
    model = new_model(spec).train()
    pred = predict(model, enc, mc_passes=1, dropout=False, batch_size=257)
    assert model.training  # flags restored
    model.eval()
    with torch.no_grad():  # the forward fit() trains (atoms composed where intervals span them)
        mean, logvar = _forward(model, _tensors(enc), np.arange(len(enc)))
    np.testing.assert_allclose(pred.mean, mean.numpy().astype(np.float64), rtol=1e-6)
    assert np.all(pred.sd_epistemic == 0)
    np.testing.assert_allclose(pred.sd, np.exp(0.5 * logvar.numpy()), rtol=1e-6)


def test_predict_is_seeded(data):
    spec, enc = data
    model = new_model(spec)
    sub = enc.subset(np.arange(50))
    a, b = predict(model, sub, mc_passes=5, seed=1), predict(model, sub, mc_passes=5, seed=1)
    c = predict(model, sub, mc_passes=5, seed=2)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.sd, b.sd)
    assert not np.array_equal(a.mean, c.mean)
    assert a.mc_passes == 5


def test_bad_indices_and_targets_raise(data):
    spec, enc = data
    model = new_model(spec)
    with pytest.raises(ConfigError, match="both train_idx and val_idx"):
        fit(model, enc, np.arange(10), np.arange(5, 15), progress=False)
    with pytest.raises(ConfigError, match=r"\[0, 1200\)"):
        fit(model, enc, np.arange(1195, 1205), [], progress=False)
    arrays = {k: getattr(enc, k).copy() for k in ("cont", "mask", "cat", "depth", "target")}
    arrays["target"][3] = np.nan
    with pytest.raises(ProfileValidationError, match="first row 3"):
        fit(model, arrays, np.arange(10), [], progress=False)
    with pytest.raises(ConfigError, match="batch size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="'huber'"):
        TrainConfig(loss="huber")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mc_passes"):
        predict(model, enc, mc_passes=0)


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(max_epochs=20, schedule="cosine", warmup_epochs=4, min_lr_ratio=0.05)
    f = [cfg.lr_factor(e) for e in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(f[4:]))  # non-increasing
    assert 0.05 < f[-1] < 0.06
    assert TrainConfig().lr_factor(7) == 1.0


def test_sample_weights_count_rows_as_repeated(data):
    spec, enc = data
    sub = enc.subset(np.arange(64))
    cfg = TrainConfig(max_epochs=3, batch_size=256, seed=0)
    # weight 2 on every row is the same weighted mean as weight 1: identical training
    a, b = new_model(spec), new_model(spec)
    fit(a, sub, np.arange(64), [], cfg, progress=False)
    fit(b, sub, np.arange(64), [], cfg, sample_weight=np.full(64, 2.0), progress=False)
    assert all(
        torch.allclose(x, y, atol=1e-6) for x, y in zip(a.parameters(), b.parameters(), strict=True)
    )
    # zero weight on half the rows: their targets no longer move the model
    w = np.r_[np.ones(32), np.zeros(32)]
    moved = dataclasses.replace(sub, target=np.r_[sub.target[:32], sub.target[32:] + 3.0])
    c, d, e = new_model(spec), new_model(spec), new_model(spec)
    fit(c, sub, np.arange(64), [], cfg, sample_weight=w, progress=False)
    fit(d, moved, np.arange(64), [], cfg, sample_weight=w, progress=False)
    fit(e, moved, np.arange(64), [], cfg, progress=False)
    assert all(
        torch.allclose(x, y, atol=1e-6) for x, y in zip(c.parameters(), d.parameters(), strict=True)
    )
    assert not all(
        torch.allclose(x, y) for x, y in zip(c.parameters(), e.parameters(), strict=True)
    )
    with pytest.raises(ConfigError, match="sample_weight"):
        fit(new_model(spec), sub, np.arange(64), [], cfg, sample_weight=-w, progress=False)


def test_beta_nll_and_mae_monitoring(data):
    spec, enc = data
    cfg = TrainConfig(max_epochs=30, batch_size=128, lr=3e-3, loss="beta_nll", monitor="mae")
    model = new_model(spec)
    hist = fit(model, enc, np.arange(900), np.arange(900, 1200), cfg, progress=False)
    pred = predict(model, enc.subset(np.arange(900, 1200)), mc_passes=1, dropout=False)
    y = enc.target[900:1200]
    # the monitored validation value is the MAE of the mean on the log1p scale
    assert hist.best_val_loss == pytest.approx(np.abs(y - pred.mean).mean(), rel=1e-4)
    assert r2(y, pred.mean) > 0.6
    with pytest.raises(ConfigError, match="beta"):
        TrainConfig(beta=1.5)
    with pytest.raises(ConfigError, match="monitor"):
        TrainConfig(monitor="r2")  # type: ignore[arg-type]

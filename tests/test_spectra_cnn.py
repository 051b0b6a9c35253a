"""Tests of the spectral 1D-CNN (socmap.spectra.cnn)."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from socmap.errors import (
    BandMismatch,
    BundleError,
    ConfigError,
    InputNotFound,
    OutputExists,
    ProfileValidationError,
)
from socmap.spectra.cnn import CNNConfig, SpectralCNN, SpectralCNNRegressor

N_BANDS = 100
# Small network and budget: the tests check behaviour, not the defaults' accuracy.
CFG = CNNConfig(conv_channels=(8, 16), dense=(32,), max_epochs=100, patience=15)


def spectra(n: int, seed: int, site: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic absorbance spectra whose SOC peaks overlap random mineral peaks.

    The site differs from the library in its SOC range, baseline and an extra mineral peak;
    30 site samples are too few to untangle the SOC peaks from scratch.
    """
    rng = np.random.default_rng(seed)
    wl = np.linspace(0.0, 1.0, N_BANDS)

    def peak(centre: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((wl - centre) / width) ** 2)

    soc = np.exp(rng.normal(np.log(25), 0.5, n) if site else rng.normal(np.log(15), 0.8, n))
    s = np.log1p(soc)[:, None]
    X = 0.5 * s * peak(0.55, 0.03) + 0.3 * s * peak(0.8, 0.04) - 0.3 * s * peak(0.15, 0.12)
    centres = (0.5, 0.6, 0.75, 0.85, 0.3, 0.1)
    amp = rng.uniform(0, 1, (n, len(centres)))
    for k, c in enumerate(centres):
        X += 0.8 * amp[:, [k]] * peak(c, 0.04)
    off, slope = rng.normal(0, 0.3, (n, 1)), rng.normal(0, 0.3, (n, 1))
    if site:
        off, slope = off + 0.5, slope - 0.4
        X += 0.5 * rng.uniform(0, 1, (n, 1)) * peak(0.92, 0.03)
    X += off + slope * wl + rng.normal(0, 0.01, (n, N_BANDS))
    return X, soc


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    # Two intra-op threads on two shared cores spin against other processes; results are
    # also only bit-reproducible for a fixed thread count.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def library() -> SpectralCNNRegressor:
    X, y = spectra(400, 0)
    return SpectralCNNRegressor(CFG, mc_passes=16).fit(X, y)


@pytest.fixture(scope="module")
def calibrated() -> SpectralCNNRegressor:
    X, y = spectra(150, 5)
    return SpectralCNNRegressor(CFG, mc_passes=16, calibration_folds=3).fit(X, y)


def small_fit(seed: int = 0, **kw: Any) -> SpectralCNNRegressor:
    X, y = spectra(60, 7)
    cfg = dataclasses.replace(CFG, max_epochs=10, seed=seed, **kw)
    return SpectralCNNRegressor(cfg, mc_passes=8).fit(X, y)


# ---------------------------------------------------------------------- config


def test_config_round_trip_and_defaults() -> None:
    cfg = CNNConfig(conv_channels=[4, 8], dense=[16], pool_type="max", lr=3e-4)
    assert cfg.conv_channels == (4, 8) and cfg.dense == (16,)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert CNNConfig.from_dict(data) == cfg
    assert CNNConfig.from_dict({}) == CNNConfig()
    with pytest.raises(ConfigError, match="unknown keys"):
        CNNConfig.from_dict({"lr": 1e-3, "learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="format"):
        CNNConfig.from_dict({"format": "other/1"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("conv_channels", ()),
        ("conv_channels", (8, 0)),
        ("conv_channels", "8"),
        ("kernel_size", 0),
        ("kernel_size", 2.5),
        ("pool", 0),
        ("pool_type", "mean"),
        ("dense", ()),
        ("dense", (32, -1)),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", float("nan")),
        ("max_epochs", 0),
        ("batch_size", True),
        ("lr", 0.0),
        ("lr", float("inf")),
        ("weight_decay", -1e-4),
        ("patience", 0),
        ("val_fraction", 0.6),
        ("val_fraction", -0.1),
        ("min_val_rows", 0),
        ("seed", -1),
    ],
)
def test_bad_config_values(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        CNNConfig(**{field: value})
    assert repr(value) in str(info.value)


def test_too_few_bands_for_pooling() -> None:
    with pytest.raises(ConfigError, match="at least 8 bands"):
        SpectralCNN(CNNConfig(), n_bands=5)


# ---------------------------------------------------------------------- learning


def test_learns_synthetic_spectra(library: SpectralCNNRegressor) -> None:
    X, y = spectra(200, 1)
    pred = library.predict(X)
    null = rmse(np.full_like(y, np.mean(spectra(400, 0)[1])), y)
    assert rmse(pred, y) < 0.35 * null
    assert library.score(X, y) > 0.8
    assert (pred >= 0).all()
    h = library.history_
    assert h["n_val"] == 80 and h["n_train"] == 320
    assert 0 <= h["best_epoch"] < h["epochs_run"] <= CFG.max_epochs
    assert len(h["val_loss"]) == h["epochs_run"]


def test_same_seed_same_model_other_seed_differs() -> None:
    rng_before = torch.get_rng_state()
    det_before = torch.are_deterministic_algorithms_enabled()
    a, b, c = small_fit(0), small_fit(0), small_fit(1)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is untouched
    assert torch.are_deterministic_algorithms_enabled() == det_before
    X, _ = spectra(20, 8)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    sa, sb, sc = (m.network_.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not np.array_equal(a.predict(X), c.predict(X))


def test_few_rows_train_max_epochs_without_validation() -> None:
    X, y = spectra(30, 9)
    m = SpectralCNNRegressor(dataclasses.replace(CFG, max_epochs=7)).fit(X, y)
    assert m.history_["n_val"] == 0 and m.history_["n_train"] == 30
    assert m.history_["epochs_run"] == 7 and m.history_["val_loss"] == []


# ---------------------------------------------------------------------- transfer


def test_freeze_front_keeps_first_blocks(library: SpectralCNNRegressor) -> None:
    before = {k: v.clone() for k, v in library.network_.state_dict().items()}
    X, y = spectra(30, 11, site=True)
    tuned = SpectralCNNRegressor(init=library, freeze_front=1).fit(X, y)
    lib_net, net = library.network_, tuned.network_
    for p0, p1 in zip(lib_net.front[0].parameters(), net.front[0].parameters(), strict=True):
        assert torch.equal(p0, p1)
    for p0, p1 in zip(lib_net.front[1].parameters(), net.front[1].parameters(), strict=True):
        assert not torch.equal(p0, p1)
    assert not torch.equal(lib_net.out.weight, net.out.weight)
    # the pretrained network itself is untouched (fine-tuning works on a copy)
    after = library.network_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # the init's input and target normalisation are kept, and its config (config=None)
    np.testing.assert_array_equal(tuned.x_mean_, library.x_mean_)
    np.testing.assert_array_equal(tuned.x_scale_, library.x_scale_)
    assert (tuned.y_mean_, tuned.y_scale_) == (library.y_mean_, library.y_scale_)
    assert tuned.config_ == library.config_ and tuned.frozen_blocks_ == 1
    assert all(p.requires_grad for p in net.parameters())


def test_finetuning_beats_training_from_scratch(library: SpectralCNNRegressor) -> None:
    X, y = spectra(30, 10, site=True)
    Xt, yt = spectra(200, 3, site=True)
    scratch = SpectralCNNRegressor(dataclasses.replace(CFG, max_epochs=300)).fit(X, y)
    tune_cfg = dataclasses.replace(library.config_, lr=3e-4)
    tuned = SpectralCNNRegressor(tune_cfg, init=library, freeze_front=1).fit(X, y)
    err_scratch, err_tuned = rmse(scratch.predict(Xt), yt), rmse(tuned.predict(Xt), yt)
    assert err_tuned < 0.7 * err_scratch, (err_tuned, err_scratch)


def test_init_must_match(library: SpectralCNNRegressor) -> None:
    X, y = spectra(30, 10, site=True)
    with pytest.raises(BandMismatch, match=r"80 bands.*100"):
        SpectralCNNRegressor(init=library).fit(X[:, :80], y)
    with pytest.raises(ConfigError, match="architecture differs"):
        SpectralCNNRegressor(CNNConfig(), init=library).fit(X, y)
    with pytest.raises(ConfigError, match="freeze_front"):
        SpectralCNNRegressor(init=library, freeze_front=3).fit(X, y)
    with pytest.raises(ConfigError, match="needs init"):
        SpectralCNNRegressor(CFG, freeze_front=1).fit(X, y)
    with pytest.raises(NotFittedError):
        SpectralCNNRegressor(init=SpectralCNNRegressor(CFG)).fit(X, y)


def test_clone_keeps_the_transfer_settings_and_the_fitted_init(
    library: SpectralCNNRegressor,
) -> None:
    from sklearn.base import clone

    X, y = spectra(30, 10, site=True)
    model = SpectralCNNRegressor(init=library, freeze_front=1, calibration_folds=2)
    copy = clone(model)
    assert copy.init is library and hasattr(copy.init, "network_")  # shared, still fitted
    assert (copy.freeze_front, copy.calibration_folds) == (1, 2)
    a, b = model.fit(X, y), copy.fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert b.frozen_blocks_ == 1 and b.calibrator_ is not None


# ---------------------------------------------------------------------- uncertainty


def test_mc_dropout_distribution(library: SpectralCNNRegressor) -> None:
    X, _ = spectra(50, 12)
    rng_before = torch.get_rng_state()
    mean, sd = library.predict_distribution(X)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert mean.shape == sd.shape == (50,)
    assert np.isfinite(mean).all() and (sd > 0).all()
    again = library.predict_distribution(X)
    np.testing.assert_array_equal(mean, again[0])
    np.testing.assert_array_equal(sd, again[1])
    np.testing.assert_allclose(library.predict(X), np.expm1(mean))
    assert not np.array_equal(mean, library.predict_distribution(X, mc_passes=64)[0])
    assert library.network_.training is False  # mc_dropout restored the flags


def test_more_passes_give_a_stabler_estimate(library: SpectralCNNRegressor) -> None:
    X, _ = spectra(40, 13)

    def spread(passes: int) -> float:
        means = []
        for seed in range(5):
            m = copy.copy(library)
            m.config_ = dataclasses.replace(library.config_, seed=seed)
            means.append(m.predict_distribution(X, mc_passes=passes)[0])
        return float(np.std(means, axis=0).mean())

    assert spread(128) < 0.5 * spread(4)


def test_without_dropout_passes_agree_and_sd_is_aleatoric() -> None:
    m = small_fit(dropout=0.0)
    X, _ = spectra(20, 14)
    mean1, sd1 = m.predict_distribution(X, mc_passes=1)
    mean16, sd16 = m.predict_distribution(X, mc_passes=16)
    np.testing.assert_allclose(mean16, mean1, rtol=1e-6)
    np.testing.assert_allclose(sd16, sd1, rtol=1e-6)
    with torch.no_grad():
        z, logvar = m.network_(torch.from_numpy(((X - m.x_mean_) / m.x_scale_).astype("f4")))
    np.testing.assert_allclose(mean1, m.y_mean_ + m.y_scale_ * z.numpy(), rtol=1e-5)
    np.testing.assert_allclose(sd1, m.y_scale_ * np.exp(logvar.numpy() / 2), rtol=1e-5)


def test_raw_interval_is_gaussian_in_log_space(library: SpectralCNNRegressor) -> None:
    X, _ = spectra(10, 15)
    assert library.calibrator_ is None
    mean, sd = library.predict_distribution(X)
    lower, upper = library.predict_interval(X, level=0.9)
    np.testing.assert_allclose(np.log1p(upper), mean + 1.6448536 * sd, rtol=1e-6)
    np.testing.assert_allclose(lower, np.maximum(np.expm1(mean - 1.6448536 * sd), 0))
    narrow = library.predict_interval(X, level=0.5)
    assert (narrow[0] >= lower).all() and (narrow[1] <= upper).all()
    with pytest.raises(ConfigError, match="level"):
        library.predict_interval(X, level=1.0)


def test_calibrated_intervals_cover(calibrated: SpectralCNNRegressor) -> None:
    cal = calibrated.calibrator_
    assert cal is not None and cal.n_ == 150
    X, y = spectra(200, 6)
    mean, sd = calibrated.predict_distribution(X)
    lower, upper = calibrated.predict_interval(X, level=0.9)
    q = cal.scale(0.9)
    assert np.isfinite(q) and q > 0
    np.testing.assert_allclose(np.log1p(upper), mean + q * sd, rtol=1e-6)
    pred = calibrated.predict(X)
    assert (lower <= pred).all() and (pred <= upper).all() and (lower >= 0).all()
    coverage = float(np.mean((y >= lower) & (y <= upper)))
    assert 0.75 <= coverage <= 1.0, coverage


def test_calibration_folds_validated() -> None:
    X, y = spectra(12, 16)
    for folds in (1, 13, 2.0):
        with pytest.raises(ConfigError, match="calibration_folds"):
            SpectralCNNRegressor(CFG, calibration_folds=folds).fit(X, y)  # type: ignore[arg-type]


def test_calibration_on_chosen_rows_and_weighted_to_the_targets(
    library: SpectralCNNRegressor,
) -> None:
    # DTL-I: library rows always train; only the site's rows are scored out of fold
    XL, yL = spectra(40, 21)
    Xs, ys = spectra(20, 22, site=True)
    X, y = np.vstack([XL, Xs]), np.r_[yL, ys]
    site = np.arange(60) >= 40
    cfg = dataclasses.replace(CFG, max_epochs=5)
    model = SpectralCNNRegressor(cfg, mc_passes=4, calibration_folds=4)
    targets, _ = spectra(50, 23, site=True)
    fitted = model.fit(X, y, calibration_rows=site, predict_for=targets)
    cal = fitted.calibrator_
    assert cal is not None and cal.n_ == 20 and cal.weighted_
    # indices select the same rows as the mask; without targets nothing is weighted
    by_index = clone(model).fit(X, y, calibration_rows=np.flatnonzero(site))
    assert by_index.calibrator_ is not None and by_index.calibrator_.n_ == 20
    assert not by_index.calibrator_.weighted_
    # the default scores every row, as before
    every = clone(model).fit(X, y)
    assert every.calibrator_ is not None and every.calibrator_.n_ == 60
    with pytest.raises(ConfigError, match="one per row"):
        clone(model).fit(X, y, calibration_rows=site[:10])
    with pytest.raises(ConfigError, match="outside"):
        clone(model).fit(X, y, calibration_rows=[0, 60])
    with pytest.raises(ConfigError, match="integer row indices, got dtype float64"):
        clone(model).fit(X, y, calibration_rows=[0.5, 1.7, 2.2, 3.9])
    with pytest.raises(ConfigError, match="fewer than calibration_folds=4"):
        clone(model).fit(X, y, calibration_rows=[1, 2, 3])
    with pytest.raises(ConfigError, match="calibration_folds is 0"):
        SpectralCNNRegressor(cfg).fit(X, y, predict_for=targets)
    refused = clone(model)
    with pytest.raises(BandMismatch, match="predict_for has 10 bands"):
        refused.fit(X, y, predict_for=targets[:, :10])
    assert not hasattr(refused, "network_")  # refused before any training


# ---------------------------------------------------------------------- persistence


def test_save_load_round_trip(calibrated: SpectralCNNRegressor, tmp_path: Path) -> None:
    path = calibrated.save(tmp_path / "cnn")
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "weights.safetensors"]
    assert not list(tmp_path.glob(".tmp-*"))
    doc = json.loads((path / "model.json").read_text())
    assert doc["n_bands"] == N_BANDS and doc["calibration"] is not None
    X, _ = spectra(30, 17)
    loaded = SpectralCNNRegressor.load(path)
    np.testing.assert_array_equal(loaded.predict(X), calibrated.predict(X))
    for a, b in zip(loaded.predict_interval(X), calibrated.predict_interval(X), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.config_ == calibrated.config_ and loaded.mc_passes == calibrated.mc_passes


def test_load_never_unpickles(
    library: SpectralCNNRegressor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = library.save(tmp_path / "cnn")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = SpectralCNNRegressor.load(path)
    assert loaded.calibrator_ is None


def test_save_refuses_to_overwrite(library: SpectralCNNRegressor, tmp_path: Path) -> None:
    path = library.save(tmp_path / "cnn")
    with pytest.raises(OutputExists):
        library.save(path)
    assert library.save(path, overwrite=True) == path


def test_load_errors(library: SpectralCNNRegressor, tmp_path: Path) -> None:
    with pytest.raises(InputNotFound):
        SpectralCNNRegressor.load(tmp_path / "missing")
    path = library.save(tmp_path / "cnn")
    weights = path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(BundleError, match="checksum"):
        SpectralCNNRegressor.load(path)
    weights.unlink()
    with pytest.raises(BundleError, match="missing"):
        SpectralCNNRegressor.load(path)


# ---------------------------------------------------------------------- contract and input


def test_sklearn_contract() -> None:
    m = SpectralCNNRegressor(CFG, mc_passes=4)
    assert m.get_params() == {
        "config": CFG, "mc_passes": 4, "progress": False, "init": None, "freeze_front": 0,
        "calibration_folds": 0,
    }  # fmt: skip
    X, _ = spectra(5, 18)
    with pytest.raises(NotFittedError):
        m.predict(X)
    fitted = small_fit()
    fresh = clone(fitted)
    assert not hasattr(fresh, "network_") and fresh.get_params() == fitted.get_params()


def test_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOCMAP_PROGRESS", "1")
    X, y = spectra(20, 19)
    cfg = dataclasses.replace(CFG, max_epochs=3)
    m = SpectralCNNRegressor(cfg, progress=True).fit(X, y)
    assert m.history_["epochs_run"] == 3


def test_bad_inputs(library: SpectralCNNRegressor) -> None:
    X, y = spectra(20, 20)
    m = SpectralCNNRegressor(CFG)
    bad_x = X.copy()
    bad_x[3, 10] = np.nan
    with pytest.raises(ProfileValidationError, match="first row 3"):
        m.fit(bad_x, y)
    for value in (-1.0, np.nan, np.inf):
        bad_y = y.copy()
        bad_y[4] = value
        with pytest.raises(ProfileValidationError, match="row 4"):
            m.fit(X, bad_y)
    with pytest.raises(ProfileValidationError, match="one SOC value per spectrum"):
        m.fit(X, y[:-1])
    with pytest.raises(ProfileValidationError, match="2-D"):
        m.fit(X[0], y[:1])
    with pytest.raises(ProfileValidationError, match="at least 2"):
        m.fit(X[:1], y[:1])
    with pytest.raises(BandMismatch, match=r"99 bands.*100"):
        library.predict(X[:, :99])
    with pytest.raises(ProfileValidationError, match="first row 3"):
        library.predict(bad_x)
    with pytest.raises(ConfigError, match="mc_passes"):
        library.predict_distribution(X, mc_passes=0)
    with pytest.raises(ConfigError, match="CNNConfig"):
        SpectralCNNRegressor({"lr": 1e-3}).fit(X, y)  # type: ignore[arg-type]

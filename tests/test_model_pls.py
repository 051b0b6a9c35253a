"""Batched PLS1 against scikit-learn's PLSRegression."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cross_decomposition import PLSRegression

from socmap.errors import ConfigError
from socmap.model.pls import PLS1Batch, fit_pls1_batch


def _sklearn(X, y, n_components, scale):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y residual is constant" on degenerate subsets
        return PLSRegression(n_components=n_components, scale=scale).fit(X, y)


def _close(actual, expected, rtol=1e-8):
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-10 * scale)


def _assert_matches(fits: PLS1Batch, X, y, X_new, scale, rtol=1e-8):
    """Every fit of the batch against its own sklearn fit."""
    preds, scores = fits.predict(X_new), fits.transform(X_new)
    for b in range(len(X)):
        ref = _sklearn(X[b], y[b], fits.n_components, scale)
        _close(fits.x_mean[b], ref._x_mean, rtol)
        _close(fits.x_std[b], ref._x_std, rtol)
        _close(fits.weights[b], ref.x_weights_, rtol)
        _close(fits.loadings[b], ref.x_loadings_, rtol)
        _close(fits.rotations[b], ref.x_rotations_, rtol)
        _close(fits.y_loadings[b], ref.y_loadings_[0], rtol)
        _close(fits.coef[b], ref.coef_[0], rtol)
        _close(preds[b], ref.predict(X_new), rtol)
        _close(scores[b], ref.transform(X_new), rtol)


def _data(seed, n_fits=4, k=25, p=12):
    """Correlated predictors with column offsets and scales, targets on a few of them."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(p, p))
    X = rng.normal(size=(n_fits, k, p)) @ mix * rng.uniform(0.1, 5, p) + rng.normal(0, 3, p)
    y = X[:, :, 0] - 0.5 * X[:, :, 1] + rng.normal(size=(n_fits, k))
    return X, y, rng.normal(size=(7, p)) @ mix


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("n_components", [1, 2, 5, 11])
def test_batch_matches_sklearn_fit_by_fit(scale, n_components):
    X, y, X_new = _data(n_components)
    fits = fit_pls1_batch(X, y, n_components, scale=scale)
    assert fits.n_fits == 4 and fits.n_components == n_components
    assert fits.rotations.shape == fits.loadings.shape == (4, 12, n_components)
    assert (fits.n_fitted == n_components).all()
    _assert_matches(fits, X, y, X_new, scale)


def test_reconstruction_rmse_is_the_rebuild_error_of_sklearns_components():
    X, y, X_new = _data(3)
    fits = fit_pls1_batch(X, y, 3)
    rmse = fits.reconstruction_rmse(X_new)
    for b in range(len(X)):
        ref = _sklearn(X[b], y[b], 3, True)
        scaled = (X_new - ref._x_mean) / ref._x_std
        rebuilt = scaled @ ref.x_rotations_ @ ref.x_loadings_.T
        assert rmse[b] == pytest.approx(np.sqrt(np.mean((scaled - rebuilt) ** 2)), rel=1e-10)
    # with every component the scaled subset itself is rebuilt exactly
    full = fit_pls1_batch(X[0], y[0], 12)
    assert full.reconstruction_rmse(X[0])[0] < 1e-10 < rmse[0]


def test_single_subset_is_a_batch_of_one_and_inputs_are_left_alone():
    X, y, X_new = _data(4, n_fits=1)
    X0, y0 = X[0].copy(), y[0].copy()
    one = fit_pls1_batch(X0, y0, 3)
    np.testing.assert_array_equal(X0, X[0])  # copy=True by default
    np.testing.assert_array_equal(y0, y[0])
    assert one.n_fits == 1 and one.predict(X_new).shape == (1, 7)
    _assert_matches(one, X, y, X_new, True)


def test_copy_false_centres_in_place_with_the_same_fit():
    X, y, X_new = _data(5)
    ref = fit_pls1_batch(X, y, 4)
    work = X.copy()
    fits = fit_pls1_batch(work, y, 4, copy=False)
    np.testing.assert_allclose(work, X - X.mean(axis=1, keepdims=True))
    np.testing.assert_array_equal(fits.predict(X_new), ref.predict(X_new))


def test_two_sample_subsets_predict_like_sklearn():
    # two standardised samples are +-1/sqrt(2) in every column: the weights tie in size, so
    # their sign is arbitrary (in sklearn too) but the coefficients are not
    rng = np.random.default_rng(11)
    X, y = rng.normal(size=(3, 2, 6)), rng.normal(size=(3, 2))
    fits = fit_pls1_batch(X, y, 4)
    assert fits.n_components == 1
    X_new = rng.normal(size=(4, 6))
    for b in range(3):
        ref = _sklearn(X[b], y[b], 1, True)
        _close(fits.coef[b], ref.coef_[0])
        _close(fits.predict(X_new)[b], ref.predict(X_new))


def test_components_are_capped_by_subset_size_and_predictors():
    rng = np.random.default_rng(6)
    small = fit_pls1_batch(rng.normal(size=(2, 4, 9)), rng.normal(size=(2, 4)), 5)
    assert small.n_components == 3  # k - 1
    narrow = fit_pls1_batch(rng.normal(size=(2, 30, 2)), rng.normal(size=(2, 30)), 5)
    assert narrow.n_components == 2  # p


def test_constant_columns_are_scaled_by_one_like_sklearn():
    X, y, X_new = _data(7)
    X[:, :, 3] = 2.0
    X[1, :, 5] = -1.0
    fits = fit_pls1_batch(X, y, 4)
    assert (fits.x_std[:, 3] == 1.0).all() and fits.x_std[1, 5] == 1.0
    assert (fits.loadings[:, 3] == 0).all() and np.isfinite(fits.coef).all()
    _assert_matches(fits, X, y, X_new, True)


def test_constant_target_stops_the_fit_like_sklearn():
    X, y, X_new = _data(8, n_fits=3)
    y[1] = 4.0  # this subset's target residual is zero from the start
    fits = fit_pls1_batch(X, y, 3)
    np.testing.assert_array_equal(fits.n_fitted, [3, 0, 3])
    assert (fits.rotations[1] == 0).all() and (fits.coef[1] == 0).all()
    np.testing.assert_array_equal(fits.predict(X_new)[1], 4.0)
    _assert_matches(fits, X, y, X_new, True)


def test_exactly_fitted_target_stops_early():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(12, 6))
    X[:, 1:] = X[:, :1] * rng.normal(size=5)  # rank one: one component explains y = x0
    fits = fit_pls1_batch(X, X[:, 0], 3, scale=False)
    assert fits.n_fitted[0] == 1
    np.testing.assert_allclose(fits.predict(X)[0], X[:, 0], atol=1e-12)
    _assert_matches(fits, X[None], X[None, :, 0], X[:4], False)


def test_all_constant_predictors_give_zero_components_not_nan():
    X = np.ones((1, 10, 3))
    y = np.arange(10.0)[None]
    fits = fit_pls1_batch(X, y, 2)
    assert fits.n_fitted[0] == 0 and np.isfinite(fits.rotations).all()
    np.testing.assert_allclose(fits.predict(np.zeros((2, 3)))[0], 4.5)


def test_bad_input_raises_config_errors_that_show_the_value():
    X, y, _ = _data(10)
    with pytest.raises(ConfigError, match=r"\(4, 25, 12\).*\(4, 24\)"):
        fit_pls1_batch(X, y[:, :24], 2)
    with pytest.raises(ConfigError, match="n_components 0"):
        fit_pls1_batch(X, y, 0)
    with pytest.raises(ConfigError, match=r"n_components 2\.5"):
        fit_pls1_batch(X, y, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"at least 2 samples.*\(4, 1, 12\)"):
        fit_pls1_batch(X[:, :1], y[:, :1], 1)
    with pytest.raises(ConfigError, match="NaN"):
        fit_pls1_batch(np.where(X > 3, np.nan, X), y, 2)
    fits = fit_pls1_batch(X, y, 2)
    with pytest.raises(ConfigError, match=r"\(3, 11\).*12 predictors"):
        fits.predict(np.zeros((3, 11)))
    with pytest.raises(ConfigError, match=r"\(12,\)"):
        fits.reconstruction_rmse(np.zeros(12))


@settings(max_examples=40, deadline=None)
@given(
    n_fits=st.integers(1, 3),
    k=st.integers(3, 20),
    p=st.integers(1, 10),
    n_components=st.integers(1, 6),
    scale=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_parity_on_random_small_shapes(n_fits, k, p, n_components, scale, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_fits, k, p)) * rng.uniform(0.5, 2, p) + rng.normal(0, 2, p)
    y = X[:, :, 0] + rng.normal(size=(n_fits, k))
    fits = fit_pls1_batch(X, y, n_components, scale=scale)
    assert fits.n_components == min(n_components, k - 1, p)
    _assert_matches(fits, X, y, rng.normal(size=(3, p)), scale, rtol=1e-6)

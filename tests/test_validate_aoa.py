"""Tests for socmap.validate.aoa: dissimilarity index and area of applicability."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist, pdist
from sklearn.exceptions import NotFittedError

import socmap.validate.aoa as aoa_module
from socmap.errors import BandMismatch, BundleError, ConfigError, ProfileValidationError
from socmap.validate.aoa import KDTREE_MAX_DIMS, AreaOfApplicability


def covariates(n: int, seed: int, p: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.array([1.0, 10.0, 100.0, 0.1, 5.0, 2.0])[:p]
    return rng.normal(size=(n, p)) * scales + np.arange(p)


def test_hand_computed_square() -> None:
    # four corners of a square: all pairwise distances are 2 (x4) and 2*sqrt(2) (x2)
    X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    aoa = AreaOfApplicability().fit(X)
    # DI is a ratio, so the uniform standardisation (both columns have one sd) cancels
    mean_d = (4 * 2 + 2 * 2 * math.sqrt(2)) / 6
    assert aoa.mean_dist_ * aoa.scale_[0] == pytest.approx(mean_d)
    np.testing.assert_allclose(aoa.train_di_, 2 / mean_d)
    assert aoa.threshold_ == pytest.approx(2 / mean_d)  # IQR 0: the whisker is the value
    new = np.array([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]])
    di = aoa.predict_di(new)
    np.testing.assert_allclose(
        di, [math.sqrt(2) / mean_d, math.sqrt(2) / mean_d, 3 * math.sqrt(2) / mean_d]
    )
    assert aoa.predict(new).tolist() == [True, True, False]


def test_hand_computed_folds_and_whisker() -> None:
    # 1-D points 0, 1, 2, 10; pairwise distances 1, 2, 10, 1, 9, 8 (mean 31/6)
    X = np.array([[0.0], [1.0], [2.0], [10.0]])
    loo = AreaOfApplicability().fit(X)
    np.testing.assert_allclose(loo.train_di_, np.array([1, 1, 1, 8]) * 6 / 31)
    # quartiles of [6, 6, 6, 48]/31: Q1 = 6, Q3 = 16.5, fence = 16.5 + 1.5 * 10.5 = 32.25
    assert loo.fence_ == pytest.approx(32.25 / 31)
    assert loo.threshold_ == pytest.approx(6 / 31)  # 48/31 lies beyond the fence
    # with folds, each point's distance is to the nearest point of the other fold
    cv = AreaOfApplicability().fit(X, folds=[0, 0, 1, 1])
    np.testing.assert_allclose(cv.train_di_, np.array([2, 1, 1, 9]) * 6 / 31)
    assert cv.cv_ == "folds"
    # sorted [6, 6, 12, 54]/31: Q1 = 6, Q3 = 12 + 0.25 * 42 = 22.5, fence = 22.5 + 24.75
    assert cv.fence_ == pytest.approx(47.25 / 31)
    assert cv.threshold_ == pytest.approx(12 / 31)
    assert cv.predict(np.array([[1.5], [14.0]])).tolist() == [True, False]


def test_di_zero_at_training_points_and_matches_brute_force() -> None:
    X = covariates(300, seed=1)
    w = np.array([0.5, 2.0, 1.0, 0.0])
    aoa = AreaOfApplicability().fit(X, weights=w)
    np.testing.assert_allclose(aoa.predict_di(X), 0.0, atol=1e-12)
    assert aoa.predict(X).all()
    # brute force in the weighted standardised space
    Z = (X - X.mean(0)) / X.std(0, ddof=1) * w
    rng = np.random.default_rng(2)
    new = X[:50] + rng.normal(size=(50, 4)) * X.std(0)
    Zn = (new - X.mean(0)) / X.std(0, ddof=1) * w
    expected = cdist(Zn, Z).min(axis=1) / pdist(Z).mean()
    np.testing.assert_allclose(aoa.predict_di(new), expected, rtol=1e-10)
    # a zero-weight covariate does not matter
    moved = new.copy()
    moved[:, 3] += 1e6
    np.testing.assert_allclose(aoa.predict_di(moved), expected, rtol=1e-10)


@pytest.mark.parametrize("p", [3, KDTREE_MAX_DIMS + 4])
@pytest.mark.parametrize("with_folds", [False, True])
def test_kdtree_and_brute_force_paths_agree_with_cdist(
    p: int, with_folds: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aoa_module, "_CHUNK_ELEMENTS", 400 * 37)  # many ragged chunks
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, p)) * rng.uniform(0.1, 10.0, p)
    X[7] = X[8]  # an exact duplicate: leave-one-out DI 0 for both
    folds = rng.integers(0, 4, 400) if with_folds else None
    aoa = AreaOfApplicability().fit(X, folds=folds)
    Z = (X - X.mean(0)) / X.std(0, ddof=1)
    D = cdist(Z, Z)
    if folds is None:
        np.fill_diagonal(D, np.inf)
    else:
        D[folds[:, None] == folds[None, :]] = np.inf
    mean_d = pdist(Z).mean()
    np.testing.assert_allclose(aoa.train_di_, D.min(axis=1) / mean_d, rtol=1e-9, atol=1e-12)
    if folds is None:
        assert aoa.train_di_[7] == 0.0
    np.testing.assert_allclose(aoa.predict_di(X), 0.0, atol=1e-12)
    new = rng.normal(size=(3000, p)) * X.std(0) * 1.5
    Zn = (new - X.mean(0)) / X.std(0, ddof=1)
    expected = cdist(Zn, Z).min(axis=1) / mean_d
    np.testing.assert_allclose(aoa.predict_di(new), expected, rtol=1e-9)
    assert (aoa.tree_ is None) == (p > KDTREE_MAX_DIMS)


def test_far_points_outside_and_threshold_behaviour() -> None:
    X = covariates(400, seed=3)
    aoa = AreaOfApplicability().fit(X)
    far = X.mean(0) + 20 * X.std(0)
    assert not aoa.predict(far[None, :])[0]
    assert aoa.predict_di(far[None, :])[0] > 5 * aoa.threshold_
    # the threshold is a training DI no greater than the fence, and the largest such
    assert aoa.threshold_ in aoa.train_di_
    assert aoa.threshold_ <= aoa.fence_
    assert not np.any((aoa.train_di_ > aoa.threshold_) & (aoa.train_di_ <= aoa.fence_))
    # predict is exactly DI <= threshold
    rng = np.random.default_rng(4)
    new = X.mean(0) + rng.normal(size=(500, 4)) * X.std(0) * 2.5
    di = aoa.predict_di(new)
    np.testing.assert_array_equal(aoa.predict(new), di <= aoa.threshold_)
    assert 0 < aoa.predict(new).mean() < 1


def test_cross_fold_di_is_larger_than_leave_one_out() -> None:
    X = covariates(300, seed=5)
    folds = (X[:, 0] > np.median(X[:, 0])).astype(int)  # covariate-space split: folds differ
    loo = AreaOfApplicability().fit(X)
    cv = AreaOfApplicability().fit(X, folds=folds)
    assert np.all(cv.train_di_ >= loo.train_di_ - 1e-12)
    assert cv.threshold_ > loo.threshold_


def test_nan_rows_excluded_and_counted() -> None:
    X = covariates(100, seed=6)
    Xn = X.copy()
    Xn[[3, 50], 1] = np.nan
    aoa = AreaOfApplicability().fit(Xn)
    ref = AreaOfApplicability().fit(np.delete(X, [3, 50], axis=0))
    assert aoa.n_excluded_ == 2
    assert aoa.threshold_ == pytest.approx(ref.threshold_)
    di = aoa.predict_di(Xn[:5])
    assert math.isnan(di[3])
    assert not aoa.predict(Xn[:5])[3]
    assert aoa.predict(Xn[:5])[[0, 1, 2, 4]].all()


def test_subsampled_mean_distance_is_close_and_seeded() -> None:
    X = covariates(2500, seed=7)
    full = AreaOfApplicability(subsample=5000).fit(X)
    exact = pdist((X - X.mean(0)) / X.std(0, ddof=1)).mean()
    assert full.mean_dist_ == pytest.approx(exact)
    est = AreaOfApplicability(subsample=1000, random_state=1).fit(X)
    again = AreaOfApplicability(subsample=1000, random_state=1).fit(X)
    other = AreaOfApplicability(subsample=1000, random_state=2).fit(X)
    assert est.mean_dist_ == again.mean_dist_
    assert est.mean_dist_ != other.mean_dist_
    assert est.mean_dist_ == pytest.approx(exact, rel=0.04)
    # the estimate rescales DI and threshold alike, so the AOA mask is unchanged
    new = covariates(2000, seed=17) * 1.8
    np.testing.assert_array_equal(est.predict(new), full.predict(new))
    np.testing.assert_allclose(
        est.predict_di(new) * est.mean_dist_, full.predict_di(new) * full.mean_dist_
    )


def test_dataframe_names_and_round_trip() -> None:
    X = pd.DataFrame(covariates(120, seed=8), columns=["elev", "precip", "temp", "ndvi"])
    folds = np.arange(120) % 3
    aoa = AreaOfApplicability().fit(X, weights=[1.0, 0.5, 2.0, 1.0], folds=folds)
    data = json.loads(json.dumps(aoa.to_dict(), allow_nan=False))
    back = AreaOfApplicability.from_dict(data)
    new = X + np.random.default_rng(9).normal(size=X.shape) * 3.0
    np.testing.assert_array_equal(back.predict_di(new), aoa.predict_di(new))
    np.testing.assert_array_equal(back.predict(new), aoa.predict(new))
    assert back.threshold_ == aoa.threshold_
    assert back.feature_names_in_ == ["elev", "precip", "temp", "ndvi"]
    assert back.to_dict() == data
    with pytest.raises(BandMismatch, match="differ from the training covariates"):
        aoa.predict_di(new[["precip", "elev", "temp", "ndvi"]])
    with pytest.raises(BandMismatch, match="X has 3 covariates"):
        aoa.predict_di(new.to_numpy()[:, :3])


def test_errors() -> None:
    X = covariates(20, seed=10)
    with pytest.raises(NotFittedError):
        AreaOfApplicability().predict(X)
    with pytest.raises(ConfigError, match="weights must be 4 finite non-negative"):
        AreaOfApplicability().fit(X, weights=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match="weights must be 4"):
        AreaOfApplicability().fit(X, weights=[1.0, 1.0])
    with pytest.raises(ProfileValidationError, match="folds has 3 labels for 20"):
        AreaOfApplicability().fit(X, folds=[0, 1, 2])
    with pytest.raises(ProfileValidationError, match="at least two distinct labels"):
        AreaOfApplicability().fit(X, folds=np.zeros(20))
    with pytest.raises(ProfileValidationError, match="at least 2 training samples"):
        AreaOfApplicability().fit(X[:1])
    with pytest.raises(ProfileValidationError, match="all training samples are identical"):
        AreaOfApplicability().fit(np.ones((5, 2)))
    with pytest.raises(ProfileValidationError, match="must be numeric"):
        AreaOfApplicability().fit(pd.DataFrame({"a": ["x", "y"], "b": ["u", "v"]}))
    with pytest.raises(BundleError, match=r"lacks \["):
        AreaOfApplicability.from_dict({"method": "meyer_pebesma_2021"})
    good = AreaOfApplicability().fit(X).to_dict()
    with pytest.raises(BundleError, match="shapes disagree"):
        AreaOfApplicability.from_dict({**good, "center": [0.0]})
    with pytest.raises(BundleError, match="is not 'meyer_pebesma_2021'"):
        AreaOfApplicability.from_dict({**good, "method": "cast"})

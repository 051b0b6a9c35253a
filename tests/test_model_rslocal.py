"""RS-LOCAL instance selection."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cross_decomposition import PLSRegression

from socmap.errors import ConfigError
from socmap.model import rslocal
from socmap.model.rslocal import _score_subsets, _subsets, batch_size, rs_local


def _two_populations(seed=0, n=80):
    """Half the library follows y = x0, half y = -x0; the local set follows y = x0."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    sign = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    y = sign * X[:, 0] + 0.05 * rng.normal(size=n)
    local = rng.normal(size=(15, 4))
    return X, y, local, local[:, 0]


def test_response_mode_keeps_the_population_that_predicts_the_local_set():
    shares = []
    for seed in range(3):
        X, y, Xq, yq = _two_populations(seed)
        picked = rs_local(X, y, Xq, yq, k=20, b=5, n_components=2, seed=seed)
        assert len(picked) == 20 and len(set(picked)) == 20
        shares.append((picked < 40).mean())
    # chance would keep half from each population
    assert min(shares) >= 0.7 and np.mean(shares) >= 0.75


def test_reconstruction_mode_needs_no_local_targets():
    shares = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        near = rng.normal(0, 1, size=(40, 5)) @ np.diag([3, 2, 0.1, 0.1, 0.1])
        far = rng.normal(0, 1, size=(40, 5)) @ np.diag([0.1, 0.1, 0.1, 3, 2])
        X = np.vstack([near, far])
        local = rng.normal(0, 1, size=(12, 5)) @ np.diag([3, 2, 0.1, 0.1, 0.1])
        # PLS directions depend on the library targets; the local set needs none
        picked = rs_local(X, X.sum(axis=1), local, k=20, n_components=2, mode="reconstruction")
        shares.append((picked < 40).mean())
    assert min(shares) >= 0.65 and np.mean(shares) >= 0.7


def test_same_seed_same_selection_and_seed_matters():
    X, y, Xq, yq = _two_populations(seed=2)
    a = rs_local(X, y, Xq, yq, k=15, b=3, seed=4)
    b = rs_local(X, y, Xq, yq, k=15, b=3, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rs_local(X, y, Xq, yq, k=15, b=3, seed=5))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(4, 40), k_frac=st.floats(0.05, 1.0), retain=st.floats(0.5, 0.95))
def test_returns_k_distinct_library_indices(n, k_frac, retain):
    rng = np.random.default_rng(n)
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    k = min(n, max(2, round(k_frac * n)))
    picked = rs_local(X, y, rng.normal(size=(5, 3)), rng.normal(size=5), k=k, b=2, retain=retain)
    assert len(picked) == k and len(set(picked)) == k
    assert picked.min() >= 0 and picked.max() < n


def test_bad_input():
    X, y, Xq, yq = _two_populations()
    with pytest.raises(ConfigError, match="k 1"):
        rs_local(X, y, Xq, yq, k=1)
    with pytest.raises(ConfigError, match="k 500"):
        rs_local(X, y, Xq, yq, k=500)
    with pytest.raises(ConfigError, match="needs y_local"):
        rs_local(X, y, Xq, k=10)
    with pytest.raises(ConfigError, match="mode 'magic'"):
        rs_local(X, y, Xq, yq, k=10, mode="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="shapes do not fit"):
        rs_local(X, y, Xq[:, :2], yq, k=10)
    with pytest.raises(ConfigError, match="NaN"):
        rs_local(np.where(X > 2, np.nan, X), y, Xq, yq, k=10)
    with pytest.raises(ConfigError, match="retain"):
        rs_local(X, y, Xq, yq, k=10, retain=1.0)


def _spectral_library(seed, local_pop=0, n_per=100, n_local=20, p=60):
    """Three subpopulations of smooth synthetic spectra, ``n_per`` each, in library order.

    All share three absorption peaks whose depths drive the target, each with its own slopes
    (a different spectra-to-target relationship), and each has one more peak of its own (a
    different absorption feature). The local set is drawn from ``local_pop``.
    """
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, p)

    def peak(centre):
        return np.exp(-0.5 * ((wl - centre) / 0.05) ** 2)

    shared = np.array([peak(0.3), peak(0.5), peak(0.7)])
    own = [peak(0.1), peak(0.85), peak(0.95)]
    slopes = np.array([(2.0, -1.0, 0.5), (-1.0, 2.0, -0.5), (0.5, -0.5, -2.0)])

    def draw(pop, n):
        depth = rng.uniform(0, 1, size=(n, 3))
        spectra = depth @ shared + rng.uniform(0.5, 1.5, size=(n, 1)) * own[pop]
        spectra += 0.01 * rng.normal(size=(n, p))
        return spectra, depth @ slopes[pop] + 0.05 * rng.normal(size=n)

    parts = [draw(pop, n_per) for pop in range(3)]
    X_local, y_local = draw(local_pop, n_local)
    return np.vstack([x for x, _ in parts]), np.concatenate([y for _, y in parts]), X_local, y_local


@pytest.mark.parametrize("local_pop", [0, 2])
def test_response_mode_picks_the_spectral_subpopulation_of_the_local_set(local_pop):
    shares = []
    for seed in range(3):
        X, y, Xq, yq = _spectral_library(seed, local_pop)
        picked = rs_local(X, y, Xq, yq, k=20, b=10, n_components=2, seed=seed)
        shares.append(np.mean(picked // 100 == local_pop))
    # chance would keep a third from each subpopulation
    assert min(shares) >= 0.7 and np.mean(shares) >= 0.8


def test_reconstruction_mode_favours_the_spectral_subpopulation_of_the_local_set():
    shares = []
    for seed in range(3):
        X, y, Xq, _ = _spectral_library(seed)
        picked = rs_local(X, y, Xq, k=20, b=10, n_components=2, mode="reconstruction", seed=seed)
        shares.append(np.mean(picked < 100))
    assert min(shares) >= 0.5 and np.mean(shares) >= 0.55  # chance: 1/3


def _sklearn_score(X, y, Xq, yq, n_components, mode):
    """One subset's score as the former per-subset sklearn implementation computed it."""
    nc = max(1, min(n_components, X.shape[0] - 1, X.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pls = PLSRegression(n_components=nc, scale=True).fit(X, y)
    if mode == "response":
        return np.sqrt(np.mean((pls.predict(Xq).ravel() - yq) ** 2))
    std = X.std(axis=0, ddof=1)
    scaled = (Xq - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    rebuilt = scaled @ pls.x_rotations_ @ pls.x_loadings_.T
    return np.sqrt(np.mean((scaled - rebuilt) ** 2))


@pytest.mark.parametrize("mode", ["response", "reconstruction"])
@pytest.mark.parametrize("batch", [1, 7, 100])
def test_batched_scores_equal_a_sklearn_fit_per_subset(mode, batch):
    X, y, Xq, yq = _spectral_library(4, n_per=20, n_local=8, p=30)
    X[:, 0] = 1.0  # a constant column, scaled by 1 in both
    subsets = _subsets(len(X), 12, 2, np.random.default_rng(0))
    got = _score_subsets(X, y, Xq, yq, subsets, 4, mode, batch)
    expected = [_sklearn_score(X[s], y[s], Xq, yq, 4, mode) for s in subsets]
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_subsets_draw_each_sample_b_times_plus_the_top_up():
    m, k, b = 23, 5, 3
    pos = _subsets(m, k, b, np.random.default_rng(1))
    assert pos.shape == (b * math.ceil(m / k), k)
    assert all(len(set(row)) == k for row in pos)  # no sample twice in a subset
    for draw in np.split(pos, b):
        counts = np.bincount(draw.ravel(), minlength=m)
        # a permutation of all m, with 2 of them drawn again to fill the last subset
        assert counts.min() == 1 and counts.sum() == m + 2 and counts.max() == 2
        assert set(draw[-1, :3]).isdisjoint(draw[:-1].ravel())


def _reference_rs_local(X, y, Xq, yq, k, b, retain, n_components, mode, seed):
    """The former loop: one sklearn fit per subset, in the same random order."""
    rng = np.random.default_rng(seed)
    active = np.arange(len(X))
    m = len(X)
    while m > k:
        total, counts = np.zeros(m), np.zeros(m)
        for _ in range(b):
            perm = rng.permutation(m)
            for start in range(0, m, k):
                pick = perm[start : start + k]
                if len(pick) < k:
                    others = np.setdiff1d(perm, pick, assume_unique=True)
                    pick = np.concatenate([pick, rng.choice(others, k - len(pick), replace=False)])
                idx = active[pick]
                total[pick] += _sklearn_score(X[idx], y[idx], Xq, yq, n_components, mode)
                counts[pick] += 1
        keep = min(max(k, math.floor(retain * m)), m - 1)
        active = active[np.argsort(total / counts, kind="stable")[:keep]]
        m = keep
    return active


@pytest.mark.parametrize("mode", ["response", "reconstruction"])
def test_same_selection_as_one_sklearn_fit_per_subset(mode):
    X, y, Xq, yq = _spectral_library(5, n_per=20, n_local=10, p=20)
    kwargs = dict(k=12, b=3, retain=0.8, n_components=3, mode=mode, seed=7)
    expected = _reference_rs_local(X, y, Xq, yq, **kwargs)
    np.testing.assert_array_equal(rs_local(X, y, Xq, yq, **kwargs), expected)


def test_batch_size_does_not_change_the_selection(monkeypatch):
    X, y, Xq, yq = _spectral_library(6, n_per=30)
    default = rs_local(X, y, Xq, yq, k=15, b=4, n_components=3, seed=1)
    assert batch_size(15, X.shape[1], len(Xq)) >= 4 * 6  # the whole first iteration at once
    monkeypatch.setattr(rslocal, "BATCH_BYTES", 1)  # one subset per batch
    assert batch_size(15, X.shape[1], len(Xq)) == 1
    np.testing.assert_array_equal(
        rs_local(X, y, Xq, yq, k=15, b=4, n_components=3, seed=1), default
    )

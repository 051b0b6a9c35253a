"""RS-LOCAL instance selection."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.errors import ConfigError
from socmap.model.rslocal import rs_local


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

"""Sample selection: Kennard-Stone and k-means."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.errors import ConfigError, SpectraError
from socmap.spectra import kennard_stone, kmeans_select


def test_kennard_stone_on_a_known_small_case():
    # corners of a unit square, its centre and a point near a corner
    X = np.array([[0, 0], [1, 1], [0, 1], [1, 0], [0.5, 0.5], [0.9, 0.9]], float)
    # (0,0)-(1,1) is the farthest pair (ties with (0,1)-(1,0); the lowest indices win);
    # then (0,1) and (1,0) are 1 from both; then the centre (0.707) beats (0.9, 0.9) (0.1)
    assert kennard_stone(X, 5).tolist() == [0, 1, 2, 3, 4]
    assert kennard_stone(np.arange(11.0)[:, None], 4).tolist() == [0, 10, 5, 2]


def test_kennard_stone_matches_a_brute_force_reference():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 6))
    d = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    i, j = np.unravel_index(np.argmax(d), d.shape)
    ref = [min(i, j), max(i, j)]
    while len(ref) < 15:
        mind = d[:, ref].min(axis=1)
        mind[ref] = -1
        ref.append(int(np.argmax(mind)))
    np.testing.assert_array_equal(kennard_stone(X, 15), ref)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.integers(2, 25))
def test_kennard_stone_returns_distinct_indices_with_shrinking_gaps(seed, n):
    X = np.random.default_rng(seed).normal(size=(25, 4))
    idx = kennard_stone(X, n)
    assert len(set(idx.tolist())) == n
    # each new sample's distance to those before it never grows
    gaps = [np.sqrt(((X[idx[:k]] - X[idx[k]]) ** 2).sum(1)).min() for k in range(2, n)]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(gaps))


def test_selection_on_principal_components_and_bad_inputs():
    X = np.random.default_rng(0).normal(size=(30, 50))
    assert len(kennard_stone(X, 10, n_components=5)) == 10
    with pytest.raises(ConfigError):
        kennard_stone(X, 1)
    with pytest.raises(ConfigError):
        kennard_stone(X, 31)
    with pytest.raises(ConfigError):
        kennard_stone(X, 5, n_components=60)
    with pytest.raises(SpectraError):
        kennard_stone(np.where(X > 2, np.nan, X), 5)


def test_kmeans_takes_one_sample_per_cluster_deterministically():
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    X = np.vstack([c + rng.normal(0, 0.5, size=(20, 2)) for c in centres])
    idx = kmeans_select(X, 3, seed=0)
    assert sorted(i // 20 for i in idx) == [0, 1, 2]
    np.testing.assert_array_equal(idx, kmeans_select(X, 3, seed=0))

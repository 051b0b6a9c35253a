"""Tests for socmap.validate.splitters: BlockKFold and spatial_train_val_split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score

from socmap.errors import CRSError, ProfileValidationError
from socmap.validate.splitters import BlockKFold, block_ids, spatial_train_val_split


def profile_table(
    n_sites: int,
    seed: int,
    *,
    extent: float = 10.0,
    max_layers: int = 4,
    crs: str | None = "EPSG:4326",
) -> pd.DataFrame:
    """Seeded canonical-style profile table: each site has 1..max_layers depth rows."""
    rng = np.random.default_rng(seed)
    sx = rng.uniform(0, extent, n_sites)
    sy = rng.uniform(0, extent, n_sites)
    layers = rng.integers(1, max_layers + 1, n_sites)
    site = np.repeat(np.arange(n_sites), layers)
    df = pd.DataFrame(
        {
            "site_id": [f"s{i:04d}" for i in site],
            "x": sx[site],
            "y": sy[site],
            "top_cm": np.concatenate([np.arange(k) * 10.0 for k in layers]),
            "soc_g_kg": rng.gamma(2.0, 5.0, len(site)),
        }
    )
    if crs is not None:
        df["crs"] = crs
    return df


def check_folds(df: pd.DataFrame, cv: BlockKFold, groups: object = None) -> np.ndarray:
    """Assert the structural invariants and return the fold id per row."""
    n = len(df)
    seen = np.zeros(n, dtype=int)
    fold = np.full(n, -1)
    splits = list(cv.split(df, groups=groups))
    assert len(splits) == cv.get_n_splits()
    for k, (train, test) in enumerate(splits):
        assert len(test) > 0
        assert np.intersect1d(train, test).size == 0
        assert np.union1d(train, test).size == n
        seen[test] += 1
        fold[test] = k
    assert (seen == 1).all()  # every row tested exactly once
    np.testing.assert_array_equal(fold, cv.fold_ids(df, groups))
    return fold


# ------------------------------------------------------------------ basic behaviour
def test_profiles_and_blocks_never_split() -> None:
    df = profile_table(300, seed=1)
    cv = BlockKFold(n_splits=5, block_size=2.0, random_state=0)
    fold = check_folds(df, cv)
    per_site = pd.Series(fold).groupby(df["site_id"].to_numpy()).nunique()
    assert (per_site == 1).all()
    blocks = block_ids(df, block_size=2.0)
    assert (pd.Series(fold).groupby(blocks).nunique() == 1).all()
    # blocks follow floor(x / size), floor(y / size)
    key = np.floor(df["x"] / 2.0).astype(int) * 1000 + np.floor(df["y"] / 2.0).astype(int)
    assert (pd.Series(blocks).groupby(key.to_numpy()).nunique() == 1).all()
    assert (pd.Series(key.to_numpy()).groupby(blocks).nunique() == 1).all()


def test_balanced_fold_sizes() -> None:
    df = profile_table(2000, seed=2, extent=20.0)
    fold = BlockKFold(n_splits=5, block_size=1.0, random_state=3).fold_ids(df)
    sizes = np.bincount(fold)
    assert sizes.max() / sizes.min() < 1.05
    # the unbalanced (equal block count) variant is no better balanced
    fold_u = BlockKFold(n_splits=5, block_size=1.0, random_state=3, balance=False).fold_ids(df)
    sizes_u = np.bincount(fold_u)
    assert sizes_u.max() - sizes_u.min() >= sizes.max() - sizes.min()


def test_deterministic_for_seed_and_varies_between_seeds() -> None:
    df = profile_table(400, seed=4)
    a = BlockKFold(n_splits=4, block_size=1.5, random_state=11).fold_ids(df)
    b = BlockKFold(n_splits=4, block_size=1.5, random_state=11).fold_ids(df)
    c = BlockKFold(n_splits=4, block_size=1.5, random_state=12).fold_ids(df)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # shuffle=False ignores the seed entirely
    d = BlockKFold(n_splits=4, block_size=1.5, shuffle=False, random_state=1).fold_ids(df)
    e = BlockKFold(n_splits=4, block_size=1.5, shuffle=False, random_state=2).fold_ids(df)
    np.testing.assert_array_equal(d, e)


def test_groups_argument_overrides_site_id() -> None:
    df = profile_table(50, seed=5).drop(columns="site_id")
    # each row its own profile when no ids: rows at one location still share a block
    fold_rows = BlockKFold(n_splits=3, block_size=3.0, random_state=0).fold_ids(df)
    assert len(fold_rows) == len(df)
    groups = df["x"].round(12).astype(str) + "_" + df["y"].round(12).astype(str)
    fold = BlockKFold(n_splits=3, block_size=3.0, random_state=0).fold_ids(df, groups.to_numpy())
    assert (pd.Series(fold).groupby(groups.to_numpy()).nunique() == 1).all()


def test_units_from_crs_and_metres() -> None:
    df = profile_table(200, seed=6, extent=50_000.0, crs="EPSG:32755")
    fold = BlockKFold(n_splits=4, block_size=5_000.0, random_state=0).fold_ids(df)
    assert set(fold) == {0, 1, 2, 3}
    # the same table with an explicit CRS instead of a column
    fold2 = BlockKFold(n_splits=4, block_size=5_000.0, random_state=0, crs="EPSG:32755").fold_ids(
        df.drop(columns="crs")
    )
    np.testing.assert_array_equal(fold, fold2)
    with pytest.raises(CRSError, match="units='metres'"):
        BlockKFold(n_splits=4, block_size=0.5, units="degrees").fold_ids(df)


def test_auto_units_need_a_crs() -> None:
    df = profile_table(20, seed=7, crs=None)
    with pytest.raises(CRSError, match="needs a CRS"):
        BlockKFold(n_splits=2, block_size=1.0).fold_ids(df)
    fold = BlockKFold(n_splits=2, block_size=1.0, units="degrees").fold_ids(df)
    assert set(fold) == {0, 1}


def test_mixed_crs_is_an_error() -> None:
    df = profile_table(20, seed=8)
    df.loc[df.index[:3], "crs"] = "EPSG:32755"
    with pytest.raises(CRSError, match="share one CRS"):
        BlockKFold(n_splits=2, block_size=1.0).fold_ids(df)


# ------------------------------------------------------------------ errors
def test_too_few_blocks_names_the_count() -> None:
    df = profile_table(100, seed=9, extent=10.0)
    with pytest.raises(ProfileValidationError, match=r"^4 non-empty spatial blocks.*smaller"):
        BlockKFold(n_splits=5, block_size=5.0).fold_ids(df)


def test_profile_with_two_locations() -> None:
    df = profile_table(10, seed=10, max_layers=3)
    site = df["site_id"].value_counts().index[0]
    rows = np.flatnonzero(df["site_id"] == site)
    df.loc[df.index[rows[-1]], "x"] += 0.5
    with pytest.raises(ProfileValidationError, match=rf"profile '{site}' has rows at 2 locations"):
        BlockKFold(n_splits=2, block_size=1.0).fold_ids(df)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_splits": 1}, "n_splits must be an integer >= 2"),
        ({"block_size": 0.0}, "block_size must be a positive"),
        ({"block_size": float("nan")}, "block_size must be a positive"),
        ({"units": "km"}, "units must be one of"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    df = profile_table(50, seed=11)
    params: dict[str, object] = {"n_splits": 2, "block_size": 1.0, **kwargs}
    with pytest.raises(ProfileValidationError, match=match):
        BlockKFold(**params).fold_ids(df)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    df = profile_table(30, seed=12)
    with pytest.raises(ProfileValidationError, match="DataFrame with 'x' and 'y'"):
        BlockKFold(n_splits=2).fold_ids(df[["x", "y"]].to_numpy())  # type: ignore[arg-type]
    bad = df.copy()
    bad.loc[bad.index[2], "y"] = np.nan
    with pytest.raises(ProfileValidationError, match="missing or infinite x/y, first at row 2"):
        BlockKFold(n_splits=2, block_size=1.0).fold_ids(bad)
    with pytest.raises(ProfileValidationError, match="groups has 3 entries"):
        BlockKFold(n_splits=2, block_size=1.0).fold_ids(df, groups=[1, 2, 3])
    ids = df["site_id"].to_numpy(dtype=object)
    ids[4] = None
    with pytest.raises(ProfileValidationError, match="missing at 1 rows, first at row 4"):
        BlockKFold(n_splits=2, block_size=1.0).fold_ids(df, groups=ids)


# ------------------------------------------------------------------ sklearn integration
def test_works_with_cross_val_score_and_grid_search() -> None:
    rng = np.random.default_rng(13)
    df = profile_table(120, seed=13)
    features = pd.DataFrame({"x": df["x"], "y": df["y"], "cov": rng.normal(size=len(df))})
    target = 2.0 * features["cov"] + 0.1 * features["x"] + rng.normal(0, 0.1, len(df))
    groups = df["site_id"].to_numpy()
    cv = BlockKFold(n_splits=4, block_size=2.0, units="degrees", random_state=0)
    scores = cross_val_score(Ridge(), features, target, cv=cv, groups=groups)
    assert scores.shape == (4,)
    assert np.all(scores > 0.9)
    search = GridSearchCV(Ridge(), {"alpha": [0.01, 1.0, 1000.0]}, cv=cv)
    search.fit(features, target, groups=groups)
    assert search.best_params_["alpha"] < 1000.0
    assert "BlockKFold(" in repr(cv)
    assert "block_size=2.0" in repr(cv)


# ------------------------------------------------------------------ property tests
@settings(max_examples=40, deadline=None)
@given(
    n_sites=st.integers(10, 150),
    seed=st.integers(0, 2**31 - 1),
    n_splits=st.integers(2, 6),
    block_size=st.sampled_from([0.5, 1.0, 2.5]),
    balance=st.booleans(),
    shuffle=st.booleans(),
)
def test_property_folds_partition_rows_and_keep_profiles(
    n_sites: int, seed: int, n_splits: int, block_size: float, balance: bool, shuffle: bool
) -> None:
    df = profile_table(n_sites, seed=seed, extent=8.0)
    cv = BlockKFold(
        n_splits=n_splits,
        block_size=block_size,
        random_state=seed,
        balance=balance,
        shuffle=shuffle,
    )
    n_blocks = len(np.unique(block_ids(df, block_size=block_size)))
    if n_blocks < n_splits:
        with pytest.raises(ProfileValidationError, match=f"^{n_blocks} non-empty"):
            cv.fold_ids(df)
        return
    fold = check_folds(df, cv)
    assert (pd.Series(fold).groupby(df["site_id"].to_numpy()).nunique() == 1).all()
    blocks = block_ids(df, block_size=block_size)
    assert (pd.Series(fold).groupby(blocks).nunique() == 1).all()
    np.testing.assert_array_equal(fold, cv.fold_ids(df))  # deterministic for a seed


@settings(max_examples=30, deadline=None)
@given(
    n_blocks=st.integers(30, 120),
    n_splits=st.integers(2, 8),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_balance_with_many_similar_blocks(n_blocks: int, n_splits: int, seed: int) -> None:
    # one block per unit cell, each holding 8-12 rows: greedy balance keeps folds within one block
    rng = np.random.default_rng(seed)
    sizes = rng.integers(8, 13, n_blocks)
    cell = np.repeat(np.arange(n_blocks), sizes)
    df = pd.DataFrame({"x": cell + 0.5, "y": 0.5, "crs": "EPSG:4326"})
    fold = BlockKFold(n_splits=n_splits, block_size=1.0, random_state=seed).fold_ids(df)
    counts = np.bincount(fold, minlength=n_splits)
    assert counts.max() - counts.min() <= sizes.max()
    if n_blocks >= 4 * n_splits:
        assert counts.max() / counts.min() <= 1.5


# ------------------------------------------------------------------ train/val split
def test_spatial_train_val_split() -> None:
    df = profile_table(500, seed=14, extent=20.0)
    train, val = spatial_train_val_split(df, val_fraction=0.25, block_size=2.0, random_state=3)
    assert np.intersect1d(train, val).size == 0
    assert np.union1d(train, val).size == len(df)
    assert abs(len(val) / len(df) - 0.25) < 0.05
    val_sites = set(df["site_id"].iloc[val])
    assert val_sites.isdisjoint(set(df["site_id"].iloc[train]))
    blocks = block_ids(df, block_size=2.0)
    assert set(blocks[val]).isdisjoint(set(blocks[train]))
    again = spatial_train_val_split(df, val_fraction=0.25, block_size=2.0, random_state=3)
    np.testing.assert_array_equal(val, again[1])


def test_spatial_train_val_split_keeps_train_nonempty() -> None:
    # two blocks of 1 and 100 rows and a greedy 0.9 target must still leave a training block
    df = pd.DataFrame({"x": np.r_[0.5, np.full(100, 1.5)], "y": 0.5})
    for seed in range(6):
        train, val = spatial_train_val_split(
            df, val_fraction=0.9, block_size=1.0, units="degrees", random_state=seed
        )
        assert len(train) > 0
        assert len(val) > 0


def test_spatial_train_val_split_errors() -> None:
    df = profile_table(20, seed=15)
    with pytest.raises(ProfileValidationError, match=r"val_fraction must lie in \(0, 1\)"):
        spatial_train_val_split(df, val_fraction=1.0)
    with pytest.raises(ProfileValidationError, match=r"^1 non-empty spatial blocks"):
        spatial_train_val_split(df, block_size=100.0)

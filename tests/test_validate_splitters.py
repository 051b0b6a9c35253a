"""Tests for socmap.validate.splitters: BlockKFold and spatial_train_val_split."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score

from socmap.errors import ConfigError, CRSError, ProfileValidationError
from socmap.validate.splitters import (
    METRES_PER_DEGREE,
    BlockKFold,
    ColumnFolds,
    block_ids,
    parse_block_size,
    resolve_block_size,
    spatial_train_val_split,
)


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


def check_folds(
    df: pd.DataFrame, cv: BlockKFold | ColumnFolds, groups: object = None
) -> np.ndarray:
    """Assert the structural invariants and return the fold id per row."""
    n = len(df)
    seen = np.zeros(n, dtype=int)
    fold = np.full(n, -1)
    splits = list(cv.split(df, groups=groups))
    assert len(splits) == cv.get_n_splits(df)
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
        ({"n_splits": 1}, r"1 folds: need an integer >= 2.*n_splits=5"),
        ({"block_size": 0.0}, "block_size must be a positive"),
        ({"block_size": float("nan")}, "block_size must be a positive"),
        ({"units": "km"}, "units must be one of"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    df = profile_table(50, seed=11)
    params: dict[str, object] = {"n_splits": 2, "block_size": 1.0, **kwargs}
    with pytest.raises(ConfigError, match=match):
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
    with pytest.raises(ConfigError, match=r"val_fraction must lie in \(0, 1\)"):
        spatial_train_val_split(df, val_fraction=1.0)
    with pytest.raises(ProfileValidationError, match=r"^1 non-empty spatial blocks"):
        spatial_train_val_split(df, block_size=100.0)


# ------------------------------------------------------------------ block sizes with units
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2km", (2000.0, "metres")),
        ("2000m", (2000.0, "metres")),
        (" 2.5 KM ", (2500.0, "metres")),
        ("1e3 metres", (1000.0, "metres")),
        ("0.1deg", (0.1, "degrees")),
        ("5°", (5.0, "degrees")),
        ("5 degrees", (5.0, "degrees")),
        (".5Deg", (0.5, "degrees")),
        ("2000", (2000.0, None)),
        (2000, (2000.0, None)),
        (np.float64(0.25), (0.25, None)),
    ],
)
def test_parse_block_size(text: object, expected: tuple[float, str | None]) -> None:
    value, units = parse_block_size(text)  # type: ignore[arg-type]
    assert units == expected[1]
    assert value == pytest.approx(expected[0], rel=1e-12)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2 miles", r"block size '2 miles' has an unknown unit 'miles'.*'2km'"),
        ("2kmm", r"unknown unit 'kmm'"),
        ("km", r"block size 'km' is not a number"),
        ("", r"block size '' is not a number"),
        ("two km", r"is not a number"),
        ("nan", r"is not a number"),
        ("-2km", r"block size '-2km' must be positive and finite"),
        ("0deg", r"block size '0deg' must be positive"),
        ("1e999m", r"must be positive and finite"),
        (0.0, r"block_size must be a positive finite number, got 0.0"),
        (float("inf"), r"got inf"),
        (True, r"got True"),
        (None, r"got None"),
    ],
)
def test_parse_block_size_rejects(text: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_block_size(text)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(
    value=st.floats(1e-6, 1e9, allow_nan=False, allow_infinity=False),
    unit=st.sampled_from(
        [
            ("m", 1.0, "metres"),
            ("km", 1e3, "metres"),
            ("deg", 1.0, "degrees"),
            ("°", 1.0, "degrees"),
            ("", 1.0, None),
        ]
    ),
    space=st.sampled_from(["", " "]),
)
def test_property_parse_round_trip(
    value: float, unit: tuple[str, float, str | None], space: str
) -> None:
    suffix, factor, units = unit
    parsed, got_units = parse_block_size(f"{value!r}{space}{suffix}")
    assert got_units == units
    assert parsed == pytest.approx(value * factor, rel=1e-12)


def test_resolve_block_size_conversion_numbers() -> None:
    assert METRES_PER_DEGREE == 111_320.0
    # metres on a geographic CRS: degrees of latitude
    assert resolve_block_size("2km", crs="EPSG:4326") == pytest.approx(2000 / 111_320)
    assert resolve_block_size("111.32km", units="degrees") == pytest.approx(1.0)
    # degrees on a projected CRS: 111,320 m per degree
    assert resolve_block_size("0.1deg", crs="EPSG:32755") == pytest.approx(11_132.0)
    assert resolve_block_size("1°", units="metres") == pytest.approx(111_320.0)
    # a projected CRS in US survey feet gets feet
    assert resolve_block_size("1km", crs="EPSG:2229") == pytest.approx(1000 / 0.3048006096)
    # same units, or a plain number: unchanged
    assert resolve_block_size("2km", crs="EPSG:32755") == 2000.0
    assert resolve_block_size("5deg", crs="EPSG:4326") == 5.0
    assert resolve_block_size(2000.0, crs="EPSG:4326") == 2000.0
    df = profile_table(5, seed=20, crs="EPSG:32755")
    assert resolve_block_size("3km", df) == 3000.0
    with pytest.raises(CRSError, match="units='metres'"):
        resolve_block_size("2km", df, units="degrees")
    with pytest.raises(CRSError, match="needs a CRS"):
        resolve_block_size("2km")


def lonlat_table(n_sites: int = 120, seed: int = 21) -> pd.DataFrame:
    """A region of about 40 x 45 km in lon/lat (Edgeroi-like: 149.6-150.0 E, 30.6-30.2 S)."""
    df = profile_table(n_sites, seed=seed, extent=0.4, crs="EPSG:4326")
    return df.assign(x=149.6 + df["x"], y=-30.6 + df["y"])


def test_kilometres_on_a_lonlat_table() -> None:
    df = lonlat_table()
    km = block_ids(df, block_size="2km")
    assert len(np.unique(km)) > 50
    # "2km" is exactly the same grid as the size in degrees of latitude
    np.testing.assert_array_equal(km, block_ids(df, block_size=2000 / METRES_PER_DEGREE))
    assert set(BlockKFold(5, "2km", random_state=0).fold_ids(df)) == set(range(5))
    # a plain 2000 is 2000 degrees here: one block, and a message that says how to fix it
    assert len(np.unique(block_ids(df, block_size=2000))) == 1
    with pytest.raises(ProfileValidationError) as err:
        BlockKFold(5, 2000).fold_ids(df)
    msg = str(err.value)
    assert msg.startswith("1 non-empty spatial blocks of size 2000 (2000 degrees) cannot fill 5")
    span = re.search(r"span ([\d.]+) x ([\d.]+) degrees .*about ([\d.]+) x ([\d.]+) km", msg)
    assert span is not None
    dx, dy = np.ptp(df["x"]), np.ptp(df["y"])
    assert float(span[1]) == pytest.approx(dx, rel=1e-3)
    assert float(span[2]) == pytest.approx(dy, rel=1e-3)
    assert float(span[4]) == pytest.approx(dy * 111.32, rel=1e-3)
    suggestion = re.search(r"such as '([^']+)' \(= '([^']+)'\)", msg)
    assert suggestion is not None and suggestion[1].endswith("deg") and suggestion[2].endswith("km")
    # the suggested sizes, in either unit, do make enough blocks
    for size in suggestion.groups():
        assert len(set(BlockKFold(5, size, random_state=0).fold_ids(df))) == 5
    with pytest.raises(ProfileValidationError, match=r"^1 non-empty.*'2000'.*such as '\d"):
        spatial_train_val_split(df, block_size="2000")
    train, val = spatial_train_val_split(df, block_size="2km", random_state=0)
    assert len(train) and len(val)


def test_too_few_blocks_message_keeps_the_users_units() -> None:
    df = lonlat_table()
    with pytest.raises(
        ProfileValidationError, match=r"size '500km' \(4\.49\d* degrees\).*'\d.*km' \(= '"
    ):
        BlockKFold(5, "500km").fold_ids(df)
    projected = profile_table(100, seed=22, extent=30_000.0, crs="EPSG:32755")
    with pytest.raises(
        ProfileValidationError, match=r"\(100 km\).*span 2\d\.\d+ x 2\d\.\d+ km.*'\d+km'"
    ):
        BlockKFold(5, "100km").fold_ids(projected)
    same = pd.DataFrame({"x": [1.0, 1.0], "y": [2.0, 2.0], "crs": "EPSG:4326"})
    with pytest.raises(ProfileValidationError, match="every profile is at one location"):
        spatial_train_val_split(same, block_size="1km")


def test_string_sizes_on_a_projected_table_match_numbers() -> None:
    df = profile_table(200, seed=23, extent=50_000.0, crs="EPSG:32755")
    plain = BlockKFold(n_splits=4, block_size=5_000.0, random_state=0).fold_ids(df)
    np.testing.assert_array_equal(plain, BlockKFold(4, "5km", random_state=0).fold_ids(df))
    np.testing.assert_array_equal(plain, BlockKFold(4, "5000 m", random_state=0).fold_ids(df))
    deg = block_ids(df, block_size="0.1deg")
    np.testing.assert_array_equal(deg, block_ids(df, block_size=11_132.0))
    assert "block_size='5km'" in repr(BlockKFold(4, "5km"))
    with pytest.raises(ConfigError, match="unknown unit 'miles'"):
        BlockKFold(4, "3 miles").fold_ids(df)


# ------------------------------------------------------------------ folds of one's own
def test_column_folds_are_honoured_exactly() -> None:
    df = profile_table(60, seed=24)
    site_fold = {s: ("north", "south", "west")[i % 3] for i, s in enumerate(df["site_id"].unique())}
    df["fold"] = df["site_id"].map(site_fold)
    cv = ColumnFolds("fold")
    assert cv.fold_labels(df) == ["north", "south", "west"]
    assert cv.get_n_splits(df) == 3
    fold = check_folds(df, cv)
    np.testing.assert_array_equal(np.asarray(cv.fold_labels(df))[fold], df["fold"].to_numpy())
    df["fold"] = df["site_id"].map({s: i % 3 + 1 for i, s in enumerate(site_fold)})
    assert ColumnFolds("fold").fold_labels(df) == [1, 2, 3]


def test_column_folds_errors() -> None:
    df = profile_table(30, seed=25, max_layers=3)
    df["fold"] = df["site_id"].str[-1].astype(int) % 2
    site = df["site_id"].value_counts().index[0]  # a profile with several rows
    split = df.copy()
    split.loc[split.index[np.flatnonzero(split["site_id"] == site)[-1]], "fold"] += 1
    with pytest.raises(
        ProfileValidationError,
        match=rf"profile '{site}' has rows in folds \[\d, \d\] of column 'fold'",
    ):
        ColumnFolds("fold").fold_ids(split)
    with pytest.raises(ProfileValidationError, match="fold column 'block' is not in the table"):
        ColumnFolds("block").fold_ids(df)
    holes = df.astype({"fold": float})
    holes.loc[holes.index[3], "fold"] = np.nan
    with pytest.raises(ProfileValidationError, match="missing at 1 rows, first at row 3"):
        ColumnFolds("fold").fold_ids(holes)
    with pytest.raises(ProfileValidationError, match="at least two folds"):
        ColumnFolds("fold").fold_ids(df.assign(fold=7))

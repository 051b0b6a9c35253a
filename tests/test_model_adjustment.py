"""Tests of the regional adjustment's arithmetic (``socmap.model.adjustment``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor

from socmap.errors import BundleError
from socmap.model.adjustment import RegionalAdjustment, with_prior


def _rows(depths: list[tuple[float, float]]) -> np.ndarray:
    """One band (its value is the row number), then top and bottom."""
    return np.array([[float(i), t, b] for i, (t, b) in enumerate(depths)])


def test_depth_offsets_go_to_their_own_interval_only():
    adj = RegionalAdjustment(
        ["b"], slope=2.0, level=0.1, depth_offsets={(0.0, 5.0): 0.5, (5.0, 15.0): -0.25}
    )
    rows = _rows([(0, 5), (5, 15), (15, 30), (0, 5), (0, 15)])
    add, spread = adj.constant(rows)
    np.testing.assert_array_equal(add, [0.6, -0.15, 0.1, 0.6, 0.1])
    np.testing.assert_array_equal(spread, np.zeros(5))
    mean, sd = adj.apply(rows, np.ones(5), np.full(5, 0.3))
    np.testing.assert_allclose(mean, 2.0 + add)
    np.testing.assert_allclose(sd, 0.6)


def test_a_forest_only_adjustment_ignores_the_network():
    x = _rows([(0, 5)] * 30)
    forest = RandomForestRegressor(5, random_state=0).fit(x, np.log1p(x[:, 0]))
    adj = RegionalAdjustment(["b"], slope=0.0, level=0.0, shrink=1.0, forest=forest)
    a = adj.apply(x, np.zeros(30), np.ones(30))
    b = adj.apply(x, np.full(30, 99.0), np.full(30, 7.0))
    for got, want in zip(a, b, strict=True):
        np.testing.assert_array_equal(got, want)
    per_tree = np.stack([t.predict(x) for t in forest.estimators_])
    np.testing.assert_allclose(a[0], per_tree.mean(axis=0))
    np.testing.assert_allclose(a[1], per_tree.std(axis=0))


def test_at_intervals_equals_constant_row_by_row():
    values = np.arange(6.0).reshape(6, 1)
    forest = RandomForestRegressor(4, random_state=1).fit(
        _rows([(0, 5)] * 3 + [(5, 15)] * 3), np.arange(6.0) / 10
    )
    adj = RegionalAdjustment(["b"], level=0.2, shrink=0.5, forest=forest,
                             depth_offsets={(5.0, 15.0): 0.3})  # fmt: skip
    intervals = [(0.0, 5.0), (5.0, 15.0)]
    add, spread = adj.at_intervals(values, intervals)
    assert add.shape == spread.shape == (2, 6)
    for k, (top, bottom) in enumerate(intervals):
        rows = np.column_stack([values, np.full(6, top), np.full(6, bottom)])
        want_add, want_spread = adj.constant(rows)
        np.testing.assert_allclose(add[k], want_add)
        np.testing.assert_allclose(spread[k], want_spread)


def test_a_forest_reading_the_prior_gets_it_before_the_depth_columns():
    rows = _rows([(0, 5)] * 40)
    prior = np.linspace(-1.0, 1.0, 40)
    # the trees see (band, prior, top, bottom); the target is the prior itself
    stacked = np.column_stack([rows[:, :1], prior, rows[:, 1:]])
    forest = RandomForestRegressor(10, random_state=0).fit(stacked, 2.0 * prior)
    adj = RegionalAdjustment(["b"], slope=0.0, forest=forest, prior_input=True)
    mean, _ = adj.apply(rows, prior, np.zeros(40))
    np.testing.assert_allclose(mean, forest.predict(stacked))
    assert np.corrcoef(mean, prior)[0, 1] > 0.99
    add, _ = adj.at_intervals(rows[:, :1], [(0.0, 5.0), (0.0, 5.0)], np.stack([prior, -prior]))
    np.testing.assert_allclose(add[0], mean)
    np.testing.assert_allclose(add[1], forest.predict(stacked * [1, -1, 1, 1]))
    with pytest.raises(BundleError, match=r"reads the network's prediction; pass prior="):
        adj.constant(rows)
    arrays, record = adj.to_record()
    assert RegionalAdjustment.from_record(record, arrays).prior_input
    # a record written before the field existed reads as a forest without the prior
    del record["prior_input"]
    assert not RegionalAdjustment.from_record(record, arrays).prior_input


def test_a_mixture_is_the_weighted_mean_of_its_parts_and_round_trips():
    rows = np.column_stack([np.arange(30.0), np.linspace(0, 1, 30), _rows([(0, 5)] * 30)[:, 1:]])
    prior, sd = np.linspace(1.0, 3.0, 30), np.full(30, 0.2)
    f1 = RandomForestRegressor(5, random_state=0).fit(rows[:, [0, 2, 3]], rows[:, 0] / 30)
    f2 = RandomForestRegressor(5, random_state=1).fit(with_prior(rows[:, [1, 2, 3]], prior),
                                                      prior + rows[:, 1])  # fmt: skip
    residual = RegionalAdjustment(["a"], slope=1.0, level=0.1, shrink=0.5, forest=f1)
    stacked = RegionalAdjustment(["b"], slope=0.0, forest=f2, prior_input=True)
    mixed = RegionalAdjustment.mix([(0.25, residual), (0.75, stacked)])
    assert list(mixed.bands) == ["a", "b"] and mixed.slope == 0.25 and mixed.prior_input
    mean, msd = mixed.apply(rows, prior, sd)
    m1, _ = residual.apply(rows[:, [0, 2, 3]], prior, sd)
    m2, _ = stacked.apply(rows[:, [1, 2, 3]], prior, sd)
    np.testing.assert_allclose(mean, 0.25 * m1 + 0.75 * m2)
    s1 = residual.constant(rows[:, [0, 2, 3]])[1]
    s2 = stacked.constant(rows[:, [1, 2, 3]], prior)[1]
    np.testing.assert_allclose(msd, np.sqrt((0.25 * sd) ** 2 + (0.25 * s1) ** 2 + (0.75 * s2) ** 2))
    arrays, record = mixed.to_record()
    again = RegionalAdjustment.from_record(record, arrays)
    np.testing.assert_array_equal(again.apply(rows, prior, sd)[0], mean)
    with pytest.raises(BundleError, match=r"weights \[0.5, 0.6\] must be positive and sum to 1"):
        RegionalAdjustment.mix([(0.5, residual), (0.6, stacked)])
    with pytest.raises(BundleError, match="two or more adjustments that are not mixtures"):
        RegionalAdjustment.mix([(0.5, mixed), (0.5, stacked)])


def test_an_unknown_forest_target_is_refused():
    with pytest.raises(BundleError, match=r"forest target 'sqrt' must be one of"):
        RegionalAdjustment(target="sqrt")


@pytest.mark.parametrize("target", ["log1p", "identity"])
def test_streamed_tree_moments_equal_the_stack_of_every_tree(target, monkeypatch):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.abs(X[:, 0] + rng.normal(size=300)) if target == "identity" else X[:, 0]
    forest = RandomForestRegressor(n_estimators=123, random_state=0).fit(X, y)  # 3 blocks
    rows = rng.normal(size=(500, 4))
    mean, spread = RegionalAdjustment(forest=forest, target=target).forest_part(rows)
    per_tree = np.stack([t.predict(rows) for t in forest.estimators_])
    if target == "identity":
        want = np.log1p(np.clip(per_tree.mean(0), 0, None))
        want_spread = np.log1p(np.clip(per_tree, 0, None)).std(0)
    else:
        want, want_spread = per_tree.mean(0), per_tree.std(0)
    np.testing.assert_allclose(mean, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spread, want_spread, rtol=0, atol=1e-12)
    assert spread.min() > 0
    # the blocks are fixed, so one thread gives the very same bits as several
    monkeypatch.setattr("socmap.model.adjustment.os.cpu_count", lambda: 1)
    again = RegionalAdjustment(forest=forest, target=target).forest_part(rows)
    np.testing.assert_array_equal(again[0], mean)
    np.testing.assert_array_equal(again[1], spread)

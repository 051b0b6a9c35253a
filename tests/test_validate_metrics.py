"""Tests for socmap.validate.metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from socmap.errors import ConfigError, ProfileValidationError
from socmap.validate.metrics import (
    ccc,
    interval_metrics,
    mae,
    me,
    metrics_table,
    mpiw,
    picp,
    r2,
    regression_metrics,
    rmse,
)


def pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.gamma(2.0, 5.0, n)
    pred = 0.8 * obs + rng.normal(1.0, 2.0, n)
    return obs, pred


def test_hand_computed_values() -> None:
    obs = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([2.0, 2.0, 2.0, 6.0])
    # errors p - o: 1, 0, -1, 2
    assert mae(obs, pred) == pytest.approx(1.0)
    assert rmse(obs, pred) == pytest.approx(math.sqrt(6 / 4))
    assert me(obs, pred) == pytest.approx(0.5)
    # SST = 5, SSE = 6
    assert r2(obs, pred) == pytest.approx(1 - 6 / 5)
    # means 2.5 and 3.0; cov = (−1.5·−1 + −0.5·−1 + 0.5·−1 + 1.5·3)/4 = 1.5
    # var_o = 1.25, var_p = 3.0 → ccc = 3 / (1.25 + 3 + 0.25)
    assert ccc(obs, pred) == pytest.approx(3.0 / 4.5)


def test_against_sklearn() -> None:
    obs, pred = pairs(500, seed=1)
    assert mae(obs, pred) == pytest.approx(mean_absolute_error(obs, pred))
    assert rmse(obs, pred) == pytest.approx(math.sqrt(mean_squared_error(obs, pred)))
    assert r2(obs, pred) == pytest.approx(r2_score(obs, pred))


def test_ccc_against_direct_formula_and_bias() -> None:
    obs, pred = pairs(300, seed=2)
    r = np.corrcoef(obs, pred)[0, 1]
    so, sp = obs.std(), pred.std()
    direct = 2 * r * so * sp / (so**2 + sp**2 + (obs.mean() - pred.mean()) ** 2)
    assert ccc(obs, pred) == pytest.approx(direct)
    assert ccc(obs, obs) == pytest.approx(1.0)
    assert ccc(obs, obs + 1.0) < 1.0
    assert ccc(obs, obs + 1.0) < ccc(obs, obs + 0.1)
    # bias does not change Pearson r but does lower CCC
    assert ccc(obs, 2 * obs) < np.corrcoef(obs, 2 * obs)[0, 1]


def test_nan_pairs_are_dropped_and_counted() -> None:
    obs, pred = pairs(100, seed=3)
    obs_n, pred_n = obs.copy(), pred.copy()
    obs_n[[1, 5]] = np.nan
    pred_n[[5, 9, 20]] = np.nan
    keep = np.ones(100, dtype=bool)
    keep[[1, 5, 9, 20]] = False
    m = regression_metrics(obs_n, pred_n)
    assert m["n"] == 96
    assert m["n_missing"] == 4
    ref = regression_metrics(obs[keep], pred[keep])
    for key in ("mae", "rmse", "me", "r2", "ccc"):
        assert m[key] == pytest.approx(ref[key])
    assert math.isnan(mae([np.nan], [1.0]))


def test_degenerate_cases() -> None:
    assert math.isnan(r2([2.0, 2.0], [1.0, 3.0]))  # constant observations: undefined
    assert math.isnan(ccc([2.0, 2.0], [2.0, 2.0]))
    with pytest.raises(ProfileValidationError, match="same number of values"):
        mae([1.0, 2.0], [1.0])


def test_picp_and_mpiw() -> None:
    obs = np.array([0.0, 1.0, 2.0, 3.0, np.nan])
    lo = np.array([-1.0, 1.0, 2.5, 0.0, 0.0])
    hi = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    # inside: 0 in [-1,1] yes; 1 in [1,2] yes (bound included); 2 in [2.5,3] no; 3 in [0,2] no
    assert picp(obs, lo, hi) == pytest.approx(0.5)
    assert mpiw(lo, hi) == pytest.approx(np.mean(hi - lo))
    with pytest.raises(
        ProfileValidationError, match=r"lower bound exceeds upper bound.*\(2\.0, 1\.0\)"
    ):
        picp([1.0], [2.0], [1.0])


def test_interval_metrics_gaussian() -> None:
    rng = np.random.default_rng(4)
    sd = rng.uniform(0.5, 2.0, 40_000)
    obs = rng.normal(0.0, sd)
    t = interval_metrics(obs, np.zeros_like(obs), sd)
    assert t["level"].tolist() == [0.5, 0.8, 0.9, 0.95]
    np.testing.assert_allclose(t["picp"], t["level"], atol=0.01)
    z = norm.ppf(0.5 + t["level"].to_numpy() / 2)
    np.testing.assert_allclose(t["mpiw"], 2 * z * sd.mean())
    assert (t["n"] == 40_000).all()
    # under-dispersed sd: coverage at 90 % equals P(|Z| < z90 / 2)
    t2 = interval_metrics(obs, np.zeros_like(obs), sd / 2, levels=[0.9])
    expected = 2 * norm.cdf(norm.ppf(0.95) / 2) - 1
    assert t2["picp"].iloc[0] == pytest.approx(expected, abs=0.01)


def test_interval_metrics_bounds_and_errors() -> None:
    obs = np.array([0.0, 1.0, 2.0, np.nan])
    bounds = {0.5: (obs - 0.5, obs + 0.5), 0.9: (np.full(4, 5.0), np.full(4, 6.0))}
    t = interval_metrics(obs, bounds=bounds)
    assert t["picp"].tolist() == [1.0, 0.0]
    assert t["mpiw"].tolist() == [1.0, 1.0]
    assert t["n"].tolist() == [3, 3]
    assert t["n_missing"].tolist() == [1, 1]
    with pytest.raises(ConfigError, match="either mean= and sd="):
        interval_metrics(obs)
    with pytest.raises(ConfigError, match="either mean= and sd="):
        interval_metrics(obs, obs, obs, bounds=bounds)
    with pytest.raises(ConfigError, match=r"levels must lie in \(0, 1\)"):
        interval_metrics(obs, obs, np.ones(4), levels=[90])
    with pytest.raises(ProfileValidationError, match="sd must be >= 0"):
        interval_metrics(obs, obs, -np.ones(4))


def test_metrics_table_tidy_by_groups() -> None:
    obs, pred = pairs(200, seed=5)
    df = pd.DataFrame(
        {
            "obs": obs,
            "pred": pred,
            "sd": np.full(200, 2.0),
            "fold": np.arange(200) % 4,
            "depth": np.where(np.arange(200) < 120, "0-5", "5-15"),
        }
    )
    df.loc[3, "pred"] = np.nan
    t = metrics_table(df, by=["fold", "depth"], sd="sd", levels=[0.5, 0.9])
    assert list(t.columns) == ["fold", "depth", "metric", "value", "n"]
    expected_metrics = {"mae", "rmse", "me", "r2", "ccc", "n_missing"}
    expected_metrics |= {"picp_50", "mpiw_50", "picp_90", "mpiw_90"}
    assert set(t["metric"]) == expected_metrics
    assert len(t) == 8 * len(expected_metrics)  # 4 folds x 2 depths
    sel = (df["fold"] == 3) & (df["depth"] == "0-5")
    row = t[(t.fold == 3) & (t.depth == "0-5") & (t.metric == "rmse")]
    assert row["value"].iloc[0] == pytest.approx(rmse(df["obs"][sel], df["pred"][sel]))
    assert not np.isnan(row["value"].iloc[0])
    assert row["n"].iloc[0] == sel.sum() - 1
    miss = t[(t.fold == 3) & (t.depth == "0-5") & (t.metric == "n_missing")]
    assert miss["value"].iloc[0] == 1.0  # row 3 is fold 3, depth 0-5
    overall = metrics_table(df)
    assert list(overall.columns) == ["metric", "value", "n"]
    assert overall.set_index("metric").loc["mae", "value"] == pytest.approx(
        mae(df["obs"], df["pred"])
    )


def test_metrics_table_keeps_missing_group_keys() -> None:
    df = pd.DataFrame({"g": ["a", None, "a"], "obs": [1.0, 2.0, 3.0], "pred": [1.0, 2.5, 3.0]})
    t = metrics_table(df, by="g")
    assert t[t.metric == "mae"]["n"].sum() == 3
    with pytest.raises(ProfileValidationError, match=r"needs columns \['nope'\]"):
        metrics_table(df, by="nope")


@settings(max_examples=50, deadline=None)
@given(
    obs=arrays(np.float64, 20, elements=st.floats(-1e3, 1e3)),
    noise=arrays(np.float64, 20, elements=st.floats(-10, 10)),
)
def test_property_metric_identities(obs: np.ndarray, noise: np.ndarray) -> None:
    pred = obs + noise
    assert rmse(obs, pred) >= mae(obs, pred) - 1e-9
    assert mae(obs, pred) >= abs(me(obs, pred)) - 1e-9
    c = ccc(obs, pred)
    if not math.isnan(c):
        assert -1 - 1e-9 <= c <= 1 + 1e-9
    if np.ptp(obs) > 1e-6:
        assert r2(obs, obs) == pytest.approx(1.0)
        assert r2(obs, pred) == pytest.approx(r2_score(obs, pred), abs=1e-9)

"""Tests for socmap.depth: equal-area spline harmonisation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from socmap.catalog import DepthSet, embedded_data_dir, get_depth_set
from socmap.depth import (
    STATUSES,
    Harmonised,
    ProfileSpline,
    SplineHarmoniser,
    fit_spline,
    harmonise,
)
from socmap.errors import CatalogError, ProfileValidationError

INF = math.inf
GSM = get_depth_set("globalsoilmap")


# --------------------------------------------------------------------------------------------
# An independent, loop-based transcription of mpspline2's mpspline_est1 / mpspline_fit1
# (explicit inverses, per-depth membership search), used as the reference.
# --------------------------------------------------------------------------------------------


def ref_coefficients(u: np.ndarray, v: np.ndarray, y: np.ndarray, lam: float) -> tuple:
    n = len(u)
    nb = n - 1
    th = v - u
    gp = u[1:] - v[:-1]
    r = np.zeros((nb, nb))
    for i in range(nb):
        r[i, i] = 2 * th[i + 1] + 2 * th[i] + 6 * gp[i]
        if i + 1 < nb:
            r[i, i + 1] = r[i + 1, i] = th[i + 1]
    q = np.zeros((nb, n))
    for i in range(nb):
        q[i, i], q[i, i + 1] = -1.0, 1.0
    r_inv = np.linalg.inv(r)
    z = np.eye(n) + 6 * n * lam * q.T @ r_inv @ q
    s_bar = np.linalg.solve(z, y)
    b = 6 * r_inv @ q @ s_bar
    b0, b1 = np.r_[0.0, b], np.r_[b, 0.0]
    gamma = (b1 - b0) / (2 * th)
    alfa = s_bar - b0 * th / 2 - gamma * th**2 / 3
    return s_bar, alfa, b0, b1, gamma


def ref_eval(k: float, u, v, coefs) -> float:
    _, alfa, b0, b1, gamma = coefs
    if k < u[0] or k > v[-1]:
        return math.nan
    member = [i for i in range(len(u)) if u[i] <= k < v[i]]
    if k == v[-1]:
        member = [len(u) - 1]
    if member:
        h = member[0]
        return alfa[h] + b0[h] * (k - u[h]) + gamma[h] * (k - u[h]) ** 2
    bh = max(i for i in range(len(u)) if v[i] <= k)
    nh = min(i for i in range(len(u)) if u[i] >= k)
    phi = alfa[nh] - b1[bh] * (u[nh] - v[bh])
    return phi + b1[bh] * (k - v[bh])


def ref_interval_means(u, v, y, lam, intervals, vlow=-INF, vhigh=INF, step=0.01):
    """Clamped spline means by midpoint quadrature on a fine grid (covered part only)."""
    u, v, y = (np.asarray(a, dtype=float) for a in (u, v, y))
    coefs = (y, y, np.zeros(1), np.zeros(1), np.zeros(1)) if len(u) == 1 else None
    if coefs is None:
        coefs = ref_coefficients(u, v, y, lam)
    out = []
    for top, bottom in intervals:
        z = np.arange(top + step / 2, bottom, step)
        vals = np.array([ref_eval(k, u, v, coefs) for k in z])
        vals = np.clip(vals, vlow, vhigh)
        out.append(np.nanmean(vals) if np.isfinite(vals).any() else math.nan)
    return np.array(out)


def profile_frame(site: str, tops, bottoms, values, **extra) -> pd.DataFrame:
    df = pd.DataFrame({"site_id": site, "top_cm": tops, "bottom_cm": bottoms, "soc_g_kg": values})
    for k, val in extra.items():
        df[k] = val
    return df


# --------------------------------------------------------------------------------------------
# Hypothesis strategies: profiles as integer-cm horizons (as in real tables), optional gaps
# --------------------------------------------------------------------------------------------


@st.composite
def profiles(draw, max_n: int = 7, gaps: bool = True, lo: float = 0.1, hi: float = 200.0):
    n = draw(st.integers(1, max_n))
    top = draw(st.integers(0, 20))
    tops, bottoms = [], []
    for _ in range(n):
        th = draw(st.integers(1, 40))
        tops.append(top)
        bottoms.append(top + th)
        top = top + th + (draw(st.integers(0, 15)) if gaps else 0)
    values = draw(
        st.lists(st.floats(lo, hi, allow_nan=False, allow_infinity=False), min_size=n, max_size=n)
    )
    return np.array(tops, float), np.array(bottoms, float), np.array(values, float)


def own_intervals(u, v) -> DepthSet:
    return DepthSet(name="horizons", intervals=tuple(zip(u.tolist(), v.tolist(), strict=True)))


def spline_min(spl: ProfileSpline) -> float:
    """Exact minimum of the unclamped spline: piece ends and quadratic vertices."""
    pts = [spl.top, spl.bottom]
    with np.errstate(divide="ignore", invalid="ignore"):
        vert = spl.top - spl.b0 / (2 * spl.gamma)
    ok = np.isfinite(vert) & (vert > spl.top) & (vert < spl.bottom)
    pts.append(vert[ok])
    return float(np.nanmin(spl(np.concatenate(pts))))


# --------------------------------------------------------------------------------------------
# Published example and the independent reference
# --------------------------------------------------------------------------------------------

README_U = [0, 20, 40, 60]
README_V = [10, 30, 50, 70]
README_Y = [6, 4, 3, 10]
# mpspline2 README (mpspline_tidy(dat, var_name = 'VAL')$est_dcm), lam 0.1, GlobalSoilMap.
README_DCM = [6.105160, 5.618341, 4.316876, 4.192058, 9.732400]


def test_reproduces_mpspline2_readme_with_its_1cm_rule():
    spl = fit_spline(README_U, README_V, README_Y, lam=0.1)
    # mpspline2 evaluates at the top of each 1-cm slice, down to the last bottom, then
    # averages the clamped slices of each interval with na.rm = TRUE.
    k = np.arange(200, dtype=float)
    f = np.where(k < README_V[-1], np.clip(spl(k), 0, 1000), np.nan)
    d = [0, 5, 15, 30, 60, 100]
    dcm = [np.nanmean(f[d[i] : d[i + 1]]) for i in range(5)]
    np.testing.assert_allclose(dcm, README_DCM, atol=5e-7)
    assert np.all(np.isnan(f[70:200]))  # 100-200 cm is NaN in mpspline2 too


def test_readme_example_exact_means_are_close_to_the_1cm_ones():
    df = profile_frame("1", README_U, README_V, README_Y)
    h = harmonise(df)
    got = h.table["soc_g_kg"].to_numpy()
    assert math.isnan(got[5])  # 100-200: nothing below 70 cm
    np.testing.assert_allclose(got[:5], README_DCM, rtol=0.03)
    ref = ref_interval_means(README_U, README_V, README_Y, 0.1, GSM.intervals[:5], 0, 1000)
    np.testing.assert_allclose(got[:5], ref, rtol=1e-5)
    # 60-100 is covered by 60-70 only: the mean is the fitted 60-70 value, coverage 1/4.
    assert got[4] == pytest.approx(h.horizons["fitted_soc_g_kg"].iloc[3], rel=1e-12)
    assert h.table["coverage_soc_g_kg"].iloc[4] == pytest.approx(0.25)


def test_coefficients_match_reference_transcription():
    u, v, y = (
        np.array([0.0, 7, 19, 40, 41]),
        np.array([7.0, 15, 40, 41, 90]),
        np.array([3.0, 9, 1, 7, 2]),
    )
    spl = fit_spline(u, v, y, lam=0.3)
    s_bar, alfa, b0, b1, gamma = ref_coefficients(u, v, y, 0.3)
    for got, want in zip(
        (spl.fitted, spl.alfa, spl.b0, spl.b1, spl.gamma), (s_bar, alfa, b0, b1, gamma), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(profiles(max_n=5, hi=150.0), st.sampled_from([0.0, 0.1, 1.0]))
def test_exact_means_match_reference_quadrature(profile, lam):
    u, v, y = profile
    df = profile_frame("p", u, v, y)
    got = harmonise(df, "globalsoilmap", lam=lam, vlow=0.0, vhigh=150.0).table["soc_g_kg"]
    ref = ref_interval_means(u, v, y, lam, GSM.intervals, 0.0, 150.0, step=0.02)
    np.testing.assert_allclose(got.to_numpy(), ref, rtol=1e-4, atol=1e-4 * (1 + y.max()))


# --------------------------------------------------------------------------------------------
# Mass preservation
# --------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(profiles(gaps=True))
def test_lam0_returns_each_horizon_value(profile):
    # With lam = 0 and no clamping, the spline's mean over each horizon is the observation.
    u, v, y = profile
    h = harmonise(profile_frame("p", u, v, y), own_intervals(u, v), lam=0.0, vlow=-INF, vhigh=INF)
    np.testing.assert_allclose(h.table["soc_g_kg"], y, rtol=1e-6)
    np.testing.assert_allclose(h.horizons["fitted_soc_g_kg"], y, rtol=1e-12)
    np.testing.assert_allclose(h.table["coverage_soc_g_kg"], 1.0)


@settings(max_examples=60, deadline=None)
@given(profiles(gaps=True, lo=1.0, hi=100.0))
def test_lam0_with_default_clamps_wherever_the_spline_stays_in_range(profile):
    # "Wherever the data allow": values within [vlow, vhigh] AND a spline that does not
    # overshoot them; then clamping is inactive and mass is preserved with the defaults.
    u, v, y = profile
    table = harmonise(profile_frame("p", u, v, y), own_intervals(u, v), lam=0.0).table
    if spline_min(fit_spline(u, v, y, lam=0.0)) >= 0.0:
        np.testing.assert_allclose(table["soc_g_kg"], y, rtol=1e-6)
    else:  # clamping lifted the negative part: the mean can only go up
        assert np.all(table["soc_g_kg"].to_numpy() >= y * (1 - 1e-9))


@settings(max_examples=60, deadline=None)
@given(profiles(gaps=True), st.floats(0.001, 10.0))
def test_lam_positive_means_equal_reported_fitted_means(profile, lam):
    u, v, y = profile
    h = harmonise(profile_frame("p", u, v, y), own_intervals(u, v), lam=lam, vlow=-INF, vhigh=INF)
    fitted = h.horizons["fitted_soc_g_kg"].to_numpy()
    assert np.all(np.isfinite(h.table["soc_g_kg"]))
    np.testing.assert_allclose(h.table["soc_g_kg"], fitted, rtol=1e-6, atol=1e-9 * y.max())
    rmse = h.sites["rmse_soc_g_kg"].iloc[0]
    if len(u) == 1:
        assert math.isnan(rmse)  # not splined, as in mpspline2
    else:
        assert rmse == pytest.approx(np.sqrt(np.mean((y - fitted) ** 2)), rel=1e-9, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    profiles(gaps=True),
    st.floats(0.0, 1000.0),
    st.sampled_from(["globalsoilmap", "vm0033", "0-30"]),
)
def test_constant_profile_gives_the_constant_everywhere_covered(profile, c, depths):
    u, v, _ = profile
    h = harmonise(profile_frame("p", u, v, np.full(len(u), c)), depths)
    dset = get_depth_set(depths)
    vals = h.table["soc_g_kg"].to_numpy()
    covered = np.array([min(b, v[-1]) > max(t, u[0]) for t, b in dset.intervals])
    assert np.array_equal(np.isfinite(vals), covered)
    np.testing.assert_allclose(vals[covered], c, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Conventions
# --------------------------------------------------------------------------------------------


def test_single_horizon_is_copied_to_the_intervals_it_covers():
    df = pd.concat(
        [profile_frame("one", [0], [30], [12.5]), profile_frame("part", [0], [20], [7.0])]
    )
    h = harmonise(df)
    one = h.table[h.table.site_id == "one"]
    np.testing.assert_allclose(one["soc_g_kg"].iloc[:3], 12.5)
    assert one["soc_g_kg"].iloc[3:].isna().all()  # not 30-60 (mpspline2's off-by-one)
    part = h.table[h.table.site_id == "part"]
    assert part["soc_g_kg"].iloc[2] == 7.0  # 15-30 covered 15-20
    assert part["coverage_soc_g_kg"].iloc[2] == pytest.approx(1 / 3)
    assert h.sites.set_index("site_id").loc["one", "status"] == "single_horizon"
    assert math.isnan(h.sites["rmse_soc_g_kg"].iloc[0])
    assert h.horizons["fitted_soc_g_kg"].tolist() == [12.5, 7.0]
    assert h.summary()["single_horizon"] == 2


def test_composite_core_copies_onto_vm0033():
    h = harmonise(profile_frame("core", [0], [30], [41.2]), "vm0033")
    assert h.table["top_cm"].tolist() == [0, 15, 30, 50]
    np.testing.assert_array_equal(h.table["soc_g_kg"].iloc[:2], [41.2, 41.2])
    assert h.table["soc_g_kg"].iloc[2:].isna().all()


def test_fine_increments_onto_vm0033_close_to_thickness_weighted_means():
    rng = np.random.default_rng(20240607)
    tops = np.arange(0, 100, 5.0)
    mid = tops + 2.5
    soc = 60 * np.exp(-mid / 35) + 8 + rng.normal(0, 1.5, tops.size)
    df = profile_frame("core", tops, tops + 5, soc)
    vm = get_depth_set("vm0033")
    weighted = np.array([soc[(tops >= t) & (tops + 5 <= b)].mean() for t, b in vm.intervals])
    smooth = harmonise(df, "vm0033").table["soc_g_kg"].to_numpy()
    np.testing.assert_allclose(smooth, weighted, rtol=0.02)
    exact = harmonise(df, "vm0033", lam=0.0).table["soc_g_kg"].to_numpy()
    np.testing.assert_allclose(exact, weighted, rtol=1e-9)


def test_overlapping_horizons_are_flagged_left_out_and_counted():
    df = pd.concat(
        [
            profile_frame("good", [0, 10], [10, 40], [10.0, 5.0]),
            profile_frame("overlap", [0, 5], [10, 20], [10.0, 5.0]),
            profile_frame("dup", [0, 0, 10], [10, 10, 30], [10.0, 10.0, 4.0]),
        ]
    )
    h = harmonise(df)
    status = h.sites.set_index("site_id")["status"]
    assert status.to_dict() == {
        "good": "ok",
        "overlap": "overlapping_horizons",
        "dup": "overlapping_horizons",
    }
    assert h.summary()["overlapping_horizons"] == 2
    assert h.summary()["ok"] == 1
    assert len(h.table) == 3 * len(GSM.intervals)  # never dropped
    left_out = h.table[h.table.site_id != "good"]
    assert left_out["soc_g_kg"].isna().all()
    assert h.table[h.table.site_id == "good"]["soc_g_kg"].iloc[:3].notna().all()
    assert h.horizons.loc[h.horizons.site_id != "good", "fitted_soc_g_kg"].isna().all()


def test_overlap_is_judged_on_the_horizons_with_a_value_for_that_column():
    # mpspline2 removes NaN rows first: the overlapping horizon without SOC does not count.
    df = profile_frame("p", [0, 5, 10], [10, 20, 30], [10.0, np.nan, 5.0])
    df["bd_g_cm3"] = [1.2, 1.3, 1.4]
    h = harmonise(df, value_cols=("soc_g_kg", "bd_g_cm3"))
    row = h.sites.iloc[0]
    assert row["status_soc_g_kg"] == "ok" and row["n_used_soc_g_kg"] == 2
    assert row["status_bd_g_cm3"] == "overlapping_horizons"
    assert row["status"] == "ok"  # the first value column
    assert h.table["bd_g_cm3"].isna().all()


def test_no_extrapolation_above_first_or_below_last_horizon():
    u, v, y = [20, 35], [35, 50], [8.0, 4.0]
    h = harmonise(profile_frame("deep", u, v, y))
    vals = h.table["soc_g_kg"].to_numpy()
    assert np.isnan(vals[0]) and np.isnan(vals[1])  # 0-5, 5-15 above 20 cm
    assert np.isnan(vals[4]) and np.isnan(vals[5])  # 60-100, 100-200 below 50 cm
    spl = fit_spline(u, v, y)
    # Partly covered intervals: the mean over the covered part only.
    assert vals[2] == pytest.approx(spl.mean([20], [30])[0], rel=1e-12)
    assert vals[3] == pytest.approx(spl.mean([30], [50])[0], rel=1e-12)
    np.testing.assert_allclose(h.table["coverage_soc_g_kg"], [0, 0, 10 / 15, 20 / 30, 0, 0])
    assert np.isnan(spl([0.0, 19.9, 50.1])).all()


def test_clamping_is_pointwise_before_averaging():
    # A sharp drop to a tiny value makes the exact spline undershoot below zero.
    u, v, y = [0, 5, 10], [5, 10, 50], [100.0, 0.1, 0.1]
    spl = fit_spline(u, v, y, lam=0.0)
    assert spline_min(spl) < 0
    df = profile_frame("p", u, v, y)
    clamped = harmonise(df, lam=0.0).table["soc_g_kg"].to_numpy()
    free = harmonise(df, lam=0.0, vlow=-INF, vhigh=INF).table["soc_g_kg"].to_numpy()
    finite = np.isfinite(clamped)
    assert np.all(clamped[finite] >= 0)
    assert np.any(clamped[finite] > free[finite] + 1e-6)  # the negative part was lifted
    ref = ref_interval_means(u, v, y, 0.0, GSM.intervals, 0.0, 1000.0, step=0.005)
    np.testing.assert_allclose(clamped, ref, rtol=1e-4, atol=1e-5)
    # A cap below the spline's peak but above every horizon value cuts the overshoot only.
    capped = harmonise(df, lam=0.0, vhigh=100.5).table["soc_g_kg"].to_numpy()
    assert np.max(spl(np.linspace(0, 5, 101))) > 100.5
    assert np.nanmax(capped) <= 100.5 + 1e-12
    assert capped[0] < free[0] - 1e-6


def test_horizon_values_outside_the_clamp_range_leave_the_site_out_and_are_counted():
    """1e12 g/kg (or a negative content) is a data error: never clamped and reported ok."""
    df = pd.concat(
        [
            profile_frame("good", [0, 10], [10, 40], [10.0, 5.0]),
            profile_frame("huge", [0, 10], [10, 40], [1e12, 5.0]),
            profile_frame("negative", [0], [30], [-2.0]),
        ]
    )
    h = harmonise(df)
    status = h.sites.set_index("site_id")["status"].to_dict()
    assert status == {"good": "ok", "huge": "out_of_range", "negative": "out_of_range"}
    assert h.summary()["out_of_range"] == 2
    assert len(h.table) == 3 * len(GSM.intervals)  # never dropped
    assert h.table.loc[h.table.site_id != "good", "soc_g_kg"].isna().all()
    # Turning the clamp off accepts any finite value.
    free = harmonise(df, vlow=-INF, vhigh=INF).sites.set_index("site_id")["status"]
    assert (free == "out_of_range").sum() == 0


def test_gaps_are_bridged_linearly_and_continuously():
    u, v, y = [0, 20, 40], [10, 30, 50], [6.0, 4.0, 3.0]
    spl = fit_spline(u, v, y)
    z = np.array([12.0, 15.0, 18.0])
    f = spl(z)
    assert f[1] - f[0] == pytest.approx(f[2] - f[1], rel=1e-9)  # straight line in the gap
    assert spl([10 - 1e-9])[0] == pytest.approx(spl([10.0])[0], abs=1e-6)  # continuous
    assert spl([20 - 1e-9])[0] == pytest.approx(spl([20.0])[0], abs=1e-6)
    gap = DepthSet(name="gap", intervals=((10, 20),))
    h = harmonise(profile_frame("p", u, v, y), gap)
    assert h.table["soc_g_kg"].iloc[0] == pytest.approx((spl([10.0])[0] + spl([20.0])[0]) / 2)
    assert h.table["coverage_soc_g_kg"].iloc[0] == 1.0


def test_nan_values_are_ignored_per_column():
    df = profile_frame("p", [0, 10, 30, 60], [10, 30, 60, 100], [20.0, 12.0, 6.0, 3.0])
    df["bd_g_cm3"] = [1.1, np.nan, 1.4, 1.5]
    both = harmonise(df, value_cols=("soc_g_kg", "bd_g_cm3"))
    soc_only = harmonise(df[["site_id", "top_cm", "bottom_cm", "soc_g_kg"]])
    bd_rows = df.dropna(subset=["bd_g_cm3"])
    bd_only = harmonise(bd_rows, value_cols=("bd_g_cm3",))
    np.testing.assert_array_equal(both.table["soc_g_kg"], soc_only.table["soc_g_kg"])
    np.testing.assert_array_equal(both.table["bd_g_cm3"], bd_only.table["bd_g_cm3"])
    site = both.sites.iloc[0]
    assert (site["n_used_soc_g_kg"], site["n_used_bd_g_cm3"]) == (4, 3)
    assert math.isnan(both.horizons["fitted_bd_g_cm3"].iloc[1])
    assert both.horizons["fitted_soc_g_kg"].notna().all()


def test_all_nan_column_is_no_data_not_dropped():
    df = profile_frame("p", [0, 10], [10, 30], [np.nan, np.nan])
    h = harmonise(df)
    assert h.sites["status"].tolist() == ["no_data"]
    assert h.summary()["no_data"] == 1
    assert len(h.table) == len(GSM.intervals) and h.table["soc_g_kg"].isna().all()


@pytest.mark.parametrize(
    ("tops", "bottoms"),
    [([0, -5], [10, 0]), ([0, 10], [10, 10]), ([0, 20], [10, 15]), ([0, np.nan], [10, 30])],
)
def test_invalid_depths_leave_the_site_out_and_are_counted(tops, bottoms):
    df = pd.concat(
        [profile_frame("bad", tops, bottoms, [5.0, 4.0]), profile_frame("good", [0], [10], [3.0])]
    )
    h = harmonise(df)
    bad = h.sites.set_index("site_id").loc["bad"]
    assert bad["status"] == "invalid_depths" and bad["n_invalid_depth"] == 1
    assert h.summary()["invalid_depths"] == 1 and h.summary()["single_horizon"] == 1
    assert h.table.loc[h.table.site_id == "bad", "soc_g_kg"].isna().all()
    assert (h.table.site_id == "bad").sum() == len(GSM.intervals)


def test_float_noise_between_horizons_is_not_an_overlap():
    # Edgeroi-style float32 depths: 89.99999761581421 below a horizon ending at 90.
    df = profile_frame("p", [0.0, 30.0, 89.99999761581421], [30.0, 90.0, 100.0], [9.0, 5.0, 2.0])
    h = harmonise(df)
    assert h.sites["status"].tolist() == ["ok"]


def test_profile_deeper_than_every_interval_is_outside_depths():
    h = harmonise(profile_frame("p", [250, 300], [300, 350], [1.0, 0.5]))
    assert h.sites["status"].tolist() == ["outside_depths"]
    assert h.table["soc_g_kg"].isna().all()
    assert sum(h.summary().values()) == 1 and set(h.summary()) == set(STATUSES)


@settings(max_examples=20, deadline=None)
@given(st.lists(profiles(max_n=6), min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_batched_equals_one_profile_at_a_time_and_row_order_does_not_matter(profs, rnd):
    frames = [profile_frame(f"s{i}", u, v, y) for i, (u, v, y) in enumerate(profs)]
    df = pd.concat(frames, ignore_index=True)
    h = harmonise(df)
    for i, (u, v, y) in enumerate(profs):
        want = fit_spline(u, v, y).mean(GSM.tops, GSM.bottoms, vlow=0.0, vhigh=1000.0)
        got = h.table.loc[h.table.site_id == f"s{i}", "soc_g_kg"].to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    shuffled = df.iloc[rnd.sample(range(len(df)), len(df))]
    h2 = harmonise(shuffled).table.set_index(["site_id", "top_cm"]).sort_index()
    ref = h.table.set_index(["site_id", "top_cm"]).sort_index()
    np.testing.assert_allclose(h2["soc_g_kg"], ref["soc_g_kg"], rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Output layout and site columns
# --------------------------------------------------------------------------------------------


def test_table_layout_and_site_columns():
    df = pd.concat(
        [
            profile_frame(
                "b",
                [0, 10],
                [10, 30],
                [9.0, 3.0],
                x=150.1,
                y=-30.2,
                crs="EPSG:4326",
                stratum="marsh",
                source="survey",
                clay=[20, 35],
                project="P1",
            ),
            profile_frame(
                "a",
                [0],
                [20],
                [4.0],
                x=150.3,
                y=-30.4,
                crs="EPSG:4326",
                stratum="mangrove",
                source="survey",
                clay=[10],
                project="P1",
            ),
        ]
    )
    h = harmonise(df, "vm0033")
    assert isinstance(h, Harmonised)
    assert list(h.table.columns) == [
        "site_id", "x", "y", "crs", "stratum", "source", "project",
        "top_cm", "bottom_cm", "soc_g_kg", "n_horizons", "coverage_soc_g_kg",
    ]  # fmt: skip
    assert h.table["site_id"].tolist() == ["b"] * 4 + ["a"] * 4  # input order
    assert h.table.loc[h.table.site_id == "a", "stratum"].unique().tolist() == ["mangrove"]
    assert h.table["n_horizons"].tolist() == [2] * 4 + [1] * 4
    assert list(h.sites.columns) == [
        "site_id", "n_horizons", "n_invalid_depth", "status",
        "status_soc_g_kg", "n_used_soc_g_kg", "rmse_soc_g_kg",
    ]  # fmt: skip
    explicit = harmonise(df, "vm0033", site_cols=["stratum"])
    assert list(explicit.table.columns[:2]) == ["site_id", "stratum"]
    with pytest.raises(ProfileValidationError, match="nope"):
        harmonise(df, site_cols=["nope"])


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def good_frame() -> pd.DataFrame:
    return profile_frame("p", [0, 10], [10, 30], [5.0, 2.0])


@pytest.mark.parametrize(
    ("mutate", "kwargs", "pattern"),
    [
        (lambda d: d.drop(columns=["top_cm"]), {}, r"lacks columns \['top_cm'\].*expected"),
        (lambda d: d.iloc[:0], {}, "empty"),
        (lambda d: d.assign(top_cm=["0", "10cm"]), {}, "'10cm'"),
        (lambda d: d.assign(soc_g_kg=["a", "b"]), {}, "'a'"),
        (lambda d: d, {"lam": -0.1}, "-0.1"),
        (lambda d: d, {"lam": float("nan")}, "nan"),
        (lambda d: d, {"vlow": 5.0, "vhigh": 1.0}, r"\(5.0, 1.0\)"),
        (lambda d: d, {"value_cols": "soc_g_kg"}, "sequence"),
        (lambda d: d, {"value_cols": ("top_cm",)}, "top_cm"),
        (lambda d: d.assign(site_id=["p", None]), {}, "site_id"),
        (lambda d: d.assign(soc_g_kg=[1.0, np.inf]), {}, "inf"),
        (lambda d: d.to_numpy(), {}, "DataFrame"),
    ],
)
def test_bad_input_raises_one_line_messages(mutate, kwargs, pattern):
    with pytest.raises(ProfileValidationError, match=pattern) as err:
        harmonise(mutate(good_frame()), **kwargs)
    assert "\n" not in str(err.value)


def test_unknown_depth_set_is_a_catalog_error():
    with pytest.raises(CatalogError, match="nope"):
        harmonise(good_frame(), "nope")


def test_fit_spline_rejects_bad_profiles():
    with pytest.raises(ProfileValidationError, match="overlap"):
        fit_spline([0, 5], [10, 20], [1.0, 2.0])
    with pytest.raises(ProfileValidationError, match="finite"):
        fit_spline([0, 10], [10, 20], [1.0, np.nan])
    with pytest.raises(ProfileValidationError, match="same"):
        fit_spline([0, 10], [10], [1.0, 2.0])


# --------------------------------------------------------------------------------------------
# scikit-learn contract
# --------------------------------------------------------------------------------------------


def test_sklearn_contract():
    est = SplineHarmoniser("vm0033", lam=0.2, vhigh=500.0)
    params = est.get_params()
    assert params == {
        "depths": "vm0033", "value_cols": ("soc_g_kg",), "lam": 0.2,
        "vlow": 0.0, "vhigh": 500.0, "site_cols": None,
    }  # fmt: skip
    with pytest.raises(NotFittedError):
        est.transform(good_frame())
    assert est.fit(good_frame()) is est
    assert est.depth_set_.name == "vm0033" and est.value_cols_ == ("soc_g_kg",)
    copy = clone(est)
    assert copy.get_params() == params and not hasattr(copy, "depth_set_")
    out = est.transform(good_frame())
    want = harmonise(good_frame(), "vm0033", lam=0.2, vhigh=500.0).table
    pd.testing.assert_frame_equal(out, want)
    pd.testing.assert_frame_equal(
        SplineHarmoniser("vm0033", lam=0.2, vhigh=500.0).fit_transform(good_frame()), want
    )
    est.set_params(lam=0.0)
    assert est.get_params()["lam"] == 0.0
    with pytest.raises(ProfileValidationError):
        SplineHarmoniser(lam=-1.0).fit(good_frame())
    with pytest.raises(ProfileValidationError, match="lacks"):
        SplineHarmoniser().fit(good_frame().drop(columns=["soc_g_kg"]))
    ds = DepthSet(name="custom", intervals=((0, 10), (10, 30)))
    cloned = clone(SplineHarmoniser(ds))
    assert cloned.fit(good_frame()).depth_set_ == ds


# --------------------------------------------------------------------------------------------
# Real embedded data
# --------------------------------------------------------------------------------------------


def test_global_table_slice_matches_reference():
    path = embedded_data_dir() / "global_profiles" / "global_soc_horizons_harmonized.csv.gz"
    raw = pd.read_csv(
        path, nrows=3000, usecols=["profile_id", "lon", "lat", "top_cm", "bottom_cm", "soc_g_kg"]
    )
    df = raw.rename(columns={"profile_id": "site_id", "lon": "x", "lat": "y"})
    h = harmonise(df)
    counts = h.summary()
    assert sum(counts.values()) == df["site_id"].nunique()
    assert len(h.table) == df["site_id"].nunique() * len(GSM.intervals)
    ok = h.sites[h.sites.status == "ok"]["site_id"].to_numpy()
    rng = np.random.default_rng(7)
    for sid in rng.choice(ok, size=8, replace=False):
        p = df[df.site_id == sid].sort_values(["top_cm", "bottom_cm"])
        ref = ref_interval_means(
            p.top_cm.to_numpy(), p.bottom_cm.to_numpy(), p.soc_g_kg.to_numpy(), 0.1,
            GSM.intervals, 0.0, 1000.0, step=0.05,
        )  # fmt: skip
        got = h.table.loc[h.table.site_id == sid, "soc_g_kg"].to_numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_edgeroi_profiles_harmonise():
    path = embedded_data_dir() / "edgeroi" / "edgeroi_horizons.csv"
    df = pd.read_csv(path).rename(
        columns={
            "SOURCEID": "site_id",
            "UHDICM": "top_cm",
            "LHDICM": "bottom_cm",
            "ORCDRC": "soc_g_kg",
        }
    )
    h = harmonise(df, "vm0033")
    counts = h.summary()
    assert sum(counts.values()) == df["site_id"].nunique()
    assert counts["ok"] > 300 and counts["overlapping_horizons"] == 0
    vals = h.table["soc_g_kg"].dropna()
    assert (vals >= 0).all() and vals.max() <= df["soc_g_kg"].max() * 1.5


def test_chunked_integration_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(11)
    frames = []
    for i in range(30):
        n = int(rng.integers(1, 6))
        th = rng.integers(2, 40, n).astype(float)
        tops = np.concatenate([[0.0], np.cumsum(th)[:-1]]) + rng.integers(0, 5, n)
        frames.append(profile_frame(f"s{i}", tops, tops + th, rng.uniform(1, 50, n)))
    df = pd.concat(frames, ignore_index=True)
    slices = DepthSet(name="1cm", intervals=tuple((k, k + 1) for k in range(150)))
    whole = harmonise(df, slices).table["soc_g_kg"].to_numpy()
    monkeypatch.setattr("socmap.depth._CHUNK", 7)
    chunked = harmonise(df, slices).table["soc_g_kg"].to_numpy()
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12, equal_nan=True)

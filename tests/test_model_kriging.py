"""Tests of residual kriging (socmap.model.kriging) and prior + residual with kriging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from socmap.datasets import synthetic_soil_field
from socmap.errors import ConfigError, ProfileValidationError
from socmap.model.kriging import ResidualKriging
from socmap.model.prior import KRIGING_GRID, PriorResidualRegressor

BANDS = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]
REGION = (10.0, -5.0, 20.0, 5.0)


def _rows(n: int, seed: int = 0, crs: str = "EPSG:32755", extent: float = 50_000.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.uniform(0, extent, n), "y": rng.uniform(0, extent, n),
                         "crs": crs, "top_cm": 0.0, "bottom_cm": 30.0})  # fmt: skip


def _field(rows: pd.DataFrame, scale: float = 20_000.0) -> np.ndarray:
    """A smooth residual surface (log1p units) over the coordinates."""
    return 0.5 * np.sin(rows["x"].to_numpy() / scale) + 0.3 * np.cos(rows["y"].to_numpy() / scale)


def test_prediction_is_scikit_learns_gaussian_process() -> None:
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    rows = _rows(40)
    resid = _field(rows) + np.random.default_rng(1).normal(0, 0.05, 40)
    krig = ResidualKriging().fit(rows, resid)
    (field,) = krig.fields_.values()
    kernel = ConstantKernel(field.sill, "fixed") * Matern(
        field.range_km, "fixed", nu=1.5
    ) + WhiteKernel(field.nugget, "fixed")
    gp = GaussianProcessRegressor(kernel, optimizer=None).fit(rows[["x", "y"]] / 1000, resid)
    new = _rows(15, seed=2)
    mean, sd = krig.predict(new)
    ref_mean, ref_sd = gp.predict(new[["x", "y"]] / 1000, return_std=True)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-8)
    # scikit-learn's sd includes the nugget; ours is the latent field's
    np.testing.assert_allclose(sd**2 + field.nugget, ref_sd**2, atol=1e-8)


def test_a_spatial_field_is_recovered_near_the_cores_and_zero_far_away() -> None:
    rows = _rows(80)
    truth = _field(rows)
    krig = ResidualKriging().fit(rows, truth + np.random.default_rng(1).normal(0, 0.05, 80))
    near = _rows(30, seed=3)
    mean, sd = krig.predict(near)
    assert np.mean(np.abs(mean - _field(near))) < 0.1
    far = near.assign(x=near["x"] + 5e6)
    far_mean, far_sd = krig.predict(far)
    np.testing.assert_allclose(far_mean, 0.0, atol=1e-6)
    assert (far_sd > sd).all()  # the kriging sd grows back to the sill away from the cores


def test_degrees_are_kilometres_around_the_mean_latitude() -> None:
    metres = _rows(30)
    resid = _field(metres)
    at_equator = metres.assign(x=metres["x"] / 111_320, y=metres["y"] / 111_320 - 0.22,
                               crs="EPSG:4326")  # fmt: skip
    a = ResidualKriging().fit(metres, resid)
    b = ResidualKriging().fit(at_equator, resid)
    (fa,), (fb,) = a.fields_.values(), b.fields_.values()
    # the same pairwise distances to within the cosine of a fraction of a degree
    assert fb.range_km == pytest.approx(fa.range_km, rel=0.02)
    np.testing.assert_allclose(b.predict(at_equator)[0], a.predict(metres)[0], atol=0.02)


def test_each_interval_gets_its_own_process_and_small_ones_none() -> None:
    top = _rows(30)
    deep = _rows(6, seed=5).assign(top_cm=30.0, bottom_cm=60.0)
    rows = pd.concat([top, deep], ignore_index=True)
    krig = ResidualKriging().fit(rows, np.r_[_field(top), np.ones(6)])
    assert list(krig.fields_) == [(0.0, 30.0)]
    assert set(krig.params_) == {"0-30"}
    mean, sd = krig.predict(deep)
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(sd, 0.0)


def test_the_same_seed_gives_the_same_field() -> None:
    rows = _rows(40)
    resid = _field(rows)
    a = ResidualKriging(random_state=3).fit(rows, resid).predict(rows)
    b = ResidualKriging(random_state=3).fit(rows, resid).predict(rows)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize(
    ("residuals", "message"),
    [(np.zeros(3), "3 residuals for 40 rows"), (np.r_[np.nan, np.zeros(39)], "finite")],
)
def test_bad_residuals_are_refused(residuals: np.ndarray, message: str) -> None:
    with pytest.raises(ProfileValidationError, match=message):
        ResidualKriging().fit(_rows(40), residuals)


def test_an_unfitted_kriging_says_so() -> None:
    with pytest.raises(ConfigError, match="not fitted"):
        ResidualKriging().predict(_rows(3))


# ------------------------------------------------------------- prior + residual + kriging
class Truth:
    """The synthetic field's noise-free log1p SOC: a prior that misses only the field."""

    def predict_log(self, t: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return np.log1p(t["soc_true_g_kg"].to_numpy(float)), np.full(len(t), 0.2)


@pytest.fixture(scope="module")
def spatial_region() -> tuple[pd.DataFrame, pd.DataFrame]:
    t = synthetic_soil_field(160, depths="vm0033", seed=5, bbox=REGION).table
    # what no covariate explains: a smooth surface over the region (about 300 km waves)
    field = 0.6 * np.sin(t["x"].to_numpy() / 1.5) * np.cos(t["y"].to_numpy() / 1.5)
    t = t.assign(soc_g_kg=np.expm1(np.log1p(t["soc_true_g_kg"]) + field))
    sites = t["site_id"].unique()
    return t[t["site_id"].isin(sites[:100])], t[t["site_id"].isin(sites[100:])]


def _mae(est: PriorResidualRegressor, test: pd.DataFrame) -> float:
    return float(np.mean(np.abs(est.predict(test) - test["soc_g_kg"].to_numpy())))


def test_kriging_recovers_what_the_covariates_miss(spatial_region) -> None:
    train, test = spatial_region
    common = {"prior": Truth(), "bands": BANDS, "n_estimators": 50, "block_size": 1.0}
    plain = PriorResidualRegressor(**common).fit(train)
    kriged = PriorResidualRegressor(**common, kriging=True).fit(train)
    assert kriged.kriging_weight_ in KRIGING_GRID and kriged.kriging_weight_ > 0
    assert set(kriged.kriging_mae_) == set(KRIGING_GRID)
    assert _mae(kriged, test) < 0.8 * _mae(plain, test)
    assert plain.kriging_ is None and plain.kriging_weight_ == 0
    # the kriging sd joins the sd
    assert (kriged.predict_log(test)[1] >= plain.predict_log(test)[1] - 1e-12).all()


def test_kriging_without_a_spatial_signal_is_left_out(spatial_region) -> None:
    train, _ = spatial_region
    noise = train.assign(
        soc_g_kg=np.expm1(np.log1p(train["soc_true_g_kg"])
                          + np.random.default_rng(0).normal(0, 0.3, len(train)))
    )  # fmt: skip
    est = PriorResidualRegressor(prior=Truth(), bands=BANDS, n_estimators=50, block_size=1.0,
                                 kriging=True).fit(noise)  # fmt: skip
    assert est.kriging_weight_ < 1.0


def test_kriging_needs_the_inner_cv_and_no_bundle_holds_it(spatial_region) -> None:
    train, _ = spatial_region
    with pytest.raises(ConfigError, match="no inner CV runs"):
        PriorResidualRegressor(prior=Truth(), bands=BANDS, shrink=0.5, kriging=True).fit(train)
    est = PriorResidualRegressor(prior=Truth(), bands=BANDS, n_estimators=50, block_size=1.0,
                                 kriging=True).fit(train)  # fmt: skip
    assert est.kriging_ is not None
    with pytest.raises(ConfigError, match="cannot be saved in a bundle yet"):
        est.adjustment()

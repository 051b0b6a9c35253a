"""Tests for socmap.stocks: units, SoilGrids conversions, BD sources, joint Monte Carlo."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.catalog import embedded_data_dir, get_depth_set
from socmap.errors import CatalogError, ConfigError, GridMismatch, InputNotFound, UnitsError
from socmap.stocks import (
    BD_RANGE,
    CF_MAX,
    STATS,
    BandBD,
    PedotransferBD,
    StratumBD,
    c_to_co2e,
    cumulative_draws,
    default_totals,
    from_soilgrids,
    load_bd_ptf,
    stock_draws,
    stock_t_ha,
    summarise,
    t_ha_to_kg_m2,
)

VM0033 = [(0, 15), (15, 30), (30, 50), (50, 100)]
GSM5 = [(0, 5), (5, 15), (15, 30), (30, 60), (60, 100)]
PTF_JSON = embedded_data_dir() / "ptf" / "bd_wosis2017.json"


def soc_field(seed: int, t: int = 16, d: int = 4, shape: tuple[int, ...] = (3, 5)) -> np.ndarray:
    """Seeded SOC draws (g/kg) with a shared component across depths (like MC dropout)."""
    rng = np.random.default_rng(seed)
    trend = np.linspace(1.0, 0.3, d).reshape((1, d) + (1,) * len(shape))
    base = rng.uniform(5.0, 40.0, size=(1, 1, *shape)) * trend
    shared = rng.normal(0.0, 0.3, size=(t, 1, *shape))
    own = rng.normal(0.0, 0.1, size=(t, d, *shape))
    return base * np.exp(shared + own)


# ------------------------------------------------------------------------------ units
def test_design_test_vectors() -> None:
    s = stock_t_ha(10.0, 1.3, 30.0, 0.0)
    assert float(s) == pytest.approx(39.0, rel=1e-12)
    assert float(t_ha_to_kg_m2(s)) == pytest.approx(3.9, rel=1e-12)
    s2 = float(stock_t_ha(6.5, 1.45, 30.0))
    assert s2 == pytest.approx(28.275, rel=1e-12)
    assert round(s2, 1) == 28.3


def test_stock_broadcasts_and_propagates_nan() -> None:
    soc = np.array([[10.0, np.nan], [20.0, 5.0]])
    out = stock_t_ha(soc, 1.0, np.array([10.0, 20.0]), cf_vol=0.5)
    assert out.shape == (2, 2)
    assert np.isnan(out[0, 1])
    np.testing.assert_allclose(out[[0, 1, 1], [0, 0, 1]], [5.0, 10.0, 5.0])


def test_co2e() -> None:
    assert float(c_to_co2e(3.0)) == pytest.approx(11.0)
    np.testing.assert_allclose(c_to_co2e([12.0, 0.0]), [44.0, 0.0])


@settings(max_examples=60, deadline=None)
@given(
    soc=st.floats(0.0, 500.0),
    bd=st.floats(0.05, 1.3),
    thick=st.floats(0.1, 100.0),
    cf=st.floats(0.0, 0.9),
    k=st.floats(0.0, 2.0),
)
def test_stock_is_linear_in_bd_soc_and_fine_earth(soc, bd, thick, cf, k) -> None:
    base = float(stock_t_ha(soc, bd, thick, cf))
    assert float(stock_t_ha(soc, k * bd, thick, cf)) == pytest.approx(k * base, rel=1e-9, abs=1e-9)
    assert float(stock_t_ha(k * soc, bd, thick, cf)) == pytest.approx(k * base, rel=1e-9, abs=1e-9)
    # (1 - CF) enters linearly: the stock per unit fine-earth fraction is constant.
    no_cf = float(stock_t_ha(soc, bd, thick, 0.0))
    assert base == pytest.approx(no_cf * (1.0 - cf), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("args", "needle", "value"),
    [
        ((-1.0, 1.3, 30.0, 0.0), "SOC", -1.0),
        ((10.0, -0.1, 30.0, 0.0), "bulk density", -0.1),
        ((10.0, 135.0, 30.0, 0.0), "from_soilgrids", 135.0),  # cg/cm3 by mistake
        ((10.0, 1.3, -5.0, 0.0), "thickness", -5.0),
        ((10.0, 1.3, 30.0, 1.0), "coarse fragments", 1.0),
        ((10.0, 1.3, 30.0, -0.2), "coarse fragments", -0.2),
        ((1500.0, 1.3, 30.0, 0.0), "SOC", 1500.0),
    ],
)
def test_units_errors_name_the_value(args, needle, value) -> None:
    with pytest.raises(UnitsError) as exc:
        stock_t_ha(*args)
    msg = str(exc.value)
    assert needle in msg
    assert repr(value) in msg
    assert "\n" not in msg


# -------------------------------------------------------------------------- SoilGrids
def test_from_soilgrids_conversions() -> None:
    np.testing.assert_allclose(from_soilgrids([123, 0], "soc"), [12.3, 0.0])
    np.testing.assert_allclose(from_soilgrids(np.array([135, 160]), "BDOD"), [1.35, 1.6])
    np.testing.assert_allclose(from_soilgrids([52], "ocs"), [52.0])  # already t/ha
    np.testing.assert_allclose(from_soilgrids([150], "cfvo"), [0.15])
    np.testing.assert_allclose(from_soilgrids([250], "clay"), [25.0])
    out = from_soilgrids([100, -32768], "bdod", nodata=-32768)
    assert out[0] == pytest.approx(1.0) and np.isnan(out[1])
    # Converted SoilGrids values feed the stock formula directly.
    s = stock_t_ha(from_soilgrids(100, "soc"), from_soilgrids(130, "bdod"), 30.0)
    assert float(s) == pytest.approx(39.0)


def test_from_soilgrids_errors() -> None:
    with pytest.raises(UnitsError, match=r"did you mean 'bdod'"):
        from_soilgrids([1], "bdodd")
    with pytest.raises(UnitsError, match="nodata"):
        from_soilgrids([-32768], "soc")


# ----------------------------------------------------------------------------- the PTF
def test_shipped_ptf_loads_and_is_documented() -> None:
    params = load_bd_ptf()
    assert {"soc_depth", "soc_depth_texture"} <= set(params.forms)
    assert (embedded_data_dir() / "ptf" / "NOTICE.md").is_file()
    assert params.forms["soc_depth"].requires == ()
    assert set(params.forms["soc_depth_texture"].requires) == {"clay", "sand"}
    assert params.fitted["n_horizons"] > 90_000


@pytest.mark.parametrize("form", ["soc_depth", "soc_depth_texture"])
def test_ptf_is_plausible(form) -> None:
    ptf = PedotransferBD(form)
    kw = {"clay": 25.0, "sand": 40.0} if ptf.requires else {}
    mineral = float(ptf.predict(10.0, 15.0, **kw))
    assert 1.3 <= mineral <= 1.5
    organic = float(ptf.predict(300.0, 15.0, **kw))
    assert organic < 0.55
    assert organic < 0.4 * mineral
    soc = np.linspace(0.0, 600.0, 121)
    for depth in (2.5, 10.0, 22.5, 45.0, 80.0, 150.0):
        bd = ptf.predict(soc, depth, **kw)
        assert np.all(np.diff(bd) <= 1e-12), f"BD must decrease with SOC at {depth} cm"
        assert np.all((bd >= BD_RANGE[0]) & (bd <= BD_RANGE[1]))
    sd = ptf.sd_log(soc)
    assert np.all(sd > 0) and np.all(sd < 1.0)


def test_ptf_texture_needs_clay_and_sand() -> None:
    ptf = PedotransferBD("soc_depth_texture")
    soc = np.full((2, 1, 2, 2), 10.0)
    with pytest.raises(ConfigError, match="clay"):
        ptf.draw(soc, [(0, 30)], rng=0)
    with pytest.raises(UnitsError, match="clay"):
        ptf.draw(soc, [(0, 30)], rng=0, covariates={"clay": 250.0, "sand": 40.0})
    out = ptf.draw(soc, [(0, 30)], rng=0, covariates={"clay": np.full((2, 2), 30.0), "sand": 30.0})
    assert out.shape == soc.shape
    with pytest.raises(ConfigError, match="soc_depth"):
        PedotransferBD("soc_dept")


def test_ptf_draws_follow_soc_draws() -> None:
    # Each BD draw uses its own SOC draw, so SOC and BD are negatively correlated across draws.
    soc = soc_field(3, t=400, d=2, shape=(2,))
    iv = [(0, 15), (15, 30)]
    ptf = PedotransferBD()
    median = ptf.draw(soc, iv, z=np.zeros((400, 1, 2)))
    np.testing.assert_allclose(median, ptf.predict(soc, np.array([7.5, 22.5])[None, :, None]))
    for d in range(2):
        for p in range(2):
            order = np.argsort(soc[:, d, p])
            assert np.all(np.diff(median[order, d, p]) < 0)
    bd = ptf.draw(soc, iv, rng=1)
    r = [
        np.corrcoef(np.log(soc[:, d, p]), np.log(bd[:, d, p]))[0, 1] for d in (0, 1) for p in (0, 1)
    ]
    assert max(r) < 0
    # The residual of a draw is shared by its depths: log-BD anomalies agree across depths.
    anomaly = np.log(bd) - np.log(median)
    np.testing.assert_allclose(
        anomaly[:, 0] / ptf.sd_log(soc[:, 0]), anomaly[:, 1] / ptf.sd_log(soc[:, 1]), atol=1e-9
    )


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["forms"]["soc_depth"].pop("coef"), "coef"),
        (
            lambda d: d["forms"]["soc_depth"]["residual"].update(
                sd=[-1.0] * len(d["forms"]["soc_depth"]["residual"]["sd"])
            ),
            "positive",
        ),
        (lambda d: d["forms"]["soc_depth"]["terms"].append("ph"), "unknown terms"),
        (lambda d: d["forms"].pop("soc_depth"), "soc_depth"),
        (lambda d: d.update(om_per_oc=17.24), "om_per_oc"),
    ],
)
def test_corrupted_ptf_raises(tmp_path, mutate, needle) -> None:
    data = json.loads(PTF_JSON.read_text())
    mutate(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(CatalogError) as exc:
        load_bd_ptf(bad)
    assert needle in str(exc.value)
    assert str(bad) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_ptf_file_not_json_or_missing(tmp_path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text(PTF_JSON.read_text()[:200])
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_bd_ptf(bad)
    with pytest.raises(InputNotFound, match="fit_bd_ptf"):
        PedotransferBD(params=tmp_path / "none.json")


# ---------------------------------------------------------------------- joint draws
def test_deterministic_bd_equals_formula() -> None:
    soc = soc_field(0)
    bd = np.random.default_rng(1).uniform(0.8, 1.6, size=(4, 3, 5))
    out = stock_draws(soc, VM0033, BandBD(bd, 0.0), cf=0.1, rng=0)
    thick = np.array([15.0, 15.0, 20.0, 50.0])[None, :, None, None]
    np.testing.assert_array_equal(out, stock_t_ha(soc, bd, thick, 0.1))
    # A plain array is a band without uncertainty.
    np.testing.assert_array_equal(stock_draws(soc, VM0033, bd, cf=0.1), out)


def test_joint_draws_keep_between_layer_covariance() -> None:
    soc = soc_field(7, t=3000, d=4, shape=(2,))
    s = stock_draws(soc, VM0033, 1.2, rng=0)
    total = cumulative_draws(s, VM0033, [(0, 100)])[:, 0]
    var_joint = total.var(axis=0)
    var_indep = s.var(axis=0).sum(axis=0)
    assert np.all(var_joint > 1.5 * var_indep)
    # Shuffling each depth's draws independently destroys the covariance.
    rng = np.random.default_rng(9)
    shuffled = np.stack([s[rng.permutation(len(s)), d] for d in range(4)], axis=1)
    var_shuffled = cumulative_draws(shuffled, VM0033, [(0, 100)])[:, 0].var(axis=0)
    np.testing.assert_allclose(var_shuffled, var_indep, rtol=0.15)
    assert np.all(var_joint > var_shuffled)


def test_bd_residual_is_shared_by_depths() -> None:
    # Constant SOC: the total's sd is the fully correlated sum of the layers' sds.
    t = 4000
    soc = np.broadcast_to(np.array([20.0, 10.0, 5.0, 2.0])[None, :, None], (t, 4, 3))
    s = stock_draws(soc, VM0033, BandBD(1.2, 0.1), rng=5)
    total = cumulative_draws(s, VM0033, [(0, 100)])[:, 0]
    thick = np.array([15.0, 15.0, 20.0, 50.0])
    full = float(np.sum(soc[0, :, 0] * thick * 0.1 * 0.1))
    indep = float(np.sqrt(np.sum((soc[0, :, 0] * thick * 0.1 * 0.1) ** 2)))
    np.testing.assert_allclose(total.std(axis=0), full, rtol=0.06)
    assert indep < 0.8 * full


def test_cf_draws_and_band_sd() -> None:
    soc = np.full((2000, 1, 4), 10.0)
    s = stock_draws(soc, [(0, 30)], 1.0, cf=0.3, cf_sd=0.2, rng=2)
    fine = s[:, 0] / 30.0  # = 1 - CF drawn
    assert fine.min() >= 1 - CF_MAX - 1e-12 and fine.max() <= 1.0 + 1e-12
    assert abs(float(np.median(fine)) - 0.7) < 0.03
    bd = BandBD(np.array([0.3, 1.2, 2.6, np.nan]), 0.5).draw(soc, [(0, 30)], rng=3)
    assert np.nanmin(bd) >= BD_RANGE[0] and np.nanmax(bd) <= BD_RANGE[1]
    assert np.all(np.isnan(bd[:, 0, 3]))
    assert float(np.std(bd[:, 0, 1])) > 0.3


def test_seed_determinism_and_injected_normals() -> None:
    soc = soc_field(11, d=5).astype(np.float32)
    ptf = PedotransferBD()
    a = stock_draws(soc, GSM5, ptf, cf=0.05, cf_sd=0.02, rng=42)
    b = stock_draws(soc, GSM5, ptf, cf=0.05, cf_sd=0.02, rng=np.random.default_rng(42))
    c = stock_draws(soc, GSM5, ptf, cf=0.05, cf_sd=0.02, rng=43)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # The same normals given explicitly reproduce the seeded run.
    g = np.random.default_rng(42)
    z_bd = g.standard_normal((16, 1, 3, 5), dtype=np.float32)
    z_cf = g.standard_normal((16, 1, 3, 5), dtype=np.float32)
    d = stock_draws(soc, GSM5, ptf, cf=0.05, cf_sd=0.02, z_bd=z_bd, z_cf=z_cf)
    np.testing.assert_array_equal(a, d)
    # Pixel-keyed normals make a tile's result independent of the tiling.
    left = stock_draws(soc[..., :2], GSM5, ptf, z_bd=z_bd[..., :2])
    whole = stock_draws(soc, GSM5, ptf, z_bd=z_bd)
    np.testing.assert_array_equal(left, whole[..., :2])


def test_stratum_bd() -> None:
    table = {"mangrove": (0.6, 0.0), "saltmarsh": (0.9, 0.0)}
    strata = np.array([["mangrove", "saltmarsh"], [None, "seagrass"]], dtype=object)
    look = StratumBD(table, default=(1.1, 0.0)).lookup(strata)
    np.testing.assert_array_equal(look.mean[0], [0.6, 0.9])
    assert np.isnan(look.mean[1, 0]) and look.mean[1, 1] == 1.1
    assert look.n_default == 1 and look.defaulted == ("seagrass",)
    soc = np.full((3, 2, 2, 2), 50.0)
    s = stock_draws(
        soc,
        [(0, 15), (15, 30)],
        StratumBD(table, (1.1, 0.0)),
        rng=0,
        covariates={"stratum": strata},
    )
    assert np.all(np.isnan(s[:, :, 1, 0]))
    np.testing.assert_allclose(s[0, 0, 0], [50 * 0.6 * 15 * 0.1, 50 * 0.9 * 15 * 0.1])
    with pytest.raises(ConfigError, match="seagrass"):
        StratumBD(table).lookup(strata)
    with pytest.raises(ConfigError, match="stratum"):
        StratumBD(table).draw(soc, [(0, 15), (15, 30)], rng=0)
    codes = np.array([[1.0, 2.0], [np.nan, 1.0]])  # coded rasters match integer keys
    look = StratumBD({1: (0.5, 0.1), 2: (1.0, 0.1)}).lookup(codes)
    np.testing.assert_array_equal(look.mean, [[0.5, 1.0], [np.nan, 0.5]])
    with pytest.raises(UnitsError, match="1300"):
        StratumBD({"x": (1300.0, 100.0)})


def test_stock_draw_errors() -> None:
    soc = soc_field(1)
    with pytest.raises(ConfigError, match="4 depths"):
        stock_draws(soc, GSM5, 1.3)
    with pytest.raises(ConfigError, match="overlaps"):
        stock_draws(soc, [(0, 15), (10, 30), (30, 50), (50, 100)], 1.3)
    with pytest.raises(ConfigError, match="rng="):
        stock_draws(soc, VM0033, BandBD(1.3, 0.1))
    with pytest.raises(ConfigError, match="rng="):
        stock_draws(soc, VM0033, 1.3, cf=0.1, cf_sd=0.05)
    with pytest.raises(UnitsError, match="SOC draws"):
        stock_draws(-soc, VM0033, 1.3)
    with pytest.raises(UnitsError, match=r"130\.0"):
        stock_draws(soc, VM0033, 130.0)
    with pytest.raises(GridMismatch, match=r"\(7, 7\)"):
        stock_draws(soc, VM0033, np.ones((7, 7)))
    with pytest.raises(ConfigError, match="z_bd"):
        stock_draws(soc, VM0033, BandBD(1.3, 0.1), z_bd=np.zeros((16, 4, 3, 5)))
    with pytest.raises(ConfigError, match="draws, depths"):
        stock_draws(np.ones(5), [(0, 30)], 1.3)


# ------------------------------------------------------------------ totals, summaries
def test_cumulative_vm0033_and_gsm_proration() -> None:
    rng = np.random.default_rng(4)
    s = rng.uniform(1.0, 30.0, size=(5, 4, 2, 3))
    out = cumulative_draws(s, VM0033)  # default totals 0-30, 0-100
    np.testing.assert_allclose(out[:, 0], s[:, 0] + s[:, 1])
    np.testing.assert_allclose(out[:, 1], s.sum(axis=1))
    part = cumulative_draws(s, VM0033, [(0, 40), (10, 30)])
    np.testing.assert_allclose(part[:, 0], s[:, 0] + s[:, 1] + 0.5 * s[:, 2])
    np.testing.assert_allclose(part[:, 1], s[:, 0] / 3.0 + s[:, 1])
    g = rng.uniform(1.0, 30.0, size=(5, 5, 2))
    out = cumulative_draws(g, GSM5, [(0, 30), (0, 50), (0, 100)])
    np.testing.assert_allclose(out[:, 0], g[:, :3].sum(axis=1))
    np.testing.assert_allclose(out[:, 1], g[:, :3].sum(axis=1) + g[:, 3] * 20.0 / 30.0)
    np.testing.assert_allclose(out[:, 2], g.sum(axis=1))


def test_cumulative_nan_only_where_it_contributes() -> None:
    s = np.ones((2, 4, 1))
    s[:, 3] = np.nan
    out = cumulative_draws(s, VM0033)
    assert np.all(out[:, 0] == 2.0) and np.all(np.isnan(out[:, 1]))


def test_cumulative_gaps_are_named() -> None:
    s = np.ones((2, 3, 1))
    with pytest.raises(ConfigError, match=r"50-100 cm"):
        cumulative_draws(s, [(0, 15), (15, 30), (30, 50)])
    with pytest.raises(ConfigError, match=r"15-30 cm"):
        cumulative_draws(np.ones((2, 2, 1)), [(0, 15), (30, 50)], [(0, 30)])
    with pytest.raises(ConfigError, match="top < bottom"):
        cumulative_draws(s, [(0, 15), (15, 30), (30, 50)], [(30, 0)])


def test_default_totals() -> None:
    assert default_totals("globalsoilmap") == ((0.0, 30.0), (0.0, 100.0))
    assert default_totals("vm0033") == ((0.0, 30.0), (0.0, 100.0))
    assert default_totals("0-30") == ((0.0, 30.0),)
    assert default_totals(get_depth_set("vm0033")) == ((0.0, 30.0), (0.0, 100.0))
    with pytest.raises(CatalogError):
        default_totals("vm0034")


def test_summarise_matches_numpy_and_keeps_nan() -> None:
    a = np.random.default_rng(5).gamma(2.0, 3.0, size=(32, 3, 4, 4))
    a[7, 1, 2, 3] = np.nan
    s = summarise(a)
    assert len(s) == len(STATS) == 5
    np.testing.assert_allclose(s.mean[0], a[:, 0].mean(axis=0))
    np.testing.assert_allclose(s.sd[0], a[:, 0].std(axis=0, ddof=1))
    np.testing.assert_allclose(s.q05[0], np.quantile(a[:, 0], 0.05, axis=0))
    np.testing.assert_allclose(s.q50[2], np.median(a[:, 2], axis=0))
    np.testing.assert_allclose(s.q95[1, :2], np.quantile(a[:, 1, :2], 0.95, axis=0))
    stacked = s.stack()
    assert stacked.shape == (5, 3, 4, 4)
    assert np.all(np.isnan(stacked[:, 1, 2, 3]))
    assert np.isfinite(stacked).sum() == stacked.size - 5
    small = summarise(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).T, axis=1)
    np.testing.assert_allclose(small.mean, [3.0, 4.0])
    one = summarise(np.array([4.0, 1.0, 3.0, 2.0]))  # a single pixel, 1-D draws
    assert float(one.q50) == 2.5 and float(one.q05) == pytest.approx(1.15)
    assert np.isnan(summarise(np.array([1.0, np.nan])).q95)
    with pytest.raises(ConfigError, match="at least 2"):
        summarise(np.ones((1, 3)))


def test_end_to_end_tile_summary() -> None:
    # Draws -> cumulative -> summary on a small tile, PTF with SOC-dependent uncertainty.
    soc = soc_field(21, t=64, d=5, shape=(8, 8)).astype(np.float32)
    soc[:, :, 0, 0] = np.nan
    s = stock_draws(soc, GSM5, PedotransferBD(), cf=0.1, rng=0)
    tot = cumulative_draws(s, GSM5)
    summ = summarise(tot)
    assert summ.mean.shape == (2, 8, 8)
    assert np.isnan(summ.mean[:, 0, 0]).all()
    ok = np.isfinite(summ.mean)
    assert ok.sum() == 2 * 64 - 2
    assert np.all(summ.q05[ok] <= summ.q50[ok]) and np.all(summ.q50[ok] <= summ.q95[ok])
    assert np.all(summ.mean[1][ok[1]] > summ.mean[0][ok[0]])
    assert math.isfinite(float(np.nanmean(summ.sd)))

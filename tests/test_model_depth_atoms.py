"""Depth atoms: any interval's prediction is the thickness-weighted mean of its atoms."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.errors import ConfigError
from socmap.model.depth_atoms import atom_weights, atoms_from_intervals, compose_log
from socmap.model.features import FeatureSpec
from socmap.model.network import NetworkConfig, SocNet
from socmap.model.train import TrainConfig, fit, predict

GSM = ((0.0, 5.0), (5.0, 15.0), (15.0, 30.0), (30.0, 60.0), (60.0, 100.0), (100.0, 200.0))


def test_atoms_are_the_elementary_intervals_between_all_limits():
    assert atoms_from_intervals([0, 0, 5, 15], [30, 5, 15, 30]) == ((0, 5), (5, 15), (15, 30))
    with pytest.raises(ConfigError, match="no valid depth interval"):
        atoms_from_intervals([5], [5])


@settings(max_examples=60, deadline=None)
@given(
    top=st.floats(0, 250, allow_nan=False),
    thickness=st.floats(0.5, 150, allow_nan=False),
    cut=st.floats(0.05, 0.95),
)
def test_weights_sum_to_one_and_splitting_an_interval_averages_back(top, thickness, cut):
    bottom, mid = top + thickness, top + cut * thickness
    w = atom_weights(np.array([top, top, mid]), np.array([bottom, mid, bottom]), GSM)
    assert np.allclose(w.sum(axis=1), 1.0)
    # Additivity in depth: the whole is the thickness-weighted mean of its two parts.
    assert np.allclose(w[0], cut * w[1] + (1 - cut) * w[2])


def test_compose_log_is_a_thickness_weighted_mean_in_g_per_kg():
    soc = np.array([[30.0, 20.0, 10.0]])
    w = atom_weights(np.array([0.0]), np.array([30.0]), GSM[:3])
    mean, var = compose_log(np.log1p(soc), np.array([[0.1, 0.2, 0.4]]), w)
    assert np.expm1(mean)[0] == pytest.approx((5 * 30 + 10 * 20 + 15 * 10) / 30)
    assert var[0] == pytest.approx((5 * 0.1 + 10 * 0.2 + 15 * 0.4) / 30)


def _gsm_table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, n)
    rows = []
    for top, bottom in GSM[:5]:
        mid = (top + bottom) / 2
        rows.append(
            pd.DataFrame(
                {
                    "site_id": np.arange(n),
                    "a": a,
                    "top_cm": top,
                    "bottom_cm": bottom,
                    "soc_g_kg": np.expm1(3.0 + 0.5 * a - mid / 50 + rng.normal(0, 0.05, n)),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def trained():
    table = _gsm_table()
    spec = FeatureSpec(groups={"g": ("a",)}).fit(table)
    cfg = NetworkConfig.from_spec(spec, fusion_dim=16, head=(32, 16), dropout=(0.1, 0.1))
    model = SocNet(cfg, seed=0)
    fit(model, spec.encode(table), np.arange(len(table)), [], TrainConfig(max_epochs=5),
        progress=False)  # fmt: skip
    return spec, model


def test_fit_records_the_training_intervals_as_atoms(trained):
    spec, _ = trained
    assert spec.depth_atoms == GSM[:5]
    assert FeatureSpec.from_dict(spec.to_dict()).depth_atoms == GSM[:5]


@pytest.mark.parametrize("passes", [1, 16])
def test_an_unseen_interval_agrees_with_its_atoms(trained, passes):
    spec, model = trained
    a = np.linspace(-1, 1, 7)
    parts = pd.concat(
        [pd.DataFrame({"a": a, "top_cm": t, "bottom_cm": b}) for t, b in GSM[:3]],
        ignore_index=True,
    )
    whole = pd.DataFrame({"a": a, "top_cm": 0.0, "bottom_cm": 30.0})
    kw = {"mc_passes": passes, "dropout": passes > 1, "seed": 3}
    p_parts = predict(model, spec.encode(parts), **kw)
    p_whole = predict(model, spec.encode(whole), **kw)
    soc_parts = np.expm1(p_parts.mean.reshape(3, -1))
    expected = (5 * soc_parts[0] + 10 * soc_parts[1] + 15 * soc_parts[2]) / 30
    if passes == 1:  # exact: one deterministic network
        np.testing.assert_allclose(np.expm1(p_whole.mean), expected, rtol=1e-5)
    else:  # composed pass by pass, so only close to the composition of pass means
        np.testing.assert_allclose(np.expm1(p_whole.mean), expected, rtol=0.05)
    # A sub-interval of one atom takes that atom's value.
    inside = predict(model, spec.encode(whole.assign(top_cm=6.0, bottom_cm=9.0)), **kw)
    tol = 1e-6 if passes == 1 else 0.02  # dropout masks are drawn per row
    np.testing.assert_allclose(inside.mean, p_parts.mean.reshape(3, -1)[1], rtol=tol)


def test_training_on_a_composed_interval_moves_its_atoms():
    table = _gsm_table(n=100)
    spec = FeatureSpec(groups={"g": ("a",)}).fit(table)
    cfg = NetworkConfig.from_spec(spec, fusion_dim=16, head=(32, 16), dropout=(0.0, 0.0))
    model = SocNet(cfg, seed=0)
    only_0_30 = pd.DataFrame({"a": np.zeros(64), "top_cm": 0.0, "bottom_cm": 30.0})
    only_0_30["soc_g_kg"] = 80.0
    config = TrainConfig(max_epochs=100, batch_size=16, lr=1e-2, loss="mse")
    fit(model, spec.encode(only_0_30), np.arange(64), [], config, progress=False)
    atoms = pd.DataFrame({"a": 0.0, "top_cm": [0.0, 5.0, 15.0], "bottom_cm": [5.0, 15.0, 30.0]})
    soc = np.expm1(predict(model, spec.encode(atoms), mc_passes=1, dropout=False).mean)
    whole = np.expm1(predict(model, spec.encode(only_0_30), mc_passes=1, dropout=False).mean)
    assert whole[0] == pytest.approx(80.0, rel=0.01)
    assert (5 * soc[0] + 10 * soc[1] + 15 * soc[2]) / 30 == pytest.approx(whole[0], rel=1e-5)

"""The fixed-weight mixture of table models that share the network (``socmap.model.mixture``)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from _runs import meuse_bundle, meuse_cores, meuse_cube
from socmap.cube import open_cube
from socmap.errors import ConfigError
from socmap.model.mixture import MixedRegressor
from socmap.model.transfer import transfer_methods


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixture")
    cube = meuse_cube(root)
    cores = meuse_cores(cube, n=40)
    bundle = meuse_bundle(cube, cores, root / "bundle")
    # the region's cores lie above what the network learnt: something to correct
    shifted = meuse_cores(cube, n=40, seed=1, shift=0.5)
    bands = [str(b) for b in open_cube(cube).band.values]
    return bundle, shifted, bands


def _methods(setting, names, **kw):
    bundle, _, bands = setting
    return transfer_methods(names, bundle, bands, [], block_size=300.0, n_estimators=20,
                            mc_passes=4, **kw)  # fmt: skip


def test_prior_stacked_is_the_mean_of_its_two_members_in_log_space(setting):
    _, table, _ = setting
    methods = _methods(setting, ["prior-stacked", "prior-residual", "stacked"])
    mixed = methods["prior-stacked"].fit(table)
    residual = methods["prior-residual"].fit(table)
    stacked = methods["stacked"].fit(table)
    assert mixed.weights_ == pytest.approx([2 / 3, 1 / 3])  # PRIOR_STACKED, normalised
    mean, sd = mixed.predict_log(table)
    (m1, s1), (m2, s2) = residual.predict_log(table), stacked.predict_log(table)
    np.testing.assert_allclose(mean, (2 * m1 + m2) / 3, rtol=1e-12)
    # the network's sd enters once, times the summed slope (2/3: only prior-residual has
    # one), and the tree spreads add as independent: here that is hypot(2 s1, s2) / 3
    np.testing.assert_allclose(sd, np.hypot(2 * s1, s2) / 3, rtol=1e-12)
    assert mixed.adjustment().slope == pytest.approx(2 / 3)
    even = clone(mixed).set_params(weights=[1, 1]).fit(table)
    np.testing.assert_allclose(even.predict_log(table)[0], (m1 + m2) / 2, rtol=1e-12)


def test_members_that_do_not_share_one_network_or_weights_that_do_not_fit_are_refused(setting):
    _, table, _ = setting
    residual = _methods(setting, ["prior-residual"])["prior-residual"]
    other = _methods(setting, ["stacked"], seed=1)["stacked"]  # another dropout seed
    with pytest.raises(ConfigError, match="must use the same pretrained network as its"):
        MixedRegressor([residual, other]).fit(table)
    with pytest.raises(ConfigError, match=r"two or more members and one positive weight each"):
        MixedRegressor([residual]).fit(table)
    with pytest.raises(ConfigError, match=r"weights \[1, -1\]"):
        MixedRegressor([residual, residual], weights=[1, -1]).fit(table)

"""Bayesian prior combination: the precision-weighted formula and a run's posterior maps."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from hypothesis import given
from hypothesis import strategies as st

from _runs import meuse_bundle, meuse_cores, meuse_cube
from socmap.posterior import combine

finite = st.floats(0.1, 100)


@given(finite, finite, finite, finite)
def test_posterior_lies_between_and_is_surer_than_both(m1, s1, m0, s0):
    mean, se, w0 = (float(v) for v in combine(m1, s1, m0, s0))
    assert min(m0, m1) - 1e-9 <= mean <= max(m0, m1) + 1e-9
    assert se <= min(s0, s1) + 1e-12
    assert w0 == pytest.approx(s1**2 / (s0**2 + s1**2))


def test_missing_prior_passes_the_prediction_and_missing_prediction_stays_nan():
    mean, se, w0 = combine(
        [10.0, np.nan, 10.0], [2.0, 1.0, 2.0], [np.nan, 5.0, 5.0], [1.0, 1.0, 0.0]
    )
    assert mean[0] == 10.0 and se[0] == 2.0 and w0[0] == 0.0
    assert np.isnan([mean[1], se[1], w0[1]]).all()
    assert mean[2] == 10.0 and w0[2] == 0.0  # a prior with se 0 is not usable


def test_posterior_for_a_run(tmp_path, cli):
    from socmap.posterior import posterior_for_run
    from socmap.predict import predict_cube

    cube_path = meuse_cube(tmp_path, chunk=64)
    bundle = meuse_bundle(cube_path, meuse_cores(cube_path, n=60), tmp_path / "b",
                          intervals=[(0.0, 15.0)])  # fmt: skip
    run = predict_cube(bundle, cube_path, tmp_path / "run", passes=4, workers=0, exports=False,
                       progress=False)  # fmt: skip
    grid = run.grid
    prior_mean = np.full(grid.shape, 300.0, dtype=np.float32)  # SoilGrids dg/kg: 30 g/kg
    prior_mean[:10] = -32768.0  # nodata
    prior_se = np.full(grid.shape, 50.0, dtype=np.float32)  # 5 g/kg
    paths = []
    for name, values in (("mean", prior_mean), ("se", prior_se)):
        path = tmp_path / f"prior_{name}.tif"
        with rasterio.open(path, "w", driver="GTiff", height=grid.height, width=grid.width,
                           count=1, dtype="float32", crs=grid.crs, transform=grid.transform,
                           nodata=-32768.0) as dst:  # fmt: skip
            dst.write(values, 1)
        paths.append(path)
    res = posterior_for_run(run.path, {"0-15cm": tuple(paths)}, soilgrids="soc")
    post = __import__("xarray").open_zarr(res.path, zarr_format=3, consolidated=False)["posterior"]
    soc = run.open()["soc"]
    m1 = soc.sel(stat="mean", depth="0-15cm").values
    s1 = soc.sel(stat="sd", depth="0-15cm").values
    mapped = np.isfinite(m1)
    expected, _, _ = combine(m1, s1, np.where(prior_mean > 0, prior_mean / 10, np.nan), 5.0)
    got = post.sel(stat="mean", depth="0-15cm").values
    np.testing.assert_allclose(got[mapped], expected[mapped], rtol=1e-5)
    assert (post.sel(stat="prior_weight", depth="0-15cm").values[:10][mapped[:10]] == 0).all()
    assert res.pixels_without_prior["0-15cm"] == int(mapped[:10].sum())
    assert 0 < res.mean_prior_weight["0-15cm"] < 1
    from socmap.errors import ConfigError

    with pytest.raises(ConfigError, match="not layers of the run"):
        posterior_for_run(run.path, {"0-30cm": tuple(paths)})

    assert cli(["posterior", run.path, "--prior", f"0-15cm={paths[0]},{paths[1]}",
                "--soilgrids", "soc"]) == 0  # fmt: skip
    assert cli(["posterior", run.path, "--prior", "0-15cm=only_one.tif"]) == 2

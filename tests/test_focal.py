"""Focal (neighbourhood) covariates: window means, tiling invariance, sampling at sites."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from socmap.cube import band_table, build_cube, open_cube
from socmap.errors import BandMismatch, ConfigError, GridMismatch
from socmap.extraction import extract_focal
from socmap.focal import FocalSpec, focal_band_table, focal_mean, window_at


def _brute_force(block: np.ndarray, r: int) -> np.ndarray:
    _, h, w = block.shape
    out = np.full((block.shape[0], h - 2 * r, w - 2 * r), np.nan)
    for i in range(h - 2 * r):
        for j in range(w - 2 * r):
            win = block[:, i : i + 2 * r + 1, j : j + 2 * r + 1].reshape(block.shape[0], -1)
            for b in range(block.shape[0]):
                ok = np.isfinite(win[b])
                if ok.any():
                    out[b, i, j] = win[b, ok].mean()
    return out


@given(
    arrays(
        np.float32,
        (2, 9, 8),
        elements=st.one_of(st.just(np.nan), st.floats(-100, 100, width=32)),
    ),
    st.integers(1, 3),
)
def test_focal_mean_is_the_nan_aware_window_mean(block, r):
    np.testing.assert_allclose(focal_mean(block, r), _brute_force(block, r), rtol=1e-5, atol=1e-4)


@given(st.integers(0, 6), st.integers(0, 6), st.integers(1, 3))
def test_a_pixel_does_not_depend_on_the_window_holding_it(row0, col0, r):
    """Bitwise: any sub-block (with its halo) gives the same values as the whole array."""
    rng = np.random.default_rng(row0 * 7 + col0)
    block = rng.normal(size=(3, 20, 20)).astype(np.float32)
    block[:, 4:6, 5:9] = np.nan
    whole = focal_mean(block, r)
    part = focal_mean(block[:, row0 : row0 + 2 * r + 5, col0 : col0 + 2 * r + 4], r)
    assert np.array_equal(part, whole[:, row0 : row0 + 5, col0 : col0 + 4], equal_nan=True)


def test_focal_mean_rejects_a_block_smaller_than_its_window():
    with pytest.raises(GridMismatch, match=r"too small for focal radius 2: it needs at least 5"):
        focal_mean(np.zeros((1, 4, 9)), 2)


def test_focal_spec_validates_and_names_its_bands():
    assert FocalSpec(["elev"], 3).names == ["elev_focal3"]
    with pytest.raises(ConfigError, match="radius >= 1"):
        FocalSpec(["elev"], 0)
    with pytest.raises(ConfigError, match="at least one band"):
        FocalSpec([], 2)


@pytest.fixture(scope="module")
def meuse_cube(tmp_path_factory):
    path = build_cube("meuse", None, tmp_path_factory.mktemp("focal") / "m.zarr", progress=False)
    return open_cube(path)


def test_band_table_gains_a_continuous_focal_group(meuse_cube):
    spec = FocalSpec(["dist"], 2)
    table = focal_band_table(band_table(meuse_cube), spec)
    row = table.iloc[-1]
    assert (row["name"], row["kind"], row["group"]) == ("dist_focal2", "continuous", "focal")
    with pytest.raises(BandMismatch, match="not continuous cube bands"):
        focal_band_table(band_table(meuse_cube), FocalSpec(["soil"], 2))


def test_sites_get_the_values_the_map_has_at_their_pixels(meuse_cube):
    spec = FocalSpec(["dist"], 2)
    values = meuse_cube.sel(band=list(spec.bands)).values
    r = spec.radius
    padded = np.pad(values, ((0, 0), (r, r), (r, r)), constant_values=np.nan)
    focal_map = focal_mean(padded, r)
    # corner pixels (windows past the grid edge) and interior ones, plus an outside site
    pixels = [(0, 0), (1, meuse_cube.sizes["x"] - 1), (40, 30), (60, 20)]
    sites = pd.DataFrame(
        {
            "site_id": [f"s{i}" for i in range(len(pixels))] + ["out", "out"],
            "x": [float(meuse_cube.x[c]) for _, c in pixels] + [0.0, 0.0],
            "y": [float(meuse_cube.y[r_]) for r_, _ in pixels] + [0.0, 0.0],
            "crs": "EPSG:28992",
            "top_cm": [0.0] * len(pixels) + [0.0, 15.0],
        }
    )
    table = extract_focal(meuse_cube, sites, spec)
    assert len(table) == len(sites)  # nothing dropped
    for i, (row, col) in enumerate(pixels):
        got = table.loc[i, spec.names].to_numpy(dtype=np.float32)
        assert np.array_equal(got, focal_map[:, row, col], equal_nan=True)
    assert table.loc[table["site_id"] == "out", spec.names].isna().all().all()
    with pytest.raises(BandMismatch, match="already has columns"):
        extract_focal(meuse_cube, table, spec)
    with pytest.raises(BandMismatch, match="not continuous cube bands"):
        extract_focal(meuse_cube, sites, FocalSpec(["elev"], 1))
    with pytest.raises(BandMismatch, match="not continuous cube bands"):
        extract_focal(meuse_cube, sites, FocalSpec(["ffreq"], 1))


def test_window_at_pads_beyond_the_grid(meuse_cube):
    win = window_at(meuse_cube, 0, 0, 1)
    assert win.shape == (meuse_cube.sizes["band"], 3, 3)
    assert np.isnan(win[:, 0, :]).all() and np.isnan(win[:, :, 0]).all()
    np.testing.assert_array_equal(win[:, 1:, 1:], meuse_cube.values[:, :2, :2])

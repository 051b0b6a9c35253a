import numpy as np
import pandas as pd
import pytest

from socmap.catalog import embedded_data_dir, load_catalog
from socmap.cube import build_cube, open_cube
from socmap.depth import harmonise
from socmap.errors import ConfigError
from socmap.profiles import read_edgeroi
from socmap.training import global_context_covariates, regional_training_table


@pytest.fixture(scope="module")
def edgeroi_cube(tmp_path_factory):
    out = tmp_path_factory.mktemp("edgeroi") / "cube.zarr"
    return open_cube(build_cube("edgeroi", None, out, progress=False))


@pytest.mark.slow
def test_edgeroi_regional_table(edgeroi_cube):
    profiles = read_edgeroi()
    rt = regional_training_table(profiles, edgeroi_cube, max_depth_cm=100)
    t = rt.table
    # 0-5, 5-15, 15-30, 30-60, 60-100 for every one of the 359 sites: nothing dropped
    assert len(t) == 359 * 5 == rt.counts["rows"]
    assert sorted(t["top_cm"].unique()) == [0, 5, 15, 30, 60]
    assert rt.regional_bands == load_catalog("edgeroi").band_names
    assert rt.global_bands == load_catalog("global_10arcmin").band_names
    # every covariate's units, for the bundle (mapping other units is then refused)
    assert rt.band_units == {**load_catalog("global_10arcmin").band_units,
                             **load_catalog("edgeroi").band_units}  # fmt: skip
    assert rt.counts["spline_ok"] == 325 and rt.counts["spline_no_data"] == 34
    assert rt.counts["extract_ok"] + rt.counts["extract_partial_nodata"] == 359
    # the global covariates agree with the staged table sampled by independent code
    ref = pd.read_csv(embedded_data_dir() / "edgeroi/edgeroi_sites_with_global_covariates.csv")
    ref = ref.set_index("profile_id")
    got = t.drop_duplicates("site_id").set_index("site_id")
    for band in rt.global_bands:
        np.testing.assert_allclose(got[band], ref.loc[got.index, band], rtol=1e-6, err_msg=band)
    # splines fitted once by the caller give the same table
    h = harmonise(profiles, "globalsoilmap", value_cols=("soc_g_kg",))
    again = regional_training_table(profiles, edgeroi_cube, max_depth_cm=100, harmonised=h)
    pd.testing.assert_frame_equal(again.table, t)
    assert again.counts == rt.counts
    with pytest.raises(ConfigError, match="not those of depth set 'vm0033'"):
        regional_training_table(profiles, edgeroi_cube, depths="vm0033", harmonised=h)
    with pytest.raises(ConfigError, match="other sites than the profiles"):
        regional_training_table(profiles.iloc[:50], edgeroi_cube, harmonised=h)


def test_global_context_covariates_in_any_crs():
    sites = pd.DataFrame(
        {"site_id": ["a", "b"], "x": [36.82, 758572.8], "y": [-1.29, 6661724.4],
         "crs": ["EPSG:4326", "EPSG:28355"]}
    )  # fmt: skip
    g = global_context_covariates(sites)
    assert list(g["site_id"]) == ["a", "b"]
    nairobi, edgeroi = g.iloc[0], g.iloc[1]
    assert 15 < nairobi["wc_bio1_mat_degC"] < 22 and nairobi["etopo_elev_m"] > 1200
    assert 18 < edgeroi["wc_bio1_mat_degC"] < 20


def _topsoil_sites(cube, every: int, n: int) -> pd.DataFrame:
    """``n`` 0-30 cm cores on every ``every``-th valid pixel of a meuse cube."""
    valid = np.argwhere(np.isfinite(cube.values).all(axis=0))[::every][:n]
    return pd.DataFrame(
        {"site_id": [f"s{i}" for i in range(len(valid))],
         "x": cube.x.values[valid[:, 1]], "y": cube.y.values[valid[:, 0]], "crs": "EPSG:28992",
         "top_cm": 0.0, "bottom_cm": 30.0, "soc_g_kg": np.linspace(10, 40, len(valid))}
    )  # fmt: skip


def test_a_stand_in_band_fills_its_global_input(tmp_path):
    cat = load_catalog("meuse")
    dem = cat["dist"].model_copy(update={"name": "dem", "units": "m",
                                         "stands_for": "etopo_elev_m"})  # fmt: skip
    cat = cat.model_copy(update={"covariates": (*cat.covariates, dem)})
    cube = open_cube(build_cube(cat, None, tmp_path / "c.zarr", progress=False))
    profiles = _topsoil_sites(cube, every=50, n=12)
    rt = regional_training_table(profiles, cube, depths="0-30")
    t = rt.table
    np.testing.assert_array_equal(t["etopo_elev_m"], t["dem"])  # not the 10' elevation
    assert "etopo_elev_m" not in rt.global_bands and "wc_bio1_mat_degC" in rt.global_bands
    assert rt.counts["stand_in_etopo_elev_m"] == len(profiles)


def test_profiles_that_fail_qc_stop_training_unless_accepted(tmp_path):
    from socmap.errors import ProfileValidationError

    cube = open_cube(build_cube("meuse", None, tmp_path / "c.zarr", progress=False))
    profiles = _topsoil_sites(cube, every=20, n=6)
    profiles.loc[0, "soc_g_kg"] = 1e12  # a typo a spline would carry into the model
    with pytest.raises(ProfileValidationError, match=r"fail QC: soc_out_of_range \(1 rows, 1 "
                       r"sites.*--accept-qc soc_out_of_range"):  # fmt: skip
        regional_training_table(profiles, cube, depths="0-30", global_catalog=None)
    with pytest.raises(ProfileValidationError, match=r"--accept-qc \['typo'\] names no QC check"):
        regional_training_table(profiles, cube, depths="0-30", accept_qc=["typo"])
    rt = regional_training_table(
        profiles, cube, depths="0-30", global_catalog=None, accept_qc=["soc_out_of_range"]
    )
    assert rt.counts["qc_accepted_soc_out_of_range"] == 1

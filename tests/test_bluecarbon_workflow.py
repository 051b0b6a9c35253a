"""The blue-carbon MMRV template pair from reading to VM0033 depths."""

from pathlib import Path

import numpy as np
import pytest

from socmap.depth import harmonise
from socmap.profiles import qc_profiles, read_bluecarbon

DATA = Path(__file__).parent / "data" / "bluecarbon"


@pytest.fixture(scope="module")
def cores():
    return read_bluecarbon(DATA / "core_locations.csv", DATA / "core_samples.csv")


@pytest.fixture(scope="module")
def vm0033(cores):
    return harmonise(cores, "vm0033", value_cols=("soc_g_kg", "bd_g_cm3"))


def _weighted_mean(core, top, bottom, col):
    lo = np.clip(core["top_cm"], top, bottom)
    hi = np.clip(core["bottom_cm"], top, bottom)
    w = (hi - lo).to_numpy()
    return float((w * core[col].to_numpy()).sum() / w.sum())


def test_every_core_has_every_vm0033_interval(cores, vm0033):
    assert qc_profiles(cores).flags.empty
    table = vm0033.table
    assert len(table) == cores["site_id"].nunique() * 4
    assert sorted(table["top_cm"].unique()) == [0, 15, 30, 50]
    assert set(table["stratum"]) == {"mangrove", "saltmarsh"}
    assert vm0033.summary()["overlapping_horizons"] == 0


@pytest.mark.parametrize("col", ["soc_g_kg", "bd_g_cm3"])
def test_fine_5cm_core_gives_thickness_weighted_means(cores, vm0033, col):
    core = cores[cores["site_id"] == "MG-01"]
    exact = harmonise(core, "vm0033", value_cols=(col,), lam=0.0).table.set_index("top_cm")[col]
    smooth = vm0033.table[vm0033.table["site_id"] == "MG-01"].set_index("top_cm")[col]
    for top, bottom in [(0, 15), (15, 30), (30, 50), (50, 100)]:
        expected = _weighted_mean(core, top, bottom, col)
        # VM0033 limits fall on 5-cm sample limits: without smoothing the spline is exact,
        # with the default lambda = 0.1 it stays close (the BD fixture is noisier).
        assert exact[top] == pytest.approx(expected, rel=1e-6)
        assert smooth[top] == pytest.approx(expected, rel=0.05)


def test_composite_core_is_copied_and_not_extrapolated(cores, vm0033):
    value = cores.loc[cores["site_id"] == "SM-01", "soc_g_kg"].item()
    got = vm0033.table[vm0033.table["site_id"] == "SM-01"].set_index("top_cm")["soc_g_kg"]
    assert got[0] == pytest.approx(value) and got[15] == pytest.approx(value)
    assert np.isnan(got[30]) and np.isnan(got[50])
    status = vm0033.sites.set_index("site_id").loc["SM-01", "status"]
    assert status == "single_horizon"

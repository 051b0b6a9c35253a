"""Stock change between two runs: the change map, the stratum table, self-comparison, errors."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import zarr
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import special

from _runs import meuse_bundle, meuse_cores, meuse_cube, meuse_run
from socmap.compare import CHANGE_STATS, change_by_stratum, change_stats, compare_runs
from socmap.errors import ConfigError, GridMismatch, OutputExists

Z90 = 1.6448536269514722  # standard normal 95th percentile
Z95 = 1.959963984540054  # 97.5th


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two surveys of meuse: B's bundle adds 30 cores from a richer later survey.

    B has one stock total A lacks (0-20 cm), so a layer of one run only is on hand.
    """
    root = tmp_path_factory.mktemp("compare")
    cube = meuse_cube(root)
    cores_a = meuse_cores(cube, n=60, seed=0)
    cores_b = pd.concat(
        [cores_a, meuse_cores(cube, n=30, seed=1, shift=0.3, prefix="t")], ignore_index=True
    )
    bundle_a = meuse_bundle(cube, cores_a, root / "bundle_a")
    bundle_b = meuse_bundle(cube, cores_b, root / "bundle_b")
    a = meuse_run(bundle_a, cube, root / "a", seed=0, cores=cores_a)
    b = meuse_run(bundle_b, cube, root / "b", seed=1, cores=cores_b, totals=[(0, 30), (0, 20)])
    result = compare_runs(a, b, root / "a_to_b", progress=False)
    return {"root": root, "cube": cube, "bundle_a": bundle_a, "a": a, "b": b, "result": result}


def _stock(run, layer):
    s = xr.open_zarr(run / "stock.zarr", zarr_format=3, consolidated=False)["stock"]
    return s.sel(stat="mean", depth=layer).values, s.sel(stat="sd", depth=layer).values


def _change(result):
    return xr.open_zarr(result.path / "change.zarr", zarr_format=3, consolidated=False)["change"]


def _strata(run):
    return pd.read_csv(run / "strata" / "strata.csv", dtype={"stratum": str})


def test_change_map_is_b_minus_a_with_the_independent_sd(runs):
    res = runs["result"]
    assert res.layers == ["0-15cm", "15-30cm", "0-30cm"]
    assert res.layers_only_a == [] and res.layers_only_b == ["0-20cm"]
    change = _change(res)
    assert list(change["stat"].values) == list(CHANGE_STATS)
    assert change.data.chunksize[-2:] == (32, 32)  # the runs' tiles
    from socmap.predict import open_run

    ha = open_run(runs["a"]).grid.pixel_areas_m2() / 1e4
    for layer in res.layers:
        ma, sa = _stock(runs["a"], layer)
        mb, sb = _stock(runs["b"], layer)
        got = {s: change.sel(stat=s, depth=layer).values for s in CHANGE_STATS}
        np.testing.assert_array_equal(got["mean"], mb - ma)  # float32, NaN where either is
        sd = np.sqrt(sa.astype(np.float64) ** 2 + sb.astype(np.float64) ** 2)
        np.testing.assert_allclose(got["sd"], sd, rtol=1e-6)
        np.testing.assert_allclose(got["ci90_low"], (mb - ma) - Z90 * sd, rtol=1e-5, atol=1e-4)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = special.ndtr((mb.astype(np.float64) - ma) / sd)
        np.testing.assert_allclose(got["p_increase"], p, rtol=1e-5, atol=1e-6)
        valid = np.isfinite(ma) & np.isfinite(mb)
        assert np.isnan(got["mean"][~valid]).all() and np.isfinite(got["mean"][valid]).all()
        up, down = got["ci90_low"] > 0, got["ci90_high"] < 0
        np.testing.assert_array_equal(got["significant"][up], 1)
        np.testing.assert_array_equal(got["significant"][down], -1)
        np.testing.assert_array_equal(got["significant"][valid & ~up & ~down], 0)
        px = res.pixels[layer]
        assert px["compared"] == int(valid.sum()) > 0
        assert px["nodata_both"] == int((~valid).sum())
        assert px["nodata_a_only"] == px["nodata_b_only"] == 0  # same cube, same nodata
        assert px["area_ha_compared"] == pytest.approx(float(ha[valid].sum()), rel=1e-9)
        assert px["area_ha_increase"] == pytest.approx(float(ha[up].sum()), rel=1e-9)
        expected = float(((mb - ma).astype(np.float64) * ha)[valid].sum() / ha[valid].sum())
        assert px["mean_change_t_c_ha"] == pytest.approx(expected, rel=1e-5)
    # the exports: every (layer, stat) as a COG equal to the store, a quicklook per layer
    cog = res.path / "cogs" / "change_0-30cm_mean.tif"
    with rasterio.open(cog) as src:
        np.testing.assert_array_equal(src.read(1), change.sel(stat="mean", depth="0-30cm"))
        assert src.units == ("t/ha",) and math.isnan(src.nodata)
    assert len(list((res.path / "cogs").glob("*.tif"))) == len(res.layers) * len(CHANGE_STATS)
    for layer in res.layers:
        png = res.path / "quicklooks" / f"change_{layer}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    meta = json.loads((res.path / "comparison.json").read_text())
    assert (
        meta["layers_only_b"] == ["0-20cm"] and "independent" in meta["assumptions"]["independence"]
    )
    assert "0-20cm" in res.describe() and "overstated" in res.describe()
    assert not meta["same_stock_options"] and "stock options differ" in res.describe()


def test_stratum_table_matches_a_hand_computation(runs):
    res = runs["result"]
    a = _strata(runs["a"]).set_index(["stratum", "layer"])
    b = _strata(runs["b"]).set_index(["stratum", "layer"])
    written = pd.read_csv(res.path / "change_by_stratum.csv", dtype={"stratum": str})
    pd.testing.assert_frame_equal(
        written.drop(columns=["n_cores_a", "n_cores_b"]),
        res.table.drop(columns=["n_cores_a", "n_cores_b"]),
        check_dtype=False,
    )
    assert len(res.table) == 3 * 3  # soil classes 1-3, three shared layers, none dropped
    for row in res.table.itertuples(index=False):
        ra, rb = a.loc[(row.stratum, row.layer)], b.loc[(row.stratum, row.layer)]
        change = rb["mean_t_c_ha"] - ra["mean_t_c_ha"]
        se = math.sqrt(ra["se_t_c_ha"] ** 2 + rb["se_t_c_ha"] ** 2)
        assert row.presence == "both" and not row.area_differs
        assert row.area_ha == ra["area_ha"] == rb["area_ha"]
        assert row.change_t_c_ha == pytest.approx(change, rel=1e-12)
        assert row.se_change_t_c_ha == pytest.approx(se, rel=1e-12)
        assert (row.ci90_low, row.ci90_high) == pytest.approx(
            (change - Z90 * se, change + Z90 * se)
        )
        assert (row.ci95_low, row.ci95_high) == pytest.approx(
            (change - Z95 * se, change + Z95 * se)
        )
        assert row.total_change_mg_c == pytest.approx(change * ra["area_ha"])
        assert row.total_change_t_co2e == pytest.approx(change * ra["area_ha"] * 44 / 12)
        assert row.conservative_change_t_c_ha == pytest.approx(change - Z90 * se)
        assert row.conservative_change_mg_c == pytest.approx((change - Z90 * se) * ra["area_ha"])
        assert row.significant_90 == (abs(change) > Z90 * se)
        assert (row.n_cores_a, row.n_cores_b) == (ra["n_cores"], rb["n_cores"])
    # B's cores include A's, so no stratum has fewer cores in B
    assert (res.table["n_cores_b"] >= res.table["n_cores_a"]).all()
    meta = json.loads((res.path / "change_by_stratum.json").read_text())
    assert (
        "sqrt" in meta["formulas"]["se_change_t_c_ha"]
        and "44/12" in meta["units"]["total_change_t_co2e"]
    )
    assert "independent" in meta["independence"] and "overstate" in meta["independence"]
    assert meta["same_strata_source"] and meta["strata_only_a"] == meta["strata_only_b"] == []


def test_a_run_compared_with_itself_a_link_or_a_copy_is_refused(runs, tmp_path, cli, capsys):
    # one run twice is no change: independent sds would call a loss out of nothing
    a = runs["a"]
    link = tmp_path / "link"
    link.symlink_to(a, target_is_directory=True)
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    out = tmp_path / "out"
    for b, why in ((a, "are the same folder"), (link, "are the same folder"),
                   (copy, "hold the same predictions")):  # fmt: skip
        with pytest.raises(ConfigError, match=rf"runs A .* and B '{re.escape(str(b))}' {why}"):
            compare_runs(a, b, out, exports=False, progress=False)
        assert not out.exists()
    assert cli(["compare", a, copy, "--out", out, "--strata", "soil", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "a change needs two different runs" in err
    assert str(a) in err and str(copy) in err and not out.exists()
    assert not runs["result"].metadata["same_run"]
    # two different runs compare in a fresh interpreter, as the CLI calls it (nothing
    # imported beforehand)
    code = (
        "import sys; from socmap.compare import compare_runs; "
        "compare_runs(sys.argv[1], sys.argv[2], sys.argv[3], exports=False, progress=False)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(a), str(runs["b"]), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_pixels_missing_in_one_run_stay_nan_and_are_counted(runs, tmp_path):
    clouded = tmp_path / "b_clouded"
    shutil.copytree(runs["b"], clouded)
    stock = zarr.open_array(store=str(clouded / "stock.zarr" / "stock"), mode="r+")
    stock[:, :, 40:60, 20:50] = np.nan  # e.g. cloud-masked imagery in the later run
    res = compare_runs(runs["a"], clouded, tmp_path / "out", exports=False, progress=False)
    ma, _ = _stock(runs["a"], "0-30cm")
    hole = np.zeros(ma.shape, dtype=bool)
    hole[40:60, 20:50] = True
    lost = int((hole & np.isfinite(ma)).sum())
    px = res.pixels["0-30cm"]
    assert px["nodata_b_only"] == lost > 0 and px["nodata_a_only"] == 0
    assert px["compared"] == runs["result"].pixels["0-30cm"]["compared"] - lost
    assert np.isnan(_change(res).sel(depth="0-30cm").values[:, hole]).all()
    assert f"{lost:,} in B only" in res.describe()


def test_strata_of_one_run_only_are_flagged_not_dropped(runs):
    a = _strata(runs["a"])
    b = _strata(runs["b"])
    b = b[b["stratum"] != "3"].copy()  # stratum 3 vanished from B ...
    new = b[b["stratum"] == "2"].assign(stratum="4")  # ... and a stratum 4 appeared
    b.loc[b["stratum"] == "2", "area_ha"] *= 0.9  # and B mapped less of stratum 2
    t = change_by_stratum(a, pd.concat([b, new], ignore_index=True), ["0-30cm"])
    t = t.set_index("stratum")
    assert list(t.index) == ["1", "2", "3", "4"]
    assert t.loc["3", "presence"] == "only_a" and t.loc["3", "direction"] == "only in A"
    assert t.loc["4", "presence"] == "only_b" and t.loc["4", "direction"] == "only in B"
    for s in ("3", "4"):
        assert np.isnan(t.loc[s, "change_t_c_ha"]) and not t.loc[s, "significant_90"]
    assert np.isnan(t.loc["4", "mean_a_t_c_ha"]) and np.isfinite(t.loc["4", "mean_b_t_c_ha"])
    assert t.loc["2", "area_differs"] and not t.loc["1", "area_differs"]
    assert t.loc["2", "area_ha"] == pytest.approx(0.9 * t.loc["2", "area_ha_a"])
    assert t.loc["2", "total_change_mg_c"] == pytest.approx(
        t.loc["2", "change_t_c_ha"] * t.loc["2", "area_ha"]
    )
    with pytest.raises(ConfigError, match=r"lists \(stratum, layer\)"):
        change_by_stratum(a, pd.concat([b, b]))
    with pytest.raises(ConfigError, match="lacks columns \\['se_t_c_ha'\\]"):
        change_by_stratum(a, b.drop(columns="se_t_c_ha"))


def test_missing_strata_are_computed_when_given_and_refused_otherwise(runs, tmp_path):
    c = meuse_run(runs["bundle_a"], runs["cube"], tmp_path / "c", seed=2, strata=None)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"run B .* no stratum table .*--strata soil as the"):
        compare_runs(runs["a"], c, out, progress=False)
    with pytest.raises(ConfigError, match=r"run A .* stratum table of other strata"):
        compare_runs(runs["a"], c, out, strata="ffreq", progress=False)
    assert not out.exists() and not (c / "strata").exists()
    res = compare_runs(runs["a"], c, out, strata="soil", exports=False, workers=0, progress=False)
    assert (c / "strata" / "strata.csv").is_file()
    assert sorted(res.table["stratum"].unique()) == ["1", "2", "3"]
    assert (res.table["presence"] == "both").all()
    # same bundle, another seed: only Monte Carlo noise between the runs
    assert res.table["change_t_c_ha"].abs().max() < res.table["se_change_t_c_ha"].max() * 4


def test_grid_mismatch_missing_stocks_and_bad_arguments_are_clear_errors(runs, tmp_path):
    from socmap.cube import build_cube
    from socmap.predict import open_run, predict_cube
    from socmap.stocks import stocks_for_run

    grid = open_run(runs["a"]).grid
    minx, miny, maxx, maxy = grid.bounds
    small = grid.crop((minx, miny, (minx + maxx) / 2, maxy))
    cube = build_cube("meuse", small, tmp_path / "half.zarr", chunk=32, progress=False)
    d = tmp_path / "d"
    predict_cube(runs["bundle_a"], cube, d, passes=2, workers=0, exports=False, progress=False)
    out = tmp_path / "out"
    with pytest.raises(
        ConfigError, match=rf"run B '{re.escape(str(d))}' has no stocks.*socmap stocks"
    ):
        compare_runs(runs["a"], d, out, progress=False)
    stocks_for_run(d, bd=1.3, workers=0, exports=False, progress=False)
    with pytest.raises(GridMismatch, match=r"shape \(104, 78\) != \(104, 39\).*remap") as err:
        compare_runs(runs["a"], d, out, progress=False)
    assert repr(grid) in str(err.value) and repr(small) in str(err.value)
    with pytest.raises(ConfigError, match=r"\['0-20cm'\] must be stock layers of both runs"):
        compare_runs(runs["a"], runs["b"], out, layers=["0-20cm"], progress=False)
    with pytest.raises(ConfigError, match="inside or contains run A"):
        compare_runs(runs["a"], runs["b"], runs["a"] / "change", progress=False)
    with pytest.raises(ConfigError, match="inside or contains run A"):  # would replace both runs
        compare_runs(runs["a"], runs["b"], runs["root"], overwrite=True, progress=False)
    with pytest.raises(ConfigError, match="not a prediction run"):
        compare_runs(tmp_path, runs["b"], out, progress=False)
    assert not out.exists() and not (runs["a"] / "change").exists()
    with pytest.raises(OutputExists, match="overwrite=True"):
        compare_runs(runs["a"], runs["b"], runs["result"].path, progress=False)
    one = compare_runs(runs["a"], runs["b"], out, layers=["0-30cm"], exports=False, progress=False)
    assert one.layers == ["0-30cm"] and set(one.table["layer"]) == {"0-30cm"}


# ---------------------------------------------------------------------- arithmetic
means = st.floats(0.0, 500.0)
ses = st.one_of(st.just(0.0), st.floats(0.0, 50.0))


def _row(mean, se, stratum="s"):
    return pd.DataFrame(
        {"stratum": [stratum], "layer": ["0-30cm"], "area_ha": [12.5], "unmapped_area_ha": [0.0],
         "mean_t_c_ha": [mean], "se_t_c_ha": [se], "n_cores": [4]}
    )  # fmt: skip


@given(means, ses, means, ses)
def test_interval_and_conservative_change_arithmetic(mean_a, se_a, mean_b, se_b):
    row = change_by_stratum(_row(mean_a, se_a), _row(mean_b, se_b)).iloc[0]
    back = change_by_stratum(_row(mean_b, se_b), _row(mean_a, se_a)).iloc[0]
    change, se = row["change_t_c_ha"], row["se_change_t_c_ha"]
    assert change == mean_b - mean_a and se == pytest.approx(math.hypot(se_a, se_b))
    # nested intervals around the change, of the normal widths
    assert row["ci95_low"] <= row["ci90_low"] <= change <= row["ci90_high"] <= row["ci95_high"]
    assert row["ci90_high"] - row["ci90_low"] == pytest.approx(2 * Z90 * se, abs=1e-9)
    # significant exactly when the 90 % interval excludes 0, and then P(increase) is extreme
    excludes = row["ci90_low"] > 0 or row["ci90_high"] < 0
    assert row["significant_90"] == excludes
    if se > 0:
        assume(abs(abs(change) / se - Z90) > 1e-6)  # away from the boundary's rounding
        assert excludes == (row["p_increase"] > 0.95 or row["p_increase"] < 0.05)
    # conservative: the lower bound; for an increase closer to zero, for a loss further
    cons = row["conservative_change_t_c_ha"]
    assert cons == row["ci90_low"] <= change
    if row["direction"] == "increase":
        assert 0 < cons <= change
    if row["direction"] == "decrease":
        assert cons <= change < 0 and abs(cons) >= abs(row["ci90_high"])
    if not excludes:
        assert cons <= 0  # no increase can be claimed
    assert row["conservative_change_mg_c"] == pytest.approx(cons * 12.5)
    assert row["total_change_t_co2e"] == pytest.approx(change * 12.5 * 44 / 12)
    # swapping the runs flips the change and keeps its uncertainty
    assert back["change_t_c_ha"] == -change and back["se_change_t_c_ha"] == se
    assert back["p_increase"] == pytest.approx(1 - row["p_increase"], abs=1e-12)
    assert back["significant_90"] == row["significant_90"]


@settings(max_examples=40)  # each example merges up to 20 strata; 40 cover the cases well
@given(st.lists(st.tuples(means, ses, means, ses), min_size=1, max_size=20))
def test_pixel_and_stratum_arithmetic_agree(values):
    ma, sa, mb, sb = (np.array(v) for v in zip(*values, strict=True))
    pix = change_stats(ma, sa, mb, sb)
    t = change_by_stratum(
        pd.concat([_row(m, s, f"s{i}") for i, (m, s) in enumerate(zip(ma, sa, strict=True))]),
        pd.concat([_row(m, s, f"s{i}") for i, (m, s) in enumerate(zip(mb, sb, strict=True))]),
    )
    np.testing.assert_array_equal(t["change_t_c_ha"], pix["mean"])
    np.testing.assert_array_equal(t["ci90_low"], pix["ci90_low"])
    np.testing.assert_array_equal(t["significant_90"], pix["significant"] != 0)
    nan = change_stats(ma, sa, np.full_like(mb, np.nan), sb)
    assert all(np.isnan(v).all() for v in nan.values())

"""Tiled inference: statistics, tiling invariance, resume after a kill, exports, scale-out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import zarr

from socmap.cube import band_table, build_cube, open_cube
from socmap.errors import BandMismatch, ConfigError, OutputExists, RasterError
from socmap.extraction import extract_focal
from socmap.focal import FocalSpec, focal_band_table
from socmap.model.estimator import SocNetRegressor
from socmap.predict import (
    STATS,
    load_tile_model,
    open_run,
    predict_block,
    predict_cube,
    with_focal,
)
from socmap.validate.aoa import site_aoa
from socmap.validate.calibrate import ConformalCalibrator

INTERVALS = [(0.0, 15.0), (15.0, 30.0), (30.0, 50.0)]


def _training_table(cube, n=120, seed=0, extra=None):
    """Sites on valid cube pixels with a synthetic SOC that depends on the covariates."""
    rng = np.random.default_rng(seed)
    values = cube.values
    valid = np.argwhere(np.isfinite(values).all(axis=0))
    pick = valid[rng.choice(len(valid), n, replace=False)]
    rows = []
    for i, (r, c) in enumerate(pick):
        dist, ffreq, soil = values[:, r, c]
        for top, bottom in INTERVALS:
            soc = np.exp(3.0 - 2.0 * dist - 0.3 * ffreq - top / 40 + rng.normal(0, 0.2))
            rows.append(
                {"site_id": f"s{i}", "x": float(cube.x[c]), "y": float(cube.y[r]),
                 "crs": "EPSG:28992", "top_cm": top, "bottom_cm": bottom, "dist": dist,
                 "ffreq": ffreq, "soil": soil, "soc_g_kg": soc, **(extra or {})}
            )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def meuse(tmp_path_factory):
    """A meuse cube in 32-pixel chunks (12 tiles, nodata outside the floodplain) and a bundle."""
    root = tmp_path_factory.mktemp("predict")
    cube_path = build_cube("meuse", None, root / "meuse32.zarr", chunk=32, progress=False)
    cube = open_cube(cube_path)
    table = _training_table(cube)
    est = SocNetRegressor(
        band_table(cube),
        network={"fusion_dim": 32, "head": (64, 32)},
        train={"max_epochs": 15, "patience": 15, "batch_size": 128},
        block_size=500.0,
        units="metres",
        mc_passes=8,
    ).fit(table)
    mean, sd = est.predict_log(table)
    calibration = ConformalCalibrator(min_group_size=10).fit(
        np.log1p(table["soc_g_kg"]), mean, sd, groups=table["top_cm"].map("{:g}".format)
    )
    aoa = site_aoa(table, ["dist"])
    bundle = est.save(
        root / "bundle",
        {"intervals": INTERVALS, "calibration": calibration.to_dict()},
        aoa=aoa,
    )
    return {"root": root, "cube": cube_path, "bundle": bundle, "table": table}


def test_block_statistics_and_nodata(meuse):
    tm = load_tile_model(meuse["bundle"])
    cube = open_cube(meuse["cube"])
    block = cube.values
    res = predict_block(tm, block, list(cube.band.values), passes=16, seed=3)
    soc = res["soc"]
    assert soc.shape == (len(STATS), len(INTERVALS), *block.shape[1:])
    nodata = ~np.isfinite(block).all(axis=0)
    assert nodata.any() and (~nodata).any()
    assert np.isnan(soc[:, :, nodata]).all()
    assert res["n_nodata"] == int(nodata.sum()) and res["n_valid"] == int((~nodata).sum())
    s = {name: soc[i][:, ~nodata] for i, name in enumerate(STATS)}
    assert (s["q05"] <= s["q50"]).all() and (s["q50"] <= s["q95"]).all()
    assert (s["sd"] > 0).all() and (s["mean"] >= s["q50"]).all()  # log-normal: mean > median
    # SOC falls with depth, as in the training data
    assert np.nanmedian(s["q50"][0]) > np.nanmedian(s["q50"][-1])
    # the AOA: DI of every valid pixel, 0/1 mask consistent with the threshold
    inside = res["aoa"][~nodata]
    np.testing.assert_array_equal(inside, res["di"][~nodata] <= tm.aoa.threshold_)
    assert np.isnan(res["aoa"][nodata]).all()
    # same seed, same numbers; another seed, other dropout masks
    again = predict_block(tm, block, list(cube.band.values), passes=16, seed=3)["soc"]
    np.testing.assert_array_equal(again, soc)
    other = predict_block(tm, block, list(cube.band.values), passes=16, seed=4)["soc"]
    assert not np.allclose(other[:, :, ~nodata], soc[:, :, ~nodata])


def test_tiled_run_equals_one_untiled_block(meuse, tmp_path):
    tm = load_tile_model(meuse["bundle"])
    cube = open_cube(meuse["cube"])
    whole = predict_block(tm, cube.values, list(cube.band.values), passes=8, batch_size=50, seed=1)
    run = predict_cube(
        meuse["bundle"], meuse["cube"], tmp_path / "run", passes=8, seed=1, workers=0,
        exports=False, progress=False,
    )  # fmt: skip
    assert run.summary["tiles"] == 12
    ds = run.open()
    np.testing.assert_allclose(ds["soc"].values, whole["soc"], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(ds["di"].values, whole["di"], rtol=1e-6)
    assert list(ds["stat"].values) == list(STATS)
    assert list(ds["depth"].values) == ["0-15cm", "15-30cm", "30-50cm"]


def test_exports_cogs_quicklooks_and_stac(meuse, tmp_path):
    import pystac

    run = predict_cube(
        meuse["bundle"], meuse["cube"], tmp_path / "run", passes=4, workers=0, progress=False
    )
    assert run.status == "complete"
    cogs = [run.path / p for p in run.exports["cogs"]]
    assert len(cogs) == len(INTERVALS) * len(STATS) + 2
    ds = run.open()
    with rasterio.open(run.path / "cogs" / "soc_15-30cm_q95.tif") as src:
        assert src.profile["tiled"] and src.units == ("g/kg",) and np.isnan(src.nodata)
        assert src.scales == (1.0,) and src.offsets == (0.0,)
        assert src.tags()["socmap_stat"] == "q95"
        np.testing.assert_array_equal(src.read(1), ds["soc"].sel(stat="q95", depth="15-30cm"))
        assert src.crs.to_epsg() == 28992
    pngs = [run.path / p for p in run.exports["quicklooks"]]
    assert all(p.stat().st_size > 2000 for p in pngs)
    # each layer is drawn over the kept frame: the same bytes as on a fresh figure
    from socmap.predict._export import _quicklook_canvas, write_quicklook

    last = run.path / run.exports["quicklooks"][-2]  # drawn after the others on the frame
    cog = run.path / "cogs" / f"{last.stem}.tif"
    _quicklook_canvas.cache_clear()
    title = f"SOC {last.stem.split('_')[1]} standard deviation"
    fresh = write_quicklook(cog, tmp_path / "fresh.png", title=title, units="g/kg", cmap="magma")
    assert fresh.read_bytes() == last.read_bytes()
    item = pystac.Item.from_file(str(run.path / "item.json"))
    assert "soc_0-15cm_mean" in item.assets
    href = item.assets["soc_0-15cm_mean"].get_absolute_href()
    assert href is not None and Path(href).is_file()
    props = item.properties
    assert props.get("proj:code") == "EPSG:28992" or props.get("proj:epsg") == 28992


def test_rerun_resumes_and_another_config_is_refused(meuse, tmp_path):
    out = tmp_path / "run"
    kw = {"passes": 4, "workers": 0, "exports": False, "progress": False}
    predict_cube(meuse["bundle"], meuse["cube"], out, **kw)
    again = predict_cube(meuse["bundle"], meuse["cube"], out, **kw)
    assert again.summary["tiles_resumed"] == again.summary["tiles"]
    with pytest.raises(OutputExists, match="passes"):
        predict_cube(meuse["bundle"], meuse["cube"], out, **{**kw, "passes": 5})
    redone = predict_cube(
        meuse["bundle"], meuse["cube"], out, overwrite=True, **{**kw, "passes": 5}
    )
    assert redone.config.passes == 5 and redone.summary["tiles_resumed"] == 0


@pytest.mark.parametrize(
    ("address", "message"),
    [("tcp://127.0.0.1:1", "no dask scheduler answered within 1 s; start one there"),
     ("notanaddress", "is not a dask scheduler address (missing port number")],
)  # fmt: skip
def test_a_bad_scheduler_is_refused_before_the_run_exists(
    meuse, tmp_path, cli, capsys, monkeypatch, address, message
):
    monkeypatch.setattr("socmap._parallel.SCHEDULER_TIMEOUT_S", 1.0)  # nothing listens on :1
    out = tmp_path / "run"
    argv = ["predict", meuse["bundle"], meuse["cube"], "--out", out, "--passes", "2"]
    start = time.perf_counter()
    assert cli([*argv, "--scheduler", address]) == 2
    assert time.perf_counter() - start < 15
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"--scheduler {address!r}" in err and message in err and "drop --scheduler" in err
    assert not out.exists()
    # the corrected command, with other options, is not refused as "another configuration"
    assert cli([*argv[:-1], "3", "--workers", "0"]) == 0


def test_damaged_runs_are_one_line(meuse, tmp_path, cli, capsys):
    import shutil

    out = tmp_path / "run"
    predict_cube(meuse["bundle"], meuse["cube"], out, passes=2, workers=0, exports=False,
                 progress=False)  # fmt: skip
    shutil.rmtree(out / "soc.zarr")
    assert cli(["report", out]) == 2
    err = capsys.readouterr().err
    assert "has no soc.zarr" in err and "socmap predict" in err and len(err.splitlines()) == 1
    (out / "run.json").write_text("{not json")
    assert cli(["stocks", out, "--bd", "1.3"]) == 2
    err = capsys.readouterr().err
    assert "damaged run.json" in err and len(err.splitlines()) == 1


def test_a_run_that_maps_no_pixel_fails(meuse, tmp_path, monkeypatch):
    import socmap.predict._engine as engine

    real = engine.mc_log

    def nan_model(*args, **kwargs):
        means, logvars = real(*args, **kwargs)
        return np.full_like(means, np.nan), logvars

    monkeypatch.setattr(engine, "mc_log", nan_model)
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())  # no passes of other tests
    with pytest.raises(RasterError, match=r"mapped no pixel: \d+ pixels lack a covariate and "):
        predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "r", passes=2, workers=0,
                     exports=False, progress=False)  # fmt: skip
    assert json.loads((tmp_path / "r" / "run.json").read_text())["status"] == "failed"


def test_overwrite_never_deletes_a_folder_that_is_not_a_run(meuse, tmp_path, cli, capsys):
    mine = tmp_path / "fieldwork"
    mine.mkdir()
    (mine / "notes.csv").write_text("site,soc\n")
    code = cli(["predict", meuse["bundle"], meuse["cube"], "--out", mine, "--overwrite",
                "--passes", "2", "--workers", "0"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "is not a socmap prediction run" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in mine.iterdir()) == ["notes.csv"]


_KILLER = """
import os, signal, sys
import socmap.predict._run as r
original, calls = r._run_tile, []
def dying(job):
    calls.append(job)
    if len(calls) == 5:
        # half-write this tile's region, then die as SIGKILL would leave it
        r._array(job.out, "soc", "r+")[0, 0, job.row0:job.row1, job.col0:job.col1] = 123.0
        os.kill(os.getpid(), signal.SIGKILL)
    return original(job)
r._run_tile = dying
import socmap.predict as p
p.predict_cube(sys.argv[1], sys.argv[2], sys.argv[3], passes=4, seed=2, workers=0,
               progress=False)
"""


def test_resume_after_sigkill_is_bitwise_identical(meuse, tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLER, str(meuse["bundle"]), str(meuse["cube"]), str(killed)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(list((killed / "tiles").glob("*.json"))) == 4
    assert open_run(killed).status == "running"
    resumed = predict_cube(
        meuse["bundle"], meuse["cube"], killed, passes=4, seed=2, workers=0, progress=False
    )
    assert resumed.summary["tiles_resumed"] == 4
    clean = predict_cube(
        meuse["bundle"], meuse["cube"], tmp_path / "clean", passes=4, seed=2, workers=0,
        progress=False,
    )  # fmt: skip
    for name in ("soc", "di", "aoa"):
        a = zarr.open_array(str(killed / "soc.zarr" / name), mode="r")[...]
        b = zarr.open_array(str(clean.path / "soc.zarr" / name), mode="r")[...]
        np.testing.assert_array_equal(a, b)
    assert not (np.asarray(a) == 123.0).any()
    for rel in clean.exports["cogs"]:
        with rasterio.open(killed / rel) as x, rasterio.open(clean.path / rel) as y:
            np.testing.assert_array_equal(x.read(), y.read())


def _bundle_with_extra_band(cube, table, band, group, out):
    """A small bundle that reads the cube's bands plus one continuous ``band``."""
    bands = pd.concat(
        [band_table(cube), pd.DataFrame([{"name": band, "kind": "continuous", "group": group}])],
        ignore_index=True,
    )
    est = SocNetRegressor(
        bands, network={"fusion_dim": 8, "head": (16, 8)}, train={"max_epochs": 2},
        block_size=500.0, units="metres",
    ).fit(table)  # fmt: skip
    return est.save(out, {"intervals": INTERVALS})


def test_band_mismatch_fails_before_any_output(meuse, tmp_path):
    cube = open_cube(meuse["cube"])
    table = meuse["table"].assign(elev_x=1.0)
    bundle = _bundle_with_extra_band(cube, table, "elev_x", "terrain", tmp_path / "b")
    with pytest.raises(BandMismatch, match="elev_x"):
        predict_cube(bundle, meuse["cube"], tmp_path / "run", workers=0, progress=False)
    assert not (tmp_path / "run").exists()


def test_global_context_bands_match_what_training_saw(meuse, tmp_path):
    from socmap.predict._context import sample_context
    from socmap.training import global_context_covariates

    cube = open_cube(meuse["cube"])
    table = meuse["table"]
    context = global_context_covariates(table)
    band = "wc_bio1_mat_degC"
    train = table.merge(context[["site_id", band]], on="site_id")
    bundle = _bundle_with_extra_band(cube, train, band, "climate", tmp_path / "b")
    run = predict_cube(bundle, meuse["cube"], tmp_path / "run", passes=2, workers=0,
                       exports=False, progress=False)  # fmt: skip
    assert run.config.context_bands == [band]
    # each pixel takes the global pixel containing its centre, as each site did
    grid = run.grid
    values, names = sample_context(run.path / "context.zarr", grid)
    rows = np.searchsorted(-grid.ys, -table["y"].to_numpy())
    cols = np.searchsorted(grid.xs, table["x"].to_numpy())
    at_sites = values[names.index(band), rows, cols]
    np.testing.assert_array_equal(at_sites, train[band].to_numpy())


def test_local_workers_are_threads_of_this_process(meuse, tmp_path, monkeypatch):
    import distributed

    def no_cluster(*args, **kwargs):
        raise AssertionError("a local run must not start worker processes")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    before = torch.get_num_threads()
    runs = {
        workers: predict_cube(
            meuse["bundle"], meuse["cube"], tmp_path / f"w{workers}", passes=4, seed=3,
            workers=workers, exports=False, progress=False,
        ).open()
        for workers in (1, 2)
    }  # fmt: skip
    assert torch.get_num_threads() == before  # the caller's torch setting is restored
    for name in ("soc", "di", "aoa"):
        np.testing.assert_array_equal(runs[1][name].values, runs[2][name].values)
    assert np.isfinite(runs[2]["soc"].values).any()


@pytest.mark.slow
def test_device_auto_maps_here_as_the_cpu_does_and_missing_cuda_is_refused(meuse, tmp_path):
    from socmap.predict import resolve_device

    common = {"passes": 4, "workers": 0, "exports": False, "progress": False}
    cpu = predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "cpu", **common)
    auto = predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "auto", device="auto", **common)
    a, b = cpu.open()["soc"].values, auto.open()["soc"].values
    if torch.cuda.is_available():  # auto took the GPU: the same map to float32 tolerance
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    else:
        np.testing.assert_array_equal(b, a)
    # the device is how, not what: the run resumes (nothing to do) on another device
    again = predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "cpu", device="auto", **common)
    assert again.summary["tiles_resumed"] == again.summary["tiles"]
    with pytest.raises(ConfigError, match=r"device 'tpu' must be one of \['cpu', 'cuda', 'auto'\]"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"device 'cuda': torch .* sees no CUDA GPU.*cpu"):
            predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "gpu", device="cuda", **common)
        assert not (tmp_path / "gpu").exists()  # refused before anything was written


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_maps_soc_and_stocks_as_the_cpu_does(meuse, tmp_path):
    from socmap.stocks import stocks_for_run

    common = {"passes": 8, "workers": 0, "exports": False, "progress": False}
    runs = {}
    for device in ("cpu", "cuda"):
        run = predict_cube(meuse["bundle"], meuse["cube"], tmp_path / device, device=device,
                           **common)  # fmt: skip
        stocks_for_run(run.path, bd=1.3, exports=False, progress=False, workers=0, device=device)
        runs[device] = run
    for store, var in (("soc.zarr", "soc"), ("stock.zarr", "stock")):
        cpu, gpu = (runs[d].open(store)[var].values for d in ("cpu", "cuda"))
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-3)


def test_distributed_run_equals_the_local_run(meuse, tmp_path):
    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    assert dask is not None
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
    ]  # fmt: skip
    try:
        for _ in range(300):
            if sched_file.exists():
                break
            time.sleep(0.1)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                     "--no-dashboard", "--host", "127.0.0.1"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                )
            )  # fmt: skip
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address) as client:
            client.wait_for_workers(2, timeout=60)
        remote = predict_cube(
            meuse["bundle"], meuse["cube"], tmp_path / "remote", passes=4, scheduler=address,
            exports=False, progress=False,
        )  # fmt: skip
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    local = predict_cube(
        meuse["bundle"], meuse["cube"], tmp_path / "local", passes=4, workers=2,
        exports=False, progress=False,
    )  # fmt: skip
    for name in ("soc", "di", "aoa"):
        a = zarr.open_array(str(remote.path / "soc.zarr" / name), mode="r")[...]
        b = zarr.open_array(str(local.path / "soc.zarr" / name), mode="r")[...]
        np.testing.assert_array_equal(a, b)
    records = [json.loads(p.read_text()) for p in (remote.path / "tiles").glob("*.json")]
    assert len(records) == 12


# ---------------------------------------------------------------------- patch models


@pytest.fixture(scope="module")
def patch_bundle(meuse):
    """A patch model: it also reads the 5 x 5 focal mean of distance to the river (halo 2)."""
    cube = open_cube(meuse["cube"])
    spec = FocalSpec(["dist"], 2)
    table = extract_focal(cube, meuse["table"], spec)
    est = SocNetRegressor(
        focal_band_table(band_table(cube), spec),
        network={"fusion_dim": 32, "head": (64, 32)},
        train={"max_epochs": 5, "patience": 5, "batch_size": 128},
        block_size=500.0,
        units="metres",
    ).fit(table)
    meta = {"intervals": INTERVALS, "focal": spec.to_dict()}
    return est.save(meuse["root"] / "patch_bundle", meta), table, spec


def test_patch_model_tiled_output_equals_untiled(meuse, patch_bundle, tmp_path):
    bundle, table, spec = patch_bundle
    tm = load_tile_model(bundle)
    assert tm.halo == 2 and tm.input_bands == ["dist", "ffreq", "soil"]
    cube = open_cube(meuse["cube"])
    padded = np.pad(cube.values, ((0, 0), (2, 2), (2, 2)), constant_values=np.nan)
    block, names = with_focal(tm, padded, list(cube.band.values))
    assert names[-1:] == spec.names and block.shape[1:] == cube.shape[1:]
    # what the model saw at the training sites is what the map has at their pixels
    rows, cols = (
        cube.get_index("y").get_indexer(table["y"]),
        cube.get_index("x").get_indexer(table["x"]),
    )
    for k, name in enumerate(spec.names):
        np.testing.assert_array_equal(block[len(cube.band) + k, rows, cols], table[name])
    whole = predict_block(tm, block, names, passes=4, seed=1)
    runs = {}
    for workers in (0, 2):
        run = predict_cube(
            bundle, meuse["cube"], tmp_path / f"run{workers}", passes=4, seed=1,
            workers=workers, exports=False, progress=False,
        )  # fmt: skip
        assert run.summary["tiles"] == 12
        runs[workers] = run.open()
    np.testing.assert_allclose(runs[0]["soc"].values, whole["soc"], rtol=2e-6, atol=1e-6)
    np.testing.assert_array_equal(runs[0]["soc"].values, runs[2]["soc"].values)
    # the halo matters: a tile's focal bands computed without its neighbours differ
    tile = np.pad(cube.values[:, 32:64, 32:64], ((0, 0), (2, 2), (2, 2)), constant_values=np.nan)
    alone, _ = with_focal(tm, tile, list(cube.band.values))
    focal_whole = block[len(cube.band) :, 32:64, 32:64]
    assert not np.array_equal(alone[len(cube.band) :], focal_whole, equal_nan=True)
    np.testing.assert_array_equal(alone[len(cube.band) :, 2:-2, 2:-2], focal_whole[:, 2:-2, 2:-2])


# ---------------------------------------------------------------------- stocks
@pytest.fixture(scope="module")
def finished_run(meuse, tmp_path_factory):
    out = tmp_path_factory.mktemp("stockrun") / "run"
    return predict_cube(
        meuse["bundle"], meuse["cube"], out, passes=8, workers=0, exports=False, progress=False
    )


def _stock(run, **kw):
    from socmap.stocks import stocks_for_run

    res = stocks_for_run(run.path, workers=0, exports=False, progress=False, overwrite=True, **kw)
    return res, run.open("stock.zarr")["stock"].load()


def test_stocks_are_linear_in_bd_and_totals_add_up(finished_run):
    res, a = _stock(finished_run, bd=1.3)
    _, b = _stock(finished_run, bd=0.65)
    assert res.labels == ["0-15cm", "15-30cm", "30-50cm", "0-30cm"]
    assert a.attrs["units"] == "t/ha"
    valid = np.isfinite(a.sel(stat="mean", depth="0-15cm")).values
    assert valid.any()
    # the same SOC draws (counter-based), so halving BD halves every statistic exactly
    np.testing.assert_allclose(a.values[:, :, valid], 2 * b.values[:, :, valid], rtol=1e-5)
    # the cumulative total is the sum of its intervals, draw by draw, so its mean is too
    total = a.sel(stat="mean", depth="0-30cm").values[valid]
    parts = a.sel(stat="mean", depth=["0-15cm", "15-30cm"]).sum("depth").values[valid]
    np.testing.assert_allclose(total, parts, rtol=1e-4)
    # nodata stays NaN, and the SOC-to-stock units: 15 cm x 1.3 g/cm3 x 0.1 per g/kg
    assert np.isnan(a.values[:, :, ~valid]).all()
    soc = finished_run.open()["soc"].sel(stat="q50", depth="0-15cm").values[valid]
    stock = a.sel(stat="q50", depth="0-15cm").values[valid]
    assert np.median(stock / soc) == pytest.approx(15 * 1.3 * 0.1, rel=0.15)


def test_per_stratum_bd_constants_scale_each_stratum(finished_run, tmp_path):
    """BD by the codes of a stratum band: each stratum's stocks scale with its own constant."""
    from socmap.stocks import read_stratum_bd

    table = tmp_path / "bd.csv"
    table.write_text("stratum,bd_g_cm3,bd_sd_g_cm3\n1,1.3,0\n2,0.65,0\n3,1.0,0\n")
    strata, default = read_stratum_bd(table)
    assert strata == {1.0: (1.3, 0.0), 2.0: (0.65, 0.0), 3.0: (1.0, 0.0)} and default is None
    res, by_stratum = _stock(finished_run, bd="strata:soil", bd_strata=strata)
    assert res.options["bd_strata"] == {"1": [1.3, 0.0], "2": [0.65, 0.0], "3": [1.0, 0.0]}
    _, unit = _stock(finished_run, bd=1.0)
    soil = open_cube(finished_run.config.cube).sel(band="soil").values
    for code, bd in ((1, 1.3), (2, 0.65), (3, 1.0)):
        where = (soil == code) & np.isfinite(unit.values[0, 0])
        assert where.any()
        np.testing.assert_allclose(
            by_stratum.values[:, :, where], bd * unit.values[:, :, where], rtol=1e-5
        )
    # an unlisted class without a default fails before any work; a default covers it
    with pytest.raises(ConfigError, match=r"classes \['3'\] without a bulk density"):
        _stock(finished_run, bd="strata:soil", bd_strata={1: (1.3, 0.0), 2: (0.65, 0.0)})
    res, _ = _stock(
        finished_run, bd="strata:soil", bd_strata={1: (1.3, 0.0)}, bd_default=(1.0, 0.1)
    )
    assert res.options["bd_default"] == [1.0, 0.1] and "bd_strata_unused" not in res.options
    # codes the band does not hold are recorded and said, not ignored without a word
    res, again = _stock(finished_run, bd="strata:soil", bd_strata={**strata, 9: (1.1, 0.0)})
    assert res.options["bd_strata_unused"] == ["9"]
    assert "BD table codes ['9'] are not classes of the stratum band" in res.describe()
    np.testing.assert_array_equal(again.values, by_stratum.values)
    with pytest.raises(ConfigError, match="needs a table"):
        _stock(finished_run, bd="strata:soil")
    with pytest.raises(BandMismatch, match="stratum band 'landuse'"):
        _stock(finished_run, bd="strata:landuse", bd_strata=strata)


def test_stocks_with_the_pedotransfer_function_resume_and_refuse_other_options(finished_run):
    from socmap.stocks import stocks_for_run

    res, ptf = _stock(finished_run, bd="ptf")
    assert res.options["bd"] == "ptf"
    mean = ptf.sel(stat="mean").values
    assert np.nanmin(mean) > 0 and np.isfinite(mean).any()
    again = stocks_for_run(finished_run.path, bd="ptf", workers=0, exports=False, progress=False)
    assert again.summary["tiles_resumed"] == again.summary["tiles"]
    with pytest.raises(OutputExists, match="other options"):
        stocks_for_run(finished_run.path, bd=1.2, workers=0, exports=False, progress=False)
    with pytest.raises(BandMismatch, match="bdod_x"):
        stocks_for_run(finished_run.path, bd="bdod_x", workers=0, progress=False)


def test_stocks_do_not_depend_on_tiling(meuse, tmp_path):
    whole_cube = build_cube("meuse", None, tmp_path / "m512.zarr", progress=False)
    runs = []
    for cube, name in ((meuse["cube"], "tiled"), (whole_cube, "whole")):
        run = predict_cube(meuse["bundle"], cube, tmp_path / name, passes=4, workers=0,
                           exports=False, progress=False)  # fmt: skip
        runs.append(_stock(run, bd="ptf")[1].values)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-4, atol=1e-4)


def test_stock_exports_join_the_stac_item(meuse, tmp_path):
    import pystac

    from socmap.stocks import stocks_for_run

    run = predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "run", passes=4, workers=0,
                       progress=False)  # fmt: skip
    stocks_for_run(run.path, bd=1.4, workers=0, progress=False)
    item = pystac.Item.from_file(str(run.path / "item.json"))
    assert "stock_0-30cm_mean" in item.assets and "soc_0-15cm_q05" in item.assets
    with rasterio.open(run.path / "cogs" / "stock_0-30cm_sd.tif") as src:
        assert src.units == ("t/ha",)


# ---------------------------------------------------------------------- strata


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--cf", "1.5"], "--cf 1.5 must be a coarse-fragment volume fraction"),
     (["--cf", "nan"], "--cf nan"),
     (["--bd-sd", "-0.1"], "--bd-sd -0.1 must be a finite number >= 0"),
     (["--cf-sd", "inf"], "--cf-sd inf"),
     (["--bd-units", "kg/m3"], "--bd-units 'kg/m3' is not one socmap reads"),
     (["--scheduler", "tcp://127.0.0.1:1"],
      "--scheduler 'tcp://127.0.0.1:1': no dask scheduler answered within 1 s"),
     (["--scheduler", "notanaddress"],
      "--scheduler 'notanaddress' is not a dask scheduler address")],
)  # fmt: skip
def test_bad_stock_options_are_refused_before_anything_is_written(
    meuse, tmp_path, cli, capsys, monkeypatch, option, message
):
    monkeypatch.setattr("socmap._parallel.SCHEDULER_TIMEOUT_S", 1.0)
    out = tmp_path / "run"
    predict_cube(meuse["bundle"], meuse["cube"], out, passes=2, workers=0, exports=False,
                 progress=False)  # fmt: skip
    before = (out / "run.json").read_text()
    assert cli(["stocks", out, "--bd", "1.3", *option, "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
    assert not (out / "stock.zarr").exists() and (out / "run.json").read_text() == before
    # the corrected command is not refused as "other options"
    assert cli(["stocks", out, "--bd", "1.3", "--workers", "0"]) == 0


def test_stratum_totals_agree_with_the_stock_maps(meuse, finished_run, tmp_path):
    from socmap.strata import strata_for_run

    _stock(finished_run, bd=1.3, bd_sd=0.1)
    res = strata_for_run(finished_run.path, "soil", workers=0, progress=False)
    table = res.table.set_index(["stratum", "layer"])
    assert sorted(res.table["stratum"].unique()) == ["1", "2", "3"]
    assert res.path.is_file() and (res.path.parent / "strata.json").is_file()
    stock = finished_run.open("stock.zarr")["stock"]
    soil = open_cube(meuse["cube"]).sel(band="soil").values
    area = finished_run.grid.pixel_areas_m2() / 1e4
    for code in ("1", "2", "3"):
        inside = soil == float(code)
        mean_map = stock.sel(stat="mean", depth="0-30cm").values
        mapped = inside & np.isfinite(mean_map)
        row = table.loc[(code, "0-30cm")]
        # the mean of the draws of the areal mean = the area-weighted mean of pixel means
        expected = float((mean_map[mapped] * area[mapped]).sum() / area[mapped].sum())
        assert row["mean_t_c_ha"] == pytest.approx(expected, rel=1e-6)
        assert row["area_ha"] == pytest.approx(float(area[mapped].sum()), rel=1e-9)
        assert row["unmapped_area_ha"] == pytest.approx(float(area[inside & ~mapped].sum()))
        assert row["total_mg_c"] == pytest.approx(expected * row["area_ha"], rel=1e-6)
        assert row["ci95_low"] < row["mean_t_c_ha"] < row["ci95_high"]
        # a whole-map realisation per draw: the areal mean is far surer than one pixel
        assert row["se_t_c_ha"] < np.nanmedian(stock.sel(stat="sd", depth="0-30cm").values[mapped])
    # rerunning resumes every tile; the metadata says how the numbers were made
    again = strata_for_run(finished_run.path, "soil", workers=0, progress=False)
    assert again.run.strata["summary"]["tiles_resumed"] == 12
    pd.testing.assert_frame_equal(again.table, res.table)
    meta = json.loads((res.path.parent / "strata.json").read_text())
    assert "44/12" in meta["units"]["total_t_co2e"] and "lower bound" in meta["approximation"]
    assert meta["config"]["min_cores"] == 3


def test_strata_from_polygons_with_cores_located_on_the_map(meuse, finished_run, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from socmap.strata import strata_for_run

    _stock(finished_run, bd=1.3)
    minx, miny, maxx, maxy = finished_run.grid.bounds
    mid = (minx + maxx) / 2
    polygons = gpd.GeoDataFrame(
        {"zone": ["west", "east"]},
        geometry=[box(minx, miny, mid, maxy), box(mid, miny, maxx, maxy)],
        crs="EPSG:28992",
    )
    polygons.to_file(tmp_path / "zones.gpkg")
    cores = meuse["table"][["site_id", "x", "y", "crs", "top_cm", "bottom_cm", "soc_g_kg"]]
    res = strata_for_run(
        finished_run.path, tmp_path / "zones.gpkg", field="zone", cores=cores, workers=0,
        progress=False,
    )  # fmt: skip
    t = res.table.set_index(["stratum", "layer"])
    n_west = int((cores.drop_duplicates("site_id")["x"] < mid).sum())
    assert t.loc[("west", "0-15cm"), "n_cores"] == n_west
    assert t.loc[("east", "0-15cm"), "n_cores"] == cores["site_id"].nunique() - n_west
    # the halves' areas add up to the grid's
    total = t.xs("0-15cm", level="layer")[["area_ha", "unmapped_area_ha"]].to_numpy().sum()
    assert total == pytest.approx(finished_run.grid.pixel_areas_m2().sum() / 1e4, rel=1e-9)
    assert t["cores_needed"].notna().all() and (t["additional_cores"] >= 0).all()
    with pytest.raises(ConfigError, match="lack the column 'stratum'"):
        strata_for_run(finished_run.path, tmp_path / "zones.gpkg", workers=0, progress=False)


def test_strata_polygons_that_cover_no_pixel_fail_clearly(meuse, finished_run, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from socmap.strata import strata_for_run

    _stock(finished_run, bd=1.3)
    minx, miny, maxx, maxy = finished_run.grid.bounds
    before = sorted(p.name for p in finished_run.path.iterdir())

    def write(name, frame):
        frame.to_file(tmp_path / name)
        return tmp_path / name

    inside = box(minx, miny, maxx, maxy)
    cases = {  # the most common mistake: metre coordinates labelled as degrees
        "wrong_crs.gpkg": (gpd.GeoDataFrame({"stratum": ["a"]}, geometry=[inside],
                                            crs="EPSG:4326"), "CRS label is probably wrong"),
        "outside.gpkg": (gpd.GeoDataFrame({"stratum": ["a"]}, geometry=[
            box(maxx + 1e4, maxy + 1e4, maxx + 2e4, maxy + 2e4)], crs="EPSG:28992"),
            "check the file's CRS"),
        "empty.gpkg": (gpd.GeoDataFrame({"stratum": ["a"]}, geometry=[None],
                                        crs="EPSG:28992"), "no feature with both"),
        "unnamed.gpkg": (gpd.GeoDataFrame({"stratum": ["a", None]}, geometry=[inside, inside],
                                          crs="EPSG:28992"),
                         r"1 features .* geometry but no 'stratum' value \(feature rows \[1\]\)"),
    }  # fmt: skip
    for name, (frame, message) in cases.items():
        with pytest.raises(ConfigError, match=message):
            strata_for_run(finished_run.path, write(name, frame), workers=0, progress=False)
    corrupt = tmp_path / "corrupt.gpkg"
    corrupt.write_bytes(b"SQLite format 3\x00 but not really")
    with pytest.raises(ConfigError, match=r"cannot read stratum polygons .*corrupt\.gpkg"):
        strata_for_run(finished_run.path, corrupt, workers=0, progress=False)
    assert sorted(p.name for p in finished_run.path.iterdir()) == before  # nothing written

    # a stratum smaller than a pixel, or without geometry, is named, not silently dropped
    tiny = box(minx, miny, minx + 1.0, miny + 1.0)
    frame = gpd.GeoDataFrame({"stratum": ["all", "tiny", "lost"]}, geometry=[inside, tiny, None],
                             crs="EPSG:28992")  # fmt: skip
    res = strata_for_run(finished_run.path, write("tiny.gpkg", frame), workers=0, progress=False)
    assert set(res.table["stratum"]) == {"all"}
    assert res.metadata["strata_without_pixels"] == ["lost", "tiny"]


def test_strata_need_stocks_first(meuse, tmp_path):
    from socmap.strata import strata_for_run

    run = predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "r", passes=2, workers=0,
                       exports=False, progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="has no stocks yet"):
        strata_for_run(run.path, "soil", workers=0, progress=False)


def test_cli_predict_with_stocks_gives_the_bytes_of_predict_then_stocks(
    meuse, tmp_path, capsys, cli, monkeypatch
):
    import socmap.predict._engine as engine

    args = ["--passes", "3", "--workers", "0", "--seed", "5"]
    # the options are checked before any SOC is mapped: no run folder is left
    table = tmp_path / "bd.csv"
    table.write_text("stratum,bd_g_cm3\n1,1.2\n")  # codes 2 and 3 missing, no default row
    for bad, says in (
        (["--bd", "1.3"], "--bd set the stocks, which predict maps only with --stocks"),
        (["--stocks", "--bd", "nope"], "'nope'"),
        (["--stocks", "--cf", "nope"], "CF band 'nope' is not in the cube"),
        (["--stocks", "--bd", "strata:soil", "--bd-table", table], "classes ['2', '3'] without"),
    ):
        assert cli(["predict", meuse["bundle"], meuse["cube"], "-o", tmp_path / "bad",
                    *args, *bad]) == 2  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
        assert not (tmp_path / "bad").exists()
    calls, real = [], engine.mc_log
    monkeypatch.setattr(engine, "mc_log", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())
    one = tmp_path / "one"
    assert cli(["predict", meuse["bundle"], meuse["cube"], "-o", one, *args, "--stocks",
                "--bd", "1.3", "--bd-sd", "0.1", "--cf", "0.05"]) == 0  # fmt: skip
    assert "BD from 1.3" in capsys.readouterr().out
    with_stocks = len(calls)
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())  # a separate process
    two = tmp_path / "two"
    assert cli(["predict", meuse["bundle"], meuse["cube"], "-o", two, *args]) == 0
    assert len(calls) == 2 * with_stocks  # the stocks of `one` ran no pass of their own
    assert not engine._PASSES._items  # without --stocks nothing is kept for later
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())
    assert cli(["stocks", two, "--bd", "1.3", "--bd-sd", "0.1", "--cf", "0.05",
                "--workers", "0"]) == 0  # fmt: skip
    a, b = (open_run(r).open("stock.zarr")["stock"].values for r in (one, two))
    np.testing.assert_array_equal(a, b)


def test_cli_predict_and_stocks(meuse, tmp_path, capsys, cli):
    out = tmp_path / "run"

    assert cli(["predict", meuse["bundle"], meuse["cube"], "--out", out, "--passes", "4",
                "--workers", "0"]) == 0  # fmt: skip
    assert "12 tiles (0 resumed)" in capsys.readouterr().out
    assert cli(["stocks", out, "--bd", "1.3", "--bd-sd", "0.1", "--workers", "0"]) == 0
    assert "BD from 1.3" in capsys.readouterr().out
    table = tmp_path / "bd.csv"
    table.write_text("stratum,bd_g_cm3\n1,1.2\ndefault,1.0\n")
    assert cli(["stocks", out, "--bd", "strata:soil", "--bd-table", table, "--workers", "0",
                "--overwrite"]) == 0  # fmt: skip
    assert "BD from strata:soil" in capsys.readouterr().out
    assert cli(["stocks", out, "--bd", "strata:soil", "--bd-table", tmp_path / "no.csv"]) == 2
    assert "no.csv" in capsys.readouterr().err
    assert cli(["strata", out, "--strata", "soil", "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "t CO2e" in printed and "strata.csv" in printed
    assert cli(["strata", out, "--strata", "nope", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'nope'" in err and len(err.splitlines()) == 1
    assert cli(["design", out, "--strata", "soil", "--budget", "10", "--min-spacing", "80",
                "--out", tmp_path / "design"]) == 0  # fmt: skip
    assert "10 sites" in capsys.readouterr().out
    sites = pd.read_csv(tmp_path / "design" / "design.csv")
    assert len(sites) == 10 and set(sites["stratum"].astype(str)) <= {"1", "2", "3"}
    assert (tmp_path / "design" / "design.gpkg").is_file()
    # a rerun replaces its own files; strata the budget cannot top up are named
    assert cli(["design", out, "--strata", "soil", "--budget", "4", "--min-cores", "2",
                "--out", tmp_path / "design"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "2 of 3 strata stay below --min-cores 2 with --budget 4 (2, 3)" in printed
    assert cli(["design", out, "--strata", "soil", "--budget", "0", "--out", tmp_path / "d0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "budget 0" in err and "--budget 1" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "d0").exists()
    # bad input: one line, exit 2, nothing written
    assert cli(["stocks", out, "--bd", "nope", "--workers", "0", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'nope'" in err and len(err.splitlines()) == 1


def test_a_mapped_interval_spanning_atoms_is_their_thickness_weighted_mean(meuse, tmp_path):
    from socmap.predict._engine import encode_block, mc_log

    bundle = tmp_path / "bundle"
    shutil.copytree(meuse["bundle"], bundle)
    doc = json.loads((bundle / "model.json").read_text())
    assert doc["features"]["depth_atoms"] == [list(i) for i in INTERVALS]
    doc["metadata"]["intervals"] = [[0.0, 15.0], [15.0, 30.0], [0.0, 30.0], [5.0, 10.0]]
    (bundle / "model.json").write_text(json.dumps(doc))
    tm = load_tile_model(bundle)
    cube = open_cube(meuse["cube"])
    enc = encode_block(tm, cube.values, list(cube.band.values))
    means, logvars = mc_log(tm, enc, slice(None), masks=tm.masks(4, seed=2))
    soc = np.expm1(means.astype(np.float64))
    # 0-30 cm is the thickness-weighted mean of 0-15 and 15-30 cm, pass by pass, in g/kg
    np.testing.assert_allclose(soc[:, 2], (soc[:, 0] + soc[:, 1]) / 2, rtol=1e-5)
    var = np.exp(logvars.astype(np.float64))
    np.testing.assert_allclose(var[:, 2], (var[:, 0] + var[:, 1]) / 2, rtol=1e-5)
    # an interval inside one atom takes the atom's value
    np.testing.assert_allclose(means[:, 3], means[:, 0], rtol=1e-6)


def test_stocks_reuse_the_passes_of_the_soc_map_and_get_the_same_numbers(
    meuse, tmp_path, monkeypatch
):
    import socmap.predict._engine as engine
    from socmap.stocks import stocks_for_run

    calls = []
    real = engine.mc_log

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "mc_log", counted)
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())
    run = predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "run", passes=3, seed=11,
                       workers=0, exports=False, progress=False)  # fmt: skip
    mapped = len(calls)
    assert mapped > 0
    again = shutil.copytree(run.path, tmp_path / "again")
    reused = stocks_for_run(run.path, bd=1.3, workers=0, exports=False, progress=False)
    assert len(calls) == mapped  # every batch's passes came from the SOC map's
    # evaluated again from scratch: the same bytes
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())
    fresh = stocks_for_run(again, bd=1.3, workers=0, exports=False, progress=False)
    assert len(calls) == 2 * mapped
    np.testing.assert_array_equal(
        fresh.run.open("stock.zarr")["stock"].values, reused.run.open("stock.zarr")["stock"].values
    )
    # a map whose passes do not fit keeps none (they would be evicted before their reuse)
    monkeypatch.setattr(engine, "PASS_CACHE_BYTES", 1000)
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())
    shutil.rmtree(again / "stock.zarr")
    shutil.rmtree(again / "tiles_stock")
    stocks_for_run(again, bd=1.3, workers=0, exports=False, progress=False)
    assert len(calls) == 3 * mapped and not engine._PASSES._items
    monkeypatch.setattr(engine, "PASS_CACHE_BYTES", 256 * 2**20)
    # the next map frees them first (once a notebook held them while mapping on)
    monkeypatch.setattr(engine, "_PASSES", engine._PassCache())
    predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "a", passes=3, seed=1, workers=0,
                 exports=False, progress=False)  # fmt: skip
    kept = len(engine._PASSES._items)
    predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "b", passes=3, seed=2, workers=0,
                 exports=False, progress=False)  # fmt: skip
    assert kept > 0 and len(engine._PASSES._items) == kept


def test_passes_are_kept_only_when_the_whole_map_fits():
    from socmap.predict._engine import PASS_CACHE_BYTES, passes_fit

    per_pixel = 32 * 5 * 8  # passes x intervals x (mean, logvar) float32
    side = int((PASS_CACHE_BYTES / per_pixel) ** 0.5)
    assert passes_fit(32, 5, (side, side)) and not passes_fit(32, 5, (side + 1, side + 1))
    assert passes_fit(1, 1, (4096, 4096)) and not passes_fit(32, 5, (4096, 4096))


def test_the_pass_cache_keeps_the_most_recent_within_its_budget(monkeypatch):
    import socmap.predict._engine as engine

    item = (np.zeros(100, np.float32), np.zeros(100, np.float32))  # 800 bytes
    monkeypatch.setattr(engine, "PASS_CACHE_BYTES", 2000)
    cache = engine._PassCache()
    for key in "abc":
        cache.put(key, tuple(a.copy() for a in item))
    assert cache.get("a") is None and cache.get("c") is not None
    assert cache.get("b") is not None  # read last: "c" is now the oldest
    cache.put("d", item)
    assert cache.get("c") is None and cache.get("b") is not None
    with pytest.raises(ValueError, match="read-only"):
        cache.get("d")[0][0] = 1.0  # what a caller gets cannot change what others read
    cache.put("big", (np.zeros(600, np.float32),))  # larger than the budget: not kept
    assert cache.get("big") is None and cache.get("d") is not None


def _standing_cube(tmp_path, units="m"):
    """The meuse cube with one more band, a copy of ``dist`` that stands for the 10' elevation."""
    from socmap.catalog import load_catalog

    cat = load_catalog("meuse")
    dem = cat["dist"].model_copy(update={"name": "dem", "units": units,
                                         "stands_for": "etopo_elev_m"})  # fmt: skip
    cat = cat.model_copy(update={"covariates": (*cat.covariates, dem)})
    return build_cube(cat, None, tmp_path / "standing.zarr", chunk=32, progress=False)


def test_a_regional_band_stands_in_for_a_global_input(meuse, tmp_path):
    from socmap.cube import stand_ins
    from socmap.errors import CatalogError

    path = _standing_cube(tmp_path)
    cube = open_cube(path)
    assert stand_ins(cube) == {"etopo_elev_m": "dem"}
    table = meuse["table"].assign(etopo_elev_m=meuse["table"]["dist"], dem=meuse["table"]["dist"])
    bundle = _bundle_with_extra_band(cube, table, "etopo_elev_m", "terrain", tmp_path / "b")
    run = predict_cube(bundle, path, tmp_path / "run", passes=2, seed=5, workers=0,
                       exports=False, progress=False)  # fmt: skip
    # the elevation input is read from the regional band, not from the 10' context
    assert run.config.context_bands == [] and run.config.stand_ins == {"etopo_elev_m": "dem"}
    tm = load_tile_model(bundle)
    block = np.concatenate([cube.values, cube.values[[3]]])
    names = [*map(str, cube.band.values), "etopo_elev_m"]
    whole = predict_block(tm, block, names, passes=2, seed=5)["soc"]
    np.testing.assert_allclose(run.open()["soc"].values, whole, rtol=2e-6, atol=1e-6)
    # a stand-in in other units than the global input is refused, naming both
    other = open_cube(_standing_cube(tmp_path / "km", units="km"))
    with pytest.raises(CatalogError, match=r"'dem' is in 'km' but stands for 'etopo_elev_m'"):
        stand_ins(other)


@pytest.mark.parametrize(("option", "value"), [("passes", 0), ("passes", 10**6), ("batch_size", 0)])
def test_pass_and_batch_counts_out_of_range_are_refused_before_any_write(
    meuse, tmp_path, option, value
):
    from socmap.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"--{option.replace('_', '-')} {value}"):
        predict_cube(meuse["bundle"], meuse["cube"], tmp_path / "run", **{option: value})
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "method", ["prior-residual", "recalibrate", "rf-log", "rf", "stacked", "prior-stacked"]
)
def test_a_table_method_in_a_bundle_maps_what_it_predicts_for_tables(meuse, tmp_path, method):
    from socmap.model.baselines import GlobalModel
    from socmap.model.bundle import load_bundle
    from socmap.model.transfer import FineTunedRegressor, save_transfer_bundle, transfer_methods

    cube = open_cube(meuse["cube"])
    bands = list(cube.band.values)
    shifted = meuse["table"].assign(soc_g_kg=lambda t: t["soc_g_kg"] * (1.5 + t["dist"]))
    (est,) = transfer_methods([method], meuse["bundle"], bands, [], block_size=500.0,
                              n_estimators=20, mc_passes=8).values()  # fmt: skip
    est.fit(shifted)
    path = save_transfer_bundle(est, meuse["bundle"], tmp_path / "b", {"intervals": INTERVALS})
    adj = load_bundle(path).adjustment
    assert adj is not None and (adj.forest is None and not adj.parts) == (method == "recalibrate")
    assert len(adj.parts) == (2 if method == "prior-stacked" else 0)
    assert adj.slope == (0.0 if method.startswith("rf") else pytest.approx(est.adjustment().slope))
    # tables: the bundle predicts what the fitted estimator does
    m, s = est.predict_log(shifted)
    m2, s2 = GlobalModel(str(path), mc_passes=8).fit().predict_log(shifted)
    np.testing.assert_allclose(m2, m, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s2, s, rtol=1e-12, atol=1e-12)
    # maps: slope x the network's median plus the constant; variances add
    base_tm, tm = load_tile_model(meuse["bundle"]), load_tile_model(path)
    base = predict_block(base_tm, cube.values, bands, passes=8, seed=2)["soc"]
    res = predict_block(tm, cube.values, bands, passes=8, seed=2)["soc"]
    valid = np.isfinite(cube.values).all(axis=0)
    q50, q95 = STATS.index("q50"), STATS.index("q95")

    def log_median_and_sd(soc, q90):
        median = np.log1p(soc[q50][:, valid].astype(np.float64))
        return median, (np.log1p(soc[q95][:, valid].astype(np.float64)) - median) / q90[:, None]

    m_base, sd_base = log_median_and_sd(base, base_tm.q90)
    # a stacked forest reads the network's map (its mean over the same passes)
    assert adj.prior_input == (method in ("stacked", "prior-stacked"))
    prior = m_base if adj.prior_input else None
    add, spread = adj.at_intervals(cube.values[:, valid].T.astype(np.float64), INTERVALS, prior)
    m_res, sd_res = log_median_and_sd(res, tm.q90)
    np.testing.assert_allclose(m_res, adj.slope * m_base + add, atol=5e-5)
    np.testing.assert_allclose(sd_res**2, adj.slope**2 * sd_base**2 + spread**2, atol=2e-4)
    assert (spread > 0).any() == (method != "recalibrate")
    run = predict_cube(path, meuse["cube"], tmp_path / "run", passes=4, workers=0,
                       exports=False, progress=False)  # fmt: skip
    assert run.summary["pixels_with_value"] == int(valid.sum())
    # fine-tuning its network would drop the adjustment, so that is refused
    with pytest.raises(ConfigError, match="regional adjustment, which fine-tuning its network"):
        FineTunedRegressor(str(path), strategy="head").fit(shifted)

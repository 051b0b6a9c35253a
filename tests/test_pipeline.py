"""Scheduled runs (``socmap run``): first run, no-op rerun, new cores, a killed run, the lock.

One small configuration (a 20 x 16 km window of Edgeroi at 200 m, the sites inside it, a
head-only fine-tune with a 2-fold CV, 4 dropout passes) is run several times on one root,
in order; the module-scoped fixture keeps the root between tests.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from socmap.errors import ConfigError, GridMismatch, InputNotFound
from socmap.pipeline import RunRoot, load_run_config, plan_run, preview_run, run_pipeline
from socmap.profiles import read_edgeroi

pytestmark = pytest.mark.slow

BBOX = (750000.0, 6655000.0, 770000.0, 6671000.0)
HELD_BACK = 15  # sites appended later as "new cores"
ALL_STAGES = ["cube", "profiles", "finetune", "predict", "stocks", "strata", "report"]


def _config(tmp: Path, cores: Path, **changes: Any) -> Path:
    doc: dict[str, Any] = {
        "name": "edgeroi-small",
        "output": str(tmp / "root"),
        "region": {"crs": "EPSG:28355", "bbox": list(BBOX), "resolution": 200},
        "cube": {"catalog": "edgeroi", "chunk": 64},
        "profiles": {"path": cores.name},
        "model": {"strategy": "head", "cv_folds": 2, "jobs": 1, "max_depth_cm": 30},
        "predict": {"passes": 4},
        "strata": {"source": "geology"},
        "design": {"budget": 4},
        "keep": 3,
        **changes,
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("pipeline")
    profiles = read_edgeroi()
    x0, y0, x1, y1 = BBOX
    inside = profiles[profiles.x.between(x0, x1) & profiles.y.between(y0, y1)]
    sites = sorted(inside.site_id.unique())
    later = set(sites[-HELD_BACK:])
    cores = tmp / "cores.csv"
    inside[~inside.site_id.isin(later)].to_csv(cores, index=False)
    return {
        "tmp": tmp,
        "cores": cores,
        "later": inside[inside.site_id.isin(later)],
        "config": _config(tmp, cores),
        "root": RunRoot(tmp / "root"),
    }


def _run(config: Path) -> Any:
    return run_pipeline(config, workers=0, progress=False, log=lambda _: None)


def test_first_run_publishes_a_complete_version(setup: dict[str, Any]) -> None:
    outcome = _run(setup["config"])
    root: RunRoot = setup["root"]
    assert outcome.published and outcome.computed == ALL_STAGES
    assert root.latest_version() == outcome.version == root.versions()[-1]
    latest = root.latest.resolve()
    for name in ("cube.zarr", "profiles", "bundle", "run/report/report.html", "run/strata",
                 "training/training_table.parquet", "training/cube_bands.png",
                 "profiles/figures/spline_fits.png"):  # fmt: skip
        assert (latest / name).exists(), name
    manifest = json.loads((latest / "manifest.json").read_text())
    assert manifest["config_sha256"] == load_run_config(setup["config"]).sha256()
    assert [s["name"] for s in manifest["stages"]] == ALL_STAGES
    inputs = {k: v for s in manifest["stages"] for k, v in s["inputs"].items()}
    assert len(inputs["profiles"]) == 64 and len(inputs["bundle"]) == 64
    assert set(manifest["timings"]) == {*ALL_STAGES, "total_s"}
    assert {"socmap", "torch", "numpy", "python"} <= set(manifest["versions"])
    assert 0 < manifest["metrics"]["finetune"]["cv"]["all:mae"] < 50
    assert manifest["metrics"]["strata"]["area_ha"] > 0
    # provenance cites the published files: no staging folder, no cache path
    cited = [
        (p.relative_to(latest), bad)
        for p in latest.rglob("*")
        if p.suffix in (".json", ".html", ".md", ".yaml", ".csv") and p.name != "manifest.json"
        for bad in (".tmp-", str(root.cache))
        if bad in p.read_text(errors="ignore")
    ]
    assert not cited, cited
    strata_doc = json.loads((latest / "run" / "strata" / "strata.json").read_text())
    assert strata_doc["run"] == str(root.runs / outcome.version / "run")
    setup["first"] = outcome.version


def test_rerun_with_nothing_changed_does_nothing(setup: dict[str, Any]) -> None:
    root: RunRoot = setup["root"]
    before = root.versions()
    lines: list[str] = []
    # the device is how the maps are computed, not what: no key changes with it
    outcome = run_pipeline(
        setup["config"], workers=0, progress=False, log=lines.append, device="auto"
    )
    assert not outcome.published and outcome.computed == []
    assert "nothing changed" in lines[-1] and setup["first"] in lines[-1]
    assert root.versions() == before and root.latest_version() == setup["first"]
    assert {p.status for p in preview_run(setup["config"])} == {"unchanged"}
    with pytest.raises(ConfigError, match=r"device 'tpu' must be one of"):
        run_pipeline(setup["config"], progress=False, log=lines.append, device="tpu")
    assert root.versions() == before


def test_the_demo_is_a_run_and_summarises_its_manifest(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socmap.demo as demo

    # the demo with this small configuration: the same run, so nothing is recomputed
    monkeypatch.setattr(demo, "demo_spec", lambda **_: load_run_config(setup["config"]))
    lines: list[str] = []
    res = demo.run_demo(setup["root"].path, progress=False, log=lines.append)
    assert "nothing changed" in lines[-1]
    manifest = setup["root"].manifest(setup["first"])
    tuned = manifest["metrics"]["finetune"]
    assert f"MAE {tuned['cv']['all:mae']:.2f} g/kg" in res.facts["fine-tuned"]
    assert res.facts["fine-tuned"].startswith("head;")
    assert res.facts["design"].startswith(f"{manifest['metrics']['strata']['design_sites']} new")
    latest = setup["root"].latest
    assert res.outputs["report"] == latest / "run" / "report" / "report.html"
    assert res.outputs["training table"] == latest / "training" / "training_table.parquet"
    assert all(p.exists() for p in res.outputs.values())
    text = res.to_text()
    assert text.splitlines()[-1] == f"report: {res.outputs['report']}"


def test_the_demo_configuration_is_the_built_in_run_with_the_demo_title() -> None:
    from socmap.demo import demo_spec

    spec, builtin = demo_spec(passes=8), load_run_config("edgeroi")
    assert spec.predict.passes == 8 and spec.report.title.startswith("socmap demo")
    same = ("cube", "profiles", "model", "stocks", "strata", "design", "region", "keep")
    assert all(getattr(spec, k) == getattr(builtin, k) for k in same)
    assert spec.base_dir == builtin.base_dir  # its inputs resolve as the built-in's do


def test_catalog_change_recomputes_the_cube_and_after_but_not_the_profiles(
    setup: dict[str, Any],
) -> None:
    from socmap.catalog import catalog_dir

    tmp: Path = setup["tmp"]
    catalog = yaml.safe_load((catalog_dir() / "covariates" / "edgeroi.yaml").read_text())
    catalog["description"] = "a new covariate date"  # same layers, new catalog fingerprint
    (tmp / "edgeroi_new.yaml").write_text(yaml.safe_dump(catalog))
    old = {p.name: p.key for p in plan_run(load_run_config(setup["config"]))}
    (tmp / "alt").mkdir()
    changed = _config(
        tmp / "alt", setup["cores"], cube={"catalog": str(tmp / "edgeroi_new.yaml"), "chunk": 64}
    )
    (tmp / "alt" / setup["cores"].name).write_bytes(setup["cores"].read_bytes())
    new = {p.name: p.key for p in plan_run(load_run_config(changed))}
    assert [s for s in ALL_STAGES if new[s] != old[s]] == [
        "cube", "finetune", "predict", "stocks", "strata", "report"
    ]  # fmt: skip


def test_new_socmap_code_recomputes_every_stage(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socmap._versions

    spec = load_run_config(setup["config"])
    old = {p.name: p.key for p in plan_run(spec)}
    # the same version number, other code (a development build after a change)
    monkeypatch.setattr(socmap._versions, "code_sha256", lambda: "0" * 64)
    new = {p.name: p.key for p in plan_run(spec)}
    assert [s for s in ALL_STAGES if new[s] == old[s]] == []
    assert {p.status for p in preview_run(setup["config"])} == {"compute"}


def test_new_cores_recompute_from_their_stages_on(setup: dict[str, Any]) -> None:
    root: RunRoot = setup["root"]
    first = root.runs / setup["first"]
    report_before = (first / "run" / "report" / "report.html").read_bytes()
    setup["later"].to_csv(setup["cores"], mode="a", header=False, index=False)
    planned = {p.name: p.status for p in preview_run(setup["config"])}
    assert planned == {"cube": "reuse", **dict.fromkeys(ALL_STAGES[1:], "compute")}
    outcome = _run(setup["config"])
    status = {s.name: s.status for s in outcome.stages}
    assert status["cube"] == "reused"
    assert outcome.computed == ["profiles", "finetune", "predict", "stocks", "strata", "report"]
    assert root.latest_version() == outcome.version != setup["first"]
    manifest = root.manifest(outcome.version)
    assert manifest["previous"] == setup["first"]
    assert (
        manifest["metrics"]["profiles"]["sites"]
        > root.manifest(setup["first"])["metrics"]["profiles"]["sites"]
    )
    # the previous version is untouched and still complete
    assert (first / "run" / "report" / "report.html").read_bytes() == report_before
    setup["second"] = outcome.version


def test_compare_two_published_versions(
    setup: dict[str, Any], cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import xarray as xr

    root: RunRoot = setup["root"]
    a, b = (root.runs / setup[v] / "run" for v in ("first", "second"))
    out = setup["tmp"] / "change"
    assert cli(["compare", a, b, "--out", out, "--workers", "0"]) == 0
    said = capsys.readouterr().out
    assert f"{setup['second']}/run − {setup['first']}/run" in said
    assert list((out / "quicklooks").glob("change_*.png")) and (out / "cogs").is_dir()
    change = xr.open_zarr(out / "change.zarr", consolidated=False)["change"]
    stock_a, stock_b = (
        xr.open_zarr(r / "stock.zarr", consolidated=False)["stock"].sel(stat="mean") for r in (a, b)
    )
    mean = change.sel(stat="mean").values
    assert np.allclose(mean, (stock_b - stock_a).values, equal_nan=True, rtol=0, atol=1e-5)
    assert np.nanmax(np.abs(mean)) > 0  # new cores changed the map
    table = pd.read_csv(out / "change_by_stratum.csv")
    strata = pd.read_csv(b / "strata" / "strata.csv")
    assert set(table["stratum"]) == set(strata["stratum"])
    assert set(table["layer"]) == set(strata["layer"])


def test_killed_run_leaves_latest_and_the_next_run_completes(setup: dict[str, Any]) -> None:
    root: RunRoot = setup["root"]
    config = _config(setup["tmp"], setup["cores"], predict={"passes": 4, "seed": 7})
    proc = subprocess.Popen(
        [Path(sys.executable).parent / "socmap", "run", str(config), "--workers", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "SOCMAP_PROGRESS": "0"},
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "stocks: computing" in line:
            # kill once the stage's temporary directory exists (a fixed sleep of 1 s once let
            # the stage finish first, when stocks got faster than the sleep)
            deadline = time.monotonic() + 30
            while not list(root.cache.rglob(".tmp-*")) and time.monotonic() < deadline:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    assert root.latest_version() == setup["second"]
    assert root.versions()[-1] == setup["second"]
    assert (root.latest / "run" / "report" / "report.html").is_file()
    leftovers = [p for p in root.cache.rglob(".tmp-*")]
    assert leftovers, "the killed stage should have left a temporary directory"

    outcome = _run(config)
    status = {s.name: s.status for s in outcome.stages}
    # predict finished before the kill; its cached output is reused
    assert status == {
        "cube": "reused", "profiles": "reused", "finetune": "reused", "predict": "reused",
        "stocks": "computed", "strata": "computed", "report": "computed",
    }  # fmt: skip
    assert root.latest_version() == outcome.version != setup["second"]
    assert not list(root.cache.rglob(".tmp-*"))


def test_versions_are_pruned_to_keep(setup: dict[str, Any]) -> None:
    root: RunRoot = setup["root"]
    outcome = run_pipeline(
        _config(setup["tmp"], setup["cores"], keep=1), workers=0, progress=False,
        log=lambda _: None, force=("report",),
    )  # fmt: skip
    assert outcome.computed == ["report"]
    assert root.versions() == [outcome.version] == [root.latest_version()]
    used = {root.stage_dir(s.name, s.key) for s in outcome.stages}
    assert {e for st in root.cache.iterdir() for e in st.iterdir()} == used


def test_a_second_run_on_the_same_root_is_refused(setup: dict[str, Any]) -> None:
    root: RunRoot = setup["root"]
    with root.lock(), pytest.raises(ConfigError, match="another socmap run"):
        _run(setup["config"])


def test_bad_configurations_fail_clearly(
    tmp_path: Path, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncube: {catalog: edgeroi}\nprofiles: {path: p.csv}\nmodle: {}\n")
    assert cli(["run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "modle" in err and len(err.strip().splitlines()) == 1
    bad.write_text(
        "name: x\ncube: {catalog: edgeroi}\nprofiles: {path: p.csv}\ndesign: {budget: 3}\n"
    )
    with pytest.raises(ConfigError, match="design needs strata"):
        load_run_config(bad)
    bad.write_text("name: x\ncube: {catalog: edgeroi}\nprofiles: {path: missing.csv}\n")
    with pytest.raises(InputNotFound, match=r"missing\.csv"):
        plan_run(load_run_config(bad))
    with pytest.raises(InputNotFound, match="neither a file nor a built-in"):
        load_run_config("no_such_config")
    with pytest.raises(ConfigError, match="unknown stage"):
        run_pipeline(bad, force=("fintune",), output=tmp_path / "root")
    # every input is checked before the first stage: the bundle path the user wrote is named
    (tmp_path / "p.csv").write_text(
        "site_id,x,y,crs,top_cm,bottom_cm,soc_g_kg\ns1,760000,6660000,EPSG:28355,0,10,12\n"
    )
    bad.write_text("name: x\ncube: {catalog: edgeroi}\nprofiles: {path: p.csv}\n"
                   "model: {bundle: models/mine}\n")  # fmt: skip
    assert cli(["run", str(bad), "--plan"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "models" / "mine") in err and "global_gsm" in err
    assert len(err.strip().splitlines()) == 1
    bad.write_text("name: x\ncube: {catalog: edgeroi}\nprofiles: {path: p.csv, accept_qc: [x]}\n")
    with pytest.raises(ConfigError, match=r"accept_qc \['x'\] names no QC check"):
        plan_run(load_run_config(bad))
    huge = "{crs: 'EPSG:28355', bbox: [0, 0, 1000000, 1000000], resolution: 1}"
    bad.write_text(
        f"name: x\nregion: {huge}\ncube: {{catalog: edgeroi}}\nprofiles: {{path: p.csv}}\n"
    )
    with pytest.raises(GridMismatch, match="SOCMAP_MAX_PIXELS"):
        plan_run(load_run_config(bad))


def test_builtin_demo_config_plans() -> None:
    spec = load_run_config("edgeroi")
    plans = plan_run(spec)
    assert [p.name for p in plans] == ALL_STAGES
    assert plans[-1].upstream == ["strata", "stocks", "profiles"]
    assert pd.Series([p.key for p in plans]).is_unique


def test_run_takes_out_and_keeps_output_as_a_hidden_alias(
    tmp_path: Path, cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(tmp_path / "root")
    assert cli(["run", "edgeroi", "--plan", "--out", root]) == 0
    by_out = capsys.readouterr().out
    assert cli(["run", "edgeroi", "--plan", "--output", root]) == 0
    assert capsys.readouterr().out == by_out != ""
    assert cli(["run", "edgeroi", "--plan", "--out", root, "--output", root + "2"]) == 2
    err = capsys.readouterr().err
    assert "disagree" in err and len(err.strip().splitlines()) == 1
    assert cli(["run", "--help"]) == 0
    assert "--output" not in capsys.readouterr().out

"""The run report: content from a real run, and a headless Chromium render check."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _browser import check_map_page, check_report_page, check_report_pdf, chromium_path
from socmap.cube import band_table, build_cube, open_cube
from socmap.model.estimator import SocNetRegressor
from socmap.predict import predict_cube
from socmap.report.build import _quantity, build_report
from socmap.stocks import stocks_for_run
from socmap.strata import strata_for_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small calibrated meuse run with stocks, strata and a design."""
    from socmap.design import design_for_run
    from socmap.validate.calibrate import ConformalCalibrator

    root = tmp_path_factory.mktemp("report")
    cube_path = build_cube("meuse", None, root / "m.zarr", chunk=64, progress=False)
    cube = open_cube(cube_path)
    rng = np.random.default_rng(0)
    valid = np.argwhere(np.isfinite(cube.values).all(axis=0))
    rows = []
    for i, (r, c) in enumerate(valid[rng.choice(len(valid), 80, replace=False)]):
        dist, ffreq, soil = (float(v) for v in cube.values[:, r, c])
        for top, bottom in ((0.0, 15.0), (15.0, 30.0)):
            soc = float(np.exp(3.2 - 2 * dist - top / 40 + rng.normal(0, 0.2)))
            rows.append(
                {
                    "site_id": f"s{i}",
                    "x": float(cube.x[c]),
                    "y": float(cube.y[r]),
                    "crs": "EPSG:28992",
                    "top_cm": top,
                    "bottom_cm": bottom,
                    "dist": dist,
                    "ffreq": ffreq,
                    "soil": soil,
                    "soc_g_kg": soc,
                }
            )
    table = pd.DataFrame(rows)
    est = SocNetRegressor(
        band_table(cube),
        network={"fusion_dim": 16, "head": (32, 16)},
        train={"max_epochs": 5},
        block_size=500.0,
        units="metres",
    ).fit(table)
    mean, sd = est.predict_log(table)
    cal = ConformalCalibrator().fit(np.log1p(table["soc_g_kg"]), mean, sd)
    metrics = [
        {"depth": "all", "metric": m, "value": v, "n": len(table)}
        for m, v in (("mae", 2.0), ("ccc", 0.6), ("picp_90", 0.85), ("calibrated_picp_90", 0.9))
    ]
    bundle = est.save(
        root / "bundle",
        {
            "intervals": [(0.0, 15.0), (15.0, 30.0)],
            "calibration": cal.to_dict(),
            "cv_metrics": metrics,
            "cv_protocol": {"method": "spatial block k-fold", "folds": 5, "block_size": 500.0},
        },
    )
    out = root / "run"
    predict_cube(bundle, cube_path, out, passes=4, workers=0, progress=False)
    stocks_for_run(out, bd=1.3, workers=0, progress=False)
    strata_for_run(out, "soil", cores=table, workers=0, progress=False)
    table.to_csv(root / "cores_given.csv", index=False)
    design_for_run(out, "soil", 9, out / "design", min_spacing=100.0)
    return out


def test_report_has_every_section_and_the_numbers_of_the_run(run):
    paths = build_report(run, title="meuse test report")
    page = paths["html"].read_text()
    for heading in (
        "Summary",
        "Inputs and provenance",
        "Quality control",
        "Spatial cross-validation",
        "Calibration",
        "Maps",
        "Stratum stocks",
        "Sampling recommendations",
    ):
        assert f"<h2>{heading}" in page
    assert page.count("data:image/png;base64,") >= 1 and "http" not in page.split("<body>")[1]
    strata = pd.read_csv(run / "strata" / "strata.csv", dtype={"stratum": str})
    first = strata.iloc[0]
    assert f"{first['mean_t_c_ha']:.3g}" in page
    md = paths["markdown"].read_text()
    assert "## Stratum stocks" in md and re.search(r"\| *stratum *\|", md)
    figures = re.findall(r"\]\((report_files/figure_\d+\.png)\)", md)
    assert figures and all((paths["markdown"].parent / f).is_file() for f in figures)
    # the maps show the layer the cross-validation scores, and say which it is
    maps = page[page.index("<h2>Maps") : page.index("<h2>Stratum stocks")]
    assert "SOC is shown as its median (the q50 layer" in maps
    # sections whose inputs are absent say so
    assert "No transfer benchmark given" in page
    # the summary comes first and gives the project totals of strata/project.csv
    assert page.index("<h2>Summary") < page.index("<h2>Inputs and provenance")
    project = pd.read_csv(run / "strata" / "project.csv").iloc[-1]
    summary = page[page.index("<h2>Summary") : page.index("<h2>Inputs and provenance")]
    assert _quantity(project["total_t_co2e"]) in summary
    assert _quantity(project["conservative_t_co2e"]) in summary
    assert "strata meet the precision target" in summary and "more cores" in summary
    assert "have no value because a covariate the model reads is missing" in summary
    # the stratum section: one row per stratum for each reported total, the rest collapsed
    section = page[page.index("<h2>Stratum stocks") : page.index("<h2>Sampling")]
    last = strata["layer"].iloc[-1]
    assert f"Stocks {last}, one row per stratum" in section
    assert section.count("<details>") == 1 and f"{len(strata)} rows" in section
    shown = section[: section.index("<details>")]
    assert shown.count("<tr>") >= strata["stratum"].nunique() + 1
    for _, row in strata[strata["layer"] == last].iterrows():
        assert _quantity(row["total_t_co2e"]) in shown


def test_report_renders_in_headless_chromium(run, tmp_path, browser):
    html_path = build_report(run, tmp_path / "report")["html"]
    check_report_page(browser, html_path, "report.png")


def test_cv_table_is_in_depth_order_and_benchmark_rows_name_their_strategy(tmp_path):
    from socmap.report.build import _benchmark_blocks, _cv_tables

    records = [{"depth": d, "metric": "mae", "value": 1.0, "n": 3}
               for d in ("0-5cm", "15-30cm", "30-60cm", "5-15cm", "60-100cm", "all")]  # fmt: skip
    note, wide = _cv_tables({"cv_metrics": records})
    assert "of the median prediction (the q50 layer" in note  # not of the mean layer
    assert wide["depth"].tolist() == ["0-5cm", "5-15cm", "15-30cm", "30-60cm", "60-100cm", "all"]
    strategies = ("l2sp", "freeze-encoders", "auto")
    rows = [("rf", "-"), *(("finetune", s) for s in strategies)]
    pd.DataFrame(
        [{"method": m, "strategy": s, "n": 20, "depth": "all", "mae": 1.0, "ccc": 0.5,
          "delta_mae_pct": 0.0, "delta_ccc_pct": 0.0} for m, s in rows]
    ).to_csv(tmp_path / "summary.csv", index=False)  # fmt: skip
    table = _benchmark_blocks(tmp_path)[1]
    assert table["method"].tolist() == [
        "rf", "finetune:l2sp", "finetune:freeze-encoders", "finetune:auto"
    ]  # fmt: skip


def test_report_pdf_prints_every_section_and_the_project_totals(run, tmp_path):
    """`socmap report --pdf`: A4 pages from headless Chromium, totals readable as text."""
    chromium_path()
    paths = build_report(run, tmp_path / "report", pdf=True)
    check_report_pdf(paths["pdf"], run)
    assert not list((tmp_path / "report").glob(".tmp-*"))


def test_report_pdf_without_chromium_is_one_clear_error(run, tmp_path, monkeypatch):
    from socmap.errors import ConfigError

    monkeypatch.setenv("SOCMAP_CHROMIUM", str(tmp_path / "no-such-browser"))
    with pytest.raises(ConfigError, match=r"SOCMAP_CHROMIUM=.*not an executable"):
        build_report(run, tmp_path / "report", pdf=True)
    assert not (tmp_path / "report" / "report.pdf").exists()


def test_map_page_switches_layers_and_shows_the_cog_values_of_a_clicked_pixel(
    run, tmp_path, browser
):
    page_path = build_report(run, tmp_path / "report")["map"]
    check_map_page(browser, page_path, run, "map_page.png")
    cores = pd.read_csv(run / "strata" / "cores.csv")
    assert len(cores) == 80
    # the cores of the stratum table are where they were given, with their stocks
    sites = pd.read_csv(run.parent / "cores_given.csv").drop_duplicates("site_id")
    sites = sites.set_index("site_id").loc[cores["site_id"]]
    np.testing.assert_allclose(cores[["x", "y"]], sites[["x", "y"]])  # same CRS as the grid
    layers = [c for c in cores.columns if c.startswith("stock_")]
    assert layers[:2] == ["stock_0-15cm", "stock_15-30cm"] and cores[layers].notna().all().all()


def test_view_command_writes_the_map_without_opening_a_browser(run, tmp_path, capsys):
    from socmap.cli import main

    target = tmp_path / "view.html"
    with pytest.raises(SystemExit) as exit_info:
        main(["view", str(run), "--out", str(target), "--no-open"])
    assert exit_info.value.code in (0, None)
    assert target.is_file() and "map: " in capsys.readouterr().out


def test_inline_map_embeds_the_whole_page_for_notebooks(run, tmp_path):
    import html as html_lib

    from socmap.report.map import build_map, inline_map

    page = build_map(run, tmp_path / "map.html")
    shown = inline_map(page, height=400).data
    assert shown.startswith("<div><iframe srcdoc=") and "height:400px" in shown
    srcdoc = re.search(r'srcdoc="([^"]*)"', shown).group(1)
    assert html_lib.unescape(srcdoc) == page.read_text()


def test_map_counts_the_cores_it_cannot_place_instead_of_dropping_them(tmp_path):
    from types import SimpleNamespace

    from socmap.grid import Grid
    from socmap.report.map import _cores

    (tmp_path / "strata").mkdir()
    pd.DataFrame({
        "site_id": ["a", "b", "c"], "stratum": ["s1", "s1", "s2"],
        "x": [150.0, np.nan, 850.0], "y": [250.0, 300.0, np.nan],
        "stock_0-30cm": [40.0, 41.0, 42.0],
    }).to_csv(tmp_path / "strata" / "cores.csv", index=False)  # fmt: skip
    run = SimpleNamespace(path=tmp_path, grid=Grid.from_bbox((0, 0, 1000, 500), 100, "EPSG:32755"))
    drawn = _cores(run, step=1)
    assert drawn["cores_unplaced"] == 2
    assert [c["id"] for c in drawn["cores"]] == ["a"]
    assert (drawn["cores"][0]["row"], drawn["cores"][0]["col"]) == (2.5, 1.5)


def _get(url):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_served_map_gives_full_resolution_tiles_and_the_cog_values(run):
    import io
    import json

    import rasterio
    from PIL import Image

    from socmap.errors import ConfigError
    from socmap.report.tiles import serve

    with rasterio.open(run / "cogs" / "soc_0-15cm_mean.tif") as src:
        mean = src.read(1)
    server = serve(run)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, kind, page = _get(server.url)
        assert status == 200 and kind.startswith("text/html")
        data = json.loads(re.search(rb'id="socmap-data"[^>]*>(.*?)</script>', page, re.S)[1])
        assert data["step"] == 1 and data["shape"] == list(mean.shape)
        assert all("png" not in layer for layer in data["layers"])
        ids = [layer["id"] for layer in data["layers"]]
        assert "soc-mean-0" in ids and "strata" in ids
        # zoom 0 is the grid itself, zoom -1 every second pixel: nodata is transparent
        for z, step in ((0, 1), (-1, 2)):
            status, kind, png = _get(f"{server.url}tiles/soc-mean-0/{z}/0/0.png")
            assert status == 200 and kind == "image/png"
            alpha = np.asarray(Image.open(io.BytesIO(png)))[..., 3]
            window = mean[: 256 * step : step, : 256 * step : step]
            expected = np.zeros((256, 256), dtype=bool)
            expected[: window.shape[0], : window.shape[1]] = np.isfinite(window)
            np.testing.assert_array_equal(alpha > 0, expected)
        status, _, png = _get(f"{server.url}tiles/soc-mean-0/0/99/99.png")  # off the grid
        assert status == 200 and not np.asarray(Image.open(io.BytesIO(png)))[..., 3].any()
        r, c = (int(v) for v in np.argwhere(np.isfinite(mean))[100])
        status, kind, body = _get(f"{server.url}value?row={r}&col={c}")
        values = json.loads(body)
        assert values["0-15cm"]["mean"] == pytest.approx(float(mean[r, c]), rel=1e-6)
        assert values["stratum"] is not None
        for bad in ("tiles/nope/0/0/0.png", "tiles/soc-mean-0/1/0/0.png", "value?row=-1&col=0",
                    "value?row=x"):  # fmt: skip
            status, _, body = _get(server.url + bad)
            assert status == 400 and body, bad
        assert _get(server.url + "etc/passwd")[0] == 404
    finally:
        server.stop()
    with pytest.raises(ConfigError, match="not a loopback address"):
        serve(run, host="0.0.0.0")


def test_served_map_page_draws_tiles_and_shows_a_clicked_pixel(run, browser):
    import rasterio

    from socmap.report.tiles import serve

    with rasterio.open(run / "cogs" / "soc_0-15cm_mean.tif") as src:
        mean = src.read(1)
    r, c = (int(v) for v in np.argwhere(np.isfinite(mean))[50])
    server = serve(run)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}#layer=SOC%20sd%200-15cm&pixel={r},{c}")
        page.wait_for_function("document.body.dataset.map === 'ready'")
        page.wait_for_function("document.body.dataset.clicked !== undefined")
        assert page.get_attribute("body", "data-layer") == "SOC sd 0-15cm"
        assert page.get_attribute("body", "data-clicked").startswith(f"row {r}, col {c}")
        page.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded').length > 0")
        popup = page.locator(".leaflet-popup-content").inner_html()
        shown = re.findall(r"<tr><td>0-15cm</td><td>([^<]+)</td>", popup)[0]
        assert float(shown.replace(",", "")) == pytest.approx(float(mean[r, c]), rel=5e-4)
        assert not errors, errors
        page.close()
    finally:
        server.stop()


def test_view_serve_prints_the_address_and_serves_until_stopped(run, capsys, monkeypatch):
    import threading

    from socmap.cli import main
    from socmap.report import tiles

    started, real_serve = {}, tiles.serve

    def fake_serve(run_dir, port=0, host="127.0.0.1"):
        started.update(run_dir=run_dir, port=port)
        server = real_serve(run_dir, port=0)
        server.stop()  # the command waits on the thread: let it end at once
        return server

    monkeypatch.setattr(tiles, "serve", fake_serve)
    with pytest.raises(SystemExit) as exit_info:
        main(["view", str(run), "--serve", "--port", "0", "--no-open"])
    assert exit_info.value.code in (0, None)
    assert started == {"run_dir": run, "port": 0}
    printed = capsys.readouterr().out
    assert re.search(r"serving .* at http://127\.0\.0\.1:\d+/ \(Ctrl-C stops\)", printed)
    assert not [t for t in threading.enumerate() if t.name == "socmap-tiles"]


def _copy(run, tmp_path):
    """A copy of the module's run to damage, and a fingerprint of its files."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))  # another test's
    return copy, _files(copy)


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_damaged_stratum_table_is_refused_naming_the_file_and_the_fix(run, tmp_path):
    from socmap.errors import ConfigError

    copy, before = _copy(run, tmp_path)
    (copy / "strata" / "strata.csv").write_text("garbage,,,\n")
    damaged = _files(copy)
    # once KeyError: 'layer', halfway through the report
    with pytest.raises(
        ConfigError,
        match=r"stratum table '.*strata.csv' lacks the columns "
        r"\['stratum', 'layer', .*\(it has \['garbage', 'Unnamed: 1'.*rerun "
        r"`socmap strata .*run --strata soil`",
    ):
        build_report(copy)  # fmt: skip
    assert _files(copy) == damaged  # no report folder, nothing changed
    (copy / "strata" / "strata.csv").write_bytes(before[Path("strata/strata.csv")])
    doc = json.loads((copy / "strata" / "strata.json").read_text())
    del doc["config"]["min_cores"]
    (copy / "strata" / "strata.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"strata.json' lacks the keys \['config.min_cores'\]"):
        build_report(copy)
    (copy / "design" / "allocation.csv").write_text("stratum\nx\n")
    (copy / "strata" / "strata.json").write_bytes(before[Path("strata/strata.json")])
    with pytest.raises(
        ConfigError,
        match=r"sampling design .*allocation.csv' lacks the columns "
        r"\['allocated', 'placed'\]",
    ):
        build_report(copy)  # fmt: skip
    assert not (copy / "report").exists()


def test_a_deleted_strata_folder_is_refused_not_reported_as_no_totals_yet(run, tmp_path):
    import shutil

    from socmap.errors import InputNotFound

    copy, _ = _copy(run, tmp_path)
    shutil.rmtree(copy / "strata")
    with pytest.raises(
        InputNotFound,
        match=r"lists stratum totals \(run.json\) but their folder "
        r"'.*run/strata' is missing; rerun `socmap strata .*run --strata soil`",
    ):
        build_report(copy)  # fmt: skip
    assert not (copy / "report").exists()


def test_an_unfinished_run_is_refused_as_stocks_refuses_it(run, tmp_path):
    from socmap.errors import ConfigError

    copy, before = _copy(run, tmp_path)
    doc = json.loads((copy / "run.json").read_text())
    for status, step, message in [
        ("running", None, r"run '.*run' is 'running'; finish it \(rerun `socmap predict`\) first"),
        ("failed", None, r"is 'failed'; finish it"),
        ("complete", "strata", r"the strata of run '.*run' are 'running'; finish them \(rerun "
         r"`socmap strata .*run --strata soil` with the options it was started with\) first"),
    ]:  # fmt: skip
        changed = json.loads(json.dumps(doc))
        changed["status"] = status
        if step is not None:
            changed[step]["status"] = "running"
        (copy / "run.json").write_text(json.dumps(changed))
        with pytest.raises(ConfigError, match=message):
            build_report(copy)
    (copy / "run.json").write_bytes(before[Path("run.json")])
    assert _files(copy) == before  # no report folder, nothing else changed


def test_a_benchmark_folder_of_another_kind_is_refused(run, tmp_path):
    from socmap.errors import ConfigError, InputNotFound

    spectral = tmp_path / "spectral"  # `socmap spectra benchmark` writes a summary.csv too
    spectral.mkdir()
    (spectral / "summary.csv").write_text("site,method,rmse,ccc\nsite.csv,local-pls,3.9,0.8\n")
    # once KeyError: 'depth'
    with pytest.raises(
        ConfigError,
        match=r"benchmark summary .*summary.csv' lacks the columns "
        r"\['depth', 'n', 'mae', 'delta_mae_pct', 'delta_ccc_pct'\] \(it has "
        r"\['site', 'method', 'rmse', 'ccc'\]\); --benchmark takes the folder "
        r"that `socmap benchmark transfer -o DIR` writes",
    ):
        build_report(run, tmp_path / "report", benchmark=spectral)  # fmt: skip
    with pytest.raises(InputNotFound, match=r"--benchmark '.*summary.csv' is not a folder"):
        build_report(run, tmp_path / "report", benchmark=spectral / "summary.csv")
    assert not (tmp_path / "report").exists()

"""A hostile user's battery: every bad input is one line on stderr, exit 2, nothing written.

Each case runs one ``socmap`` command in-process on a small meuse world (cube, cores, bundle,
and a run with stocks and strata) and checks the contract of :func:`socmap.cli.main`:

* exit status 2;
* exactly one line on stderr, ``socmap: error: ...``, naming the offending value (no
  traceback);
* nothing left where the command would have written (``out*`` under the case's folder, no
  ``.tmp-*`` sibling), and the shared run untouched.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from _runs import meuse_bundle, meuse_cores, meuse_cube, meuse_run
from socmap.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    cube = meuse_cube(root)
    cores = meuse_cores(cube, n=40, seed=1)
    cols = ["site_id", "x", "y", "crs", "top_cm", "bottom_cm", "soc_g_kg"]
    cores[cols].to_csv(root / "cores.csv", index=False)
    bundle = meuse_bundle(cube, cores, root / "bundle", epochs=1)
    run = meuse_run(bundle, cube, root / "run", passes=2)
    km = root / "bundle_km"  # trained, it says, on 'dist' in km; the cube holds it unitless
    shutil.copytree(bundle, km)
    doc = json.loads((km / "model.json").read_text())
    doc["metadata"]["band_units"]["dist"] = "km"
    (km / "model.json").write_text(json.dumps(doc))
    for name, edit in {  # edits once read without a word (sweep 4 of issue 16)
        "bundle_units_list": lambda d: d["metadata"].update(band_units=["1", "1", "1"]),
        "bundle_classes_text": lambda d: d["features"]["categorical"].update(soil="123"),
    }.items():
        shutil.copytree(bundle, root / name)
        doc = json.loads((root / name / "model.json").read_text())
        edit(doc)
        (root / name / "model.json").write_text(json.dumps(doc))
    (root / "afile.txt").write_text("a user's file\n")
    (root / "empty.csv").write_text("")
    mine = root / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_text("years of work\n")
    notes = root / "field_notes"  # a user's folder holding files of the names socmap writes
    notes.mkdir()
    for name in USER_TABLES:
        (notes / name).write_text("my field notes\n")
    foreign = root / "foreign_run"  # a user's folder that happens to hold a run.json
    foreign.mkdir()
    (foreign / "run.json").write_text('{"name": "mine"}')
    (root / "garbage.yaml").write_text("name: [unclosed\n  - : :\n")
    (root / "big_grid.yaml").write_text(
        "grid:\n  crs: 'EPSG:28992'\n  bbox: [0, 0, 1000000, 1000000]\n  resolution: 0.5\n"
    )
    (root / "no_site.csv").write_text("profile,x,y\na,1,2\n")
    off = cores[cols].assign(x=cores["x"] + 1e5)  # metres off the map
    off.to_csv(root / "off_the_cube.csv", index=False)
    cores[cols].assign(x=cores["y"], y=cores["x"]).to_csv(root / "swapped_xy.csv", index=False)
    cores[cols].assign(crs="EPSG:4326").to_csv(root / "metres_as_degrees.csv", index=False)
    in_m = cores[cols].assign(top_cm=cores["top_cm"] / 100, bottom_cm=cores["bottom_cm"] / 100)
    in_m.to_csv(root / "depths_in_m.csv", index=False)
    flipped = cores[cols].assign(top_cm=cores["bottom_cm"], bottom_cm=cores["top_cm"])
    flipped.to_csv(root / "swapped_depths.csv", index=False)
    no_crs = cores.drop(columns=["crs"])[[c for c in cols if c != "crs"]]
    no_crs.to_csv(root / "no_crs.csv", index=False)
    far = gpd.GeoDataFrame({"stratum": ["a"]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:28992")
    far.to_file(root / "far.gpkg")
    (root / "corrupt.gpkg").write_bytes(b"SQLite format 3\x00 not really")
    shutil.copy(root / "cores.csv", root / "h_sites.csv")  # what `-o h.csv` names its sites
    shutil.copy(root / "cores.csv", root / "flags.csv")  # what `profiles qc -o DIR` writes
    decimal = cores[cols].assign(soc_g_kg=cores["soc_g_kg"].map(lambda v: f"{v:.2f}"))
    decimal["soc_g_kg"] = decimal["soc_g_kg"].str.replace(".", ",")
    decimal.to_csv(root / "decimal_comma.csv", sep=";", index=False)
    cores[cols].rename(columns={"soc_g_kg": " SOC_g_kg "}).to_csv(root / "spaced_header.csv",
                                                               index=False)  # fmt: skip
    (root / "bd_misspelt.csv").write_text("stratum,bd_g_cm3,bd_sd,notes\n1,1.3,0.1,x\n")
    import rasterio
    from rasterio.transform import from_origin

    far_prior = {"driver": "GTiff", "height": 10, "width": 10, "count": 1, "dtype": "float32",
                 "crs": "EPSG:4326", "transform": from_origin(0, 10, 1, 1)}  # fmt: skip
    with rasterio.open(root / "far_prior.tif", "w", **far_prior) as dst:
        dst.write(np.ones((1, 10, 10), dtype="float32"))
    local = root / "local_catalog.yaml"
    local.write_text(
        "name: local\ncovariates:\n  - {name: a, source: missing_raster.tif, units: m, "
        "kind: continuous, group: terrain}\n"
    )
    (root / "run_config.yaml").write_text(
        f"name: x\noutput: {root / 'runs'}\ncube: {{catalog: meuse}}\n"
        f"profiles: {{path: {root / 'cores.csv'}}}\nmodel: {{bundle: {root / 'no_bundle'}}}\n"
    )
    (root / "typo_config.yaml").write_text(
        "name: x\ncube: {catalog: meuse}\nprofiles: {path: cores.csv}\nmodle: {}\n"
    )
    # run configurations with one bad value each, refused by --plan before anything runs
    base = f"name: x\noutput: {root / 'runs'}\ncube: {{catalog: meuse}}\n"
    good = f"profiles: {{path: {root / 'cores.csv'}}}\nmodel: {{bundle: {bundle}}}\n"
    for name, text in {
        "cfg_bd_band": base + good + "stocks: {bd: bulk}\n",
        "cfg_cf": base + good + "stocks: {cf: 1.5}\n",
        "cfg_strata": base + good + "strata: {source: nope}\n",
        "cfg_strata_field": base + good + "strata: {source: soil, field: zone}\n",
        "cfg_profiles_in_metres": base + f"profiles: {{path: {root / 'depths_in_m.csv'}}}\n"
        f"model: {{bundle: {bundle}}}\n",
        "cfg_profiles_without_soc": base + f"profiles: {{path: {root / 'cores_without_soc.csv'}}}\n"
        f"model: {{bundle: {bundle}}}\n",
        "cfg_depths": base + f"profiles: {{path: {root / 'cores.csv'}}}\nmodel: {{depths: deep}}\n",
        "cfg_swapped": base + f"profiles: {{path: {root / 'swapped_xy.csv'}}}\n",
        "cfg_output_file": f"name: x\noutput: {root / 'afile.txt'}\ncube: {{catalog: meuse}}\n"
        + good,
    }.items():
        (root / f"{name}.yaml").write_text(text)
    rng = np.random.default_rng(0)
    spectra = pd.DataFrame(
        rng.uniform(0.1, 0.9, (6, 12)), columns=[str(500 + 2 * i) for i in range(12)]
    )
    spectra.insert(0, "sample_id", list("abcdef"))  # fmt: skip
    spectra.to_csv(root / "spectra.csv", index=False)
    spectra.assign(sample_id="a").to_csv(root / "spectra_one_id.csv", index=False)
    holed = spectra.mask(spectra == spectra.iloc[2, 4], np.nan)
    holed.to_csv(root / "spectra_nan.csv", index=False)
    bands = spectra.columns[1:]
    spectra.assign(**{c: np.where(spectra.index == 2, np.nan, spectra[c]) for c in bands}).to_csv(
        root / "spectra_empty_row.csv", index=False
    )
    spectra.assign(**{c: spectra[c] * 1.5 for c in bands}).to_csv(
        root / "spectra_above_one.csv", index=False
    )
    spectra.iloc[:, :4].to_csv(root / "spectra_three_bands.csv", index=False)
    spectra.head(0).to_csv(root / "spectra_header_only.csv", index=False)
    first = cores["site_id"].unique()
    cores.loc[cores["site_id"] == first[0], cols].to_csv(root / "one_site.csv", index=False)
    cores.loc[cores["site_id"].isin(first[:3]), cols].to_csv(root / "three_sites.csv", index=False)
    (root / "sets_unknown.csv").write_text("fold,site_id\n0,nope\n1,s1\n2,s2\n")
    (root / "bd_table.csv").write_text("stratum,bd_g_cm3,bd_sd_g_cm3\n1,1.3,0.1\n")
    (root / "cfg_bd_table.yaml").write_text(
        base + good + f"stocks: {{bd: 1.3, bd_table: {root / 'bd_table.csv'}}}\n"
    )
    # runs damaged after the fact, each a copy of the shared run
    for name in ("run_bad_table", "run_unfinished", "run_no_strata"):
        shutil.copytree(run, root / name)
    (root / "run_bad_table" / "strata" / "strata.csv").write_text("garbage,,,\n")
    doc = json.loads((root / "run_unfinished" / "run.json").read_text())
    doc["status"] = "running"  # as a `socmap predict` interrupted by Ctrl-C leaves it
    (root / "run_unfinished" / "run.json").write_text(json.dumps(doc))
    shutil.rmtree(root / "run_no_strata" / "strata")
    (root / "spectral_bench").mkdir()  # `socmap spectra benchmark` writes a summary.csv too
    (root / "spectral_bench" / "summary.csv").write_text(
        "site,method,rmse,me,ccc,r2\nsite.csv,local-pls,3.9,-0.4,0.79,0.59\n"
    )
    from socmap.predict import open_run

    x0, y0, x1, y1 = open_run(run).grid.bounds
    xm = (x0 + x1) / 2
    halves = [box(x0, y0, xm, y1), box(xm, y0, x1, y1)]
    gpd.GeoDataFrame({"stratum": ["all", "west"]}, geometry=[box(x0, y0, x1, y1), halves[0]],
                     crs="EPSG:28992").to_file(root / "overlap.gpkg")  # fmt: skip
    gpd.GeoDataFrame({"stratum": ["west", "east"]}, geometry=halves, crs="EPSG:4326").to_file(
        root / "metres_as_degrees.gpkg"
    )
    gpd.GeoDataFrame({"stratum": ["a"]}, geometry=[halves[0].centroid],
                     crs="EPSG:28992").to_file(root / "points.gpkg")  # fmt: skip
    cover = {**far_prior, "crs": "EPSG:28992", "transform": from_origin(x0, y1, (x1 - x0) / 10,
             (y1 - y0) / 10)}  # fmt: skip
    for name, value in (("prior_mean", 20.0), ("prior_se", 5.0), ("prior_se_zero", 0.0),
                        ("prior_negative", -5.0)):  # fmt: skip
        with rasterio.open(root / f"{name}.tif", "w", **cover) as dst:
            dst.write(np.full((1, 10, 10), value, dtype="float32"))
    cores[cols].head(0).to_csv(root / "cores_header_only.csv", index=False)
    cores[cols].assign(top_cm=cores["top_cm"] + 1).to_csv(root / "cores_other_depths.csv",
                                                          index=False)  # fmt: skip
    cores[cols].assign(soc_g_kg=np.nan).to_csv(root / "cores_without_soc.csv", index=False)
    (root / "empty.geojson").write_text('{"type":"FeatureCollection","features":[]}')
    no_iv = root / "bundle_no_intervals"  # an old bundle: no intervals, no depth set
    shutil.copytree(bundle, no_iv)
    doc = json.loads((no_iv / "model.json").read_text())
    doc["metadata"].pop("intervals", None)
    doc["metadata"].pop("depth_set", None)
    (no_iv / "model.json").write_text(json.dumps(doc))
    for name, edit in {  # bundles damaged after the fact, each a copy of the shared one
        "bundle_reversed_interval": lambda d: d["metadata"].update(intervals=[[30, 0]]),
        "bundle_interval_twice": lambda d: d["metadata"].update(intervals=[[0, 15], [0, 15]]),
        "bundle_other_classes": lambda d: d["features"]["categorical"].update(soil=[7, 8, 9]),
    }.items():
        shutil.copytree(bundle, root / name)
        doc = json.loads((root / name / "model.json").read_text())
        edit(doc)
        (root / name / "model.json").write_text(json.dumps(doc))
    cores[cols].assign(site_id=np.nan).to_csv(root / "cores_without_ids.csv", index=False)
    (root / "latin1.csv").write_bytes((root / "cores.csv").read_bytes().replace(b"s0,", b"s\xe90,"))
    (root / "loop.csv").symlink_to(root / "loop.csv")  # a link to itself
    lines = (root / "cores.csv").read_text().splitlines()  # a spreadsheet's trailing commas
    (root / "unnamed_columns.csv").write_text("\n".join(f"{line},," for line in lines) + "\n")
    # run configurations refused by --plan (sweep 16: each once passed it, or hung, or ran
    # among a user's files)
    bomb = "".join(  # YAML aliases: nine lists of nine, eight levels deep (43 million leaves)
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}' if i else 'x'] * 9)}]\n" for i in range(8)
    )
    for name, text in {
        "cfg_twice": base + good + "predict: {passes: 2}\npredict: {passes: 3}\n",
        "cfg_bomb": bomb + base + good + "report: {title: *l7}\n",
        "cfg_seed": base + good + "predict: {seed: 100000000000000000000}\n",
        "cfg_passes_yes": base + good + "predict: {passes: true}\n",  # once mapped 1 pass
        # once refused at the strata stage, after the map
        "cfg_strata_nodata": base + good + f"strata: {{source: {root / 'strata_nodata.tif'}}}\n",
        "cfg_bd_sd_inf": base + good + "stocks: {bd: 1.3, bd_sd: .inf}\n",
        "cfg_spacing_inf": base + good + "strata: {source: soil}\n"
        "design: {budget: 5, min_spacing_m: .inf}\n",
        "cfg_no_benchmark": base + good + f"report: {{benchmark: {root / 'no_bench'}}}\n",
        "cfg_title_two_lines": base + good + 'report: {title: "SOC\\nstocks"}\n',
        "cfg_output_mine": f"name: x\noutput: {mine}\ncube: {{catalog: meuse}}\n" + good,
        "cfg_soc_units": base + f"profiles: {{path: {root / 'cores.csv'}, soc_units: kg/ha}}\n"
        f"model: {{bundle: {bundle}}}\n",
        "cfg_bd_strata_dist": base + good + "stocks: {bd: 'strata:dist', bd_table: "
        f"{root / 'bd_table.csv'}}}\n",
    }.items():
        (root / f"{name}.yaml").write_text(text)
    # sweep 4: files each once exited 1, passed silently, or was replaced
    with rasterio.open(root / "strata_nodata.tif", "w", **cover) as dst:  # all nodata
        dst.write(np.full((1, 10, 10), np.nan, dtype="float32"))
    for name, value in (("prior_huge", 1e30), ("prior_se_inf", np.inf)):
        with rasterio.open(root / f"{name}.tif", "w", **cover) as dst:
            dst.write(np.full((1, 10, 10), value, dtype="float32"))
    text_soc = cores[cols].assign(soc_g_kg=cores["soc_g_kg"].map(lambda v: f"{v:.1f}x"))
    text_soc.to_csv(root / "cores_soc_text.csv", index=False)
    cores[cols].assign(soc_g_kg=np.inf).to_csv(root / "cores_soc_inf.csv", index=False)
    (root / "notes.html").write_text("<html><body>my notes</body></html>\n")
    (root / "bd_sd_wide.csv").write_text("stratum,bd_g_cm3,bd_sd_g_cm3\n1,1.3,5\n2,1.3,0.1\n")
    spectra.to_csv(root / "spectra_utf16.csv", index=False, encoding="utf-16")
    spectra.to_csv(root / "spectra_semicolon.csv", index=False, sep=";")
    with rasterio.open(root / "prior_two_bands.tif", "w", **{**cover, "count": 2}) as dst:
        dst.write(np.full((2, 10, 10), 20.0, dtype="float32"))  # mean and SE stacked
    damaged = root / "damaged.zarr"  # a cube with one chunk file cut short
    shutil.copytree(cube, damaged)
    chunk = sorted(p for p in (damaged / "covariates" / "c").rglob("*") if p.is_file())[0]
    chunk.write_bytes(chunk.read_bytes()[:3])
    (root / "cfg_bd_sd_wide.yaml").write_text(base + good + "stocks: {bd: 1.3, bd_sd: 5}\n")
    (root / "cfg_bd_table_wide.yaml").write_text(
        base + good + f"stocks: {{bd: 'strata:soil', bd_table: {root / 'bd_sd_wide.csv'}}}\n"
    )
    return {"root": root, "cube": cube, "bundle": bundle, "run": run, "cores": root / "cores.csv"}


W = dict[str, Path]
Args = Callable[[W, Path], list[Any]]

#: (id, argv from the world and the case's folder, pattern the one line must match)
#: Files a user keeps in ``field_notes/`` under names that socmap's folder outputs use.
USER_TABLES = ("design.csv", "flags.csv", "metrics.csv", "report.html")

CASES: list[tuple[str, Args, str]] = [
    # cube build / info
    ("cube-unknown-catalog", lambda w, t: ["cube", "build", "nope", "-o", t / "out.zarr"], "nope"),
    ("cube-garbage-catalog",
     lambda w, t: ["cube", "build", w["root"] / "garbage.yaml", "-o", t / "out.zarr"],
     "garbage.yaml"),
    ("cube-chunk-0", lambda w, t: ["cube", "build", "meuse", "-o", t / "out.zarr", "--chunk", 0],
     "chunk 0"),
    ("cube-missing-grid",
     lambda w, t: ["cube", "build", "meuse", "-o", t / "out.zarr", "--grid", t / "no.yaml"],
     "no.yaml"),
    ("cube-huge-grid",
     lambda w, t: ["cube", "build", "meuse", "-o", t / "out.zarr",
                   "--grid", w["root"] / "big_grid.yaml"], "SOCMAP_MAX_PIXELS"),
    ("cube-overwrite-user-folder",
     lambda w, t: ["cube", "build", "meuse", "-o", w["root"] / "mine", "--overwrite"],
     "not a socmap cube"),
    ("cube-exists", lambda w, t: ["cube", "build", "meuse", "-o", w["root"] / "afile.txt"],
     "afile.txt.*already exists and is not a socmap cube; choose another path"),
    ("cube-unknown-classes-policy",
     lambda w, t: ["cube", "build", "meuse", "-o", t / "out.zarr", "--unknown-classes", "drop"],
     "drop"),
    ("cube-missing-source",
     lambda w, t: ["cube", "build", w["root"] / "local_catalog.yaml", "-o", t / "out.zarr",
                   "--grid", "meuse"], "missing_raster.tif|grid"),
    ("cube-info-missing", lambda w, t: ["cube", "info", t / "none.zarr"], "none.zarr"),
    ("cube-info-not-a-cube", lambda w, t: ["cube", "info", w["root"] / "mine"], "mine"),
    # profiles
    ("qc-missing-file", lambda w, t: ["profiles", "qc", t / "no.csv", "-o", t / "out"], "no.csv"),
    ("qc-no-site-id", lambda w, t: ["profiles", "qc", w["root"] / "no_site.csv", "--crs",
                                    "EPSG:4326", "-o", t / "out"], "site_id"),
    ("qc-bluecarbon-no-samples",
     lambda w, t: ["profiles", "qc", w["cores"], "--format", "bluecarbon", "-o", t / "out"],
     "--samples"),
    ("qc-bad-units", lambda w, t: ["profiles", "qc", w["cores"], "--soc-units", "kg/ha",
                                   "-o", t / "out"], "kg/ha"),
    ("qc-bad-crs", lambda w, t: ["profiles", "qc", w["root"] / "no_crs.csv", "--crs",
                                 "EPSG:999999", "-o", t / "out"], "999999"),
    ("qc-geocentric-crs",  # once x/y read as a map's, 0 flags at exit 0
     lambda w, t: ["profiles", "qc", w["root"] / "no_crs.csv", "--crs", "EPSG:4978",
                   "-o", t / "out"], r"'EPSG:4978' is geocentric .*--crs EPSG:4326"),
    ("qc-bad-map", lambda w, t: ["profiles", "qc", w["cores"], "--map", "site_id", "-o",
                                 t / "out"], "--map 'site_id'"),
    ("qc-bad-format", lambda w, t: ["profiles", "qc", w["cores"], "--format", "excel"], "excel"),
    ("harmonise-bad-depths", lambda w, t: ["profiles", "harmonise", w["cores"], "--depths",
                                           "nope", "-o", t / "out.csv"], "nope"),
    ("harmonise-negative-lambda", lambda w, t: ["profiles", "harmonise", w["cores"], "--lam",
                                                "-1", "-o", t / "out.csv"], "-1"),
    ("harmonise-file-in-the-way",
     lambda w, t: ["profiles", "harmonise", w["cores"], "-o", w["root"] / "afile.txt" / "o.csv"],
     "afile.txt"),
    ("harmonise-xlsx", lambda w, t: ["profiles", "harmonise", w["cores"], "-o", t / "out.xlsx"],
     r"\.xlsx"),
    ("harmonise-depths-in-metres",  # once harmonised silently: 0-30 cm from 0-0.3 cm
     lambda w, t: ["profiles", "harmonise", w["root"] / "depths_in_m.csv", "-o", t / "h.parquet"],
     "likely_metre_depths"),
    ("extract-xlsx", lambda w, t: ["extract", w["cube"], w["cores"], "-o", t / "out.xlsx"],
     r"out\.xlsx.*\.parquet or \.csv"),
    ("harmonise-missing-input",
     lambda w, t: ["profiles", "harmonise", t / "no.csv", "-o", t / "out.csv"], "no.csv"),
    ("harmonise-top-and-bottom-swapped",
     lambda w, t: ["profiles", "harmonise", w["root"] / "swapped_depths.csv", "-o",
                   t / "out.csv"], r"fail QC: nonpositive_thickness \(80 rows, 40 sites.*swap"),
    # extract
    ("extract-missing-cube", lambda w, t: ["extract", t / "no.zarr", w["cores"], "-o",
                                           t / "out.csv"], "no.zarr"),
    ("extract-missing-table", lambda w, t: ["extract", w["cube"], t / "no.csv", "-o",
                                            t / "out.csv"], "no.csv"),
    ("extract-table-without-xy", lambda w, t: ["extract", w["cube"], w["root"] / "no_site.csv",
                                               "-o", t / "out.csv"], "site_id|x|y"),
    ("extract-x-and-y-swapped",
     lambda w, t: ["extract", w["cube"], w["root"] / "swapped_xy.csv", "-o", t / "out.csv"],
     r"40 lie outside the cube .* with x and y swapped 40 of them would lie on the cube"),
    ("extract-metres-labelled-degrees",
     lambda w, t: ["extract", w["cube"], w["root"] / "metres_as_degrees.csv", "-o",
                   t / "out.csv"], r"40 without coordinates; x/y are missing or impossible"),
    ("extract-bad-method", lambda w, t: ["extract", w["cube"], w["cores"], "--method", "cubic",
                                         "-o", t / "out.csv"], "cubic"),
    # finetune
    ("finetune-missing-bundle",
     lambda w, t: ["finetune", t / "nob", "--cube", w["cube"], "--profiles", w["cores"],
                   "-o", t / "out"], "nob"),
    ("finetune-bad-strategy",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--strategy", "magic", "-o", t / "out"], "magic"),
    ("finetune-bad-block-units",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--block-size", "2parsec", "-o", t / "out"], "2parsec"),
    ("finetune-one-fold",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--cv-folds", 1, "-o", t / "out"], "1"),
    ("finetune-bad-depths",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--depths", "deep", "-o", t / "out"], "deep"),
    ("finetune-out-is-a-users-folder",  # once replaced by the bundle: the user's files gone
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--strategy", "rf", "-o", w["root"] / "mine"],
     "'.*mine' exists and is not a socmap model bundle, so socmap will not replace it"),
    ("finetune-negative-max-depth",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--max-depth", -5, "-o", t / "out"], "-5"),
    ("finetune-accept-unknown-check",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--accept-qc", "typo", "-o", t / "out"], "typo"),
    ("finetune-instances-with-a-regional-bundle",  # once an internal KeyError
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--strategy", "instances", "--block-size", "500m", "--cv-folds", 0,
                   "-o", t / "out"], r"global table, which lacks the bundle's bands \['dist'\]"),
    ("finetune-depths-in-metres",  # trained silently on 0-0.15 'cm' layers
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles",
                   w["root"] / "depths_in_m.csv", "-o", t / "out"], "likely_metre_depths"),
    ("finetune-cores-off-the-cube",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles",
                   w["root"] / "off_the_cube.csv", "-o", t / "out"],
     r"none of the 40 profiles has a covariate value: 40 lie outside the cube"),
    ("finetune-one-site",  # once 'lower inner_folds' or '--folds-column', neither a finetune option
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles",
                   w["root"] / "one_site.csv", "-o", t / "out"],
     r"fine-tuning needs profiles at 2 places or more.*1 profile\(s\) with SOC at 1 place"),
    ("finetune-fewer-places-than-cv-folds",  # once 'use a smaller block size': none helps
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles",
                   w["root"] / "three_sites.csv", "--strategy", "rf", "-o", t / "out"],
     r"--cv-folds 5 .*needs profiles at 5 places or more.*pass --cv-folds 3 or 0"),
    ("finetune-auto-with-three-profiles",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles",
                   w["root"] / "three_sites.csv", "--cv-folds", 3, "-o", t / "out"],
     r"--strategy auto chooses its method by 5-fold inner CV.*--strategy rf"),
    # predict
    ("predict-bundle-without-intervals",  # once 're-save it', which the CLI cannot do
     lambda w, t: ["predict", w["root"] / "bundle_no_intervals", w["cube"], "-o", t / "out"],
     r"neither 'intervals' nor a 'depth_set'; re-create it with `socmap finetune`"),
    ("predict-missing-bundle",
     lambda w, t: ["predict", t / "nob", w["cube"], "-o", t / "out"], "nob"),
    ("predict-missing-cube",
     lambda w, t: ["predict", w["bundle"], t / "no.zarr", "-o", t / "out"], "no.zarr"),
    ("predict-band-in-other-units",
     lambda w, t: ["predict", w["root"] / "bundle_km", w["cube"], "-o", t / "out"],
     "'dist' is in '1' here but the model was trained on 'km'"),
    ("predict-bundle-units-a-list",
     lambda w, t: ["predict", w["root"] / "bundle_units_list", w["cube"], "-o", t / "out"],
     r"metadata.band_units is \"\['1', '1', '1'\]\", not an object of band -> units"),
    ("predict-bundle-classes-as-text",
     lambda w, t: ["predict", w["root"] / "bundle_classes_text", w["cube"], "-o", t / "out"],
     r"categorical band 'soil' is the text '123'; it must be a list of class codes"),
    ("predict-unknown-device",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--device", "tpu"],
     r"device 'tpu' must be one of"),
    ("stocks-unknown-device",
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--device", "gpu"], r"device 'gpu'"),
    ("predict-zero-passes",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--passes", 0], "0"),
    ("predict-a-million-passes",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--passes", 10**6],
     r"--passes 1000000 must be <= 1024"),
    ("predict-zero-batch",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--batch-size", 0], "0"),
    ("predict-overwrite-user-folder",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", w["root"] / "mine", "--overwrite"],
     "not a socmap prediction run"),
    ("predict-overwrite-a-foreign-run-json",  # once: "redo the run"
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", w["root"] / "foreign_run",
                   "--overwrite"],
     r"holds a run.json of format None, not a socmap prediction run.*a folder of its own"),
    ("predict-negative-workers",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--workers", -2], "-2"),
    # stocks (the shared run must stay as it is)
    ("stocks-missing-run", lambda w, t: ["stocks", t / "norun"], "norun"),
    ("stocks-unknown-bd-band", lambda w, t: ["stocks", w["run"], "--bd", "nope"], "'nope'"),
    ("stocks-implausible-bd", lambda w, t: ["stocks", w["run"], "--bd", "5"], "5"),
    ("stocks-cf-above-one", lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--cf", "1.5"],
     "1.5"),
    ("stocks-negative-bd-sd", lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--bd-sd", "-1"],
     "-1"),
    ("stocks-bd-sd-wider-than-bd",  # once: draws clipped silently, mean stock +2 %
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--bd-sd", "5"],
     r"--bd-sd 5.0 around --bd 1.3 puts 79% of the BD draws outside 0.05-2.65"),
    ("stocks-bd-sd-wide-with-a-band",
     lambda w, t: ["stocks", w["run"], "--bd", "ptf", "--bd-sd", "0.8"],
     r"--bd-sd 0.8 g/cm3 spans most of the physical range"),
    ("stocks-kg-m3", lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--bd-units", "kg/m3"],
     "kg/m3"),
    ("stocks-missing-bd-table",
     lambda w, t: ["stocks", w["run"], "--bd", "strata:soil", "--bd-table", t / "no.csv"],
     "no.csv"),
    ("stocks-misspelt-bd-sd-column",  # the sd was silently 0
     lambda w, t: ["stocks", w["run"], "--bd", "strata:soil", "--bd-table",
                   w["root"] / "bd_misspelt.csv"], r"\['bd_sd'\] that look like bulk density"),
    ("stocks-bd-table-misses-a-class",  # once 'or give a default', not said how
     lambda w, t: ["stocks", w["run"], "--bd", "strata:soil", "--bd-table",
                   w["root"] / "bd_table.csv"],
     r"classes \['2', '3'\] without a bulk density; add them to the --bd-table, or a row with "
     r"stratum 'default'"),
    # BD and CF bands checked before the stocks change (once inside the tiles, after
    # stocks.status=running: the corrected command met 'exist with other options')
    ("stocks-categorical-bd-band",
     lambda w, t: ["stocks", w["run"], "--bd", "soil"],
     r"--bd 'soil' is a categorical band \(class codes, not a quantity\)"),
    ("stocks-bd-band-out-of-range",
     lambda w, t: ["stocks", w["run"], "--bd", "dist"],
     r"--bd band 'dist' must lie in \[0.05, 2.65\] g/cm3 where the run mapped SOC; \d+ of "
     r"\d+ pixels do not"),
    ("stocks-bd-band-in-cg-out-of-range",
     lambda w, t: ["stocks", w["run"], "--bd", "dist", "--bd-units", "cg/cm3"],
     r"--bd band 'dist' must lie in \[5, 265\] cg/cm3"),
    ("stocks-categorical-cf-band",
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--cf", "ffreq"],
     r"--cf 'ffreq' is a categorical band"),
    ("stocks-unknown-strata-band", lambda w, t: ["stocks", w["run"], "--bd", "strata:nope"],
     "nope"),
    ("stocks-bd-units-with-a-constant",  # cg/cm3 was ignored for a constant
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--bd-units", "cg/cm3"],
     r"--bd-units 'cg/cm3' applies to a BD band only, and --bd 1.3"),
    ("stocks-bd-units-when-auto-finds-no-band",
     lambda w, t: ["stocks", w["run"], "--bd-units", "cg/cm3"], r"--bd 'auto' uses 'ptf'"),
    ("stocks-bd-table-without-strata",  # the table was read and ignored
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--bd-table", w["root"] / "bd_table.csv"],
     r"--bd-table is read only with --bd strata:BAND, and --bd is 1.3"),
    ("stocks-cf-sd-in-percent",
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--cf", "dist", "--cf-sd", "5"],
     r"--cf-sd 5.0 must be the sd of a volume fraction"),
    # strata
    ("strata-target-error-zero",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--target-error", 0],
     "--target-error 0.0"),
    ("strata-unknown-source", lambda w, t: ["strata", w["run"], "--strata", "nope"], "'nope'"),
    ("strata-polygons-off-the-map",
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "far.gpkg"], "far.gpkg"),
    ("strata-corrupt-gpkg",
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "corrupt.gpkg"], "corrupt.gpkg"),
    ("strata-missing-field",
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "far.gpkg", "--field", "zone"],
     "zone"),
    ("strata-low-confidence",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--confidence", 0.3],
     "--confidence 0.3"),  # once 'target_confidence', a Python name
    ("strata-zero-min-cores",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--min-cores", 0], "--min-cores 0"),
    ("strata-missing-run", lambda w, t: ["strata", t / "norun", "--strata", "soil"], "norun"),
    ("strata-overlapping-polygons",  # the overlap once went silently to one stratum
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "overlap.gpkg"],
     r"strata 'all' and 'west' of .*overlap.gpkg' overlap on \d+ pixels of the map "
     r"\([\d.]+ ha\).*make the polygons disjoint"),
    ("strata-point-layer",  # once a 0.2 ha stratum
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "points.gpkg"],
     r"points.gpkg' hold Point geometries .*strata must be areas \(Polygon or MultiPolygon\)"),
    ("strata-empty-geojson",  # once "lack the column 'stratum'; pick one of []"
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "empty.geojson"],
     r"empty.geojson' have no feature with both a geometry and a 'stratum' value "
     r"\(0 features\)"),
    ("strata-polygons-metres-labelled-degrees",  # once "polygons span x inf..inf"
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "metres_as_degrees.gpkg"],
     r"2 of 2 stratum polygons .* e.g. the point x 1\d{5}, y 3\d{5} does not exist in the "
     r"file's CRS EPSG:4326, so that CRS label is probably wrong; assign the CRS"),
    ("strata-cores-metres-labelled-degrees",  # once exit 0, a numpy warning and 0 cores
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "metres_as_degrees.csv"],
     r"40 of the 40 cores without a stratum have no position in the map's CRS EPSG:28992: "
     r"e.g. core 's\d+' at x 1\d{5}, y 3\d{5} is no place in its crs EPSG:4326.*"
     r"set the crs column of the --cores table"),
    ("strata-cores-off-the-map",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "off_the_cube.csv"],
     r"none of the 40 cores without a stratum lies on the map \(x 178440\.\.181560.*e\.g\. "
     r"core 's\d+' at x 2\d{5}"),
    # design
    ("design-zero-budget",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 0, "-o", t / "out"],
     "budget 0"),
    ("design-negative-budget",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", -3, "-o", t / "out"],
     "-3"),
    ("design-unknown-strata",
     lambda w, t: ["design", w["run"], "--strata", "nope", "--budget", 5, "-o", t / "out"],
     "nope"),
    ("design-negative-spacing",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--min-spacing", -5,
                   "-o", t / "out"], "-5"),
    ("design-unknown-layer",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--layer", "0-999cm",
                   "-o", t / "out"], "0-999cm"),
    ("design-negative-min-cores",  # once read as 0 without a word
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--min-cores", -1,
                   "-o", t / "out"], "--min-cores -1"),
    ("design-cores-metres-labelled-degrees",  # the cores silently counted in no stratum
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--cores",
                   w["root"] / "metres_as_degrees.csv", "-o", t / "out"],
     r"40 of the 40 cores .*no position in the map's CRS .*crs EPSG:4326"),
    ("design-unfinished-run",  # once "none of the 3 strata has a mapped pixel"
     lambda w, t: ["design", w["root"] / "run_unfinished", "--strata", "soil", "--budget", 5,
                   "-o", t / "out"],
     r"run_unfinished' is 'running'; finish it \(rerun `socmap predict`\) first"),
    # posterior
    ("posterior-missing-prior",
     lambda w, t: ["posterior", w["run"], "--prior", f"0-15cm={t / 'm.tif'},{t / 's.tif'}"],
     "m.tif"),
    ("posterior-prior-off-the-map",  # once a posterior with no prior anywhere, exit 0
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'far_prior.tif'},{w['root'] / 'far_prior.tif'}"],
     r"far_prior.tif' \(0-15cm\) has no value at any of the run's \d+ mapped pixels"),
    ("posterior-bad-prior-syntax",
     lambda w, t: ["posterior", w["run"], "--prior", "0-15cm"], "0-15cm"),
    # report
    ("report-missing-run", lambda w, t: ["report", t / "norun", "-o", t / "out"], "norun"),
    ("report-missing-benchmark",
     lambda w, t: ["report", w["run"], "--benchmark", t / "no.csv", "-o", t / "out"], "no.csv"),
    ("report-not-a-run", lambda w, t: ["report", w["root"] / "mine", "-o", t / "out"], "mine"),
    ("report-damaged-stratum-table",  # once KeyError: 'layer'
     lambda w, t: ["report", w["root"] / "run_bad_table", "-o", t / "out"],
     r"stratum table '.*run_bad_table/strata/strata.csv' lacks the columns \['stratum', "
     r"'layer', .*\(it has \['garbage', .*rerun `socmap strata .*run_bad_table --strata soil`"),
    ("report-spectral-benchmark",  # once KeyError: 'depth'
     lambda w, t: ["report", w["run"], "--benchmark", w["root"] / "spectral_bench", "-o",
                   t / "out"],
     r"benchmark summary .*spectral_bench/summary.csv' lacks the columns \['depth', 'n', "
     r"'mae', .*--benchmark takes the folder that `socmap benchmark transfer -o DIR` writes"),
    ("report-unfinished-run",  # once a report of half a map, exit 0
     lambda w, t: ["report", w["root"] / "run_unfinished", "-o", t / "out"],
     r"run_unfinished' is 'running'; finish it \(rerun `socmap predict`\) first"),
    ("report-strata-folder-deleted",  # once "No project totals yet", exit 0
     lambda w, t: ["report", w["root"] / "run_no_strata", "-o", t / "out"],
     r"lists stratum totals \(run.json\) but their folder '.*run_no_strata/strata' is "
     r"missing; rerun `socmap strata .*run_no_strata --strata soil`"),
    # cv
    ("cv-unknown-method",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--method", "xgb",
                   "-o", t / "out"], "xgb"),
    ("cv-negative-seed",  # numpy refused it deep inside: an internal error
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--seed", -1,
                   "-o", t / "out"], r"--seed.*greater than or equal to 0 \(got '-1'\)"),
    ("cv-one-fold",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--folds", 1,
                   "-o", t / "out"], "1"),
    ("cv-unknown-folds-column",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--folds-column",
                   "fold", "-o", t / "out"], "fold"),
    ("cv-missing-train-sets",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--train-sets",
                   t / "sets.csv", "-o", t / "out"], "sets.csv"),
    ("cv-train-sets-unknown-sites",  # once 'train_sites lists', the Python name only
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--block-size", "500m",
                   "--train-sets", w["root"] / "sets_unknown.csv", "-o", t / "out"],
     r"--train-sets \(train_sites\) lists 1 site ids for fold 0 .*\['nope'\]"),
    ("cv-unknown-target",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--target", "clay",
                   "-o", t / "out"], "clay"),
    ("cv-missing-cube",
     lambda w, t: ["cv", "--cube", t / "no.zarr", "--profiles", w["cores"], "-o", t / "out"],
     "no.zarr"),
    ("cv-one-profile",  # once suggested --folds-column, which cannot split one profile
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["root"] / "one_site.csv",
                   "-o", t / "out"], r"there is only one profile.*needs 10 profiles or more"),
    ("cv-fewer-places-than-folds",  # once 'use a smaller block size such as 60m'
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["root"] / "three_sites.csv",
                   "--block-size", "100m", "--folds", 5, "-o", t / "out"],
     r"the profiles lie at only 3 distinct places, so no block size helps; use 3 folds"),
    # compare
    ("compare-missing-run",
     lambda w, t: ["compare", t / "norun", w["run"], "-o", t / "out"], "norun"),
    ("compare-out-inside-a-run",
     lambda w, t: ["compare", w["run"], w["run"], "-o", w["run"] / "change"], "inside"),
    ("compare-out-is-a-users-file",  # once "pass --overwrite", which then refused too
     lambda w, t: ["compare", w["run"], w["run"], "-o", w["root"] / "afile.txt"],
     r"afile.txt' already exists and is not a socmap comparison; choose another path"),
    ("compare-field-without-strata",  # once ignored: both runs kept their own strata
     lambda w, t: ["compare", w["run"], w["root"] / "run_no_strata", "-o", t / "out",
                   "--field", "zone"], r"--field 'zone' names the stratum column .*add --strata"),
    ("compare-out-inside-the-cube",  # once change.zarr and tables written into the cube
     lambda w, t: ["compare", w["run"], w["root"] / "run_no_strata", "-o", w["cube"] / "out"],
     r"--out '.*meuse32.zarr/out' lies inside the input"),
    ("design-out-is-the-cube",  # once design.csv and allocation.csv written into the cube
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "-o", w["cube"]],
     r"--out '.*meuse32.zarr' is the input .*inside the input"),
    ("compare-unknown-layer",
     lambda w, t: ["compare", w["run"], w["run"], "-o", t / "out", "--layer", "0-999cm"],
     "0-999cm"),
    ("compare-a-run-with-itself",  # once exit 0: a zero change with a conservative loss
     lambda w, t: ["compare", w["run"], w["run"], "-o", t / "out", "--workers", 0],
     r"runs A '.*run' and B '.*run' are the same folder.*a change needs two different runs"),
    ("compare-a-run-with-its-copy",
     lambda w, t: ["compare", w["run"], w["root"] / "run_no_strata", "-o", t / "out"],
     r"run_no_strata' hold the same predictions.*a change needs two different runs"),
    ("compare-scheduler-not-an-address",  # once silently ignored
     lambda w, t: ["compare", w["run"], w["run"], "-o", t / "out", "--scheduler",
                   "notanaddress"], r"--scheduler 'notanaddress' is not a dask scheduler address"),
    # --scheduler: checked before the first write (once a 30 s wait that blamed the path and
    # left a run behind, or exit 1 'missing port number')
    ("predict-scheduler-unreachable",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--passes", 2,
                   "--scheduler", "tcp://127.0.0.1:1"],
     r"--scheduler 'tcp://127.0.0.1:1': no dask scheduler answered.*drop --scheduler"),
    ("predict-scheduler-not-an-address",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--passes", 2,
                   "--scheduler", "notanaddress"],
     r"--scheduler 'notanaddress' is not a dask scheduler address.*tcp://host:port"),
    ("stocks-scheduler-unreachable",
     lambda w, t: ["stocks", w["run"], "--bd", 1.3, "--scheduler", "tcp://127.0.0.1:1"],
     r"--scheduler 'tcp://127.0.0.1:1': no dask scheduler answered"),
    ("stocks-scheduler-not-an-address",
     lambda w, t: ["stocks", w["run"], "--bd", 1.3, "--scheduler", "notanaddress"],
     r"--scheduler 'notanaddress' is not a dask scheduler address"),
    ("strata-scheduler-not-an-address",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--scheduler", "notanaddress"],
     r"--scheduler 'notanaddress' is not a dask scheduler address"),
    # --jobs (once exit 1: 'n_jobs == 0 in Parallel has no meaning')
    ("cv-jobs-0",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--jobs", 0,
                   "--block-size", "500m", "-o", t / "out"],
     r"--jobs 0 must be .*1 or more, or -1 for every core"),
    ("finetune-jobs-0",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--jobs", 0, "--block-size", "500m", "-o", t / "out"],
     r"--jobs 0 must be .*1 or more, or -1 for every core"),
    # run
    ("run-missing-config", lambda w, t: ["run", t / "none.yaml"], "none.yaml"),
    ("run-typo-in-config", lambda w, t: ["run", w["root"] / "typo_config.yaml"], "modle"),
    ("run-garbage-config", lambda w, t: ["run", w["root"] / "garbage.yaml"], "garbage.yaml"),
    ("run-missing-bundle-plan", lambda w, t: ["run", w["root"] / "run_config.yaml", "--plan"],
     "no_bundle"),
    ("run-unknown-bd-band-plan",
     lambda w, t: ["run", w["root"] / "cfg_bd_band.yaml", "--plan"], "stocks.bd 'bulk'"),
    ("run-cf-above-one-plan", lambda w, t: ["run", w["root"] / "cfg_cf.yaml", "--plan"],
     "stocks.cf.*1.5"),
    ("run-unknown-strata-plan", lambda w, t: ["run", w["root"] / "cfg_strata.yaml", "--plan"],
     "strata.source 'nope'"),
    ("run-strata-field-with-a-band-plan",  # once passed --plan, to stop at the strata stage
     lambda w, t: ["run", w["root"] / "cfg_strata_field.yaml", "--plan"],
     r"strata.field 'zone' names a column of a polygon file.*remove field"),
    ("run-profiles-fail-qc-plan",  # once passed --plan, to stop after the cube was built
     lambda w, t: ["run", w["root"] / "cfg_profiles_in_metres.yaml", "--plan"],
     r"fail QC: likely_metre_depths .*in the run configuration: profiles.accept_qc"),
    ("run-profiles-without-soc-plan",
     lambda w, t: ["run", w["root"] / "cfg_profiles_without_soc.yaml", "--plan"],
     r"profiles.path '.*cores_without_soc.csv' has no soc_g_kg value in its 80 rows"),
    ("run-unknown-depths-plan", lambda w, t: ["run", w["root"] / "cfg_depths.yaml", "--plan"],
     "model.depths.*'deep'"),
    ("run-profiles-swapped-plan",
     lambda w, t: ["run", w["root"] / "cfg_swapped.yaml", "--plan"],
     "none of the 40 profiles lies on the run's grid.*swapped 40"),
    ("run-bd-table-without-strata-plan",  # the table was ignored
     lambda w, t: ["run", w["root"] / "cfg_bd_table.yaml", "--plan"],
     r"bd_table .*bd_table.csv' is read only with bd: strata:BAND"),
    ("run-output-is-a-file-plan",
     lambda w, t: ["run", w["root"] / "cfg_output_file.yaml", "--plan"], "afile.txt.*is a file"),
    ("run-unknown-forced-stage",
     lambda w, t: ["run", w["root"] / "typo_config.yaml", "--force", "fintune"], "modle|fintune"),
    # earth engine (refused before any request)
    ("ee-pull-missing-key",
     lambda w, t: ["ee", "pull", "soilgrids_priors", "--key", t / "key.json", "-o",
                   t / "out.zarr"], "key.json"),
    ("ee-pull-local-catalog",  # the catalog is refused before the key is even read
     lambda w, t: ["ee", "pull", "meuse", "--key", t / "key.json", "-o", t / "out.zarr"],
     r"catalog 'meuse' has local sources"),
    ("ee-sample-local-catalog",
     lambda w, t: ["ee", "sample", "meuse", w["cores"], "--key", t / "k.json", "-o",
                   t / "out.csv"], r"catalog 'meuse' has local sources"),
    ("ee-sample-missing-key",
     lambda w, t: ["ee", "sample", "soilgrids_priors", w["cores"], "--key", t / "k.json", "-o",
                   t / "out.csv"], "k.json"),
    # pretrain (refused before the table is read)
    ("pretrain-bad-depths", lambda w, t: ["pretrain", "-o", t / "out", "--depths", "deep"],
     "deep"),
    ("pretrain-one-fold", lambda w, t: ["pretrain", "-o", t / "out", "--folds", 1], "1"),
    ("pretrain-zero-epochs",  # 0 once meant "no cap": a full pretraining with no output
     lambda w, t: ["pretrain", "-o", t / "out", "--max-epochs", 0], "--max-epochs 0"),
    ("pretrain-bad-balance", lambda w, t: ["pretrain", "-o", t / "out", "--balance", "lots"],
     "lots"),
    ("pretrain-bad-bbox", lambda w, t: ["pretrain", "-o", t / "out", "--exclude-bbox", "1,2,3"],
     "1,2,3"),
    ("pretrain-a-million-mc-passes",  # once unbounded: a whole pretraining, then the passes
     lambda w, t: ["pretrain", "-o", t / "out", "--mc-passes", 10**6],
     r"--mc-passes 1000000 must be <= 1024"),
    ("pretrain-swapped-bbox",  # once 'exclude_bbox (...) must be', the Python name
     lambda w, t: ["pretrain", "-o", t / "out", "--exclude-bbox", "150.1,-29.8,149.2,-30.6"],
     r"--exclude-bbox '150.1,-29.8,149.2,-30.6' must be .*min < max"),
    ("pretrain-nan-bbox",
     lambda w, t: ["pretrain", "-o", t / "out", "--exclude-bbox", "nan,0,1,1"],
     r"--exclude-bbox 'nan,0,1,1' must be"),
    ("bench-a-million-mc-passes",
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--mc-passes", 10**6, "-o", t / "out"],
     r"--mc-passes 1000000 must be <= 1024"),
    ("pretrain-unknown-catalog",
     lambda w, t: ["pretrain", "-o", t / "out", "--catalog", "nope"], "nope"),
    ("pretrain-unknown-region",
     lambda w, t: ["pretrain", "-o", t / "out", "--exclude-region", "atlantis"], "atlantis"),
    # benchmark transfer
    ("bench-bad-sizes",
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--sizes", "ten", "-o", t / "out"], "ten"),
    ("bench-unknown-method",
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--methods", "rf,magic", "-o", t / "out"], "magic"),
    ("bench-no-method",  # once an internal StopIteration
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--methods", ",", "-o", t / "out"],
     "no method given"),
    ("bench-size-above-every-fold",  # once run as 'all' and labelled 5000
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--sizes", "20,5000", "--methods", "rf",
                   "--block-size", "500m", "--folds", 3, "-o", t / "out"],
     r"training size\(s\) \[5000\] exceed the \d+ profiles of the largest training fold"),
    ("bench-zero-repeats",
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--repeats", 0, "-o", t / "out"], "0"),
    # spectra, demo
    ("spectra-zero-samples",
     lambda w, t: ["spectra", "select", w["root"] / "spectra.csv", "--n", 0, "-o",
                   t / "out.csv"], "0"),
    ("spectra-repeated-ids",
     lambda w, t: ["spectra", "select", w["root"] / "spectra_one_id.csv", "--n", 2, "-o",
                   t / "out.csv"], "sample_id 'a' names more than one spectrum"),
    ("spectra-nan-names-the-cli-option",
     lambda w, t: ["spectra", "select", w["root"] / "spectra_nan.csv", "--n", 2, "-o",
                   t / "out.csv"], "sample 'c' at 506 nm.*--nan interpolate"),
    ("spectra-select-out-under-a-file",  # once refused only after the selection had run
     lambda w, t: ["spectra", "select", w["root"] / "spectra.csv", "--n", 2, "--grid",
                   "measured", "-o", w["root"] / "afile.txt" / "x.csv"],
     r"afile.txt' is a file, not a folder"),
    ("spectra-select-xlsx",  # once CSV text under an .xlsx name, exit 0
     lambda w, t: ["spectra", "select", w["root"] / "spectra.csv", "--n", 2, "--grid",
                   "measured", "-o", t / "out.xlsx"], r"out\.xlsx.*\.parquet or \.csv"),
    ("spectra-empty-row-interpolate",  # once "drop them with nan='drop'", a Python argument
     lambda w, t: ["spectra", "select", w["root"] / "spectra_empty_row.csv", "--n", 2,
                   "--nan", "interpolate", "-o", t / "out.csv"],
     r"all NaN.*--nan drop"),
    ("spectra-reflectance-above-one",  # once "use percent='auto' (Python)", the default
     lambda w, t: ["spectra", "select", w["root"] / "spectra_above_one.csv", "--n", 2,
                   "-o", t / "out.csv"],
     r"--quantity absorbance.*divided by 100 when the largest value is above 1\.5"),
    ("spectra-three-bands",
     lambda w, t: ["spectra", "select", w["root"] / "spectra_three_bands.csv", "--n", 2,
                   "-o", t / "out.csv"], r"found 3 spectral columns.*one per wavelength"),
    ("spectra-missing-table",
     lambda w, t: ["spectra", "select", t / "no.csv", "--n", 2, "-o", t / "out.csv"], "no.csv"),
    # outputs that are, hold or lie inside an input (once: the input replaced by the result,
    # or a cube that warned of a stray folder on every later read)
    ("harmonise-out-is-the-input",
     lambda w, t: ["profiles", "harmonise", w["cores"], "-o", w["cores"]],
     r"--out '.*cores.csv' is the input '.*cores.csv'; writing there would replace the input"),
    ("harmonise-sites-table-is-the-input",
     lambda w, t: ["profiles", "harmonise", w["root"] / "h_sites.csv", "-o", w["root"] / "h.csv"],
     r"its per-site table\) '.*h_sites.csv' is the input"),
    ("extract-out-is-the-table",
     lambda w, t: ["extract", w["cube"], w["cores"], "-o", w["cores"]],
     r"--out '.*cores.csv' is the input"),
    ("qc-out-inside-a-cube",  # once: the QC tables written into a cube that is no input
     lambda w, t: ["profiles", "qc", w["cores"], "-o", w["cube"] / "qc"],
     r"--out '.*meuse32.zarr/qc' is or lies inside '.*meuse32.zarr', which is a Zarr store"),
    ("harmonise-out-inside-a-bundle",  # a table inside a store that is not an input
     lambda w, t: ["profiles", "harmonise", w["cores"], "-o", w["bundle"] / "h.csv"],
     r"--out '.*bundle/h.csv' is or lies inside '.*bundle', which is a model bundle"),
    ("qc-out-inside-a-bundle",
     lambda w, t: ["profiles", "qc", w["cores"], "-o", w["bundle"]],
     r"is or lies inside '.*bundle', which is a model bundle"),
    ("extract-out-inside-the-cube",
     lambda w, t: ["extract", w["cube"], w["cores"], "-o", w["cube"] / "out.csv"],
     r"--out '.*meuse32.zarr/out.csv' lies inside the input '.*meuse32.zarr'"),
    ("finetune-out-is-the-input-bundle",  # once: the pretrained bundle replaced, exit 0
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--strategy", "rf", "-o", w["bundle"]], r"--out '.*bundle' is the input"),
    ("finetune-out-holds-the-inputs",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--strategy", "rf", "-o", w["root"]], r"holds the input"),
    ("predict-out-inside-the-cube",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", w["cube"] / "out", "--passes", 2],
     r"--out '.*meuse32.zarr/out' lies inside the input"),
    ("cv-out-is-the-cube",  # once: oof.parquet and friends written into the cube
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--block-size", "500m",
                   "-o", w["cube"]], r"--out '.*meuse32.zarr' is the input"),
    ("cv-out-is-a-file",  # once refused only after the whole CV had run
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--block-size", "500m",
                   "-o", w["root"] / "afile.txt"],
     r"--out '.*afile.txt' cannot be a folder: '.*afile.txt' is a file"),
    ("bench-out-is-a-file",  # once 'File exists' after the whole benchmark
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--methods", "rf", "--sizes", "10",
                   "--block-size", "500m", "-o", w["root"] / "afile.txt"],
     r"afile.txt' is a file"),
    ("qc-out-is-a-file",
     lambda w, t: ["profiles", "qc", w["cores"], "-o", w["root"] / "afile.txt"],
     r"--out '.*afile.txt' cannot be a folder"),
    ("qc-flags-would-replace-the-input",
     lambda w, t: ["profiles", "qc", w["root"] / "flags.csv", "-o", w["root"]],
     r"\(its flags.csv\) '.*flags.csv' is the input"),
    # numbers out of range (once a LinAlgError, or a --workers -1 run at exit 0)
    ("harmonise-huge-lambda",
     lambda w, t: ["profiles", "harmonise", w["cores"], "--lam", "1e300", "-o", t / "out.csv"],
     r"--lam 1e\+300 is above 1e\+06"),
    ("stocks-negative-workers",
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--workers", -1, "--overwrite"],
     r"'--workers'.*greater than or equal to 0 \(got '-1'\)"),
    ("ee-pull-zero-workers",
     lambda w, t: ["ee", "pull", "soilgrids_priors", "--key", t / "key.json", "--workers", 0,
                   "-o", t / "out.zarr"], r"'--workers'.*greater than or equal to 1"),
    ("ee-pull-zero-chunk",
     lambda w, t: ["ee", "pull", "soilgrids_priors", "--key", t / "key.json", "--chunk", 0,
                   "-o", t / "out.zarr"], r"--chunk 0 must be >= 1"),
    ("ee-pull-negative-retries",
     lambda w, t: ["ee", "pull", "soilgrids_priors", "--key", t / "key.json", "--max-retries",
                   -1, "-o", t / "out.zarr"], r"'--max-retries'.*\(got '-1'\)"),
    # grids that are no grid (once a GDAL message, or a rasterio warning on a second line)
    ("cube-grid-is-a-csv",
     lambda w, t: ["cube", "build", "meuse", "-o", t / "out.zarr", "--grid", w["cores"]],
     r"cannot read '.*cores.csv' as a raster .*--grid takes a built-in region name"),
    ("cube-grid-is-a-cube",
     lambda w, t: ["cube", "build", "meuse", "-o", t / "out.zarr", "--grid", w["cube"]],
     r"raster '.*meuse32.zarr' has no CRS.*--grid takes"),
    # remedies in CLI terms (once pandas.read_csv(...) and soc_units=)
    ("qc-decimal-comma",
     lambda w, t: ["profiles", "qc", w["root"] / "decimal_comma.csv", "-o", t / "out"],
     r"decimal comma: save the table again with '\.' as the decimal mark"),
    ("qc-spaced-header",  # once '--map soc_g_kg= SOC_g_kg ', which --map cannot take
     lambda w, t: ["profiles", "qc", w["root"] / "spaced_header.csv", "-o", t / "out"],
     r"found \[.*'SOC_g_kg'\]; perhaps --map soc_g_kg=SOC_g_kg \("),
    ("qc-empty-soc-units",
     lambda w, t: ["profiles", "qc", w["cores"], "--soc-units", "", "-o", t / "out"],
     r"--soc-units '' is not a known SOC unit"),
    # strata and cores that say nothing (once exit 0: thousands of strata, --field ignored,
    # '0 cores' per stratum)
    ("strata-continuous-band",
     lambda w, t: ["strata", w["run"], "--strata", "dist"],
     r"strata 'dist' is a continuous cube band; strata are classes.*\['ffreq', 'soil'\]"),
    ("design-continuous-band",
     lambda w, t: ["design", w["run"], "--strata", "dist", "--budget", 5, "-o", t / "out"],
     r"strata 'dist' is a continuous cube band"),
    ("strata-field-with-a-band",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--field", "zone"],
     r"--field 'zone' names a column of a polygon file.*drop --field"),
    ("strata-cores-header-only",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "cores_header_only.csv"],
     r"--cores '.*cores_header_only.csv' has no rows"),
    ("design-cores-header-only",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--cores",
                   w["root"] / "cores_header_only.csv", "-o", t / "out"], r"has no rows"),
    ("strata-cores-on-other-depths",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "cores_other_depths.csv"],
     r"none of the 40 cores given with --cores has a stock: their depths \['1-15cm', "
     r"'16-30cm'\] match none of the run's intervals \['0-15cm', '15-30cm'\]"),
    ("strata-cores-without-soc",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "cores_without_soc.csv"], r"none of its 80 samples has a soc_g_kg"),
    # posterior (once: --scale 0 and an SE of 0 gave a posterior equal to the run, exit 0)
    ("posterior-zero-scale",
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se.tif'}",
                   "--scale", 0], r"--scale 0.0 must be a finite number > 0"),
    ("posterior-nan-scale",  # once blamed the prior's coverage
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se.tif'}",
                   "--scale", "nan"], r"--scale nan must be"),
    ("posterior-zero-se",
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se_zero.tif'}"],
     r"prior SE '.*prior_se_zero.tif' \(0-15cm\) is not > 0 at any of the run's \d+ mapped"),
    ("posterior-depth-twice",
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se.tif'}",
                   "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se_zero.tif'}"],
     r"gives depth '0-15cm' a second time"),
    ("posterior-unknown-layer",
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se.tif'}",
                   "--layer", "carbon"], r"--layer 'carbon' must be 'soc' or 'stock'"),
    # bundles checked on load (once: a reversed interval refused inside the first tile, after
    # the run folder existed; an interval given twice mapped twice at exit 0)
    ("predict-bundle-reversed-interval",
     lambda w, t: ["predict", w["root"] / "bundle_reversed_interval", w["cube"], "-o",
                   t / "out", "--passes", 2],
     r"records the depth interval 30-0 cm; intervals need 0 <= top_cm < bottom_cm"),
    ("predict-bundle-interval-twice",
     lambda w, t: ["predict", w["root"] / "bundle_interval_twice", w["cube"], "-o",
                   t / "out", "--passes", 2], r"records the depth interval 0-15 cm twice"),
    ("report-qc-empty-file",  # once exit 1: EmptyDataError
     lambda w, t: ["report", w["run"], "--qc", w["root"] / "empty.csv", "-o", t / "out"],
     r"QC summary '.*empty.csv' is not a readable CSV table.*--qc takes the summary.csv"),
    ("report-qc-not-a-qc-summary",  # once a profile table shown as the QC summary, exit 0
     lambda w, t: ["report", w["run"], "--qc", w["cores"], "-o", t / "out"],
     r"QC summary '.*cores.csv' lacks the columns \['check', 'severity'"),
    ("report-out-is-the-cube",  # once report.html and map.html written into the run's cube
     lambda w, t: ["report", w["run"], "-o", w["cube"]],
     r"--out '.*meuse32.zarr' is the input .*inside the input"),
    # spectra select: counts and steps checked on the table (once blamed on the library grid,
    # or 'target axis must be increasing', a Python message)
    ("spectra-more-samples-than-rows",
     lambda w, t: ["spectra", "select", w["root"] / "spectra.csv", "--n", 7, "-o",
                   t / "out.csv"], r"--n 7 is more than the 6 spectra of .*choose at most 6"),
    ("spectra-header-only",
     lambda w, t: ["spectra", "select", w["root"] / "spectra_header_only.csv", "--n", 2, "-o",
                   t / "out.csv"],
     r"needs at least 2 spectra, got 0 in .*spectra_header_only.csv'; add rows"),
    ("spectra-step-wider-than-the-range",
     lambda w, t: ["spectra", "select", w["root"] / "spectra.csv", "--n", 2, "--grid",
                   "measured", "--step", 1000, "-o", t / "out.csv"],
     r"--step 1000 leaves fewer than 2 bands over the measured range 500-522 nm"),
    ("spectra-infinite-step",
     lambda w, t: ["spectra", "select", w["root"] / "spectra.csv", "--n", 2, "--grid",
                   "measured", "--step", "inf", "-o", t / "out.csv"],
     r"--step inf must be a positive number"),
    ("view-out-is-a-users-folder",  # once replaced the folder, and its files, by the page
     lambda w, t: ["view", w["run"], "--out", w["root"] / "mine", "--no-open"],
     "'.*mine' is a folder; socmap writes a file there"),
    ("view-out-is-the-run-json",  # once exit 0: run.json replaced by the page, the run lost
     lambda w, t: ["view", w["run"], "--out", w["run"] / "run.json", "--no-open"],
     r"--out '.*run.json' must end in .html"),
    ("view-out-inside-the-cube",
     lambda w, t: ["view", w["run"], "--out", w["cube"] / "map.html", "--no-open"],
     r"--out '.*meuse32.zarr/map.html' lies inside the input"),
    ("view-out-inside-a-store-of-the-run",
     lambda w, t: ["view", w["run"], "--out", w["run"] / "soc.zarr" / "map.html", "--no-open"],
     r"lies inside the input '.*soc.zarr'"),
    ("demo-out-is-a-cube",  # once a demo started in the cube, leaving a .lock there
     lambda w, t: ["demo", "-o", w["cube"]],
     r"the run's output '.*meuse32.zarr' is or lies inside .*a Zarr store"),
    ("run-out-inside-a-bundle-plan",
     lambda w, t: ["run", w["root"] / "run_config.yaml", "--out", w["bundle"] / "runs",
                   "--plan"], r"is or lies inside '.*bundle', which is a model bundle"),
    ("demo-file-in-the-way", lambda w, t: ["demo", "-o", w["root"] / "afile.txt" / "d"],
     "afile.txt"),
    # sweep 16: seeds above 2**32 - 1 (once an internal overflow after the run folder existed)
    ("predict-seed-above-2-32",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", t / "out", "--passes", 2,
                   "--seed", 10**30], r"'--seed'.*less than or equal to 4294967295"),
    ("cv-seed-above-2-32",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--method", "rf",
                   "--seed", 2**40, "-o", t / "out"], r"'--seed'.*4294967295"),
    ("finetune-seed-above-2-32",
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--strategy", "rf", "--seed", 2**40, "-o", t / "out"], r"'--seed'.*4294967295"),
    ("pretrain-seed-above-2-32", lambda w, t: ["pretrain", "-o", t / "out", "--seed", 10**30],
     r"'--seed'.*4294967295"),
    # unreadable side tables (once internal EmptyDataErrors)
    ("cv-train-sets-empty-file",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--method", "rf",
                   "--train-sets", w["root"] / "empty.csv", "-o", t / "out"],
     r"training-set table '.*empty.csv' is not a readable table \(EmptyDataError.*--train-sets"),
    ("stocks-bd-table-empty-file",
     lambda w, t: ["stocks", w["run"], "--bd", "strata:soil", "--bd-table",
                   w["root"] / "empty.csv"],
     r"stratum BD table '.*empty.csv' is not a readable CSV table.*--bd-table takes a CSV"),
    # unfinished runs (once a posterior, a page or a change of half a map, exit 0)
    ("posterior-unfinished-run",
     lambda w, t: ["posterior", w["root"] / "run_unfinished", "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se.tif'}"],
     r"run_unfinished' is 'running'; finish it \(rerun `socmap predict`\) first"),
    ("view-unfinished-run",
     lambda w, t: ["view", w["root"] / "run_unfinished", "--out", t / "out.html", "--no-open"],
     r"run_unfinished' is 'running'; finish it"),
    ("compare-unfinished-run",  # once refused as 'the same predictions', the wrong reason
     lambda w, t: ["compare", w["run"], w["root"] / "run_unfinished", "-o", t / "out"],
     r"run_unfinished' is 'running'; finish it"),
    ("posterior-negative-prior-mean",  # once combined at exit 0
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_negative.tif'},{w['root'] / 'prior_se.tif'}"],
     r"prior mean '.*prior_negative.tif' \(0-15cm\) is negative at \d+ of the run's \d+ mapped "
     r"pixels \(e.g. -5\).*--scale, --soilgrids"),
    # site ids missing (once: every row took the first row's covariates, exit 0; or '0 cores')
    ("extract-rows-without-site-id",
     lambda w, t: ["extract", w["cube"], w["root"] / "cores_without_ids.csv", "-o",
                   t / "out.csv"], r"80 of the 80 rows of the site table have no site_id"),
    ("strata-cores-without-site-id",  # once blamed on the cores' depths
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "cores_without_ids.csv"],
     r"--cores '.*cores_without_ids.csv' has 80 of 80 rows without a site_id"),
    ("design-cores-without-site-id",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--cores",
                   w["root"] / "cores_without_ids.csv", "-o", t / "out"], r"without a site_id"),
    ("report-title-line-break",  # once the Markdown heading was cut at the break, exit 0
     lambda w, t: ["report", w["run"], "--title", "SOC\nstocks", "-o", t / "out"],
     r"report title 'SOC\\nstocks' holds a line break"),
    # run roots and run configurations (once: the chain ran among a user's files; a key given
    # twice kept the last; an alias bomb printed 226 MB; inf passed --plan)
    ("demo-out-is-a-users-folder",
     lambda w, t: ["demo", "-o", w["root"] / "mine"],
     r"the run's output '.*mine' is a folder of other files \(e.g. 'thesis.docx'\) and no "
     r"socmap run root.*--out"),
    ("run-output-is-a-users-folder-plan",
     lambda w, t: ["run", w["root"] / "cfg_output_mine.yaml", "--plan"],
     r"'.*mine' is a folder of other files"),
    ("run-key-twice-plan", lambda w, t: ["run", w["root"] / "cfg_twice.yaml", "--plan"],
     r"cfg_twice.yaml' is not valid YAML: key 'predict' appears twice"),
    ("run-alias-bomb-plan", lambda w, t: ["run", w["root"] / "cfg_bomb.yaml", "--plan"],
     r"field report.title: Input should be a valid string \(got \[\[\[\.\.\.\], .{0,400}$"),
    ("run-strata-raster-of-nodata-plan",
     lambda w, t: ["run", w["root"] / "cfg_strata_nodata.yaml", "--plan"],
     r"strata_nodata.tif' holds no stratum \(every pixel is nodata\)"),
    ("run-passes-yes-plan", lambda w, t: ["run", w["root"] / "cfg_passes_yes.yaml", "--plan"],
     r"predict.passes: .*true is a yes/no, not a number"),
    ("run-seed-above-2-32-plan", lambda w, t: ["run", w["root"] / "cfg_seed.yaml", "--plan"],
     r"field predict.seed: Input should be less than or equal to 4294967295"),
    ("run-infinite-bd-sd-plan", lambda w, t: ["run", w["root"] / "cfg_bd_sd_inf.yaml", "--plan"],
     r"field stocks.bd_sd: Input should be a finite number \(got inf\)"),
    ("run-infinite-spacing-plan",
     lambda w, t: ["run", w["root"] / "cfg_spacing_inf.yaml", "--plan"],
     r"field design.min_spacing_m: Input should be a finite number"),
    ("run-missing-benchmark-plan",  # once failed the last stage, after the whole chain
     lambda w, t: ["run", w["root"] / "cfg_no_benchmark.yaml", "--plan"],
     r"no_bench' named in the run configuration does not exist"),
    ("run-title-two-lines-plan",
     lambda w, t: ["run", w["root"] / "cfg_title_two_lines.yaml", "--plan"], r"report.title"),
    ("run-config-is-a-folder", lambda w, t: ["run", w["root"] / "mine", "--plan"], "mine"),
    # empty paths, as an unset shell variable gives them (Path('') is the working directory:
    # once a run, a CV and a design written there at exit 0; an internal error for a cube)
    ("predict-out-empty-string",
     lambda w, t: ["predict", w["bundle"], w["cube"], "-o", "", "--passes", 2],
     r"^socmap: error: -o '' is an empty path \(an unset shell variable\?\)"),
    ("cube-out-empty-string", lambda w, t: ["cube", "build", "meuse", "-o", ""],
     r"-o '' is an empty path"),
    ("cv-out-equals-empty",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--method", "rf",
                   "--block-size", "500m", "--out="], r"--out '' is an empty path"),
    ("design-cores-empty-string",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--cores", " ",
                   "-o", t / "out"], r"--cores ' ' is an empty path"),
    ("bench-size-twice",  # once run twice: results and fits doubled without a word
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--methods", "rf", "--sizes", "10,all,10", "-o",
                   t / "out"], r"--sizes '10,all,10' lists 10 more than once"),
    ("stocks-strata-of-a-continuous-band",  # once 'stratum 0.0 has no BD; pass default=('
     lambda w, t: ["stocks", w["run"], "--bd", "strata:dist", "--bd-table",
                   w["root"] / "bd_table.csv", "--overwrite"],
     r"--bd strata:dist: 'dist' is a continuous band, not strata.*\['ffreq', 'soil'\]"),
    ("run-strata-of-a-continuous-band-plan",  # once found by the stocks stage, after predict
     lambda w, t: ["run", w["root"] / "cfg_bd_strata_dist.yaml", "--plan"],
     r"stocks.bd 'strata:dist' names a continuous band, not strata"),
    ("qc-header-with-unnamed-columns",  # once "repeats the column(s) ['nan']"
     lambda w, t: ["profiles", "qc", w["root"] / "unnamed_columns.csv", "-o", t / "out"],
     r"unnamed_columns.csv' has columns without a name in its header line"),
    ("run-unknown-soc-units-plan",  # once named only --soc-units, no option of `socmap run`
     lambda w, t: ["run", w["root"] / "cfg_soc_units.yaml", "--plan"],
     r"'kg/ha' is not a known SOC unit.*\(in the run configuration: .*profiles.soc_units\)$"),
    # sweep 4 (once: internal errors, exit 0 with a wrong answer, or a user's files replaced)
    ("strata-raster-all-nodata",  # once an internal KeyError: 'cores_needed'
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "strata_nodata.tif"],
     r"strata raster '.*strata_nodata.tif' has no class value at any pixel of the map"),
    ("design-raster-all-nodata",  # once "none of the 0 strata has a mapped pixel"
     lambda w, t: ["design", w["run"], "--strata", w["root"] / "strata_nodata.tif", "--budget",
                   5, "-o", t / "out"], r"strata_nodata.tif' has no class value at any pixel"),
    ("strata-field-geometry",  # once one stratum per polygon, named by its WKT, exit 0
     lambda w, t: ["strata", w["run"], "--strata", w["root"] / "far.gpkg", "--field",
                   "geometry"], r"lack the column 'geometry'; pick one of \['stratum'\]"),
    ("strata-cores-soc-text",  # once an internal ValueError
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "cores_soc_text.csv"],
     r"--cores column 'soc_g_kg' must be numeric but row 0 holds '\d+\.\dx'"),
    ("strata-cores-soc-infinite",  # once blamed on depths that matched the run's
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--cores",
                   w["root"] / "cores_soc_inf.csv"],
     r"--cores column 'soc_g_kg' holds an infinite value at row 0 \(inf; 80 of 80 rows\)"),
    ("posterior-soilgrids-of-another-property",  # once clay's factor applied to SOC, exit 0
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se.tif'}",
                   "--soilgrids", "clay"],
     r"--soilgrids 'clay' converts SoilGrids 'clay', but --layer soc .*give --soilgrids soc"),
    ("posterior-prior-mean-impossible",  # once combined at exit 0
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_huge.tif'},{w['root'] / 'prior_se.tif'}"],
     r"prior mean '.*prior_huge.tif' \(0-15cm\) is above 1000 g/kg.*e.g. 1e\+30"),
    ("posterior-prior-se-infinite",  # once blamed on the prior mean
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_mean.tif'},{w['root'] / 'prior_se_inf.tif'}"],
     r"prior SE '.*prior_se_inf.tif' \(0-15cm\) has no value"),
    ("view-out-is-a-users-page",  # once replaced by the map at exit 0
     lambda w, t: ["view", w["run"], "--out", w["root"] / "notes.html", "--no-open"],
     r"notes.html' already exists and is not a socmap map page"),
    ("stocks-bd-table-sd-wider-than-bd",  # once draws clipped without a word
     lambda w, t: ["stocks", w["run"], "--bd", "strata:soil", "--bd-table",
                   w["root"] / "bd_sd_wide.csv", "--overwrite"],
     r"stratum '1' in '.*bd_sd_wide.csv': bd_sd_g_cm3 5 around bd_g_cm3 1.3 puts 79%"),
    ("stocks-other-options-cli-remedy",  # once 'pass overwrite=True (CLI: --overwrite)'
     lambda w, t: ["stocks", w["run"], "--bd", "1.2"],
     r"exist with other options; pass --overwrite to replace them"),
    ("qc-empty-crs",  # once "Pass e.g. crs='EPSG:4326'", Python
     lambda w, t: ["profiles", "qc", w["root"] / "no_crs.csv", "--crs", "", "-o", t / "out"],
     r"CRS is '': .*CLI: --crs EPSG:4326"),
    ("spectra-select-semicolons",  # once "found 0 spectral columns" and no word of why
     lambda w, t: ["spectra", "select", w["root"] / "spectra_semicolon.csv", "--n", 2, "-o",
                   t / "out.csv"], r"header reads as one column holding ';': save the table "),
    ("spectra-select-utf16",  # once an internal UnicodeDecodeError
     lambda w, t: ["spectra", "select", w["root"] / "spectra_utf16.csv", "--n", 2, "-o",
                   t / "out.csv"], r"spectra_utf16.csv' is not UTF-8 text"),
    ("spectra-select-empty-file",  # once an internal EmptyDataError
     lambda w, t: ["spectra", "select", w["root"] / "empty.csv", "--n", 2, "-o", t / "out.csv"],
     r"spectra table '.*empty.csv' is empty \(no header row\)"),
    ("spectra-bench-out-is-a-users-folder",  # once replaced whole, thesis.docx gone, exit 0
     lambda w, t: ["spectra", "benchmark", "-o", w["root"] / "mine"],
     r"mine' is a folder of other files \(e.g. 'thesis.docx'\) and no spectral benchmark"),
    ("spectra-bench-out-is-a-file",
     lambda w, t: ["spectra", "benchmark", "-o", w["root"] / "afile.txt"],
     r"afile.txt' is a file; the spectral benchmark writes a folder"),
    ("spectra-bench-bad-quantity",  # once ignored for the embedded sites: a full benchmark
     lambda w, t: ["spectra", "benchmark", "--quantity", "x", "-o", t / "out"],
     r"--quantity 'x' must be 'reflectance' or 'absorbance'"),
    ("spectra-bench-bad-library-quantity",
     lambda w, t: ["spectra", "benchmark", "--library-quantity", "x", "-o", t / "out"],
     r"--library-quantity 'x' must be"),
    ("spectra-bench-empty-sites",  # once read as 'every embedded site'
     lambda w, t: ["spectra", "benchmark", "--sites", "", "-o", t / "out"],
     r"--sites '' names no site"),
    ("spectra-bench-a-billion-repeats",  # once run until killed
     lambda w, t: ["spectra", "benchmark", "--repeats", 10**9, "-o", t / "out"],
     r"--repeats 1000000000 must be <= 100"),
    ("spectra-bench-n-local-above-every-site",  # once an internal KeyError: 'site'
     lambda w, t: ["spectra", "benchmark", "--n-local", 10**9, "-o", t / "out"],
     r"--n-local 1000000000 leaves no embedded site enough samples.*give --n-local \d+ or less"),
    ("cube-info-damaged-chunk",  # once an internal RuntimeError (zstd)
     lambda w, t: ["cube", "info", w["root"] / "damaged.zarr"],
     r"cube '.*damaged.zarr' holds data that cannot be read .*rebuild the cube"),
    ("extract-damaged-chunk",
     lambda w, t: ["extract", w["root"] / "damaged.zarr", w["cores"], "-o", t / "out.csv"],
     r"holds data that cannot be read .*a chunk file of the store is damaged"),
    ("predict-damaged-chunk",  # once an internal error and a 'running' run folder left
     lambda w, t: ["predict", w["bundle"], w["root"] / "damaged.zarr", "-o", t / "out",
                   "--passes", 2, "--workers", 0],
     r"cube '.*damaged.zarr' \(rows \d+-\d+, columns \d+-\d+\) holds data that cannot be read"),
    ("posterior-prior-of-two-bands",  # once its first band read without a word
     lambda w, t: ["posterior", w["run"], "--prior",
                   f"0-15cm={w['root'] / 'prior_two_bands.tif'},{w['root'] / 'prior_se.tif'}"],
     r"prior raster '.*prior_two_bands.tif' has 2 bands; --prior takes single-band rasters"),
    ("design-empty-layer",  # once read as no --layer
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5, "--layer", "", "-o",
                   t / "out"], r"--layer '' names no layer"),
    ("pretrain-empty-exclude-region",  # once "cannot read '.' as a raster ... --grid takes"
     lambda w, t: ["pretrain", "-o", t / "out", "--exclude-region", ""],
     r"--exclude-region '' is empty"),
    ("pretrain-empty-catalog",  # once "catalog '.' is a folder"
     lambda w, t: ["pretrain", "-o", t / "out", "--catalog", ""], r"--catalog '' is empty"),
    ("bench-a-billion-repeats",  # once drawn until killed
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--methods", "rf", "--block-size", "500m",
                   "--repeats", 10**9, "-o", t / "out"], r"--repeats 1000000000 must be <= 1000"),
    ("run-bd-sd-wider-than-bd-plan",  # once passed --plan, refused by the stocks stage
     lambda w, t: ["run", w["root"] / "cfg_bd_sd_wide.yaml", "--plan"],
     r"--bd-sd 5.0 around --bd 1.3 puts 79% .*\(in the run configuration: stocks.bd, "),
    ("run-bd-table-sd-wide-plan",
     lambda w, t: ["run", w["root"] / "cfg_bd_table_wide.yaml", "--plan"],
     r"bd_sd_wide.csv': bd_sd_g_cm3 5 .*\(in the run configuration: .*stocks.bd_table\)"),
    ("bench-2-63-trees",  # once fitted until killed
     lambda w, t: ["benchmark", "transfer", "--cube", w["cube"], "--bundle", w["bundle"],
                   "--profiles", w["cores"], "--methods", "rf", "--n-estimators", 2**63, "-o",
                   t / "out"], r"--n-estimators 9223372036854775808 must be <= 100000"),
    # profile options a format does not read (once: `qc MY.csv --format edgeroi` checked the
    # embedded Edgeroi profiles at exit 0; --samples, --map, --crs ignored without a word)
    ("qc-table-with-format-edgeroi",
     lambda w, t: ["profiles", "qc", w["cores"], "--format", "edgeroi", "-o", t / "out"],
     r"--format edgeroi reads socmap's embedded Edgeroi profiles, so the table '.*cores.csv' "
     r"would be ignored"),
    ("cv-profiles-with-format-edgeroi",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--format", "edgeroi",
                   "--method", "rf", "-o", t / "out"], r"--format edgeroi .*would be ignored"),
    ("qc-samples-with-a-generic-table",
     lambda w, t: ["profiles", "qc", w["cores"], "--samples", w["cores"], "-o", t / "out"],
     r"--samples '.*cores.csv' is read only with --format bluecarbon"),
    ("harmonise-crs-with-format-global",
     lambda w, t: ["profiles", "harmonise", "--format", "global", "--crs", "EPSG:4326", "-o",
                   t / "out.csv"], r"--crs applies to --format generic tables only"),
    ("qc-map-one-column-twice",  # once the last won, and the message blamed column 'x'
     lambda w, t: ["profiles", "qc", w["cores"], "--map", "soc_g_kg=soc_g_kg", "--map",
                   "soc_g_kg=x", "-o", t / "out"], r"--map 'soc_g_kg=x' maps 'soc_g_kg' a second"),
    ("stocks-cf-sd-around-the-default-cf",  # once half the draws clipped to 0: -4 %, exit 0
     lambda w, t: ["stocks", w["run"], "--bd", "1.3", "--cf-sd", "0.1", "--overwrite"],
     r"--cf-sd 0.1 around --cf 0 puts 50% of the coarse-fragment draws outside 0-0.99.*--cf"),
    ("view-port-without-serve",  # once ignored: the page written, no server
     lambda w, t: ["view", w["run"], "--port", 9999, "--out", t / "out.html", "--no-open"],
     r"--port 9999 is read only with --serve"),
    ("view-out-with-serve",  # refused before the server starts (it would block)
     lambda w, t: ["view", w["run"], "--serve", "--out", t / "out.html", "--no-open"],
     r"--out '.*out.html' is not written with --serve"),
    # refused already, kept so they stay refused
    ("qc-symlink-to-itself", lambda w, t: ["profiles", "qc", w["root"] / "loop.csv", "-o",
                                           t / "out"], "loop.csv"),
    ("stocks-nan-bd", lambda w, t: ["stocks", w["run"], "--bd", "nan"],
     r"bulk density nan g/cm3 is implausible"),
    ("strata-conservative-in-percent",
     lambda w, t: ["strata", w["run"], "--strata", "soil", "--conservative", 90],
     r"--conservative 90.0 must be in \[0.5, 1\)"),
    ("qc-not-utf8", lambda w, t: ["profiles", "qc", w["root"] / "latin1.csv", "-o", t / "out"],
     r"latin1.csv' is not UTF-8 text"),
    ("finetune-g-kg-read-as-percent",  # once trained on SOC ten times too high, exit 0
     lambda w, t: ["finetune", w["bundle"], "--cube", w["cube"], "--profiles", w["cores"],
                   "--soc-units", "%", "--strategy", "rf", "-o", t / "out"],
     r"likely_gkg_read_as_percent .*--soc-units g/kg"),
    ("design-budget-beyond-the-pixels",  # once 1e20: "-9223372036854775804 cores", exit 0
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 10**20, "-o", t / "out"],
     r"--budget 100000000000000000000 asks for more cores than the strata's \d+ mapped"),
    ("cv-block-size-without-unit",  # once 2 m blocks: one core each, a random CV, exit 0
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--method", "rf",
                   "--block-size", "2", "-o", t / "out"],
     r"--block-size '2' has no unit, so it is 2 metre\(s\) .*'2km', or '2m'"),
    # once a user's file of the same name was replaced by the command's own
    ("design-over-a-users-design-csv",
     lambda w, t: ["design", w["run"], "--strata", "soil", "--budget", 5,
                   "-o", w["root"] / "field_notes"],
     r"already holds 'design.csv', which socmap did not write .*choose another --out folder"),
    ("qc-over-a-users-flags-csv",
     lambda w, t: ["profiles", "qc", w["cores"], "-o", w["root"] / "field_notes"],
     r"already holds 'flags.csv', which socmap did not write"),
    ("cv-over-a-users-metrics-csv",
     lambda w, t: ["cv", "--cube", w["cube"], "--profiles", w["cores"], "--method", "rf",
                   "-o", w["root"] / "field_notes"],
     r"already holds 'metrics.csv', which socmap did not write"),
    ("report-over-a-users-report-html",
     lambda w, t: ["report", w["run"], "-o", w["root"] / "field_notes"],
     r"already holds 'report.html', which socmap did not write"),
]  # fmt: skip


def test_the_battery_is_wide() -> None:
    commands = {" ".join(str(a) for a in f({"root": Path("r"), "cube": Path("c"),
                                            "bundle": Path("b"), "run": Path("u"),
                                            "cores": Path("k")}, Path("t"))[:1])
                for _, f, _ in CASES}  # fmt: skip
    assert len(CASES) >= 80 and len(commands) >= 15
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "args", "pattern"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_nothing_written(
    world: W,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    args: Args,
    pattern: str,
) -> None:
    monkeypatch.setenv("SOCMAP_PROGRESS", "0")
    monkeypatch.setattr("socmap._parallel.SCHEDULER_TIMEOUT_S", 1.0)  # nothing listens on :1
    monkeypatch.chdir(tmp_path)
    run_json = (world["run"] / "run.json").read_text()
    listing = sorted(p.name for p in world["root"].iterdir())
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args(world, tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("socmap: error:"), err
    assert "Traceback" not in err
    assert re.search(pattern, lines[0]), lines[0]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(("out", ".tmp-"))]
    assert (world["run"] / "run.json").read_text() == run_json
    assert sorted(p.name for p in world["root"].iterdir()) == listing
    assert (world["root"] / "mine" / "thesis.docx").read_text() == "years of work\n"
    notes = world["root"] / "field_notes"
    assert sorted(p.name for p in notes.iterdir()) == sorted(USER_TABLES)
    assert all((notes / n).read_text() == "my field notes\n" for n in USER_TABLES)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_cores_off_every_stratum_are_counted_on_the_console(
    world: W, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cores off the map are kept (strata/cores.csv) and counted in one line, not only listed."""
    monkeypatch.setenv("SOCMAP_PROGRESS", "0")
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    cores = pd.read_csv(world["cores"])
    moved = cores["site_id"].isin(cores["site_id"].unique()[:2])
    cores.loc[moved, "x"] += 1e5
    cores.to_csv(tmp_path / "cores.csv", index=False)
    with pytest.raises(SystemExit) as exc:
        main(["strata", str(run), "--strata", "soil", "--cores", str(tmp_path / "cores.csv"),
              "--workers", "0"])  # fmt: skip
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    listing = run / "strata" / "cores.csv"
    assert (
        f"2 of 40 cores fall outside every stratum; listed in {listing} (stratum 'outside "
        "strata')" in captured.out
    )
    assert (pd.read_csv(listing)["stratum"] == "outside strata").sum() == 2
    assert json.loads((run / "strata" / "strata.json").read_text())["cores"]["outside"] == 2
    assert captured.err == ""
    with pytest.raises(SystemExit) as exc:  # design counts them too
        main(["design", str(run), "--strata", "soil", "--budget", "5", "--cores",
              str(tmp_path / "cores.csv"), "-o", str(tmp_path / "design")])  # fmt: skip
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    assert "2 of 40 cores given with --cores lie in no stratum" in captured.out


def test_mapped_pixels_off_every_stratum_are_counted_on_the_console(
    world: W, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Strata over half the map: the other half is said, not left out without a word."""
    from socmap.predict import open_run

    monkeypatch.setenv("SOCMAP_PROGRESS", "0")
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    x0, y0, x1, y1 = open_run(run).grid.bounds
    west = box(x0, y0, (x0 + x1) / 2, y1)
    gpd.GeoDataFrame({"stratum": ["west"]}, geometry=[west], crs="EPSG:28992").to_file(
        tmp_path / "west.gpkg"
    )
    with pytest.raises(SystemExit) as exc:
        main(["strata", str(run), "--strata", str(tmp_path / "west.gpkg"), "--workers", "0"])
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    found = re.search(r"(\d+) of (\d+) mapped pixels lie in no stratum", captured.out)
    assert found and 0 < int(found[1]) < int(found[2]), captured.out
    meta = json.loads((run / "strata" / "strata.json").read_text())
    assert meta["mapped_pixels_outside_strata"] == int(found[1])


def test_core_samples_off_the_runs_depths_are_counted_on_the_console(
    world: W, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Samples on depths the run does not map give no stock: said, not ignored."""
    monkeypatch.setenv("SOCMAP_PROGRESS", "0")
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    cores = pd.read_csv(world["cores"])
    deep = cores["top_cm"] > 0
    cores.loc[deep, "top_cm"] -= 10  # 15-30 cm becomes 5-30 cm: no interval of the run
    cores.to_csv(tmp_path / "cores.csv", index=False)
    with pytest.raises(SystemExit) as exc:
        main(["strata", str(run), "--strata", "soil", "--cores", str(tmp_path / "cores.csv"),
              "--workers", "0"])  # fmt: skip
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    n = int(deep.sum())
    assert f"{n} core samples lie on depths that are none of the run's intervals (5-30cm)" in (
        captured.out
    ), captured.out
    meta = json.loads((run / "strata" / "strata.json").read_text())
    assert meta["cores"]["samples_off_intervals"] == [n, ["5-30cm"]]


#: Options refused by a range check alone: the refusal must not wait for torch (seconds).
CHEAP: list[tuple[str, list[str]]] = [
    ("stocks-cf", ["stocks", "RUN", "--bd", "1.3", "--cf", "1.5"]),
    ("stocks-bd-units", ["stocks", "RUN", "--bd", "1.3", "--bd-units", "kg/m3"]),
    ("design-budget", ["design", "RUN", "--strata", "soil", "--budget", "0", "-o", "out"]),
    ("strata-confidence", ["strata", "RUN", "--strata", "soil", "--confidence", "0.3"]),
    ("cv-folds", ["cv", "--cube", "c.zarr", "--profiles", "k.csv", "--folds", "1", "-o", "o"]),
    ("finetune-cv-folds", ["finetune", "b", "--cube", "c.zarr", "--profiles", "k.csv",
                           "--cv-folds", "1", "-o", "o"]),
    ("predict-passes", ["predict", "b", "c.zarr", "-o", "out", "--passes", "0"]),
    ("finetune-strategy", ["finetune", "b", "--cube", "c.zarr", "--profiles", "k.csv",
                           "--strategy", "magic", "-o", "o"]),
    ("finetune-strategy-no-bundle", ["finetune", "b", "--cube", "c.zarr", "--profiles",
                                     "k.csv", "--strategy", "blend", "-o", "o"]),
    ("cv-method", ["cv", "--cube", "c.zarr", "--profiles", "k.csv", "--method", "magic",
                   "-o", "o"]),
    ("pretrain-jobs-0", ["pretrain", "-o", "o.socmap", "--jobs", "0"]),
    ("benchmark-transfer-jobs-0", ["benchmark", "transfer", "--cube", "c.zarr", "--profiles",
                                   "k.csv", "--jobs", "0", "-o", "o"]),
    ("cv-jobs-0", ["cv", "--cube", "c.zarr", "--profiles", "k.csv", "--jobs", "0", "-o", "o"]),
    ("finetune-jobs-0", ["finetune", "b", "--cube", "c.zarr", "--profiles", "k.csv",
                         "--jobs", "0", "-o", "o"]),
    ("benchmark-methods", ["benchmark", "transfer", "--cube", "c.zarr", "--profiles", "k.csv",
                           "--bundle", "b", "--methods", "rf,magic", "-o", "o"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "argv"), CHEAP, ids=[c[0] for c in CHEAP])
def test_cheap_checks_refuse_before_torch_loads(
    world: W, tmp_path: Path, name: str, argv: list[str]
) -> None:
    import subprocess
    import sys

    args = [str(world["run"]) if a == "RUN" else a for a in argv]
    code = (
        "import sys\nfrom socmap.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit as e:\n"
        "    print(e.code, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["2", "False"], (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------- fuzzing
_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**12), 10**12),
    st.text(max_size=6),
    st.none(),
)
_profile_columns = ["site_id", "x", "y", "crs", "top_cm", "bottom_cm", "soc_g_kg", "bd_g_cm3",
                    "cf_vol", "extra"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.lists(st.sampled_from(_profile_columns), min_size=0, max_size=9, unique=True),
    rows=st.integers(0, 6),
    data=st.data(),
)
def test_fuzzed_profile_tables_give_a_result_or_a_clear_error(
    columns: list[str], rows: int, data: st.DataObject
) -> None:
    from socmap.depth import harmonise
    from socmap.errors import SocmapError
    from socmap.profiles import qc_profiles, read_profiles

    frame = pd.DataFrame(
        {c: [data.draw(_values) for _ in range(rows)] for c in columns}, dtype=object
    )
    try:
        table = read_profiles(frame, crs="EPSG:4326")
        report = qc_profiles(table)
        assert len(report.table) == len(table)  # QC flags rows, never drops them
        harmonise(table, "0-30", value_cols=("soc_g_kg",))
    except SocmapError as exc:
        assert str(exc) and "\n" not in str(exc).strip("\n")


_catalog_keys = ["name", "source", "units", "kind", "group", "classes", "resampling", "scale",
                 "offset", "nodata", "stands_for", "bogus"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(
        st.dictionaries(st.sampled_from(_catalog_keys), _values, max_size=8), max_size=3
    ),
    top=st.dictionaries(st.sampled_from(["name", "grid", "description", "x"]), _values, max_size=3),
)
def test_fuzzed_catalogs_load_or_fail_clearly(
    tmp_path_factory: pytest.TempPathFactory, entries: list[dict[str, Any]],
    top: dict[str, Any],
) -> None:  # fmt: skip
    import yaml

    from socmap.catalog import load_catalog
    from socmap.errors import SocmapError

    path = tmp_path_factory.mktemp("fuzz") / "catalog.yaml"
    path.write_text(yaml.safe_dump({**top, "covariates": entries}))
    try:
        load_catalog(path)
    except SocmapError as exc:
        assert str(exc)


def test_harmonise_takes_accepted_qc_failures_and_says_so(world, tmp_path, capsys) -> None:
    out = tmp_path / "h.parquet"
    args = ["profiles", "harmonise", str(world["root"] / "depths_in_m.csv"), "-o", str(out),
            "--accept-qc", "likely_metre_depths"]  # fmt: skip
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    assert "likely_metre_depths fails on" in capsys.readouterr().out and out.exists()


def test_finetune_refuses_a_cube_that_cannot_serve_the_pretrained_network(world) -> None:
    from socmap.cube import open_cube
    from socmap.errors import BandMismatch
    from socmap.predict import check_cube_serves

    cube = open_cube(world["cube"]).sel(band=["dist"])
    with pytest.raises(BandMismatch, match=r"lacks bands \['ffreq', 'soil'\].*could not map"):
        check_cube_serves(world["bundle"], cube, "The result could not map this cube")
    check_cube_serves(world["bundle"], open_cube(world["cube"]), "unused")  # all there


def test_too_few_profiles_for_calibration_give_a_bundle_with_null_widths(
    world, tmp_path, capsys
) -> None:
    cores = pd.read_csv(world["cores"])
    eight = cores[cores["site_id"].isin(cores["site_id"].drop_duplicates().head(8))]
    eight.to_csv(tmp_path / "eight.csv", index=False)
    out = tmp_path / "ft"
    args = ["finetune", str(world["bundle"]), "--cube", str(world["cube"]), "--profiles",
            str(tmp_path / "eight.csv"), "--strategy", "rf", "--cv-folds", "2", "--block-size",
            "500m", "--depths", "0-30", "--max-depth", "30", "-o", str(out)]  # fmt: skip
    try:
        main(args)
    except SystemExit as exc:  # once: "bundle metadata must be JSON-serialisable"
        assert not exc.code, capsys.readouterr().err
    metrics = json.loads((out / "model.json").read_text())["metadata"]["cv_metrics"]
    widths = [m.get("calibrated_mpiw_95") for m in metrics]
    assert None in widths  # infinite: 4 residuals per fold cannot bound a 95 % interval


def test_predict_counts_pixels_of_classes_the_model_never_saw(world, tmp_path, capsys) -> None:
    """A cube coded otherwise than the training data is said on the console (once run.json only)."""
    out = tmp_path / "run"
    args = ["predict", str(world["root"] / "bundle_other_classes"), str(world["cube"]), "-o",
            str(out), "--passes", "2", "--workers", "0"]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    printed = capsys.readouterr().out
    assert exc.value.code == 0
    assert re.search(r"note: (\d+) of \1 mapped pixels hold classes of 'soil' that the model "
                     r"was not trained on", printed), printed  # fmt: skip


def test_the_map_a_refusal_suggests_works(world, tmp_path, capsys) -> None:
    """The --map remedy for a header with spaces around a name runs as written."""
    args = ["profiles", "qc", str(world["root"] / "spaced_header.csv"), "--map",
            "soc_g_kg=SOC_g_kg", "-o", str(tmp_path / "qc")]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0, capsys.readouterr().err
    assert "QC of 80 horizons in 40 sites" in capsys.readouterr().out


def test_a_bad_bd_band_leaves_the_stocks_and_the_corrected_command_works(
    world, tmp_path, capsys
) -> None:
    """--overwrite with a bad band refuses before the old stocks go (once they were gone)."""
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    before = (run / "run.json").read_text()
    for bad in (["--bd", "soil"], ["--bd", "dist"], ["--bd", "1.3", "--cf", "ffreq"]):
        with pytest.raises(SystemExit) as exc:
            main(["stocks", str(run), *bad, "--overwrite", "--workers", "0"])
        assert exc.value.code == 2, capsys.readouterr().err
        assert (run / "run.json").read_text() == before
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # the run's own options: no --overwrite needed
        main(["stocks", str(run), "--bd", "1.3", "--bd-sd", "0.1", "--workers", "0"])
    assert exc.value.code == 0, capsys.readouterr().err

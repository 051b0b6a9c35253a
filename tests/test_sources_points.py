"""Sampling a covariate catalog at point sites, and pretraining on a catalog of one's own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from affine import Affine

from conftest import write_raster
from socmap.catalog import load_catalog
from socmap.cli import main
from socmap.errors import ProfileValidationError
from socmap.grid import Grid
from socmap.sources.points import sample_catalog

#: A 2-degree world grid; the value of pixel (r, c) is 1000 * r + c.
WORLD = Grid("EPSG:4326", Affine(2.0, 0.0, -180.0, 0.0, -2.0, 90.0), (90, 180))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("points")
    rows, cols = np.indices(WORLD.shape)
    index = (1000 * rows + cols).astype(np.float32)
    index[0, :] = -1  # nodata along the top row
    write_raster(root / "index.tif", index, WORLD, nodata=-1)
    # the same field in web mercator, at 0.5 x the value, to exercise the reprojection
    merc = Grid("EPSG:3857", Affine(200_000.0, 0.0, -2_000_000.0, 0.0, -200_000.0, 2_000_000.0),
                (20, 20))  # fmt: skip
    mrows, mcols = np.indices(merc.shape)
    write_raster(root / "merc.tif", (mrows * 100 + mcols).astype(np.int16), merc)
    entries = [
        {"name": "idx", "source": "index.tif", "band": 1, "units": "1", "kind": "continuous",
         "group": "g", "scale": 0.5, "offset": 1.0},
        {"name": "merc", "source": "merc.tif", "band": 1, "units": "1", "kind": "continuous",
         "group": "g"},
    ]  # fmt: skip
    path = root / "points.yaml"
    path.write_text(yaml.safe_dump({"name": "points", "covariates": entries}))
    return path


def test_values_are_the_pixels_holding_the_sites(catalog: Path) -> None:
    sites = pd.DataFrame(
        {"site_id": ["a", "a", "b", "c", "d"], "x": [-179.0, -179.0, 11.0, 0.0, 50.0],
         "y": [-1.0, -1.0, 45.5, 89.5, 0.0], "crs": "EPSG:4326"}
    )  # fmt: skip
    out = sample_catalog(catalog, sites)
    assert out["site_id"].tolist() == ["a", "b", "c", "d"]  # one row per site, none dropped
    # a: row 45, col 0; b: row 22, col 95; c: top row = nodata; scale 0.5, offset 1
    np.testing.assert_allclose(out["idx"].iloc[:2], [0.5 * 45_000 + 1, 0.5 * 22_095 + 1])
    assert np.isnan(out["idx"].iloc[2])
    # merc covers +-2000 km around (0, 0): every one of these sites lies outside it
    assert out["merc"].isna().all()


def test_a_site_near_the_origin_reads_the_mercator_pixel(catalog: Path) -> None:
    # (0.9 E, 0.9 N) is ~100 km east and north of the origin: row 9, column 10
    out = sample_catalog(catalog, pd.DataFrame({"site_id": [1], "longitude": [0.9],
                                                "latitude": [0.9]}))  # fmt: skip
    assert out["merc"].iloc[0] == 9 * 100 + 10


def test_sites_in_another_crs_are_refused(catalog: Path) -> None:
    sites = pd.DataFrame({"site_id": [1], "x": [760_000.0], "y": [6_660_000.0],
                          "crs": "EPSG:32755"})  # fmt: skip
    with pytest.raises(ProfileValidationError, match="EPSG:32755"):
        sample_catalog(catalog, sites)
    with pytest.raises(ProfileValidationError, match="need x and y"):
        sample_catalog(catalog, pd.DataFrame({"site_id": [1]}))


@pytest.mark.slow
def test_pretrain_on_a_catalog_of_ones_own(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--out", str(out), "--sources", "ISRIC-ISIS", "--catalog",
              str(catalog), "--no-cv", "--max-epochs", "1", "--seed", "1"])  # fmt: skip
    assert exc.value.code == 0
    doc = json.loads((out / "model.json").read_text())
    assert doc["metadata"]["catalog"] == str(catalog)
    bands = [b for group in doc["features"]["groups"].values() for b in group]
    assert bands == load_catalog(catalog).band_names
    counts = doc["metadata"]["training_counts"]
    assert counts["sites_missing_idx"] >= 0 and "sites_missing_merc" in counts

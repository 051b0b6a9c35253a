"""Live Earth Engine: pull a tiny SoilGrids window and sample it, with real credentials.

Skipped by default (marker ``network``). To run it::

    SOCMAP_EE_KEY=/path/to/service-account.json SOCMAP_EE_PROJECT=my-ee-project \\
        .venv/bin/pytest tests/test_ee_live.py -m network

``SOCMAP_EE_KEY`` is a service account's JSON key (the account must be registered for Earth
Engine); ``SOCMAP_EE_PROJECT`` the Cloud project to bill (default: the key's project). Without
a key, ``SOCMAP_EE_PROJECT`` alone uses the default credentials (``earthengine authenticate``
or Application Default Credentials).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.catalog import Catalog, load_catalog
from socmap.cube import open_cube
from socmap.grid import Grid

pytestmark = pytest.mark.network

ee = pytest.importorskip("ee")


def test_pull_and_sample_a_tiny_soilgrids_window(tmp_path: Path) -> None:
    from socmap.cube import pull_cube
    from socmap.sources.earthengine import initialize, sample_sites

    key, project = os.environ.get("SOCMAP_EE_KEY"), os.environ.get("SOCMAP_EE_PROJECT")
    if not key and not project:
        pytest.skip("set SOCMAP_EE_KEY (a service-account key file) and/or SOCMAP_EE_PROJECT")
    initialize(service_account_key=key, project=project)
    soilgrids = load_catalog("soilgrids_priors")
    names = ["soilgrids_soc_0-5cm", "soilgrids_bdod_0-5cm", "soilgrids_cfvo_0-5cm"]
    cat = Catalog(name="soilgrids_live", covariates=tuple(soilgrids[n] for n in names))
    # 32 x 20 pixels of 0.0025 degrees around Wageningen (NL): farmland, woods and a river.
    grid = Grid.from_bbox((5.60, 51.95, 5.68, 52.00), 0.0025, "EPSG:4326")
    out = pull_cube(cat, grid, tmp_path / "soilgrids.zarr", chunk=16, workers=2, progress=False)
    cube = open_cube(out)
    ranges = {names[0]: (1.0, 600.0), names[1]: (0.1, 2.0), names[2]: (0.0, 1.0)}
    for name, (lo, hi) in ranges.items():
        values = np.asarray(cube.sel(band=name))
        finite = values[np.isfinite(values)]
        assert finite.size > 0.5 * values.size, name
        assert lo <= finite.min() and finite.max() <= hi, name  # socmap units after the pull
    sites = pd.DataFrame({"site_id": ["a", "b"], "longitude": [5.62, 5.665],
                          "latitude": [51.97, 51.985]})  # fmt: skip
    table = sample_sites(cat, sites, grid, workers=2, progress=False)
    rows, cols = (
        np.floor(v).astype(int) for v in grid.rowcol(sites["longitude"], sites["latitude"])
    )
    expected = np.asarray(cube)[:, rows, cols].T
    np.testing.assert_array_equal(table[names].to_numpy(np.float32), expected)

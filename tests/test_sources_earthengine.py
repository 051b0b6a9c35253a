"""Earth Engine without a server: request tiling under computePixels' limits, band groups,
``ee:`` catalog entries, the shipped catalogs, and the one-module seam around ``ee``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st

import socmap
from socmap.catalog import Catalog, load_catalog
from socmap.errors import CatalogError, ConfigError
from socmap.grid import Grid
from socmap.sources.earthengine import (
    MAX_BANDS,
    MAX_DIMENSION,
    REQUEST_LIMIT_BYTES,
    band_groups,
    bytes_per_pixel,
    plan_requests,
    request_tile,
)

DTYPES = st.lists(
    st.sampled_from(["uint8", "int16", "float32", "float64"]), min_size=1, max_size=64
)


@given(DTYPES, st.sampled_from([64, 128, 256, 512]), st.booleans())
def test_requests_fit_the_limits_in_whole_chunks(dtypes, chunk, mask):
    try:
        side = request_tile(dtypes, chunk, mask=mask)
    except ConfigError:
        assert chunk * chunk * bytes_per_pixel(dtypes, mask=mask) > REQUEST_LIMIT_BYTES
        return
    assert side % chunk == 0 and side <= MAX_DIMENSION
    assert side * side * bytes_per_pixel(dtypes, mask=mask) <= REQUEST_LIMIT_BYTES
    # and one more chunk per side would not fit (the largest square)
    bigger = side + chunk
    assert bigger > MAX_DIMENSION or bigger**2 * bytes_per_pixel(dtypes, mask=mask) > (
        REQUEST_LIMIT_BYTES
    )


def test_the_mask_byte_counts():
    # 12 float32 bands: 48 B without the mask fits 1024^2 (48 MiB exactly), 49 B does not
    assert request_tile(["float32"] * 12, 1024, mask=False) == 1024
    with pytest.raises(ConfigError, match="exceeds computePixels"):
        request_tile(["float32"] * 12, 1024, mask=True)
    with pytest.raises(ConfigError, match="1024"):
        bytes_per_pixel(["uint8"] * 1025)


def test_single_byte_bands_stop_at_the_dimension_limit():
    assert request_tile(["uint8"], 1024, mask=False, limit=2**40) == MAX_DIMENSION


@given(st.integers(1, 3000), st.integers(1, 3000), st.sampled_from([256, 512, 1536]))
def test_windows_cover_the_grid_exactly_once(h, w, side):
    grid = Grid("EPSG:32755", Affine(30.0, 0, 500000.0, 0, -30.0, 7000000.0), (h, w))
    hits = np.zeros((h, w), dtype=np.int32)
    for win in plan_requests(grid, side):
        assert win.shape[0] <= side and win.shape[1] <= side
        r, c = win.slices
        hits[r, c] += 1
    assert (hits == 1).all()


# ---------------------------------------------------------------------- band groups
@given(
    st.integers(1, 3000),
    st.sampled_from([16, 64, 256, 512]),
    st.sampled_from([2**16, 2**20, REQUEST_LIMIT_BYTES]),
)
def test_band_groups_partition_and_fit(n, chunk, limit):
    dtypes = ["float32"] * n
    try:
        groups = band_groups(dtypes, chunk, limit=limit)
    except ConfigError:
        assert chunk * chunk * (4 + 1) > limit
        return
    assert [i for g in groups for i in g] == list(range(n))  # consecutive, each band once
    per_group = min(MAX_BANDS, (limit // (chunk * chunk) - 1) // 4)
    assert len(groups) == -(-n // per_group)  # the fewest requests per window
    for g in groups:
        assert len(g) <= MAX_BANDS
        assert chunk * chunk * bytes_per_pixel(["float32"] * len(g)) <= limit
        side = request_tile(["float32"] * len(g), chunk, limit=limit)
        assert side % chunk == 0 and side * side * bytes_per_pixel(["float32"] * len(g)) <= limit


def test_band_groups_refuse_a_chunk_too_big_for_one_band():
    with pytest.raises(ConfigError, match="smaller chunk"):
        band_groups(["float32"], 4096)  # 4096² x 5 B = 80 MiB


# ---------------------------------------------------------------------- catalog entries
ENTRY = {"name": "x", "source": "ee://test/image", "band": "a", "units": "1",
         "kind": "continuous", "group": "spectral"}  # fmt: skip


def _load(tmp_path: Path, **changes: object) -> Catalog:
    entry = {k: v for k, v in {**ENTRY, **changes}.items() if v is not None}
    path = tmp_path / "cat.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "covariates": [entry]}))
    return load_catalog(path)


def test_ee_entries_load(tmp_path: Path) -> None:
    cat = _load(tmp_path, band=None, ee={
        "collection": {"start": "2023-01-01", "end": "2024-01-01", "reducer": "median",
                       "filters": [{"property": "CLOUDY_PIXEL_PERCENTAGE", "lt": 20}]},
        "derive": "normalized_difference", "bands": ["B8", "B4"], "native_scale": 10,
    })  # fmt: skip
    spec = cat["x"]
    assert spec.ee is not None and spec.ee.collection is not None
    assert spec.ee.collection.filters[0].condition() == ("lt", 20.0)
    assert spec.ee.bands == ("B8", "B4")
    # Entries without an ee: mapping (plain images) keep loading, as before.
    assert _load(tmp_path).covariates[0].ee is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source": "a.tif", "ee": {"native_scale": 10}}, r"ee.*ee:// sources only.*'a.tif'"),
        ({"ee": {"derive": "normalized_difference"}}, r"needs its two input bands"),
        ({"ee": {"bands": ["B8", "B4"]}}, r"inputs of derive: normalized_difference"),
        (
            {"ee": {"derive": "normalized_difference", "bands": ["B8", "B4"]}},
            r"reads ee.bands, not 'band'.*'a'",
        ),
        (
            {"ee": {"derive": "slope", "collection": {"reducer": "median"}}},
            r"single elevation image",
        ),
        ({"ee": {"derive": "tasseled_cap"}}, r"ee.derive.*(normalized_difference|slope)"),
        ({"ee": {"collection": {"reducer": "p90"}}}, r"ee.collection.reducer"),
        (
            {"ee": {"collection": {"start": "2024-01-01", "end": "2023-01-01"}}},
            r"end '2023-01-01' must be after start '2024-01-01'",
        ),
        (
            {"ee": {"collection": {"filters": [{"property": "CLOUDY", "lt": 20, "gt": 1}]}}},
            r"exactly one of .*got \['lt', 'gt'\]",
        ),
        ({"ee": {"collection": {"filters": [{"property": "CLOUDY"}]}}}, r"exactly one of"),
        ({"ee": {"native_scale": -10}}, r"ee.native_scale.*greater than 0"),
        ({"ee": {"nativescale": 10}}, r"ee.nativescale.*not permitted|Extra inputs"),
        ({"band": 0}, r"1-based index"),
        ({"source": "ee://"}, r"names no asset"),
        (
            {
                "kind": "categorical",
                "classes": {1: "a"},
                "resampling": "nearest",
                "ee": {"derive": "slope"},
            },
            r"continuous layer; set kind: continuous",
        ),
    ],
)
def test_bad_ee_entries_are_refused(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(CatalogError, match=message) as info:
        _load(tmp_path, **changes)
    assert "entry 0 ('x')" in str(info.value)  # the message names the entry


def test_shipped_catalogs_load_with_their_conversions() -> None:
    sg = load_catalog("soilgrids_priors")
    assert len(sg.covariates) == 18 and {c.group for c in sg.covariates} == {"soil"}
    soc = sg["soilgrids_soc_0-5cm"]
    assert (soc.source, soc.band, soc.scale, soc.units) == (
        "ee://projects/soilgrids-isric/soc_mean",
        "soc_0-5cm_mean",
        0.1,
        "g/kg",
    )
    # The same conversions as socmap.stocks.from_soilgrids (one place for units).
    from socmap.stocks import SOILGRIDS_UNITS

    for prop in ("soc", "bdod", "cfvo"):
        for depth in ("0-5cm", "100-200cm"):
            spec = sg[f"soilgrids_{prop}_{depth}"]
            assert spec.scale == SOILGRIDS_UNITS[prop][2]
            assert spec.band == f"{prop}_{depth}_mean"
    s2 = load_catalog("s2_terrain_climate")
    assert s2["s2_b8"].scale == 0.0001 and s2["s2_b8"].ee is not None
    assert s2["ndvi"].ee is not None and s2["ndvi"].ee.bands == ("B8", "B4")
    assert s2["ndwi"].ee is not None and s2["ndwi"].ee.bands == ("B3", "B8")
    assert s2["bio01"].scale == 0.1 and s2["bio12"].scale == 1.0
    assert s2["slope"].ee is not None and s2["slope"].ee.derive == "slope"
    assert all(c.is_earth_engine for c in (*sg.covariates, *s2.covariates))
    ae = load_catalog("alphaearth_embeddings")
    assert [c.band for c in ae.covariates] == [f"A{k:02d}" for k in range(64)]
    assert {(c.group, c.scale, c.source) for c in ae.covariates} == {
        ("embedding", 1.0, "ee://GOOGLE/SATELLITE_EMBEDDING/V1/ANNUAL")
    }
    spec = ae.covariates[0].ee
    assert spec is not None and spec.collection is not None
    assert (spec.collection.reducer, str(spec.collection.start)) == ("mosaic", "2023-01-01")


# ---------------------------------------------------------------------- the ee seam
def test_only_the_earthengine_package_imports_ee() -> None:
    src = Path(socmap.__file__).parent
    pattern = re.compile(r"^\s*(import ee\b|from ee\b|import ee\.)", re.MULTILINE)
    offenders = [
        str(p.relative_to(src)) for p in src.rglob("*.py")
        if pattern.search(p.read_text()) and "sources/earthengine" not in p.as_posix()
    ]  # fmt: skip
    assert offenders == []
    # ... and only inside functions, so importing socmap never imports ee.
    code = (
        "import sys, socmap, socmap.cube, socmap.sources.earthengine; "
        "print('ee' in sys.modules, 'googleapiclient' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

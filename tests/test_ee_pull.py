"""Earth Engine pulls end to end: the real earthengine-api client against a fake REST server.

The fake (``tests/ee_fake_server.py``) serves the discovery document and algorithm list that
ship with the installed ``ee`` package, an OAuth token endpoint, and computePixels over smooth
synthetic assets, with injected failures. Expected cubes are computed here with numpy from
the same synthetic functions at the grid's pixel centres. Grids use whole-metre origins and
pixel sizes, so pixel-centre coordinates are exact in floating point and the server (which
sees window transforms) and these tests compute the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
import zarr
from affine import Affine

ee = pytest.importorskip("ee")
pytest.importorskip("cryptography")

import ee_fake_server as fake_server  # noqa: E402
from socmap.catalog import load_catalog  # noqa: E402
from socmap.cube import cube_grid, open_cube, partial_path, plan_pull, pull_cube  # noqa: E402  # noqa: E402
from socmap.errors import (  # noqa: E402
    BandMismatch,
    CatalogError,
    ConfigError,
    EarthEngineError,
    InputNotFound,
    OutputExists,
    ProfileValidationError,
)
from socmap.grid import Grid, Window  # noqa: E402
from socmap.sources.earthengine import (  # noqa: E402
    MAX_DIMENSION,
    REQUEST_LIMIT_BYTES,
    initialize,
    sample_sites,
)

EMAIL = "puller@fake-project.iam.gserviceaccount.com"
#: 72 x 88 pixels of 250 m: big enough for the synthetic masks and clouds to show up.
GRID = Grid("EPSG:32755", Affine(250.0, 0.0, 500000.0, 0.0, -250.0, 7000000.0), (72, 88))
CHUNK = 16
#: 7 float32 bands + the mask byte = 29 B per pixel: 32 x 32 windows, 9 requests per pull.
LIMIT = 32 * 32 * 29
FAST = {"backoff_s": 0.005, "max_backoff_s": 0.02, "progress": False}
S2_FILTER = {"start": "2023-01-01", "end": "2024-01-01",
             "filters": [{"property": "CLOUDY_PIXEL_PERCENTAGE", "lt": 20}]}  # fmt: skip
ENTRIES: list[dict[str, Any]] = [
    {"name": "a", "source": "ee://test/image", "band": "a", "units": "1", "kind": "continuous",
     "group": "spectral", "resampling": "bilinear", "scale": 0.0001},
    {"name": "nd", "source": "ee://test/image", "units": "1", "kind": "continuous",
     "group": "vegetation", "resampling": "cubic",
     "ee": {"derive": "normalized_difference", "bands": ["a", "b"]}},
    {"name": "c", "source": "ee://test/image", "band": "c", "units": "1", "kind": "continuous",
     "group": "other", "resampling": "average", "nodata": -999, "scale": 0.5, "offset": 10.0},
    {"name": "slope", "source": "ee://test/image", "band": "dem", "units": "deg",
     "kind": "continuous", "group": "terrain", "resampling": "bilinear",
     "ee": {"derive": "slope", "native_scale": 30}},
    {"name": "cls", "source": "ee://test/image", "band": "cls", "units": "class",
     "kind": "categorical", "group": "land_cover", "classes": {1: "one", 2: "two", 3: "three"},
     "resampling": "mode"},
    {"name": "ndvi", "source": "ee://COPERNICUS/S2_SR_HARMONIZED", "units": "1",
     "kind": "continuous", "group": "vegetation", "resampling": "bilinear",
     "ee": {"collection": S2_FILTER, "derive": "normalized_difference", "bands": ["B8", "B4"]}},
    {"name": "b2", "source": "ee://COPERNICUS/S2_SR_HARMONIZED", "band": "B2", "units": "1",
     "kind": "continuous", "group": "spectral", "resampling": "bilinear", "scale": 0.0001,
     "ee": {"collection": S2_FILTER}},
]  # fmt: skip


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def ee_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One fake server and one service-account initialisation for the whole session."""
    folder = tmp_path_factory.mktemp("ee")
    with fake_server.no_outbound_auth_lookups(), fake_server.FakeEarthEngine() as fake:
        key, public_pem = fake_server.service_account_key(folder / "key.json", fake.url)
        fake.public_key, fake.client_email = public_pem, EMAIL
        initialize(service_account_key=key, url=fake.url)
        yield {"fake": fake, "key": key}


@pytest.fixture
def fake(ee_server: dict[str, Any]) -> fake_server.FakeEarthEngine:
    server: fake_server.FakeEarthEngine = ee_server["fake"]
    server.reset()
    return server


def write_catalog(folder: Path, entries: list[dict[str, Any]], name: str = "t") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "covariates": entries}))
    return path


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return write_catalog(tmp_path, ENTRIES)


# ---------------------------------------------------------------------- expected values
def pixel_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(grid.xs, grid.ys)
    return x, y


def _masked(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, values.astype(np.float32), np.float32(np.nan))


def _scaled(values: np.ndarray, scale: float, offset: float = 0.0) -> np.ndarray:
    out = values.copy()
    out *= np.float32(scale)
    out += np.float32(offset)
    return out


def _s2_median(band: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of the 2023 scenes under 20 % cloud, ignoring cloudy pixels (float32)."""
    start, end = fake_server._millis("2023-01-01"), fake_server._millis("2024-01-01")
    keep = [
        i for i, (day, cloud) in enumerate(fake_server.S2_SCENES)
        if start <= fake_server._millis(day) < end and cloud < 20
    ]  # fmt: skip
    assert keep == [0, 1, 3, 5]  # the filter matters: 3 scenes are dropped
    pairs = [
        fake_server.band_values("COPERNICUS/S2_SR_HARMONIZED", band, x, y, image=i) for i in keep
    ]
    stack = np.stack([v.astype(np.float32) for v, _ in pairs])
    valid = np.stack([ok for _, ok in pairs])
    any_valid = valid.any(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-cloud pixels: NaN, masked anyway
        median = np.nanmedian(np.where(valid, stack, np.nan), axis=0).astype(np.float32)
    return median, any_valid


def expected_cube(grid: Grid) -> tuple[np.ndarray, int]:
    """The ENTRIES cube computed directly, and its number of unknown class codes."""
    x, y = pixel_centres(grid)
    img = "test/image"
    a, ok_a = fake_server.band_values(img, "a", x, y)
    b, ok_b = fake_server.band_values(img, "b", x, y)
    c, ok_c = fake_server.band_values(img, "c", x, y)
    cls, ok_cls = fake_server.band_values(img, "cls", x, y)
    slope, ok_slope = fake_server.slope_values(img, "dem", x, y)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    nd = (a32 - b32) / (a32 + b32)
    c_valid = ok_c & (c != -999)
    cls_f = _masked(cls, ok_cls)
    unknown = ~np.isnan(cls_f) & ~np.isin(cls_f, [1, 2, 3])
    cls_f[unknown] = np.nan
    b8, ok8 = _s2_median("B8", x, y)
    b4, ok4 = _s2_median("B4", x, y)
    ndvi = (b8 - b4) / (b8 + b4)
    b2, ok2 = _s2_median("B2", x, y)
    bands = [
        _scaled(_masked(a, ok_a), 0.0001),
        _masked(nd, ok_a & ok_b),
        _scaled(_masked(c, c_valid), 0.5, 10.0),
        _masked(slope, ok_slope),
        cls_f,
        _masked(ndvi, ok8 & ok4),
        _scaled(_masked(b2, ok2), 0.0001),
    ]
    return np.stack(bands), int(unknown.sum())


def bits(a: np.ndarray) -> np.ndarray:
    """float32 bit patterns with every NaN made the same NaN (bitwise comparison otherwise)."""
    a = np.where(np.isnan(a), np.float32(np.nan), a).astype(np.float32)
    return a.view(np.uint32)


def pull(catalog: Path, out: Path, **kwargs: Any) -> Path:
    # The categorical test band has a code outside its class list, on purpose.
    options = {"chunk": CHUNK, "workers": 3, "request_limit": LIMIT, "unknown_classes": "nodata",
               **FAST, **kwargs}  # fmt: skip
    return pull_cube(catalog, GRID, out, **options)


def window_key(rec: fake_server.Record) -> tuple[float, float, int, int]:
    return (*rec.translate, rec.width, rec.height)


# ---------------------------------------------------------------------- pulls
def test_pull_with_failures_equals_clean_pull_and_direct_arrays(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    clean = pull(catalog, tmp_path / "clean.zarr")
    clean_requests = fake.pixel_records()
    assert len(clean_requests) == 9 and all(r.status == 200 for r in clean_requests)

    fake.reset()
    fake.configure(seed=7, fail_rate=0.3, slow_rate=0.3, slow_s=0.03)
    with pytest.raises(CatalogError, match=r"missing from the catalog's class list: 'cls': "):
        pull_cube(catalog, GRID, tmp_path / "refused.zarr", chunk=CHUNK, **FAST)
    assert not list(tmp_path.glob("*refused*"))  # the partial pull is discarded
    fake.reset()
    fake.configure(seed=7, fail_rate=0.3, slow_rate=0.3, slow_s=0.03)
    noisy = pull_cube(catalog, GRID, tmp_path / "noisy.zarr", chunk=CHUNK, workers=3,
                      request_limit=LIMIT, max_retries=8, unknown_classes="nodata",
                      **FAST)  # fmt: skip
    records = fake.pixel_records()
    failed = [r for r in records if r.status != 200]
    assert failed and {r.status for r in failed} <= {429, 503}
    assert len(records) == 9 + len(failed)  # every failure was retried, nothing more
    assert 1 < fake.max_in_flight <= 3  # concurrent, never above workers
    for rec in records:  # every request under the limits, mask byte included
        assert rec.request_bytes == rec.width * rec.height * (4 * 7 + 1) <= LIMIT
        assert rec.request_bytes <= REQUEST_LIMIT_BYTES
        assert max(rec.width, rec.height) <= MAX_DIMENSION

    a, b = open_cube(clean), open_cube(noisy)
    assert a.dtype == np.float32 and a.dims == ("band", "y", "x")
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes()  # bitwise identical
    expected, unknown = expected_cube(GRID)
    assert np.array_equal(bits(np.asarray(a)), bits(expected))
    # Each band has masked pixels somewhere, and valid ones.
    nan_fraction = np.isnan(expected).mean(axis=(1, 2))
    assert (nan_fraction > 0).all() and (nan_fraction < 0.9).all()

    attrs = a.attrs
    assert cube_grid(a) == GRID and attrs["chunk"] == CHUNK
    assert a.data.chunksize == (7, CHUNK, CHUNK)
    assert attrs["band_names"] == [e["name"] for e in ENTRIES]
    assert attrs["band_source"] == [e["source"] for e in ENTRIES]
    assert attrs["band_nodata_fraction"] == pytest.approx(list(nan_fraction))
    assert attrs["band_unknown_class_pixels"] == [0, 0, 0, 0, unknown, 0, 0] and unknown > 0
    assert sum(attrs["band_unknown_classes"][4].values()) == unknown
    digests = [hashlib.sha256(e.encode()).hexdigest() for e in attrs["band_ee_expression"]]
    assert attrs["band_source_sha256"] == digests
    assert json.loads(attrs["band_ee_expression"][0])["values"]  # the serialized expression
    assert attrs["band_scale"][0] == 0.0001 and attrs["band_offset"][2] == 10.0
    # Nothing left behind beside the outputs.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.zarr", "noisy.zarr", "t.yaml"]


def test_interrupted_pull_resumes_only_missing_windows(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cube.zarr"
    fake.configure(fail_after=4)
    with pytest.raises(EarthEngineError, match=r"failed 3 times.*HTTP 503.*rerun the same pull"):
        pull(catalog, out, max_retries=2)
    assert not out.exists()
    partial = partial_path(out)
    done = sorted(p.name for p in (partial / "records").iterdir())
    assert len(done) == 4  # exactly the windows whose request succeeded
    first = {window_key(r) for r in fake.pixel_records(200)}

    fake.reset()
    pull(catalog, out)
    second = [window_key(r) for r in fake.pixel_records()]
    assert len(second) == 5 and len(set(second)) == 5  # the 5 missing windows, once each
    assert not set(second) & first
    assert not partial.exists()
    assert np.array_equal(bits(np.asarray(open_cube(out))), bits(expected_cube(GRID)[0]))


def test_resume_redoes_a_window_whose_data_changed(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cube.zarr"
    fake.configure(fail_after=3)
    with pytest.raises(EarthEngineError):
        pull(catalog, out, max_retries=1, workers=1)
    store = partial_path(out) / "cube.zarr" / "covariates"
    arr = zarr.open_array(store=str(store), mode="r+", zarr_format=3)
    arr[0, 0, 0] = 123.0  # a region corrupted after its record was written
    fake.reset()
    pull(catalog, out, workers=1)
    assert len(fake.pixel_records()) == 9 - 3 + 1  # the corrupted window is fetched again
    assert np.array_equal(bits(np.asarray(open_cube(out))), bits(expected_cube(GRID)[0]))


def test_partial_pull_of_another_configuration_is_not_reused(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cube.zarr"
    fake.configure(fail_after=2)
    with pytest.raises(EarthEngineError):
        pull(catalog, out, max_retries=0, workers=1)
    fake.reset()
    other = write_catalog(tmp_path, [*ENTRIES[:2], {**ENTRIES[2], "scale": 2.0}, *ENTRIES[3:]],
                          name="other")  # fmt: skip
    with pytest.raises(OutputExists, match=r"unfinished pull of another configuration.*band_scale"):
        pull(other, out)
    with pytest.raises(OutputExists, match=r"unfinished pull.*\['grid'"):
        pull_cube(catalog, GRID.window(Window(0, 40, 0, 40)), out, chunk=CHUNK,
                  request_limit=LIMIT, **FAST)  # fmt: skip
    assert fake.pixel_records() == []  # refused before any request
    pull(other, out, overwrite=True)  # discards the partial and starts over
    assert len(fake.pixel_records()) == 9
    assert open_cube(out).attrs["band_scale"][2] == 2.0


def test_bands_split_over_requests_when_a_chunk_does_not_fit(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    limit = CHUNK * CHUNK * 13  # 12 bytes of bands per pixel: 3 float32 bands per request
    fake.configure(limit_bytes=limit)  # the server refuses anything bigger
    cat = load_catalog(catalog)
    plan = plan_pull(cat, GRID, CHUNK, limit)
    assert [len(g) for g in plan.groups] == [2, 3, 2] and plan.side == CHUNK
    out = pull(catalog, tmp_path / "cube.zarr", request_limit=limit)
    records = fake.pixel_records()
    assert len(records) == 3 * len(plan.windows) and all(r.status == 200 for r in records)
    assert max(r.request_bytes for r in records) <= limit
    assert np.array_equal(bits(np.asarray(open_cube(out))), bits(expected_cube(GRID)[0]))


def test_client_errors_fail_at_once_with_the_server_message(
    fake: fake_server.FakeEarthEngine, tmp_path: Path
) -> None:
    cat = write_catalog(tmp_path, [{**ENTRIES[0], "source": "ee://nope/missing"}])
    out = tmp_path / "cube.zarr"
    with pytest.raises(
        EarthEngineError,
        match=r"HTTP 400.*Image asset 'nope/missing' not found.*nothing is retried",
    ):
        pull(cat, out, workers=1)
    assert len(fake.pixel_records()) == 1  # no retry on a 4xx
    assert not out.exists()


def test_retries_are_bounded_and_then_fail_clearly(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    fake.configure(fail_rate=1.0, fail_statuses=(503,))
    with pytest.raises(EarthEngineError, match=r"failed 4 times \(max_retries=3\).*HTTP 503"):
        pull(catalog, tmp_path / "cube.zarr", workers=1, max_retries=3)
    assert len(fake.pixel_records()) == 4


def test_retry_waits_are_seeded_and_jittered(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from socmap.sources.earthengine import _client

    def waits(seed: int) -> list[float]:
        slept: list[float] = []
        monkeypatch.setattr(_client, "_sleep", slept.append)
        fake.reset()
        fake.configure(seed=3, fail_rate=0.5)
        pull(catalog, tmp_path / f"c{seed}-{len(list(tmp_path.iterdir()))}.zarr", workers=1,
             seed=seed, backoff_s=1.0, max_backoff_s=8.0)  # fmt: skip
        return slept

    first, again, other = waits(0), waits(0), waits(1)
    assert first and first == again  # same seed, same waits
    assert other != first  # another seed, other jitter
    assert all(0.5 <= w <= 8.0 for w in first)


def test_pull_refuses_bad_settings_before_any_request(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="workers 0"):
        pull_cube(catalog, GRID, tmp_path / "x.zarr", workers=0)
    with pytest.raises(ConfigError, match="chunk 0 must be a positive"):  # as build_cube
        pull_cube(catalog, GRID, tmp_path / "x.zarr", chunk=0)
    with pytest.raises(ConfigError, match="max_retries -1"):
        pull_cube(catalog, GRID, tmp_path / "x.zarr", max_retries=-1)
    with pytest.raises(ConfigError, match="request_limit"):
        pull_cube(catalog, GRID, tmp_path / "x.zarr", request_limit=REQUEST_LIMIT_BYTES + 1)
    local = write_catalog(tmp_path, [{**ENTRIES[0], "source": "a.tif"}], name="local")
    with pytest.raises(CatalogError, match=r"local sources for \['a'\].*socmap cube build"):
        pull_cube(local, GRID, tmp_path / "x.zarr")
    (tmp_path / "exists.zarr").mkdir()
    (tmp_path / "exists.zarr" / "zarr.json").write_text("{}")
    with pytest.raises(OutputExists, match="already exists"):
        pull_cube(catalog, GRID, tmp_path / "exists.zarr")
    assert fake.pixel_records() == []


# ---------------------------------------------------------------------- sampling
def test_sampling_at_sites_equals_the_cube_at_their_pixels(
    fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    out = pull(catalog, tmp_path / "cube.zarr")
    cube = np.asarray(open_cube(out))
    rng = np.random.default_rng(0)
    minx, miny, maxx, maxy = GRID.bounds
    n = 40
    xs = rng.uniform(minx, maxx, n)
    ys = rng.uniform(miny, maxy, n)
    xs[:3] = [minx + 125.0, minx + 250.0 * 3, maxx - 1e-6]  # a centre, an edge, the last column
    ys[:3] = [maxy - 125.0, maxy - 250.0 * 5, miny + 1e-6]
    sites = pd.DataFrame({"site_id": [f"s{i}" for i in range(n)], "x": xs, "y": ys})
    extra = pd.DataFrame(
        {"site_id": ["out1", "out2", "nocoord"], "x": [minx - 10, maxx + 500, np.nan],
         "y": [maxy - 10, miny - 1, np.nan]}
    )  # fmt: skip
    # Two horizons per site: each site is sampled once and joins both rows.
    table = pd.concat([sites, extra], ignore_index=True)
    table = pd.concat([table.assign(top_cm=0.0), table.assign(top_cm=5.0)], ignore_index=True)
    fake.reset()
    fake.configure(seed=2, fail_rate=0.3)
    result = sample_sites(catalog, table, GRID, cell=16, workers=3, **FAST)
    assert len(result) == len(table) and list(result["site_id"]) == list(table["site_id"])
    summary = result.attrs["extract_summary"]
    assert summary["outside_grid"] == 2 and summary["missing_coordinates"] == 1
    assert sum(summary.values()) == n + 3
    flagged = result.drop_duplicates("site_id").set_index("site_id")["extract_status"]
    assert flagged["out1"] == flagged["out2"] == "outside_grid"
    assert flagged["nocoord"] == "missing_coordinates"
    rows, cols = GRID.rowcol(xs, ys)
    rows, cols = np.floor(rows).astype(int), np.floor(cols).astype(int)
    got = result.drop_duplicates("site_id").set_index("site_id").loc[sites["site_id"]]
    names = [e["name"] for e in ENTRIES]
    values = got[names].to_numpy(dtype=np.float32)
    assert np.array_equal(bits(values), bits(cube[:, rows, cols].T))  # pixel-exact
    assert result.loc[result["site_id"] == "out1", names].isna().all().all()
    assert any(r.status != 200 for r in fake.pixel_records())  # retried through failures
    # fewer requests than sites: sites in one 16-pixel cell share a request
    ok = [r for r in fake.pixel_records() if r.status == 200]
    assert len(ok) < n

    # longitude/latitude are reprojected to the grid's CRS
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(GRID.crs, "EPSG:4326", always_xy=True).transform(
        xs[3:10], ys[3:10]
    )
    geo = pd.DataFrame({"site_id": range(7), "longitude": lon, "latitude": lat})
    fake.reset()
    by_lonlat = sample_sites(catalog, geo, GRID, workers=2, **FAST)
    assert np.array_equal(bits(by_lonlat[names].to_numpy(np.float32)), bits(values[3:10]))


def test_sampling_rejects_tables_it_cannot_place(catalog: Path, fake: Any) -> None:
    with pytest.raises(ProfileValidationError, match=r"needs x and y .* or longitude and latitude"):
        sample_sites(catalog, pd.DataFrame({"site_id": [1], "lon": [1.0]}), GRID, **FAST)
    with pytest.raises(BandMismatch, match=r"bands \['a'\] clash with table columns"):
        sample_sites(catalog, pd.DataFrame({"site_id": [1], "x": [1.0], "y": [1.0], "a": [0]}),
                     GRID, **FAST)  # fmt: skip


# ---------------------------------------------------------------------- shipped catalogs
@pytest.mark.parametrize(
    ("name", "grid", "ranges"),
    [
        (
            "soilgrids_priors",
            Grid("EPSG:4326", Affine(0.01, 0.0, 5.0, 0.0, -0.01, 52.0), (24, 24)),
            {"soilgrids_soc_0-5cm": (2.0, 90.0), "soilgrids_bdod_30-60cm": (0.8, 1.7),
             "soilgrids_cfvo_100-200cm": (0.0, 0.4)},
        ),
        (
            "s2_terrain_climate",
            Grid("EPSG:32755", Affine(250.0, 0.0, 500000.0, 0.0, -250.0, 7000000.0), (24, 24)),
            {"s2_b8": (0.02, 0.4), "ndvi": (-1.0, 1.0), "bio01": (-5.0, 30.0),
             "bio12": (0.0, 3000.0), "slope": (0.0, 30.0), "twi": (-5.0, 20.0)},
        ),
        (
            "alphaearth_embeddings",
            Grid("EPSG:32755", Affine(250.0, 0.0, 500000.0, 0.0, -250.0, 7000000.0), (16, 16)),
            {"ae_a00": (-1.0, 1.0), "ae_a31": (-1.0, 1.0), "ae_a63": (-1.0, 1.0)},
        ),
    ],
)  # fmt: skip
def test_shipped_catalogs_pull_from_the_fake(
    fake: fake_server.FakeEarthEngine, tmp_path: Path, name: str, grid: Grid, ranges: dict
) -> None:
    """Every entry serializes to an expression the fake evaluates (no op skipped)."""
    out = pull_cube(name, grid, tmp_path / f"{name}.zarr", chunk=8, workers=2, **FAST)
    cube = open_cube(out)
    assert [r.status for r in fake.pixel_records()] == [200] * len(fake.pixel_records())
    for band, (lo, hi) in ranges.items():
        values = np.asarray(cube.sel(band=band))
        finite = values[np.isfinite(values)]
        assert finite.size > 0 and lo <= finite.min() and finite.max() <= hi, band


def test_alphaearth_embeddings_are_the_years_unit_vectors(
    fake: fake_server.FakeEarthEngine, tmp_path: Path
) -> None:
    grid = Grid("EPSG:32755", Affine(250.0, 0.0, 500000.0, 0.0, -250.0, 7000000.0), (12, 12))
    cube = open_cube(pull_cube("alphaearth_embeddings", grid, tmp_path / "ae.zarr", chunk=6,
                               workers=2, **FAST))  # fmt: skip
    bands = [f"ae_a{k:02d}" for k in range(64)]
    assert list(cube.band.values) == bands
    values = np.asarray(cube.sel(band=bands))
    assert np.isfinite(values).all()
    # each pixel is (close to) a unit vector: bilinear averaging of unit vectors shortens them
    norm = np.sqrt(np.sum(values.astype(np.float64) ** 2, axis=0))
    assert norm.min() > 0.97 and norm.max() < 1.0 + 1e-5
    # the 2023 tiles, not 2022's: compare with the fake's fields at the pixel centres
    x, y = np.meshgrid(np.asarray(cube.x), np.asarray(cube.y))
    year = {y_: 2 * i for i, y_ in enumerate(fake_server.EMBEDDING_YEARS)}
    got = values[5]
    want_2023, _ = fake_server.band_values(fake_server.EMBEDDING, "A05", x, y, image=year[2023])
    want_2022, _ = fake_server.band_values(fake_server.EMBEDDING, "A05", x, y, image=year[2022])
    assert np.abs(got - want_2023).mean() < 0.2 * np.abs(got - want_2022).mean()


def test_alphaearth_embeddings_sample_at_sites(fake: fake_server.FakeEarthEngine) -> None:
    sites = pd.DataFrame({"site_id": ["a", "b"], "x": [501000.0, 502500.0],
                          "y": [6999000.0, 6997500.0], "crs": "EPSG:32755"})  # fmt: skip
    out = sample_sites("alphaearth_embeddings", sites, GRID, **FAST)
    emb = out[[f"ae_a{k:02d}" for k in range(64)]].to_numpy(dtype=float)
    assert emb.shape == (2, 64) and np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=0.03)


# ---------------------------------------------------------------------- credentials
def test_credentials_never_reach_logs_or_messages(
    ee_server: dict[str, Any],
    fake: fake_server.FakeEarthEngine,
    catalog: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = ee_server["key"]
    private_key = json.loads(Path(key).read_text())["private_key"]
    secrets = [fake.token, *private_key.splitlines()[1:-1][:3]]
    caplog.set_level(logging.DEBUG)  # every logger, every level
    messages: list[str] = []
    initialize(service_account_key=key, url=fake.url)  # a fresh token exchange, logged
    assert [r.status for r in fake.records if r.kind == "token"] == [200]
    fake.configure(seed=5, fail_rate=0.5)
    pull(catalog, tmp_path / "ok.zarr")
    fake.reset()
    for bad in (
        lambda: pull(write_catalog(tmp_path, [{**ENTRIES[0], "source": "ee://x/y"}], "bad"),
                     tmp_path / "bad.zarr", workers=1),
        lambda: (fake.configure(fail_rate=1.0),
                 pull(catalog, tmp_path / "fail.zarr", workers=1, max_retries=1)),
    ):  # fmt: skip
        with pytest.raises(EarthEngineError) as info:
            bad()
        messages.append(str(info.value))
        messages.append("".join(traceback.format_exception(info.value)))
    # The requests did carry the token (so its absence below means something).
    assert all(r.authorization == f"Bearer {fake.token}" for r in fake.pixel_records())
    captured = capsys.readouterr()
    text = "\n".join([caplog.text, captured.out, captured.err, *messages])
    assert "computePixels" in caplog.text or "retry" in caplog.text  # logs were captured
    for secret in secrets:
        assert secret not in text


def test_key_file_problems_name_the_file_not_its_contents(
    ee_server: dict[str, Any], fake: fake_server.FakeEarthEngine, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(InputNotFound, match=r"'.*nope.json' does not exist.*--key FILE"):
        initialize(service_account_key=missing, url=fake.url)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json: hunter2")
    with pytest.raises(ConfigError, match=r"garbage.json' is not a readable JSON") as info:
        initialize(service_account_key=garbage, url=fake.url)
    assert "hunter2" not in str(info.value)
    user = tmp_path / "user.json"
    user.write_text(json.dumps({"type": "authorized_user", "refresh_token": "secret-refresh"}))
    with pytest.raises(ConfigError, match=r"user.json' is not a service-account key") as info:
        initialize(service_account_key=user, url=fake.url)
    assert "secret-refresh" not in str(info.value)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"type": "service_account", "private_key": "sekrit"}))
    with pytest.raises(ConfigError, match=r"lacks \['client_email', 'token_uri'\]") as info:
        initialize(service_account_key=partial, url=fake.url)
    assert "sekrit" not in str(info.value)
    # A well-formed key that the token endpoint refuses (signed by another key).
    other, _ = fake_server.service_account_key(tmp_path / "other.json", fake.url)
    try:
        with pytest.raises(EarthEngineError, match=r"other.json' failed.*invalid_grant") as info:
            initialize(service_account_key=other, url=fake.url)
        other_key = json.loads(other.read_text())["private_key"].splitlines()[1]
        assert other_key not in "".join(traceback.format_exception(info.value))
    finally:
        initialize(service_account_key=ee_server["key"], url=fake.url)  # restore the session


def test_pull_needs_an_initialised_client(
    ee_server: dict[str, Any], fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    ee.Reset()
    try:
        with pytest.raises(EarthEngineError, match=r"not initialised.*initialize\("):
            pull(catalog, tmp_path / "cube.zarr")
    finally:
        initialize(service_account_key=ee_server["key"], url=fake.url)
    assert fake.pixel_records() == []


# ---------------------------------------------------------------------- CLI and scheduled runs
def _grid_yaml(folder: Path) -> Path:
    minx, miny, maxx, maxy = GRID.bounds
    path = folder / "grid.yaml"
    path.write_text(
        yaml.safe_dump({"grid": {"crs": GRID.crs, "bbox": [minx, miny, maxx, maxy],
                                 "resolution": 250.0}})
    )  # fmt: skip
    return path


def test_cli_pull_and_sample_through_the_fake(
    ee_server: dict[str, Any],
    fake: fake_server.FakeEarthEngine,
    catalog: Path,
    tmp_path: Path,
    cli: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["--key", ee_server["key"], "--url", fake.url, "--grid", _grid_yaml(tmp_path)]
    status = cli(["ee", "pull", catalog, *base, "--out", tmp_path / "c.zarr",
                  "--chunk", CHUNK, "--workers", 2, "--unknown-classes", "nodata"])  # fmt: skip
    said = capsys.readouterr()
    assert status == 0, said.err
    assert re.search(r"cls: \d+ pixels with codes missing from the catalog set to nodata", said.out)
    expected, _ = expected_cube(GRID)
    assert np.array_equal(bits(np.asarray(open_cube(tmp_path / "c.zarr"))), bits(expected))
    sites = tmp_path / "sites.csv"
    minx, _, _, maxy = GRID.bounds
    pd.DataFrame({"site_id": ["a", "b"], "x": [minx + 125, minx - 50], "y": [maxy - 125] * 2}
                 ).to_csv(sites, index=False)  # fmt: skip
    assert cli(["ee", "sample", catalog, sites, *base, "--out", tmp_path / "t.csv"]) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["extract_status"].tolist() == ["ok", "outside_grid"]
    assert table.loc[0, "a"] == pytest.approx(float(expected[0, 0, 0]))
    # a key that does not exist: one line naming it, exit status 2
    capsys.readouterr()
    assert cli(["ee", "pull", catalog, "--key", tmp_path / "nokey.json", "--out",
                tmp_path / "x.zarr"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "nokey.json" in err and len(err.strip().splitlines()) == 1


def test_a_scheduled_run_pulls_its_cube_from_earth_engine(
    ee_server: dict[str, Any], fake: fake_server.FakeEarthEngine, catalog: Path, tmp_path: Path
) -> None:
    from socmap.pipeline.config import RunSpec
    from socmap.pipeline.stages import STAGES, StageContext

    spec = RunSpec.model_validate(
        {
            "name": "ee-run",
            "region": str(_grid_yaml(tmp_path)),
            "cube": {"catalog": str(catalog), "chunk": CHUNK, "unknown_classes": "nodata",
                     "earthengine": {"key_file": str(ee_server["key"]), "url": fake.url,
                                     "workers": 2}},
            "profiles": {"path": "edgeroi"},
        }
    )  # fmt: skip
    cube_stage = next(s for s in STAGES if s.name == "cube")
    assert set(cube_stage.inputs(spec)) == {"catalog", "grid"}  # pinned by the catalog text
    fake.configure(seed=4, fail_rate=0.3)
    out = tmp_path / "stage"
    out.mkdir()
    metrics = cube_stage.run(StageContext(spec, {}, progress=False), out)
    assert metrics["bands"] == len(ENTRIES) and metrics["shape"] == list(GRID.shape)
    expected, _ = expected_cube(GRID)
    assert np.array_equal(bits(np.asarray(open_cube(out / "cube.zarr"))), bits(expected))

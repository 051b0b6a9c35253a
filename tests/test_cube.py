from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from rasterio.env import get_gdal_config, set_gdal_config

import socmap
from socmap.catalog import embedded_data_dir, load_catalog
from socmap.cube import (
    GDAL_CACHE_BYTES,
    CubeInfo,
    band_table,
    build_cube,
    cube_grid,
    describe_cube,
    is_socmap_cube,
    open_cube,
)
from socmap.errors import (
    BandMismatch,
    CatalogError,
    ConfigError,
    CRSError,
    DimensionOrderError,
    GridMismatch,
    InputNotFound,
    OutputExists,
    RasterError,
)
from socmap.grid import Grid
from socmap.sources.local import LayerSource, read_layer, source_checksum

pytestmark = pytest.mark.usefixtures("no_progress")


def assert_no_output(out: Path) -> None:
    assert not out.exists()
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    assert leftovers == []


def read_tif(path: Path) -> tuple[np.ndarray, Any, float | None]:
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.nodata


@pytest.fixture(scope="module")
def shared_cube(shared_local_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once for the read-only tests below."""
    out = tmp_path_factory.mktemp("cube") / "cube.zarr"
    return build_cube(shared_local_catalog, None, out, chunk=16, progress=False)


# ---------------------------------------------------------------------- round trip
def test_build_open_round_trips_grid_crs_and_attrs(
    shared_cube: Path, shared_local_catalog: Path, utm_grid: Grid
) -> None:
    cube = open_cube(shared_cube)
    assert cube.name == "covariates"
    assert cube.dims == ("band", "y", "x")
    assert cube.dtype == np.float32
    assert isinstance(cube.data, dsa.Array)
    assert cube.data.chunks[0] == (4,)
    assert cube.data.chunks[1] == (16, 16, 16, 12)
    assert cube.data.chunks[2] == (16, 16, 16, 16, 16)
    assert list(cube.band.values) == ["elev", "temp", "cover", "ndvi"]
    assert cube.rio.crs.to_epsg() == 32755
    assert cube_grid(cube) == utm_grid
    np.testing.assert_allclose(cube.x.values, utm_grid.xs)
    np.testing.assert_allclose(cube.y.values, utm_grid.ys)

    a = cube.attrs
    assert a["band_names"] == ["elev", "temp", "cover", "ndvi"]
    assert a["band_units"] == ["m", "degC", "class", "1"]
    assert a["band_kind"] == ["continuous", "continuous", "categorical", "continuous"]
    assert a["band_group"] == ["terrain", "climate", "land_cover", "vegetation"]
    assert a["band_classes"][2] == {"1": "forest", "2": "crop", "3": "grass", "4": "water"}
    assert a["band_classes"][0] is None
    assert a["band_scale"] == [1.0, 1.0, 1.0, 0.0001]
    assert a["band_nodata"] == [-9999.0, -9999.0, 0.0, None]
    folder = shared_local_catalog.parent
    assert a["band_source_path"] == [str(folder / f"{n}.tif") for n in a["band_names"]]
    for path, digest in zip(a["band_source_path"], a["band_source_sha256"], strict=True):
        assert digest == source_checksum(path)
    assert a["catalog_name"] == "fixture"
    assert a["catalog_sha256"] == load_catalog(shared_local_catalog).digest
    assert a["socmap_version"] == socmap.__version__
    assert dt.datetime.fromisoformat(a["created"]).tzinfo is not None
    assert Grid.from_dict(a["grid"]) == utm_grid
    assert a["chunk"] == 16


def test_cube_values_equal_layer_reads(
    shared_cube: Path, shared_local_catalog: Path, utm_grid: Grid
) -> None:
    cat = load_catalog(shared_local_catalog)
    cube = open_cube(shared_cube).load()
    for sp in cat.covariates:
        with LayerSource(sp, sp.resolve_source(cat.base_dir)) as src:
            tiled = np.full(utm_grid.shape, np.nan, dtype=np.float32)
            for tile in utm_grid.tiles(16):
                tiled[tile.core.slices] = src.read(tile.grid)
        np.testing.assert_array_equal(cube.sel(band=sp.name).values, tiled, err_msg=sp.name)
    # The aligned layer is the source itself, and ndvi carries its scale.
    raw, _, _ = read_tif(Path(cube.attrs["band_source_path"][0]))
    elev = cube.sel(band="elev").values
    np.testing.assert_array_equal(elev[raw != -9999], raw[raw != -9999])
    ndvi_raw, _, _ = read_tif(Path(cube.attrs["band_source_path"][3]))
    np.testing.assert_allclose(cube.sel(band="ndvi").values, ndvi_raw * 1e-4, rtol=1e-6)


def test_workers_and_chunking_do_not_change_values(local_catalog: Path, tmp_path: Path) -> None:
    serial = build_cube(local_catalog, None, tmp_path / "a.zarr", chunk=16, workers=1)
    threaded = build_cube(local_catalog, None, tmp_path / "b.zarr", chunk=16, workers=3)
    single = build_cube(local_catalog, None, tmp_path / "c.zarr", chunk=512)
    a = open_cube(serial).values
    np.testing.assert_array_equal(a, open_cube(threaded).values)
    c = open_cube(single).values
    # Same-CRS layers do not depend on the tiling at all; the reprojected one (temp) only up to
    # GDAL's approximate transformer.
    for i in (0, 2, 3):
        np.testing.assert_array_equal(a[i], c[i])
    np.testing.assert_allclose(a[1], c[1], atol=0.25)


def test_build_accepts_catalog_object_and_builtin_name(tmp_path: Path) -> None:
    cat = load_catalog("meuse")
    by_object = build_cube(cat, None, tmp_path / "obj.zarr")
    by_name = build_cube("meuse", cat.grid.to_grid(), tmp_path / "name.zarr")  # type: ignore[union-attr]
    np.testing.assert_array_equal(open_cube(by_object).values, open_cube(by_name).values)
    dist_raw, _, _ = read_tif(embedded_data_dir() / "meuse/meuse_grid_40m/dist.tif")
    dist = open_cube(by_name, bands=["dist"]).values[0]
    np.testing.assert_array_equal(dist[dist_raw != -9999], dist_raw[dist_raw != -9999])


def test_progress_bars_do_not_change_results(
    local_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOCMAP_PROGRESS", "1")
    quiet = build_cube(local_catalog, None, tmp_path / "q.zarr", chunk=32, progress=False)
    loud = build_cube(local_catalog, None, tmp_path / "l.zarr", chunk=32, progress=True)
    np.testing.assert_array_equal(open_cube(quiet).values, open_cube(loud).values)
    a = describe_cube(quiet, progress=True).bands["nodata_fraction"]
    b = describe_cube(quiet, progress=False).bands["nodata_fraction"]
    assert a.tolist() == b.tolist()


# ---------------------------------------------------------------------- open_cube
def test_open_cube_checks_the_grid(shared_cube: Path, utm_grid: Grid) -> None:
    t = utm_grid.transform
    noisy = Grid(utm_grid.crs, Affine(t.a, 0, t.c + 1e-9, 0, t.e, t.f), utm_grid.shape)
    assert open_cube(shared_cube, grid=noisy).sizes["x"] == utm_grid.width
    shifted = Grid(utm_grid.crs, Affine(t.a, 0, t.c + 30, 0, t.e, t.f), utm_grid.shape)
    with pytest.raises(GridMismatch, match="not on the expected grid: transform"):
        open_cube(shared_cube, grid=shifted)
    other_crs = Grid("EPSG:28355", t, utm_grid.shape)
    with pytest.raises(GridMismatch, match="CRS"):
        open_cube(shared_cube, grid=other_crs)
    with pytest.raises(GridMismatch, match="shape"):
        open_cube(shared_cube, grid=utm_grid.window(utm_grid.tiles(10).__next__().core))


def test_open_cube_selects_bands_and_realigns_attrs(shared_cube: Path) -> None:
    cube = open_cube(shared_cube, bands=["ndvi", "elev"])
    assert list(cube.band.values) == ["ndvi", "elev"]
    assert cube.attrs["band_names"] == ["ndvi", "elev"]
    assert cube.attrs["band_units"] == ["1", "m"]
    table = band_table(cube)
    assert table["name"].tolist() == ["ndvi", "elev"]
    assert table["kind"].tolist() == ["continuous", "continuous"]
    # Metadata is looked up by name, so a plain .sel on a full cube also works.
    full = open_cube(shared_cube)
    assert band_table(full.sel(band=["cover"]))["n_classes"].tolist() == [4]


def test_open_cube_unknown_band(shared_cube: Path) -> None:
    with pytest.raises(BandMismatch, match=r"lacks bands \['slope'\].*it has \['elev'"):
        open_cube(shared_cube, bands=["elev", "slope"])


def test_open_cube_band_requested_twice(shared_cube: Path) -> None:
    with pytest.raises(BandMismatch, match=r"\['elev'\] are requested twice"):
        open_cube(shared_cube, bands=["elev", "temp", "elev"])


def test_open_cube_missing_path(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match="does not exist"):
        open_cube(tmp_path / "nope.zarr")


def test_open_cube_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(RasterError, match="not a Zarr v3 store"):
        open_cube(tmp_path / "empty.zarr")


def test_open_cube_store_without_covariates(tmp_path: Path) -> None:
    ds = xr.Dataset({"soc": (("y", "x"), np.zeros((2, 3), dtype=np.float32))})
    ds.to_zarr(tmp_path / "other.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(RasterError, match=r"not a socmap cube: no 'covariates' array.*\['soc'\]"):
        open_cube(tmp_path / "other.zarr")


def test_open_cube_wrong_dimension_order(tmp_path: Path, utm_grid: Grid) -> None:
    data = np.zeros((utm_grid.height, utm_grid.width, 2), dtype=np.float32)
    arr = xr.DataArray(
        data,
        dims=("y", "x", "band"),
        coords={"y": utm_grid.ys, "x": utm_grid.xs, "band": np.array(["a", "b"], dtype=object)},
        name="covariates",
    ).rio.write_crs(utm_grid.crs)
    arr.to_dataset().to_zarr(tmp_path / "yxb.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(
        DimensionOrderError, match=r"\('y', 'x', 'band'\).*transpose\('band', 'y', 'x'\)"
    ):
        open_cube(tmp_path / "yxb.zarr")


def test_open_cube_without_crs(tmp_path: Path, utm_grid: Grid) -> None:
    arr = xr.DataArray(
        np.zeros((1, 2, 3), dtype=np.float32),
        dims=("band", "y", "x"),
        coords={"band": np.array(["a"], dtype=object), "y": [1.5, 0.5], "x": [0.5, 1.5, 2.5]},
        name="covariates",
    )
    arr.to_dataset().to_zarr(tmp_path / "nocrs.zarr", zarr_format=3, consolidated=False)
    with pytest.raises(CRSError, match="no CRS"):
        open_cube(tmp_path / "nocrs.zarr")


def test_band_table_needs_socmap_attrs(shared_cube: Path) -> None:
    cube = open_cube(shared_cube)
    cube.attrs = {}
    with pytest.raises(RasterError, match="band_names"):
        band_table(cube)


# ---------------------------------------------------------------------- describe
def test_describe_cube_counts_nodata(shared_cube: Path, utm_grid: Grid) -> None:
    info = describe_cube(shared_cube, progress=False)
    assert isinstance(info, CubeInfo)
    assert info.grid == utm_grid
    assert info.chunks == (4, 16, 16)
    assert info.dtype == "float32"
    n = utm_grid.height * utm_grid.width
    frac = dict(zip(info.bands["name"], info.bands["nodata_fraction"], strict=True))
    # 25 holes in elev; 10 holes of a 60 m layer are 2 x 2 blocks each on the 30 m grid.
    assert frac == pytest.approx({"elev": 25 / n, "temp": 0.0, "cover": 40 / n, "ndvi": 0.0})
    assert info.attrs["band_nodata_fraction"] == pytest.approx([25 / n, 0.0, 40 / n, 0.0])
    assert info.bands.columns.tolist() == [
        "name",
        "units",
        "kind",
        "group",
        "n_classes",
        "source",
        "stands_for",
        "nodata_fraction",
    ]
    # gaps are measured against the best-covered band (here complete), beyond a tolerance
    assert info.coverage_gaps() == {}
    assert info.coverage_gaps(0.005) == pytest.approx({"elev": 25 / n, "cover": 40 / n})
    assert info.coverage_gaps(0.006) == pytest.approx({"cover": 40 / n})
    text = info.to_text()
    for needle in ("EPSG:32755", "60 rows x 80 cols", "(4, 16, 16)", "elev", "cover", "0.83"):
        assert needle in text, needle


# ---------------------------------------------------------------------- bad input
def test_all_nan_layer_fails_and_leaves_nothing(
    make_raster: Any,
    make_catalog: Any,
    local_entries: list[dict[str, Any]],
    utm_grid: Grid,
    tmp_path: Path,
) -> None:
    empty = make_raster("empty", utm_grid, data=np.full(utm_grid.shape, -9999, np.float32))
    entries = [
        *local_entries,
        {"name": "empty", "source": str(empty), "units": "1", "kind": "continuous",
         "group": "other", "nodata": -9999},
    ]  # fmt: skip
    out = tmp_path / "out.zarr"
    with pytest.raises(
        RasterError, match=r"band\(s\) \['empty'\] have no valid pixel.*CRS.*nodata"
    ):
        build_cube(make_catalog(entries, utm_grid), None, out, chunk=16)
    assert_no_output(out)


def test_grid_that_misses_every_source_fails(local_catalog: Path, tmp_path: Path) -> None:
    far = Grid.from_bbox((200_000, 6_000_000, 201_000, 6_001_000), 100, "EPSG:32755")
    out = tmp_path / "far.zarr"
    with pytest.raises(RasterError, match=r"\['elev', 'temp', 'cover', 'ndvi'\]"):
        build_cube(local_catalog, far, out)
    assert_no_output(out)


def test_existing_output_is_kept_without_overwrite(local_catalog: Path, tmp_path: Path) -> None:
    cube_path = build_cube(local_catalog, None, tmp_path / "cube.zarr", chunk=16)
    before = open_cube(cube_path).attrs["created"]
    with pytest.raises(OutputExists, match=r"already exists.*overwrite=True"):
        build_cube(local_catalog, None, cube_path, chunk=16)
    assert open_cube(cube_path).attrs["created"] == before
    build_cube(local_catalog, None, cube_path, chunk=32, overwrite=True)
    assert open_cube(cube_path).attrs["chunk"] == 32
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_never_deletes_a_folder_socmap_did_not_write(
    local_catalog: Path, tmp_path: Path
) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.docx").write_text("years of work")
    with pytest.raises(OutputExists, match=r"not a socmap cube, so socmap will not replace it"):
        build_cube(local_catalog, None, mine, chunk=16, overwrite=True)
    assert (mine / "chapter1.docx").read_text() == "years of work"
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    assert is_socmap_cube(build_cube(local_catalog, None, empty, chunk=16))  # nothing to lose


def test_earth_engine_source_is_refused(
    make_catalog: Any, local_entries: list[dict[str, Any]], utm_grid: Grid, tmp_path: Path
) -> None:
    entries = [
        *local_entries,
        {"name": "ndwi", "source": "ee://COPERNICUS/S2_SR_HARMONIZED/ndwi", "units": "1",
         "kind": "continuous", "group": "spectral"},
    ]  # fmt: skip
    out = tmp_path / "ee.zarr"
    with pytest.raises(CatalogError, match=r"Earth Engine sources for \['ndwi'\].*socmap ee pull"):
        build_cube(make_catalog(entries, utm_grid), None, out)
    assert_no_output(out)


def test_no_grid_anywhere(
    make_catalog: Any, local_entries: list[dict[str, Any]], tmp_path: Path
) -> None:
    with pytest.raises(CatalogError, match="has no 'grid' and no grid was given"):
        build_cube(make_catalog(local_entries, None), None, tmp_path / "x.zarr")


def test_missing_source_fails_before_writing(
    make_catalog: Any, local_entries: list[dict[str, Any]], utm_grid: Grid, tmp_path: Path
) -> None:
    entries = [*local_entries[:1], {**local_entries[1], "source": str(tmp_path / "gone.tif")}]
    out = tmp_path / "m.zarr"
    with pytest.raises(InputNotFound, match=r"gone\.tif.*covariate 'temp'"):
        build_cube(make_catalog(entries, utm_grid), None, out)
    assert_no_output(out)


def test_source_without_crs_fails_before_writing(
    make_raster: Any,
    make_catalog: Any,
    local_entries: list[dict[str, Any]],
    utm_grid: Grid,
    tmp_path: Path,
) -> None:
    nocrs = make_raster("nocrs", utm_grid, crs=None)
    entries = [*local_entries, {**local_entries[0], "name": "raw", "source": str(nocrs)}]
    out = tmp_path / "n.zarr"
    with pytest.raises(CRSError, match=r"nocrs\.tif.*has no CRS.*write_crs"):
        build_cube(make_catalog(entries, utm_grid), None, out)
    assert_no_output(out)


def test_failure_inside_a_worker_leaves_nothing(
    local_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = LayerSource.read

    def flaky(self: LayerSource, grid: Grid) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 7:
            raise RasterError("simulated read failure")
        return original(self, grid)

    monkeypatch.setattr(LayerSource, "read", flaky)
    out = tmp_path / "w.zarr"
    with pytest.raises(RasterError, match="simulated"):
        build_cube(local_catalog, None, out, chunk=16, workers=2)
    assert_no_output(out)


def test_build_caps_gdal_block_cache_and_restores_it(
    local_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = get_gdal_config("GDAL_CACHEMAX")
    big = GDAL_CACHE_BYTES * 4
    seen: list[int] = []
    original = LayerSource.read

    def spy(self: LayerSource, grid: Grid) -> np.ndarray:
        seen.append(get_gdal_config("GDAL_CACHEMAX"))
        return original(self, grid)

    monkeypatch.setattr(LayerSource, "read", spy)
    set_gdal_config("GDAL_CACHEMAX", big)
    try:
        build_cube(local_catalog, None, tmp_path / "g.zarr", chunk=32)
        assert seen and set(seen) == {GDAL_CACHE_BYTES}
        assert get_gdal_config("GDAL_CACHEMAX") == big
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)


def test_invalid_chunk(local_catalog: Path, tmp_path: Path) -> None:
    # the same error class as the Earth Engine pull's (tests/test_ee_pull.py)
    for bad in (0, -4, 2.5, True):
        with pytest.raises(ConfigError, match=f"chunk {bad!r} must be a positive"):
            build_cube(local_catalog, None, tmp_path / "c.zarr", chunk=bad)
    assert not (tmp_path / "c.zarr").exists()


def test_unknown_kind_surfaces_as_catalog_error(
    make_catalog: Any, local_entries: list[dict[str, Any]], utm_grid: Grid, tmp_path: Path
) -> None:
    path = make_catalog([{**local_entries[0], "kind": "ordinal"}], utm_grid)
    with pytest.raises(CatalogError, match="kind"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="kind"):
        build_cube(path, None, tmp_path / "k.zarr")


def test_band_listed_twice(
    make_catalog: Any, local_entries: list[dict[str, Any]], utm_grid: Grid, tmp_path: Path
) -> None:
    path = make_catalog([local_entries[0], local_entries[1], local_entries[0]], utm_grid)
    with pytest.raises(BandMismatch, match="lists band 'elev' twice"):
        build_cube(path, None, tmp_path / "d.zarr")
    assert_no_output(tmp_path / "d.zarr")


def test_wrong_resampling_for_kind(
    make_catalog: Any, local_entries: list[dict[str, Any]], utm_grid: Grid, tmp_path: Path
) -> None:
    path = make_catalog([{**local_entries[2], "resampling": "bilinear"}], utm_grid)
    with pytest.raises(CatalogError, match=r"resampling 'bilinear' is not valid for a categorical"):
        build_cube(path, None, tmp_path / "r.zarr")


def test_unknown_class_codes_are_flagged_counted_and_masked(
    make_raster: Any, make_catalog: Any, utm_grid: Grid, tmp_path: Path
) -> None:
    codes = np.ones(utm_grid.shape, dtype=np.int16)
    codes[:3, :5] = 9  # 15 pixels with a code the catalog does not list
    path = make_raster("lc", utm_grid, data=codes, nodata=0)
    entry = {"name": "lc", "source": str(path), "units": "class", "kind": "categorical",
             "group": "land_cover", "classes": {1: "one", 2: "two"}}  # fmt: skip
    catalog = make_catalog([entry], utm_grid)
    with pytest.raises(CatalogError, match=r"class list: 'lc': 9 \(15 px\); add them.*nodata"):
        build_cube(catalog, None, tmp_path / "u.zarr", chunk=16)
    assert_no_output(tmp_path / "u.zarr")
    out = build_cube(catalog, None, tmp_path / "u.zarr", chunk=16, unknown_classes="nodata")
    cube = open_cube(out)
    values = cube.values[0]
    assert np.isnan(values[:3, :5]).all() and (values[3:] == 1).all()
    assert cube.attrs["band_unknown_class_pixels"] == [15]
    assert cube.attrs["band_unknown_classes"] == [{"9": 15}]
    with pytest.raises(CatalogError, match="unknown_classes 'drop'"):
        build_cube(catalog, None, tmp_path / "v.zarr", unknown_classes="drop")


# ---------------------------------------------------------------------- real data
def test_edgeroi_cube_matches_its_sources(tmp_path: Path) -> None:
    cat = load_catalog("edgeroi")
    out = build_cube(cat, None, tmp_path / "edgeroi.zarr")
    cube = open_cube(out, grid=cat.grid.to_grid())  # type: ignore[union-attr]
    assert cube.shape == (15, 321, 476)
    base = embedded_data_dir() / "edgeroi"

    # 100 m layers sit on the catalog grid: copied exactly.
    raw, _, nodata = read_tif(base / "covariates_100m/PCKGAD6.tif")
    gamma_k = cube.sel(band="gamma_k").values
    valid = raw != nodata
    np.testing.assert_array_equal(gamma_k[valid], raw[valid])
    assert np.isnan(gamma_k[~valid]).all()
    for row, col in [(0, 0), (10, 20), (160, 238), (320, 475)]:
        assert gamma_k[row, col] == raw[row, col] or not valid[row, col]

    # Categorical layers keep only the catalog's codes.
    for name in ("geology", "landuse"):
        values = cube.sel(band=name).values
        codes = set(cat[name].classes or {})
        assert set(np.unique(values[~np.isnan(values)]).astype(int).tolist()) <= codes
    lu_raw, _, _ = read_tif(base / "covariates_100m/LNUABS6.tif")
    landuse = cube.sel(band="landuse").values
    np.testing.assert_array_equal(landuse[lu_raw != 0], lu_raw[lu_raw != 0])

    # 250 m DEM, bilinear on the 100 m grid: within the source range, and equal to a hand-made
    # bilinear interpolation at a few pixels.
    dem_raw, dem_t, dem_nd = read_tif(base / "covariates_250m/DEMSRT5.tif")
    dem = cube.sel(band="dem").values
    ok = dem_raw[dem_raw != dem_nd]
    assert ok.min() <= np.nanmin(dem) and np.nanmax(dem) <= ok.max()
    grid = cube_grid(cube)
    for row, col in [(5, 7), (100, 200), (250, 400)]:
        x, y = grid.xs[col], grid.ys[row]
        c, r = ~dem_t @ (x, y)
        c0, r0 = int(np.floor(c - 0.5)), int(np.floor(r - 0.5))
        fc, fr = c - 0.5 - c0, r - 0.5 - r0
        q = dem_raw[r0 : r0 + 2, c0 : c0 + 2].astype(np.float64)
        expected = (
            q[0, 0] * (1 - fc) * (1 - fr)
            + q[0, 1] * fc * (1 - fr)
            + q[1, 0] * (1 - fc) * fr
            + q[1, 1] * fc * fr
        )
        assert dem[row, col] == pytest.approx(expected, rel=1e-4)

    # 90 m Landsat in EPSG:32755, averaged onto EPSG:28355: within the source range.
    b3_raw, _, b3_nd = read_tif(base / "covariates_90m_ithir/edgeroiCovariates_landsat_b3.tif")
    b3 = cube.sel(band="landsat_b3").values
    ok = b3_raw[b3_raw != b3_nd]
    assert ok.min() - 1e-3 <= np.nanmin(b3) and np.nanmax(b3) <= ok.max() + 1e-3
    assert np.isfinite(b3).mean() > 0.9

    info = describe_cube(out, progress=False)
    frac = dict(zip(info.bands["name"], info.bands["nodata_fraction"], strict=True))
    assert frac["gamma_k"] == pytest.approx((~valid).mean())


def test_global_layers_on_a_cropped_grid_are_exact(tmp_path: Path) -> None:
    cat = load_catalog("global_10arcmin")
    world = cat.grid.to_grid()  # type: ignore[union-attr]
    australia = world.crop((112.0, -44.0, 154.0, -10.0))
    out = build_cube(cat, australia, tmp_path / "aus.zarr", chunk=128)
    cube = open_cube(out, grid=australia)
    raw, t, nd = read_tif(
        embedded_data_dir() / "global_covariates_10arcmin/etopo5_elevation_10m.tif"
    )
    col0, row0 = (round(v) for v in ~t @ (australia.bounds[0], australia.bounds[3]))
    window = raw[row0 : row0 + australia.height, col0 : col0 + australia.width]
    elev = cube.sel(band="etopo_elev_m").values
    np.testing.assert_array_equal(elev[window != nd], window[window != nd])
    cover = cube.sel(band="glcnmo_cover").values
    assert set(np.unique(cover[~np.isnan(cover)]).astype(int)) <= set(
        cat["glcnmo_cover"].classes or {}
    )
    direct = read_layer(
        cat["tree_cover_pct"], cat["tree_cover_pct"].resolve_source(cat.base_dir), australia
    )
    np.testing.assert_array_equal(cube.sel(band="tree_cover_pct").values, direct)


def test_a_mistyped_resolution_is_refused_before_any_work(
    local_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from affine import Affine

    huge = Grid("EPSG:32755", Affine(1.0, 0, 5e5, 0, -1.0, 7e6), (10_000_000, 10_000_000))
    with pytest.raises(GridMismatch, match=r"10,000,000 x 10,000,000 .*SOCMAP_MAX_PIXELS"):
        build_cube(local_catalog, huge, tmp_path / "huge.zarr")
    assert_no_output(tmp_path / "huge.zarr")
    small = cube_grid(open_cube(build_cube(local_catalog, None, tmp_path / "ok.zarr")))
    monkeypatch.setenv("SOCMAP_MAX_PIXELS", str(small.height * small.width - 1))
    with pytest.raises(GridMismatch, match="above the limit"):
        build_cube(local_catalog, None, tmp_path / "limited.zarr")
    monkeypatch.setenv("SOCMAP_MAX_PIXELS", "lots")
    with pytest.raises(GridMismatch, match="SOCMAP_MAX_PIXELS 'lots'"):
        build_cube(local_catalog, None, tmp_path / "limited.zarr")


def test_complex_rasters_are_refused_not_cast(
    make_raster: Any, make_catalog: Any, utm_grid: Grid, tmp_path: Path
) -> None:
    values = np.ones(utm_grid.shape, dtype=np.complex64) * (1 + 2j)
    path = make_raster("sar", utm_grid, data=values, nodata=None)
    entry = {"name": "sar", "source": str(path), "units": "1", "kind": "continuous",
             "group": "radar"}  # fmt: skip
    with pytest.raises(RasterError, match=r"holds complex64 values.*abs\(A\)"):
        build_cube(make_catalog([entry], utm_grid), None, tmp_path / "c.zarr")
    assert_no_output(tmp_path / "c.zarr")

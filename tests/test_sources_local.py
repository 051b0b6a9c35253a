from __future__ import annotations

import concurrent.futures as cf
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socmap.catalog import CovariateSpec, load_catalog
from socmap.errors import CatalogError, CRSError, InputNotFound, RasterError
from socmap.grid import Grid, Window
from socmap.sources import local
from socmap.sources.local import LayerSource, read_layer, source_checksum


def spec(**kw: Any) -> CovariateSpec:
    base: dict[str, Any] = {
        "name": "x",
        "source": "x.tif",
        "units": "1",
        "kind": "continuous",
        "group": "other",
    }
    base.update(kw)
    return CovariateSpec(**base)


def source_values(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band)


# ---------------------------------------------------------------------- checksum
def test_source_checksum_matches_hashlib_and_streams(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(300_000)
    p = tmp_path / "blob.bin"
    p.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert source_checksum(p) == expected
    assert source_checksum(p, block_size=4097) == expected


def test_source_checksum_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match="does not exist"):
        source_checksum(tmp_path / "nope.tif")


# ---------------------------------------------------------------------- values
def test_aligned_layer_is_copied_exactly_with_nodata_as_nan(
    local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    raw = source_values(local_layers["elev"])
    out = read_layer(spec(nodata=-9999, resampling="bilinear"), local_layers["elev"], utm_grid)
    assert out.dtype == np.float32 and out.shape == utm_grid.shape
    holes = raw == -9999
    assert holes.sum() == 25
    np.testing.assert_array_equal(np.isnan(out), holes)
    np.testing.assert_array_equal(out[~holes], raw[~holes])


def test_raster_nodata_used_when_spec_has_none(
    local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    out = read_layer(spec(), local_layers["elev"], utm_grid)
    assert np.isnan(out).sum() == 25


def test_spec_nodata_overrides_raster_nodata(make_raster: Any, utm_grid: Grid) -> None:
    data = np.arange(utm_grid.height * utm_grid.width, dtype=np.float32).reshape(utm_grid.shape)
    path = make_raster("ovr", utm_grid, data=data, nodata=-1.0)
    out = read_layer(spec(nodata=5.0), path, utm_grid)
    assert np.isnan(out).sum() == 1 and np.isnan(out.reshape(-1)[5])


def test_scale_and_offset_are_applied(local_layers: dict[str, Path], utm_grid: Grid) -> None:
    raw = source_values(local_layers["ndvi"]).astype(np.float64)
    out = read_layer(
        spec(scale=1e-4, offset=0.5, resampling="average"), local_layers["ndvi"], utm_grid
    )
    np.testing.assert_allclose(out, raw * 1e-4 + 0.5, rtol=1e-6)


def test_reprojected_bilinear_stays_within_source_range(
    local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    raw = source_values(local_layers["temp"])
    out = read_layer(spec(resampling="bilinear"), local_layers["temp"], utm_grid)
    assert not np.isnan(out).any()
    assert raw.min() - 1e-4 <= out.min() and out.max() <= raw.max() + 1e-4
    # A smooth field resampled at ~the same resolution keeps most of its variance.
    assert out.std() > 0.5 * raw.std()


def test_reprojected_value_matches_bilinear_by_hand(make_raster: Any, utm_grid: Grid) -> None:
    # A plane in lon/lat is reproduced exactly by bilinear interpolation.
    src_grid = Grid("EPSG:4326", Affine(0.001, 0.0, 149.69, 0.0, -0.001, -30.13), (40, 50))
    lon, lat = np.meshgrid(src_grid.xs, src_grid.ys)
    plane = (1000 * (lon - 149.69) + 3000 * (lat + 30.13)).astype(np.float64)
    path = make_raster("plane", src_grid, data=plane)
    out = read_layer(spec(), path, utm_grid)
    from pyproj import Transformer

    xs, ys = np.meshgrid(utm_grid.xs, utm_grid.ys)
    lo, la = Transformer.from_crs(utm_grid.crs, "EPSG:4326", always_xy=True).transform(xs, ys)
    expected = 1000 * (lo - 149.69) + 3000 * (la + 30.13)
    # GDAL's approximate transformer allows 1/8 source pixel of position error.
    assert np.nanmax(np.abs(out - expected)) < 0.125 * 3.0 + 1e-3
    assert np.isnan(out).sum() == 0


def test_categorical_mode_keeps_only_source_codes(
    local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    raw = source_values(local_layers["cover"])
    codes = {1: "a", 2: "b", 3: "c", 4: "d"}
    out = read_layer(
        spec(kind="categorical", classes=codes, resampling="mode", units="class"),
        local_layers["cover"],
        utm_grid,
    )
    values = set(np.unique(out[~np.isnan(out)]).tolist())
    assert values <= {1.0, 2.0, 3.0, 4.0}
    # 60 m source on a 30 m grid: every source pixel becomes a 2 x 2 block.
    expected = np.repeat(np.repeat(raw, 2, axis=0), 2, axis=1).astype(np.float32)
    expected[expected == 0] = np.nan
    np.testing.assert_array_equal(out, expected)


def test_average_downsampling_is_the_block_mean(make_raster: Any) -> None:
    fine = Grid("EPSG:32755", Affine(10.0, 0.0, 760_000.0, 0.0, -10.0, 6_662_000.0), (40, 40))
    coarse = Grid("EPSG:32755", Affine(40.0, 0.0, 760_000.0, 0.0, -40.0, 6_662_000.0), (10, 10))
    data = np.random.default_rng(7).random(fine.shape).astype(np.float32)
    path = make_raster("fine", fine, data=data)
    out = read_layer(spec(resampling="average"), path, coarse)
    expected = data.reshape(10, 4, 10, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_grid_outside_the_source_is_all_nan(local_layers: dict[str, Path]) -> None:
    far = Grid.from_bbox((200_000, 6_000_000, 201_000, 6_001_000), 100, "EPSG:32755")
    out = read_layer(spec(), local_layers["elev"], far)
    assert out.shape == far.shape and np.isnan(out).all()


def test_band_by_index_and_by_description(make_raster: Any, utm_grid: Grid) -> None:
    data = np.stack([np.full(utm_grid.shape, 1.0), np.full(utm_grid.shape, 2.0)]).astype(np.float32)
    path = make_raster("two", utm_grid, data=data, descriptions=["first", "second"])
    assert np.all(read_layer(spec(band=2), path, utm_grid) == 2.0)
    assert np.all(read_layer(spec(band="first"), path, utm_grid) == 1.0)


# ---------------------------------------------------------------------- tiling
def test_tiles_reassemble_the_full_read(local_layers: dict[str, Path], utm_grid: Grid) -> None:
    specs = {
        "elev": spec(nodata=-9999),
        "cover": spec(kind="categorical", classes=[1, 2, 3, 4], resampling="mode", units="c"),
        "ndvi": spec(resampling="average"),
    }
    for name, sp in specs.items():
        with LayerSource(sp, local_layers[name]) as src:
            full = src.read(utm_grid)
            tiled = np.full(utm_grid.shape, -1.0, dtype=np.float32)
            for tile in utm_grid.tiles(17):
                tiled[tile.core.slices] = src.read(tile.grid)
        np.testing.assert_array_equal(tiled, full, err_msg=name)


def test_sliver_tiles_match_the_full_read(
    make_raster: Any, local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    # GDAL estimates the resampling scale per call from the window sizes; for a 1-pixel sliver
    # that estimate is off (upsampling looks like downsampling) and the kernel changes. The
    # explicit local scale keeps slivers consistent with the full read.
    with LayerSource(spec(), local_layers["temp"]) as src:
        full = src.read(utm_grid)
        for size in ((utm_grid.height, 1), (1, utm_grid.width)):
            for tile in utm_grid.tiles(size):
                np.testing.assert_allclose(src.read(tile.grid), full[tile.core.slices], atol=0.05)
    # In one CRS the scale is exact, so slivers match bit for bit (7.5 m -> 30 m here).
    fine = Grid("EPSG:32755", Affine(7.5, 0.0, 760_020.0, 0.0, -7.5, 6_662_010.0), (48, 64))
    coarse = Grid("EPSG:32755", Affine(30.0, 0.0, 760_020.0, 0.0, -30.0, 6_662_010.0), (12, 16))
    rng = np.random.default_rng(11)
    path = make_raster("noisy", fine, data=rng.normal(0, 1, fine.shape).astype(np.float32))
    for method in ("bilinear", "cubic", "average"):
        with LayerSource(spec(resampling=method), path) as src:
            full = src.read(coarse)
            for tile in coarse.tiles((1, 8)):
                np.testing.assert_array_equal(src.read(tile.grid), full[tile.core.slices], method)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_reprojected_window_matches_full_read(
    data: st.DataObject, local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    r0 = data.draw(st.integers(0, utm_grid.height - 1))
    c0 = data.draw(st.integers(0, utm_grid.width - 1))
    r1 = data.draw(st.integers(r0 + 1, utm_grid.height))
    c1 = data.draw(st.integers(c0 + 1, utm_grid.width))
    with LayerSource(spec(), local_layers["temp"]) as src:
        full = src.read(utm_grid)
        part = src.read(utm_grid.window(Window(r0, r1, c0, c1)))
    # Equal up to GDAL's approximate transformer (at most 1/8 source pixel of position; the
    # field changes < 9 units per source pixel; observed differences are ~0.01, even for
    # 1-pixel slivers).
    np.testing.assert_allclose(part, full[r0:r1, c0:c1], atol=0.1)


def test_large_source_windows_are_split(monkeypatch: pytest.MonkeyPatch, make_raster: Any) -> None:
    fine = Grid("EPSG:32755", Affine(10.0, 0.0, 760_000.0, 0.0, -10.0, 6_662_000.0), (64, 64))
    coarse = Grid("EPSG:32755", Affine(80.0, 0.0, 760_000.0, 0.0, -80.0, 6_662_000.0), (8, 8))
    data = np.random.default_rng(3).random(fine.shape).astype(np.float32)
    path = make_raster("split", fine, data=data)
    whole = read_layer(spec(resampling="average"), path, coarse)
    calls: list[int] = []
    original = LayerSource._read_split

    def counting(self: LayerSource, grid: Grid) -> np.ndarray:
        calls.append(grid.height * grid.width)
        return original(self, grid)

    monkeypatch.setattr(local, "MAX_SOURCE_PIXELS", 500)
    monkeypatch.setattr(LayerSource, "_read_split", counting)
    split = read_layer(spec(resampling="average"), path, coarse)
    assert calls, "the split path was not taken"
    np.testing.assert_allclose(split, whole, rtol=1e-6)


# rasterio's in-memory warp datasets can warn spuriously under threads (see cube.build_cube).
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_reads_from_threads_match_serial(local_layers: dict[str, Path], utm_grid: Grid) -> None:
    tiles = list(utm_grid.tiles(16))
    with LayerSource(spec(), local_layers["temp"]) as src:
        serial = [src.read(t.grid) for t in tiles]
        with cf.ThreadPoolExecutor(4) as pool:
            threaded = list(pool.map(lambda t: src.read(t.grid), tiles))
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_embedded_meuse_layer_is_read_unchanged() -> None:
    cat = load_catalog("meuse")
    grid = cat.grid.to_grid()  # type: ignore[union-attr]
    sp = cat["dist"]
    path = sp.resolve_source(cat.base_dir)
    raw = source_values(path)
    out = read_layer(sp, path, grid)
    valid = raw != -9999
    np.testing.assert_array_equal(out[valid], raw[valid])
    assert np.isnan(out[~valid]).all()


# ---------------------------------------------------------------------- bad input
def test_missing_file_raises_input_not_found(tmp_path: Path, utm_grid: Grid) -> None:
    with pytest.raises(InputNotFound, match=r"'x'.*does not exist"):
        read_layer(spec(), tmp_path / "missing.tif", utm_grid)


def test_raster_without_crs_raises_crs_error(make_raster: Any, utm_grid: Grid) -> None:
    path = make_raster("nocrs", utm_grid, crs=None)
    with pytest.raises(CRSError, match=r"no CRS.*(rio\.write_crs|gdal_edit)") as err:
        read_layer(spec(), path, utm_grid)
    assert "nocrs.tif" in str(err.value) and "\n" not in str(err.value)


def test_band_out_of_range_raises_raster_error(
    local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    with pytest.raises(RasterError, match=r"band 3 is out of range.*1 band"):
        read_layer(spec(band=3), local_layers["elev"], utm_grid)


def test_unknown_band_description_raises_raster_error(
    local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    with pytest.raises(RasterError, match=r"band 'red' is not a band description"):
        read_layer(spec(band="red"), local_layers["elev"], utm_grid)


def test_unreadable_file_raises_raster_error(tmp_path: Path, utm_grid: Grid) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_text("this is not a GeoTIFF")
    with pytest.raises(RasterError, match=r"cannot read .*bad\.tif.* as a raster") as err:
        read_layer(spec(), bad, utm_grid)
    assert "\n" not in str(err.value)


def test_unknown_resampling_raises_catalog_error(
    local_layers: dict[str, Path], utm_grid: Grid
) -> None:
    # Bypass catalog validation to reach the reader's own guard.
    sp = spec().model_copy(update={"resampling": "lanczos"})
    with pytest.raises(CatalogError, match="lanczos"):
        read_layer(sp, local_layers["elev"], utm_grid)

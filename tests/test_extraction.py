import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Transformer

from socmap.cube import build_cube, cube_grid, open_cube
from socmap.errors import BandMismatch, ProfileValidationError
from socmap.extraction import extract, write_table


@pytest.fixture(scope="module")
def cube(shared_local_catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("extract") / "cube.zarr"
    return open_cube(build_cube(shared_local_catalog, None, out, progress=False))


@pytest.fixture(scope="module")
def values(cube):
    return cube.to_numpy()


def _sites(grid, rows, cols, crs=None):
    xs = grid.transform.c + grid.transform.a * (np.asarray(cols) + 0.5)
    ys = grid.transform.f + grid.transform.e * (np.asarray(rows) + 0.5)
    return pd.DataFrame(
        {"site_id": [f"s{i}" for i in range(len(xs))], "x": xs, "y": ys, "crs": crs or grid.crs}
    )


@settings(deadline=None, max_examples=25)
@given(data=st.data())
def test_pixel_centres_return_pixel_values_exactly(cube, values, data):
    grid = cube_grid(cube)
    n = data.draw(st.integers(1, 15))
    rows = data.draw(st.lists(st.integers(0, grid.height - 1), min_size=n, max_size=n))
    cols = data.draw(st.lists(st.integers(0, grid.width - 1), min_size=n, max_size=n))
    sites = _sites(grid, rows, cols)
    expected = values[:, rows, cols].T
    for method in ("nearest", "bilinear"):
        got = extract(cube, sites, method=method).table[list(cube.band.values)].to_numpy()
        np.testing.assert_array_equal(got, expected.astype("float32"))


def test_bilinear_interpolates_between_centres_and_categorical_stays_nearest(cube, values):
    grid = cube_grid(cube)
    r, c = 10, 20
    x = grid.transform.c + grid.transform.a * (c + 1.0)  # halfway between centres c and c+1
    y = grid.transform.f + grid.transform.e * (r + 0.75)  # a quarter of the way to row r+1
    sites = pd.DataFrame({"site_id": ["a"], "x": [x], "y": [y], "crs": [grid.crs]})
    got = extract(cube, sites, method="bilinear").table.iloc[0]
    bands = list(cube.band.values)
    e = bands.index("elev")
    block = values[e, r : r + 2, c : c + 2].astype(float)
    if np.isfinite(block).all():
        expected = 0.75 * block[0].mean() + 0.25 * block[1].mean()
        assert got["elev"] == pytest.approx(expected, rel=1e-6)
    k = bands.index("cover")
    assert got["cover"] == values[k, r, c + 1] or np.isnan(values[k, r, c + 1])
    assert got["cover"] in (1, 2, 3, 4) or np.isnan(got["cover"])


def test_sites_in_another_crs_are_reprojected(cube, values):
    grid = cube_grid(cube)
    rows, cols = [5, 30, 59], [3, 40, 79]
    local = _sites(grid, rows, cols)
    tr = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(local["x"].to_numpy(), local["y"].to_numpy())
    geo = local.assign(x=lon, y=lat, crs="EPSG:4326")
    got = extract(cube, geo).table[list(cube.band.values)].to_numpy()
    np.testing.assert_array_equal(got, values[:, rows, cols].T.astype("float32"))


def test_every_row_comes_back_with_a_status(cube, values):
    grid = cube_grid(cube)
    e = list(cube.band.values).index("elev")
    holes = np.argwhere(np.isnan(values[e]))
    hr, hc = holes[0]
    sites = pd.concat(
        [
            _sites(grid, [0, 1], [0, 1]),
            _sites(grid, [hr], [hc]).assign(site_id="hole"),
            pd.DataFrame({"site_id": ["far"], "x": [0.0], "y": [0.0], "crs": [grid.crs]}),
            pd.DataFrame({"site_id": ["nan"], "x": [np.nan], "y": [1.0], "crs": [grid.crs]}),
        ],
        ignore_index=True,
    )
    # two horizons per site: values are joined to both
    horizons = pd.concat([sites.assign(top_cm=0.0), sites.assign(top_cm=10.0)], ignore_index=True)
    res = extract(cube, horizons)
    assert len(res.table) == len(horizons)
    assert list(res.table["top_cm"]) == list(horizons["top_cm"])
    status = res.table.drop_duplicates("site_id").set_index("site_id")["extract_status"]
    assert status["far"] == "outside_grid"
    assert status["nan"] == "missing_coordinates"
    assert status["hole"] in ("partial_nodata", "nodata")
    summary = res.summary
    assert sum(summary.values()) == sites["site_id"].nunique()
    assert summary["outside_grid"] == 1 and summary["missing_coordinates"] == 1
    assert res.table.loc[res.table["site_id"] == "far", "elev"].isna().all()


def test_bad_input(cube):
    grid = cube_grid(cube)
    good = _sites(grid, [1], [1])
    with pytest.raises(ProfileValidationError, match=r"lacks columns \['crs'\]"):
        extract(cube, good.drop(columns="crs"))
    with pytest.raises(ProfileValidationError, match="empty"):
        extract(cube, good.iloc[:0])
    with pytest.raises(BandMismatch, match="lacks bands"):
        extract(cube, good, bands=["nope"])
    with pytest.raises(BandMismatch, match="clash"):
        extract(cube, good.assign(elev=1.0))
    with pytest.raises(ProfileValidationError, match="no CRS"):
        extract(cube, good.assign(crs=None))
    two = _sites(grid, [1, 3], [1, 3]).assign(site_id="s0")  # one id at two places
    with pytest.raises(ProfileValidationError, match=r"site_id 's0' is at 2 places .*own site_id"):
        extract(cube, two)
    same = pd.concat([good, good.assign(top_cm=30)])  # two layers of one site: one place
    assert len(extract(cube, same).table) == 2


def test_write_table_round_trip(tmp_path, cube):
    grid = cube_grid(cube)
    table = extract(cube, _sites(grid, [1, 2], [3, 4])).table
    for name in ("t.parquet", "t.csv"):
        path = write_table(table, tmp_path / name)
        back = pd.read_parquet(path) if name.endswith("parquet") else pd.read_csv(path)
        assert list(back.columns) == list(table.columns)
        assert len(back) == 2


@pytest.mark.slow
def test_global_cube_matches_independently_extracted_site_covariates(tmp_path):
    """The staged global site table was sampled from the same 10' rasters by other code."""
    from socmap.catalog import load_catalog
    from socmap.profiles import read_global_covariates_at_sites

    catalog = load_catalog("global_10arcmin")
    cube = open_cube(build_cube(catalog, None, tmp_path / "g.zarr", progress=False))
    ref = read_global_covariates_at_sites()
    bands = catalog.band_names
    got = extract(cube, ref.drop(columns=bands)).table
    assert len(got) == len(ref)
    # Sites exactly on a pixel edge may fall either side depending on the sampler's rounding.
    on_edge = np.isclose((ref["x"] * 6) % 1, 0) | np.isclose((ref["y"] * 6) % 1, 0)
    inner = ~np.asarray(on_edge)
    assert inner.sum() > 0.9 * len(ref)  # legacy coordinates are often rounded to 1/6 degree
    for band in bands:
        a = got[band].to_numpy(dtype=float)[inner]
        b = ref[band].to_numpy(dtype=float)[inner]
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=band)

import math

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.errors import CRSError, GridMismatch, InputNotFound
from socmap.grid import Grid, Window, normalise_crs


def test_from_bbox_shape_bounds_and_anchor():
    g = Grid.from_bbox((741410, 6646000, 789000, 6678100), 100, "EPSG:28355")
    assert g.shape == (321, 476)
    assert g.bounds == (741400.0, 6646000.0, 789000.0, 6678100.0)
    assert g.crs == "EPSG:28355"
    unanchored = Grid.from_bbox((741410, 6646000, 789000, 6678100), 100, 28355, anchor=False)
    assert unanchored.transform.c == 741410


def test_pixel_centres():
    g = Grid.from_bbox((0, 0, 30, 20), 10, "EPSG:32755")
    np.testing.assert_allclose(g.xs, [5, 15, 25])
    np.testing.assert_allclose(g.ys, [15, 5])
    r, c = g.rowcol(15, 5)
    assert (float(r), float(c)) == (1.5, 1.5)


def test_equality_tolerates_float_noise_only():
    g = Grid.from_bbox((0, 0, 1000, 1000), 10, "EPSG:32755")
    noisy = Grid(g.crs, Affine(10 + 1e-12, 0, 1e-9, 0, -10, 1000 - 1e-9), g.shape)
    assert noisy == g
    assert hash(noisy) == hash(g)
    g.check_same(noisy)
    shifted = Grid(g.crs, g.transform @ Affine.translation(0.5, 0), g.shape)
    assert shifted != g
    with pytest.raises(GridMismatch, match="transform"):
        g.check_same(shifted, "cube")
    with pytest.raises(GridMismatch, match="CRS"):
        g.check_same(Grid("EPSG:32756", g.transform, g.shape))
    with pytest.raises(GridMismatch, match="shape"):
        g.check_same(Grid(g.crs, g.transform, (99, 100)))


def test_crop_aligns_to_parent_pixels():
    g = Grid.from_bbox((0, 0, 100, 100), 10, "EPSG:32755")
    c = g.crop((12, 31, 47, 58))
    assert c.bounds == (10.0, 30.0, 50.0, 60.0)
    assert c.resolution == g.resolution
    with pytest.raises(GridMismatch, match="does not intersect"):
        g.crop((200, 200, 300, 300))


@settings(deadline=None, max_examples=60)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    size=st.integers(2, 25),
    halo=st.integers(0, 5),
)
def test_tiles_partition_the_grid(h, w, size, halo):
    g = Grid("EPSG:4326", Affine(0.5, 0, 10, 0, -0.5, 50), (h, w))
    cover = np.zeros((h, w), dtype=int)
    tiles = list(g.tiles(size, halo))
    assert len(tiles) == math.ceil(h / size) * math.ceil(w / size)
    for t in tiles:
        cover[t.core.slices] += 1
        # the outer grid is the parent window, halo clipped at the edges
        assert t.grid == g.window(t.outer)
        assert t.outer.row0 == max(0, t.core.row0 - halo)
        assert t.outer.col1 == min(w, t.core.col1 + halo)
        block = np.arange(h * w).reshape(h, w)[t.outer.slices]
        np.testing.assert_array_equal(
            block[t.core_in_outer], np.arange(h * w).reshape(h, w)[t.core.slices]
        )
    assert (cover == 1).all()


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0.1, 1000))
def test_dict_round_trip(x0, y0, res):
    g = Grid("EPSG:3577", Affine(res, 0, x0, 0, -res, y0), (7, 9))
    assert Grid.from_dict(g.to_dict()) == g


def test_bad_grids():
    with pytest.raises(CRSError, match="needs one"):
        Grid(None, Affine(1, 0, 0, 0, -1, 0), (2, 2))  # type: ignore[arg-type]
    with pytest.raises(CRSError, match="cannot parse"):
        normalise_crs("EPSG:not-a-code")
    with pytest.raises(GridMismatch, match="north-up"):
        Grid("EPSG:4326", Affine(1, 0, 0, 0, 1, 0), (2, 2))
    with pytest.raises(GridMismatch, match="rotated"):
        Grid("EPSG:4326", Affine(1, 0.1, 0, 0, -1, 0), (2, 2))
    with pytest.raises(GridMismatch, match="empty or inverted"):
        Grid.from_bbox((10, 0, 0, 10), 1, "EPSG:4326")
    with pytest.raises(GridMismatch, match="positive"):
        Grid.from_bbox((0, 0, 10, 10), -1, "EPSG:4326")
    with pytest.raises(GridMismatch, match="outside grid"):
        Grid.from_bbox((0, 0, 10, 10), 1, "EPSG:4326").window(Window(0, 11, 0, 5))
    with pytest.raises(GridMismatch, match="lacks"):
        Grid.from_dict({"crs": "EPSG:4326"})
    with pytest.raises(InputNotFound, match="does not exist"):
        Grid.from_raster("/nonexistent/raster.tif")


def test_from_raster_reads_embedded_grid():
    from socmap.catalog import embedded_data_dir

    g = Grid.from_raster(embedded_data_dir() / "edgeroi/covariates_100m/MVBSRT6.tif")
    assert g.shape == (321, 476)
    assert g.crs == "EPSG:28355"


@pytest.mark.parametrize(("crs", "kind"), [("EPSG:4978", "geocentric"), ("EPSG:5703", "vertical")])
def test_a_crs_that_is_no_map_is_refused(crs: str, kind: str) -> None:
    with pytest.raises(CRSError, match=rf"{crs}' is {kind}"):
        normalise_crs(crs)
    assert normalise_crs("EPSG:7405") == "EPSG:7405"  # British grid with heights: a map

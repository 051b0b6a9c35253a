"""Earth Engine request tiling: every request under computePixels' limits, grid covered once."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st

from socmap.errors import ConfigError
from socmap.grid import Grid
from socmap.sources.earthengine import (
    MAX_DIMENSION,
    REQUEST_LIMIT_BYTES,
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

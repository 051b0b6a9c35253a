"""Batched reading and writing of wide spectra tables (socmap.spectra._tables)."""

import gzip

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socmap.errors import SpectraError
from socmap.spectra import Spectra, read_spectra
from socmap.spectra import _tables as tables
from socmap.spectra.preprocess import regular_axis, resample


def _table(n: int, bands: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.uniform(0.1, 0.9, (n, bands)), columns=[f"wl_{400 + 2 * b}" for b in range(bands)]
    )
    frame.insert(0, "sample_id", [f"s{i}" for i in range(n)])
    frame["soc_g_kg"] = rng.uniform(1, 50, n)
    return frame


@pytest.fixture
def small_batches(monkeypatch):
    """CSV batches of 4 rows, Parquet reads of 3 columns of a 4-row row group."""
    monkeypatch.setattr(tables, "BATCH_ROWS", 4)
    monkeypatch.setattr(tables, "READ_BYTES", 3 * 8 * 4)


def _write(frame: pd.DataFrame, path) -> None:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False, row_group_size=4)  # row groups of 4, 4 and 2
    else:
        frame.to_csv(path, index=False)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_bands_read_in_batches_equal_a_whole_read(tmp_path, small_batches, suffix):
    frame = _table(10)
    path = tmp_path / f"t{suffix}"
    _write(frame, path)
    bands = list(reversed([c for c in frame.columns if c.startswith("wl_")]))  # order as given
    values, meta = tables.read_bands(path, bands, ["sample_id", "soc_g_kg"])
    np.testing.assert_allclose(values, frame[bands].to_numpy(), rtol=1e-15)
    pd.testing.assert_frame_equal(meta, frame[["sample_id", "soc_g_kg"]])


def test_line_count_bounds_the_rows_of_plain_and_gzipped_csv(tmp_path):
    text = "a,b\n1,2\n3,4"  # no newline at the end
    (tmp_path / "t.csv").write_text(text)
    with gzip.open(tmp_path / "t.csv.gz", "wt") as fh:
        fh.write(text + "\n\n")  # a blank line: the bound may exceed the rows, never undercut
    assert tables._csv_row_bound(tmp_path / "t.csv") == 3
    assert tables._csv_row_bound(tmp_path / "t.csv.gz") == 4
    values, _ = tables.read_bands(tmp_path / "t.csv.gz", ["a", "b"], [])
    assert values.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_meta_types_that_differ_between_batches_are_read_as_one_column(tmp_path, small_batches):
    frame = _table(10)
    frame["plot"] = ["1", "2", "3", "4", "5", "6", "7", "8", "A9", "B10"]  # numbers, then text
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    _, meta = tables.read_bands(path, ["wl_400", "wl_402"], ["plot"])
    assert meta["plot"].map(type).nunique() == 1
    assert meta["plot"].astype(str).tolist() == frame["plot"].tolist()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_band_that_is_not_a_number_is_named_with_its_value(tmp_path, small_batches, suffix):
    frame = _table(10)
    frame["wl_404"] = frame["wl_404"].astype(str)  # a text column, as a lab export writes it
    frame.loc[7, "wl_404"] = "n.d."
    path = tmp_path / f"t{suffix}"
    _write(frame, path)
    with pytest.raises(SpectraError, match=r"'wl_404'.*'n\.d\.'.*not a number"):
        read_spectra(path)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=0, max_size=40), st.integers(1, 7))
def test_compact_rows_equals_boolean_indexing(keep, batch):
    values = np.arange(len(keep) * 3, dtype=np.float64).reshape(-1, 3)
    mask = np.asarray(keep, dtype=bool)
    expected = values[mask]
    old, tables.BATCH_ROWS = tables.BATCH_ROWS, batch
    try:
        got = tables.compact_rows(values, mask)
    finally:
        tables.BATCH_ROWS = old
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_spectra_write_round_trips_through_read_spectra(tmp_path, small_batches, suffix):
    frame = _table(10)
    frame.loc[3, "plot"] = "x"  # all-None in the other batches: one schema for every batch
    spectra = read_spectra(frame)
    path = spectra.write(tmp_path / f"lib{suffix}")
    back = read_spectra(path)
    np.testing.assert_array_equal(back.values, spectra.values)
    assert back.meta["sample_id"].tolist() == spectra.meta["sample_id"].tolist()
    assert back.meta["plot"].tolist()[3] == "x"
    assert not list(tmp_path.glob(".tmp*"))  # written through a temporary file, then renamed


def test_nan_drop_and_interpolate_do_not_touch_the_callers_frame():
    frame = _table(6)
    frame.loc[2, "wl_404"] = np.nan
    before = frame.copy()
    dropped = read_spectra(frame, nan="drop")
    filled = read_spectra(frame, nan="interpolate")
    assert dropped.n_samples == 5 and "s2" not in dropped.meta["sample_id"].tolist()
    assert filled.values[2, 2] == pytest.approx(
        (frame.loc[2, "wl_402"] + frame.loc[2, "wl_406"]) / 2
    )
    pd.testing.assert_frame_equal(frame, before)


def test_resample_in_row_batches_equals_one_batch(monkeypatch):
    rng = np.random.default_rng(1)
    spectra = Spectra(
        rng.uniform(0.1, 0.9, (10, 200)), np.arange(400.0, 800.0, 2.0), "nm", "reflectance"
    )
    axis = regular_axis(410.0, 780.0, 10.0)  # wider than the source: band averages
    whole = resample(spectra, axis).values
    monkeypatch.setattr("socmap.spectra.preprocess.BATCH_ROWS", 3)
    np.testing.assert_array_equal(resample(spectra, axis).values, whole)

"""Spectra tables: reading, validation, conversions the user is told about."""

import numpy as np
import pandas as pd
import pytest

from socmap.errors import BandMismatch, InputNotFound, SpectraError
from socmap.spectra import Spectra, check_same_axis, read_spectra, spectral_columns
from socmap.spectra.datasets import SITES, load_limesoda, load_nirsoil, spectral_sites


def _table(values, axis, prefix="wl_", **meta):
    frame = pd.DataFrame(np.asarray(values, float), columns=[f"{prefix}{a:g}" for a in axis])
    for k, v in meta.items():
        frame.insert(0, k, v)
    return frame


def test_columns_are_found_sorted_and_the_rest_is_meta():
    axis = np.arange(1000.0, 1020.0)
    frame = _table(np.full((3, 20), 0.4), axis[::-1], soc=[1.0, 2.0, 3.0], x_1=[0, 0, 0])
    s = read_spectra(frame)
    assert s.unit == "nm" and s.quantity == "reflectance"
    np.testing.assert_array_equal(s.axis, axis)  # stored increasing
    assert list(s.meta.columns) == ["sample_id", "x_1", "soc"]
    assert s.notes == ()


def test_percent_reflectance_is_converted_and_noted(tmp_path):
    axis = np.arange(400.0, 420.0)
    path = tmp_path / "s.csv"
    _table(np.linspace(5, 60, 40).reshape(2, 20), axis).to_csv(path, index=False)
    s = read_spectra(path)
    assert s.values.max() == pytest.approx(0.6)
    assert any("percent" in n for n in s.notes)


def test_wavenumbers_are_recognised_and_stored_increasing():
    axis = np.linspace(3800, 600, 50)
    s = read_spectra(_table(np.full((2, 50), 0.5), axis, prefix="wn_"))
    assert s.unit == "cm-1" and s.axis[0] == pytest.approx(600)


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        (np.full((2, 20), 1.2), {"percent": False}, "reflectance must be in"),
        (np.full((2, 20), -0.1), {}, "reflectance must be in"),
        (np.full((2, 20), 0.0), {}, "reflectance must be in"),
        (np.where(np.eye(2, 20) > 0, np.nan, 0.5), {}, "NaN"),
    ],
)
def test_bad_values_are_refused_with_the_sample_and_the_fix(values, kwargs, message):
    with pytest.raises(SpectraError, match=message) as err:
        read_spectra(_table(values, np.arange(400.0, 420.0)), **kwargs)
    assert "sample 0" in str(err.value)


def test_nan_policies_interpolate_or_drop_and_count():
    v = np.tile(np.linspace(0.2, 0.4, 20), (3, 1))
    v[1, 5] = np.nan
    frame = _table(v, np.arange(400.0, 420.0))
    filled = read_spectra(frame, nan="interpolate")
    assert filled.values[1, 5] == pytest.approx(v[0, 5])
    assert "interpolated 1 NaN values in 1 spectra" in filled.notes[0]
    dropped = read_spectra(frame, nan="drop")
    assert dropped.n_samples == 2 and list(dropped.meta["sample_id"]) == [0, 2]
    assert "dropped 1 spectra" in dropped.notes[0]


def test_structural_problems_are_clear_errors(tmp_path):
    with pytest.raises(SpectraError, match="spectral columns"):
        read_spectra(pd.DataFrame({"a": [1], "b_1": [2]}))
    dup = pd.DataFrame({str(w): [0.5] for w in range(400, 420)})
    dup["400.0"] = 0.5  # the same wavelength spelt another way
    with pytest.raises(SpectraError, match="more than one column"):
        read_spectra(dup, prefix="")
    with pytest.raises(InputNotFound):
        read_spectra(tmp_path / "nope.csv")
    with pytest.raises(SpectraError, match="crop"):
        read_spectra(_table(np.full((1, 20), 0.5), np.arange(400.0, 420.0)), crop=(0, 10))


def test_mismatched_axes_are_refused_with_the_fix():
    a = Spectra(np.full((1, 3), 0.5), np.array([1.0, 2.0, 3.0]), "nm", "reflectance")
    b = Spectra(np.full((1, 3), 0.5), np.array([1.0, 2.0, 4.0]), "nm", "reflectance")
    check_same_axis(a, a)
    with pytest.raises(BandMismatch, match="resample"):
        check_same_axis(a, b)


def test_spectral_columns_picks_the_most_common_prefix():
    cols = ["x_1", "y_2"] + [f"wn_{w}" for w in range(600, 620)]
    assert spectral_columns(cols) == ([f"wn_{w}" for w in range(600, 620)], "wn_")


def test_embedded_library_and_sites_load_with_units_converted():
    lib = load_nirsoil()
    assert lib.quantity == "absorbance" and lib.n_samples == 732
    assert 172 <= lib.target().max() < 173  # 17.2 % in the README
    for name in SITES:
        s = load_limesoda(name)
        assert s.quantity == "reflectance" and s.values.max() <= 1.5
        if SITES[name].has_soc:
            assert np.isfinite(s.target()).all()
        else:
            assert np.isnan(s.target()).all() and "soc_g_dm3" in s.meta
    som = load_limesoda("SL.125")
    raw = pd.read_csv(
        __import__("socmap.spectra.datasets", fromlist=["_data_dir"])._data_dir()
        / "limesoda/SL.125.csv.gz"
    )["SOM_target"]
    np.testing.assert_allclose(som.target(), raw / 1.724 * 10)
    assert "SSP.58" not in spectral_sites() and len(spectral_sites("MIR")) == 4


def test_subset_and_to_frame_round_trip():
    s = load_limesoda("O.32").subset([3, 1])
    again = read_spectra(s.to_frame(), quantity="reflectance", percent=False, max_reflectance=1.5)
    np.testing.assert_allclose(again.values, s.values)
    np.testing.assert_allclose(again.axis, s.axis)
    assert list(again.meta["sample_id"]) == ["O.32:3", "O.32:1"]


def test_a_repeated_wavelength_column_is_refused_not_read_as_another_band(tmp_path):
    header = ",".join(["sample_id", *(str(w) for w in range(400, 424, 2)), "480", "480"])
    rows = ",".join(["a", *["0.5"] * 14])
    (tmp_path / "s.csv").write_text(f"{header}\n{rows}\n")
    with pytest.raises(SpectraError, match=r"repeats the column\(s\) \['480'\].*'480\.1'"):
        read_spectra(tmp_path / "s.csv")


def test_drift_note_only_where_reflectance_exceeds_one():
    """A MIR site is noted only when some band is above 1, with the number of such bands."""
    from socmap.spectra.datasets import load_limesoda, spectral_sites

    for name in spectral_sites("MIR"):
        s = load_limesoda(name)
        above = int((s.values > 1).any(axis=0).sum())
        text = "; ".join(s.notes)
        if above:
            assert (
                f"{name}: DRIFT reflectance relative to the reference exceeds 1 at {above} "
                "bands (accepted up to 1.5)"
            ) in text
        else:
            assert "exceeds 1" not in text
    assert any(not (load_limesoda(n).values > 1).any() for n in spectral_sites("MIR"))

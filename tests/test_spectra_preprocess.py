"""Spectral preprocessing: SNV, absorbance, resampling, Savitzky-Golay, the chain."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from socmap.errors import BandMismatch, ConfigError, SpectraError
from socmap.spectra import (
    Preprocess,
    Spectra,
    common_axis,
    regular_axis,
    resample,
    savgol,
    snv,
    to_absorbance,
)


def _spectra(values, axis=None, quantity="absorbance"):
    values = np.atleast_2d(np.asarray(values, float))
    axis = np.arange(values.shape[1], dtype=float) + 400 if axis is None else axis
    return Spectra(values, axis, "nm", quantity)


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(3, 40)),
        elements=st.floats(-5, 5, allow_nan=False),
    )
)
def test_snv_gives_zero_mean_and_unit_sd_per_spectrum(values):
    values = values + np.linspace(0, 1, values.shape[1])  # never constant
    out = snv(_spectra(values)).values
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-9)
    np.testing.assert_allclose(out.std(axis=1, ddof=1), 1, rtol=1e-9)


def test_snv_refuses_a_constant_spectrum():
    with pytest.raises(SpectraError, match="constant"):
        snv(_spectra([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]))


def test_absorbance_is_log10_of_inverse_reflectance():
    s = _spectra([[0.5, 0.1, 0.01]], quantity="reflectance")
    a = to_absorbance(s)
    np.testing.assert_allclose(a.values, np.log10(1 / np.array([[0.5, 0.1, 0.01]])))
    assert a.quantity == "absorbance" and to_absorbance(a) is a


def test_resampling_a_line_is_exact_and_coarsening_averages():
    axis = np.arange(400.0, 501.0)  # 1 nm
    line = _spectra(2.0 * axis + 1, axis)
    half = regular_axis(400.5, 499.5, 0.5)  # finer than the source: interpolation
    np.testing.assert_allclose(resample(line, half).values[0], 2.0 * half + 1)
    coarse = resample(line, regular_axis(410, 490, 10))  # means of a line = the line
    np.testing.assert_allclose(coarse.values[0], 2.0 * regular_axis(410, 490, 10) + 1)
    # a narrow spike is averaged over the 10 nm band, not sampled or missed
    spike = np.zeros_like(axis)
    spike[53] = 1.0  # at 453 nm
    out = resample(_spectra(spike, axis), regular_axis(410, 490, 10))
    assert out.values[0, 4] == pytest.approx(0.1)  # band 450: [445, 455], triangle area 1
    assert out.values.sum() == pytest.approx(0.1)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([2.0, 5.0, 10.0, 20.0]))
def test_coarsening_preserves_the_integral(seed, step):
    rng = np.random.default_rng(seed)
    axis = np.arange(1000.0, 1201.0)
    values = rng.normal(size=(2, axis.size)).cumsum(axis=1)
    target = regular_axis(1000 + step / 2, 1200 - step / 2, step)
    out = resample(_spectra(values, axis), target).values
    lo, hi = target[0] - step / 2, target[-1] + step / 2
    keep = (axis >= lo) & (axis <= hi)
    exact = np.trapezoid(values[:, keep], axis[keep], axis=1)
    np.testing.assert_allclose(out.sum(axis=1) * step, exact, rtol=1e-9, atol=1e-9)


def test_resampling_outside_the_measured_range_is_refused():
    s = _spectra(np.ones((1, 11)), np.arange(1100.0, 1111.0))
    with pytest.raises(BandMismatch, match="beyond the measured"):
        resample(s, np.array([1095.0, 1105.0]))


def test_common_axis_is_the_shared_range_on_the_step():
    a = _spectra(np.ones((1, 3)), np.array([350.0, 1000.0, 2500.0]))
    b = _spectra(np.ones((1, 3)), np.array([1100.0, 1800.0, 2498.0]))
    ax = common_axis(a, b, step=10)
    assert ax[0] == 1100 and ax[-1] == 2490 and ax.size == 140
    mir = Spectra(np.ones((1, 3)), np.array([600.0, 2000.0, 4000.0]), "cm-1", "absorbance")
    with pytest.raises(BandMismatch, match="different axes"):
        common_axis(a, mir, step=10)
    c = _spectra(np.ones((1, 2)), np.array([3000.0, 3100.0]))
    with pytest.raises(BandMismatch, match="share less"):
        common_axis(a, c, step=10)


def test_savgol_derivative_of_a_parabola():
    axis = np.arange(0.0, 50.0, 0.5)
    s = _spectra(axis**2, axis)
    d1 = savgol(s, window=7, polyorder=2, deriv=1).values[0]
    np.testing.assert_allclose(d1, 2 * axis, atol=1e-8)
    with pytest.raises(ConfigError):
        savgol(s, window=4)
    irregular = _spectra([[1.0, 2.0, 3.0, 5.0, 6.0]], np.array([1.0, 2.0, 3.0, 5.0, 6.0]))
    with pytest.raises(SpectraError, match="regular axis"):
        savgol(irregular, window=3, polyorder=1)


def test_preprocess_chain_records_its_steps_and_refuses_other_units():
    axis = np.arange(1000.0, 1300.0)
    rng = np.random.default_rng(0)
    refl = _spectra(rng.uniform(0.2, 0.6, size=(4, axis.size)), axis, quantity="reflectance")
    chain = Preprocess(1100, 1200, 5, savgol_window=5)
    out = chain.apply(refl)
    assert out.n_bands == 21 and out.quantity == "absorbance"
    assert [n.split()[0] for n in out.notes] == ["resampled", "absorbance", "Savitzky-Golay", "SNV"]
    np.testing.assert_allclose(out.values.mean(axis=1), 0, atol=1e-12)
    assert Preprocess.from_dict(chain.to_dict()) == chain
    with pytest.raises(BandMismatch, match="same technique"):
        Preprocess(1100, 1200, 5, unit="cm-1").apply(refl)

"""Spectral preprocessing: common grids, absorbance, SNV and Savitzky-Golay derivatives.

Every function takes and returns a :class:`~socmap.spectra.Spectra` and appends what it did to
``notes``. :class:`Preprocess` chains them in the order of Shen et al. (2022): resample onto a
common grid, reflectance to absorbance ``log10(1/R)``, optional Savitzky-Golay smoothing or
derivative, then SNV; it is a plain record, so a model can store how its inputs were made.

Resampling onto a coarser grid averages: each output band is the mean of the piecewise-linear
source spectrum over the output band's width (an exact integral, no aliasing of narrow
features); onto a grid as fine as the source or finer it interpolates linearly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.signal import savgol_filter

from socmap.errors import BandMismatch, ConfigError, SpectraError
from socmap.spectra._spectra import Spectra, _label
from socmap.spectra._tables import BATCH_ROWS

__all__ = [
    "Preprocess",
    "common_axis",
    "regular_axis",
    "resample",
    "savgol",
    "snv",
    "to_absorbance",
]


def regular_axis(start: float, stop: float, step: float) -> np.ndarray:
    """``start, start + step, ...`` up to ``stop`` (included when it falls on the grid).

    Examples
    --------
    >>> regular_axis(1100, 1130, 10).tolist()
    [1100.0, 1110.0, 1120.0, 1130.0]
    """
    if not (step > 0 and stop > start):
        raise ConfigError(
            f"need stop > start and step > 0 (CLI: --step), got {(start, stop, step)!r}"
        )
    n = int(np.floor((stop - start) / step + 1e-9)) + 1
    return start + step * np.arange(n, dtype=np.float64)


def common_axis(*spectra: Spectra, step: float) -> np.ndarray:
    """Return a regular grid of ``step`` over the range all ``spectra`` cover.

    The grid starts at the first multiple of ``step`` inside the shared range.

    Raises
    ------
    BandMismatch
        Units differ, or the ranges do not overlap.
    """
    units = {s.unit for s in spectra}
    if len(units) != 1:
        raise BandMismatch(
            f"spectra are on different axes {sorted(units)!r}: vis-NIR (nm) and MIR (cm-1) "
            "spectra cannot share a grid; use a library of the same technique"
        )
    lo = max(float(s.axis[0]) for s in spectra)
    hi = min(float(s.axis[-1]) for s in spectra)
    start = np.ceil(lo / step - 1e-9) * step
    if hi - start < step:
        ranges = [(float(s.axis[0]), float(s.axis[-1])) for s in spectra]
        raise BandMismatch(
            f"the spectral ranges {ranges!r} {units.pop()} share less than one step of {step!r}; "
            "these spectra cannot be compared"
        )
    return regular_axis(start, hi, step)


def _cumulative_integral(axis: np.ndarray, values: np.ndarray) -> np.ndarray:
    steps = np.diff(axis) * 0.5 * (values[:, 1:] + values[:, :-1])
    return np.concatenate([np.zeros((len(values), 1)), np.cumsum(steps, axis=1)], axis=1)


def _integral_at(
    axis: np.ndarray, values: np.ndarray, cum: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """Integral of the piecewise-linear spectra from ``axis[0]`` to each ``x`` (inside)."""
    i = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, axis.size - 2)
    dx = x - axis[i]
    slope = (values[:, i + 1] - values[:, i]) / (axis[i + 1] - axis[i])
    return cum[:, i] + values[:, i] * dx + 0.5 * slope * dx**2


def resample(spectra: Spectra, axis: np.ndarray) -> Spectra:
    """Resample onto ``axis`` (increasing, inside the spectra's range).

    Parameters
    ----------
    spectra
        The spectra.
    axis
        Target band centres, in the spectra's unit. Where the target spacing is wider than
        the source spacing, each band is the mean over ``[centre - h/2, centre + h/2]`` (``h``
        the local target spacing, clipped to the source range); elsewhere linear interpolation.

    Raises
    ------
    BandMismatch
        The target axis reaches beyond the measured range.

    Examples
    --------
    >>> s = Spectra(np.array([[0.1, 0.2, 0.3, 0.4, 0.5]]), np.arange(5.0) + 400, "nm",
    ...             "reflectance")
    >>> resample(s, np.array([401.0, 403.0])).values.round(3).tolist()
    [[0.2, 0.4]]
    """
    target = np.asarray(axis, dtype=np.float64)
    src = spectra.axis
    if target.ndim != 1 or target.size < 2 or not np.all(np.diff(target) > 0):
        raise ConfigError(f"target axis must be increasing with >= 2 bands, got {target!r}")
    tol = 1e-9 * max(1.0, abs(src[-1]))
    if target[0] < src[0] - tol or target[-1] > src[-1] + tol:
        raise BandMismatch(
            f"target axis {target[0]:g}-{target[-1]:g} {spectra.unit} reaches beyond the measured "
            f"{src[0]:g}-{src[-1]:g} {spectra.unit}; use common_axis() to stay inside"
        )
    v = spectra.values
    spacing = np.gradient(target)
    src_spacing = np.interp(target, src, np.gradient(src))
    average = spacing > src_spacing * (1 + 1e-9)
    out = np.empty((spectra.n_samples, target.size))
    lo = np.clip(target[average] - spacing[average] / 2, src[0], src[-1])
    hi = np.clip(target[average] + spacing[average] / 2, src[0], src[-1])
    for start in range(0, len(v), BATCH_ROWS):  # row batches: temporaries stay one batch big
        rows, part = slice(start, start + BATCH_ROWS), v[start : start + BATCH_ROWS]
        if (~average).any():
            t = target[~average]
            out[rows, ~average] = np.stack([np.interp(t, src, row) for row in part])
        if average.any():
            cum = _cumulative_integral(src, part)
            top, bottom = _integral_at(src, part, cum, hi), _integral_at(src, part, cum, lo)
            out[rows, average] = (top - bottom) / (hi - lo)
    note = (
        f"resampled {spectra.n_bands} bands ({src[0]:g}-{src[-1]:g}) onto {target.size} bands "
        f"({target[0]:g}-{target[-1]:g} {spectra.unit})"
    )
    return spectra.replace(out, target, note=note)


def to_absorbance(spectra: Spectra) -> Spectra:
    """Reflectance ``R`` to absorbance ``log10(1 / R)``; absorbance passes through unchanged.

    Examples
    --------
    >>> s = Spectra(np.full((1, 2), 0.1), np.array([1.0, 2.0]), "nm", "reflectance")
    >>> to_absorbance(s).values.tolist()
    [[1.0, 1.0]]
    """
    if spectra.quantity == "absorbance":
        return spectra
    return spectra.replace(
        -np.log10(spectra.values), quantity="absorbance", note="absorbance = log10(1/R)"
    )


def snv(spectra: Spectra) -> Spectra:
    """Apply the standard normal variate: each spectrum minus its mean, over its sd.

    The standard deviation is the sample one (``ddof=1``), as in prospectr's
    ``standardNormalVariate``.

    Raises
    ------
    SpectraError
        A spectrum is constant (its standard deviation is 0).
    """
    v = spectra.values
    sd = v.std(axis=1, ddof=1, keepdims=True)
    flat = sd.ravel() <= 0
    if flat.any():
        raise SpectraError(
            f"{int(flat.sum())!r} spectra are constant (first sample "
            f"{_label(spectra.meta, int(np.argmax(flat)))!r}); SNV needs some "
            "variation: check the instrument output or drop them"
        )
    return spectra.replace((v - v.mean(axis=1, keepdims=True)) / sd, note="SNV")


def savgol(spectra: Spectra, window: int = 11, polyorder: int = 2, deriv: int = 0) -> Spectra:
    """Savitzky-Golay smoothing (``deriv=0``) or derivative along a regular axis.

    Parameters
    ----------
    window
        Odd window length in bands.
    polyorder
        Polynomial order, below ``window``.
    deriv
        Derivative order (per axis unit: the step is taken into account).

    Raises
    ------
    SpectraError
        The axis is not regular (resample first).
    ConfigError
        Bad window, order or derivative.
    """
    step = np.diff(spectra.axis)
    if not np.allclose(step, step[0], rtol=1e-6):
        raise SpectraError(
            "Savitzky-Golay needs a regular axis; resample onto regular_axis(...) first"
        )
    if not (window % 2 == 1 and 0 <= polyorder < window <= spectra.n_bands and deriv >= 0):
        raise ConfigError(
            f"need an odd window <= {spectra.n_bands} bands, 0 <= polyorder < window and "
            f"deriv >= 0; got window={window!r}, polyorder={polyorder!r}, deriv={deriv!r}"
        )
    out = savgol_filter(
        spectra.values, window, polyorder, deriv=deriv, delta=float(step[0]), axis=1
    )
    return spectra.replace(
        out, note=f"Savitzky-Golay window {window}, order {polyorder}, derivative {deriv}"
    )


@dataclass(frozen=True)
class Preprocess:
    """The preprocessing chain of a spectral model.

    Parameters
    ----------
    start, stop, step
        The common grid (in the spectra's unit).
    unit
        ``"nm"`` or ``"cm-1"``.
    absorbance
        Convert reflectance to absorbance.
    savgol_window, savgol_polyorder, savgol_deriv
        Savitzky-Golay filter; ``savgol_window = 0`` skips it.
    snv
        Apply SNV last.

    Examples
    --------
    >>> p = Preprocess(1100, 2490, 10)
    >>> Preprocess.from_dict(p.to_dict()) == p, p.axis.size
    (True, 140)
    """

    start: float
    stop: float
    step: float
    unit: str = "nm"
    absorbance: bool = True
    savgol_window: int = 0
    savgol_polyorder: int = 2
    savgol_deriv: int = 0
    snv: bool = True

    @property
    def axis(self) -> np.ndarray:
        """The common grid."""
        return regular_axis(self.start, self.stop, self.step)

    def apply(self, spectra: Spectra) -> Spectra:
        """Run the chain on ``spectra``.

        Raises
        ------
        BandMismatch
            The spectra are on another unit or do not cover the grid.
        """
        if spectra.unit != self.unit:
            raise BandMismatch(
                f"spectra are in {spectra.unit!r} but the model's grid is in {self.unit!r}; "
                "use spectra of the same technique as the model"
            )
        out = resample(spectra, self.axis)
        if self.absorbance:
            out = to_absorbance(out)
        if self.savgol_window:
            out = savgol(out, self.savgol_window, self.savgol_polyorder, self.savgol_deriv)
        return snv(out) if self.snv else out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocess:
        """Rebuild from :meth:`to_dict`."""
        return cls(**data)

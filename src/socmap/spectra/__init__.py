"""Soil spectra: I/O, preprocessing, sample selection, spectral models and transfer.

The spectral branch estimates a site's SOC from its vis-NIR or MIR spectra with the help of a
large spectral library (Shen et al. 2022): :func:`read_spectra` reads a table into a
:class:`Spectra` (:func:`read_ossl` a library in the OSSL layout);
:mod:`socmap.spectra.preprocess` puts spectra on a common grid as SNV
absorbance; :mod:`socmap.spectra.select` chooses the samples for the lab (Kennard-Stone);
:mod:`socmap.spectra.cnn` is the 1D-CNN; :mod:`socmap.spectra.benchmark` runs the local /
global / DTL-I / DTL-R / DTL-IR comparison.
"""

from socmap.spectra._spectra import (
    Spectra,
    check_same_axis,
    concat,
    read_spectra,
    spectral_columns,
)
from socmap.spectra.ossl import read_ossl
from socmap.spectra.preprocess import (
    Preprocess,
    common_axis,
    regular_axis,
    resample,
    savgol,
    snv,
    to_absorbance,
)
from socmap.spectra.select import kennard_stone, kmeans_select

__all__ = [
    "Preprocess",
    "Spectra",
    "check_same_axis",
    "common_axis",
    "concat",
    "kennard_stone",
    "kmeans_select",
    "read_ossl",
    "read_spectra",
    "regular_axis",
    "resample",
    "savgol",
    "snv",
    "spectral_columns",
    "to_absorbance",
]

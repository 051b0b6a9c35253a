"""Units and constants socmap computes with, defined once.

SOC is in g/kg, bulk density in g/cm³, coarse fragments a volume fraction, depth in cm and
stocks in t C/ha (= Mg C/ha); :mod:`socmap.stocks` converts between them. The names here
are the ones several modules share, so that a value cannot drift between two copies.
"""

from __future__ import annotations

from statistics import NormalDist

__all__ = ["BD_RANGE", "CO2_PER_C", "MAX_MC_PASSES", "MAX_SEED", "STATS", "Z90", "Z95"]

#: Mass of CO₂ per mass of carbon (molar masses 44 and 12).
CO2_PER_C = 44.0 / 12.0
#: Physical range of fine-earth bulk density, g/cm³ (the profile QC range; 2.65 is quartz).
#: Given BD outside it is an error; drawn BD is clipped into it.
BD_RANGE: tuple[float, float] = (0.05, 2.65)
#: Statistics of a map per pixel and layer, in the order of the ``stat`` dimension of the
#: SOC and stock stores (and of :func:`socmap.stocks.summarise`).
STATS: tuple[str, ...] = ("mean", "sd", "q05", "q50", "q95")
#: Standard normal quantiles of the two-sided 90 % and 95 % intervals.
Z90 = NormalDist().inv_cdf(0.95)
Z95 = NormalDist().inv_cdf(0.975)
#: Most Monte Carlo dropout passes a map takes: at 1024 passes the Monte Carlo error of a
#: pixel's sd is about 2 % (1 / sqrt(2 T)), while memory grows with passes x batch.
MAX_MC_PASSES = 1024

#: Largest seed every random step takes (numpy's legacy RandomState and scikit-learn's
#: random_state stop at 2**32 - 1; a larger --seed was an internal error after the first
#: write).
MAX_SEED = 2**32 - 1

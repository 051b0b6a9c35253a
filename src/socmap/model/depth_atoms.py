"""Depth-consistent predictions: any interval is a thickness-weighted mean of depth atoms.

A network conditioned on the depth interval can answer a 0-30 cm question on its own terms,
and nothing makes that answer agree with its 0-5, 5-15 and 15-30 cm answers: trained on the
GlobalSoilMap intervals only, it extrapolates in thickness and can put 0-30 cm below all
three. socmap therefore fixes a set of **depth atoms**, the elementary intervals between the
depth limits the model was trained on, and defines the SOC profile as constant within each
atom. An interval's SOC (g/kg) is then the thickness-weighted mean of its atoms' SOC::

    soc(top, bottom) = sum_a w_a * soc_a,   w_a = overlap(a, [top, bottom]) / (bottom - top)

which is additive in depth by construction: 0-30 cm is exactly the thickness-weighted mean of
0-5, 5-15 and 15-30 cm (mass per unit bulk density is conserved), and any split of an interval
averages back to it. Above the first atom and below the last, the profile continues the
nearest atom. Predictions are combined in g/kg, not in log space, because thickness-weighted
means of concentrations are what a depth interval's sample measures.

The variance of the composed log1p SOC is approximated by the weighted mean of the atoms'
variances (atoms fully correlated), which is conservative.
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import ArrayLike

from socmap.errors import ConfigError

__all__ = ["MAX_LOG", "Atoms", "atom_weights", "atoms_from_intervals", "compose_log"]

#: Depth atoms: ``((top_cm, bottom_cm), ...)``, contiguous and increasing.
Atoms = tuple[tuple[float, float], ...]

#: Largest log1p SOC passed through ``expm1`` (about 22,000 g/kg; guards overflow).
MAX_LOG = 10.0


def atoms_from_intervals(tops: ArrayLike, bottoms: ArrayLike) -> Atoms:
    """Elementary intervals between every distinct depth limit of ``(tops, bottoms)``.

    Examples
    --------
    >>> atoms_from_intervals([0, 0, 30], [30, 5, 60])
    ((0.0, 5.0), (5.0, 30.0), (30.0, 60.0))
    """
    t = np.asarray(tops, dtype=float)
    b = np.asarray(bottoms, dtype=float)
    ok = np.isfinite(t) & np.isfinite(b) & (b > t) & (t >= 0)
    if not ok.any():
        raise ConfigError("no valid depth interval (0 <= top_cm < bottom_cm) to build atoms from")
    limits = np.unique(np.round(np.concatenate([t[ok], b[ok]]), 6))
    return tuple((float(a), float(z)) for a, z in itertools.pairwise(limits))


def atom_weights(top: np.ndarray, bottom: np.ndarray, atoms: Atoms) -> np.ndarray:
    """``(N, A)`` thickness weights of each atom in each interval; rows sum to 1.

    The first atom extends upwards to 0 cm and the last one downwards without limit, so an
    interval outside the atoms takes the nearest atom's value.

    Examples
    --------
    >>> atoms = ((0.0, 5.0), (5.0, 15.0), (15.0, 30.0))
    >>> atom_weights(np.array([0.0, 10.0, 20.0]), np.array([30.0, 15.0, 60.0]), atoms).round(3)
    array([[0.167, 0.333, 0.5  ],
           [0.   , 1.   , 0.   ],
           [0.   , 0.   , 1.   ]])
    """
    if not atoms:
        raise ConfigError("atom_weights needs at least one depth atom")
    edges = np.array(atoms, dtype=float)
    lo = edges[:, 0].copy()
    hi = edges[:, 1].copy()
    lo[0], hi[-1] = -np.inf, np.inf  # continue the end atoms beyond the trained depths
    t = np.asarray(top, dtype=float)[:, None]
    b = np.asarray(bottom, dtype=float)[:, None]
    overlap = np.clip(np.minimum(b, hi[None]) - np.maximum(t, lo[None]), 0.0, None)
    thickness = (b - t)[:, 0]
    if not (np.all(np.isfinite(thickness)) and np.all(thickness > 0)):
        i = int(np.flatnonzero(~(thickness > 0))[0])
        raise ConfigError(
            f"interval {float(t[i, 0])!r}-{float(b[i, 0])!r} cm has no thickness; "
            "need top_cm < bottom_cm"
        )
    return np.asarray(overlap / thickness[:, None], dtype=np.float64)


def compose_log(
    atom_mean: np.ndarray, atom_var: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Compose log1p SOC of intervals from their atoms' log1p SOC.

    Parameters
    ----------
    atom_mean, atom_var
        ``(..., A)`` mean and variance of log1p SOC at each atom.
    weights
        ``(..., A)`` thickness weights (:func:`atom_weights`), broadcast against the means.

    Returns
    -------
    mean, var
        ``log1p(sum_a w_a expm1(mean_a))`` and ``sum_a w_a var_a``.

    Examples
    --------
    >>> m = np.log1p(np.array([[20.0, 10.0]]))
    >>> mean, var = compose_log(m, np.array([[0.1, 0.3]]), np.array([[0.25, 0.75]]))
    >>> round(float(np.expm1(mean)[0]), 6), round(float(var[0]), 6)
    (12.5, 0.25)
    """
    soc = np.expm1(np.minimum(atom_mean, MAX_LOG))
    mean = np.log1p(np.sum(weights * soc, axis=-1))
    var = np.sum(weights * atom_var, axis=-1)
    return mean, var

"""RS-LOCAL: choose the library samples that best predict a small local set.

Lobsey et al. (2017) and Shen et al. (2022) select, from a large library, the ``k`` samples
whose models predict the local samples best, by repeated random resampling:

1. every iteration, the active library is shuffled ``b`` times and cut into subsets of
   ``k`` samples, so each sample is drawn exactly ``b`` times;
2. a PLS regression is fitted on each subset and scored on the local samples: ``response``
   mode scores the RMSE of its predictions of the local targets; ``reconstruction`` mode the
   RMSE with which the subset's PLS components rebuild the local predictors (no local
   targets needed);
3. each library sample gets the mean score of the subsets it was in;
4. the worst ``1 - retain`` share is dropped (at least one sample, never below ``k``);

until ``k`` samples remain. The result is deterministic for a seed. The cost is about
``b * N / (k * (1 - retain))`` PLS fits for a library of ``N``, so pre-filter very large
libraries (e.g. to the nearest ``10 k`` samples) before calling :func:`rs_local`.

References
----------
Lobsey, C.R. et al. (2017) rs-local data-mines information from spectral libraries to
improve local calibrations. Eur. J. Soil Sci. 68:840-852.
Shen, Z. et al. (2022) Deep transfer learning of global spectra for local soil carbon
monitoring. ISPRS J. Photogramm. Remote Sens. 188:190-200.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.cross_decomposition import PLSRegression

from socmap._progress import track
from socmap.errors import ConfigError

__all__ = ["rs_local"]

Mode = Literal["response", "reconstruction"]


def _score(
    X: np.ndarray,
    y: np.ndarray,
    X_local: np.ndarray,
    y_local: np.ndarray | None,
    n_components: int,
    mode: Mode,
) -> float:
    nc = max(1, min(n_components, X.shape[0] - 1, X.shape[1]))
    pls = PLSRegression(n_components=nc, scale=True)
    with warnings.catch_warnings():
        # constant columns or targets within a small subset are expected; PLS copes and the
        # subset simply scores badly
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        pls.fit(X, y)
        if mode == "response":
            assert y_local is not None
            pred = np.asarray(pls.predict(X_local)).ravel()
            return float(np.sqrt(np.mean((pred - y_local) ** 2)))
        std = X.std(axis=0, ddof=1)
        scaled = (X_local - X.mean(axis=0)) / np.where(std > 0, std, 1.0)  # as PLS scales
        rebuilt = scaled @ pls.x_rotations_ @ pls.x_loadings_.T
    return float(np.sqrt(np.mean((scaled - rebuilt) ** 2)))


def rs_local(
    X_library: npt.ArrayLike,
    y_library: npt.ArrayLike,
    X_local: npt.ArrayLike,
    y_local: npt.ArrayLike | None = None,
    *,
    k: int,
    b: int = 10,
    retain: float = 0.95,
    n_components: int = 5,
    mode: Mode = "response",
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Select the ``k`` library samples that best predict the local set (RS-LOCAL).

    Parameters
    ----------
    X_library, y_library
        Library predictors ``(N, p)`` and targets ``(N,)``, without NaN.
    X_local, y_local
        Local predictors ``(m, p)`` and (``response`` mode) targets ``(m,)``.
    k
        Number of library samples to keep (also the subset size).
    b
        Draws of each sample per iteration.
    retain
        Share of the active library kept per iteration, in (0, 1).
    n_components
        PLS components (capped by the subset size and ``p``).
    mode
        ``"response"`` or ``"reconstruction"`` (see the module docstring).
    seed
        Seeds the subsets.
    progress
        Progress bar over iterations.

    Returns
    -------
    numpy.ndarray
        ``k`` indices into the library, ordered by their last mean score (best first;
        with ``k`` equal to the library size, the library order).

    Raises
    ------
    ConfigError
        On bad parameters or shapes, or NaN in the inputs.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 3)), rng.normal(size=60)
    >>> local = rng.normal(size=(10, 3))
    >>> picked = rs_local(X, y, local, local[:, 0], k=20, n_components=1)
    >>> len(picked), len(set(picked.tolist()))
    (20, 20)
    """
    Xl = np.asarray(X_library, dtype=np.float64)
    yl = np.asarray(y_library, dtype=np.float64).ravel()
    Xq = np.asarray(X_local, dtype=np.float64)
    yq = None if y_local is None else np.asarray(y_local, dtype=np.float64).ravel()
    if mode not in ("response", "reconstruction"):
        raise ConfigError(f"mode {mode!r} must be 'response' or 'reconstruction'")
    if mode == "response" and yq is None:
        raise ConfigError("response mode needs y_local; pass it or use mode='reconstruction'")
    if Xl.ndim != 2 or Xq.ndim != 2 or Xl.shape[1] != Xq.shape[1] or len(yl) != len(Xl):
        raise ConfigError(
            f"shapes do not fit: library {Xl.shape!r} with {len(yl)} targets, local "
            f"{Xq.shape!r}; pass 2-D predictors with the same columns"
        )
    if yq is not None and len(yq) != len(Xq):
        raise ConfigError(f"local set has {len(Xq)} rows but {len(yq)} targets")
    arrays = [Xl, yl, Xq] + ([] if yq is None else [yq])
    if not all(np.isfinite(a).all() for a in arrays):
        raise ConfigError("rs_local inputs contain NaN or infinite values; drop or fill them")
    if not (isinstance(k, int | np.integer) and 2 <= k <= len(Xl)):
        raise ConfigError(f"k {k!r} must be an integer in [2, {len(Xl)}] (library size)")
    if int(b) < 1 or not 0 < retain < 1 or int(n_components) < 1:
        raise ConfigError(
            f"need b >= 1, 0 < retain < 1 and n_components >= 1; got {b!r}, {retain!r}, "
            f"{n_components!r}"
        )
    rng = np.random.default_rng(seed)
    active = np.arange(len(Xl))
    sizes = _active_sizes(len(Xl), k, retain)
    for m in track(sizes, "RS-LOCAL") if progress else sizes:
        total = np.zeros(m)
        counts = np.zeros(m)
        for _draw in range(int(b)):
            perm = rng.permutation(m)
            for start in range(0, m, k):
                pick = perm[start : start + k]
                if len(pick) < k:  # top the last subset up with other samples
                    others = np.setdiff1d(perm, pick, assume_unique=True)
                    pick = np.concatenate([pick, rng.choice(others, k - len(pick), replace=False)])
                idx = active[pick]
                total[pick] += _score(Xl[idx], yl[idx], Xq, yq, int(n_components), mode)
                counts[pick] += 1  # b per sample, plus the top-up draws
        keep = _next_size(m, k, retain)
        order = np.argsort(total / counts, kind="stable")[:keep]
        active = active[order]
    return active


def _next_size(m: int, k: int, retain: float) -> int:
    return min(max(k, math.floor(retain * m)), m - 1)


def _active_sizes(n: int, k: int, retain: float) -> list[int]:
    """Library sizes at the start of each iteration (``n`` down to just above ``k``)."""
    sizes = []
    while n > k:
        sizes.append(n)
        n = _next_size(n, k, retain)
    return sizes

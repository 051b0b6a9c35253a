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

until ``k`` samples remain. The result is deterministic for a seed.

The cost is about ``b * N / (k * (1 - retain))`` PLS fits for a library of ``N`` (100,000
fits for ``N = 50,000``, ``k = 100``, ``b = 10``, ``retain = 0.95``). The fits are not run one
by one: every iteration's subsets are written as one index array ``(n_subsets, k)`` and
gathered, fitted and scored in batches with the batched PLS1 of :mod:`socmap.model.pls`
(same results as scikit-learn's ``PLSRegression``), which takes a fraction of a millisecond per
fit of ``k = 100`` samples and 140 predictors; ``docs/benchmarks/rslocal.md`` has timings up
to a 50,000-spectrum library. Each batch is sized to about :data:`BATCH_BYTES` so that it
stays in the CPU cache (see :func:`batch_size`); memory beyond the inputs stays at a few
batches.

References
----------
Lobsey, C.R. et al. (2017) rs-local data-mines information from spectral libraries to
improve local calibrations. Eur. J. Soil Sci. 68:840-852.
Shen, Z. et al. (2022) Deep transfer learning of global spectra for local soil carbon
monitoring. ISPRS J. Photogramm. Remote Sens. 188:190-200.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from socmap._progress import track
from socmap.errors import ConfigError
from socmap.model.pls import fit_pls1_batch

__all__ = ["BATCH_BYTES", "batch_size", "rs_local"]

Mode = Literal["response", "reconstruction"]

#: Target size in bytes of the float64 arrays of one batch of subsets. Batches that fit in the
#: CPU cache score several times faster per fit than batches of 64+ MB, which stream each of
#: the three reads of a subset per PLS component from main memory (measured in
#: ``benchmarks/bench_rslocal.py``).
BATCH_BYTES = 8 * 2**20


def batch_size(k: int, p: int, m: int, budget: int | None = None) -> int:
    """Count the subsets to score together so that one batch holds about ``budget`` bytes.

    A batch of ``B`` subsets holds the gathered subsets ``(B, k, p)`` and, while scoring, up
    to three ``(B, m, p)`` arrays for the local set, all float64.

    Parameters
    ----------
    k
        Subset size.
    p
        Predictors.
    m
        Local samples.
    budget
        Bytes per batch; :data:`BATCH_BYTES` if None.

    Returns
    -------
    int
        Subsets per batch, at least 1.

    Examples
    --------
    >>> batch_size(100, 140, 30)
    39
    """
    budget = BATCH_BYTES if budget is None else budget
    return max(1, budget // (8 * p * (k + 3 * m)))


def _subsets(m: int, k: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """Positions ``(b * ceil(m / k), k)`` of the subsets of one iteration, draw by draw.

    Each draw is a permutation of the ``m`` active samples cut into subsets of ``k``; an
    incomplete last subset is topped up with samples drawn from the rest of that permutation.
    """
    per_draw = math.ceil(m / k)
    n_full = m // k
    out = np.empty((b * per_draw, k), dtype=np.intp)
    for d in range(b):
        perm = rng.permutation(m)
        rows = out[d * per_draw : (d + 1) * per_draw]
        rows[:n_full] = perm[: n_full * k].reshape(n_full, k)
        if n_full < per_draw:
            rest = perm[n_full * k :]
            rows[n_full, : len(rest)] = rest
            rows[n_full, len(rest) :] = rng.choice(perm[: n_full * k], k - len(rest), replace=False)
    return out


def _score_subsets(
    X: np.ndarray,
    y: np.ndarray,
    X_local: np.ndarray,
    y_local: np.ndarray | None,
    subsets: np.ndarray,
    n_components: int,
    mode: Mode,
    batch: int,
) -> np.ndarray:
    """Score of the PLS fitted on each subset (rows of ``subsets`` index ``X``): an RMSE."""
    scores = np.empty(len(subsets))
    for start in range(0, len(subsets), batch):
        idx = subsets[start : start + batch]
        # the gathered batch is a fresh copy, so the fit may centre it in place
        fits = fit_pls1_batch(X[idx], y[idx], n_components, scale=True, copy=False)
        if mode == "response":
            assert y_local is not None
            err = fits.predict(X_local) - y_local
            err *= err
            scores[start : start + len(idx)] = np.sqrt(err.mean(axis=1))
        else:
            scores[start : start + len(idx)] = fits.reconstruction_rmse(X_local)
    return scores


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
    k = int(k)
    rng = np.random.default_rng(seed)
    batch = batch_size(k, Xl.shape[1], len(Xq))
    active = np.arange(len(Xl))
    sizes = _active_sizes(len(Xl), k, retain)
    for m in track(sizes, "RS-LOCAL") if progress else sizes:
        pos = _subsets(m, k, int(b), rng)
        scores = _score_subsets(Xl, yl, Xq, yq, active[pos], int(n_components), mode, batch)
        # each sample's subsets: b, plus any top-up draws
        flat = pos.ravel()
        total = np.bincount(flat, weights=np.repeat(scores, k), minlength=m)
        counts = np.bincount(flat, minlength=m)
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

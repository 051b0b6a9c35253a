"""Choosing which samples to send to the lab: Kennard-Stone and k-means selection.

Shen et al. (2022) pick the ``n`` local samples of a site with the Kennard-Stone algorithm on
the spectra (Kennard & Stone 1969): start with the two most distant spectra, then repeatedly
add the spectrum farthest from those already chosen (the largest minimum distance). It spans
the spectral space evenly and needs no targets. :func:`kmeans_select` is the usual
alternative: cluster into ``n`` groups and take the sample nearest each centroid.

Both can work on principal-component scores (``n_components``), which removes the noise of
hundreds of correlated bands; distances are Euclidean.

References
----------
Kennard, R.W., Stone, L.A. (1969) Computer aided design of experiments. Technometrics
11(1):137-148.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from socmap.errors import ConfigError, SpectraError

__all__ = ["kennard_stone", "kmeans_select"]


def _matrix(X: npt.ArrayLike, n: int, n_components: int | None) -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2 or not np.isfinite(A).all():
        raise SpectraError(
            f"selection needs a finite 2-D array (samples x bands), got shape {A.shape!r}"
            + ("" if A.ndim != 2 else " with NaN or infinite values")
        )
    if len(A) < 2:
        raise SpectraError(
            f"selection needs at least 2 spectra, got {len(A)!r}; give a table with more rows"
        )
    if not (isinstance(n, int | np.integer) and 2 <= n <= len(A)):
        raise ConfigError(
            f"n {n!r} (CLI: --n) must be an integer in [2, {len(A)}] (the number of samples)"
        )
    if n_components is not None:
        if not 1 <= n_components <= min(A.shape):
            raise ConfigError(
                f"n_components {n_components!r} (CLI: --components) must be in "
                f"[1, {min(A.shape)}] for {A.shape!r} (samples x bands)"
            )
        A = PCA(n_components=n_components, svd_solver="full").fit_transform(A)
    return A


def kennard_stone(X: npt.ArrayLike, n: int, *, n_components: int | None = None) -> np.ndarray:
    """Choose ``n`` samples by Kennard-Stone; indices in the order they were chosen.

    Parameters
    ----------
    X
        ``(N, p)`` spectra (or any features).
    n
        Number of samples to choose, ``2 <= n <= N``.
    n_components
        Work on this many principal-component scores instead of the raw columns.

    Returns
    -------
    numpy.ndarray
        ``n`` distinct row indices. Ties go to the lowest index.

    Examples
    --------
    Points on a line: the two ends first, then the middle.

    >>> kennard_stone(np.arange(11.0)[:, None], 4).tolist()
    [0, 10, 5, 2]
    """
    A = _matrix(X, n, n_components)
    sq = np.einsum("ij,ij->i", A, A)

    def dist_to(j: int) -> np.ndarray:
        return np.sqrt(np.maximum(sq - 2.0 * (A @ A[j]) + sq[j], 0.0))

    # The most distant pair, one row block at a time (memory O(block x N)).
    best, first, second = -1.0, 0, 0
    block = max(1, 2**22 // max(len(A), 1))
    for start in range(0, len(A), block):
        rows = slice(start, start + block)
        d2 = sq[rows, None] - 2.0 * (A[rows] @ A.T) + sq[None, :]
        i, j = (int(v) for v in np.unravel_index(int(np.argmax(d2)), d2.shape))
        if d2[i, j] > best:
            best, first, second = float(d2[i, j]), start + i, j
    first, second = min(first, second), max(first, second)
    chosen = [first, second]
    nearest = np.minimum(dist_to(first), dist_to(second))
    nearest[chosen] = -1.0
    while len(chosen) < n:
        j = int(np.argmax(nearest))
        chosen.append(j)
        nearest = np.minimum(nearest, dist_to(j))
        nearest[chosen] = -1.0
    return np.asarray(chosen, dtype=np.intp)


def kmeans_select(
    X: npt.ArrayLike, n: int, *, n_components: int | None = None, seed: int = 0
) -> np.ndarray:
    """Choose ``n`` samples: the one nearest each of ``n`` k-means centroids.

    Parameters
    ----------
    X
        ``(N, p)`` spectra (or any features).
    n
        Number of samples (= clusters).
    n_components
        Cluster principal-component scores instead of the raw columns.
    seed
        Seeds k-means.

    Returns
    -------
    numpy.ndarray
        ``n`` distinct row indices, in cluster order. A sample nearest to two centroids is
        taken once; the second cluster then takes its nearest unchosen member.

    Examples
    --------
    >>> X = np.r_[np.zeros((5, 2)), np.full((5, 2), 10.0)] + np.arange(10)[:, None] * 0.01
    >>> sorted(int(i) < 5 for i in kmeans_select(X, 2))
    [False, True]
    """
    A = _matrix(X, n, n_components)
    km = KMeans(n_clusters=n, n_init=10, random_state=seed).fit(A)
    d = km.transform(A)  # (N, n) distances to the centroids
    chosen: list[int] = []
    for c in range(n):
        for i in np.argsort(d[:, c], kind="stable"):
            if int(i) not in chosen:
                chosen.append(int(i))
                break
    return np.asarray(chosen, dtype=np.intp)

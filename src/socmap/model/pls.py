"""Batched PLS1 regression: many independent single-target PLS fits at once, in numpy.

:func:`fit_pls1_batch` fits ``B`` PLS regressions, one per subset of a stack ``(B, k, p)``,
with the same results as scikit-learn's ``PLSRegression(n_components=A, scale=...)`` (NIPALS,
``deflation_mode="regression"``) fitted on each subset with one target: the same weights,
loadings, ``x_rotations_``, coefficients and predictions, up to floating-point rounding.
:func:`socmap.model.rslocal.rs_local` scores hundreds of thousands of small subsets with it.

How it differs from a loop over ``PLSRegression``:

* with a single target the power method converges in one step, so each component costs three
  batched matrix-vector products (``X^T y``, ``X w``, ``X^T t``) on the whole stack;
* X is never deflated: with the deflated target ``y_a = y - sum_b t_b q_b`` and the scores,
  loadings and weights of earlier components, ``X_a^T v = X^T v - sum_b p_b (t_b . v)`` and
  ``X_a w = X w - sum_b t_b (p_b . w)``, so X is only read;
* the column scaling is applied to the small vectors (``X_s w = X_c (w / sigma)``,
  ``X_s^T v = (X_c^T v) / sigma``), so X is only centred, in place when ``copy=False``;
* there is no per-fit input validation or Python overhead.

Numerical edge cases follow scikit-learn: constant columns (standard deviation 0) are scaled
by 1; a component whose target residual is all below ``10 * eps`` stops the fit, and it and
all later components are zero (scikit-learn warns "y residual is constant"; here
:attr:`PLS1Batch.n_fitted` records how many components each fit has). A subset whose scaled
predictors are all zero (where scikit-learn returns NaN) stops the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from socmap.errors import ConfigError

__all__ = ["PLS1Batch", "fit_pls1_batch"]

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class PLS1Batch:
    """``B`` fitted single-target PLS regressions sharing ``p`` predictors.

    Arrays are float64; ``A`` is the number of components after capping (see
    :func:`fit_pls1_batch`). The attributes match scikit-learn's ``PLSRegression`` fitted on
    each subset: ``x_mean[b]`` is ``_x_mean``, ``x_std[b]`` ``_x_std``, ``weights[b]``
    ``x_weights_``, ``loadings[b]`` ``x_loadings_``, ``rotations[b]`` ``x_rotations_``,
    ``y_loadings[b]`` ``y_loadings_[0]`` and ``coef[b]`` ``coef_[0]``.

    Attributes
    ----------
    x_mean, x_std
        Column means and scales of each subset's predictors, ``(B, p)``; the scales are the
        standard deviations (``ddof=1``, zero replaced by 1) with ``scale=True``, else ones.
    y_mean, y_std
        Target mean and scale of each subset, ``(B,)``.
    weights, loadings, rotations
        ``(B, p, A)``: the X weights ``W``, X loadings ``P`` and rotations
        ``W (P^T W)^+`` that project standardised predictors onto the components.
    y_loadings
        ``(B, A)``: regression of the standardised target on each component's scores.
    coef
        ``(B, p)``: coefficients on the centred, unscaled predictors; predictions are
        ``(X - x_mean) @ coef + y_mean``.
    n_fitted
        ``(B,)`` int: components actually fitted (fewer than ``A`` where the target residual
        became constant; the rest are zero).
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    weights: np.ndarray
    loadings: np.ndarray
    rotations: np.ndarray
    y_loadings: np.ndarray
    coef: np.ndarray
    n_fitted: np.ndarray

    @property
    def n_fits(self) -> int:
        """Number of fits ``B`` in the batch."""
        return int(self.x_mean.shape[0])

    @property
    def n_components(self) -> int:
        """Components per fit ``A`` (after capping)."""
        return int(self.rotations.shape[2])

    def _check_new(self, X_new: npt.ArrayLike) -> np.ndarray:
        Xn = np.asarray(X_new, dtype=np.float64)
        p = self.x_mean.shape[1]
        if Xn.ndim != 2 or Xn.shape[1] != p:
            raise ConfigError(
                f"new predictors of shape {Xn.shape!r} do not fit models of {p} predictors; "
                f"pass a 2-D array (m, {p}), shared by all {self.n_fits} fits"
            )
        return Xn

    def predict(self, X_new: npt.ArrayLike) -> np.ndarray:
        """Predict the target of the same samples with every fit.

        Parameters
        ----------
        X_new
            Predictors ``(m, p)``, shared by all fits.

        Returns
        -------
        numpy.ndarray
            ``(B, m)``: row ``b`` holds fit ``b``'s predictions.

        Raises
        ------
        ConfigError
            If ``X_new`` is not ``(m, p)``.
        """
        Xn = self._check_new(X_new)
        # centre first, as scikit-learn does, rather than subtracting x_mean . coef afterwards:
        # the subtraction would cancel badly for predictors far from zero
        centred = Xn[None, :, :] - self.x_mean[:, None, :]
        return np.matmul(centred, self.coef[:, :, None])[:, :, 0] + self.y_mean[:, None]

    def transform(self, X_new: npt.ArrayLike) -> np.ndarray:
        """Scores of the samples on every fit's components.

        Parameters
        ----------
        X_new
            Predictors ``(m, p)``, shared by all fits.

        Returns
        -------
        numpy.ndarray
            ``(B, m, A)``, as scikit-learn's ``transform`` for each fit.

        Raises
        ------
        ConfigError
            If ``X_new`` is not ``(m, p)``.
        """
        return np.matmul(self._standardise(self._check_new(X_new)), self.rotations)

    def reconstruction_rmse(self, X_new: npt.ArrayLike) -> np.ndarray:
        """RMSE with which each fit's components rebuild the standardised samples.

        The samples are standardised with each fit's ``x_mean`` and ``x_std``, projected
        onto its components (``rotations``) and rebuilt from the scores (``loadings``):
        ``rmse = sqrt(mean((s - s @ rotations @ loadings.T) ** 2))`` over all ``m * p``
        values of the standardised samples ``s``.

        Parameters
        ----------
        X_new
            Predictors ``(m, p)``, shared by all fits.

        Returns
        -------
        numpy.ndarray
            ``(B,)`` root mean squared reconstruction errors.

        Raises
        ------
        ConfigError
            If ``X_new`` is not ``(m, p)``.
        """
        scaled = self._standardise(self._check_new(X_new))
        residual = scaled - np.matmul(
            np.matmul(scaled, self.rotations), self.loadings.transpose(0, 2, 1)
        )
        residual *= residual
        return np.sqrt(residual.mean(axis=(1, 2)))

    def _standardise(self, Xn: np.ndarray) -> np.ndarray:
        scaled = Xn[None, :, :] - self.x_mean[:, None, :]
        scaled /= self.x_std[:, None, :]
        return scaled


def fit_pls1_batch(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    n_components: int,
    *,
    scale: bool = True,
    copy: bool = True,
) -> PLS1Batch:
    """Fit one single-target PLS regression per subset, all at once.

    Mirrors scikit-learn's ``PLSRegression(n_components, scale=scale)`` (NIPALS) on each
    subset; see the module docstring for how the work is shared.

    Parameters
    ----------
    X
        Predictors: ``(B, k, p)`` for ``B`` subsets of ``k`` samples, or ``(k, p)`` for a
        single subset (returned as a batch of one).
    y
        Targets: ``(B, k)``, or ``(k,)`` with a 2-D ``X``.
    n_components
        Components ``A`` per fit, capped at ``min(A, k - 1, p)`` (the centred predictors
        have rank at most ``k - 1``), so small subsets need no special case.
    scale
        Scale predictors and target to unit standard deviation (``ddof=1``) after centring.
    copy
        With ``False`` and a float64 C-ordered ``X``, ``X`` is centred in place (its
        values are overwritten); this saves one copy of a freshly gathered stack.

    Returns
    -------
    PLS1Batch
        The ``B`` fits.

    Raises
    ------
    ConfigError
        On bad shapes, fewer than 2 samples per subset, ``n_components < 1`` or non-finite
        values.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(3, 20, 4))  # three subsets of 20 samples, 4 predictors
    >>> y = X[:, :, 0] - 2 * X[:, :, 1]
    >>> fits = fit_pls1_batch(X, y, n_components=2)
    >>> fits.rotations.shape, fits.coef.shape
    ((3, 4, 2), (3, 4))
    >>> fits.predict(np.eye(4)).shape  # 4 new samples, predicted by each of the 3 fits
    (3, 4)
    >>> single = fit_pls1_batch(X[0], y[0], n_components=4)  # one subset, B = 1
    >>> bool(np.allclose(single.predict(X[0])[0], y[0]))
    True
    """
    Xb = np.array(X, dtype=np.float64, order="C") if copy else np.asarray(X, np.float64, "C")
    yb = np.array(y, dtype=np.float64, copy=True)
    if Xb.ndim == 2:
        Xb, yb = Xb[None], yb[None]
    if Xb.ndim != 3 or yb.ndim != 2 or yb.shape != Xb.shape[:2]:
        raise ConfigError(
            f"predictors {np.shape(X)!r} and targets {np.shape(y)!r} do not fit; pass X "
            "(B, k, p) with y (B, k), or X (k, p) with y (k,)"
        )
    n_fits, k, p = Xb.shape
    if k < 2 or p < 1:
        raise ConfigError(f"need at least 2 samples and 1 predictor per subset; got X {Xb.shape!r}")
    if not (isinstance(n_components, int | np.integer) and n_components >= 1):
        raise ConfigError(f"n_components {n_components!r} must be an integer >= 1")
    if not (np.isfinite(Xb).all() and np.isfinite(yb).all()):
        raise ConfigError("PLS inputs contain NaN or infinite values; drop or fill them")
    n_comp = int(min(n_components, k - 1, p))

    # centre (X in place) and scale, as sklearn's _center_scale_xy
    x_mean = Xb.mean(axis=1)
    Xb -= x_mean[:, None, :]
    y_mean = yb.mean(axis=1)
    yb -= y_mean[:, None]
    if scale:
        x_std = np.sqrt(np.einsum("bkp,bkp->bp", Xb, Xb) / (k - 1))
        x_std[x_std == 0.0] = 1.0
        y_std = yb.std(axis=1, ddof=1)
        y_std[y_std == 0.0] = 1.0
        yb /= y_std[:, None]
    else:
        x_std = np.ones((n_fits, p))
        y_std = np.ones(n_fits)
    inv_std = 1.0 / x_std

    W = np.zeros((n_fits, p, n_comp))
    P = np.zeros((n_fits, p, n_comp))
    T = np.zeros((n_fits, k, n_comp))
    q = np.zeros((n_fits, n_comp))
    n_fitted = np.zeros(n_fits, dtype=np.int64)
    active = np.ones(n_fits, dtype=bool)
    rows = np.arange(n_fits)
    for a in range(n_comp):
        # sklearn stops once the target residual is numerically zero
        active &= np.abs(yb).max(axis=1) >= 10 * _EPS
        Tp, Pp = T[:, :, :a], P[:, :, :a]
        # weights: X_a^T y_a / (y_a . y_a), normalised (with sklearn's + eps)
        v = np.matmul(yb[:, None, :], Xb)[:, 0, :] * inv_std
        v -= np.matmul(Pp, np.matmul(yb[:, None, :], Tp)[:, 0, :, None])[:, :, 0]
        yy = np.einsum("bk,bk->b", yb, yb)
        v /= np.where(active, yy, 1.0)[:, None]
        w = v / (np.sqrt(np.einsum("bp,bp->b", v, v)) + _EPS)[:, None]
        # sign flip as sklearn's _svd_flip_1d: the largest |weight| is positive
        w *= np.sign(w[rows, np.abs(w).argmax(axis=1)])[:, None]
        w[~active] = 0.0
        # scores t = X_a w
        t = np.matmul(Xb, (w * inv_std)[:, :, None])[:, :, 0]
        t -= np.matmul(Tp, np.matmul(Pp.transpose(0, 2, 1), w[:, :, None]))[:, :, 0]
        tt = np.einsum("bk,bk->b", t, t)
        active &= tt > 0.0  # all-zero scaled predictors: sklearn returns NaN; stop instead
        tt_safe = np.where(active, tt, 1.0)
        # X loadings X_a^T t / (t . t) and y loadings, then deflate y only
        load = np.matmul(t[:, None, :], Xb)[:, 0, :] * inv_std
        load -= np.matmul(Pp, np.matmul(t[:, None, :], Tp)[:, 0, :, None])[:, :, 0]
        load /= tt_safe[:, None]
        qa = np.einsum("bk,bk->b", t, yb) / tt_safe
        for arr in (w, t, load):
            arr[~active] = 0.0
        qa[~active] = 0.0
        yb -= t * qa[:, None]
        W[:, :, a], T[:, :, a], P[:, :, a], q[:, a] = w, t, load, qa
        n_fitted += active

    # rotations W (P^T W)^+; pinv as sklearn, which zeroes the components not fitted
    rotations = np.matmul(W, np.linalg.pinv(np.matmul(P.transpose(0, 2, 1), W)))
    coef = np.matmul(rotations, q[:, :, None])[:, :, 0] * y_std[:, None] / x_std
    return PLS1Batch(
        x_mean=x_mean,
        x_std=x_std,
        y_mean=y_mean,
        y_std=y_std,
        weights=W,
        loadings=P,
        rotations=rotations,
        y_loadings=q,
        coef=coef,
        n_fitted=n_fitted,
    )

"""Chemometric baselines for spectra: PLS regression and a Random Forest.

Both model ``log1p`` SOC (g/kg), like the networks, and back-transform with ``expm1``.
:class:`PLSRRegressor` picks its number of components by an inner K-fold CV on the training
rows only (the smallest count within one standard error of the best RMSE, a common guard
against overfitting small local sets).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cross_decomposition import PLSRegression
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted

from socmap.errors import ConfigError, ProfileValidationError

__all__ = ["PLSRRegressor", "SpectralForest"]


def _check_xy(X: npt.ArrayLike, y: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(X, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64).ravel()
    if A.ndim != 2 or len(A) != len(t):
        raise ProfileValidationError(
            f"X {A.shape!r} and y {t.shape!r} do not fit; pass (n_samples, n_bands) and n targets"
        )
    bad = ~np.isfinite(A).all(axis=1) | ~np.isfinite(t) | (t < 0)
    if bad.any():
        raise ProfileValidationError(
            f"{int(bad.sum())!r} training rows have NaN spectra or a missing or negative SOC "
            f"(first row {int(np.argmax(bad))!r}); SOC must be g/kg >= 0"
        )
    return A, t


class PLSRRegressor(RegressorMixin, BaseEstimator):
    """PLS regression of ``log1p`` SOC with the component count chosen by inner CV.

    Parameters
    ----------
    max_components
        Largest number of components tried (capped by the training size and bands).
    cv
        Inner folds for choosing the count.
    random_state
        Seeds the inner folds.

    Attributes
    ----------
    n_components_ : int
        The chosen count.
    cv_rmse_ : numpy.ndarray
        Inner-CV RMSE (log1p space) per count ``1 .. len(cv_rmse_)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 20))
    >>> y = np.expm1(1 + 0.3 * X[:, 0] - 0.2 * X[:, 1])
    >>> model = PLSRRegressor(max_components=5).fit(X, y)
    >>> model.n_components_ >= 2, bool(np.corrcoef(model.predict(X), y)[0, 1] > 0.95)
    (True, True)
    """

    def __init__(self, max_components: int = 15, cv: int = 5, random_state: int = 0) -> None:
        self.max_components = max_components
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Self:
        """Choose the component count by inner CV, then fit on every row."""
        A, t = _check_xy(X, y)
        z = np.log1p(t)
        if self.max_components < 1 or self.cv < 2:
            raise ConfigError(
                f"need max_components >= 1 and cv >= 2, got {self.max_components!r}, {self.cv!r}"
            )
        folds = min(self.cv, len(A))
        smallest_train = len(A) - int(np.ceil(len(A) / folds))
        top = max(1, min(self.max_components, smallest_train - 1, A.shape[1]))
        errors = np.zeros((top, len(A)))
        splitter = KFold(folds, shuffle=True, random_state=self.random_state)
        for train, test in splitter.split(A):
            pls = PLSRegression(n_components=top, scale=False).fit(A[train], z[train])
            # predictions with 1..top components from one fit: scores times the y loadings
            xc = A[test] - pls._x_mean
            scores = xc @ pls.x_rotations_
            for a in range(1, top + 1):
                pred = scores[:, :a] @ pls.y_loadings_[:, :a].T + pls._y_mean
                errors[a - 1, test] = (pred.ravel() - z[test]) ** 2
        rmse = np.sqrt(errors.mean(axis=1))
        se = errors.std(axis=1, ddof=1) / np.sqrt(len(A)) / (2 * np.maximum(rmse, 1e-12))
        best = int(np.argmin(rmse))
        self.n_components_ = int(np.flatnonzero(rmse <= rmse[best] + se[best])[0]) + 1
        self.cv_rmse_ = rmse
        self.model_ = PLSRegression(n_components=self.n_components_, scale=False).fit(A, z)
        return self

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """SOC in g/kg."""
        check_is_fitted(self, "model_")
        out = np.asarray(self.model_.predict(np.asarray(X, dtype=np.float64))).ravel()
        return np.expm1(out)


class SpectralForest(RegressorMixin, BaseEstimator):
    """A Random Forest of ``log1p`` SOC on the spectra.

    Parameters
    ----------
    n_estimators
        Trees.
    max_features
        Share of bands per split (forests on hundreds of correlated bands do well with a third).
    random_state
        Seeds the forest.
    n_jobs
        Parallel tree building.
    """

    def __init__(
        self,
        n_estimators: int = 500,
        max_features: float = 0.33,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> Self:
        """Fit on every row."""
        A, t = _check_xy(X, y)
        params: dict[str, Any] = {
            "n_estimators": self.n_estimators,
            "max_features": self.max_features,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
        }
        self.model_ = RandomForestRegressor(**params).fit(A, np.log1p(t))
        return self

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """SOC in g/kg."""
        check_is_fitted(self, "model_")
        return np.expm1(self.model_.predict(np.asarray(X, dtype=np.float64)))

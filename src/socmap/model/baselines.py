"""Baselines behind the scikit-learn interface: regional Random Forest and stacking.

Both learn log1p(SOC g/kg) from covariates plus the depth interval (``top_cm``,
``bottom_cm``), and predict SOC in g/kg. They take the training table itself as ``X`` (the
target column is read from it), so they fit the same CV harness as the network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.utils.validation import check_is_fitted

from socmap.errors import BandMismatch, ProfileValidationError

__all__ = ["DEPTH_FEATURES", "GlobalModel", "RegionalForest", "StackedForest"]

#: Depth features every baseline uses besides the covariates.
DEPTH_FEATURES = ("top_cm", "bottom_cm")


class RegionalForest(RegressorMixin, BaseEstimator):
    """Random Forest on regional covariates and depth; the regional-only baseline.

    Parameters
    ----------
    bands
        Covariate columns to use. Categorical bands are used as codes (trees split on them
        as ordered values, the usual practice for regional forests).
    n_estimators
        Number of trees (500, as in most digital soil mapping studies).
    min_samples_leaf, max_features
        Passed to :class:`~sklearn.ensemble.RandomForestRegressor`.
    target
        SOC column of the training table, in g/kg.
    random_state
        Seed.
    n_jobs
        Parallel trees.

    Examples
    --------
    >>> from socmap.datasets import synthetic_soil_field
    >>> t = synthetic_soil_field(60, depths="0-30", seed=0).table
    >>> rf = RegionalForest(["temperature", "ndvi"], n_estimators=20, random_state=0).fit(t)
    >>> rf.predict(t).shape
    (60,)
    """

    def __init__(
        self,
        bands: Sequence[str] | None = None,
        n_estimators: int = 500,
        min_samples_leaf: int = 2,
        max_features: float | str = 1 / 3,
        target: str = "soc_g_kg",
        random_state: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.bands = bands
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.target = target
        self.random_state = random_state
        self.n_jobs = n_jobs

    # Hooks for subclasses: which covariate columns, and how X is prepared first.
    def _covariates(self) -> list[str]:
        return list(self.bands or ())

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise ProfileValidationError(
                f"X must be the training table (a DataFrame), got {type(X).__name__!r}"
            )
        return X

    def _features(self, X: pd.DataFrame) -> np.ndarray:
        cols = [*self._covariates(), *DEPTH_FEATURES]
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise BandMismatch(f"training table lacks columns {missing!r} the forest uses")
        return X[cols].to_numpy(dtype=float)

    def fit(self, X: pd.DataFrame, y: Any = None) -> RegionalForest:
        """Fit on the rows of ``X`` that have a target; ``y`` is ignored (read from ``X``)."""
        if not self.bands:
            raise BandMismatch("the forest needs bands=[...] naming its covariates")
        X = self._prepare(X)
        if self.target not in X.columns:
            raise ProfileValidationError(f"training table lacks the target column {self.target!r}")
        soc = X[self.target].to_numpy(dtype=float)
        keep = np.isfinite(soc)
        if not keep.any():
            raise ProfileValidationError(f"no row has a {self.target!r} value to train on")
        features = self._features(X)
        self.n_rows_without_target_ = int((~keep).sum())
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(features[keep], np.log1p(np.clip(soc[keep], 0, None)))
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread (sd across trees) of log1p(SOC) per row."""
        check_is_fitted(self, "forest_")
        features = self._features(self._prepare(X))
        per_tree = np.stack([t.predict(features) for t in self.forest_.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg (back-transformed mean of log1p SOC, i.e. a median-type estimate)."""
        check_is_fitted(self, "forest_")
        return np.expm1(self.forest_.predict(self._features(self._prepare(X))))


class StackedForest(RegionalForest):
    """Regional forest given the global model's prediction as an extra covariate.

    Parameters
    ----------
    global_predict
        Callable mapping the training table to the global model's log1p(SOC) per row.
    bands, n_estimators, min_samples_leaf, max_features, target, random_state, n_jobs
        As in :class:`RegionalForest`.
    """

    GLOBAL_COLUMN = "global_log1p_soc"

    def __init__(
        self,
        global_predict: Callable[[pd.DataFrame], np.ndarray] | None = None,
        bands: Sequence[str] | None = None,
        n_estimators: int = 500,
        min_samples_leaf: int = 2,
        max_features: float | str = 1 / 3,
        target: str = "soc_g_kg",
        random_state: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        super().__init__(
            bands=bands,
            n_estimators=n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            target=target,
            random_state=random_state,
            n_jobs=n_jobs,
        )
        self.global_predict = global_predict

    def _covariates(self) -> list[str]:
        return [*super()._covariates(), self.GLOBAL_COLUMN]

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        X = super()._prepare(X)
        if self.global_predict is None:
            raise ProfileValidationError("StackedForest needs global_predict=callable")
        return X.assign(**{self.GLOBAL_COLUMN: np.asarray(self.global_predict(X), dtype=float)})


class GlobalModel(RegressorMixin, BaseEstimator):
    """The pretrained global network used as is (no fine-tuning): the transfer floor.

    Parameters
    ----------
    bundle
        Pretrained bundle directory.
    mc_passes
        Monte Carlo dropout passes.
    random_state
        Seed of the dropout masks.
    """

    def __init__(self, bundle: str = "", mc_passes: int = 32, random_state: int = 0) -> None:
        self.bundle = bundle
        self.mc_passes = mc_passes
        self.random_state = random_state

    def fit(self, X: pd.DataFrame | None = None, y: Any = None) -> GlobalModel:
        """Load the bundle; the training table is not used."""
        from socmap.model.bundle import load_bundle

        self.bundle_ = load_bundle(self.bundle)
        if X is not None:
            self.bundle_.check_bands(X.columns)
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """MC-dropout mean and total sd of log1p(SOC g/kg)."""
        from socmap.model.train import predict

        check_is_fitted(self, "bundle_")
        pred = predict(
            self.bundle_.model,
            self.bundle_.spec.encode(X),
            mc_passes=self.mc_passes,
            seed=self.random_state,
        )
        return np.asarray(pred.mean, dtype=float), np.asarray(pred.sd, dtype=float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg."""
        return np.expm1(self.predict_log(X)[0])

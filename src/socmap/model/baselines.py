"""Baselines behind the scikit-learn interface: regional Random Forest and stacking.

Both learn SOC from covariates plus the depth interval (``top_cm``, ``bottom_cm``): on
log1p(SOC g/kg) by default, or on SOC itself (``target_transform="identity"``, what most
mappers run: :data:`RANGER_DEFAULTS`). They predict SOC in g/kg and take the training table
itself as ``X`` (the target column is read from it), so they fit the same CV harness as the
network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.utils.validation import check_is_fitted

from socmap.errors import BandMismatch, ConfigError, ProfileValidationError
from socmap.model.adjustment import RegionalAdjustment

__all__ = [
    "DEPTH_FEATURES",
    "RANGER_DEFAULTS",
    "TARGET_TRANSFORMS",
    "GlobalModel",
    "RegionalForest",
    "StackedForest",
    "table_features",
]

#: Depth features every baseline uses besides the covariates.
DEPTH_FEATURES = ("top_cm", "bottom_cm")
#: Targets a :class:`RegionalForest` can learn: log1p(SOC) or SOC itself.
TARGET_TRANSFORMS = ("log1p", "identity")
#: R ``ranger`` regression defaults in scikit-learn terms: 500 trees, ``mtry =
#: floor(sqrt(p))``, bootstrap with replacement, and ``min.node.size = 5`` (a node of 5 rows
#: or fewer is not split, i.e. ``min_samples_split = 6``; leaves may hold a single row).
RANGER_DEFAULTS: dict[str, Any] = {
    "n_estimators": 500,
    "max_features": "sqrt",
    "min_samples_leaf": 1,
    "min_samples_split": 6,
}


def table_features(X: pd.DataFrame, bands: Sequence[str]) -> np.ndarray:
    """Covariates ``bands`` then :data:`DEPTH_FEATURES` of a table, as a float matrix.

    Categorical bands come as their codes; missing values stay NaN (the forests handle them).

    Examples
    --------
    >>> t = pd.DataFrame({"ndvi": [0.5], "top_cm": [0.0], "bottom_cm": [30.0]})
    >>> table_features(t, ["ndvi"]).tolist()
    [[0.5, 0.0, 30.0]]
    """
    cols = [*bands, *DEPTH_FEATURES]
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise BandMismatch(f"training table lacks columns {missing!r} the forest uses")
    return X[cols].to_numpy(dtype=float)


class RegionalForest(RegressorMixin, BaseEstimator):
    """Random Forest on regional covariates and depth; the regional-only baseline.

    Parameters
    ----------
    bands
        Covariate columns to use. Categorical bands are used as codes (trees split on them
        as ordered values, the usual practice for regional forests).
    n_estimators
        Number of trees (500, as in most digital soil mapping studies).
    min_samples_leaf, max_features, min_samples_split
        Passed to :class:`~sklearn.ensemble.RandomForestRegressor` (:data:`RANGER_DEFAULTS`
        gives R ranger's).
    target
        SOC column of the training table, in g/kg.
    random_state
        Seed.
    n_jobs
        Parallel trees.
    target_transform
        ``"log1p"`` (default): the trees learn log1p(SOC). ``"identity"``: they learn SOC in
        g/kg, as most mappers' forests do; :meth:`predict_log` then returns log1p of the
        mean tree prediction (clipped at 0) and the sd across trees of log1p of each tree's
        prediction.

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
        target_transform: str = "log1p",
        min_samples_split: int = 2,
    ) -> None:
        self.bands = bands
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.target = target
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.target_transform = target_transform
        self.min_samples_split = min_samples_split

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
        return table_features(X, self._covariates())

    def fit(self, X: pd.DataFrame, y: Any = None) -> RegionalForest:
        """Fit on the rows of ``X`` that have a target; ``y`` is ignored (read from ``X``)."""
        if not self.bands:
            raise BandMismatch("the forest needs bands=[...] naming its covariates")
        if self.target_transform not in TARGET_TRANSFORMS:
            raise ConfigError(
                f"target_transform {self.target_transform!r} must be one of "
                f"{TARGET_TRANSFORMS!r}; use 'log1p' (log forest) or 'identity' (SOC in g/kg)"
            )
        X = self._prepare(X)
        if self.target not in X.columns:
            raise ProfileValidationError(f"training table lacks the target column {self.target!r}")
        soc = X[self.target].to_numpy(dtype=float)
        keep = np.isfinite(soc)
        if not keep.any():
            raise ProfileValidationError(f"no row has a {self.target!r} value to train on")
        features = self._features(X)
        self.n_rows_without_target_ = int((~keep).sum())
        soc = np.clip(soc[keep], 0, None)
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators,
            min_samples_leaf=self.min_samples_leaf,
            min_samples_split=self.min_samples_split,
            max_features=self.max_features,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(features[keep], soc if self.target_transform == "identity" else np.log1p(soc))
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread (sd across trees) of log1p(SOC) per row.

        A forest on SOC itself gives log1p of its mean prediction (clipped at 0) and the sd
        across trees of log1p of each tree's prediction.
        """
        check_is_fitted(self, "forest_")
        features = self._features(self._prepare(X))
        trees = RegionalAdjustment(forest=self.forest_, target=self.target_transform)
        return trees.forest_part(features)

    def adjustment(self) -> RegionalAdjustment:
        """Return the forest as a bundle's adjustment: the forest alone (the network unused)."""
        check_is_fitted(self, "forest_")
        if type(self)._covariates is not RegionalForest._covariates:
            raise ConfigError(
                f"{type(self).__name__} reads columns a map does not have; only a plain "
                "RegionalForest can be saved in a bundle"
            )
        return RegionalAdjustment(
            list(self.bands or ()), slope=0.0, forest=self.forest_, target=self.target_transform
        )

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg.

        The mean tree prediction for a forest on SOC (clipped at 0); for a log1p forest the
        back-transformed mean of log1p SOC, a median-type estimate.
        """
        check_is_fitted(self, "forest_")
        pred = self.forest_.predict(self._features(self._prepare(X)))
        if self.target_transform == "identity":
            return np.asarray(np.clip(pred, 0, None), dtype=float)
        return np.asarray(np.expm1(pred), dtype=float)


class StackedForest(RegionalForest):
    """Regional forest given the global model's prediction as an extra covariate.

    Parameters
    ----------
    global_predict
        Callable mapping the training table to the global model's log1p(SOC) per row.
    bands, n_estimators, min_samples_leaf, max_features, target, random_state, n_jobs,
    target_transform, min_samples_split
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
        target_transform: str = "log1p",
        min_samples_split: int = 2,
    ) -> None:
        super().__init__(
            bands=bands,
            n_estimators=n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            target=target,
            random_state=random_state,
            n_jobs=n_jobs,
            target_transform=target_transform,
            min_samples_split=min_samples_split,
        )
        self.global_predict = global_predict

    def _covariates(self) -> list[str]:
        return [*super()._covariates(), self.GLOBAL_COLUMN]

    def _prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        X = super()._prepare(X)
        if self.global_predict is None:
            raise ProfileValidationError("StackedForest needs global_predict=callable")
        return X.assign(**{self.GLOBAL_COLUMN: np.asarray(self.global_predict(X), dtype=float)})

    def fit(self, X: pd.DataFrame, y: Any = None) -> StackedForest:
        """Fit the forest on the bands, the global prediction and depth (``y`` is ignored)."""
        super().fit(X, y)
        # The network behind the global prediction, when it is one: a bundle can then hold
        # the stack (that network plus this forest, see :meth:`adjustment`).
        self.prior_ = getattr(self.global_predict, "model", None)
        return self

    def adjustment(self) -> RegionalAdjustment:
        """Return the stack as a bundle's adjustment: a forest that reads the network's mean.

        A map evaluates the bundle's network at every pixel and gives its mean log1p SOC to
        the forest, as :attr:`global_predict` gave it to the table (a map's Monte Carlo
        passes differ from the table's, so the two agree to Monte Carlo noise).

        Raises
        ------
        ConfigError
            A forest on SOC itself (a stack is a log1p forest).
        """
        check_is_fitted(self, "forest_")
        if self.target_transform != "log1p":
            raise ConfigError(
                f"a stacked forest on target_transform={self.target_transform!r} cannot be "
                "saved in a bundle; use target_transform='log1p'"
            )
        return RegionalAdjustment(
            list(self.bands or ()), slope=0.0, forest=self.forest_, prior_input=True
        )


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
        """MC-dropout mean and total sd of log1p(SOC g/kg).

        A bundle with a regional adjustment (:mod:`socmap.model.adjustment`) applies it,
        as its maps do.
        """
        from socmap.model.train import predict

        check_is_fitted(self, "bundle_")
        adjustment = self.bundle_.adjustment
        if adjustment is not None and adjustment.slope == 0 and not adjustment.prior_input:
            # a forest alone: the network is not evaluated
            zeros = np.zeros(len(X))
            return adjustment.apply(table_features(X, list(adjustment.bands)), zeros, zeros)
        pred = predict(
            self.bundle_.model,
            self.bundle_.spec.encode(X),
            mc_passes=self.mc_passes,
            seed=self.random_state,
        )
        mean, sd = np.asarray(pred.mean, dtype=float), np.asarray(pred.sd, dtype=float)
        if adjustment is None:
            return mean, sd
        return adjustment.apply(table_features(X, list(adjustment.bands)), mean, sd)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg."""
        return np.expm1(self.predict_log(X)[0])

"""A fixed-weight mean, on log1p SOC, of table models that share the pretrained network.

``prior-stacked`` averages ``prior-residual`` (the network plus a shrunk residual forest) and
``stacked`` (a log forest that reads the network's prediction). They err in different ways:
on the ten-minute covariates of the leave-region-out benchmark, ``prior-residual`` mostly had
the higher CCC, and their mean a lower MAE than either alone
(docs/benchmarks/prior_stacked_weights.md). The weights are fixed rather than chosen by
inner CV, which with 20 cores would mostly fit noise.

Each member is of the form ``slope * network + constant`` (:mod:`socmap.model.adjustment`),
so their weighted mean is too (:meth:`~socmap.model.adjustment.RegionalAdjustment.mix`): a
bundle holds it, and a map applies it to every pixel as the table predictions do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from socmap.errors import ConfigError
from socmap.model.adjustment import RegionalAdjustment
from socmap.model.baselines import table_features

__all__ = ["MixedRegressor"]


class MixedRegressor(RegressorMixin, BaseEstimator):
    """Weighted mean of table models that each have a bundle's adjustment and one network.

    Parameters
    ----------
    members
        Unfitted estimators with ``adjustment()`` after fitting and a ``prior_`` that
        predicts the same as every other member's (one pretrained network,
        :class:`~socmap.model.baselines.GlobalModel`, or any one prior), e.g.
        :class:`~socmap.model.prior.PriorResidualRegressor` and
        :class:`~socmap.model.baselines.StackedForest`.
    weights
        One positive weight per member; they are normalised to sum to 1 (``None``: equal).

    Attributes
    ----------
    members_
        The fitted members (clones).
    prior_
        The prior (network) they share.
    weights_
        The normalised weights.
    """

    def __init__(self, members: Sequence[Any] = (), weights: Sequence[float] | None = None):
        self.members = members
        self.weights = weights

    def _weights(self) -> list[float]:
        n = len(self.members)
        raw = [1.0] * n if self.weights is None else [float(w) for w in self.weights]
        if n < 2 or len(raw) != n or not all(np.isfinite(w) and w > 0 for w in raw):
            raise ConfigError(
                f"MixedRegressor needs two or more members and one positive weight each; got "
                f"{n!r} members and weights {self.weights!r}"
            )
        return [w / sum(raw) for w in raw]

    def fit(self, X: pd.DataFrame, y: Any = None) -> MixedRegressor:
        """Fit every member on ``X`` (``y`` is ignored: the target is read from ``X``)."""
        self.weights_ = self._weights()
        self.members_ = [clone(m).fit(X) for m in self.members]
        priors: list[Any] = [getattr(m, "prior_", None) for m in self.members_]
        if not all(callable(getattr(p, "predict_log", None)) for p in priors):
            raise ConfigError(
                "every member of a MixedRegressor needs a prior_ with predict_log (the "
                "network it adjusts), as prior-residual and stacked have"
            )
        # One network for all: the members' priors must predict the same on the rows.
        first = [np.asarray(v) for v in priors[0].predict_log(X)]
        for other in priors[1:]:
            if not all(
                np.array_equal(a, np.asarray(b), equal_nan=True)
                for a, b in zip(first, other.predict_log(X), strict=True)
            ):
                raise ConfigError(
                    "every member of a MixedRegressor must use the same pretrained network as "
                    "its prior (one bundle, the same mc_passes and random_state); build them "
                    "with one bundle= and prior="
                )
        self.prior_: Any = priors[0]
        self.adjustment_ = RegionalAdjustment.mix(
            [(w, m.adjustment()) for w, m in zip(self.weights_, self.members_, strict=True)]
        )
        return self

    def adjustment(self) -> RegionalAdjustment:
        """Return the weighted mean of the members' adjustments (for a bundle)."""
        check_is_fitted(self, "adjustment_")
        return self.adjustment_

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of log1p(SOC): the mixture's adjustment applied to the network.

        The network's own sd enters once, times the summed slope; the members' tree spreads
        add as independent.
        """
        check_is_fitted(self, "adjustment_")
        mean, sd = self.prior_.predict_log(X)
        features = table_features(X, list(self.adjustment_.bands))
        return self.adjustment_.apply(features, np.asarray(mean), np.asarray(sd))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg (back-transformed mean of log1p SOC)."""
        return np.asarray(np.expm1(self.predict_log(X)[0]), dtype=float)

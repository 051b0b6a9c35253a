"""The regional residual forest a bundle can carry beside its network.

:class:`~socmap.model.prior.PriorResidualRegressor` predicts ``p + level + s * f(x)``: the
network's log1p(SOC) ``p``, a shrunk regional level and a shrunk Random Forest ``f`` of the
residual on regional covariates and depth. :class:`ResidualForest` is the part after ``p``,
in a form a bundle stores (tensors and JSON, see :mod:`socmap.model.forest_arrays`) and the
map engine applies to every pixel and depth, so a map agrees with the table predictions.

Examples
--------
>>> import numpy as np
>>> from sklearn.ensemble import RandomForestRegressor
>>> X = np.column_stack([np.arange(20.0), np.zeros(20), np.full(20, 30.0)])
>>> rf = RandomForestRegressor(n_estimators=4, random_state=0).fit(X, X[:, 0] / 10)
>>> res = ResidualForest(["ndvi"], level=0.1, shrink=0.5, forest=rf)
>>> offset, spread = res.offsets(np.arange(3.0)[:, None], [(0.0, 30.0)])
>>> offset.shape, bool(np.all(spread >= 0))
((1, 3), True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestRegressor

from socmap.errors import BundleError
from socmap.model.forest_arrays import forest_arrays, forest_from_arrays

__all__ = ["ResidualForest"]


@dataclass(frozen=True, eq=False)
class ResidualForest:
    """``level + shrink * forest(bands, top_cm, bottom_cm)`` on the log1p(SOC) scale.

    Attributes
    ----------
    bands
        Covariates of the forest, in its column order (then ``top_cm``, ``bottom_cm``).
    level
        Shrunk regional level added to the network's prediction (log1p units).
    shrink
        Factor of the forest's residual prediction.
    forest
        The fitted forest (its per-tree spread adds to the variance).
    """

    bands: Sequence[str]
    level: float
    shrink: float
    forest: RandomForestRegressor

    def apply(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offset and sd of the residual for ``(n, bands + 2)`` rows (bands, top, bottom).

        The sd is the shrunk spread of the trees, which adds to the network's variance.
        """
        if self.shrink == 0:
            return np.full(len(features), self.level), np.zeros(len(features))
        per_tree = np.stack([t.predict(features) for t in self.forest.estimators_])
        return self.level + self.shrink * per_tree.mean(axis=0), self.shrink * per_tree.std(axis=0)

    def offsets(
        self, values: np.ndarray, intervals: Sequence[tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`apply` for ``(n, bands)`` values at every interval: ``(depths, n)`` each."""
        n = len(values)
        pairs = [
            self.apply(np.column_stack([values, np.full(n, top, float), np.full(n, bot, float)]))
            for top, bot in intervals
        ]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON-ready settings for a bundle."""
        arrays, meta = forest_arrays(self.forest)
        record = {"bands": list(self.bands), "level": float(self.level),
                  "shrink": float(self.shrink), "forest": meta}  # fmt: skip
        return arrays, record

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> ResidualForest:
        """Inverse of :meth:`to_record`.

        Raises
        ------
        BundleError
            A malformed record or forest.
        """
        try:
            return cls(
                bands=[str(b) for b in record["bands"]],
                level=float(record["level"]),
                shrink=float(record["shrink"]),
                forest=forest_from_arrays(arrays, record["forest"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"the bundle's residual forest is malformed ({exc!r})") from None

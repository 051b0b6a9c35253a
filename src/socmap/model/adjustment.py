"""The regional adjustment a bundle can carry beside its network.

The table-level transfer methods are all of one form on the log1p(SOC) scale::

    mean = slope * network + level + offset(depth) + shrink * forest(bands, depth)
    sd   = hypot(|slope| * network sd, shrink * spread of the trees)

- ``prior-residual`` (:class:`~socmap.model.prior.PriorResidualRegressor`): slope 1, a
  shrunk level and a shrunk forest of the network's residual;
- ``recalibrate`` (:class:`~socmap.model.prior.RecalibratedRegressor`): slope ``b``, level
  ``a`` and an offset per depth interval, no forest;
- ``rf-log`` and ``rf`` (:class:`~socmap.model.baselines.RegionalForest`): slope 0, the
  forest alone (on log1p SOC, or on SOC in g/kg whose trees are then back-transformed);
- ``stacked`` (:class:`~socmap.model.baselines.StackedForest`): slope 0, a log1p forest
  that reads the network's prediction as one more covariate (``prior_input``);
- ``prior-stacked`` (:class:`~socmap.model.prior.MixedRegressor`): a weighted mean of two of
  these (:meth:`RegionalAdjustment.mix`), still of the same form in the network, since each
  part is linear in it: ``sum(w * slope)`` times the network plus the weighted constants.

:class:`RegionalAdjustment` is that form in what a bundle stores (tensors and JSON, the
forest as node arrays, :mod:`socmap.model.forest_arrays`), so the map engine applies the
chosen method to every pixel and depth, and a map agrees with the table predictions.

Examples
--------
>>> import numpy as np
>>> from sklearn.ensemble import RandomForestRegressor
>>> X = np.column_stack([np.arange(20.0), np.zeros(20), np.full(20, 30.0)])
>>> rf = RandomForestRegressor(n_estimators=4, random_state=0).fit(X, X[:, 0] / 10)
>>> adj = RegionalAdjustment(["ndvi"], level=0.1, shrink=0.5, forest=rf)
>>> mean, sd = adj.apply(X[:3], np.ones(3), np.full(3, 0.2))
>>> bool(np.all(sd >= 0.2)), mean.shape
(True, (3,))
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from socmap.errors import BundleError
from socmap.model.forest_arrays import forest_arrays, forest_from_arrays

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestRegressor

__all__ = ["FOREST_TARGETS", "RegionalAdjustment", "with_prior"]

#: What the forest predicts: log1p(SOC) (or its residual), or SOC in g/kg.
FOREST_TARGETS = ("log1p", "identity")


def with_prior(features: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Insert ``prior`` (``(n,)``) as a column before the two depth columns of ``features``.

    The column order of a forest that reads the network's prediction: bands, prior, top,
    bottom.

    Examples
    --------
    >>> with_prior(np.array([[1.0, 0.0, 30.0]]), np.array([2.5])).tolist()
    [[1.0, 2.5, 0.0, 30.0]]
    """
    column = np.asarray(prior, dtype=float).reshape(len(features), 1)
    return np.concatenate([features[:, :-2], column, features[:, -2:]], axis=1)


@dataclass(frozen=True, eq=False)
class RegionalAdjustment:
    """``slope * network + level + offset(depth) + shrink * forest`` on the log1p scale.

    Attributes
    ----------
    bands
        Covariates of the forest, in its column order (then ``top_cm``, ``bottom_cm``).
    slope
        Weight of the network's prediction (0: the network is not used).
    level
        Constant added (log1p units).
    shrink
        Factor of the forest's prediction.
    forest
        The fitted forest, or None.
    target
        ``"log1p"``: the trees predict log1p(SOC) (or a residual of it); ``"identity"``:
        they predict SOC in g/kg, and the forest's term is log1p of their clipped mean.
    depth_offsets
        ``{(top_cm, bottom_cm): offset}`` added per depth interval (others get none).
    prior_input
        The forest reads the network's mean log1p(SOC) as a covariate after ``bands`` (a
        stacked forest), so callers pass it as ``prior``.
    parts
        ``((weight, adjustment), ...)`` of a mixture made by :meth:`mix`: its constant is
        the weighted sum of theirs (and its spread adds theirs, weighted, as independent);
        its own ``level``, ``shrink``, ``forest`` and offsets are then unused.
    """

    bands: Sequence[str] = ()
    slope: float = 1.0
    level: float = 0.0
    shrink: float = 1.0
    forest: RandomForestRegressor | None = None
    target: str = "log1p"
    depth_offsets: Mapping[tuple[float, float], float] = field(default_factory=dict)
    prior_input: bool = False
    parts: tuple[tuple[float, RegionalAdjustment], ...] = ()

    def __post_init__(self) -> None:
        if self.target not in FOREST_TARGETS:
            raise BundleError(f"forest target {self.target!r} must be one of {FOREST_TARGETS!r}")

    @classmethod
    def mix(cls, parts: Sequence[tuple[float, RegionalAdjustment]]) -> RegionalAdjustment:
        """Return the weighted mean ``sum(w * part)`` of adjustments (weights sum to 1).

        Raises
        ------
        BundleError
            Fewer than two parts, a part that is a mixture, or weights that are not
            positive or do not sum to 1.
        """
        weights = [float(w) for w, _ in parts]
        if len(parts) < 2 or any(a.parts for _, a in parts):
            raise BundleError("a mixture needs two or more adjustments that are not mixtures")
        if not all(w > 0 for w in weights) or not np.isclose(sum(weights), 1.0):
            raise BundleError(f"mixture weights {weights!r} must be positive and sum to 1")
        bands = list(dict.fromkeys(b for _, a in parts for b in a.bands))
        return cls(
            bands,
            slope=sum(w * a.slope for w, a in parts),
            level=0.0,
            shrink=0.0,
            prior_input=any(a.prior_input for _, a in parts),
            parts=tuple((float(w), a) for w, a in parts),
        )

    def _mixed(
        self, features: np.ndarray, prior: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`constant` of a mixture: each part reads its own bands of ``features``."""
        index = {b: i for i, b in enumerate(self.bands)}
        add, var = np.zeros(len(features)), np.zeros(len(features))
        for weight, part in self.parts:
            cols = [index[b] for b in part.bands] + [-2, -1]
            a, spread = part.constant(features[:, cols], prior if part.prior_input else None)
            add += weight * a
            var += (weight * spread) ** 2
        return add, np.sqrt(var)

    def forest_part(
        self, features: np.ndarray, prior: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the forest's term and its trees' spread for ``(n, bands + 2)`` rows.

        Rows are the bands, then ``top_cm`` and ``bottom_cm``; zeros without a forest.
        ``prior`` (``(n,)``, the network's mean log1p SOC) is required with
        :attr:`prior_input`, and joins the rows before the depth columns.

        Raises
        ------
        BundleError
            ``prior`` missing for a forest that reads it.
        """
        n = len(features)
        if self.forest is None or self.shrink == 0:
            return np.zeros(n), np.zeros(n)
        if self.prior_input:
            if prior is None:
                raise BundleError(
                    "this regional adjustment's forest reads the network's prediction; "
                    "pass prior= (the network's mean log1p SOC per row)"
                )
            features = with_prior(features, prior)
        identity = self.target == "identity"
        total, m2 = _tree_moments(self.forest.estimators_, features, identity)
        trees = len(self.forest.estimators_)
        spread = np.sqrt(m2 / trees)
        if identity:
            return np.log1p(np.clip(total / trees, 0, None)), spread
        return total / trees, spread

    def constant(
        self, features: np.ndarray, prior: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return what is added to ``slope * network``, and its sd, for ``(n, bands + 2)`` rows.

        ``prior`` as in :meth:`forest_part`.
        """
        if self.parts:
            return self._mixed(features, prior)
        f, spread = self.forest_part(features, prior)
        offset = np.zeros(len(features))
        # One mask per interval (a handful), not one dict lookup per pixel.
        for (top, bottom), value in self.depth_offsets.items():
            offset[(features[:, -2] == top) & (features[:, -1] == bottom)] = value
        return self.level + offset + self.shrink * f, self.shrink * spread

    def apply(
        self, features: np.ndarray, mean: np.ndarray, sd: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the adjusted mean and sd of log1p(SOC) from the network's ``mean`` and ``sd``.

        ``mean`` is also the forest's prior covariate when it reads one (:attr:`prior_input`).
        """
        add, spread = self.constant(features, mean if self.prior_input else None)
        if self.slope == 0:
            return np.zeros(len(features)) + add, spread
        return self.slope * mean + add, np.hypot(abs(self.slope) * sd, spread)

    def at_intervals(
        self,
        values: np.ndarray,
        intervals: Sequence[tuple[float, float]],
        prior: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`constant` for ``(n, bands)`` values at every interval: ``(depths, n)`` each.

        All intervals go through the trees at once (one call per tree, not per interval).
        ``prior`` is ``(depths, n)`` when the forest reads the network's prediction.
        """
        n, depths = len(values), len(intervals)
        depth = np.repeat(np.asarray(intervals, dtype=float).reshape(depths, 2), n, axis=0)
        flat = None if prior is None else np.asarray(prior, dtype=float).reshape(depths * n)
        features = np.column_stack([np.tile(values, (depths, 1)), depth])
        add, spread = self.constant(features, flat)
        return add.reshape(depths, n), spread.reshape(depths, n)

    def to_record(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON-ready settings for a bundle (a mixture's parts under ``parts``)."""
        arrays: dict[str, np.ndarray] = {}
        forest = None
        if self.forest is not None:
            arrays, forest = forest_arrays(self.forest)
        record: dict[str, Any] = {
            "bands": list(self.bands), "slope": float(self.slope), "level": float(self.level),
            "shrink": float(self.shrink), "target": self.target, "forest": forest,
            "depth_offsets": [[t, b, float(v)] for (t, b), v in self.depth_offsets.items()],
            "prior_input": bool(self.prior_input),
        }  # fmt: skip
        if self.parts:
            record["parts"] = []
            for k, (weight, part) in enumerate(self.parts):
                part_arrays, part_record = part.to_record()
                arrays.update({f"{_PART}{k}.{name}": a for name, a in part_arrays.items()})
                record["parts"].append({"weight": weight, **part_record})
        return arrays, record

    @classmethod
    def from_record(
        cls, record: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> RegionalAdjustment:
        """Inverse of :meth:`to_record`.

        Raises
        ------
        BundleError
            A malformed record or forest.
        """
        try:
            if record.get("parts"):
                return cls.mix([
                    (float(part["weight"]), cls.from_record(part, _part_arrays(arrays, k)))
                    for k, part in enumerate(record["parts"])
                ])  # fmt: skip
            forest = record.get("forest")
            return cls(
                bands=[str(b) for b in record["bands"]],
                slope=float(record["slope"]),
                level=float(record["level"]),
                shrink=float(record["shrink"]),
                forest=None if forest is None else forest_from_arrays(arrays, forest),
                target=str(record["target"]),
                depth_offsets={
                    (float(t), float(b)): float(v) for t, b, v in record["depth_offsets"]
                },
                prior_input=bool(record.get("prior_input", False)),
            )
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"the bundle's regional adjustment is malformed ({exc!r})") from None


#: Prefix of a mixture part's arrays in :meth:`RegionalAdjustment.to_record`.
_PART = "part"


def _part_arrays(arrays: Mapping[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    prefix = f"{_PART}{k}."
    return {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}


#: Trees per task of :func:`_tree_moments`: fixed, so its sums do not depend on the threads.
TREE_BLOCK = 50

_Moments = tuple[int, np.ndarray, np.ndarray, np.ndarray]


def _tree_moments(
    trees: Sequence[Any], features: np.ndarray, identity: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sum of the trees' predictions and the M2 of what their spread is of.

    M2 is the sum of squared deviations from the mean over trees.
    The spread is of the predictions themselves, or of ``log1p`` of them (clipped at 0) for
    a forest on SOC (``identity``). Streaming moments (Welford within a block of
    :data:`TREE_BLOCK` trees, Chan et al. between blocks, always in block order) hold a few
    ``(n,)`` arrays instead of one ``(trees, n)`` stack, and the blocks run on threads (tree
    traversal releases the GIL): the result does not depend on how many.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)  # the trees' own dtype, cast once
    blocks = [trees[i : i + TREE_BLOCK] for i in range(0, len(trees), TREE_BLOCK)]

    def block(chunk: Sequence[Any]) -> _Moments:
        total, mean, m2 = (np.zeros(len(x)) for _ in range(3))
        for k, tree in enumerate(chunk, 1):
            p = tree.predict(x, check_input=False).astype(np.float64, copy=False)
            total += p
            q = np.log1p(np.clip(p, 0, None)) if identity else p
            delta = q - mean
            mean += delta / k
            m2 += delta * (q - mean)
        return len(chunk), total, mean, m2

    workers = min(len(blocks), os.cpu_count() or 1)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(block, blocks))
    else:
        parts = [block(b) for b in blocks]
    n, total, mean, m2 = parts[0]
    for nb, total_b, mean_b, m2_b in parts[1:]:
        delta = mean_b - mean
        mean = mean + delta * (nb / (n + nb))
        m2 = m2 + m2_b + delta**2 * (n * nb / (n + nb))
        total, n = total + total_b, n + nb
    return total, m2

"""A fitted Random Forest as plain arrays, to store in a bundle without pickle.

A bundle holds only tensors (``safetensors``) and JSON, never pickled objects, so a forest
that maps beside the network (the residual forest of
:class:`~socmap.model.prior.PriorResidualRegressor`) is stored as its trees' node arrays:
every tree's nodes are concatenated, field by field, with the offset of each tree.
:func:`forest_from_arrays` rebuilds scikit-learn trees from them, so the loaded forest
predicts exactly what the fitted one did.

Examples
--------
>>> import numpy as np
>>> from sklearn.ensemble import RandomForestRegressor
>>> X = np.arange(40.0).reshape(20, 2)
>>> rf = RandomForestRegressor(n_estimators=3, random_state=0).fit(X, X[:, 0] ** 2)
>>> arrays, meta = forest_arrays(rf)
>>> again = forest_from_arrays(arrays, meta)
>>> bool(np.array_equal(again.predict(X), rf.predict(X)))
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from socmap.errors import BundleError

if TYPE_CHECKING:  # scikit-learn loads only when a bundle holds a forest (mapping start-up)
    from sklearn.ensemble import RandomForestRegressor

__all__ = ["forest_arrays", "forest_from_arrays"]

FOREST_FORMAT = "socmap-forest/1"


def forest_arrays(forest: RandomForestRegressor) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Node arrays of a fitted single-output forest, and what rebuilding it needs.

    Returns
    -------
    arrays
        ``offsets`` (trees + 1, where each tree's nodes start), ``values`` (one leaf value
        per node) and one array per node field of scikit-learn's trees.
    meta
        JSON-ready: format, number of features, each tree's depth and the node fields.
    """
    trees = [t.tree_ for t in forest.estimators_]
    if not trees or forest.n_outputs_ != 1:
        raise BundleError("only a fitted single-output forest can be stored; fit it first")
    states = [t.__getstate__() for t in trees]
    nodes = np.concatenate([s["nodes"] for s in states])
    fields = list(nodes.dtype.names or ())
    arrays = {name: np.ascontiguousarray(nodes[name]) for name in fields}
    arrays["values"] = np.concatenate([s["values"].reshape(-1) for s in states])
    arrays["offsets"] = np.cumsum([0, *(s["node_count"] for s in states)]).astype(np.int64)
    meta = {
        "format": FOREST_FORMAT,
        "n_features": int(forest.n_features_in_),
        "max_depths": [int(s["max_depth"]) for s in states],
        "fields": fields,
    }
    return arrays, meta


def forest_from_arrays(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> RandomForestRegressor:
    """Rebuild the fitted forest of :func:`forest_arrays` (no pickle involved).

    Raises
    ------
    BundleError
        The arrays are from another format, or their node fields are not those of the
        installed scikit-learn's trees (re-fit the model with this version).
    """
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor
    from sklearn.tree._tree import NODE_DTYPE, Tree

    if meta.get("format") != FOREST_FORMAT:
        raise BundleError(
            f"forest format {meta.get('format')!r} is not {FOREST_FORMAT!r}; re-save the model"
        )
    fields = list(NODE_DTYPE.names or ())
    if list(meta.get("fields", [])) != fields or any(f not in arrays for f in fields):
        raise BundleError(
            f"the stored forest has node fields {meta.get('fields')!r}, but this scikit-learn "
            f"expects {fields!r}; re-fit the model with the installed versions"
        )
    n_features = int(meta["n_features"])
    offsets = np.asarray(arrays["offsets"], dtype=np.int64)
    if len(offsets) != len(meta["max_depths"]) + 1:
        raise BundleError(
            f"the stored forest has {len(offsets)} tree offsets for "
            f"{len(meta['max_depths'])} trees; re-save the model"
        )
    estimators = []
    for i, depth in enumerate(meta["max_depths"]):
        lo, hi = int(offsets[i]), int(offsets[i + 1])
        nodes = np.empty(hi - lo, dtype=NODE_DTYPE)
        for name in fields:
            nodes[name] = arrays[name][lo:hi]
        _check_tree(nodes, np.asarray(arrays["values"][lo:hi]), n_features, i)
        tree = Tree(n_features, np.ones(1, dtype=np.intp), 1)
        tree.__setstate__({
            "max_depth": int(depth), "node_count": hi - lo, "nodes": nodes,
            "values": np.ascontiguousarray(arrays["values"][lo:hi], np.float64).reshape(-1, 1, 1),
        })  # fmt: skip
        est = DecisionTreeRegressor()
        est.tree_, est.n_features_in_, est.n_outputs_ = tree, n_features, 1
        est.max_features_ = n_features
        estimators.append(est)
    forest = RandomForestRegressor(n_estimators=len(estimators))  # a shell for the trees
    forest.estimators_, forest.n_features_in_, forest.n_outputs_ = estimators, n_features, 1
    forest.estimator_ = DecisionTreeRegressor()
    return forest


def _check_tree(nodes: np.ndarray, values: np.ndarray, n_features: int, index: int) -> None:
    """Refuse node arrays that scikit-learn's unchecked traversal could misread.

    Trees are stored depth first, so every child comes after its parent: with children in
    ``(node, node_count)`` or both ``-1`` (a leaf), a traversal always ends at a leaf and
    never reads outside the arrays, whatever a bundle file holds.
    """
    n = len(nodes)
    node = np.arange(n)
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = (left == -1) & (right == -1)
    inside = (left > node) & (left < n) & (right > node) & (right < n)
    # a split of missing against present values has an infinite threshold: only NaN is wrong
    split_ok = (feature >= 0) & (feature < n_features) & ~np.isnan(nodes["threshold"])
    if n == 0 or not np.all(leaf | (inside & split_ok)) or not np.isfinite(values).all():
        raise BundleError(
            f"tree {index} of the stored forest has invalid nodes (children, features or "
            "values out of range); the bundle is corrupt or was altered, re-save the model"
        )

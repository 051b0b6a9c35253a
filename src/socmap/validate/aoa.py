"""Area of applicability (Meyer & Pebesma 2021): where the model has seen similar covariates.

The dissimilarity index (DI) of a location is the distance, in the space of standardised
covariates weighted by variable importance, to the nearest training sample, divided by the
mean pairwise distance among the training samples. The AOA threshold is the upper whisker of
the training samples' own DI: the largest training DI that does not exceed
``Q3 + 1.5 IQR`` (quartiles by linear interpolation, ``numpy.percentile``'s default; CAST
uses ``boxplot.stats``, whose Tukey hinges differ slightly for small n). A training sample's
DI is measured to its nearest training sample in a *different* cross-validation fold when
``folds`` is given (as in CAST's ``trainDI``), so the threshold reflects what spatial CV
actually tested; otherwise to its nearest *other* training sample (leave-one-out).

Conventions
-----------
* Standardisation uses the training mean and standard deviation (``ddof=1``, as R's
  ``scale``); a constant covariate keeps scale 1 (it contributes 0 within the training data
  and its raw offset elsewhere).
* Training rows with any NaN covariate are excluded from the reference set and counted in
  ``n_excluded_``; new points with any NaN covariate get DI NaN and are outside the AOA
  (``predict`` is False), because the model itself gives NaN there.
* With more than ``subsample`` training samples, the mean pairwise distance is estimated
  from all pairs of a random subset of ``subsample`` samples drawn without replacement with
  ``random_state``: an unbiased estimate of the all-pairs mean (relative standard error about
  0.5 % at the default 2000). DI values scale with it, but the AOA mask does not: the threshold
  is measured in the same units, so ``DI <= threshold`` is unchanged. Nearest-neighbour distances
  are always exact: a :class:`scipy.spatial.cKDTree` for up to ``KDTREE_MAX_DIMS`` covariates,
  and above that (where k-d trees degrade to slower than brute force) a chunked BLAS search
  whose winning distance is recomputed directly, so a training point still has DI exactly 0.

References
----------
Meyer, H., Pebesma, E. (2021) Predicting into unknown space? Estimating the area of
applicability of spatial prediction models. Methods Ecol. Evol. 12:1620-1633.
Meyer, H. et al. CAST: Caret Applications for Spatial-Temporal Models, R package
(``aoa``, ``trainDI``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from socmap._progress import track
from socmap.errors import BandMismatch, BundleError, ConfigError, ProfileValidationError
from socmap.validate._fitted import check_fitted

__all__ = [
    "KDTREE_MAX_DIMS",
    "AreaOfApplicability",
    "nearest_neighbours",
    "site_aoa",
    "training_aoa",
]

FloatArray = npt.NDArray[np.float64]

#: Up to this many covariates nearest neighbours come from a k-d tree, above it by brute force.
KDTREE_MAX_DIMS = 8

_METHOD = "meyer_pebesma_2021"
_CHUNK_ELEMENTS = 1 << 22  # query x reference distances per brute-force chunk (32 MiB)


def nearest_neighbours(
    query: FloatArray,
    ref: FloatArray,
    *,
    workers: int = 1,
    exclude_self: bool = False,
    tree: cKDTree | None = None,
    what: str = "AOA nearest neighbours",
) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Euclidean distance from each query row to its nearest ``ref`` row, and that row.

    Exact either way: a k-d tree up to :data:`KDTREE_MAX_DIMS` columns, else a blocked
    matrix product (a progress bar named ``what`` over many blocks). With ``exclude_self``
    the query is ``ref`` itself and row ``i`` skips reference ``i`` (leave-one-out; exact
    duplicates elsewhere still give 0).
    """
    if ref.shape[1] <= KDTREE_MAX_DIMS:
        t = tree if tree is not None else cKDTree(ref)
        if exclude_self:
            dist, idx = t.query(query, k=2, workers=workers)
            return np.asarray(dist[:, 1], dtype=np.float64), np.asarray(idx[:, 1], dtype=np.intp)
        dist, idx = t.query(query, k=1, workers=workers)
        return np.asarray(dist, dtype=np.float64), np.asarray(idx, dtype=np.intp)
    ref_sq = np.einsum("ij,ij->i", ref, ref)
    out = np.empty(len(query))
    index = np.empty(len(query), dtype=np.intp)
    step = max(1, _CHUNK_ELEMENTS // max(len(ref), 1))
    starts = range(0, len(query), step)
    for s in track(starts, what) if len(starts) > 8 else starts:
        q = query[s : s + step]
        # |q|^2 is constant per row, so it does not change the argmin
        d2 = q @ ref.T
        d2 *= -2.0
        d2 += ref_sq
        if exclude_self:
            d2[np.arange(len(q)), np.arange(s, s + len(q))] = np.inf
        j = np.argmin(d2, axis=1)
        out[s : s + len(q)] = np.sqrt(((q - ref[j]) ** 2).sum(axis=1))
        index[s : s + len(q)] = j
    return out, index


def _matrix(X: Any, what: str) -> tuple[FloatArray, list[str] | None]:
    names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProfileValidationError(
            f"{what} must be numeric, got dtypes {getattr(X, 'dtypes', type(X))!r}; encode "
            "categorical covariates (e.g. one-hot) before computing the AOA"
        ) from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ProfileValidationError(
            f"{what} must be a 2-D (samples, covariates) matrix, got shape {arr.shape!r}; "
            "reshape a raster stack with .reshape(n_bands, -1).T"
        )
    return arr, names


class AreaOfApplicability:
    """Dissimilarity index and area of applicability of a fitted model.

    Parameters
    ----------
    subsample
        Above this many training samples, the mean pairwise distance is estimated from all
        pairs of a seeded random subset of this many samples instead of all pairs.
    random_state
        Seed for that estimate.
    workers
        Threads for k-d tree queries (``-1``: all cores); the brute-force search uses BLAS.

    Attributes
    ----------
    center_, scale_ : numpy.ndarray
        Training mean and standard deviation per covariate.
    weights_ : numpy.ndarray
        Variable importance weights.
    train_ : numpy.ndarray
        Training samples in the weighted standardised space.
    tree_ : scipy.spatial.cKDTree or None
        k-d tree over ``train_`` (None above ``KDTREE_MAX_DIMS`` covariates).
    mean_dist_ : float
        Mean pairwise distance among the training samples.
    train_di_ : numpy.ndarray
        Training DI (cross-fold or leave-one-out).
    fence_ : float
        ``Q3 + 1.5 IQR`` of ``train_di_``.
    threshold_ : float
        AOA threshold: the largest training DI not above ``fence_``.
    n_excluded_ : int
        Training rows left out because a covariate was NaN.
    feature_names_in_ : list of str or None
        Column names when fitted on a DataFrame.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> aoa = AreaOfApplicability().fit(rng.normal(size=(200, 3)))
    >>> aoa.predict(np.array([[0.0, 0.0, 0.0], [8.0, 8.0, 8.0]])).tolist()
    [True, False]
    """

    def __init__(self, subsample: int = 2000, random_state: int | None = 0, workers: int = 1):
        self.subsample = subsample
        self.random_state = random_state
        self.workers = workers

    def fit(
        self,
        X_train: Any,
        weights: npt.ArrayLike | None = None,
        folds: npt.ArrayLike | None = None,
    ) -> Self:
        """Learn the reference set, the mean distance and the AOA threshold.

        Parameters
        ----------
        X_train
            Training covariates, ``(n_samples, n_covariates)`` numeric array or DataFrame.
        weights
            Variable importance per covariate (``>= 0``, not all 0); default all ones.
        folds
            Cross-validation fold label per training sample; training DI is then measured to
            the nearest sample of another fold.

        Returns
        -------
        AreaOfApplicability
            ``self``, fitted.

        Raises
        ------
        ProfileValidationError
            Non-numeric or badly shaped covariates, bad weights or folds, fewer than two usable
            samples, or all samples identical.
        """
        if not (isinstance(self.subsample, int | np.integer) and self.subsample >= 2):
            raise ConfigError(
                f"subsample must be an integer >= 2, got {self.subsample!r}; pass e.g. 2000"
            )
        X, names = _matrix(X_train, "X_train")
        n, p = X.shape
        w = np.ones(p) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if w.size != p or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(
                f"weights must be {p!r} finite non-negative numbers, not all 0, got "
                f"{w.tolist()!r}; pass one variable importance per covariate"
            )
        ok = ~np.isnan(X).any(axis=1)
        fold_arr: np.ndarray | None = None
        if folds is not None:
            fold_arr = np.asarray(folds).ravel()
            if fold_arr.size != n:
                raise ProfileValidationError(
                    f"folds has {fold_arr.size!r} labels for {n!r} training samples; pass one "
                    "fold per sample (e.g. BlockKFold.fold_ids)"
                )
            fold_arr = fold_arr[ok]
            if len(np.unique(fold_arr)) < 2:
                raise ProfileValidationError(
                    f"folds must hold at least two distinct labels, got "
                    f"{np.unique(fold_arr).tolist()!r}; pass CV fold ids or folds=None"
                )
        X = X[ok]
        if len(X) < 2:
            raise ProfileValidationError(
                f"the AOA needs at least 2 training samples without NaN, got {len(X)!r} "
                f"({int((~ok).sum())!r} excluded for NaN); supply more training data"
            )
        center = X.mean(axis=0)
        scale = X.std(axis=0, ddof=1)
        scale = np.where(scale > 0, scale, 1.0)
        Z = (X - center) / scale * w
        mean_dist = self._mean_distance(Z)
        if not mean_dist > 0:
            raise ProfileValidationError(
                "all training samples are identical in the weighted covariate space (mean "
                f"pairwise distance {mean_dist!r}); check the covariates and weights"
            )
        tree = cKDTree(Z) if p <= KDTREE_MAX_DIMS else None
        if fold_arr is None:
            d, _ = nearest_neighbours(Z, Z, workers=self.workers, exclude_self=True, tree=tree)
        else:
            d = np.empty(len(Z))
            for f in np.unique(fold_arr):
                inside = fold_arr == f
                d[inside] = nearest_neighbours(Z[inside], Z[~inside], workers=self.workers)[0]
        train_di = d / mean_dist
        q1, q3 = np.percentile(train_di, [25.0, 75.0])
        fence = float(q3 + 1.5 * (q3 - q1))

        self.feature_names_in_ = names
        self.center_ = center
        self.scale_ = scale
        self.weights_ = w
        self.train_ = Z
        self.tree_ = tree
        self.mean_dist_ = mean_dist
        self.train_di_ = train_di
        self.fence_ = fence
        self.threshold_ = float(train_di[train_di <= fence].max())
        self.n_excluded_ = int((~ok).sum())
        self.cv_ = "folds" if fold_arr is not None else "leave_one_out"
        return self

    def _mean_distance(self, Z: FloatArray) -> float:
        n = len(Z)
        if n <= self.subsample:
            return float(pdist(Z).mean())
        # the pair mean of a uniform random subset is unbiased for the all-pairs mean
        rng = np.random.default_rng(self.random_state)
        pick = rng.choice(n, size=int(self.subsample), replace=False)
        return float(pdist(Z[pick]).mean())

    def predict_di(self, X: Any) -> FloatArray:
        """Dissimilarity index of new points.

        Parameters
        ----------
        X
            Covariates, ``(n_points, n_covariates)``, in the training order (a DataFrame must
            have the training columns).

        Returns
        -------
        numpy.ndarray
            DI per point: 0 at a training sample, NaN where a covariate is NaN.

        Raises
        ------
        BandMismatch
            Wrong number or names of covariates.
        """
        check_fitted(self, "train_")
        arr, names = _matrix(X, "X")
        expected = self.feature_names_in_
        if names is not None and expected is not None and names != expected:
            raise BandMismatch(
                f"covariates {names!r} differ from the training covariates {expected!r}; "
                "select and order the columns as in training"
            )
        if arr.shape[1] != self.train_.shape[1]:
            raise BandMismatch(
                f"X has {arr.shape[1]!r} covariates but the AOA was fitted on "
                f"{self.train_.shape[1]!r}; pass the same covariates in the same order"
            )
        ok = ~np.isnan(arr).any(axis=1)
        di = np.full(len(arr), np.nan)
        if ok.any():
            Z = (arr[ok] - self.center_) / self.scale_ * self.weights_
            d, _ = nearest_neighbours(Z, self.train_, workers=self.workers, tree=self.tree_)
            di[ok] = d / self.mean_dist_
        return di

    def predict(self, X: Any) -> npt.NDArray[np.bool_]:
        """Whether each point lies inside the area of applicability (``DI <= threshold_``).

        Parameters
        ----------
        X
            Covariates, ``(n_points, n_covariates)``.

        Returns
        -------
        numpy.ndarray of bool
            True inside the AOA; False outside or where a covariate is NaN.
        """
        di = self.predict_di(X)
        with np.errstate(invalid="ignore"):
            return np.asarray(di <= self.threshold_, dtype=bool)

    def to_dict(self, arrays: bool = True) -> dict[str, Any]:
        """Export the fitted AOA as JSON-ready data.

        The reference set (``train``, weighted and standardised) is included because
        :meth:`predict_di` needs it; it has ``n_samples * n_covariates`` numbers.

        Parameters
        ----------
        arrays
            Include ``train`` and ``train_di``; a model bundle stores them as tensors
            instead (see :meth:`arrays`) and passes them back to :meth:`from_dict`.

        Returns
        -------
        dict
            ``method``, ``feature_names``, ``center``, ``scale``, ``weights``, ``train``,
            ``mean_dist``, ``threshold``, ``fence``, ``train_di``, ``n_excluded``, ``cv``.
        """
        check_fitted(self, "train_")
        out = {
            "method": _METHOD,
            "feature_names": self.feature_names_in_,
            "center": self.center_.tolist(),
            "scale": self.scale_.tolist(),
            "weights": self.weights_.tolist(),
            "train": self.train_.tolist(),
            "mean_dist": self.mean_dist_,
            "threshold": self.threshold_,
            "fence": self.fence_,
            "train_di": self.train_di_.tolist(),
            "n_excluded": self.n_excluded_,
            "cv": self.cv_,
            "params": {
                "subsample": int(self.subsample),
                "random_state": self.random_state,
                "workers": int(self.workers),
            },
        }
        if not arrays:
            del out["train"], out["train_di"]
        return out

    def arrays(self) -> dict[str, FloatArray]:
        """Return the large parts, ``train`` (reference set) and ``train_di``, as arrays."""
        check_fitted(self, "train_")
        return {"train": self.train_, "train_di": self.train_di_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AreaOfApplicability:
        """Rebuild a fitted AOA from :meth:`to_dict` output.

        Parameters
        ----------
        data
            The stored dictionary.

        Returns
        -------
        AreaOfApplicability
            A fitted AOA with the same DI and threshold.

        Raises
        ------
        BundleError
            Missing keys, an unknown method, or inconsistent shapes.
        """
        need = ("method", "center", "scale", "weights", "train", "mean_dist", "threshold")
        missing = [k for k in need if k not in data]
        if missing:
            raise BundleError(
                f"AOA record lacks {missing!r}; re-export it with AreaOfApplicability.to_dict()"
            )
        if data["method"] != _METHOD:
            raise BundleError(f"AOA method {data['method']!r} is not {_METHOD!r}; refit the AOA")
        params = data.get("params", {})
        aoa = cls(**params)
        train = np.asarray(data["train"], dtype=np.float64)
        vecs = [np.asarray(data[k], dtype=np.float64) for k in ("center", "scale", "weights")]
        if train.ndim != 2 or any(v.shape != (train.shape[1],) for v in vecs):
            raise BundleError(
                f"AOA record shapes disagree: train {train.shape!r}, center/scale/weights "
                f"{[v.shape for v in vecs]!r}; re-export the AOA"
            )
        names = data.get("feature_names")
        aoa.feature_names_in_ = None if names is None else [str(c) for c in names]
        aoa.center_, aoa.scale_, aoa.weights_ = vecs
        aoa.train_ = train
        aoa.tree_ = cKDTree(train) if train.shape[1] <= KDTREE_MAX_DIMS else None
        aoa.mean_dist_ = float(data["mean_dist"])
        aoa.threshold_ = float(data["threshold"])
        aoa.fence_ = float(data.get("fence", np.nan))
        aoa.train_di_ = np.asarray(data.get("train_di", []), dtype=np.float64)
        aoa.n_excluded_ = int(data.get("n_excluded", 0))
        aoa.cv_ = str(data.get("cv", "unknown"))
        return aoa


def site_aoa(
    table: pd.DataFrame,
    bands: Sequence[str],
    folds: Mapping[Any, Any] | None = None,
    *,
    random_state: int | None = 0,
) -> AreaOfApplicability:
    """AOA of the training sites of a site x depth table (one reference point per site).

    Every depth interval of a site shares its covariates, so the reference set holds each
    site once; otherwise a site's other intervals would be its own nearest neighbours.

    Parameters
    ----------
    table
        Training rows with ``site_id`` and the ``bands`` columns.
    bands
        Continuous covariates, equally weighted.
    folds
        ``site_id -> CV fold``: training DI is measured to the nearest site of another fold
        (CAST's ``trainDI``); default leave-one-site-out.
    random_state
        Seed of the mean-distance subsample.

    Raises
    ------
    BandMismatch
        If a band column is missing.
    """
    absent = [b for b in bands if b not in table.columns]
    if absent:
        raise BandMismatch(f"table lacks AOA covariates {absent!r}; extract them at the sites")
    sites = table.drop_duplicates("site_id")
    labels = None
    if folds is not None:
        labels = sites["site_id"].map(folds).to_numpy()
        if pd.isna(labels).any() or len(pd.unique(labels)) < 2:
            labels = None  # fewer than two folds among these sites: leave-one-out instead
    return AreaOfApplicability(random_state=random_state).fit(
        sites[list(bands)].astype(float), folds=labels
    )


def training_aoa(
    table: pd.DataFrame,
    bands: Sequence[str],
    block_size: float,
    *,
    n_splits: int = 10,
    units: str = "auto",
    seed: int = 0,
) -> AreaOfApplicability:
    """AOA of a model's training sites, training DI measured across spatial CV folds.

    The sites are split into ``n_splits`` :class:`~socmap.validate.BlockKFold` folds of
    ``block_size`` blocks (fewer when there are fewer blocks), as the model's own spatial
    CV would, so the threshold reflects the extrapolation that CV tested.

    Parameters
    ----------
    table
        Training rows (``site_id``, ``x``, ``y``, ``crs`` and ``bands``).
    bands
        Continuous covariates, equally weighted.
    block_size, units
        CV blocks, in the units of the sites' CRS (e.g. metres) or degrees.
    n_splits
        Folds (at most the number of non-empty blocks).
    seed
        Seed of the fold assignment and the mean-distance subsample.
    """
    from socmap.validate.splitters import BlockKFold, block_ids

    sites = table.drop_duplicates("site_id").reset_index(drop=True)
    n_blocks = len(np.unique(block_ids(sites, block_size=block_size, units=units)))  # type: ignore[arg-type]
    k = min(n_splits, n_blocks)
    folds = None
    if k >= 2:
        cv = BlockKFold(k, block_size, units=units, random_state=seed)  # type: ignore[arg-type]
        folds = dict(zip(sites["site_id"], cv.fold_ids(sites), strict=True))
    return site_aoa(table, bands, folds, random_state=seed)

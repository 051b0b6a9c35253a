"""Spatial block cross-validation that keeps soil profiles whole.

Rows of a profile table are depth intervals of profiles; a random K-fold would put the 0-5 cm
row of a profile in the test fold and its 5-15 cm row in the training fold, and neighbouring
profiles on both sides, which makes the error estimate optimistic (Roberts et al. 2017).
:class:`BlockKFold` cuts space into square blocks of ``block_size`` (degrees or metres),
``floor(x / size), floor(y / size)``, and hands whole blocks to folds, so a profile (all its
rows) and its block neighbours are always tested together.

Fold assignment (``balance=True``, the default) is greedy: blocks sorted by row count,
largest first, each go to the fold with the fewest rows so far; blocks of equal size are
visited in a seeded random order and ties between equally full folds are broken at random,
so different seeds give different, equally balanced partitions. With ``balance=False`` the
(shuffled) blocks are cut into ``n_splits`` runs of equal block count, as in verde.

A profile is located by its first row; every row of a profile must share one location (within
``1e-9`` relative), else :class:`~socmap.errors.ProfileValidationError` names the profile.

References
----------
Roberts, D.R. et al. (2017) Cross-validation strategies for data with temporal, spatial,
hierarchical, or phylogenetic structure. Ecography 40:913-929.
Uieda, L. (2018) Verde: Processing and gridding spatial data using Green's functions. JOSS 3(29)
(``verde.BlockKFold``).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError
from sklearn.model_selection import BaseCrossValidator

from socmap.errors import CRSError, ProfileValidationError

__all__ = ["BlockKFold", "block_ids", "spatial_train_val_split"]

Units = Literal["degrees", "metres", "auto"]
IntArray = npt.NDArray[np.int64]
RandomState = int | np.random.Generator | None

_UNITS = ("degrees", "metres", "auto")
_SAME_LOCATION_RTOL = 1e-9


def _check_params(block_size: float, units: str) -> None:
    if units not in _UNITS:
        raise ProfileValidationError(
            f"units must be one of {_UNITS!r}, got {units!r}; pass 'degrees', 'metres' or 'auto'"
        )
    if not (np.isfinite(block_size) and block_size > 0):
        raise ProfileValidationError(
            f"block_size must be a positive finite number, got {block_size!r}; "
            "pass e.g. 5.0 (degrees) or 50_000 (metres)"
        )


def _resolve_crs(X: pd.DataFrame, crs: Any) -> CRS | None:
    names: list[Any] = []
    if crs is not None:
        names.append(crs)
    if "crs" in X.columns:
        col = X["crs"]
        if col.isna().any():
            pos = int(np.flatnonzero(col.isna().to_numpy())[0])
            raise CRSError(
                f"the 'crs' column is missing at row {pos!r}; fill it for every row or drop the "
                "column and pass crs= to the splitter"
            )
        names.extend(col.unique().tolist())
    if not names:
        return None
    parsed: list[CRS] = []
    for name in names:
        try:
            pc = CRS.from_user_input(name)
        except PyprojCRSError as exc:
            raise CRSError(
                f"cannot parse CRS {name!r} ({exc}); use an authority code such as 'EPSG:4326'"
            ) from None
        if not any(pc.equals(p) for p in parsed):
            parsed.append(pc)
    if len(parsed) > 1:
        shown = [p.to_string() for p in parsed]
        raise CRSError(
            f"coordinates must share one CRS to be cut into blocks, got {shown!r}; reproject "
            "x/y to one CRS first"
        )
    return parsed[0]


def _resolve_units(units: str, pc: CRS | None) -> str:
    if pc is None:
        if units == "auto":
            raise CRSError(
                "units='auto' needs a CRS, but X has no 'crs' column and crs=None; add a 'crs' "
                "column, pass crs='EPSG:…', or set units='degrees'/'metres'"
            )
        return units
    found = "degrees" if pc.is_geographic else "metres"
    if units != "auto" and units != found:
        raise CRSError(
            f"block units {units!r} do not match the CRS {pc.to_string()!r}, whose coordinates "
            f"are in {found}; set units={found!r} (or 'auto') and give block_size in {found}"
        )
    return found


def _coords(X: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(X, pd.DataFrame) or not {"x", "y"} <= set(X.columns):
        cols = list(X.columns) if isinstance(X, pd.DataFrame) else type(X).__name__
        raise ProfileValidationError(
            f"X must be a pandas DataFrame with 'x' and 'y' columns, got {cols!r}; pass the "
            "profile table (or pd.DataFrame({'x': ..., 'y': ...}))"
        )
    x = X["x"].to_numpy(dtype=np.float64, na_value=np.nan)
    y = X["y"].to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ProfileValidationError(
            f"{int(bad.sum())} rows have missing or infinite x/y, first at row {pos!r} "
            f"({float(x[pos])!r}, {float(y[pos])!r}); fix or remove them "
            "(socmap.profiles.qc_profiles flags them)"
        )
    return x, y


def _group_codes(X: pd.DataFrame, groups: Any) -> tuple[IntArray, np.ndarray]:
    n = len(X)
    if groups is None and "site_id" in X.columns:
        groups = X["site_id"]
    if groups is None:
        return np.arange(n, dtype=np.int64), np.arange(n)
    g = pd.Series(np.asarray(groups) if not isinstance(groups, pd.Series) else groups.to_numpy())
    if len(g) != n:
        raise ProfileValidationError(
            f"groups has {len(g)!r} entries but X has {n!r} rows; pass one profile id per row"
        )
    if g.isna().any():
        pos = int(np.flatnonzero(g.isna().to_numpy())[0])
        raise ProfileValidationError(
            f"groups (profile ids) are missing at {int(g.isna().sum())!r} rows, first at row "
            f"{pos!r}; give every row its profile's site_id"
        )
    codes, uniques = pd.factorize(g)
    return codes.astype(np.int64), np.asarray(uniques)


def block_ids(
    X: pd.DataFrame,
    groups: Any = None,
    *,
    block_size: float = 5.0,
    units: Units = "auto",
    crs: Any = None,
) -> IntArray:
    """Return the spatial block number of every row, keeping each profile in one block.

    Parameters
    ----------
    X
        Table with ``x`` and ``y`` columns, and optionally ``crs`` and ``site_id``.
    groups
        Profile id per row; defaults to ``X["site_id"]`` when present, else one row per profile.
    block_size
        Side of the square blocks, in the units of ``units``.
    units
        ``"degrees"``, ``"metres"`` or ``"auto"`` (taken from the CRS).
    crs
        CRS of ``x``/``y`` when ``X`` has no ``crs`` column.

    Returns
    -------
    numpy.ndarray
        Block number per row, ``0 .. n_blocks - 1`` (blocks numbered by (bx, by) order).

    Raises
    ------
    ProfileValidationError
        Missing coordinates, bad groups, or a profile with two locations.
    CRSError
        Several CRSs, an unparsable CRS, or units that contradict the CRS.

    Examples
    --------
    >>> X = pd.DataFrame({"x": [0.5, 0.7, 3.2], "y": [0.1, 1.9, 0.4]})
    >>> block_ids(X, block_size=2.0, units="degrees").tolist()
    [0, 0, 1]
    """
    _check_params(block_size, units)
    x, y = _coords(X)
    _resolve_units(units, _resolve_crs(X, crs))
    codes, labels = _group_codes(X, groups)
    if len(codes) == 0:
        return codes
    frame = pd.DataFrame({"g": codes, "x": x, "y": y}).groupby("g", sort=True)
    lo, hi = frame.min(), frame.max()
    scale = np.maximum(1.0, np.maximum(np.abs(lo.to_numpy()), np.abs(hi.to_numpy())))
    spread = (hi.to_numpy() - lo.to_numpy()) > _SAME_LOCATION_RTOL * scale
    if spread.any():
        gpos = int(np.flatnonzero(spread.any(axis=1))[0])
        gcode = int(lo.index[gpos])
        rows = np.flatnonzero(codes == gcode)
        locs = sorted({(float(x[i]), float(y[i])) for i in rows})
        label = labels[gcode].item() if hasattr(labels[gcode], "item") else labels[gcode]
        raise ProfileValidationError(
            f"profile {label!r} has rows at {len(locs)!r} locations, e.g. {locs[:3]!r}; all depth "
            "intervals of a profile must share one x/y, so fix the coordinates or give the "
            "profiles distinct ids"
        )
    _, first = np.unique(codes, return_index=True)
    bx = np.floor(x[first] / block_size).astype(np.int64)
    by = np.floor(y[first] / block_size).astype(np.int64)
    _, block_of_group = np.unique(np.stack([bx, by], axis=1), axis=0, return_inverse=True)
    return np.asarray(block_of_group, dtype=np.int64).ravel()[codes]


def _balanced(sizes: IntArray, n_splits: int, rng: np.random.Generator | None) -> IntArray:
    nb = len(sizes)
    order = rng.permutation(nb) if rng is not None else np.arange(nb)
    order = order[np.argsort(-sizes[order], kind="stable")]
    # heap of (rows so far, random tie key, fold): the emptiest fold pops first
    keys = rng.random(n_splits) if rng is not None else np.arange(n_splits, dtype=float)
    heap = [(0, float(keys[f]), f) for f in range(n_splits)]
    heapq.heapify(heap)
    fold = np.empty(nb, dtype=np.int64)
    for b in order:
        count, _, f = heapq.heappop(heap)
        fold[b] = f
        tie = float(rng.random()) if rng is not None else float(f)
        heapq.heappush(heap, (count + int(sizes[b]), tie, f))
    return fold


def _unbalanced(nb: int, n_splits: int, rng: np.random.Generator | None) -> IntArray:
    order = rng.permutation(nb) if rng is not None else np.arange(nb)
    fold = np.empty(nb, dtype=np.int64)
    for f, part in enumerate(np.array_split(order, n_splits)):
        fold[part] = f
    return fold


class BlockKFold(BaseCrossValidator):
    """K-fold cross-validator over square spatial blocks that keeps profiles whole.

    Parameters
    ----------
    n_splits
        Number of folds (at least 2).
    block_size
        Side of the square blocks in ``units`` (e.g. 5.0 degrees for the global table,
        10_000 metres for a region).
    units
        ``"degrees"``, ``"metres"`` or ``"auto"``: degrees for a geographic CRS, metres for a
        projected one. An explicit unit that contradicts the CRS raises :class:`CRSError`.
    shuffle
        Visit blocks in a seeded random order (ties in the balanced assignment, or the order of
        blocks cut into folds when ``balance=False``). With ``False`` the result depends only on
        the data.
    random_state
        Seed or :class:`numpy.random.Generator`; an int gives the same folds on every call.
    balance
        Balance fold row counts greedily (largest block to the emptiest fold). With ``False``
        each fold gets the same number of blocks.
    crs
        CRS of ``x``/``y`` when ``X`` has no ``crs`` column.

    Notes
    -----
    ``split(X, y, groups)`` takes a DataFrame with ``x``, ``y`` (and optionally ``crs`` and
    ``site_id``) columns; ``groups`` (default ``X["site_id"]``) are profile ids, so every depth
    interval of a profile lands in the same fold. It raises
    :class:`~socmap.errors.ProfileValidationError` when there are fewer non-empty blocks than
    folds. ``groups`` is requested by default, so :func:`sklearn.model_selection.cross_val_score`
    and :class:`~sklearn.model_selection.GridSearchCV` pass it through.

    Examples
    --------
    Sixteen sites one degree apart, cut into 2° blocks and two folds; each grid shows the test
    sites of a fold (north up):

    >>> import numpy as np, pandas as pd
    >>> yy, xx = np.mgrid[3.5:0:-1, 0.5:4:1]
    >>> X = pd.DataFrame({"x": xx.ravel(), "y": yy.ravel(), "crs": "EPSG:4326"})
    >>> cv = BlockKFold(n_splits=2, block_size=2.0, random_state=0)
    >>> for k, (train, test) in enumerate(cv.split(X)):
    ...     mask = np.isin(np.arange(len(X)), test).reshape(xx.shape)
    ...     print(f"fold {k}:")
    ...     print(mask.astype(int))
    fold 0:
    [[0 0 1 1]
     [0 0 1 1]
     [1 1 0 0]
     [1 1 0 0]]
    fold 1:
    [[1 1 0 0]
     [1 1 0 0]
     [0 0 1 1]
     [0 0 1 1]]
    """

    __metadata_request__split = {"groups": True}  # noqa: RUF012  (sklearn's own convention)

    def __init__(
        self,
        n_splits: int = 10,
        block_size: float = 5.0,
        units: Units = "auto",
        shuffle: bool = True,
        random_state: RandomState = None,
        balance: bool = True,
        crs: Any = None,
    ) -> None:
        self.n_splits = n_splits
        self.block_size = block_size
        self.units = units
        self.shuffle = shuffle
        self.random_state = random_state
        self.balance = balance
        self.crs = crs

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return the number of folds, ``n_splits``.

        Parameters
        ----------
        X, y, groups
            Ignored; present for scikit-learn compatibility.

        Returns
        -------
        int
            ``n_splits``.
        """
        return int(self.n_splits)

    def fold_ids(self, X: pd.DataFrame, groups: Any = None) -> IntArray:
        """Return the fold number (``0 .. n_splits - 1``) of every row.

        Parameters
        ----------
        X
            Table with ``x`` and ``y`` columns (and optionally ``crs``, ``site_id``).
        groups
            Profile id per row; defaults to ``X["site_id"]``, else one profile per row.

        Returns
        -------
        numpy.ndarray
            Fold number per row.

        Raises
        ------
        ProfileValidationError
            Fewer non-empty blocks than folds, bad parameters, missing coordinates, or a
            profile with two locations.
        CRSError
            Several CRSs, or units that contradict the CRS.
        """
        if (
            isinstance(self.n_splits, bool)
            or int(self.n_splits) != self.n_splits
            or (self.n_splits < 2)
        ):
            raise ProfileValidationError(
                f"n_splits must be an integer >= 2, got {self.n_splits!r}; pass e.g. n_splits=5"
            )
        k = int(self.n_splits)
        blocks = block_ids(X, groups, block_size=self.block_size, units=self.units, crs=self.crs)
        sizes = np.bincount(blocks).astype(np.int64) if len(blocks) else np.zeros(0, np.int64)
        nb = len(sizes)
        if nb < k:
            raise ProfileValidationError(
                f"{nb!r} non-empty spatial blocks of size {self.block_size!r} cannot fill "
                f"{k!r} folds; use a smaller block_size or fewer n_splits"
            )
        rng = np.random.default_rng(self.random_state) if self.shuffle else None
        fold = _balanced(sizes, k, rng) if self.balance else _unbalanced(nb, k, rng)
        return fold[blocks]

    def split(
        self, X: pd.DataFrame, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        """Yield ``(train_idx, test_idx)`` positional index arrays, one pair per fold.

        Parameters
        ----------
        X
            Table with ``x`` and ``y`` columns (and optionally ``crs``, ``site_id``).
        y
            Ignored.
        groups
            Profile id per row; defaults to ``X["site_id"]``, else one profile per row.

        Yields
        ------
        train_idx, test_idx : numpy.ndarray
            Positions of the training and test rows.
        """
        fold = self.fold_ids(X, groups)
        idx = np.arange(len(fold), dtype=np.int64)
        for k in range(int(self.n_splits)):
            test = fold == k
            yield idx[~test], idx[test]


def spatial_train_val_split(
    X: pd.DataFrame,
    groups: Any = None,
    *,
    val_fraction: float = 0.2,
    block_size: float = 5.0,
    units: Units = "auto",
    crs: Any = None,
    random_state: RandomState = None,
) -> tuple[IntArray, IntArray]:
    """Split rows into training and validation sets by whole spatial blocks.

    Meant for early stopping and inner model selection inside a training fold: the validation
    set is a seeded random set of blocks whose row count is as close to ``val_fraction`` of the
    rows as the blocks allow. Profiles and blocks are never split, and both sets are non-empty.

    Parameters
    ----------
    X
        Table with ``x`` and ``y`` columns (and optionally ``crs``, ``site_id``).
    groups
        Profile id per row; defaults to ``X["site_id"]``, else one profile per row.
    val_fraction
        Target share of rows in the validation set, in (0, 1).
    block_size, units, crs
        As for :class:`BlockKFold`.
    random_state
        Seed or :class:`numpy.random.Generator`.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted positions of the training and validation rows.

    Raises
    ------
    ProfileValidationError
        ``val_fraction`` outside (0, 1), or fewer than two non-empty blocks.

    Examples
    --------
    >>> X = pd.DataFrame({"x": np.arange(10.0), "y": 0.0})
    >>> train, val = spatial_train_val_split(
    ...     X, val_fraction=0.3, block_size=1.0, units="metres", random_state=1
    ... )
    >>> len(train), len(val)
    (7, 3)
    """
    if not 0.0 < val_fraction < 1.0:
        raise ProfileValidationError(
            f"val_fraction must lie in (0, 1), got {val_fraction!r}; pass e.g. 0.2"
        )
    blocks = block_ids(X, groups, block_size=block_size, units=units, crs=crs)
    sizes = np.bincount(blocks) if len(blocks) else np.zeros(0, np.int64)
    if len(sizes) < 2:
        raise ProfileValidationError(
            f"{len(sizes)!r} non-empty spatial blocks of size {block_size!r} cannot make a "
            "train/validation split; use a smaller block_size"
        )
    rng = np.random.default_rng(random_state)
    target = val_fraction * len(blocks)
    total = len(blocks)
    in_val = np.zeros(len(sizes), dtype=bool)
    n_val = 0
    for b in rng.permutation(len(sizes)):
        s = int(sizes[b])
        if n_val + s >= total:
            continue  # the training set must keep at least one block
        if n_val == 0 or abs(n_val + s - target) < abs(n_val - target):
            in_val[b] = True
            n_val += s
    val = in_val[blocks]
    idx = np.arange(total, dtype=np.int64)
    return idx[~val], idx[val]

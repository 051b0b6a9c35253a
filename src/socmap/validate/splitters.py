"""Spatial block cross-validation that keeps soil profiles whole.

Rows of a profile table are depth intervals of profiles; a random K-fold would put the 0-5 cm
row of a profile in the test fold and its 5-15 cm row in the training fold, and neighbouring
profiles on both sides, which makes the error estimate optimistic (Roberts et al. 2017).
:class:`BlockKFold` cuts space into square blocks of ``block_size`` (degrees or metres),
``floor(x / size), floor(y / size)``, and hands whole blocks to folds, so a profile (all its
rows) and its block neighbours are always tested together.

Block sizes carry units: ``"2km"``, ``"2000m"``, ``"0.1deg"``, ``"5°"`` (see
:func:`parse_block_size`), or a plain number in the units of the coordinates' CRS. A size in
other units than the CRS's is converted at one degree = 111,320 m (a degree of latitude) on both
axes (:func:`resolve_block_size`); :class:`ColumnFolds` uses a fold assignment of your own.

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
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pyproj import CRS
from pyproj.exceptions import CRSError as PyprojCRSError
from sklearn.model_selection import BaseCrossValidator

from socmap.errors import ConfigError, CRSError, ProfileValidationError

__all__ = [
    "METRES_PER_DEGREE",
    "BlockKFold",
    "BlockSize",
    "ColumnFolds",
    "block_ids",
    "coordinate_units",
    "parse_block_size",
    "resolve_block_size",
    "spatial_train_val_split",
]

Units = Literal["degrees", "metres", "auto"]
#: A block side: a number in the coordinates' own units, or a string with units (``"2km"``).
BlockSize = float | str
IntArray = npt.NDArray[np.int64]
RandomState = int | np.random.Generator | None

#: Metres in one degree of latitude (mean, WGS 84), used to convert block sizes.
METRES_PER_DEGREE = 111_320.0

_UNITS = ("degrees", "metres", "auto")
_SAME_LOCATION_RTOL = 1e-9
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_BLOCK_RE = re.compile(rf"^\s*({_NUMBER})\s*([^\s\d.+-][^\s]*)?\s*$")
_SUFFIXES: dict[str, tuple[float, str]] = {
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters"), (1.0, "metres")),
    **dict.fromkeys(("km", "kilometre", "kilometres", "kilometer", "kilometers"), (1e3, "metres")),
    **dict.fromkeys(("deg", "degree", "degrees", "°"), (1.0, "degrees")),
}
_EXAMPLES = "e.g. '2km', '2000m', '0.1deg' or '5°' (a plain number is in the CRS's own units)"


def parse_block_size(text: BlockSize) -> tuple[float, str | None]:
    """Split a block size such as ``"2km"`` into a value and its units.

    Parameters
    ----------
    text
        A positive number with an optional unit: ``m``/``metre(s)``/``meter(s)``,
        ``km``/``kilometre(s)``, ``deg``/``degree(s)``/``°`` (case-insensitive, spaces
        allowed), or a plain number (a Python number, or text without a unit).

    Returns
    -------
    value, units : float, str or None
        The size in ``"metres"`` (kilometres are converted) or ``"degrees"``; ``units`` is
        ``None`` for a plain number, which is in the units of the coordinates' CRS.

    Raises
    ------
    ConfigError
        Not a number, an unknown unit, or a size that is not positive and finite.

    Examples
    --------
    >>> parse_block_size("2km"), parse_block_size("0.1 deg"), parse_block_size("5°")
    ((2000.0, 'metres'), (0.1, 'degrees'), (5.0, 'degrees'))
    >>> parse_block_size("2000"), parse_block_size(2000)
    ((2000.0, None), (2000.0, None))
    """
    if isinstance(text, str):
        match = _BLOCK_RE.match(text)
        if match is None:
            raise ConfigError(
                f"block size {text!r} is not a number with an optional unit; write {_EXAMPLES}"
            )
        number, suffix = match.groups()
        factor, units = (1.0, None) if suffix is None else _SUFFIXES.get(suffix.lower(), (0, ""))
        if not units and suffix is not None:
            raise ConfigError(
                f"block size {text!r} has an unknown unit {suffix!r}; write {_EXAMPLES}"
            )
        value = float(number) * factor
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"block size {text!r} must be positive and finite; write {_EXAMPLES}")
        return value, units
    if isinstance(text, bool) or not isinstance(text, int | float | np.integer | np.floating):
        raise ConfigError(
            f"block_size must be a number or a string with units, got {text!r}; write {_EXAMPLES}"
        )
    if not (np.isfinite(text) and text > 0):
        raise ConfigError(
            f"block_size must be a positive finite number, got {text!r}; "
            f"pass e.g. 5.0 (degrees) or 50_000 (metres), or a size with units, {_EXAMPLES}"
        )
    return float(text), None


def _check_params(block_size: BlockSize, units: str) -> tuple[float, str | None]:
    if units not in _UNITS:
        raise ConfigError(
            f"units must be one of {_UNITS!r}, got {units!r}; pass 'degrees', 'metres' or 'auto'"
        )
    return parse_block_size(block_size)


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
            f"are in {found}; set units={found!r} (or 'auto') and give block_size in {found} "
            "or with units (e.g. '2km', '0.1deg')"
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


@dataclass(frozen=True)
class _Frame:
    """Coordinate units of a table: what a plain block size means, and metres per unit."""

    units: str  # "degrees" or "metres" (a projected CRS, whatever its linear unit)
    label: str  # unit name for messages: "degrees", "metres", "US survey foot", ...
    metres_per_unit: float


def _frame(units: str, pc: CRS | None) -> _Frame:
    found = _resolve_units(units, pc)
    if found == "degrees":
        return _Frame("degrees", "degrees", METRES_PER_DEGREE)
    factor, label = 1.0, "metres"
    if pc is not None and pc.axis_info:
        axis = pc.axis_info[0]
        if axis.unit_conversion_factor and axis.unit_name not in ("metre", "meter"):
            factor, label = float(axis.unit_conversion_factor), str(axis.unit_name)
    return _Frame("metres", label, factor)


def _convert(value: float, given: str | None, frame: _Frame) -> float:
    if given is None or (given == "degrees" and frame.units == "degrees"):
        return value
    metres = value if given == "metres" else value * METRES_PER_DEGREE
    return metres / frame.metres_per_unit


def coordinate_units(X: pd.DataFrame, units: Units = "auto") -> tuple[str, float]:
    """Units of a table's ``x``/``y`` (from its ``crs`` column) and metres per unit.

    Returns
    -------
    units, metres_per_unit : str, float
        ``"degrees"`` (:data:`METRES_PER_DEGREE` per unit, a degree of latitude) or
        ``"metres"`` (a projected CRS; its linear unit in metres).

    Examples
    --------
    >>> coordinate_units(pd.DataFrame({"x": [0.0], "y": [0.0], "crs": ["EPSG:4326"]}))
    ('degrees', 111320.0)
    """
    if units not in _UNITS:
        raise ConfigError(
            f"units must be one of {_UNITS!r}, got {units!r}; pass 'degrees', 'metres' or 'auto'"
        )
    frame = _frame(units, _resolve_crs(X, None))
    return frame.units, frame.metres_per_unit


def resolve_block_size(
    block_size: BlockSize,
    X: pd.DataFrame | None = None,
    *,
    units: Units = "auto",
    crs: Any = None,
) -> float:
    """Return a block size in the units of the coordinates.

    Parameters
    ----------
    block_size
        A number in the coordinates' own units, or a string with units (``"2km"``,
        ``"2000m"``, ``"0.1deg"``, ``"5°"``; see :func:`parse_block_size`).
    X
        Table whose ``crs`` column gives the CRS (optional).
    units
        Units of the coordinates: ``"auto"`` (from the CRS), ``"degrees"`` or ``"metres"``.
        An explicit unit that contradicts the CRS raises :class:`~socmap.errors.CRSError`.
    crs
        CRS of the coordinates when ``X`` has no ``crs`` column.

    Returns
    -------
    float
        Side of the square blocks in the coordinates' units.

    Notes
    -----
    The conversion rule: one degree is 111,320 m (:data:`METRES_PER_DEGREE`, a degree of
    latitude) on both axes. Metres on a geographic CRS become degrees of latitude, so a
    ``"2km"`` block is 2 km north-south and ``2 km x cos(latitude)`` east-west (1.73 km at
    30°, 1 km at 60°); degrees on a projected CRS become ``degrees x 111,320`` metres. A
    projected CRS in feet gets metres converted to feet. The rule depends on the CRS only, not
    on the rows, so every subset of a table (a CV fold, an early-stopping split) is cut on the
    same grid.

    Examples
    --------
    >>> round(resolve_block_size("2km", crs="EPSG:4326"), 6)
    0.017966
    >>> resolve_block_size("0.1deg", crs="EPSG:32755")
    11132.0
    >>> resolve_block_size(2000.0, crs="EPSG:32755"), resolve_block_size("2km", units="metres")
    (2000.0, 2000.0)
    """
    value, given = _check_params(block_size, units)
    if X is not None and not isinstance(X, pd.DataFrame):
        raise ProfileValidationError(
            f"X must be a pandas DataFrame (with a 'crs' column), got {type(X).__name__!r}; "
            "pass the profile table or crs='EPSG:…'"
        )
    pc = _resolve_crs(X if X is not None else pd.DataFrame(), crs)
    return _convert(value, given, _frame(units, pc))


@dataclass(frozen=True)
class _Blocks:
    ids: IntArray
    size: float  # in the coordinates' units
    frame: _Frame
    span: tuple[float, float]  # x and y extent of the profile locations
    places: int = 0  # distinct profile locations
    profiles: int = 0  # groups (profiles)


def _blocks(X: pd.DataFrame, groups: Any, block_size: BlockSize, units: str, crs: Any) -> _Blocks:
    value, given = _check_params(block_size, units)
    x, y = _coords(X)
    frame = _frame(units, _resolve_crs(X, crs))
    size = _convert(value, given, frame)
    codes, labels = _group_codes(X, groups)
    if len(codes) == 0:
        return _Blocks(codes, size, frame, (0.0, 0.0))
    grouped = pd.DataFrame({"g": codes, "x": x, "y": y}).groupby("g", sort=True)
    lo, hi = grouped.min(), grouped.max()
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
    bx = np.floor(x[first] / size).astype(np.int64)
    by = np.floor(y[first] / size).astype(np.int64)
    _, block_of_group = np.unique(np.stack([bx, by], axis=1), axis=0, return_inverse=True)
    ids = np.asarray(block_of_group, dtype=np.int64).ravel()[codes]
    span = (float(np.ptp(x[first])), float(np.ptp(y[first])))
    places = len(np.unique(np.stack([x[first], y[first]], axis=1), axis=0))
    return _Blocks(ids, size, frame, span, places, len(first))


def _fmt_size(metres: float, units: str) -> str:
    """Write a ground size as text: ``1500.0, "metres" -> '1.5km'``, degrees as ``'0.05deg'``."""
    if units == "degrees":
        return f"{_num(metres / METRES_PER_DEGREE, 3)}deg"
    return f"{_num(metres / 1e3, 3)}km" if metres >= 1e3 else f"{_num(metres, 3)}m"


def _num(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits, without an exponent (``1113.2 -> '1113'``)."""
    return str(
        np.format_float_positional(
            value, precision=digits, unique=False, fractional=False, trim="-"
        )
    )


def _round_down(value: float) -> float:
    """Round down to one significant figure (``0.0437 -> 0.04``)."""
    step = 10.0 ** math.floor(math.log10(value))
    return math.floor(value / step) * step


def _too_few_blocks(
    n_blocks: int, need: str, n_needed: int, block_size: BlockSize, blk: _Blocks
) -> str:
    """Error message: the count, the size in data units, the data's extent, a smaller size."""
    f = blk.frame
    dx, dy = blk.span
    if f.label == "metres":
        size = f"{_num(blk.size / 1e3)} km"
        span = f"{_num(dx / 1e3)} x {_num(dy / 1e3)} km (x by y)"
    else:
        per_km = f.metres_per_unit / 1e3
        size = f"{_num(blk.size)} {f.label}"
        span = (
            f"{_num(dx)} x {_num(dy)} {f.label} (x by y; about {_num(dx * per_km)} x "
            f"{_num(dy * per_km)} km)"
        )
    head = f"{n_blocks!r} non-empty spatial blocks of size {block_size!r} ({size}) cannot {need}"
    if blk.profiles == 1:  # neither blocks nor folds of one's own can split one profile
        return (
            f"{head}: there is only one profile, and cross-validation holds out whole "
            f"profiles; it needs {n_needed} profiles or more, so add profiles"
        )
    if max(dx, dy) <= 0:
        return (
            f"{head}: every profile is at one location, so no block size helps; spatial CV "
            "needs profiles at several places (or folds of your own: CLI --folds-column, Python "
            "ColumnFolds)"
        )
    if blk.places < n_needed:  # a block holds one place at least: no size gives more blocks
        return (
            f"{head}: the profiles lie at only {blk.places} distinct places, so no block size "
            f"helps; use {blk.places} folds or fewer, or add profiles from other places"
        )
    # about 2 * n_needed blocks along the longer side usually leaves n_needed of them non-empty
    smaller = _round_down(max(dx, dy) / (2 * n_needed)) * f.metres_per_unit  # in metres
    given = parse_block_size(block_size)[1] or f.units
    suggestion = repr(_fmt_size(smaller, given))
    if f.units == "degrees":
        other = "metres" if given == "degrees" else "degrees"
        suggestion += f" (= {_fmt_size(smaller, other)!r})"
    return (
        f"{head}: the profiles span {span}; use a smaller block size with units "
        f"such as {suggestion}, or fewer folds"
    )


def block_ids(
    X: pd.DataFrame,
    groups: Any = None,
    *,
    block_size: BlockSize = 5.0,
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
        Side of the square blocks: a number in the coordinates' units (``units``), or a
        string with units such as ``"2km"`` or ``"0.1deg"``, converted as
        :func:`resolve_block_size` says.
    units
        Units of the coordinates: ``"degrees"``, ``"metres"`` or ``"auto"`` (from the CRS).
    crs
        CRS of ``x``/``y`` when ``X`` has no ``crs`` column.

    Returns
    -------
    numpy.ndarray
        Block number per row, ``0 .. n_blocks - 1`` (blocks numbered by (bx, by) order).
        A single block is not an error here; the splitters raise when blocks are too few.

    Raises
    ------
    ConfigError
        A bad block size.
    ProfileValidationError
        Missing coordinates, bad groups, or a profile with two locations.
    CRSError
        Several CRSs, an unparsable CRS, or units that contradict the CRS.

    Examples
    --------
    >>> X = pd.DataFrame({"x": [0.5, 0.7, 3.2], "y": [0.1, 1.9, 0.4]})
    >>> block_ids(X, block_size=2.0, units="degrees").tolist()
    [0, 0, 1]
    >>> block_ids(X, block_size="250km", units="degrees").tolist()
    [0, 0, 1]
    """
    return _blocks(X, groups, block_size, units, crs).ids


def _fold_splits(fold: IntArray, n_splits: int) -> Iterator[tuple[IntArray, IntArray]]:
    """``(train_idx, test_idx)`` row positions of folds ``0 .. n_splits - 1``."""
    idx = np.arange(len(fold), dtype=np.int64)
    for k in range(n_splits):
        test = fold == k
        yield idx[~test], idx[test]


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
        Side of the square blocks: a string with units, ``"2km"``, ``"2000m"``, ``"0.1deg"``,
        ``"5°"`` (converted to the coordinates' units as :func:`resolve_block_size` says: one
        degree = 111,320 m on both axes), or a plain number in the coordinates' own units
        (e.g. 5.0 degrees for the global table, 10_000 metres for a projected region).
    units
        Units of the coordinates: ``"degrees"``, ``"metres"`` or ``"auto"``: degrees for a
        geographic CRS, metres for a projected one. An explicit unit that contradicts the CRS
        raises :class:`CRSError`. A plain-number ``block_size`` is in these units.
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
    folds; the message gives the block size in the data's units, the extent of the profiles
    and a smaller size to try. ``groups`` is requested by default, so
    :func:`sklearn.model_selection.cross_val_score` and
    :class:`~sklearn.model_selection.GridSearchCV` pass it through.

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
        block_size: BlockSize = 5.0,
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
        ConfigError
            Bad parameters (folds, block size, units).
        ProfileValidationError
            Fewer non-empty blocks than folds, missing coordinates, or a profile with two
            locations.
        CRSError
            Several CRSs, or units that contradict the CRS.
        """
        if (
            isinstance(self.n_splits, bool)
            or int(self.n_splits) != self.n_splits
            or (self.n_splits < 2)
        ):
            raise ConfigError(
                f"{self.n_splits!r} folds: need an integer >= 2, e.g. 5 (CLI: --folds 5; "
                "Python: n_splits=5)"
            )
        k = int(self.n_splits)
        blk = _blocks(X, groups, self.block_size, self.units, self.crs)
        blocks = blk.ids
        sizes = np.bincount(blocks).astype(np.int64) if len(blocks) else np.zeros(0, np.int64)
        nb = len(sizes)
        if nb < k:
            raise ProfileValidationError(
                _too_few_blocks(nb, f"fill {k!r} folds", k, self.block_size, blk)
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
        yield from _fold_splits(self.fold_ids(X, groups), int(self.n_splits))


def spatial_train_val_split(
    X: pd.DataFrame,
    groups: Any = None,
    *,
    val_fraction: float = 0.2,
    block_size: BlockSize = 5.0,
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
        As for :class:`BlockKFold`: ``block_size`` may carry units (``"2km"``, ``"0.1deg"``).
    random_state
        Seed or :class:`numpy.random.Generator`.

    Returns
    -------
    train_idx, val_idx : numpy.ndarray
        Sorted positions of the training and validation rows.

    Raises
    ------
    ConfigError
        ``val_fraction`` outside (0, 1), or a bad block size.
    ProfileValidationError
        Fewer than two non-empty blocks (the message names the data's extent and a smaller
        size).

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
        raise ConfigError(f"val_fraction must lie in (0, 1), got {val_fraction!r}; pass e.g. 0.2")
    blk = _blocks(X, groups, block_size, units, crs)
    blocks = blk.ids
    sizes = np.bincount(blocks) if len(blocks) else np.zeros(0, np.int64)
    if len(sizes) < 2:
        raise ProfileValidationError(
            _too_few_blocks(len(sizes), "make a train/validation split", 2, block_size, blk)
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


def _sorted_labels(values: pd.Series) -> list[Any]:
    uniques = [v.item() if hasattr(v, "item") else v for v in pd.unique(values)]
    try:
        return sorted(uniques)
    except TypeError:  # mixed types: order by their text
        return sorted(uniques, key=str)


class ColumnFolds(BaseCrossValidator):
    """Folds of your own: a column of the table holds each row's fold id.

    Parameters
    ----------
    column
        Column with the fold id of every row (any values: ``1..5``, ``"north"``, ...).
        Fold ``k`` of :meth:`split` is the ``k``-th id in sorted order
        (:meth:`fold_labels`); :func:`~socmap.validate.cross_validate` reports the ids
        as ``fold_id``.

    Notes
    -----
    Every row needs a fold id, and all rows of a profile (``groups``, default
    ``X["site_id"]``) must share one, else :class:`~socmap.errors.ProfileValidationError`
    names the profile and its folds. At least two folds are needed.

    Examples
    --------
    >>> X = pd.DataFrame({"site_id": ["a", "a", "b", "c"], "fold": [2, 2, 1, 2]})
    >>> cv = ColumnFolds("fold")
    >>> cv.fold_labels(X), cv.fold_ids(X).tolist()
    ([1, 2], [1, 1, 0, 1])
    >>> [test.tolist() for _, test in cv.split(X)]
    [[2], [0, 1, 3]]
    """

    __metadata_request__split = {"groups": True}  # noqa: RUF012  (sklearn's own convention)

    def __init__(self, column: str = "fold") -> None:
        self.column = column

    def _values(self, X: Any) -> pd.Series:
        if not isinstance(X, pd.DataFrame) or self.column not in X.columns:
            cols = list(X.columns) if isinstance(X, pd.DataFrame) else type(X).__name__
            raise ProfileValidationError(
                f"the fold column {self.column!r} is not in the table, whose columns are "
                f"{cols!r}; add a fold id per row or name another column"
            )
        values = X[self.column].reset_index(drop=True)
        if values.isna().any():
            pos = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise ProfileValidationError(
                f"fold column {self.column!r} is missing at {int(values.isna().sum())!r} rows, "
                f"first at row {pos!r}; give every row its profile's fold id"
            )
        return values

    def fold_labels(self, X: pd.DataFrame) -> list[Any]:
        """Return the fold ids in sorted order: fold ``k`` is ``fold_labels(X)[k]``.

        Parameters
        ----------
        X
            Table with the fold column.

        Returns
        -------
        list
            Distinct fold ids, sorted.
        """
        return _sorted_labels(self._values(X))

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return the number of distinct fold ids in ``X`` (required).

        Parameters
        ----------
        X
            Table with the fold column.
        y, groups
            Ignored.

        Returns
        -------
        int
            Number of folds.
        """
        if X is None:
            raise ProfileValidationError(
                f"ColumnFolds({self.column!r}) counts its folds in the table; pass X"
            )
        return len(self.fold_labels(X))

    def fold_ids(self, X: pd.DataFrame, groups: Any = None) -> IntArray:
        """Return the fold number (``0 .. n_folds - 1``) of every row.

        Parameters
        ----------
        X
            Table with the fold column (and ``site_id``).
        groups
            Profile id per row; defaults to ``X["site_id"]``, else one profile per row.

        Returns
        -------
        numpy.ndarray
            Fold number per row (position of the row's id in :meth:`fold_labels`).

        Raises
        ------
        ProfileValidationError
            No such column, missing ids, fewer than two folds, or a profile in two folds.
        """
        values = self._values(X)
        labels = _sorted_labels(values)
        if len(labels) < 2:
            raise ProfileValidationError(
                f"fold column {self.column!r} holds {len(labels)!r} fold id(s) {labels!r}; "
                "cross-validation needs at least two folds"
            )
        position = {label: k for k, label in enumerate(labels)}
        fold = np.array(
            [position[v.item() if hasattr(v, "item") else v] for v in values], dtype=np.int64
        )
        codes, names = _group_codes(X, groups)
        per_profile = pd.Series(fold).groupby(codes).nunique()
        split = per_profile.index[per_profile.to_numpy() > 1]
        if len(split):
            code = int(split[0])
            name = names[code].item() if hasattr(names[code], "item") else names[code]
            found = [labels[f] for f in np.unique(fold[codes == code])]
            raise ProfileValidationError(
                f"profile {name!r} has rows in folds {found!r} of column {self.column!r} "
                f"({len(split)!r} profiles are split); all depth intervals of a profile must "
                "share one fold id, so give its rows the same fold"
            )
        return fold

    def split(
        self, X: pd.DataFrame, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        """Yield ``(train_idx, test_idx)`` positional index arrays, one pair per fold id.

        Parameters
        ----------
        X
            Table with the fold column (and ``site_id``).
        y
            Ignored.
        groups
            Profile id per row; defaults to ``X["site_id"]``.

        Yields
        ------
        train_idx, test_idx : numpy.ndarray
            Positions of the training and test rows.
        """
        fold = self.fold_ids(X, groups)
        yield from _fold_splits(fold, int(fold.max()) + 1)

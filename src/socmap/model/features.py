"""Feature encoding: from a training or prediction table to the network's numeric arrays.

A :class:`FeatureSpec` records which covariates the network reads and how each becomes a
number:

* **Continuous bands** come in ordered groups (``climate``, ``terrain``, ...); each group
  has its own encoder in :class:`~socmap.model.network.SocNet`. Values are standardised with
  the training mean and standard deviation (NaN-aware, with a floor on the SD).
* **Missing values** (NaN or ±inf) are handled explicitly and never zero-filled before
  normalising: a band is standardised first, then a missing value is set to 0 (the training
  mean) *and* a 0/1 missing indicator for that band is passed to the group encoder next to
  the values, so the network can tell "average" from "unknown".
* **Categorical bands** are embedded, never fed as numeric codes. Each band has a vocabulary
  of class codes; code ``vocabulary[i]`` maps to embedding index ``i + 1`` and index 0 is
  reserved for missing or unknown classes (counted in :attr:`Encoded.n_unknown`).
* **Depth interval** is encoded as three numbers: ``top_cm / 100``, ``bottom_cm / 100`` and
  ``ln(thickness_cm / 10)``. The first two place the interval on a metre scale; the log
  thickness lets one network serve 5 cm and 100 cm layers alike (0 at 10 cm, about -0.7 at
  5 cm, +2.3 at 100 cm).
* **Target** is ``log1p(soc_g_kg)`` (SOC in g/kg); rows without SOC get NaN.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from socmap.catalog import Catalog
from socmap.errors import BandMismatch, BundleError, ConfigError, ProfileValidationError
from socmap.model.depth_atoms import atom_weights, atoms_from_intervals

__all__ = ["DEPTH_FEATURES", "Encoded", "EncodedCovariates", "FeatureSpec"]

#: Names of the depth features, in column order of :attr:`Encoded.depth`.
DEPTH_FEATURES = ("top_m", "bottom_m", "log_thickness")
SPEC_FORMAT = "socmap-feature-spec/1"


@dataclass(frozen=True, eq=False)
class Encoded:
    """Numeric arrays for the network, one row per table row.

    Attributes
    ----------
    cont
        ``(N, C)`` float32 standardised continuous covariates, 0 where missing.
    mask
        ``(N, C)`` float32 missing indicator, 1 where the value was NaN or infinite.
    cat
        ``(N, K)`` int64 embedding indices, 0 for missing or unknown classes.
    depth
        ``(N, 3)`` float32 depth features (see :data:`DEPTH_FEATURES`).
    target
        ``(N,)`` float32 ``log1p(SOC g/kg)``, NaN where SOC is absent.
    n_missing
        Missing values per band (continuous and categorical).
    n_unknown
        Categorical values per band whose class is not in the vocabulary.
    atom_weight, atom_depth
        With depth atoms (:mod:`socmap.model.depth_atoms`): ``(N, A)`` thickness weights of
        each atom in each row's interval and ``(A, 3)`` depth features of the atoms. A row
        inside one atom is encoded at that atom's depth; the others are composed from
        their atoms. ``None`` for specs without atoms.
    """

    cont: np.ndarray
    mask: np.ndarray
    cat: np.ndarray
    depth: np.ndarray
    target: np.ndarray
    n_missing: dict[str, int] = field(default_factory=dict)
    n_unknown: dict[str, int] = field(default_factory=dict)
    atom_weight: np.ndarray | None = None
    atom_depth: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.cont.shape[0])

    def subset(self, idx: np.ndarray | Sequence[int]) -> Encoded:
        """Rows ``idx`` (the missing/unknown counts refer to the full table)."""
        i = np.asarray(idx)
        return dataclasses.replace(
            self,
            cont=self.cont[i],
            mask=self.mask[i],
            cat=self.cat[i],
            depth=self.depth[i],
            target=self.target[i],
            atom_weight=None if self.atom_weight is None else self.atom_weight[i],
        )


@dataclass(frozen=True, eq=False)
class EncodedCovariates:
    """Covariate part of :class:`Encoded` (no depth, no target): see its attributes."""

    cont: np.ndarray
    mask: np.ndarray
    cat: np.ndarray
    n_missing: dict[str, int] = field(default_factory=dict)
    n_unknown: dict[str, int] = field(default_factory=dict)


def _as_groups(groups: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    return {str(g): tuple(str(b) for b in bands) for g, bands in groups.items()}


@dataclass(frozen=True)
class FeatureSpec:
    """How a table's covariates, depth and SOC become network inputs.

    Build one with :meth:`from_catalog`, fit it with :meth:`fit`, then :meth:`encode` tables.

    Parameters
    ----------
    groups
        Ordered mapping of continuous group name to its band names (in order).
    categorical
        Ordered mapping of categorical band name to its vocabulary (class codes). An empty
        vocabulary is learned from the data by :meth:`fit`.
    categorical_groups
        Group of each categorical band (recorded for reports; embeddings are per band).
    mean, std
        Per continuous band normalisation statistics (set by :meth:`fit`).
    target_mean, target_std
        Mean and SD of ``log1p(SOC)`` in the fitting table (used to scale the network output).
    std_floor
        Smallest SD used for standardising, so a constant band gives zeros, not infinities.
    depth_scale_cm, thickness_ref_cm
        Depth features are ``top / depth_scale_cm``, ``bottom / depth_scale_cm`` and
        ``ln((bottom - top) / thickness_ref_cm)``.
    target, target_column, units
        The target transform (only ``"log1p"``), the SOC column and its units.
    depth_atoms
        Elementary depth intervals the model was trained on (set by :meth:`fit`); any other
        interval is predicted as the thickness-weighted mean of these
        (:mod:`socmap.model.depth_atoms`). Empty: every interval is predicted on its own.

    Examples
    --------
    >>> import pandas as pd
    >>> bands = pd.DataFrame({"name": ["t", "lc"], "kind": ["continuous", "categorical"],
    ...                       "group": ["climate", "land_cover"]})
    >>> table = pd.DataFrame({"t": [10.0, float("nan"), 20.0], "lc": [1, 2, 7],
    ...                       "top_cm": [0, 0, 5], "bottom_cm": [5, 5, 15],
    ...                       "soc_g_kg": [12.0, 8.0, 5.0]})
    >>> spec = FeatureSpec.from_catalog(bands).fit(table)
    >>> enc = spec.encode(table)
    >>> enc.cont.ravel().tolist(), enc.mask.ravel().tolist(), enc.cat.ravel().tolist()
    ([-1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1, 2, 3])
    """

    groups: Mapping[str, tuple[str, ...]]
    categorical: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    categorical_groups: Mapping[str, str] = field(default_factory=dict)
    mean: Mapping[str, float] = field(default_factory=dict)
    std: Mapping[str, float] = field(default_factory=dict)
    target_mean: float = 0.0
    target_std: float = 1.0
    std_floor: float = 1e-6
    depth_scale_cm: float = 100.0
    thickness_ref_cm: float = 10.0
    target: str = "log1p"
    target_column: str = "soc_g_kg"
    units: str = "g/kg"
    depth_atoms: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", _as_groups(self.groups))
        object.__setattr__(
            self, "depth_atoms", tuple((float(t), float(b)) for t, b in self.depth_atoms)
        )
        text = [b for b, v in self.categorical.items() if isinstance(v, str | bytes)]
        if text:  # once "123" read as the classes 1, 2 and 3
            raise BundleError(
                f"vocabulary of categorical band {text[0]!r} is the text "
                f"{self.categorical[text[0]]!r}; it must be a list of class codes, e.g. [1, 2, 3]"
            )
        object.__setattr__(
            self,
            "categorical",
            {str(b): tuple(int(c) for c in v) for b, v in self.categorical.items()},
        )
        object.__setattr__(self, "categorical_groups", dict(self.categorical_groups))
        object.__setattr__(self, "mean", {str(k): float(v) for k, v in self.mean.items()})
        object.__setattr__(self, "std", {str(k): float(v) for k, v in self.std.items()})
        names = self.band_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise BandMismatch(
                f"band {dupes[0]!r} is listed more than once in the feature spec; "
                "each band belongs to exactly one group"
            )
        if self.target != "log1p":
            raise BundleError(
                f"target transform {self.target!r} is not supported; use 'log1p' (of SOC in g/kg)"
            )
        if self.units != "g/kg":
            raise BundleError(
                f"target units {self.units!r} are not supported; convert SOC to 'g/kg' first"
            )
        for band, vocab in self.categorical.items():
            if len(set(vocab)) != len(vocab):
                raise BandMismatch(
                    f"vocabulary of categorical band {band!r} repeats a code: {vocab!r}; "
                    "list each class code once"
                )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_catalog(
        cls, source: Catalog | pd.DataFrame, bands: Sequence[str] | None = None
    ) -> FeatureSpec:
        """Start an unfitted spec from a covariate catalog or a band table.

        Parameters
        ----------
        source
            A :class:`~socmap.catalog.Catalog` (class lists become vocabularies) or a
            DataFrame with ``name``, ``kind`` and ``group`` columns, such as
            :func:`socmap.cube.band_table` (an optional ``classes`` column of code lists or
            ``{code: label}`` mappings gives vocabularies; otherwise :meth:`fit` learns them).
        bands
            Use only these bands (default all). Groups keep the source's band order.

        Raises
        ------
        BandMismatch
            If ``bands`` names a band the source lacks.
        """
        rows: list[tuple[str, str, str, Any]] = []
        if isinstance(source, Catalog):
            rows = [(c.name, c.kind, c.group, c.classes) for c in source.covariates]
        else:
            missing_cols = [c for c in ("name", "kind", "group") if c not in source.columns]
            if missing_cols:
                raise BandMismatch(
                    f"band table lacks columns {missing_cols!r}; pass a Catalog or a table "
                    "with name, kind and group (socmap.cube.band_table gives one)"
                )
            classes = source["classes"] if "classes" in source.columns else [None] * len(source)
            rows = [
                (str(n), str(k), str(g), c)
                for n, k, g, c in zip(
                    source["name"], source["kind"], source["group"], classes, strict=True
                )
            ]
        known = [r[0] for r in rows]
        if bands is not None:
            wanted = list(bands)
            absent = [b for b in wanted if b not in known]
            if absent:
                raise BandMismatch(
                    f"bands {absent!r} are not in the catalog; choose from {known!r}"
                )
            rows = [r for r in rows if r[0] in set(wanted)]
        groups: dict[str, list[str]] = {}
        categorical: dict[str, tuple[int, ...]] = {}
        cat_groups: dict[str, str] = {}
        for name, kind, group, classes in rows:
            if kind == "continuous":
                groups.setdefault(group, []).append(name)
            elif kind == "categorical":
                codes: Iterable[Any] = ()
                if isinstance(classes, Mapping):
                    codes = classes.keys()
                elif isinstance(classes, Iterable) and not isinstance(classes, str):
                    codes = classes
                categorical[name] = tuple(sorted(int(c) for c in codes))
                cat_groups[name] = group
            else:
                raise BandMismatch(
                    f"band {name!r} has kind {kind!r}; kind must be 'continuous' or 'categorical'"
                )
        if not groups and not categorical:
            raise BandMismatch("no covariate bands selected; pass at least one band")
        return cls(
            groups={g: tuple(b) for g, b in groups.items()},
            categorical=categorical,
            categorical_groups=cat_groups,
        )

    def fit(self, table: pd.DataFrame) -> FeatureSpec:
        """Return a new spec with statistics fitted on ``table``.

        Means and SDs ignore NaN and infinite values; SDs below ``std_floor`` are raised to
        it. Empty vocabularies are learned as the sorted observed class codes. The target
        mean and SD are those of ``log1p(SOC)`` where SOC is present. The depth atoms are
        the elementary intervals between the depth limits of the rows with SOC.

        Raises
        ------
        BandMismatch
            If a band column is missing.
        ProfileValidationError
            If a continuous band has no finite value, or categorical codes are not integers.
        """
        self._require_columns(table, self.band_names)
        mean: dict[str, float] = {}
        std: dict[str, float] = {}
        for band in self.continuous_bands:
            values = _numeric(table, band)
            finite = values[np.isfinite(values)]
            if finite.size == 0:
                raise ProfileValidationError(
                    f"continuous band {band!r} has no finite value in the {len(table)}-row "
                    "fitting table; drop the band from the cube's catalog (Python: bands=...) "
                    "or fill its source where the profiles are"
                )
            mean[band] = float(finite.mean())
            std[band] = max(float(finite.std()), self.std_floor)
        categorical = dict(self.categorical)
        for band, vocab in self.categorical.items():
            if not vocab:
                codes = _codes(table, band)
                categorical[band] = tuple(int(c) for c in np.unique(codes[~np.isnan(codes)]))
        t_mean, t_std = 0.0, 1.0
        atoms = self.depth_atoms
        if self.target_column in table.columns:
            y = _target(table, self.target_column)
            labelled = np.isfinite(y)
            y = y[labelled]
            if y.size:
                t_mean, t_std = float(y.mean()), max(float(y.std()), self.std_floor)
            if labelled.any() and {"top_cm", "bottom_cm"} <= set(table.columns):
                atoms = atoms_from_intervals(
                    _numeric(table, "top_cm")[labelled], _numeric(table, "bottom_cm")[labelled]
                )
        return dataclasses.replace(
            self,
            mean=mean,
            std=std,
            categorical=categorical,
            target_mean=t_mean,
            target_std=t_std,
            depth_atoms=atoms,
        )

    def add_group(
        self,
        name: str,
        bands: Sequence[str],
        stats: Mapping[str, tuple[float, float]] | pd.DataFrame,
        categorical: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
    ) -> FeatureSpec:
        """Return a new spec with a group appended (regional covariates).

        Parameters
        ----------
        name
            New group name, not already used.
        bands
            Its continuous band names, none already in the spec (may be empty when
            ``categorical`` is given).
        stats
            ``{band: (mean, std)}``, or a table to compute them (and learned vocabularies)
            from (NaN-aware).
        categorical
            The group's categorical bands: ``{band: class codes}``, or band names whose
            vocabularies are learned from ``stats`` (a table). Their columns follow the
            existing categorical bands.

        Raises
        ------
        BandMismatch
            If the group or a band already exists, no band is given, or stats are missing.
        """
        bands = tuple(str(b) for b in bands)
        if isinstance(categorical, Mapping):
            cats = {str(b): tuple(int(c) for c in v) for b, v in categorical.items()}
        else:
            cats = {str(b): () for b in (categorical or ())}
        if not bands and not cats:
            raise BandMismatch(f"group {name!r} has no bands; pass at least one band name")
        if name in self.groups or name in self.categorical_groups.values():
            raise BandMismatch(
                f"group {name!r} already exists ({list(self.groups)!r}); choose a new group name"
            )
        clash = [b for b in (*bands, *cats) if b in self.band_names]
        if clash:
            raise BandMismatch(
                f"bands {clash!r} are already in the spec; a new group needs new bands"
            )
        pairs: dict[str, tuple[float, float]] = {}
        if isinstance(stats, pd.DataFrame):
            fitted = FeatureSpec(
                groups={name: bands} if bands else {},
                categorical=cats,
                std_floor=self.std_floor,
            ).fit(stats)
            pairs = {b: (fitted.mean[b], fitted.std[b]) for b in bands}
            cats = dict(fitted.categorical)
        else:
            absent = [b for b in bands if b not in stats]
            if absent:
                raise BandMismatch(
                    f"stats lack bands {absent!r}; give (mean, std) for every band of {name!r}"
                )
            pairs = {
                b: (float(stats[b][0]), max(float(stats[b][1]), self.std_floor)) for b in bands
            }
            bad = {b: p for b, p in pairs.items() if not all(map(math.isfinite, p))}
            if bad:
                raise BandMismatch(
                    f"stats must be finite (mean, std) pairs; got {bad!r}; fit them on a table"
                )
            unlearned = [b for b, v in cats.items() if not v]
            if unlearned:
                raise BandMismatch(
                    f"categorical bands {unlearned!r} have no class codes; pass "
                    "{band: codes} or a table to learn them from"
                )
        return dataclasses.replace(
            self,
            groups={**self.groups, name: bands} if bands else dict(self.groups),
            categorical={**self.categorical, **cats},
            categorical_groups={**self.categorical_groups, **{b: name for b in cats}},
            mean={**self.mean, **{b: p[0] for b, p in pairs.items()}},
            std={**self.std, **{b: p[1] for b, p in pairs.items()}},
        )

    # ------------------------------------------------------------------ properties
    @property
    def continuous_bands(self) -> list[str]:
        """Continuous band names in column order of :attr:`Encoded.cont`."""
        return [b for bands in self.groups.values() for b in bands]

    @property
    def categorical_bands(self) -> list[str]:
        """Categorical band names in column order of :attr:`Encoded.cat`."""
        return list(self.categorical)

    @property
    def band_names(self) -> list[str]:
        """Every band the spec reads: continuous first, then categorical."""
        return self.continuous_bands + self.categorical_bands

    @property
    def group_sizes(self) -> dict[str, int]:
        """Number of bands per continuous group, in order."""
        return {g: len(b) for g, b in self.groups.items()}

    @property
    def vocab_sizes(self) -> dict[str, int]:
        """Embedding rows per categorical band (vocabulary plus the missing/unknown row)."""
        return {b: len(v) + 1 for b, v in self.categorical.items()}

    @property
    def is_fitted(self) -> bool:
        """Whether every continuous band has statistics and every vocabulary is known."""
        return all(b in self.mean and b in self.std for b in self.continuous_bands) and all(
            self.categorical.values()
        )

    # ------------------------------------------------------------------ encoding
    def encode(self, table: pd.DataFrame) -> Encoded:
        """Encode ``table`` (one row per site x depth interval) into network inputs.

        Raises
        ------
        BandMismatch
            If band, ``top_cm`` or ``bottom_cm`` columns are missing.
        ConfigError
            If the spec is not fitted yet.
        ProfileValidationError
            On invalid depth limits, negative SOC, non-numeric or non-integer class values.
        """
        if not self.is_fitted:
            raise ConfigError(
                "the feature spec is not fitted (no statistics or vocabularies); "
                "call spec.fit(training_table) first"
            )
        self._require_columns(table, [*self.band_names, "top_cm", "bottom_cm"])
        columns = {b: _numeric(table, b) for b in self.continuous_bands}
        columns.update({b: _numeric(table, b) for b in self.categorical_bands})
        cov = self.encode_covariates(columns)
        n = len(table)
        depth = self.encode_depth(table)
        if self.target_column in table.columns:
            target = _target(table, self.target_column).astype(np.float32)
        else:
            target = np.full(n, np.nan, dtype=np.float32)
        weight = atom_depth = None
        if self.depth_atoms:
            atom_depth = self.atom_depth_features()
            w = atom_weights(
                _numeric(table, "top_cm"), _numeric(table, "bottom_cm"), self.depth_atoms
            )
            single = (w > 1 - 1e-9).any(axis=1)
            depth[single] = atom_depth[w[single].argmax(axis=1)]
            weight = w.astype(np.float32)
        return Encoded(
            cov.cont,
            cov.mask,
            cov.cat,
            depth,
            target,
            cov.n_missing,
            cov.n_unknown,
            atom_weight=weight,
            atom_depth=atom_depth,
        )

    def atom_depth_features(self) -> np.ndarray:
        """Return the ``(A, 3)`` depth features of :attr:`depth_atoms` (:meth:`encode_depth`)."""
        tops, bottoms = zip(*self.depth_atoms, strict=True)
        return self.encode_depth(pd.DataFrame({"top_cm": tops, "bottom_cm": bottoms}))

    def encode_covariates(self, columns: Mapping[str, np.ndarray]) -> EncodedCovariates:
        """Encode covariate arrays, ``{band: (N,) values}``, into network inputs.

        The array-level core of :meth:`encode`, used directly for raster pixels. Missing
        values (NaN or infinite) are put at the band mean (0) and flagged; class codes not in
        a vocabulary map to index 0 and are counted.

        Raises
        ------
        BandMismatch
            A band the spec reads is absent from ``columns``.
        ProfileValidationError
            Non-integer class codes.
        """
        absent = [b for b in self.band_names if b not in columns]
        if absent:
            raise BandMismatch(
                f"covariates lack bands {absent!r} that the model reads; got {sorted(columns)!r}"
            )
        n = len(next(iter(columns.values()))) if columns else 0
        cont = np.zeros((n, len(self.continuous_bands)), dtype=np.float32)
        mask = np.zeros_like(cont)
        n_missing: dict[str, int] = {}
        for j, band in enumerate(self.continuous_bands):
            values = np.asarray(columns[band], dtype=np.float64)
            bad = ~np.isfinite(values)
            # Standardise first; only then put missing values at the mean (0) and flag them.
            z = (values - self.mean[band]) / self.std[band]
            z[bad] = 0.0
            cont[:, j] = z
            mask[:, j] = bad
            n_missing[band] = int(bad.sum())
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        n_unknown: dict[str, int] = {}
        for k, (band, vocab) in enumerate(self.categorical.items()):
            codes = _checked_codes(band, np.asarray(columns[band], dtype=np.float64))
            missing = np.isnan(codes)
            lookup = pd.Index(np.asarray(vocab, dtype=np.float64))
            pos = lookup.get_indexer(pd.Index(codes))
            unknown = (pos < 0) & ~missing
            cat[:, k] = np.where(pos >= 0, pos + 1, 0)
            n_missing[band] = int(missing.sum())
            n_unknown[band] = int(unknown.sum())
        return EncodedCovariates(cont, mask, cat, n_missing, n_unknown)

    def encode_depth(self, table: pd.DataFrame) -> np.ndarray:
        """``(N, 3)`` float32 depth features of ``top_cm``/``bottom_cm`` (:data:`DEPTH_FEATURES`).

        Raises
        ------
        ProfileValidationError
            On invalid depth limits.
        """
        top = _numeric(table, "top_cm")
        bottom = _numeric(table, "bottom_cm")
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(top) & np.isfinite(bottom) & (top >= 0) & (bottom > top))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ProfileValidationError(
                f"{int(bad.sum())} rows have invalid depth limits, first at row {i}: "
                f"top_cm={float(top[i])!r}, bottom_cm={float(bottom[i])!r}; "
                "need 0 <= top_cm < bottom_cm (harmonise depths with socmap.depth.harmonise)"
            )
        out = np.empty((len(table), len(DEPTH_FEATURES)), dtype=np.float32)
        out[:, 0] = top / self.depth_scale_cm
        out[:, 1] = bottom / self.depth_scale_cm
        out[:, 2] = np.log((bottom - top) / self.thickness_ref_cm)
        return out

    @staticmethod
    def _require_columns(table: pd.DataFrame, names: Sequence[str]) -> None:
        absent = [c for c in names if c not in table.columns]
        if absent:
            raise BandMismatch(
                f"table lacks columns {absent!r} that the model needs; extract these covariates "
                "at the sites (socmap.extract) or fit a model on the bands you have"
            )

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists and plain numbers only)."""
        return {
            "format": SPEC_FORMAT,
            "groups": {g: list(b) for g, b in self.groups.items()},
            "categorical": {b: list(v) for b, v in self.categorical.items()},
            "categorical_groups": dict(self.categorical_groups),
            "mean": dict(self.mean),
            "std": dict(self.std),
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "std_floor": self.std_floor,
            "depth_features": list(DEPTH_FEATURES),
            "depth_scale_cm": self.depth_scale_cm,
            "thickness_ref_cm": self.thickness_ref_cm,
            "target": self.target,
            "target_column": self.target_column,
            "units": self.units,
            "depth_atoms": [list(a) for a in self.depth_atoms],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        BundleError
            If ``data`` is not a feature spec of a known format.
        """
        if not isinstance(data, Mapping) or data.get("format") != SPEC_FORMAT:
            got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise BundleError(
                f"feature spec format {got!r} is not {SPEC_FORMAT!r}; "
                "re-save the model with this socmap version"
            )
        keys = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in keys})
        except (TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, BandMismatch | BundleError):
                raise
            raise BundleError(
                f"feature spec is malformed ({exc}); re-save the model".replace("\n", " ")
            ) from exc


# ---------------------------------------------------------------------- helpers
def _numeric(table: pd.DataFrame, column: str) -> np.ndarray:
    try:
        return pd.to_numeric(table[column], errors="raise").to_numpy(
            dtype=np.float64, na_value=np.nan, copy=True
        )
    except (ValueError, TypeError) as exc:
        raise ProfileValidationError(
            f"column {column!r} must be numeric ({exc}); convert it or mark missing values as NaN"
        ) from None


def _codes(table: pd.DataFrame, band: str) -> np.ndarray:
    return _checked_codes(band, _numeric(table, band))


def _checked_codes(band: str, codes: np.ndarray) -> np.ndarray:
    codes = np.where(np.isfinite(codes), codes, np.nan)
    frac = np.isfinite(codes) & (codes != np.round(codes))
    if frac.any():
        i = int(np.flatnonzero(frac)[0])
        raise ProfileValidationError(
            f"categorical band {band!r} has {int(frac.sum())} non-integer class codes, first "
            f"{float(codes[i])!r} at row {i}; resample categorical layers with 'nearest' or 'mode'"
        )
    return codes


def _target(table: pd.DataFrame, column: str) -> np.ndarray:
    soc = _numeric(table, column)
    with np.errstate(invalid="ignore"):
        neg = soc < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise ProfileValidationError(
            f"{int(neg.sum())} rows have negative {column}, first {float(soc[i])!r} at row {i}; "
            "SOC must be >= 0 g/kg (fix or drop these rows in QC)"
        )
    return np.log1p(soc)

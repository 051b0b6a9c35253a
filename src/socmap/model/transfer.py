"""Fine-tune a pretrained bundle on a region's cores (global-to-regional transfer).

The pretrained network keeps its feature normalisation, so before the first step the
fine-tuned model predicts exactly what the pretrained one does. Regional covariates that the
global model lacks join as a new group whose contribution starts at exactly zero.

Strategies (parameter names refer to :class:`~socmap.model.SocNet`):

``full``
    every weight trains.
``freeze-encoders``
    the pretrained covariate encoders and embeddings stay fixed; fusion, depth
    conditioning, head and the new regional group train.
``head``
    only the head after the fused features (``head_in``, ``head_layers``, ``out``) and the new
    regional group train.
``l2sp``
    every weight trains, with a penalty ``alpha * ||w - w_pretrained||^2`` (Li et al. 2018).

``depthwise`` (:class:`DepthwiseRegressor`)
    Han et al. (2025): the network pretrained on every interval is fine-tuned separately for
    each target interval, on that interval's samples only.

``instances`` (:class:`InstanceTransferRegressor`)
    the ``k`` global profiles most similar to the region's training sites in the pretrained
    model's normalised covariate space join the regional rows for fine-tuning (their regional
    covariates are missing, which the network's missing-value mask handles).

``auto`` (:class:`AutoTransferRegressor`)
    the candidate with the lowest inner spatial-CV MAE on the training rows, fine-tuning
    strategies or table-level models (:data:`TABLE_METHODS`: the forests and the prior-based
    estimators of :mod:`socmap.model.prior`), the forest kept unless beaten by more than one
    standard error.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from socmap.errors import BandMismatch, ConfigError
from socmap.model.baselines import RANGER_DEFAULTS, GlobalModel, RegionalForest, StackedForest
from socmap.model.bundle import load_bundle
from socmap.model.estimator import SocNetRegressor
from socmap.model.methods import (
    AUTO_CANDIDATES,
    AUTO_NETWORK,
    AUTO_NETWORK_FROM,
    AUTO_PREFER,
    BASELINES,
    BUNDLE_METHODS,
    FORESTS,
    MIXTURES,
    TABLE_METHODS,
    check_methods,
    method_names,
)
from socmap.model.prior import (
    BlendRegressor,
    GlobalEnsemble,
    PriorResidualRegressor,
    RecalibratedRegressor,
    SelectedPrior,
    inner_splits,
    oof_log,
    paired_se,
)
from socmap.model.train import TrainConfig, fit
from socmap.validate.aoa import AreaOfApplicability

__all__ = [
    "AUTO_CANDIDATES",
    "AUTO_NETWORK",
    "AUTO_NETWORK_FROM",
    "AUTO_PREFER",
    "BASELINES",
    "BUNDLE_METHODS",
    "FINETUNE_DEFAULTS",
    "FORESTS",
    "NETWORK_METHODS",
    "REGIONAL_GROUP",
    "STRATEGIES",
    "TABLE_METHODS",
    "AutoTransferRegressor",
    "DepthwiseRegressor",
    "FineTunedRegressor",
    "InstanceTransferRegressor",
    "default_inner_folds",
    "method_names",
    "save_transfer_bundle",
    "transfer_methods",
]

#: Name of the group regional covariates join as.
REGIONAL_GROUP = "regional"
#: Optimisation defaults for fine-tuning on few cores.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "batch_size": 64,
    "lr": 5e-4,
    "max_epochs": 300,
    "patience": 20,
}

_PRETRAINED_ENCODERS = ("encoders.", "frequencies.", "embeddings.")
_REGIONAL = ("added_encoders.", "adapters.", "added_embeddings.", "embedding_adapters.")
_HEAD = ("head_in.", "head_layers.", "out.")

STRATEGIES: dict[str, Callable[[str], bool]] = {
    "full": lambda name: True,
    "l2sp": lambda name: True,
    "freeze-encoders": lambda name: not name.startswith(_PRETRAINED_ENCODERS),
    "head": lambda name: name.startswith(_HEAD + _REGIONAL),
}


class FineTunedRegressor(SocNetRegressor):
    """Fine-tune a pretrained bundle on a regional training table.

    Parameters
    ----------
    bundle
        Pretrained bundle directory.
    strategy
        One of :data:`STRATEGIES`.
    regional_bands
        Continuous covariates the global model lacks, to join as a new group.
    regional_categorical
        Categorical covariates the global model lacks: they join the same group as new
        embeddings (vocabularies learned from the training rows; classes unseen in training
        contribute nothing, as if missing).
    l2sp_alpha
        Strength of the L2-SP penalty (``strategy="l2sp"`` only).
    train
        Overrides of :data:`FINETUNE_DEFAULTS`.
    val_fraction, block_size, units
        Spatial split of the training rows for early stopping (e.g. 2000 m blocks).
    mc_passes, random_state, progress
        As in :class:`~socmap.model.estimator.SocNetRegressor`.
    """

    def __init__(
        self,
        bundle: str | Path = "",
        strategy: str = "full",
        regional_bands: Sequence[str] | None = None,
        regional_categorical: Sequence[str] | None = None,
        l2sp_alpha: float = 1e-3,
        train: Mapping[str, Any] | None = None,
        val_fraction: float = 0.2,
        block_size: float = 2000.0,
        units: str = "auto",
        mc_passes: int = 32,
        random_state: int = 0,
        progress: bool = False,
    ) -> None:
        super().__init__(
            bands="global_10arcmin",
            network=None,
            train=train,
            val_fraction=val_fraction,
            block_size=block_size,
            units=units,
            mc_passes=mc_passes,
            random_state=random_state,
            progress=progress,
        )
        self.bundle = bundle
        self.strategy = strategy
        self.regional_bands = regional_bands
        self.regional_categorical = regional_categorical
        self.l2sp_alpha = l2sp_alpha

    def fit(self, X: pd.DataFrame, y: Any = None) -> FineTunedRegressor:
        """Fine-tune on the rows of ``X`` with a SOC value; ``y`` is ignored."""
        return self._fit_strategy(self._rows_with_target(X), self.strategy)

    def _band_units(self) -> dict[str, str]:
        # The pretrained inputs' units; regional bands' units come from the caller's
        # metadata (finetune_bundle records the cube's).
        return load_bundle(self.bundle).band_units

    def _fit_strategy(self, rows: pd.DataFrame, strategy: str) -> FineTunedRegressor:
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {strategy!r}; choose one of {sorted(STRATEGIES)!r}"
            )
        pretrained = load_bundle(self.bundle)
        if pretrained.adjustment is not None:
            parent = pretrained.metadata.get("parent_bundle", "the bundle it was made from")
            raise ConfigError(
                f"bundle {str(self.bundle)!r} carries a regional adjustment, which "
                f"fine-tuning its network would drop; fine-tune from {parent!r} instead"
            )
        pretrained.check_bands(rows.columns)
        spec, model = pretrained.spec, copy.deepcopy(pretrained.model)
        regional = [b for b in (self.regional_bands or []) if b not in spec.band_names]
        categorical = [b for b in (self.regional_categorical or []) if b not in spec.band_names]
        if regional or categorical:
            missing = [b for b in (*regional, *categorical) if b not in rows.columns]
            if missing:
                raise BandMismatch(
                    f"training table lacks regional bands {missing!r}; extract them from the "
                    "regional cube (socmap.training.regional_training_table)"
                )
            spec = spec.add_group(REGIONAL_GROUP, regional, rows, categorical=categorical)
            model.add_group(
                REGIONAL_GROUP,
                len(regional),
                seed=self.random_state,
                vocab_sizes={b: spec.vocab_sizes[b] for b in categorical},
            )
        data = spec.encode(rows)
        train_idx, val_idx = self._early_stopping_split(rows)
        config = TrainConfig(
            **{**FINETUNE_DEFAULTS, **dict(self.train or {}), "seed": self.random_state}
        )
        self.history_ = fit(
            model,
            data,
            train_idx,
            val_idx,
            config,
            trainable=STRATEGIES[strategy],
            l2sp_alpha=self.l2sp_alpha if strategy == "l2sp" else 0.0,
            progress=self.progress,
        )
        self.spec_, self.config_, self.model_ = spec, model.config, model
        self.train_config_ = config
        self.n_trainable_ = int(
            sum(p.numel() for n, p in model.named_parameters() if STRATEGIES[strategy](n))
        )
        self.strategy_ = strategy
        return self


class DepthwiseRegressor(FineTunedRegressor):
    """One fine-tuned copy of the pretrained network per depth interval (Han et al. 2025).

    Parameters are those of :class:`FineTunedRegressor`; ``strategy`` is the fine-tuning
    strategy applied within each interval (``full`` by default).
    """

    def fit(self, X: pd.DataFrame, y: Any = None) -> DepthwiseRegressor:
        """Fine-tune one model per ``(top_cm, bottom_cm)`` interval of ``X``."""
        rows = self._rows_with_target(X)
        n_without = self.n_rows_without_target_
        self.models_: dict[tuple[float, float], FineTunedRegressor] = {}
        intervals = sorted(set(zip(rows["top_cm"], rows["bottom_cm"], strict=True)))
        for top, bottom in intervals:
            part = rows[(rows["top_cm"] == top) & (rows["bottom_cm"] == bottom)]
            model = FineTunedRegressor(**self.get_params())
            self.models_[(float(top), float(bottom))] = model.fit(part)
        self.n_rows_without_target_ = n_without
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Route each row to its interval's model; rows of an unseen interval raise."""
        check_is_fitted(self, "models_")
        mean = np.full(len(X), np.nan)
        sd = np.full(len(X), np.nan)
        keys = list(zip(X["top_cm"].astype(float), X["bottom_cm"].astype(float), strict=True))
        unseen = sorted(set(keys) - set(self.models_))
        if unseen:
            raise ConfigError(
                f"no depth-wise model for intervals {unseen!r}; fit on rows of every interval "
                f"to predict (fitted: {sorted(self.models_)!r})"
            )
        for key, model in self.models_.items():
            idx = np.flatnonzero([k == key for k in keys])
            if idx.size:
                m, s = model.predict_log(X.iloc[idx])
                mean[idx], sd[idx] = m, s
        return mean, sd


class InstanceTransferRegressor(FineTunedRegressor):
    """Fine-tune on the regional rows plus the ``k`` most similar global profiles.

    Parameters
    ----------
    k
        Number of global profiles to borrow; ``None`` (default) borrows as many as there are
        regional training profiles, so neither source swamps the other.
    instances
        Table to borrow from (default: the embedded global training table on the same depth
        intervals); it needs the pretrained model's covariates and ``soc_g_kg``.
    selection
        ``"nearest"``: the ``k`` profiles nearest to any regional training site in the
        pretrained model's standardised covariate space. ``"rs-local"``: among the
        ``pool_factor * k`` nearest, the rows that RS-LOCAL (:func:`socmap.model.rslocal.
        rs_local`, PLS on standardised covariates and depth features, scored on the regional
        training rows) keeps: as many rows as ``k`` profiles hold on average, and the
        profiles they belong to (at most ``k``).
    search
        RS-LOCAL settings: ``b``, ``retain``, ``n_components``, ``mode`` and ``pool_factor``
        (default 10).
    bundle, strategy, regional_bands, regional_categorical, l2sp_alpha, train, val_fraction,
    block_size, units, mc_passes, random_state, progress
        As in :class:`FineTunedRegressor`.
    """

    def __init__(
        self,
        bundle: str | Path = "",
        k: int | None = None,
        instances: pd.DataFrame | None = None,
        selection: str = "nearest",
        search: Mapping[str, Any] | None = None,
        strategy: str = "full",
        regional_bands: Sequence[str] | None = None,
        regional_categorical: Sequence[str] | None = None,
        l2sp_alpha: float = 1e-3,
        train: Mapping[str, Any] | None = None,
        val_fraction: float = 0.2,
        block_size: float = 2000.0,
        units: str = "auto",
        mc_passes: int = 32,
        random_state: int = 0,
        progress: bool = False,
    ) -> None:
        super().__init__(
            bundle=bundle,
            strategy=strategy,
            regional_bands=regional_bands,
            regional_categorical=regional_categorical,
            l2sp_alpha=l2sp_alpha,
            train=train,
            val_fraction=val_fraction,
            block_size=block_size,
            units=units,
            mc_passes=mc_passes,
            random_state=random_state,
            progress=progress,
        )
        self.k = k
        self.instances = instances
        self.selection = selection
        self.search = search

    def _similar(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Rows of the ``k`` instance profiles nearest to any regional training site."""
        from scipy.spatial import cKDTree

        k = rows["site_id"].nunique() if self.k is None else self.k
        if k <= 0:
            raise ConfigError(f"k {self.k!r} must be a positive number of profiles")
        if self.selection not in ("nearest", "rs-local"):
            raise ConfigError(f"selection {self.selection!r} must be 'nearest' or 'rs-local'")
        spec = load_bundle(self.bundle).spec
        pool = self.instances if self.instances is not None else _global_instances()
        intervals = set(zip(rows["top_cm"], rows["bottom_cm"], strict=True))
        keep = np.array(
            [t in intervals for t in zip(pool["top_cm"], pool["bottom_cm"], strict=True)]
        )
        pool = pool.loc[keep & pool["soc_g_kg"].notna().to_numpy()]
        bands = spec.continuous_bands
        lacking = [b for b in bands if b not in pool.columns]
        if lacking:
            raise BandMismatch(
                f"instance transfer borrows profiles from the global table, which lacks the "
                f"bundle's bands {lacking!r}; use a bundle pretrained on the global table ("
                "the shipped global_gsm; Python: instances= a table with those columns)"
            )

        def standardised(t: pd.DataFrame) -> np.ndarray:
            sites = t.drop_duplicates("site_id")
            z = [(sites[b].to_numpy(float) - spec.mean[b]) / spec.std[b] for b in bands]
            return np.nan_to_num(np.column_stack(z))  # missing -> the mean, as in the encoder

        pool_sites = pool.drop_duplicates("site_id")["site_id"].to_numpy()
        dist, _ = cKDTree(standardised(rows)).query(standardised(pool))
        ranked = pool_sites[np.argsort(dist, kind="stable")]
        if self.selection == "nearest":
            chosen = ranked[:k]
        else:
            chosen = self._rs_local(rows, pool, ranked, k, spec)
        # Instance site ids must not collide with regional ones in the early-stopping split.
        borrowed = pool[pool["site_id"].isin(chosen)].copy()
        borrowed["site_id"] = _INSTANCE_PREFIX + borrowed["site_id"].astype(str)
        return borrowed

    def _rs_local(
        self, rows: pd.DataFrame, pool: pd.DataFrame, ranked: np.ndarray, k: int, spec: Any
    ) -> np.ndarray:
        """Profiles of the pool rows RS-LOCAL keeps (at most ``k``, best first)."""
        from socmap.model.rslocal import rs_local

        settings = dict(self.search or {})
        pool_factor = int(settings.pop("pool_factor", 10))
        candidates = pool[pool["site_id"].isin(ranked[: pool_factor * k])]

        def features(t: pd.DataFrame) -> np.ndarray:
            enc = spec.encode(t)  # standardised covariates, 0 where missing, + depth features
            return np.hstack([enc.cont, enc.depth]).astype(np.float64)

        n_rows = min(
            len(candidates), max(2, round(k * len(candidates) / candidates["site_id"].nunique()))
        )
        picked = rs_local(
            features(candidates),
            np.log1p(candidates["soc_g_kg"].to_numpy(float)),
            features(rows),
            np.log1p(rows["soc_g_kg"].to_numpy(float)),
            k=n_rows,
            seed=self.random_state,
            **settings,
        )
        return pd.unique(candidates["site_id"].to_numpy()[picked])[:k]

    def _early_stopping_split(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Validate on regional rows only; borrowed rows always train."""
        borrowed = rows["site_id"].astype(str).str.startswith(_INSTANCE_PREFIX).to_numpy()
        regional = np.flatnonzero(~borrowed)
        train, val = super()._early_stopping_split(rows.iloc[regional].reset_index(drop=True))
        return np.concatenate([regional[train], np.flatnonzero(borrowed)]), regional[val]

    def fit(self, X: pd.DataFrame, y: Any = None) -> InstanceTransferRegressor:
        """Fine-tune on ``X`` plus the borrowed global rows."""
        rows = self._rows_with_target(X)
        borrowed = self._similar(rows)
        self.n_instances_ = int(borrowed["site_id"].nunique())
        n_without = self.n_rows_without_target_
        super().fit(pd.concat([rows, borrowed], ignore_index=True))
        self.n_rows_without_target_ = n_without
        return self


_INSTANCE_PREFIX = "instance:"


class AutoTransferRegressor(FineTunedRegressor):
    """Choose a transfer method by inner spatial CV on the training rows only.

    The training rows are split into ``inner_folds`` spatial block folds (whole profiles;
    whole profiles without blocks when the rows fill too few blocks, see
    :func:`~socmap.model.prior.inner_splits`); each candidate is fitted on the other inner
    folds and scored by the pooled MAE of SOC (g/kg) on the held-out inner folds. Nothing
    outside ``X`` is read, so wrapped in an outer CV the choice never sees the outer test
    fold.

    Choice rule: the candidate with the lowest inner MAE, except that an incumbent is kept
    unless the winner beats it by more than ``tie_se`` standard errors of the paired MAE
    difference (the standard error clusters rows by profile): ``prefer`` when it is among
    the candidates, else the best forest (:data:`FORESTS`). With 20 to 100 cores the inner
    CV rarely resolves the candidates; the default incumbent ``prior-stacked``
    (:data:`AUTO_PREFER`: two thirds ``prior-residual``, i.e. the pretrained prediction, a
    shrunk level correction and a shrunk forest of the residual, and one third ``stacked``,
    a log forest that reads the pretrained prediction) uses both the prior and the regional
    covariates, so a forest or a fine-tuned network must beat it by more than the inner CV
    can resolve to be chosen. The chosen candidate is then fitted on every training row.

    Parameters
    ----------
    candidates
        Fine-tuning strategies (:data:`STRATEGIES`) and table-level methods
        (:data:`TABLE_METHODS`, named as in :func:`transfer_methods`); default
        :data:`AUTO_CANDIDATES`. :meth:`save` writes any choice among :data:`BUNDLE_METHODS` and
        the fine-tuning strategies as a bundle.
    network_from
        Training profiles (with SOC) from which the fine-tuned network :data:`AUTO_NETWORK`
        joins ``candidates`` when none of them is a network; ``None`` never adds it. With
        a few hundred profiles the inner CV can tell when the network is the better model
        (West Africa, all profiles: the network alone 4.71 g/kg MAE, rf-log 5.41;
        docs/benchmarks/auto_candidates.md).
    inner_folds
        Spatial folds of the inner CV (blocks of ``block_size``). Default (``None``): 5 for
        table-level ``candidates`` only, 2 when ``candidates`` name a fine-tuned network
        (about ``len(candidates) + 1`` network fits); the network added by ``network_from``
        keeps 5 (it comes with many profiles, where a fold is worth its fit).
    n_estimators
        Trees of the forests (``rf``, ``rf-log``, ``prior-residual``, ``blend``).
    prior
        Prior of ``prior-residual`` and ``recalibrate`` instead of the bundle's network (any
        object with ``predict_log(table) -> (mean, sd)`` of log1p SOC).
    tie_se
        Standard errors by which a candidate must beat the incumbent; 0 takes the lowest
        inner MAE (an exact tie still keeps the incumbent).
    prefer
        The incumbent candidate (``None``: the best forest).
    bundle, regional_bands, regional_categorical, l2sp_alpha, train, val_fraction,
    block_size, units, mc_passes, random_state, progress
        As in :class:`FineTunedRegressor`. The forests and residual models use
        ``regional_bands`` and ``regional_categorical`` (or, when both are empty, the
        bundle's covariates).

    Attributes
    ----------
    choice_
        The chosen candidate (also in ``strategy_``).
    candidates_
        The candidates compared: ``candidates``, plus :data:`AUTO_NETWORK` from
        ``network_from`` profiles.
    inner_mae_, inner_ccc_
        Pooled inner-CV MAE (g/kg) and CCC of every candidate.
    reason_
        One line (under 80 characters) on why ``choice_`` was chosen.
    inner_split_
        ``"blocks"`` or ``"profiles"``.
    estimator_
        The fitted table-level model, or ``None`` when a network strategy was chosen (the
        network is then this estimator's own ``model_``).
    """

    def __init__(
        self,
        bundle: str | Path = "",
        candidates: Sequence[str] = AUTO_CANDIDATES,
        inner_folds: int | None = None,
        regional_bands: Sequence[str] | None = None,
        regional_categorical: Sequence[str] | None = None,
        l2sp_alpha: float = 1e-3,
        train: Mapping[str, Any] | None = None,
        val_fraction: float = 0.2,
        block_size: float = 2000.0,
        units: str = "auto",
        mc_passes: int = 32,
        random_state: int = 0,
        progress: bool = False,
        n_estimators: int = 500,
        prior: Any = None,
        tie_se: float = 1.0,
        prefer: str | None = AUTO_PREFER,
        network_from: int | None = AUTO_NETWORK_FROM,
    ) -> None:
        super().__init__(
            bundle=bundle,
            strategy="auto",
            regional_bands=regional_bands,
            regional_categorical=regional_categorical,
            l2sp_alpha=l2sp_alpha,
            train=train,
            val_fraction=val_fraction,
            block_size=block_size,
            units=units,
            mc_passes=mc_passes,
            random_state=random_state,
            progress=progress,
        )
        self.candidates = candidates
        self.inner_folds = inner_folds
        self.n_estimators = n_estimators
        self.prior = prior
        self.tie_se = tie_se
        self.prefer = prefer
        self.network_from = network_from

    def _forest_bands(self) -> list[str]:
        bands = list(
            dict.fromkeys([*(self.regional_bands or []), *(self.regional_categorical or [])])
        )
        if bands:
            return bands
        if not str(self.bundle):
            raise ConfigError(
                f"auto candidates {list(self.candidates)!r} include table-level models that "
                "need covariates: pass regional_bands=[...] (or a bundle whose covariates "
                "they can use)"
            )
        return list(load_bundle(self.bundle).spec.band_names)

    def _candidate(self, name: str) -> Any:
        network: dict[str, Any] = {
            "regional_bands": self.regional_bands,
            "regional_categorical": self.regional_categorical,
            "l2sp_alpha": self.l2sp_alpha,
            "train": self.train,
            "val_fraction": self.val_fraction,
            "block_size": self.block_size,
            "units": self.units,
            "mc_passes": self.mc_passes,
            "random_state": self.random_state,
            "progress": self.progress,
        }
        if name in STRATEGIES:
            return FineTunedRegressor(self.bundle, strategy=name, **network)
        return _table_method(
            name,
            bundle=self.bundle,
            prior=self.prior,
            bands=self._forest_bands(),
            network=network,
            n_estimators=self.n_estimators,
            block_size=self.block_size,
            units=self.units,
            mc_passes=self.mc_passes,
            seed=self.random_state,
        )

    def fit(self, X: pd.DataFrame, y: Any = None) -> AutoTransferRegressor:
        """Choose a candidate by inner spatial CV on ``X``, then fit it on all of ``X``."""
        from socmap.validate.metrics import regression_metrics

        known = [*TABLE_METHODS, *STRATEGIES]
        unknown = [c for c in self.candidates if c not in known]
        if unknown or not self.candidates:
            raise ConfigError(
                f"auto candidates {list(self.candidates)!r} must be a non-empty subset of {known!r}"
            )
        if not (np.isfinite(self.tie_se) and self.tie_se >= 0):
            raise ConfigError(f"tie_se {self.tie_se!r} must be >= 0; pass e.g. 1.0")
        if self.network_from is not None and not (
            isinstance(self.network_from, int | np.integer)
            and not isinstance(self.network_from, bool)
            and self.network_from >= 1
        ):
            raise ConfigError(
                f"network_from {self.network_from!r} must be a number of profiles or None"
            )
        rows = self._rows_with_target(X)
        n_without = self.n_rows_without_target_
        self.inner_folds_ = self.inner_folds or default_inner_folds(self.candidates)
        self.candidates_ = list(self.candidates)
        if (
            self.network_from is not None
            and rows["site_id"].nunique() >= self.network_from
            and not any(c in STRATEGIES for c in self.candidates_)
        ):
            self.candidates_.append(AUTO_NETWORK)
        splits, self.inner_split_ = inner_splits(
            rows, self.inner_folds_, self.block_size, self.units, self.random_state
        )
        obs = rows["soc_g_kg"].to_numpy(dtype=float)
        self.inner_mae_: dict[str, float] = {}
        self.inner_ccc_: dict[str, float] = {}
        errors: dict[str, np.ndarray] = {}
        inner: dict[str, np.ndarray] = {}
        for name in self.candidates_:
            pred = np.expm1(self._inner_mean(name, rows, splits, inner))
            scores = regression_metrics(obs, pred)
            self.inner_mae_[name] = float(scores["mae"])
            self.inner_ccc_[name] = float(scores["ccc"])
            errors[name] = np.abs(obs - pred)
        self.choice_, self.reason_ = _choose(
            self.candidates_,
            self.inner_mae_,
            errors,
            rows["site_id"].to_numpy(),
            float(self.tie_se),
            self.prefer,
        )
        self.estimator_: Any = None
        if self.choice_ in STRATEGIES:
            self._fit_strategy(rows, self.choice_)
        else:
            self.estimator_ = self._candidate(self.choice_).fit(rows)
            self.strategy_ = self.choice_
        self.n_rows_without_target_ = n_without
        return self

    def _inner_mean(
        self,
        name: str,
        rows: pd.DataFrame,
        splits: Sequence[tuple[np.ndarray, np.ndarray]],
        done: dict[str, np.ndarray],
    ) -> np.ndarray:
        """Inner out-of-fold mean of log1p(SOC) of a method, each method fitted once.

        A mixture (:data:`~socmap.model.methods.MIXTURES`) is the weighted mean of its
        members' out-of-fold means: its adjustment is linear in theirs, so fitting it would
        fit each member again (``prior-residual`` is also a candidate of its own).
        """
        if name not in done:
            if name in MIXTURES:
                parts = MIXTURES[name]
                total = sum(parts.values())
                mean = np.zeros(len(rows))
                for part, w in parts.items():
                    mean = mean + (w / total) * self._inner_mean(part, rows, splits, done)
                done[name] = mean
            else:
                done[name] = oof_log(self._candidate(name), rows, splits)[0]
        return done[name]

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of log1p(SOC) of the chosen candidate."""
        check_is_fitted(self, "choice_")
        if self.estimator_ is not None:
            mean, sd = self.estimator_.predict_log(X)
            return np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
        return super().predict_log(X)

    def summary(self) -> dict[str, Any]:
        """Return what was chosen and why, as a JSON-ready dict (a bundle's ``"auto"``)."""
        check_is_fitted(self, "choice_")
        return {
            "choice": self.choice_,
            "network": self.choice_ in STRATEGIES,
            "reason": self.reason_,
            "candidates": list(self.candidates_),
            "inner_mae": {k: _finite_or_none(v) for k, v in self.inner_mae_.items()},
            "inner_ccc": {k: _finite_or_none(v) for k, v in self.inner_ccc_.items()},
            "inner_folds": int(self.inner_folds_),
            "inner_split": self.inner_split_,
            "tie_se": float(self.tie_se),
            "prefer": self.prefer,
        }

    def save(
        self,
        path: str | Path,
        metadata: Mapping[str, Any] | None = None,
        aoa: AreaOfApplicability | None = None,
    ) -> Path:
        """Write the choice as a bundle, with :meth:`summary` under ``"auto"``.

        A fine-tuned network, or one of :data:`BUNDLE_METHODS` (the pretrained network with
        the regional adjustment, see :func:`save_transfer_bundle`).

        Raises
        ------
        ConfigError
            The choice is another table-level model, which a bundle cannot hold.
        """
        check_is_fitted(self, "choice_")
        meta = {"auto": self.summary(), **dict(metadata or {})}
        if self.choice_ in STRATEGIES:
            return super().save(path, meta, aoa=aoa)
        if self.choice_ in BUNDLE_METHODS:
            return save_transfer_bundle(self.estimator_, self.bundle, path, meta, aoa=aoa)
        raise ConfigError(
            f"auto chose {self.choice_!r}, a table-level model that a bundle cannot hold; "
            f"to get a bundle, choose among {[*BUNDLE_METHODS, *sorted(STRATEGIES)]!r}"
        )


def default_inner_folds(candidates: Sequence[str]) -> int:
    """Inner CV folds of :class:`AutoTransferRegressor` when not given.

    5 for table-level candidates only, 2 when a fine-tuned network is among them (each
    network candidate costs a fit per fold).
    """
    return 2 if any(c in STRATEGIES for c in candidates) else 5


def save_transfer_bundle(
    estimator: Any,
    pretrained: str | Path,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    *,
    aoa: AreaOfApplicability | None = None,
) -> Path:
    """Write any fitted transfer model that a map can use as a bundle.

    A fine-tuned network is written as is; a model of :data:`BUNDLE_METHODS` as the network
    of its prior (or of ``pretrained``, for the forests, which do not use it) with its
    :class:`~socmap.model.adjustment.RegionalAdjustment`.

    Raises
    ------
    ConfigError
        A model a bundle cannot hold (a blend, a prior that is not a bundle's network, such
        as the ensemble with ``global-gbm``).
    """
    from socmap.model.bundle import save_bundle

    if isinstance(estimator, SocNetRegressor):
        return Path(estimator.save(path, metadata, aoa=aoa))
    make = getattr(estimator, "adjustment", None)
    if make is None:
        raise ConfigError(
            f"a {type(estimator).__name__} cannot be saved as a bundle; choose one of "
            f"{[*BUNDLE_METHODS, *sorted(STRATEGIES)]!r}"
        )
    adjustment = make()
    prior = getattr(estimator, "prior_", None)
    if adjustment.slope == 0 and not adjustment.prior_input:
        if not str(pretrained):
            raise ConfigError(
                "a bundle holds a forest beside a pretrained network, and none was given; "
                "pass bundle=<pretrained bundle>"
            )
        host = load_bundle(pretrained)
    elif isinstance(prior, GlobalModel):
        host = prior.bundle_
    else:
        raise ConfigError(
            f"its prior {type(prior).__name__!r} is not a bundle's network, so a bundle "
            "cannot hold it; use the pretrained bundle as the prior (bundle=..., prior=None)"
        )
    if host.adjustment is not None:
        raise ConfigError(
            f"bundle {str(host.path)!r} already carries a regional adjustment; build on the "
            "bundle it was made from"
        )
    meta = {"band_units": host.band_units, **dict(metadata or {})}
    return save_bundle(path, host.model, host.spec, host.config, meta, aoa=aoa,
                       adjustment=adjustment)  # fmt: skip


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _choose(
    candidates: list[str],
    mae: Mapping[str, float],
    errors: Mapping[str, np.ndarray],
    sites: np.ndarray,
    tie_se: float,
    prefer: str | None = None,
) -> tuple[str, str]:
    """Lowest inner MAE, but the incumbent unless beaten by more than ``tie_se`` SE.

    The incumbent is ``prefer`` when it is a candidate, else the best forest.
    """

    def key(c: str) -> tuple[float, str]:
        return (mae[c] if np.isfinite(mae[c]) else np.inf, c)

    best = min(candidates, key=key)
    incumbents = [prefer] if prefer in candidates else [c for c in candidates if c in FORESTS]
    if not incumbents or best in incumbents:
        return best, f"{best}: lowest inner MAE ({mae[best]:.4g} g/kg)"
    forest = min(incumbents, key=key)
    se = paired_se(errors[forest] - errors[best], sites)
    if mae[forest] - mae[best] <= tie_se * se:
        return forest, (
            f"{forest}: within {tie_se:g} SE ({se:.3g}) of {best} "
            f"({mae[forest]:.4g} vs {mae[best]:.4g} g/kg)"
        )
    return best, (
        f"{best}: MAE {mae[best]:.4g} beats {forest} {mae[forest]:.4g} g/kg "
        f"by > {tie_se:g} SE ({se:.3g})"
    )


@functools.lru_cache(maxsize=1)
def _global_instances() -> pd.DataFrame:
    # Read-only use: callers filter and copy, never modify it in place.
    from socmap.datasets import global_training_table

    return global_training_table().table


#: Transfer methods with their own estimator class (the others are :data:`STRATEGIES`).
NETWORK_METHODS: dict[str, type[FineTunedRegressor]] = {
    "auto": AutoTransferRegressor,
    "depthwise": DepthwiseRegressor,
    "instances": InstanceTransferRegressor,
}


def _table_method(
    name: str,
    *,
    bundle: str | Path,
    prior: Any,
    bands: Sequence[str],
    network: Mapping[str, Any],
    n_estimators: int,
    block_size: float,
    units: str,
    mc_passes: int,
    seed: int,
) -> Any:
    """Estimator of one of :data:`TABLE_METHODS` (shared by auto and the benchmark)."""
    if name == "rf":
        ranger = {**RANGER_DEFAULTS, "n_estimators": n_estimators}
        return RegionalForest(bands, target_transform="identity", random_state=seed, **ranger)
    if name == "rf-log":
        return RegionalForest(bands, n_estimators, random_state=seed)
    prior_args: dict[str, Any] = {
        "bundle": str(bundle),
        "prior": prior,
        "mc_passes": mc_passes,
        "random_state": seed,
    }
    if name.startswith("prior-residual"):
        if name == "prior-residual-ens":
            prior_args["prior"] = _global_ensemble(bundle, mc_passes, seed)
        elif name == "prior-residual-best":
            prior_args["prior"] = _selected_prior(bundle, mc_passes, seed)
        return PriorResidualRegressor(
            **prior_args,
            bands=bands,
            n_estimators=n_estimators,
            block_size=block_size,
            units=units,
            kriging=name == "prior-residual-krige",
        )
    if name == "recalibrate":
        return RecalibratedRegressor(**prior_args)
    if name == "stacked":
        network_prior = prior if prior is not None else GlobalModel(str(bundle), mc_passes, seed)
        return StackedForest(
            _GlobalLogPrediction(network_prior), bands, n_estimators, random_state=seed
        )
    if name in MIXTURES:
        from socmap.model.mixture import MixedRegressor

        return MixedRegressor([
            _table_method(part, bundle=bundle, prior=prior, bands=bands, network=network,
                          n_estimators=n_estimators, block_size=block_size, units=units,
                          mc_passes=mc_passes, seed=seed)
            for part in MIXTURES[name]
        ], weights=list(MIXTURES[name].values()))  # fmt: skip
    if name == "blend":
        return BlendRegressor(
            network=FineTunedRegressor(bundle, strategy="freeze-encoders", **network),
            forest=_table_method(
                "rf",
                bundle=bundle,
                prior=prior,
                bands=bands,
                network=network,
                n_estimators=n_estimators,
                block_size=block_size,
                units=units,
                mc_passes=mc_passes,
                seed=seed,
            ),
            block_size=block_size,
            units=units,
            random_state=seed,
        )
    raise ConfigError(f"unknown table-level method {name!r}; choose from {TABLE_METHODS!r}")


def transfer_methods(
    names: Sequence[str],
    bundle: str | Path,
    regional_bands: Sequence[str],
    continuous_bands: Sequence[str],
    *,
    block_size: float = 2000.0,
    n_estimators: int = 500,
    mc_passes: int = 32,
    seed: int = 0,
) -> dict[str, Any]:
    """Build the estimators of a transfer benchmark from short names.

    Parameters
    ----------
    names
        ``rf`` (regional-only forest on SOC with R ranger's defaults,
        :data:`~socmap.model.baselines.RANGER_DEFAULTS`), ``rf-log`` (regional forest on
        log1p SOC), ``stacked`` (log forest reading the network's prediction), ``global``
        (pretrained network as is), ``global-gbm`` (gradient boosting on the global table with the
        bundle's excluded region left out, :class:`~socmap.model.global_gbm.GlobalGBM`),
        ``global-ens`` (the mean of both in log space,
        :class:`~socmap.model.prior.GlobalEnsemble`), ``prior-residual`` (global prediction +
        shrunk regional residual forest), ``prior-residual-best`` (the same on the network,
        ``global-gbm`` or their mean, whichever fits the training cores best,
        :class:`~socmap.model.prior.SelectedPrior`), ``prior-residual-ens`` (the same on the
        ensemble prior; table-level only: a bundle cannot hold the booster),
        ``prior-stacked`` (the mean of ``prior-residual`` and ``stacked`` on log1p SOC,
        :class:`~socmap.model.mixture.MixedRegressor`),
        ``prior-residual-krige`` (``prior-residual`` plus kriging of its inner-CV residuals,
        :class:`~socmap.model.kriging.ResidualKriging`; table-level only), ``recalibrate``
        (ridge-shrunk ``a + b * global``), ``blend`` (network fine-tuned with
        ``freeze-encoders`` and ``rf``, weighted by inner CV),
        ``depthwise`` (one fine-tuned network per interval), ``instances`` (fine-tuning with
        the most similar global profiles), ``auto`` (candidate chosen by inner spatial CV,
        :data:`AUTO_CANDIDATES`), or a fine-tuning strategy (:data:`STRATEGIES`).
    bundle
        Pretrained bundle.
    regional_bands
        Every regional covariate (the forests use them all, categorical ones as codes).
    continuous_bands
        Regional covariates that join the network as a new group; the other (categorical)
        regional bands join it as new embeddings.
    block_size
        Early-stopping split of the fine-tuning rows and the inner CV folds, in the CRS
        units of the sites.
    n_estimators, mc_passes, seed
        Forest size, MC dropout passes, seed.

    Returns
    -------
    dict
        :data:`BASELINES` names as given, ``"finetune:<name>"`` for strategies and
        :data:`NETWORK_METHODS` (``auto`` included) -> estimator.
    """
    check_methods(names)
    global_model = GlobalModel(str(bundle), mc_passes=mc_passes, random_state=seed)
    network: dict[str, Any] = {
        "regional_bands": continuous_bands,
        "regional_categorical": [b for b in regional_bands if b not in set(continuous_bands)],
        "block_size": block_size,
        "mc_passes": mc_passes,
        "random_state": seed,
    }
    out: dict[str, Any] = {}
    for name in names:
        if name in TABLE_METHODS:
            out[name] = _table_method(
                name,
                bundle=bundle,
                prior=None,
                bands=regional_bands,
                network=network,
                n_estimators=n_estimators,
                block_size=block_size,
                units="auto",
                mc_passes=mc_passes,
                seed=seed,
            )
        elif name == "global":
            out[name] = global_model
        elif name == "global-gbm":
            out[name] = _global_gbm(bundle, seed)
        elif name == "global-ens":
            out[name] = _global_ensemble(bundle, mc_passes, seed)
        elif name == "auto":
            out[f"finetune:{name}"] = AutoTransferRegressor(
                bundle, **network, n_estimators=n_estimators
            )
        elif name in NETWORK_METHODS:
            out[f"finetune:{name}"] = NETWORK_METHODS[name](bundle, **network)
        else:
            out[f"finetune:{name}"] = FineTunedRegressor(bundle, strategy=name, **network)
    return out


def _global_gbm(bundle: str | Path, seed: int) -> Any:
    """Build the gradient-boosting counterpart of ``bundle`` (same table and left-out region)."""
    from socmap.model.global_gbm import GlobalGBM

    loaded = load_bundle(bundle)
    meta = loaded.metadata
    depth_set = loaded.depth_set
    return GlobalGBM(
        depths=depth_set.name if depth_set is not None else "globalsoilmap",
        exclude_bbox=meta.get("exclude_bbox"),
        balance=meta.get("balance"),
        balance_power=float(meta.get("balance_power", 0.5)),
        random_state=seed,
    )


def _global_ensemble(bundle: str | Path, mc_passes: int, seed: int) -> GlobalEnsemble:
    """Average the bundle's network and its gradient-boosting counterpart in log space."""
    network = GlobalModel(str(bundle), mc_passes=mc_passes, random_state=seed)
    return GlobalEnsemble([network, _global_gbm(bundle, seed)])


def _selected_prior(bundle: str | Path, mc_passes: int, seed: int) -> SelectedPrior:
    """Choose among the bundle's network, its boosting counterpart and their mean on the cores."""
    network = GlobalModel(str(bundle), mc_passes=mc_passes, random_state=seed)
    return SelectedPrior([network, _global_gbm(bundle, seed)], names=["network", "gbm"])


class _GlobalLogPrediction:
    """Picklable callable: the global model's log1p(SOC) per row (for stacking)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, table: pd.DataFrame) -> Any:
        # a GlobalModel loads its bundle on first use; any other prior is used as it is
        if isinstance(self.model, GlobalModel) and not hasattr(self.model, "bundle_"):
            self.model.fit(None)
        return self.model.predict_log(table)[0]

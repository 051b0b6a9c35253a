"""The pretrained prediction as a prior for regional models fitted on few cores.

Fine-tuning a network on 20-100 cores has to repair the global model's level and learn the
regional covariates at once, and under spatial CV a plain regional Random Forest often wins.
The estimators here keep the pretrained prediction ``p`` (log1p SOC g/kg, from
:class:`~socmap.model.baselines.GlobalModel` or any ``prior`` with ``predict_log``) and let
the cores correct only what they can:

:class:`PriorResidualRegressor`
    ``p + level + s * f(covariates, depth)``: a regional model ``f`` of the residual
    ``log1p(y) - p``, shrunk by ``s`` chosen by inner spatial CV, plus a shrunk mean residual
    (weighted by empirical Bayes).
:class:`RecalibratedRegressor`
    ``a + b * p`` (+ an offset per depth interval), ridge-shrunk towards ``a = 0, b = 1``;
    optionally followed by the residual model of :class:`PriorResidualRegressor`.
:class:`BlendRegressor`
    ``w * network + (1 - w) * forest`` on log1p SOC, ``w`` chosen by inner spatial CV.

Shrinkage rules
---------------
The level of :class:`PriorResidualRegressor` is weighted by empirical Bayes,
``level_sd^2 / (level_sd^2 + se^2)``: ``level_sd`` (:data:`LEVEL_SD`) is how far a region's
level typically is from the prior, ``se`` the standard error of the level estimated from the
cores, with profiles clustered in spatial blocks because nearby profiles share their
residual (20 profiles in 8 blocks say far less about the region than 20 scattered ones).
The ridge penalties of :class:`RecalibratedRegressor` (and the level with ``level_sd=None``)
pull an estimate from ``n`` profiles towards the prior like a mean with ``k`` pseudo
profiles at the prior's value: it is weighted ``n / (n + k)`` (``prior_strength = k``, 2 by
default).
The residual model's factor ``s`` is chosen instead by inner spatial CV on the training rows
(the grid :data:`SHRINK_GRID`, lowest pooled MAE of SOC in g/kg, ties to the smaller ``s``),
because how much a residual forest can be trusted depends on the region's covariates, not on
``n`` alone.

Every estimator takes the training table as ``X`` (the target ``soc_g_kg`` is read from it)
and provides ``predict_log(X) -> (mean, sd)`` of log1p(SOC g/kg), so they fit
:func:`socmap.validate.cross_validate` like the forests and the network.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from socmap.errors import BandMismatch, ConfigError, ProfileValidationError
from socmap.model.adjustment import RegionalAdjustment, with_prior
from socmap.model.baselines import GlobalModel, table_features

__all__ = [
    "LEVEL_SD",
    "RESIDUAL_MODELS",
    "SHRINK_GRID",
    "WEIGHT_GRID",
    "BlendRegressor",
    "ConstantPrior",
    "GlobalEnsemble",
    "PriorResidualRegressor",
    "RecalibratedRegressor",
    "SelectedPrior",
    "inner_splits",
    "oof_log",
    "paired_se",
]

#: Residual shrink factors :class:`PriorResidualRegressor` chooses among by inner CV.
SHRINK_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Weights of the kriged residual that ``PriorResidualRegressor(kriging=True)`` chooses among
#: by inner CV (ties to the smaller): with 20 cores the likelihood often picks a nugget near 0
#: and the process interpolates noise, so the data decide whether kriging is used at all.
KRIGING_GRID = (0.0, 0.5, 1.0)
#: Network weights :class:`BlendRegressor` chooses among by inner CV.
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
#: Regional models of the residual log1p(y) - prior.
RESIDUAL_MODELS = ("forest", "linear")
#: Prior sd of a region's level offset (log1p SOC) for :class:`PriorResidualRegressor`: a
#: chosen value (0.2, about 20 % in SOC), not a measured one; the level's weight then follows
#: its block-clustered standard error. Compared with 0.1, 0.3 and the ``n / (n + 2)`` rule in
#: docs/benchmarks/transfer_priors.md.
LEVEL_SD = 0.2
#: Statistics of the training profiles' residuals :class:`PriorResidualRegressor` can add as
#: the level; ``"cv"`` chooses among them (and no level) by inner CV.
LEVELS = ("mean", "median")

_TARGET = "soc_g_kg"


# --------------------------------------------------------------------------- helpers
def _rows_with_target(X: Any, min_rows: int = 2) -> tuple[pd.DataFrame, int]:
    """Rows of the training table with a SOC value, and the number without one."""
    if not isinstance(X, pd.DataFrame):
        raise ProfileValidationError(
            f"X must be the training table (a DataFrame), got {type(X).__name__!r}"
        )
    if _TARGET not in X.columns:
        raise ProfileValidationError(f"training table lacks the target column {_TARGET!r}")
    rows = X.loc[X[_TARGET].notna()].reset_index(drop=True)
    if len(rows) < min_rows:
        raise ProfileValidationError(
            f"only {len(rows)!r} rows have a {_TARGET!r} value; at least {min_rows!r} are needed"
        )
    return rows, len(X) - len(rows)


def _log_target(rows: pd.DataFrame) -> np.ndarray:
    return np.log1p(np.clip(rows[_TARGET].to_numpy(dtype=float), 0, None))


def _mae_g_kg(obs_g_kg: np.ndarray, mean_log: np.ndarray) -> float:
    err = np.abs(obs_g_kg - np.expm1(mean_log))
    return float(np.nanmean(err)) if np.isfinite(err).any() else float("inf")


def inner_splits(
    rows: pd.DataFrame,
    n_folds: int,
    block_size: float,
    units: str = "auto",
    random_state: int | None = 0,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Inner spatial folds of the training rows (whole profiles), for a choice made on them.

    Parameters
    ----------
    rows
        Training rows with ``site_id, x, y`` (and ``crs``).
    n_folds
        Number of folds, at least 2.
    block_size, units
        Spatial blocks of :class:`~socmap.validate.BlockKFold`.
    random_state
        Seed of the fold assignment.

    Returns
    -------
    splits, kind
        ``(train_idx, test_idx)`` pairs, and ``"blocks"``; or ``"profiles"`` when the rows
        fill fewer than ``n_folds`` blocks and whole profiles are dealt to folds instead.
    """
    from sklearn.model_selection import GroupKFold

    from socmap.validate.splitters import BlockKFold, block_ids

    if isinstance(n_folds, bool) or int(n_folds) != n_folds or n_folds < 2:
        raise ConfigError(f"inner_folds {n_folds!r} must be an integer >= 2; pass e.g. 3")
    groups = rows["site_id"].to_numpy()
    n_blocks = len(np.unique(block_ids(rows, groups, block_size=block_size, units=units)))  # type: ignore[arg-type]
    if n_blocks >= n_folds:
        cv = BlockKFold(int(n_folds), block_size, units=units, random_state=random_state)  # type: ignore[arg-type]
        return list(cv.split(rows, groups=groups)), "blocks"
    n_sites = len(np.unique(groups))
    if n_sites < n_folds:
        raise ProfileValidationError(
            f"only {n_sites!r} profiles for {n_folds!r} inner folds; train on more profiles "
            "or lower inner_folds"
        )
    folds = GroupKFold(int(n_folds), shuffle=True, random_state=random_state)
    return list(folds.split(rows, groups=groups)), "profiles"


def paired_se(diff: np.ndarray, sites: np.ndarray) -> float:
    """Return the standard error of the mean of ``diff`` over rows, clustered by profile."""
    ok = np.isfinite(diff)
    d, groups = diff[ok], sites[ok]
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        return float("inf")
    sums = pd.Series(d - d.mean()).groupby(groups).sum().to_numpy()
    return float(np.sqrt(n_groups / (n_groups - 1) * np.sum(sums**2)) / len(d))


def oof_log(
    estimator: Any, rows: pd.DataFrame, splits: Sequence[tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold mean and sd of log1p(SOC): a clone of ``estimator`` fitted per split."""
    mean = np.full(len(rows), np.nan)
    sd = np.full(len(rows), np.nan)
    for train, test in splits:
        est = clone(estimator).fit(rows.iloc[train].reset_index(drop=True))
        m, s = est.predict_log(rows.iloc[test].reset_index(drop=True))
        mean[test], sd[test] = m, s
    return mean, sd


def _fitted_prior(
    prior: Any, bundle: str | Path, mc_passes: int, random_state: int, rows: pd.DataFrame
) -> Any:
    """Return the prior to use: ``prior`` fitted (a clone, if it was not), or the bundle's network.

    Any scikit-learn estimator with ``predict_log`` is a prior. One that is not fitted yet is
    cloned and fitted on its own global data (``fit()``), or, when it sets the class
    attribute ``fit_on_regional_rows`` (as :class:`SelectedPrior`, which chooses its member
    by its error on the cores), on ``rows``, the training rows.
    """
    if prior is None:
        if not str(bundle):
            raise ConfigError(
                "no prior: pass bundle=<pretrained bundle> or prior=<object with "
                "predict_log(table) -> (mean, sd) of log1p SOC>"
            )
        return GlobalModel(str(bundle), mc_passes=mc_passes, random_state=random_state).fit()
    if not callable(getattr(prior, "predict_log", None)):
        raise ConfigError(
            f"prior {type(prior).__name__!r} has no predict_log(table) -> (mean, sd); pass "
            "a fitted estimator such as GlobalModel(bundle).fit()"
        )
    if not isinstance(prior, BaseEstimator):
        return prior
    try:
        check_is_fitted(prior)
    except NotFittedError:
        fresh = clone(prior)
        return fresh.fit(rows) if getattr(fresh, "fit_on_regional_rows", False) else fresh.fit()
    return prior


def _prior_log(prior: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    mean, sd = prior.predict_log(X)
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    if mean.shape != (len(X),) or sd.shape != (len(X),):
        raise ConfigError(
            f"prior returned shapes {mean.shape!r} and {sd.shape!r} for {len(X)!r} rows; "
            "predict_log must give one mean and one sd per row"
        )
    return mean, sd


def _check_strength(value: float) -> None:
    if not (np.isfinite(value) and value >= 0):
        raise ConfigError(
            f"prior_strength {value!r} must be a finite number >= 0 (profiles' worth of "
            "weight on the prior); pass e.g. 2.0"
        )


def _check_table(X: Any) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise ProfileValidationError(
            f"X must be the training table (a DataFrame), got {type(X).__name__!r}"
        )
    return X


class ConstantPrior(RegressorMixin, BaseEstimator):
    """A prior that predicts one log1p(SOC) value everywhere: a null model for examples and tests.

    Parameters
    ----------
    value, sd
        The mean and sd of log1p(SOC g/kg) it returns for every row.

    Examples
    --------
    >>> ConstantPrior(2.0).fit().predict_log(pd.DataFrame({"a": [0, 1]}))[0].tolist()
    [2.0, 2.0]
    """

    def __init__(self, value: float = 0.0, sd: float = 0.5) -> None:
        self.value = value
        self.sd = sd

    def fit(self, X: pd.DataFrame | None = None, y: Any = None) -> ConstantPrior:
        """Learn nothing (the value is given)."""
        self.fitted_ = True
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return the constant mean and sd for every row of ``X``."""
        return np.full(len(X), float(self.value)), np.full(len(X), float(self.sd))


# --------------------------------------------------------------------------- global ensemble
class GlobalEnsemble(RegressorMixin, BaseEstimator):
    """Several global models averaged in log1p space: a prior no single model family gives.

    The pretrained network and gradient boosting on the same global table err differently
    from region to region (each is the better prior somewhere), so their mean is a steadier
    prior. Like the members, it ignores regional rows: :meth:`fit` fits each member on its
    global data (``GlobalModel(bundle)``, ``GlobalGBM(exclude_bbox=...)``).

    Parameters
    ----------
    members
        Unfitted global models with ``fit()`` and ``predict_log(table) -> (mean, sd)``.

    Examples
    --------
    >>> ens = GlobalEnsemble([ConstantPrior(1.0), ConstantPrior(3.0)]).fit()
    >>> m, sd = ens.predict_log(pd.DataFrame({"a": [0]}))
    >>> float(m[0]), round(float(sd[0]), 4)  # var = mean of 0.25 + spread of the means (1.0)
    (2.0, 1.118)
    """

    def __init__(self, members: Sequence[Any] = ()) -> None:
        self.members = members

    def fit(self, X: pd.DataFrame | None = None, y: Any = None) -> GlobalEnsemble:
        """Fit every member on its own global data (regional rows are not used)."""
        if not self.members:
            raise ConfigError("GlobalEnsemble needs members, e.g. [GlobalModel(b), GlobalGBM()]")
        self.members_ = [clone(m).fit() for m in self.members]
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean of the members' log1p means; sd from their variances and their spread."""
        check_is_fitted(self, "members_")
        return _mixture([_prior_log(m, X) for m in self.members_])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg: ``expm1`` of the mean log prediction (a median-type estimate)."""
        return np.expm1(self.predict_log(X)[0])


def _mixture(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-weight mixture of ``(mean, sd)`` predictions: its mean and sd."""
    means, sds = zip(*predictions, strict=True)
    mean = np.mean(means, axis=0)
    var = np.mean([sd**2 + (mu - mean) ** 2 for mu, sd in zip(means, sds, strict=True)], axis=0)
    return mean, np.sqrt(var)


class SelectedPrior(RegressorMixin, BaseEstimator):
    """The global model (or the mean of all of them) that fits the regional cores best.

    Which global model family is the better prior changes from region to region (in
    docs/benchmarks/transfer_priors.md the network alone has a 3 % lower MAE than its mean
    with ``global-gbm`` in one region and a 10 % higher one in another). The cores tell:
    the global models never saw them, so each one's MAE on them is an honest out-of-sample
    score that needs no inner CV and no refit. :meth:`fit` fits every member on its global
    data, scores each member and their log-space mean (:class:`GlobalEnsemble`'s rule) by
    the pooled MAE of SOC (g/kg) on the rows of ``X`` with SOC, and keeps the lowest (ties
    to the earlier candidate: the members in order, then the mean). Without rows to score
    it keeps the mean.

    Parameters
    ----------
    members
        Unfitted global models with ``fit()`` and ``predict_log(table) -> (mean, sd)``.
    names
        A name per member for ``choice_`` and ``scores_`` (default ``member0``, ...).

    Attributes
    ----------
    members_
        The fitted members.
    choice_
        The chosen member's name, or ``"mean"``.
    scores_
        MAE (g/kg) on the training rows per candidate (empty without rows).

    Examples
    --------
    >>> rows = pd.DataFrame({"soc_g_kg": np.expm1([2.9, 3.1])})
    >>> members = [ConstantPrior(1.0), ConstantPrior(3.0)]
    >>> prior = SelectedPrior(members, names=["net", "gbm"]).fit(rows)
    >>> prior.choice_, {k: round(v, 2) for k, v in prior.scores_.items()}
    ('gbm', {'net': 17.47, 'gbm': 2.01, 'mean': 12.8})
    """

    #: An unfitted prior of this class is fitted on the regional training rows (it chooses
    #: its member by their error on them); see :func:`_fitted_prior`.
    fit_on_regional_rows = True

    def __init__(self, members: Sequence[Any] = (), names: Sequence[str] | None = None) -> None:
        self.members = members
        self.names = names

    def _names(self) -> list[str]:
        names = (
            [str(n) for n in self.names]
            if self.names is not None
            else [f"member{i}" for i in range(len(self.members))]
        )
        if len(names) != len(self.members) or len(set(names)) != len(names) or "mean" in names:
            raise ConfigError(
                f"names {names!r} must be one unique name per member (not 'mean'); got "
                f"{len(self.members)} members"
            )
        return names

    def fit(self, X: pd.DataFrame | None = None, y: Any = None) -> SelectedPrior:
        """Fit the members on their global data and choose by MAE on ``X``'s SOC rows."""
        if not self.members:
            raise ConfigError("SelectedPrior needs members, e.g. [GlobalModel(b), GlobalGBM()]")
        names = self._names()
        self.members_ = [clone(m).fit() for m in self.members]
        self.scores_: dict[str, float] = {}
        self.choice_ = "mean"
        if X is not None:
            rows = _check_table(X)
            rows = rows.loc[rows[_TARGET].notna()] if _TARGET in rows else rows.iloc[:0]
            if len(rows):
                preds = [_prior_log(m, rows) for m in self.members_]
                means = [mu for mu, _ in preds] + [_mixture(preds)[0]]
                obs = rows[_TARGET].to_numpy(dtype=float)
                for name, mean in zip([*names, "mean"], means, strict=True):
                    self.scores_[name] = _mae_g_kg(obs, mean)
                self.choice_ = min(self.scores_, key=lambda k: self.scores_[k])
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return the chosen candidate's mean and sd of log1p SOC."""
        check_is_fitted(self, "members_")
        if self.choice_ == "mean":
            return _mixture([_prior_log(m, X) for m in self.members_])
        return _prior_log(self.members_[self._names().index(self.choice_)], X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg: ``expm1`` of the mean log prediction (a median-type estimate)."""
        return np.expm1(self.predict_log(X)[0])


# --------------------------------------------------------------------------- prior + residual
class PriorResidualRegressor(RegressorMixin, BaseEstimator):
    """Pretrained prediction as an offset, plus a shrunk regional model of its residual.

    With ``p`` the prior's log1p(SOC) and ``r = log1p(y) - p``, the prediction is
    ``p + level + s * f(x)``: ``level`` is the mean residual of the training profiles
    weighted by empirical Bayes (``level_sd``; or ``n / (n + prior_strength)``), ``f`` a
    Random Forest (or ridge regression) of ``r - level`` on the regional covariates and
    depth, and ``s`` the shrink factor of :data:`SHRINK_GRID` with the lowest pooled inner
    spatial-CV MAE of SOC (g/kg) on the training rows (ties to the smaller ``s``, i.e.
    towards the prior).

    Parameters
    ----------
    bundle
        Pretrained bundle; its global network gives the prior (``GlobalModel``).
    prior
        Instead of ``bundle``: any object with ``predict_log(table) -> (mean, sd)`` of
        log1p(SOC g/kg), used as is (an unfitted ``GlobalModel`` is fitted).
    bands
        Regional covariates of the residual model (categorical ones as codes).
    residual
        ``"forest"`` (Random Forest) or ``"linear"`` (ridge on standardised covariates and
        depth, missing values imputed by the training mean).
    shrink
        ``"cv"`` (choose from ``shrink_grid``) or a fixed factor in ``[0, 1]``; 0 with
        ``level=False`` reproduces the prior exactly.
    shrink_grid
        Factors the inner CV chooses among.
    level
        The level added to the prior: the shrunk ``"mean"`` (``True``) or ``"median"`` of
        the training profiles' residuals, none (``False``), or ``"cv"``: the one of these
        three with the lowest inner-CV MAE, chosen jointly with ``shrink`` (ties towards no
        level). The median suits the median-type back-transform and skewed regions, where a
        few profiles far above the prior pull the mean up for every pixel.
    prior_strength
        ``k`` of the level's weight ``n / (n + k)`` (when ``level_sd`` is ``None``).
    level_sd
        Prior standard deviation of the region's level offset (log1p units; default
        :data:`LEVEL_SD`). When set, the level's weight is
        ``level_sd^2 / (level_sd^2 + se^2)`` (empirical Bayes), with ``se`` the standard
        error of the level with profiles clustered in spatial blocks of ``block_size``:
        nearby profiles share their residual, so 20 profiles in a few blocks estimate the
        level far less well than ``n / (n + k)`` assumes.
    tie_se
        One-standard-error rule of the inner-CV choice: the candidate closest to the prior
        (no level before a level, smaller ``s`` before larger) whose inner MAE is within
        ``tie_se`` standard errors of the lowest (paired, clustered by profile) is chosen.
        0 takes the lowest.
    n_estimators, min_samples_leaf, max_features
        Residual forest (large leaves: a residual is mostly noise).
    ridge_alpha
        Penalty of the linear residual model.
    inner_folds, block_size, units
        Inner spatial CV of the shrink choice (see :func:`inner_splits`).
    mc_passes
        MC dropout passes of the bundle's network.
    random_state
        Seed of the forest, the inner folds and the dropout masks.
    n_jobs
        Parallel trees.
    kriging
        Also krige what is left (:class:`~socmap.model.kriging.ResidualKriging`): a
        Gaussian process, per depth interval, of the inner-CV residuals of the chosen
        level and shrink factor over the profiles' coordinates, added to the prediction
        with the weight of :data:`KRIGING_GRID` whose kriged inner-CV predictions (each
        inner fold kriged from the others' residuals) have the lowest MAE (ties to the
        smaller); its sd joins the sd. Needs the inner CV (``shrink="cv"`` or
        ``level="cv"``); a bundle cannot hold it yet.
    prior_feature
        The residual model also reads the prior's log1p SOC as a covariate, so it can
        correct the prior differently where the prior is low or high (a bundle's forest
        then reads the network's prediction, ``RegionalAdjustment.prior_input``).

    Attributes
    ----------
    prior_
        The prior used.
    kriging_
        The fitted :class:`~socmap.model.kriging.ResidualKriging`, or None (no kriging, or
        weight 0).
    kriging_weight_
        The chosen weight of the kriged residual (0 without kriging).
    kriging_mae_
        Inner-CV MAE (g/kg) per kriging weight (empty without kriging).
    level_
        The shrunk mean residual added to the prior (log1p scale).
    shrinkage_
        ``{"residual": s, "level": w}``: the level's weight ``w`` (``n / (n + k)``, the
        empirical-Bayes weight with ``level_sd``, 0 without a level).
    level_stat_
        The level used: ``"mean"``, ``"median"`` or ``"none"``.
    inner_mae_
        Inner-CV MAE (g/kg) per shrink factor (empty when nothing is chosen by CV); with
        ``level="cv"``, per ``(level, shrink)`` pair.
    inner_split_
        ``"blocks"`` or ``"profiles"`` (see :func:`inner_splits`), or ``None``.
    residual_model_
        The fitted residual model.
    n_rows_without_target_
        Rows of ``X`` without SOC, not used.
    """

    def __init__(
        self,
        bundle: str | Path = "",
        prior: Any = None,
        bands: Sequence[str] | None = None,
        residual: str = "forest",
        shrink: float | str = "cv",
        shrink_grid: Sequence[float] = SHRINK_GRID,
        level: bool | str = True,
        prior_strength: float = 2.0,
        level_sd: float | None = LEVEL_SD,
        tie_se: float = 0.0,
        n_estimators: int = 500,
        min_samples_leaf: int = 5,
        max_features: float | str = 1 / 3,
        ridge_alpha: float = 1.0,
        inner_folds: int = 3,
        block_size: float = 2000.0,
        units: str = "auto",
        mc_passes: int = 32,
        random_state: int = 0,
        n_jobs: int | None = None,
        kriging: bool = False,
        prior_feature: bool = False,
    ) -> None:
        self.bundle = bundle
        self.prior = prior
        self.bands = bands
        self.residual = residual
        self.kriging = kriging
        self.prior_feature = prior_feature
        self.shrink = shrink
        self.shrink_grid = shrink_grid
        self.level = level
        self.prior_strength = prior_strength
        self.level_sd = level_sd
        self.tie_se = tie_se
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.ridge_alpha = ridge_alpha
        self.inner_folds = inner_folds
        self.block_size = block_size
        self.units = units
        self.mc_passes = mc_passes
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        if not self.bands:
            raise BandMismatch(
                "the residual model needs bands=[...] naming the regional covariates"
            )
        if self.residual not in RESIDUAL_MODELS:
            raise ConfigError(f"residual {self.residual!r} must be one of {RESIDUAL_MODELS!r}")
        grid = list(self.shrink_grid)
        if not grid or not all(0 <= float(s) <= 1 for s in grid):
            raise ConfigError(f"shrink_grid {grid!r} must be a non-empty list of factors in [0, 1]")
        if self.level_sd is not None and not (
            isinstance(self.level_sd, int | float)
            and np.isfinite(self.level_sd)
            and self.level_sd > 0
        ):
            raise ConfigError(
                f"level_sd {self.level_sd!r} must be None or a number > 0 (log1p units), e.g. 0.2"
            )
        if not (isinstance(self.tie_se, int | float) and self.tie_se >= 0):
            raise ConfigError(f"tie_se {self.tie_se!r} must be a number >= 0, e.g. 1")
        if self.level not in (True, False, "cv", *LEVELS):
            raise ConfigError(
                f"level {self.level!r} must be True, False, 'cv' or one of {LEVELS!r}"
            )
        if self.shrink != "cv" and not (
            isinstance(self.shrink, int | float) and 0 <= float(self.shrink) <= 1
        ):
            raise ConfigError(
                f"shrink {self.shrink!r} must be 'cv' or a factor in [0, 1]; pass e.g. 0.5"
            )
        if self.kriging and self.shrink != "cv" and self.level != "cv":
            raise ConfigError(
                "kriging=True kriges the inner-CV residuals, but with a fixed shrink and level "
                "no inner CV runs; pass shrink='cv' (the default) or kriging=False"
            )
        _check_strength(self.prior_strength)

    def _residual_model(self) -> Any:
        if self.residual == "forest":
            return RandomForestRegressor(
                n_estimators=self.n_estimators,
                min_samples_leaf=self.min_samples_leaf,
                max_features=self.max_features,
                random_state=self.random_state,
                n_jobs=self.n_jobs,
            )
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            SimpleImputer(strategy="mean", keep_empty_features=True),
            StandardScaler(),
            Ridge(alpha=self.ridge_alpha),
        )

    def _choose(
        self, errors: dict[tuple[str, float], np.ndarray], stats: list[str], sites: np.ndarray
    ) -> tuple[str, float]:
        """Closest to the prior within ``tie_se`` SE of the lowest inner MAE."""
        # Towards the prior: no level first, then the smaller shrink factor.
        order = sorted(self.inner_mae_, key=lambda k: (stats.index(k[0]), k[1]))
        best = min(order, key=lambda k: self.inner_mae_[k])  # first of equals: the prior side
        if not self.tie_se:
            return best
        for key in order:
            gap = self.inner_mae_[key] - self.inner_mae_[best]
            if gap <= float(self.tie_se) * paired_se(errors[key] - errors[best], sites):
                return key
        return best

    def _blocks(self, rows: pd.DataFrame) -> np.ndarray:
        """Spatial block of every row (only ``level_sd`` uses them)."""
        if self.level_sd is None:
            return np.zeros(len(rows), dtype=np.int64)
        from socmap.validate.splitters import block_ids

        return block_ids(
            rows,
            rows["site_id"].to_numpy(),
            block_size=self.block_size,
            units=self.units,  # type: ignore[arg-type]
        )

    def _level_stats(self) -> list[str]:
        """Level statistics to try: one, or every one and none for ``level="cv"``."""
        if self.level == "cv":
            return ["none", *LEVELS]
        if self.level is False:
            return ["none"]
        return ["mean" if self.level is True else str(self.level)]

    def _level(
        self, resid: np.ndarray, sites: np.ndarray, stat: str, blocks: np.ndarray
    ) -> tuple[float, float]:
        """Shrunk level (each profile weighs the same) and its weight."""
        if stat == "none":
            return 0.0, 0.0
        per_site = pd.Series(resid).groupby(sites).mean()
        centre = per_site.median() if stat == "median" else per_site.mean()
        if self.level_sd is None:
            weight = len(per_site) / (len(per_site) + float(self.prior_strength))
        else:
            site_block = pd.Series(blocks).groupby(sites).first()
            per_block = per_site.groupby(site_block).mean()
            units = per_block if len(per_block) >= 2 else per_site
            se2 = float(units.var(ddof=1)) / len(units) if len(units) >= 2 else np.inf
            tau2 = float(self.level_sd) ** 2
            weight = tau2 / (tau2 + se2) if np.isfinite(se2) else 0.0
        return weight * float(centre), weight

    def fit(self, X: pd.DataFrame, y: Any = None) -> PriorResidualRegressor:
        """Fit the level and the residual model on the rows of ``X`` with SOC."""
        self._check_params()
        rows, self.n_rows_without_target_ = _rows_with_target(X)
        prior = _fitted_prior(self.prior, self.bundle, self.mc_passes, self.random_state, rows)
        p, _ = _prior_log(prior, rows)
        resid = _log_target(rows) - p
        features = self._features(rows, p)
        sites = rows["site_id"].to_numpy()
        blocks = self._blocks(rows)
        stats = self._level_stats()
        self.inner_mae_: dict[Any, float] = {}
        self.inner_split_: str | None = None
        if self.shrink == "cv" or len(stats) > 1:
            splits, self.inner_split_ = inner_splits(
                rows, self.inner_folds, self.block_size, self.units, self.random_state
            )
            grid = (
                [float(s) for s in self.shrink_grid]
                if self.shrink == "cv"
                else [float(self.shrink)]
            )
            obs = rows[_TARGET].to_numpy(dtype=float)
            # Both residual models are shift-equivariant (a forest's leaf means and a
            # ridge's intercept move with a constant), so one fit per fold serves every
            # level: the model of resid - level predicts f - level.
            f = np.full(len(rows), np.nan)
            levels = {stat: np.full(len(rows), np.nan) for stat in stats}
            for train, test in splits:
                model = self._residual_model().fit(features[train], resid[train])
                f[test] = model.predict(features[test])
                for stat in stats:
                    lvl = self._level(resid[train], sites[train], stat, blocks[train])
                    levels[stat][test] = lvl[0]
            errors = {}
            for stat in stats:
                for s in grid:
                    pred = p + levels[stat] + s * (f - levels[stat])
                    errors[(stat, s)] = np.abs(obs - np.expm1(pred))
                    self.inner_mae_[(stat, s)] = _mae_g_kg(obs, pred)
            stat, shrink = self._choose(errors, stats, sites)
            oof = p + levels[stat] + shrink * (f - levels[stat])
            if len(stats) == 1:  # keep the documented per-factor keys
                self.inner_mae_ = {s: v for (_, s), v in self.inner_mae_.items()}
        else:
            stat, shrink = stats[0], float(self.shrink)
        self.level_stat_ = stat
        self.level_, level_weight = self._level(resid, sites, stat, blocks)
        self.residual_model_ = self._residual_model().fit(features, resid - self.level_)
        self.shrinkage_ = {"residual": shrink, "level": level_weight}
        self.prior_ = prior
        self.kriging_: Any = None
        self.kriging_weight_ = 0.0
        self.kriging_mae_: dict[float, float] = {}
        if self.kriging:
            self._fit_kriging(rows, oof, splits)
        return self

    def _fit_kriging(self, rows: pd.DataFrame, oof: np.ndarray, splits: Any) -> None:
        """Choose the kriging weight by kriging each inner fold from the others' residuals."""
        from socmap.model.kriging import ResidualKriging

        resid = _log_target(rows) - oof
        kriged = np.zeros(len(rows))
        for train, test in splits:
            fold = ResidualKriging(self.units, random_state=self.random_state)
            kriged[test] = fold.fit(rows.iloc[train], resid[train]).predict(rows.iloc[test])[0]
        obs = rows[_TARGET].to_numpy(dtype=float)
        self.kriging_mae_ = {w: _mae_g_kg(obs, oof + w * kriged) for w in KRIGING_GRID}
        self.kriging_weight_ = min(KRIGING_GRID, key=lambda w: (self.kriging_mae_[w], w))
        if self.kriging_weight_ > 0:
            self.kriging_ = ResidualKriging(self.units, random_state=self.random_state)
            self.kriging_.fit(rows, resid)

    def adjustment(self) -> RegionalAdjustment:
        """Return the model as the adjustment of its prior's network (for a bundle).

        Raises
        ------
        ConfigError
            A linear residual model or a kriged residual, which a bundle cannot hold.
        """
        check_is_fitted(self, "residual_model_")
        if self.residual != "forest":
            raise ConfigError(
                f"a {self.residual!r} residual cannot be saved in a bundle; use residual='forest'"
            )
        if self.kriging_ is not None:
            raise ConfigError(
                "a kriged residual cannot be saved in a bundle yet; map with prior-residual "
                "(kriging=False), or compare prior-residual-krige with `socmap cv --method`"
            )
        return self._forest_adjustment()

    def _features(self, X: pd.DataFrame, p: np.ndarray) -> np.ndarray:
        """Return the residual model's covariates (the prior too, with ``prior_feature``), depth."""
        features = table_features(X, list(self.bands or ()))
        return with_prior(features, p) if self.prior_feature else features

    def _forest_adjustment(self) -> RegionalAdjustment:
        """Level plus the shrunk residual forest, in the form a bundle stores."""
        return RegionalAdjustment(
            list(self.bands or ()), 1.0, self.level_, float(self.shrinkage_["residual"]),
            self.residual_model_, prior_input=bool(self.prior_feature),
        )  # fmt: skip

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of log1p(SOC): ``sd = sqrt(prior sd^2 + (s * tree spread)^2)``.

        The linear residual model has no spread: its sd is the prior's.
        """
        check_is_fitted(self, "residual_model_")
        X = _check_table(X)
        p, prior_sd = _prior_log(self.prior_, X)
        s = float(self.shrinkage_["residual"])
        offset, spread = np.full(len(X), self.level_), np.zeros(len(X))
        if s != 0:
            features = table_features(X, list(self.bands or ()))
            if self.residual == "forest":
                prior = p if self.prior_feature else None
                offset, spread = self._forest_adjustment().constant(features, prior)
            else:
                offset = self.level_ + s * self.residual_model_.predict(self._features(X, p))
        if self.kriging_ is not None:
            kriged, kriged_sd = self.kriging_.predict(X)
            w = self.kriging_weight_
            offset, spread = offset + w * kriged, np.hypot(spread, w * kriged_sd)
        return p + offset, np.hypot(prior_sd, spread)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg (back-transformed mean of log1p SOC)."""
        return np.asarray(np.expm1(self.predict_log(X)[0]), dtype=float)


# --------------------------------------------------------------------------- recalibration
class _Recalibration:
    """``a + b * prior + offset(depth)`` as a prior of its own (picklable)."""

    def __init__(
        self,
        prior: Any,
        intercept: float,
        slope: float,
        offsets: dict[tuple[float, float], float],
    ) -> None:
        self.prior = prior
        self.intercept = intercept
        self.slope = slope
        self.offsets = offsets

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        p, sd = _prior_log(self.prior, X)
        mean = self.intercept + self.slope * p
        if self.offsets:
            keys = zip(X["top_cm"].astype(float), X["bottom_cm"].astype(float), strict=True)
            mean = mean + np.array([self.offsets.get(k, 0.0) for k in keys])
        return mean, abs(self.slope) * sd


class RecalibratedRegressor(RegressorMixin, BaseEstimator):
    """Level recalibration of the pretrained prediction: ``log1p(y) ~ a + b * prior``.

    The fit is a ridge regression of the residual ``log1p(y) - p`` on ``[1, p - mean(p)]``
    (and an indicator per depth interval with ``per_depth``), so every coefficient is shrunk
    towards the prior itself (``a = 0, b = 1``, no depth offset). The penalties follow the
    ``n / (n + k)`` rule (``k = prior_strength`` pseudo profiles, ``m`` rows per profile):
    ``k * m`` on the level, ``k * m * var(p)`` on the slope and ``k`` on each depth offset,
    which weights each estimate about ``n / (n + k)``.

    Parameters
    ----------
    bundle, prior, mc_passes
        The prior, as in :class:`PriorResidualRegressor`.
    per_depth
        Add a shrunk offset per depth interval (unseen intervals get none).
    prior_strength
        ``k`` of the shrinkage.
    then
        ``None``, or ``"residual"``: a :class:`PriorResidualRegressor` (no level term) on top
        of the recalibrated prior. Its inner CV reuses the recalibration fitted on every
        training row (two or three coefficients: the leak into the inner folds is slight).
    bands, n_estimators, inner_folds, block_size, units, n_jobs
        Of the residual model with ``then="residual"``.
    random_state
        Seed of the dropout masks and of the residual model.

    Attributes
    ----------
    intercept_, slope_
        ``a`` and ``b``.
    depth_offsets_
        ``{(top_cm, bottom_cm): offset}`` (empty without ``per_depth``).
    shrinkage_
        ``n / (n + k)``: the nominal weight of the data against the prior.
    residual_
        The residual model (``then="residual"``), else ``None``.
    prior_, n_rows_without_target_
        As in :class:`PriorResidualRegressor`.
    """

    def __init__(
        self,
        bundle: str | Path = "",
        prior: Any = None,
        per_depth: bool = False,
        prior_strength: float = 2.0,
        then: str | None = None,
        bands: Sequence[str] | None = None,
        n_estimators: int = 500,
        inner_folds: int = 3,
        block_size: float = 2000.0,
        units: str = "auto",
        mc_passes: int = 32,
        random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.bundle = bundle
        self.prior = prior
        self.per_depth = per_depth
        self.prior_strength = prior_strength
        self.then = then
        self.bands = bands
        self.n_estimators = n_estimators
        self.inner_folds = inner_folds
        self.block_size = block_size
        self.units = units
        self.mc_passes = mc_passes
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: pd.DataFrame, y: Any = None) -> RecalibratedRegressor:
        """Fit ``a``, ``b`` (and the depth offsets) on the rows of ``X`` with SOC."""
        _check_strength(self.prior_strength)
        if self.then not in (None, "residual"):
            raise ConfigError(f"then {self.then!r} must be None or 'residual'")
        rows, self.n_rows_without_target_ = _rows_with_target(X)
        prior = _fitted_prior(self.prior, self.bundle, self.mc_passes, self.random_state, rows)
        p, _ = _prior_log(prior, rows)
        resid = _log_target(rows) - p
        ok = np.isfinite(p) & np.isfinite(resid)
        if ok.sum() < 2:
            raise ProfileValidationError(
                f"only {int(ok.sum())!r} rows have a finite prior and SOC; the recalibration "
                "needs at least 2 (are the pretrained covariates present?)"
            )
        p, resid, used = p[ok], resid[ok], rows.loc[ok]
        k = float(self.prior_strength)
        n_sites = used["site_id"].nunique()
        per_site = len(used) / n_sites
        centre = float(p.mean())
        pc = p - centre
        columns = [np.ones(len(p)), pc]
        penalty = [k * per_site, k * per_site * float(np.mean(pc**2))]
        intervals: list[tuple[float, float]] = []
        if self.per_depth:
            keys = list(
                zip(used["top_cm"].astype(float), used["bottom_cm"].astype(float), strict=True)
            )
            intervals = sorted(set(keys))
            for interval in intervals:
                columns.append(np.array([key == interval for key in keys], dtype=float))
                penalty.append(k)
        design = np.vstack([np.column_stack(columns), np.diag(np.sqrt(penalty))])
        target = np.concatenate([resid, np.zeros(len(penalty))])
        theta = np.linalg.lstsq(design, target, rcond=None)[0]
        self.slope_ = 1.0 + float(theta[1])
        self.intercept_ = float(theta[0]) - float(theta[1]) * centre
        self.depth_offsets_ = {key: float(v) for key, v in zip(intervals, theta[2:], strict=True)}
        self.shrinkage_ = n_sites / (n_sites + k)
        self.prior_ = prior
        self.recalibration_ = _Recalibration(
            prior, self.intercept_, self.slope_, self.depth_offsets_
        )
        self.residual_: PriorResidualRegressor | None = None
        if self.then == "residual":
            self.residual_ = PriorResidualRegressor(
                prior=self.recalibration_,
                bands=self.bands,
                level=False,
                n_estimators=self.n_estimators,
                inner_folds=self.inner_folds,
                block_size=self.block_size,
                units=self.units,
                random_state=self.random_state,
                n_jobs=self.n_jobs,
            ).fit(rows)
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Recalibrated prior (plus the residual model): mean and sd of log1p(SOC).

        The sd is the prior's times ``|b|`` (and the residual model's spread with ``then``).
        """
        check_is_fitted(self, "recalibration_")
        X = _check_table(X)
        if self.residual_ is not None:
            return self.residual_.predict_log(X)
        return self.recalibration_.predict_log(X)

    def adjustment(self) -> RegionalAdjustment:
        """Return ``a + b * prior + offset(depth)`` as the adjustment of the prior's network.

        Raises
        ------
        ConfigError
            With ``then="residual"``, which a bundle cannot hold.
        """
        check_is_fitted(self, "recalibration_")
        if self.residual_ is not None:
            raise ConfigError("then='residual' cannot be saved in a bundle; use then=None")
        return RegionalAdjustment(
            slope=self.slope_, level=self.intercept_, depth_offsets=self.depth_offsets_
        )

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg (back-transformed mean of log1p SOC)."""
        return np.asarray(np.expm1(self.predict_log(X)[0]), dtype=float)


# --------------------------------------------------------------------------- blend
class BlendRegressor(RegressorMixin, BaseEstimator):
    """Weighted mean, on log1p SOC, of a fine-tuned network and a regional forest.

    The network weight ``w`` (forest ``1 - w``) is the value of ``weights`` with the lowest
    pooled MAE of SOC (g/kg) over out-of-fold predictions of an inner spatial CV on the
    training rows (each component fitted on the other inner folds; ties to the smaller
    ``w``, the forest). Both components are then fitted on every training row (one with
    weight 0 is not fitted).

    Parameters
    ----------
    network
        Unfitted table estimator with ``predict_log`` (e.g.
        :class:`~socmap.model.transfer.FineTunedRegressor`).
    forest
        Unfitted table estimator with ``predict_log`` (e.g.
        :class:`~socmap.model.baselines.RegionalForest`).
    weights
        Network weights to choose among, each in ``[0, 1]``.
    inner_folds, block_size, units
        Inner spatial CV (see :func:`inner_splits`).
    random_state
        Seed of the inner folds (the components carry their own seeds).

    Attributes
    ----------
    weight_
        Chosen network weight.
    inner_mae_
        Inner-CV MAE (g/kg) per weight.
    inner_split_
        ``"blocks"`` or ``"profiles"``.
    network_, forest_
        Fitted components (``None`` when their weight is 0).
    n_rows_without_target_
        Rows of ``X`` without SOC, not used.
    """

    def __init__(
        self,
        network: Any = None,
        forest: Any = None,
        weights: Sequence[float] = WEIGHT_GRID,
        inner_folds: int = 2,
        block_size: float = 2000.0,
        units: str = "auto",
        random_state: int = 0,
    ) -> None:
        self.network = network
        self.forest = forest
        self.weights = weights
        self.inner_folds = inner_folds
        self.block_size = block_size
        self.units = units
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Any = None) -> BlendRegressor:
        """Choose the weight by inner spatial CV on ``X``, then fit both components on it."""
        if self.network is None or self.forest is None:
            raise ConfigError(
                f"BlendRegressor needs network= and forest= estimators, got "
                f"{type(self.network).__name__!r} and {type(self.forest).__name__!r}"
            )
        grid = [float(w) for w in self.weights]
        if not grid or not all(0 <= w <= 1 for w in grid):
            raise ConfigError(f"weights {grid!r} must be a non-empty list of values in [0, 1]")
        rows, self.n_rows_without_target_ = _rows_with_target(X)
        splits, self.inner_split_ = inner_splits(
            rows, self.inner_folds, self.block_size, self.units, self.random_state
        )
        net, _ = oof_log(self.network, rows, splits)
        rf, _ = oof_log(self.forest, rows, splits)
        obs = rows[_TARGET].to_numpy(dtype=float)
        self.inner_mae_ = {w: _mae_g_kg(obs, w * net + (1 - w) * rf) for w in grid}
        self.weight_ = min(grid, key=lambda w: (self.inner_mae_[w], w))
        self.network_: Any = clone(self.network).fit(rows) if self.weight_ > 0 else None
        self.forest_: Any = clone(self.forest).fit(rows) if self.weight_ < 1 else None
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Blended mean; sd of the two-component mixture (spread of the means included)."""
        check_is_fitted(self, "weight_")
        X = _check_table(X)
        w = self.weight_
        if self.network_ is None or self.forest_ is None:  # one component only (w 0 or 1)
            only = self.network_ if self.forest_ is None else self.forest_
            mean, sd = only.predict_log(X)
            return np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
        m1, s1 = (np.asarray(a, dtype=float) for a in self.network_.predict_log(X))
        m2, s2 = (np.asarray(a, dtype=float) for a in self.forest_.predict_log(X))
        mean = w * m1 + (1 - w) * m2
        var = w * s1**2 + (1 - w) * s2**2 + w * (1 - w) * (m1 - m2) ** 2
        return mean, np.sqrt(var)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg (back-transformed blended log1p SOC)."""
        return np.asarray(np.expm1(self.predict_log(X)[0]), dtype=float)

"""Names of the transfer methods, checked without loading torch.

:mod:`socmap.model.transfer` builds the estimators; this module only knows their names, so
the CLI and a run's preflight refuse a misspelt ``--strategy`` or ``--method`` in
milliseconds instead of after torch, the bundle and the profile table are loaded.

Examples
--------
>>> check_bundle_strategy("auto")
'auto'
>>> "freeze-encoders" in method_names()
True
"""

from __future__ import annotations

from collections.abc import Sequence

from socmap.errors import ConfigError

#: Fine-tuning strategies of one network (:data:`socmap.model.transfer.STRATEGIES` says which
#: parameters each one trains).
STRATEGY_NAMES = ("freeze-encoders", "full", "head", "l2sp")
#: The forests :class:`~socmap.model.transfer.AutoTransferRegressor` falls back to.
FORESTS = ("rf", "rf-log")
#: The global prediction plus a regional residual model, on the network, on the mean of the
#: network and gradient boosting, on the better of them, and with kriging.
PRIOR_RESIDUALS = (
    "prior-residual",
    "prior-residual-ens",
    "prior-residual-best",
    "prior-residual-krige",
)
#: Candidates of ``auto`` that are table-level models, not one network (``stacked``: the
#: log forest with the network's prediction as one more covariate; ``prior-stacked``: the
#: mean of ``prior-residual`` and ``stacked``).
TABLE_METHODS = (*FORESTS, "stacked", *PRIOR_RESIDUALS, "prior-stacked", "recalibrate", "blend")
#: Members of ``prior-stacked`` and their weights (normalised): two thirds ``prior-residual``
#: (mostly the higher CCC), one third ``stacked``. On eight leave-region-out regions
#: at n = 20 and 50 (3 repeats), the mixture beat both forests in MAE and CCC in more regions
#: with these weights than with shares of 0.5 or 0.75, either member alone, or a share of the
#: raw-target forest (docs/benchmarks/prior_stacked_weights.md).
PRIOR_STACKED = {"prior-residual": 2.0, "stacked": 1.0}
#: Methods that are fixed-weight means of other methods on log1p SOC -> their members and
#: weights. ``auto`` scores such a candidate from its members' inner out-of-fold
#: predictions instead of fitting the members again.
MIXTURES = {"prior-stacked": PRIOR_STACKED}
#: Candidates ``auto`` chooses among by default: both forests and the prior-based
#: estimators. A fine-tuned network (:data:`AUTO_NETWORK`) joins them only from
#: :data:`AUTO_NETWORK_FROM` training profiles: with 20-50 cores a network candidate won the
#: noisy inner CV by more than 1 SE and then lost out of fold (southern Africa in the quick
#: leave-region-out benchmark), and at 100 it lost slightly more often than it won
#: (docs/benchmarks/auto_candidates.md); pass ``candidates=`` to add one at any size.
AUTO_CANDIDATES = ("rf", "rf-log", "prior-residual", "prior-stacked", "recalibrate")
#: The candidate ``auto`` keeps unless another beats it by more than ``tie_se`` standard
#: errors of the inner CV.
AUTO_PREFER = "prior-stacked"
#: The fine-tuning strategy ``auto`` adds with many training profiles.
AUTO_NETWORK = "freeze-encoders"
#: Training profiles from which :data:`AUTO_NETWORK` joins the candidates by default.
AUTO_NETWORK_FROM = 200
#: Table-level methods whose fitted model a bundle can hold (the pretrained network with a
#: regional adjustment, :mod:`socmap.model.adjustment`), so they map like a fine-tuned
#: network: every default candidate of ``auto``, ``stacked`` and ``prior-stacked``.
BUNDLE_METHODS = ("rf", "rf-log", "stacked", "prior-residual", "prior-stacked", "recalibrate")
#: Method names that give no single fine-tuned network (benchmark output names are the
#: method names themselves).
BASELINES = (
    *FORESTS,
    "stacked",
    "global",
    "global-gbm",
    "global-ens",
    *PRIOR_RESIDUALS,
    "prior-stacked",
    "recalibrate",
    "blend",
)
#: Transfer methods with their own estimator class (the others are strategies).
NETWORK_METHOD_NAMES = ("auto", "depthwise", "instances")
#: What ``socmap finetune --strategy`` (and a run's ``model.strategy``) accepts: every name
#: that gives one model a bundle can hold.
BUNDLE_STRATEGIES = ("auto", *BUNDLE_METHODS, *sorted(STRATEGY_NAMES), "instances")


def method_names() -> list[str]:
    """Every name :func:`~socmap.model.transfer.transfer_methods` understands, in error order."""
    return [*BASELINES, *NETWORK_METHOD_NAMES, *sorted(STRATEGY_NAMES)]


def check_methods(names: Sequence[str]) -> list[str]:
    """Return ``names`` as a list, or raise :class:`ConfigError` naming an unknown one.

    Examples
    --------
    >>> check_methods(["rf", "auto"])
    ['rf', 'auto']
    """
    known = method_names()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(
            f"unknown methods {unknown!r}; choose from {known!r}"
            if unknown
            else f"no method given; choose some of {known!r}, e.g. rf,rf-log,auto"
        )
    return list(names)


def check_bundle_strategy(strategy: str) -> str:
    """Return ``strategy`` if it fine-tunes a model a bundle can hold, else raise.

    Raises
    ------
    ConfigError
        An unknown name, or a method that gives no single model (``depthwise``, the global
        models, ``blend``, ...): those are compared, not mapped.
    """
    bundles = list(BUNDLE_STRATEGIES)
    if strategy not in method_names():
        raise ConfigError(f"strategy {strategy!r} is unknown; choose one of {bundles!r}")
    if strategy == "depthwise" or (strategy in BASELINES and strategy not in BUNDLE_METHODS):
        raise ConfigError(
            f"strategy {strategy!r} gives no model a bundle can hold; choose one of "
            f"{bundles!r}, or compare it with `socmap cv --method` or "
            "`socmap benchmark transfer`"
        )
    return strategy

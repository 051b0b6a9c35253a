"""Fine-tune a bundle on a region and write a bundle that is ready to map.

Besides the weights, a map needs to know how far to trust them. :func:`finetune_bundle`
therefore also runs a spatial block CV of the same strategy on the regional table (each fold
fine-tuned on the other folds only), fits the conformal calibration of the intervals on its
out-of-fold residuals, per depth interval, and stores the calibration, the CV metrics, the
depth intervals trained on and the area of applicability of the training sites in the bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.base import clone

from socmap.errors import ConfigError, ProfileValidationError
from socmap.model.bundle import fingerprint, load_bundle
from socmap.model.methods import check_bundle_strategy
from socmap.model.transfer import (
    default_inner_folds,
    save_transfer_bundle,
    transfer_methods,
)
from socmap.training import RegionalTable
from socmap.validate.aoa import AreaOfApplicability, training_aoa
from socmap.validate.calibrate import ConformalCalibrator
from socmap.validate.cv import CVResult, cross_validate
from socmap.validate.splitters import BlockKFold, BlockSize, resolve_block_size

__all__ = ["FinetuneResult", "finetune_bundle"]


@dataclass
class FinetuneResult:
    """What :func:`finetune_bundle` produced.

    ``strategy`` is what was fitted (for ``auto``, its choice); ``epochs`` the fine-tuning
    epochs of a network (``None`` for ``prior-residual``, which trains no network).
    """

    bundle: Path
    estimator: Any
    aoa: AreaOfApplicability
    cv: CVResult | None
    strategy: str = ""
    epochs: int | None = None


def finetune_bundle(
    pretrained: str | Path,
    data: RegionalTable,
    out: str | Path,
    *,
    strategy: str = "auto",
    depth_set: str = "globalsoilmap",
    block_size: BlockSize = 2000.0,
    cv_folds: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune ``pretrained`` on a regional table; write a calibrated bundle with its AOA.

    Parameters
    ----------
    pretrained
        The pretrained bundle.
    data
        The region's training table (:func:`socmap.training.regional_training_table`).
    out
        Bundle directory to write.
    strategy
        A fine-tuning strategy (``full``, ``freeze-encoders``, ``head``, ``l2sp``,
        ``instances``), a method the bundle holds as the pretrained network plus a regional
        adjustment (``prior-residual``, ``prior-stacked``, ``stacked``, ``recalibrate``,
        ``rf``, ``rf-log``;
        :data:`~socmap.model.transfer.BUNDLE_METHODS`), or ``auto``: the one of
        :data:`~socmap.model.transfer.AUTO_CANDIDATES` (and, from
        :data:`~socmap.model.transfer.AUTO_NETWORK_FROM` profiles,
        :data:`~socmap.model.transfer.AUTO_NETWORK`) that inner spatial CV prefers.
        (``depthwise`` gives one network per interval, which no bundle holds.)
    depth_set
        Name of the depth set of ``data`` (recorded in the bundle).
    block_size
        Spatial blocks of the early-stopping split, the CV and the AOA folds: a number in
        the cube CRS units, or a size with units (``"2km"``, ``"0.05deg"``) converted for
        the table's CRS (:func:`socmap.validate.resolve_block_size`).
    cv_folds
        Folds of the calibration CV; 0 skips it (the bundle then has uncalibrated
        intervals and no CV metrics).
    seed
        Seed of every random step.
    n_jobs
        CV folds fitted at once.
    progress
        Progress bars.

    Raises
    ------
    ConfigError
        A strategy that does not give one network, or ``cv_folds`` of 1 or below 0.
    ProfileValidationError
        Too few profiles or places for the splits: the early-stopping split and the AOA
        need two places, the calibration CV ``cv_folds`` places, ``auto`` its inner folds'
        worth of profiles.
    """
    check_bundle_strategy(strategy)
    if cv_folds < 0 or cv_folds == 1:
        raise ConfigError(f"cv_folds {cv_folds!r} must be 0 (no CV) or at least 2")
    block_size = resolve_block_size(block_size, data.table)
    (estimator,) = transfer_methods(
        [strategy],
        pretrained,
        data.regional_bands,
        data.continuous_regional_bands,
        block_size=block_size,
        seed=seed,
    ).values()
    table = data.table
    _check_enough_profiles(table, strategy, cv_folds, estimator)
    chosen = estimator
    if strategy == "auto":
        # Choose by inner spatial CV on all rows once, then calibrate the chosen method
        # (not auto itself, which would repeat the choice in every fold at several times the
        # cost; the choice has then seen every fold, a mild optimism the bundle records
        # under "cv_protocol"). Every default candidate is one a bundle can hold.
        estimator.fit(table)
        (chosen,) = transfer_methods(
            [estimator.choice_], pretrained, data.regional_bands,
            data.continuous_regional_bands, block_size=block_size, seed=seed,
        ).values()  # fmt: skip
    labelled = table.loc[table["soc_g_kg"].notna()]
    metadata: dict[str, Any] = {
        "parent_bundle": str(pretrained),
        "requested_strategy": strategy,
        "depth_set": depth_set,
        "intervals": sorted({(float(t), float(b)) for t, b in zip(
            labelled["top_cm"], labelled["bottom_cm"], strict=True)}),
        "training_fingerprint": fingerprint(table),
        "training_counts": data.counts,
        "band_units": {**load_bundle(pretrained).band_units, **data.band_units},
    }  # fmt: skip
    result: CVResult | None = None
    if cv_folds:
        splitter = BlockKFold(cv_folds, block_size, random_state=seed)
        result = cross_validate(
            clone(chosen),
            table,
            splitter,
            aoa_bands=data.continuous_regional_bands,
            n_jobs=n_jobs,
            progress=progress,
        )
        oof = result.oof
        calibrator = ConformalCalibrator().fit(
            oof["obs_log"], oof["mean_log"], oof["sd_log"], groups=oof["depth"]
        )
        metadata["calibration"] = calibrator.to_dict()
        # to_json writes infinite widths (too few out-of-fold residuals for a level) as null
        metadata["cv_metrics"] = json.loads(result.metrics.to_json(orient="records"))
        metadata["cv_protocol"] = {
            "method": "spatial block k-fold, the same method fitted on the other folds",
            "folds": cv_folds,
            "block_size": block_size,
            "profiles_whole": True,
        }
        if chosen is not estimator:
            metadata["cv_protocol"]["note"] = (
                f"auto chose {estimator.choice_!r} by inner CV on all rows; the CV and the "
                "calibration are those of that strategy, so the choice has seen every fold"
            )
        if result.folds is not None:
            metadata["cv_folds"] = result.folds.to_dict(orient="records")
    if chosen is estimator:  # auto was fitted on every row above
        estimator.fit(table)
    metadata["strategy"] = getattr(estimator, "strategy_", strategy)
    if hasattr(estimator, "inner_mae_"):
        metadata["inner_cv_mae"] = estimator.inner_mae_
    aoa = training_aoa(labelled, data.continuous_regional_bands, block_size, seed=seed)
    path = save_transfer_bundle(estimator, pretrained, out, metadata, aoa=aoa)
    history = getattr(estimator, "history_", None)
    return FinetuneResult(
        bundle=path, estimator=estimator, aoa=aoa, cv=result, strategy=metadata["strategy"],
        epochs=None if history is None else int(history.epochs_run),
    )  # fmt: skip


def _check_enough_profiles(
    table: pd.DataFrame, strategy: str, cv_folds: int, estimator: Any
) -> None:
    """Refuse a table too small for the splits before any fitting, with remedies that work.

    The splitters would otherwise fail deep inside a fit, proposing a smaller block size
    (useless when the profiles are at fewer places than folds) or options of other commands.
    """
    sites = table.loc[table["soc_g_kg"].notna()].drop_duplicates("site_id")
    n_sites = len(sites)
    n_places = len(sites[["x", "y"]].drop_duplicates())
    have = f"the table has {n_sites} profile(s) with SOC at {n_places} place(s)"
    if n_places < 2:
        ids = ", ".join(repr(str(i)) for i in sites["site_id"].head(3))
        raise ProfileValidationError(
            f"fine-tuning needs profiles at 2 places or more (its early-stopping split and "
            f"area of applicability compare places); {have} ({ids or 'none'}); add profiles "
            "from other places"
        )
    if cv_folds and n_places < cv_folds:
        raise ProfileValidationError(
            f"--cv-folds {cv_folds} (model.cv_folds in a run) needs profiles at {cv_folds} "
            f"places or more; {have}: pass --cv-folds {n_places} or 0 (no calibration), or "
            "add profiles"
        )
    if strategy == "auto":
        inner = estimator.inner_folds or default_inner_folds(estimator.candidates)
        if n_sites < inner:
            raise ProfileValidationError(
                f"--strategy auto chooses its method by {inner}-fold inner CV, which needs "
                f"{inner} profiles or more; {have}: name a method (e.g. --strategy rf; "
                "model.strategy in a run) or add profiles"
            )

"""Global pretraining: 5-degree spatial block CV, calibration and the final bundle.

The protocol (DESIGN.md, Spatial validation):

1. the embedded global table is harmonised onto every interval of the depth set and joined to
   the 10' covariates (:func:`socmap.datasets.global_training_table`); an excluded region or
   licence filter is applied first;
2. 10-fold spatial block CV on 5° x 5° cells, profiles kept whole; inside each training fold
   the network stops early on a spatial split of that fold only;
3. intervals are conformally calibrated on the out-of-fold residuals, per depth interval;
   each fold's area of applicability (threshold, share of held-out sites inside) is recorded;
4. the final network is trained on all the data, early-stopped on a spatial split of it, and
   written as a bundle with the CV metrics, the calibration, the data's licences and the
   area of applicability of all training sites (training DI measured across the CV folds).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pyproj import Transformer
from sklearn.base import clone

from socmap.catalog import Catalog, load_grid
from socmap.datasets import global_training_table
from socmap.model.bundle import fingerprint
from socmap.model.estimator import SocNetRegressor
from socmap.validate import BlockKFold, ConformalCalibrator, CVResult, cross_validate
from socmap.validate.aoa import site_aoa, training_aoa

__all__ = [
    "DEFAULT_BALANCE",
    "DEFAULT_NETWORK",
    "DEFAULT_PRETRAIN",
    "PretrainResult",
    "pretrain",
    "region_bbox_lonlat",
]

#: Optimisation settings of the default global bundle.
DEFAULT_PRETRAIN: dict[str, Any] = {"batch_size": 1024, "max_epochs": 100, "patience": 10}
#: Architecture overrides of the default global bundle: light head dropout (the default
#: (0.2, 0.5) is made for few regional cores); its 5-degree CV against global-gbm is in
#: docs/benchmarks/pretrain.md (benchmarks/bench_pretrain.py).
DEFAULT_NETWORK: dict[str, Any] = {"dropout": (0.1, 0.1)}
#: Rebalancing of the default global bundle: the table is 72 % African profiles, so rows
#: are weighted by the inverse square root of their climate class's share
#: (:func:`~socmap.model.estimator.balance_weights`); measured in docs/benchmarks/pretrain.md.
DEFAULT_BALANCE: dict[str, Any] = {"balance": "climate", "balance_power": 0.5}


@dataclass
class PretrainResult:
    """What :func:`pretrain` produced."""

    bundle: Path
    estimator: SocNetRegressor
    cv: CVResult | None
    counts: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def region_bbox_lonlat(region: str) -> tuple[float, float, float, float]:
    """Bounding box in longitude/latitude of a built-in region or grid spec."""
    grid = load_grid(region)
    tr = Transformer.from_crs(grid.pyproj_crs, "EPSG:4326", always_xy=True)
    minx, miny, maxx, maxy = tr.transform_bounds(*grid.bounds)
    return (float(minx), float(miny), float(maxx), float(maxy))


def _sources(table: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [c for c in ("source", "licence") if c in table.columns]
    per_site = table.drop_duplicates("site_id")
    counts = per_site.groupby(cols, dropna=False).size().reset_index(name="profiles")
    return counts.to_dict(orient="records")  # type: ignore[return-value]


def pretrain(
    out: str | Path,
    *,
    depths: str = "globalsoilmap",
    folds: int = 10,
    block_size_deg: float = 5.0,
    seed: int = 0,
    sources: Sequence[str] | None = None,
    commercial_only: bool = False,
    exclude_bbox: tuple[float, float, float, float] | None = None,
    network: Mapping[str, Any] | None = None,
    train: Mapping[str, Any] | None = None,
    mc_passes: int = 32,
    cv: bool = True,
    catalog: str | Catalog = "global_10arcmin",
    balance: str | None = DEFAULT_BALANCE["balance"],
    balance_power: float = DEFAULT_BALANCE["balance_power"],
    n_jobs: int = 1,
    progress: bool = True,
) -> PretrainResult:
    """Pretrain the global network and write its bundle.

    Parameters
    ----------
    out
        Bundle directory to write.
    depths
        Depth set (every interval is used for training).
    folds, block_size_deg
        Spatial CV protocol: ``folds`` folds of ``block_size_deg`` x ``block_size_deg`` cells.
    seed
        Seed of every random step (folds, splits, initialisation, batches, dropout).
    sources, commercial_only
        Licence/source filters of the global table (see
        :func:`socmap.profiles.read_global_table`).
    exclude_bbox
        ``(minlon, minlat, maxlon, maxlat)`` left out of pretraining (a transfer target).
    network, train
        Overrides of the network and training settings (defaults: :data:`DEFAULT_NETWORK`,
        :data:`DEFAULT_PRETRAIN`).
    mc_passes
        Monte Carlo dropout passes for CV predictions.
    cv
        Run the spatial CV (needed for the calibration and the CV table).
    catalog
        Covariates of the global model: the embedded 10' layers (default) or any catalog of
        global layers (local rasters or Earth Engine), sampled at the global sites
        (:func:`socmap.sources.points.sample_catalog`). A richer catalog gives a richer
        prior; mapping then needs the same bands.
    balance, balance_power
        Rebalancing of the training rows (``"climate"``, ``"source"``, a column or None;
        see :func:`~socmap.model.estimator.balance_weights`), recorded in the bundle.
    n_jobs
        CV folds fitted at once (see :func:`~socmap.validate.cross_validate`); the final
        fit always runs in this process.
    progress
        Progress bars.
    """
    clock = time.perf_counter
    seconds: dict[str, float] = {}
    t0 = clock()
    data = global_training_table(
        depths,
        sources=sources,
        commercial_only=commercial_only,
        exclude_bbox=exclude_bbox,
        catalog=catalog,
    )
    seconds["table"] = clock() - t0
    table = data.table
    estimator = SocNetRegressor(
        catalog,
        network={**DEFAULT_NETWORK, **dict(network or {})},
        train={**DEFAULT_PRETRAIN, **dict(train or {})},
        block_size=block_size_deg,
        units="degrees",
        mc_passes=mc_passes,
        balance=balance,
        balance_power=balance_power,
        random_state=seed,
        progress=progress,
    )
    result: CVResult | None = None
    metadata: dict[str, Any] = {
        "depth_set": depths,
        "target": "log1p(soc_g_kg)",
        "units": {"soc": "g/kg", "depth": "cm"},
        "training_fingerprint": fingerprint(table),
        "training_counts": data.counts,
        "training_sources": _sources(table),
        "exclude_bbox": list(exclude_bbox) if exclude_bbox else None,
        "catalog": catalog if isinstance(catalog, str) else catalog.name,
        "balance": balance,
        "balance_power": balance_power,
        "seed": seed,
    }
    if cv:
        t0 = clock()
        splitter = BlockKFold(folds, block_size_deg, units="degrees", random_state=seed)
        aoa_bands = estimator._unfitted_spec().continuous_bands
        result = cross_validate(
            estimator, table, splitter, aoa_bands=aoa_bands, n_jobs=n_jobs, progress=progress
        )
        seconds["cv"] = clock() - t0
        oof = result.oof
        calibrator = ConformalCalibrator().fit(
            oof["obs_log"], oof["mean_log"], oof["sd_log"], groups=oof["depth"]
        )
        metadata["cv_protocol"] = {
            "method": "spatial block k-fold",
            "folds": folds,
            "block_size_deg": block_size_deg,
            "profiles_whole": True,
            "note": "spatial CV estimates map accuracy; it is not a design-based estimate",
        }
        metadata["cv_metrics"] = result.metrics.to_dict(orient="records")
        metadata["cv_folds"] = (
            result.folds.to_dict(orient="records") if result.folds is not None else []
        )
        metadata["calibration"] = calibrator.to_dict()
    t0 = clock()
    final = clone(estimator).fit(table)
    seconds["final_fit"] = clock() - t0
    seconds["final_epochs"] = float(final.history_.epochs_run)
    aoa_bands = final.spec_.continuous_bands
    labelled = table.loc[table["soc_g_kg"].notna()]
    if result is not None:
        site_fold = dict(zip(result.oof["site_id"], result.oof["fold"], strict=True))
        aoa = site_aoa(labelled, aoa_bands, site_fold, random_state=seed)
    else:
        aoa = training_aoa(labelled, aoa_bands, block_size_deg, units="degrees", seed=seed)
    path = final.save(out, metadata, aoa=aoa)
    return PretrainResult(
        bundle=path, estimator=final, cv=result, counts=data.counts, seconds=seconds
    )

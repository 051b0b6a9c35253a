"""Spatial validation: block cross-validation, metrics, conformal calibration and the AOA.

Examples
--------
>>> from socmap.validate import BlockKFold, regression_metrics
>>> regression_metrics([1.0, 2.0], [1.0, 2.0])["rmse"]
0.0
"""

from __future__ import annotations

from socmap.validate.aoa import AreaOfApplicability
from socmap.validate.calibrate import ConformalCalibrator
from socmap.validate.cv import CVResult, cross_validate, fitted_attributes, read_train_sets
from socmap.validate.metrics import (
    DEFAULT_LEVELS,
    interval_metrics,
    metrics_table,
    regression_metrics,
)
from socmap.validate.splitters import (
    BlockKFold,
    ColumnFolds,
    parse_block_size,
    resolve_block_size,
    spatial_train_val_split,
)

__all__ = [
    "DEFAULT_LEVELS",
    "AreaOfApplicability",
    "BlockKFold",
    "CVResult",
    "ColumnFolds",
    "ConformalCalibrator",
    "cross_validate",
    "fitted_attributes",
    "interval_metrics",
    "metrics_table",
    "parse_block_size",
    "read_train_sets",
    "regression_metrics",
    "resolve_block_size",
    "spatial_train_val_split",
]

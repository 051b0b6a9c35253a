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
from socmap.validate.cv import CVResult, cross_validate
from socmap.validate.metrics import (
    DEFAULT_LEVELS,
    interval_metrics,
    metrics_table,
    regression_metrics,
)
from socmap.validate.splitters import BlockKFold, spatial_train_val_split

__all__ = [
    "DEFAULT_LEVELS",
    "AreaOfApplicability",
    "BlockKFold",
    "CVResult",
    "ConformalCalibrator",
    "cross_validate",
    "interval_metrics",
    "metrics_table",
    "regression_metrics",
    "spatial_train_val_split",
]

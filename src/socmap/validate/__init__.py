"""Spatial validation: block cross-validation, metrics, conformal calibration and the AOA.

Examples
--------
>>> from socmap.validate import BlockKFold, regression_metrics
>>> regression_metrics([1.0, 2.0], [1.0, 2.0])["rmse"]
0.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: The module of each public name. Names load on first use: a model bundle needs the AOA and
#: the calibrator, and loading one (every ``socmap predict``) should not import the CV
#: machinery and scikit-learn with them.
_HOMES = {
    "AreaOfApplicability": "aoa",
    "ConformalCalibrator": "calibrate",
    "CVResult": "cv",
    "cross_validate": "cv",
    "fitted_attributes": "cv",
    "read_train_sets": "cv",
    "DEFAULT_LEVELS": "metrics",
    "interval_metrics": "metrics",
    "metrics_table": "metrics",
    "regression_metrics": "metrics",
    "BlockKFold": "splitters",
    "ColumnFolds": "splitters",
    "parse_block_size": "splitters",
    "resolve_block_size": "splitters",
    "spatial_train_val_split": "splitters",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})

"""socmap: soil organic carbon mapping with global-to-regional transfer.

The facade lists the whole chain in data-flow order; everything else lives in the
submodules. Heavy modules load on first use, and no facade name is also a submodule's
name, so ``socmap.extract`` stays the function whatever has been imported.

=====================  ==============================================================
covariates             :func:`load_catalog`, :func:`load_grid`, :func:`build_cube`,
                       :func:`pull_cube` (Earth Engine), :func:`open_cube`
profiles               :func:`read_profiles`, :func:`qc_profiles`, :func:`harmonise`
training table         :func:`extract`, :func:`regional_training_table`
models                 :func:`pretrain`, :func:`finetune_bundle`, :func:`load_bundle`,
                       :func:`cross_validate`
maps                   :func:`predict_cube`, :func:`stocks_for_run`,
                       :func:`strata_for_run`, :func:`open_run`, :func:`compare_runs`
report                 :func:`build_report`, :func:`build_map`
the whole run          :func:`load_run_config`, :func:`run_pipeline`
support                :func:`show_versions`, :class:`Grid`, :class:`SocmapError`
=====================  ==============================================================

Examples
--------
>>> import socmap
>>> socmap.Grid.from_bbox((0, 0, 100, 50), 10, "EPSG:32755").shape
(5, 10)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from socmap._versions import __version__
from socmap.errors import SocmapError
from socmap.grid import Grid

_LAZY = {
    "load_catalog": "socmap.catalog",
    "load_grid": "socmap.catalog",
    "build_cube": "socmap.cube",
    "pull_cube": "socmap.cube",
    "open_cube": "socmap.cube",
    "read_profiles": "socmap.profiles",
    "qc_profiles": "socmap.profiles",
    "harmonise": "socmap.depth",
    "extract": "socmap.extraction",
    "regional_training_table": "socmap.training",
    "pretrain": "socmap.model.pretrain",
    "finetune_bundle": "socmap.model.finetune",
    "load_bundle": "socmap.model.bundle",
    "cross_validate": "socmap.validate",
    "predict_cube": "socmap.predict",
    "stocks_for_run": "socmap.stocks",
    "strata_for_run": "socmap.strata",
    "open_run": "socmap.predict",
    "compare_runs": "socmap.compare",
    "build_report": "socmap.report.build",
    "build_map": "socmap.report.map",
    "load_run_config": "socmap.pipeline",
    "run_pipeline": "socmap.pipeline",
    "show_versions": "socmap._versions",
}

__all__ = [
    "Grid",
    "SocmapError",
    "__version__",
    "build_cube",
    "build_map",
    "build_report",
    "compare_runs",
    "cross_validate",
    "extract",
    "finetune_bundle",
    "harmonise",
    "load_bundle",
    "load_catalog",
    "load_grid",
    "load_run_config",
    "open_cube",
    "open_run",
    "predict_cube",
    "pretrain",
    "pull_cube",
    "qc_profiles",
    "read_profiles",
    "regional_training_table",
    "run_pipeline",
    "show_versions",
    "stocks_for_run",
    "strata_for_run",
]

if TYPE_CHECKING:
    from socmap._versions import show_versions
    from socmap.catalog import load_catalog, load_grid
    from socmap.compare import compare_runs
    from socmap.cube import build_cube, open_cube, pull_cube
    from socmap.depth import harmonise
    from socmap.extraction import extract
    from socmap.model.bundle import load_bundle
    from socmap.model.finetune import finetune_bundle
    from socmap.model.pretrain import pretrain
    from socmap.pipeline import load_run_config, run_pipeline
    from socmap.predict import open_run, predict_cube
    from socmap.profiles import qc_profiles, read_profiles
    from socmap.report.build import build_report
    from socmap.report.map import build_map
    from socmap.stocks import stocks_for_run
    from socmap.strata import strata_for_run
    from socmap.training import regional_training_table
    from socmap.validate import cross_validate


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'socmap' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})

"""Scheduled regional remapping: ``socmap run config.yaml``.

:mod:`socmap.pipeline.config` validates the YAML, :mod:`socmap.pipeline.stages` defines the
chain and its cache keys, :mod:`socmap.pipeline.versions` the versioned run root and
:mod:`socmap.pipeline.runner` executes it.
"""

from socmap.pipeline.config import RunSpec, load_run_config
from socmap.pipeline.runner import RunOutcome, StagePlan, plan_run, preview_run, run_pipeline
from socmap.pipeline.versions import RunRoot

__all__ = [
    "RunOutcome",
    "RunRoot",
    "RunSpec",
    "StagePlan",
    "load_run_config",
    "plan_run",
    "preview_run",
    "run_pipeline",
]

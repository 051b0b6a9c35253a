"""Execute a run configuration: plan the stages, reuse what is unchanged, publish a version.

1. Every enabled stage's cache key is computed before any work (configuration sections,
   input-file fingerprints, upstream keys, socmap's version).
2. If ``latest`` already has exactly these keys, nothing is done.
3. Otherwise each stage either reuses its cached output (same key) or runs into a fresh
   directory that is renamed into the cache when it finishes.
4. The version directory is assembled next to the others (hard links to the stage outputs
   plus ``manifest.json``), renamed into ``runs/``, and only then does ``latest`` switch.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socmap._io import STORE_MARKS, atomic_path, refuse_file_in_the_way, refuse_inside_store
from socmap._parallel import check_scheduler
from socmap._versions import versions
from socmap.errors import ConfigError
from socmap.pipeline.config import RunSpec, load_run_config
from socmap.pipeline.stages import (
    STAGES,
    Log,
    Stage,
    StageContext,
    link_tree,
    rewrite_paths,
)
from socmap.pipeline.versions import MANIFEST, STAGE_JSON, RunRoot

__all__ = [
    "MANIFEST_FORMAT",
    "RunOutcome",
    "StagePlan",
    "plan_run",
    "preview_run",
    "run_pipeline",
]

MANIFEST_FORMAT = "socmap-run-manifest/1"
#: What a published version holds: name in the version -> (stage, path inside its output).
PUBLISHED = {
    "cube.zarr": ("cube", "cube.zarr"),
    "profiles": ("profiles", "."),
    "bundle": ("finetune", "bundle"),
    "training": ("finetune", "training"),
    "run": ("report", "run"),
}


@dataclass
class StagePlan:
    """One stage of a planned run."""

    name: str
    key: str
    upstream: list[str]
    inputs: dict[str, str]
    status: str = "pending"  # reused | computed | forced
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """What :func:`run_pipeline` did."""

    root: Path
    stages: list[StagePlan]
    version: str | None
    published: bool
    message: str

    @property
    def computed(self) -> list[str]:
        """Stages that ran (not reused)."""
        return [s.name for s in self.stages if s.status in ("computed", "forced")]


def _key(stage: Stage, spec: RunSpec, inputs: dict[str, str], upstream: dict[str, str]) -> str:
    from socmap._versions import __version__, code_sha256

    doc = {
        "stage": stage.name,
        "params": stage.params(spec),
        "inputs": inputs,
        "upstream": upstream,
        "socmap": __version__,
        # new code recomputes: a development build keeps its version number
        "socmap_code": code_sha256(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def plan_run(spec: RunSpec) -> list[StagePlan]:
    """Cache keys of every enabled stage, upstream first (reads input files, runs nothing)."""
    enabled = [s for s in STAGES if s.enabled(spec)]
    names = {s.name for s in enabled}
    keys: dict[str, str] = {}
    plans = []
    for stage in enabled:
        upstream = [u for u in stage.upstream if u in names]
        inputs = stage.inputs(spec)
        keys[stage.name] = _key(stage, spec, inputs, {u: keys[u] for u in upstream})
        plans.append(StagePlan(stage.name, keys[stage.name], upstream, inputs))
    return plans


def _downstream(plans: list[StagePlan], roots: set[str]) -> set[str]:
    out = set(roots)
    for p in plans:  # plans are in dependency order
        if out.intersection(p.upstream):
            out.add(p.name)
    return out


def _prepare(
    config: str | Path | RunSpec, output: str | Path | None, force: tuple[str, ...]
) -> tuple[RunSpec, RunRoot]:
    spec = config if isinstance(config, RunSpec) else load_run_config(config)
    known = [s.name for s in STAGES]
    bad = [f for f in force if f not in known]
    if bad:
        raise ConfigError(f"unknown stage(s) {bad!r} in --force; stages: {known!r}")
    where = spec.output_dir(output)
    refuse_file_in_the_way(where, "the run's output")
    # nor inside socmap's own stores (once: `socmap demo -o CUBE.zarr` left a .lock there,
    # and the cube warned of it on every read)
    refuse_inside_store(where, "the run's output", {**STORE_MARKS, "run.json": "a run"})
    _refuse_foreign_folder(where)
    return spec, RunRoot(where)


#: What a run root holds once a run has worked there (see :mod:`socmap.pipeline.versions`).
RUN_ROOT_ENTRIES = frozenset({".lock", "cache", "runs", "latest"})


def _refuse_foreign_folder(where: Path) -> None:
    """Refuse a run root that is a folder of other files.

    Once `socmap demo -o MYFOLDER` ran the whole chain among the user's files, leaving a lock
    and a cache there.
    """
    if not where.is_dir():
        return
    names = sorted(p.name for p in where.iterdir())
    if RUN_ROOT_ENTRIES.intersection(names):
        return
    others = [n for n in names if not n.startswith(".")]
    if others:
        raise ConfigError(
            f"the run's output {str(where)!r} is a folder of other files (e.g. {others[0]!r}) "
            "and no socmap run root (cache/, runs/, latest); socmap will not write its run "
            "among them; give a new or empty folder with --out (or output: in the run "
            "configuration)"
        )


def _unchanged(root: RunRoot, plans: list[StagePlan]) -> bool:
    """Whether ``latest`` has exactly these stage keys (then marks every plan unchanged)."""
    latest = root.latest_version()
    if latest is None:
        return False
    previous = {s["name"]: s["key"] for s in root.manifest(latest).get("stages", [])}
    if previous != {p.name: p.key for p in plans}:
        return False
    for p in plans:
        p.status = "unchanged"
    return True


def preview_run(
    config: str | Path | RunSpec,
    *,
    output: str | Path | None = None,
    force: tuple[str, ...] = (),
) -> list[StagePlan]:
    """Report what :func:`run_pipeline` would do, without doing it.

    Each plan's ``status`` is ``unchanged`` (nothing to do at all), ``reuse`` (cached
    output with the same key), ``compute`` or ``forced``.
    """
    spec, root = _prepare(config, output, force)
    plans = plan_run(spec)
    forced = _downstream(plans, set(force))
    if forced or not _unchanged(root, plans):
        for p in plans:
            cached = root.cached(p.name, p.key) is not None
            p.status = "forced" if p.name in forced else "reuse" if cached else "compute"
    return plans


def run_pipeline(
    config: str | Path | RunSpec,
    *,
    output: str | Path | None = None,
    force: tuple[str, ...] = (),
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    log: Log = print,
    device: str = "cpu",
) -> RunOutcome:
    """Run a configuration: recompute only the stages whose inputs changed, then publish.

    Parameters
    ----------
    config
        A run configuration file, a built-in name (``edgeroi``) or a :class:`RunSpec`.
    output
        The run root (default: the configuration's ``output``, else ``runs/NAME``).
    force
        Stages to recompute even if unchanged (their downstream stages follow).
    scheduler, workers, device
        Dask scheduler address, local worker count and the network's device
        (:func:`~socmap.predict.resolve_device`) for the tiled stages (they do not change
        the numbers beyond float32 rounding, so they are not part of the cache keys).
    progress
        Progress bars.
    log
        Called with one line per stage.

    Returns
    -------
    RunOutcome
        ``published`` is false when nothing had changed.

    Raises
    ------
    ConfigError
        An unknown stage in ``force`` or another run holding the root. A stage that fails
        raises its own error; the previous version and ``latest`` stay as they were.
    """
    from socmap.predict import resolve_device

    check_scheduler(scheduler)  # before the run root is locked or cleaned
    spec, root = _prepare(config, output, force)
    on_device = resolve_device(device)
    start = time.perf_counter()
    with root.lock():
        leftovers = root.clean_incomplete()
        if leftovers:
            log(f"removed {leftovers} unfinished output(s) of an interrupted run")
        plans = plan_run(spec)
        forced = _downstream(plans, set(force))
        latest = root.latest_version()
        if not forced and _unchanged(root, plans):
            msg = f"nothing changed since {latest}; nothing to do (latest unchanged)"
            log(msg)
            return RunOutcome(root.path, plans, latest, False, msg)
        outputs: dict[str, Path] = {}
        for i, plan in enumerate(plans, 1):
            stage = next(s for s in STAGES if s.name == plan.name)
            where = root.stage_dir(plan.name, plan.key)
            record = None if plan.name in forced else root.cached(plan.name, plan.key)
            if record is not None:
                plan.status, plan.seconds = "reused", float(record.get("seconds", 0.0))
                plan.metrics = record.get("metrics", {})
                log(f"[{i}/{len(plans)}] {plan.name}: unchanged, reusing {plan.key[:12]}")
            else:
                plan.status = "forced" if plan.name in forced else "computed"
                log(f"[{i}/{len(plans)}] {plan.name}: computing {plan.key[:12]}")
                ctx = StageContext(
                    spec, {u: outputs[u] for u in plan.upstream}, scheduler, workers, progress,
                    log, on_device,
                )  # fmt: skip
                t0 = time.perf_counter()
                with atomic_path(where, overwrite=True) as tmp:
                    tmp.mkdir(parents=True)
                    plan.metrics = stage.run(ctx, tmp)
                    # what the stage recorded of its own folder must cite the final one
                    rewrite_paths(tmp, {str(tmp): str(where), str(tmp.resolve()): str(where)})
                    plan.seconds = time.perf_counter() - t0
                    doc = {"stage": plan.name, "key": plan.key, "seconds": plan.seconds,
                           "metrics": plan.metrics}  # fmt: skip
                    (tmp / STAGE_JSON).write_text(json.dumps(doc, indent=2, default=str))
            outputs[plan.name] = where
        version = root.new_version_id()
        manifest = {
            "format": MANIFEST_FORMAT,
            "version": version,
            "previous": latest,
            "config": spec.model_dump(mode="json"),
            "config_sha256": spec.sha256(),
            "config_dir": str(spec.base_dir),
            "stages": [
                {
                    "name": p.name,
                    "key": p.key,
                    "status": p.status,
                    "upstream": p.upstream,
                    "inputs": p.inputs,
                    "seconds": round(p.seconds, 3),
                }
                for p in plans
            ],
            "metrics": {p.name: p.metrics for p in plans},
            "timings": {
                **{p.name: round(p.seconds, 3) for p in plans if p.status != "reused"},
                "total_s": round(time.perf_counter() - start, 3),
            },
            "versions": versions(),
        }
        published = {
            str(form): str(root.runs / version / name)
            for name, (stage_name, inner) in PUBLISHED.items()
            if stage_name in outputs
            for form in (outputs[stage_name] / inner, (outputs[stage_name] / inner).resolve())
        }
        # the run passes stage to stage (predict .. report): each cites the published one
        for where in outputs.values():
            if (where / "run").is_dir():
                for form in (where / "run", (where / "run").resolve()):
                    published.setdefault(str(form), str(root.runs / version / "run"))
        with atomic_path(root.runs / version, overwrite=False) as tmp:
            tmp.mkdir(parents=True)
            for name, (stage_name, inner) in PUBLISHED.items():
                if stage_name in outputs:
                    link_tree(outputs[stage_name] / inner, tmp / name)
            # a version cites its own files, not the cache (which pruning may delete)
            rewrite_paths(tmp, published)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        root.point_latest(version)
        pruned = root.prune(spec.keep)
        done = [p.name for p in plans if p.status != "reused"]
        msg = (
            f"published {version} (computed: {', '.join(done)}; reused: "
            f"{', '.join(p.name for p in plans if p.status == 'reused') or 'nothing'}); "
            f"latest -> runs/{version}"
            + (f"; pruned {len(pruned)} old version(s)" if pruned else "")
        )
        log(msg)
        return RunOutcome(root.path, plans, version, True, msg)

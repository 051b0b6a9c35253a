"""The run engine: schedule tiles on threads or dask, write Zarr regions and records, resume.

A run directory holds::

    run.json        configuration (bundle, cube, seed, passes, ...), status and summary
    context.zarr    global context covariates cropped around the region (when needed)
    soc.zarr        soc(stat, depth, y, x), di(y, x), aoa(y, x); one Zarr chunk per tile
    tiles/          one completion record per finished tile: counts and a SHA-256 of its output
    cogs/, quicklooks/, item.json   the exports (see :mod:`socmap.predict._export`)

The engine knows no product. A product is a :class:`LayerKind`: its store, its arrays and
units, and the block function that computes one tile (SOC in :mod:`socmap.predict._soc`,
stocks in :mod:`socmap.stocks._maps`, stratum sums in :mod:`socmap.strata._maps`).
:func:`compute_layers` runs any kind over a run's tiles.

Each tile is one task holding every band of its chunk. Local runs compute tasks on a
thread pool in this process, one torch thread per task (torch and numpy release the GIL in
their kernels), so the model and torch are held once; a dask.distributed scheduler takes
the same tasks to other machines. A task receives only paths, numbers and the kind (its
block function travels by reference): the weights are loaded once per process
(:func:`load_tile_model`), never pickled into tasks. A task writes
its region of the kind's store (regions are whole chunks, so tasks never share a chunk) and
then its completion record, through a temporary file and a rename. Rerunning an interrupted
run skips tiles whose record exists and whose stored output still hashes to the recorded
value; everything else, including a chunk half-written when the process died, is computed
again. Tile results depend only on the run seed, so a resumed run is bitwise identical to an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
import zarr

from socmap._io import atomic_path, check_replaceable
from socmap._parallel import bounded_map
from socmap._progress import track
from socmap._records import array_digest as _digest
from socmap._records import read_record, write_record
from socmap.errors import ConfigError, OutputExists
from socmap.grid import Grid, Tile, Window
from socmap.predict._engine import STATS, TileModel, load_tile_model, passes_fit, with_focal

__all__ = [
    "RUN_FORMAT",
    "LayerKind",
    "PredictionRun",
    "RunConfig",
    "compute_layers",
    "open_run",
    "prepare_run",
    "write_template",
]

RUN_FORMAT = "socmap-prediction-run/1"
RUN_JSON = "run.json"
SOC_STORE = "soc.zarr"
#: Statuses of a run whose prediction finished (``predicted``; ``complete`` once exported).
FINISHED_RUN = ("predicted", "complete")
#: Statuses of a finished later step (stocks, strata).
FINISHED_STEP = ("computed", "complete")
CONTEXT_STORE = "context.zarr"
TILES_DIR = "tiles"


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers (a rerun must match it to resume)."""

    bundle: str
    bundle_sha256: str
    cube: str
    cube_id: str
    grid: dict[str, Any]
    chunk: int
    bands: list[str]
    context_bands: list[str]
    intervals: list[list[float]]
    stats: list[str]
    passes: int
    batch_size: int
    seed: int
    #: ``{global band: cube band}`` read in place of the global context (catalog stands_for).
    stand_ins: dict[str, str] = field(default_factory=dict)


@dataclass
class PredictionRun:
    """A prediction run directory and what it holds."""

    path: Path
    config: RunConfig
    status: str = "running"
    created: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, list[str]] = field(default_factory=dict)
    stocks: dict[str, Any] = field(default_factory=dict)
    strata: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        """Grid of the maps."""
        return Grid.from_dict(self.config.grid)

    @property
    def depth_labels(self) -> list[str]:
        """``"0-5cm"``-style labels of the mapped intervals."""
        return [f"{t:g}-{b:g}cm" for t, b in self.config.intervals]

    def open(self, store: str = SOC_STORE) -> xr.Dataset:
        """Open ``soc.zarr`` (or ``stock.zarr``) lazily.

        Raises
        ------
        ConfigError
            The store is missing (a run not finished, or a file deleted by hand).
        """
        if not (self.path / store / "zarr.json").is_file():
            step = "socmap stocks" if store != SOC_STORE else "socmap predict"
            raise ConfigError(
                f"run {str(self.path)!r} has no {store} (status {self.status!r}); run "
                f"`{step}` on it first, or predict again into a new folder"
            )
        return xr.open_zarr(self.path / store, zarr_format=3, consolidated=False)

    def require_finished(self, steps: Sequence[str] = ()) -> None:
        """Refuse a run whose prediction, or one of ``steps``, did not finish.

        An interrupted or failed step leaves ``run.json`` saying ``"running"`` (or
        ``"failed"``) beside half-written stores: reading them would report tiles that were
        never computed, or a previous call's tables as if they were this one's.

        Parameters
        ----------
        steps
            Later steps to check as well, where the run has started them: ``"stocks"``,
            ``"strata"``.

        Raises
        ------
        ConfigError
            The prediction, or a started step, is not finished.
        """
        if self.status not in FINISHED_RUN:
            raise ConfigError(
                f"run {str(self.path)!r} is {self.status!r}; finish it (rerun `socmap predict`) "
                "first"
            )
        for step in steps:
            record: dict[str, Any] = getattr(self, step)
            status = record.get("status")
            if status is None or status in FINISHED_STEP:
                continue
            options = record.get("options") or {}
            again = f"socmap {step} {self.path}"
            if step == "strata":  # the one option without which the command cannot rerun
                again += f" --strata {options.get('strata_source', 'STRATA')}"
            raise ConfigError(
                f"the {step} of run {str(self.path)!r} are {status!r}; finish them (rerun "
                f"`{again}` with the options it was started with) first"
            )

    def save(self) -> None:
        """Write ``run.json`` (atomically)."""
        doc = {
            "format": RUN_FORMAT,
            "status": self.status,
            "created": self.created,
            "config": asdict(self.config),
            "summary": self.summary,
            "exports": self.exports,
            "stocks": self.stocks,
            "strata": self.strata,
        }
        with atomic_path(self.path / RUN_JSON, overwrite=True) as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n")


def open_run(path: str | Path) -> PredictionRun:
    """Read a run directory's ``run.json``.

    Raises
    ------
    ConfigError
        No run there, or a run of another format.
    """
    p = Path(path)
    doc_path = p / RUN_JSON
    if not doc_path.is_file():
        raise ConfigError(
            f"{str(p)!r} is not a prediction run (no {RUN_JSON}); create one with `socmap predict`"
        )
    damaged = (
        f"run {str(p)!r} has a damaged {RUN_JSON}; predict again into a new folder (or restore "
        "the file from a backup)"
    )
    try:
        doc = json.loads(doc_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{damaged} ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{damaged} (it holds a {type(doc).__name__}, not an object)")
    if doc.get("format") != RUN_FORMAT:
        raise ConfigError(
            f"{str(p)!r} holds a {RUN_JSON} of format {doc.get('format')!r}, not a socmap "
            f"prediction run ({RUN_FORMAT!r}); give socmap a folder of its own (predict "
            "into a new --out), or predict again if the run is from another socmap version"
        )
    try:
        return PredictionRun(
            path=p,
            config=RunConfig(**doc["config"]),
            status=str(doc.get("status", "")),
            created=str(doc.get("created", "")),
            summary=dict(doc.get("summary") or {}),
            exports=dict(doc.get("exports") or {}),
            stocks=dict(doc.get("stocks") or {}),
            strata=dict(doc.get("strata") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{damaged} ({type(exc).__name__}: {exc})") from None


def _tile_key(tile: Tile) -> str:
    return f"{tile.core.row0}_{tile.core.col0}"


def _payload_digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


#: A tile's computation: ``(model, block, band names, job, options) -> results``; the results
#: hold the kind's arrays (or its table), ``n_valid``, ``n_nodata`` and ``unknown_classes``.
BlockFunction = Callable[[TileModel, np.ndarray, list[str], Any, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class LayerKind:
    """One kind of map a run writes: its store, arrays, units, records and tile function.

    ``block`` is a module-level function, so a kind pickles by reference into worker
    processes. ``tabular`` kinds keep their results in the tile records instead of Zarr
    arrays. ``title`` and ``cmap`` name the layer in exports and quicklooks; ``stats`` are
    the statistics along the ``stat`` axis and ``attrs`` extra attributes of the main array.
    """

    name: str
    store: str
    records: str
    units: str
    long_name: str
    planes: tuple[tuple[str, str], ...] = ()
    tabular: bool = False
    block: BlockFunction | None = None
    title: str = ""
    cmap: str = "viridis"
    stats: tuple[str, ...] = tuple(STATS)
    attrs: tuple[tuple[str, str], ...] = ()

    @property
    def arrays(self) -> tuple[str, ...]:
        """Arrays written per tile, the main one first."""
        return (self.name, *(p for p, _ in self.planes))


def write_template(
    path: Path, grid: Grid, labels: Sequence[str], chunk: int, kind: LayerKind
) -> None:
    """Create a kind's store of NaN-filled arrays (one tile per chunk) without writing data."""
    import dask.array as dsa
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    h, w = grid.shape
    cy, cx = min(chunk, h), min(chunk, w)
    d = len(labels)
    coords = {
        "stat": np.asarray(kind.stats, dtype=object),
        "depth": np.asarray(labels, dtype=object),
        "y": grid.ys,
        "x": grid.xs,
    }
    arrays = {
        kind.name: xr.DataArray(
            dsa.full((len(kind.stats), d, h, w), np.nan, dtype=np.float32,
                     chunks=(len(kind.stats), d, cy, cx)),
            dims=("stat", "depth", "y", "x"),
            coords=coords,
            attrs={"units": kind.units, "long_name": kind.long_name, **dict(kind.attrs)},
        )
    }  # fmt: skip
    for name, long_name in kind.planes:
        arrays[name] = xr.DataArray(
            dsa.full((h, w), np.nan, dtype=np.float32, chunks=(cy, cx)),
            dims=("y", "x"),
            coords={"y": grid.ys, "x": grid.xs},
            attrs={"long_name": long_name, "units": "1"},
        )
    ds = xr.Dataset(arrays).rio.write_crs(grid.crs).rio.write_transform(grid.transform)
    for name in arrays:
        ds[name].encoding.update(
            {"chunks": ds[name].data.chunksize, "fill_value": np.float32(np.nan)}
        )
    ds.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=False)


@dataclass(frozen=True)
class _TileJob:
    """What a task needs: paths and numbers only (cheap to send to a worker)."""

    bundle: str
    cube: str
    context: str | None
    out: str
    grid: str
    row0: int
    row1: int
    col0: int
    col1: int
    passes: int
    batch_size: int
    seed: int
    threads: int
    kind: LayerKind
    options: str = "{}"
    stand_ins: str = "{}"
    device: str = "cpu"  # where the network runs; not part of what the tile is
    keep_passes: bool = False  # later products here reuse the passes (they fit in memory)


def _run_tile(job: _TileJob, padded: np.ndarray | None = None) -> dict[str, Any]:
    """Compute one tile, write its region, then its completion record.

    A pixel model reads its tile from the cube; a patch model gets the tile with its halo
    (``padded``, from dask's overlap of the cube's chunks).
    """
    import torch

    start = time.perf_counter()
    if job.threads:
        torch.set_num_threads(job.threads)
    tm = load_tile_model(job.bundle)
    names = [str(b) for b in np.asarray(_array(job.cube, "band")[:]).ravel()]
    if padded is None:
        rows, cols = slice(job.row0, job.row1), slice(job.col0, job.col1)
        from socmap.cube._read import UNREADABLE, unreadable_cube

        try:
            block = np.asarray(_array(job.cube, "covariates")[:, rows, cols])
        except UNREADABLE as exc:  # once an internal error
            raise unreadable_cube(
                f"cube {str(job.cube)!r} (rows {job.row0}-{job.row1}, columns "
                f"{job.col0}-{job.col1})",
                exc,
            ) from None
    else:
        block, names = with_focal(tm, np.asarray(padded), names)
    standing = json.loads(job.stand_ins)
    if standing:  # regional layers read in place of the global inputs they stand for
        block = np.concatenate([block, block[[names.index(b) for b in standing.values()]]])
        names += list(standing)
    if job.context is not None:
        from socmap.predict._context import sample_context

        window = Window(job.row0, job.row1, job.col0, job.col1)
        tile_grid = Grid.from_dict(json.loads(job.grid)).window(window)
        extra, extra_names = sample_context(Path(job.context), tile_grid)
        block = np.concatenate([block, extra], axis=0)
        names += extra_names
    kind = job.kind
    if kind.block is None:
        raise ConfigError(f"layer kind {kind.name!r} has no block function; it cannot be computed")
    res = kind.block(tm, block, names, job, json.loads(job.options))
    rows, cols = slice(job.row0, job.row1), slice(job.col0, job.col1)
    store = Path(job.out)
    if kind.tabular:
        payload = {kind.name: res[kind.name]}
        digest = _payload_digest(payload)
    else:
        payload = {}
        _array(store, kind.name, "r+")[:, :, rows, cols] = res[kind.name]
        for name, _ in kind.planes:
            _array(store, name, "r+")[rows, cols] = res[name]
        digest = _digest(*(res[name] for name in kind.arrays))
    record = {
        "row0": job.row0,
        "col0": job.col0,
        "shape": [job.row1 - job.row0, job.col1 - job.col0],
        "sha256": digest,
        **payload,
        "n_valid": res["n_valid"],
        "n_nodata": res["n_nodata"],
        "n_with_value": res.get("n_with_value", res["n_valid"]),
        "unknown_classes": res["unknown_classes"],
        "seconds": time.perf_counter() - start,
    }
    write_record(store.parent / kind.records / f"{job.row0}_{job.col0}.json", record)
    return record


def _array(store: str | Path, name: str, mode: Literal["r", "r+"] = "r") -> zarr.Array:
    return zarr.open_array(store=str(Path(store) / name), mode=mode, zarr_format=3)


def _is_done(run_dir: Path, tile: Tile, kind: LayerKind) -> bool:
    """Whether a tile's record exists and its stored output still hashes to the record."""
    record = read_record(run_dir / kind.records / f"{_tile_key(tile)}.json")
    if record is None:
        return False
    if kind.tabular:
        return bool(record.get("sha256") == _payload_digest({kind.name: record.get(kind.name)}))
    r, c = tile.core.slices
    store = run_dir / kind.store
    full = (slice(None), slice(None), r, c)
    stored = [
        np.asarray(_array(store, name)[full if name == kind.name else (r, c)])
        for name in kind.arrays
    ]
    return bool(record.get("sha256") == _digest(*stored))


@contextlib.contextmanager
def _client(scheduler: str) -> Iterator[Any]:
    """Connect to a running dask.distributed scheduler."""
    from distributed import Client

    with Client(scheduler) as client:
        yield client


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, then restore the caller's setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute_layers(
    run: PredictionRun,
    kind: LayerKind,
    labels: Sequence[str],
    *,
    options: dict[str, Any] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    device: str = "cpu",
    keep_passes: bool = True,
) -> dict[str, Any]:
    """Compute every unfinished tile of one kind of layer; return the summary of all tiles.

    ``device`` (resolved, :func:`~socmap.predict.resolve_device`) is where each tile's
    network runs; like ``workers`` it changes how fast, not what (to float32 tolerance).
    ``keep_passes=False`` keeps none of the map's Monte Carlo passes for a later product.
    """
    config, run_dir = run.config, run.path
    grid = run.grid
    store = run_dir / kind.store
    if not store.exists() and not kind.tabular:
        with atomic_path(store) as tmp:
            write_template(tmp, grid, labels, config.chunk, kind)
    tiles = list(grid.tiles(config.chunk))
    todo = [t for t in tiles if not _is_done(run_dir, t, kind)]
    (run_dir / kind.records).mkdir(exist_ok=True)
    n_workers = min(len(todo), os.cpu_count() or 1) if workers is None else int(workers)
    context = run_dir / CONTEXT_STORE
    # one process computes every tile: the map's passes may serve its later products
    keep = (
        keep_passes
        and scheduler is None
        and passes_fit(config.passes, len(config.intervals), config.grid["shape"])
    )
    jobs = [
        _TileJob(
            bundle=config.bundle,
            cube=config.cube,
            context=str(context) if config.context_bands else None,
            out=str(store),
            grid=json.dumps(config.grid),
            row0=t.core.row0,
            row1=t.core.row1,
            col0=t.core.col0,
            col1=t.core.col1,
            passes=config.passes,
            batch_size=config.batch_size,
            seed=config.seed,
            threads=1 if scheduler else 0,
            kind=kind,
            options=json.dumps(options or {}, sort_keys=True),
            stand_ins=json.dumps(config.stand_ins),
            device=device,
            keep_passes=keep,
        )
        for t in todo
    ]
    start = time.perf_counter()
    halo = load_tile_model(config.bundle).halo
    _execute(jobs, scheduler, n_workers, progress, f"computing {kind.name} tiles", halo)
    return _summarise(run_dir, tiles, len(tiles) - len(todo), time.perf_counter() - start, kind)


def prepare_run(run_dir: Path, config: RunConfig, overwrite: bool) -> PredictionRun:
    """Resume a run with the same configuration, or start a new one."""
    if (run_dir / RUN_JSON).is_file():
        previous = open_run(run_dir)
        if previous.config == config:
            previous.status = "running"
            return previous
        if not overwrite:
            changed = [k for k, v in asdict(config).items() if asdict(previous.config).get(k) != v]
            raise OutputExists(
                f"run {str(run_dir)!r} exists with another configuration (differs in "
                f"{changed!r}); pass --overwrite (Python: overwrite=True) or choose a new "
                "run directory"
            )
        shutil.rmtree(run_dir)
    else:  # not a run: never deleted, even with overwrite (an empty folder is reused)
        check_replaceable(run_dir, "prediction run", lambda _: False, overwrite=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run = PredictionRun(path=run_dir, config=config, status="running", created=created)
    run.save()
    return run


def _halo_tasks(jobs: list[_TileJob], halo: int) -> list[Any]:
    """One delayed tile task per job, fed its chunk grown by ``halo`` through dask's overlap.

    ``dask.array.overlap.overlap`` is the halo exchange ``map_overlap`` is built on: each
    chunk gets ``halo`` pixels from its neighbours, NaN beyond the grid edge. Using it
    directly, rather than ``map_overlap``, lets a resumed run schedule only unfinished tiles.
    """
    import dask
    import dask.array as da

    cube = jobs[0].cube
    chunk = max(j.row1 - j.row0 for j in jobs), max(j.col1 - j.col0 for j in jobs)
    arr = _array(cube, "covariates")
    size = max(int(arr.chunks[1]), chunk[0]), max(int(arr.chunks[2]), chunk[1])
    cov = da.from_zarr(arr).rechunk({0: -1, 1: size[0], 2: size[1]})
    padded = da.overlap.overlap(
        cov, depth={0: 0, 1: halo, 2: halo}, boundary={0: "none", 1: np.nan, 2: np.nan}
    )
    blocks = padded.to_delayed()
    tasks = []
    for job in jobs:
        block = blocks[0, job.row0 // size[0], job.col0 // size[1]]
        tasks.append(dask.delayed(_run_tile, pure=False)(job, block))
    return tasks


def _execute(
    jobs: list[_TileJob],
    scheduler: str | None,
    workers: int,
    progress: bool,
    what: str,
    halo: int = 0,
) -> None:
    """Compute ``jobs``: on a dask.distributed scheduler, or here on ``workers`` threads.

    Local tiles run on a thread pool in this process (torch and numpy release the GIL in
    their kernels), one torch thread each, so one process holds the model; ``workers=0``
    runs them one after another with torch's own thread count.
    """
    if not jobs:
        return
    tasks = _halo_tasks(jobs, halo) if halo else None
    if scheduler:
        from distributed import as_completed

        with _client(scheduler) as client:
            if tasks is None:
                futures = client.map(_run_tile, jobs, pure=False)
            else:
                futures = client.compute(tasks)
            done = as_completed(futures)
            for fut in track(done, what, total=len(futures)) if progress else done:
                fut.result()  # re-raises a task's error here
        return
    items: list[Any] = tasks if tasks is not None else jobs
    run = _run_tile if tasks is None else _compute_here
    with contextlib.ExitStack() as stack:
        if workers > 0:
            stack.enter_context(_torch_threads(1))
        results = bounded_map(run, items, workers)
        for _ in track(results, what, total=len(items)) if progress else results:
            pass


def _compute_here(task: Any) -> Any:
    """Compute a delayed tile task in the calling thread."""
    return task.compute(scheduler="synchronous")


def _summarise(
    run_dir: Path, tiles: list[Tile], skipped: int, seconds: float, kind: LayerKind
) -> dict[str, Any]:
    records = [
        json.loads((run_dir / kind.records / f"{_tile_key(t)}.json").read_text()) for t in tiles
    ]
    unknown: dict[str, int] = {}
    for r in records:
        for band, n in r["unknown_classes"].items():
            unknown[band] = unknown.get(band, 0) + int(n)
    return {
        "tiles": len(tiles),
        "tiles_resumed": skipped,
        "pixels_predicted": int(sum(r["n_valid"] for r in records)),
        "pixels_with_value": int(sum(r.get("n_with_value", r["n_valid"]) for r in records)),
        "pixels_nodata": int(sum(r["n_nodata"] for r in records)),
        "unknown_class_pixels": unknown,
        "seconds": round(seconds, 3),
        "tile_seconds": round(float(sum(r["seconds"] for r in records)), 3),
    }

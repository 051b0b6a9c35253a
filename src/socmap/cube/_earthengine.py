"""Pull a catalog of ``ee://`` layers onto a Grid as a covariate cube, resumably.

The pull writes the same cube contract as :func:`socmap.cube.build_cube` (Zarr v3,
``covariates(band, y, x)`` float32, NaN nodata, chunks holding every band of a tile, the
per-band attrs and provenance), so :func:`socmap.cube.open_cube` and everything downstream
read it unchanged.

While it runs, everything lives in a sibling folder ``.partial-<out name>/``::

    pull.json    what the pull is (bands and their expressions, grid, chunk, request plan)
    cube.zarr    the cube being filled, window by window
    records/     one completion record per finished window: counts and a SHA-256 of its data

A window is a whole number of chunks (:func:`request_tile`), so windows never share a chunk
and can be written concurrently. A worker fetches every band group of its window, writes the
window's region and then its record (atomically). Rerunning the same pull skips windows whose
record exists and whose stored data still hash to it, and fetches the rest; a partial folder
of another pull (other bands, expressions, grid or chunk) is never reused. Only a complete
pull is renamed to ``out``, so nothing half-written ever sits there.

Concurrency is ``workers`` threads, each with one request in flight at a time, so at most
``workers`` requests are outstanding and at most ``workers`` windows are held in memory. At
its peak a worker holds about five copies of its window (the response body while it is
assembled, the decoded structured array, the float32 block, the encoded Zarr chunk), so
memory is bounded by ``workers x 5 x`` the window size, whatever the grid size
(``docs/benchmarks/ee_pull.md`` measures it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from socmap._io import check_replaceable, publish_path, remove_path
from socmap._parallel import bounded_map
from socmap._progress import track
from socmap._records import array_digest, read_record, write_record
from socmap.catalog import Catalog, resolve_catalog, resolve_grid
from socmap.cube._format import (
    CUBE_VAR,
    add_class_counts,
    band_coverage_attrs,
    check_chunk,
    check_unknown_classes,
    cube_attrs,
    is_socmap_cube,
    jsonable_number,
    mask_unknown_classes,
    spec_band_attrs,
    write_template,
)
from socmap.errors import CatalogError, ConfigError, OutputExists, RasterError
from socmap.grid import Grid, Window
from socmap.sources.earthengine import (
    REQUEST_LIMIT_BYTES,
    FetchStats,
    PixelFetcher,
    RetryPolicy,
    asset_id,
    band_expression,
    band_groups,
    check_ee_only,
    plan_requests,
    request_image,
    request_tile,
)

__all__ = ["PULL_FORMAT", "partial_path", "plan_pull", "pull_cube"]

logger = logging.getLogger("socmap.sources.earthengine")

#: Format of ``pull.json``; bump when the partial layout changes.
PULL_FORMAT = "socmap-ee-pull/1"
_STORE = "cube.zarr"
_RECORDS = "records"
_PULL_JSON = "pull.json"
#: Every band is requested as float32 (see :mod:`._expr`).
_REQUEST_DTYPE = "float32"


def partial_path(out: str | Path) -> Path:
    """Return the folder of an unfinished pull into ``out`` (``.partial-<name>`` beside it).

    Examples
    --------
    >>> partial_path("runs/cube.zarr").as_posix()
    'runs/.partial-cube.zarr'
    """
    out = Path(out)
    return out.parent / f".partial-{out.name}"


@dataclass(frozen=True)
class _Plan:
    """Bands, their expressions and the requests that cover the grid."""

    names: list[str]
    expressions: list[str]
    digests: list[str]
    groups: list[list[int]]
    images: list[Any]  # one request image per band group
    side: int
    windows: list[Window]


def plan_pull(
    cat: Catalog, grid: Grid, chunk: int, request_limit: int = REQUEST_LIMIT_BYTES
) -> _Plan:
    """Build every band's expression and the request plan (windows x band groups).

    ``request_limit`` caps the bytes of one request (mask byte included); Earth Engine's
    own cap, :data:`REQUEST_LIMIT_BYTES`, is the largest allowed.
    """
    if not 0 < int(request_limit) <= REQUEST_LIMIT_BYTES:
        raise ConfigError(
            f"request_limit {request_limit!r} must be between 1 and computePixels' "
            f"{REQUEST_LIMIT_BYTES} bytes"
        )
    names, expressions, digests, band_images = [], [], [], []
    for spec in cat.covariates:
        image, text, digest = band_expression(spec)
        names.append(spec.name)
        band_images.append(image)
        expressions.append(text)
        digests.append(digest)
    dtypes = [_REQUEST_DTYPE] * len(names)
    groups = band_groups(dtypes, chunk, limit=int(request_limit))
    side = request_tile(dtypes[: max(len(g) for g in groups)], chunk, limit=int(request_limit))
    images = [request_image([band_images[i] for i in g]) for g in groups]
    return _Plan(names, expressions, digests, groups, images, side, plan_requests(grid, side))


def _identity(grid: Grid, chunk: int, plan: _Plan, cat: Catalog) -> dict[str, Any]:
    """Describe what a partial pull must match to be resumed (not the catalog's bytes)."""
    return {
        "format": PULL_FORMAT,
        "bands": plan.names,
        "band_expression_sha256": plan.digests,
        # Applied after the pull, so not part of the expressions:
        "band_scale": [float(s.scale) for s in cat.covariates],
        "band_offset": [float(s.offset) for s in cat.covariates],
        "band_classes": [sorted(s.classes) if s.classes else None for s in cat.covariates],
        "grid": grid.to_dict(),
        "chunk": chunk,
        "side": plan.side,
        "band_groups": plan.groups,
    }


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = []
    for key, value in new.items():
        if key == "grid":
            try:
                same = Grid.from_dict(old.get("grid") or {}) == Grid.from_dict(value)
            except Exception:  # an unreadable grid is a different one
                same = False
            if not same:
                changed.append(key)
        elif old.get(key) != value:
            changed.append(key)
    return changed


def _cube_attrs(cat: Catalog, grid: Grid, chunk: int, plan: _Plan) -> dict[str, Any]:
    specs = cat.covariates
    attrs = spec_band_attrs(specs)
    attrs["band_nodata"] = [jsonable_number(s.nodata) for s in specs]
    attrs["band_source_path"] = [asset_id(s) for s in specs]
    attrs["band_source_sha256"] = plan.digests
    attrs["band_ee_expression"] = plan.expressions
    return cube_attrs(cat, grid, chunk, attrs, source="earthengine")


def _open_partial(
    partial: Path,
    identity: dict[str, Any],
    overwrite: bool,
    create: Callable[[Path], None],
) -> bool:
    """Resume the partial pull at ``partial`` or start one; return whether it resumed."""
    doc_path = partial / _PULL_JSON
    if partial.exists():
        previous: dict[str, Any] | None = None
        if doc_path.is_file():
            try:
                previous = json.loads(doc_path.read_text())
            except (OSError, json.JSONDecodeError):
                previous = None
        if previous is None:
            # pull.json is written last when a partial is created: without it there is
            # nothing to resume (creation was cut short), so start over.
            remove_path(partial)
        else:
            store_there = (partial / _STORE).exists()
            changed = _differences(previous, identity) if store_there else [_STORE]
            if not changed:
                return True
            if not overwrite:
                raise OutputExists(
                    f"{str(partial)!r} holds an unfinished pull of another configuration "
                    f"(differs in {changed!r}); pass --overwrite (Python: overwrite=True) "
                    "to discard it, or delete it"
                )
            remove_path(partial)
    partial.mkdir(parents=True)
    create(partial / _STORE)
    (partial / _RECORDS).mkdir()
    # pull.json last: a folder without it is never resumed.
    write_record(doc_path, identity)
    return False


def _record_path(records: Path, window: Window) -> Path:
    return records / f"{window.row0}_{window.col0}.json"


def _is_done(array: Any, records: Path, window: Window) -> bool:
    """Whether a window's record exists and its stored data still hash to it."""
    record = read_record(_record_path(records, window))
    if record is None or record.get("shape") != list(window.shape):
        return False
    r, c = window.slices
    return bool(record.get("sha256") == array_digest(np.asarray(array[:, r, c])))


def _make_window_writer(
    array: Any,
    records: Path,
    plan: _Plan,
    grid: Grid,
    cat: Catalog,
    fetcher: PixelFetcher,
    hint: str,
) -> Callable[[tuple[int, Window]], dict[str, Any]]:
    specs = cat.covariates
    n = len(specs)
    class_codes = [
        None if s.classes is None else np.asarray(sorted(s.classes), dtype=np.float32)
        for s in specs
    ]
    affine = [
        (i, np.float32(s.scale), np.float32(s.offset))
        for i, s in enumerate(specs)
        if s.scale != 1.0 or s.offset != 0.0
    ]

    def write(item: tuple[int, Window]) -> dict[str, Any]:
        index, window = item
        sub = grid.window(window)
        block = np.empty((n, *window.shape), dtype=np.float32)
        for g, (bands, image) in enumerate(zip(plan.groups, plan.images, strict=True)):
            what = (
                f"request {index}.{g} (rows {window.row0}:{window.row1}, cols "
                f"{window.col0}:{window.col1}, bands {plan.names[bands[0]]!r}.."
                f"{plan.names[bands[-1]]!r})"
            )
            names = [plan.names[i] for i in bands]
            block[bands[0] : bands[-1] + 1] = fetcher.fetch(
                image, sub, names, (index, g), what, hint
            )
        for i, scale, offset in affine:
            # As for local rasters (LayerSource.read): affine in the value, in float32.
            block[i] *= scale
            block[i] += offset
        unknown = mask_unknown_classes(block, class_codes)
        r, c = window.slices
        array[:, r, c] = block
        record = {
            "row0": window.row0,
            "col0": window.col0,
            "shape": list(window.shape),
            "sha256": array_digest(block),
            "valid": np.count_nonzero(~np.isnan(block), axis=(1, 2)).astype(int).tolist(),
            "unknown": unknown,
        }
        write_record(_record_path(records, window), record)
        return record

    return write


def pull_cube(
    catalog: Catalog | str | Path,
    grid: Grid | None,
    out: str | Path,
    *,
    chunk: int = 512,
    workers: int = 4,
    max_retries: int = 8,
    backoff_s: float = 1.0,
    max_backoff_s: float = 64.0,
    seed: int = 0,
    request_limit: int = REQUEST_LIMIT_BYTES,
    overwrite: bool = False,
    unknown_classes: str = "refuse",
    progress: bool = True,
) -> Path:
    """Pull every band of an Earth Engine catalog onto ``grid`` as a covariate cube.

    Each request is one ``ee.data.computePixels`` call (``NUMPY_NDARRAY``) over a window of
    whole chunks, holding every band of a band group, under computePixels' 48 MiB (mask
    byte included), 32768-pixel and 1024-band limits. Earth Engine must be initialised
    first (:func:`socmap.sources.earthengine.initialize`).

    Parameters
    ----------
    catalog
        A :class:`~socmap.catalog.Catalog`, a catalog YAML path, or a built-in catalog name;
        every layer must have an ``ee://`` source.
    grid
        Target grid; ``None`` uses the catalog's ``grid``.
    out
        Output Zarr store.
    chunk
        Spatial chunk size in pixels (chunks hold all bands); requests are whole chunks.
    workers
        Requests in flight at once (threads), and windows held in memory at once.
    max_retries
        Retries of a request answered 429/5xx or lost to a connection error or timeout.
    backoff_s, max_backoff_s
        Base wait before the first retry (doubling per retry) and its cap, in seconds.
    seed
        Seed of the retry jitter (the data do not depend on it).
    request_limit
        Largest request in bytes, mask byte included (at most computePixels' 48 MiB);
        smaller requests finish sooner, which helps against per-request time limits.
    overwrite
        Replace an existing ``out``, and discard an unfinished pull of another
        configuration at ``.partial-<out name>``.
    unknown_classes
        Categorical codes missing from a band's ``classes``: ``"refuse"`` or ``"nodata"``
        (as :func:`socmap.cube.build_cube`).
    progress
        Show a progress bar (on a terminal; see ``SOCMAP_PROGRESS``).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    CatalogError
        No grid anywhere, a local source in the catalog, a malformed entry, or categorical
        codes missing from the catalog under ``unknown_classes="refuse"`` (the unfinished
        pull is discarded).
    OutputExists
        ``out`` exists, or an unfinished pull of another configuration does, and
        ``overwrite`` is false.
    EarthEngineError
        Earth Engine is not initialised, refused a request (4xx other than 429), or kept
        failing past ``max_retries``. Finished windows stay in ``.partial-<out name>``; the
        same call resumes from them.
    RasterError
        A band has no valid pixel on the grid.
    ConfigError
        ``chunk`` or ``workers`` out of range, or one chunk of a band cannot fit a request.
    """
    check_unknown_classes([], [], unknown_classes)
    cat = resolve_catalog(catalog)
    target = resolve_grid(cat, grid)
    check_chunk(chunk)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers {workers!r} must be a positive number of threads, e.g. 4")
    policy = RetryPolicy(max_retries, backoff_s, max_backoff_s, seed)
    out = Path(out)
    check_replaceable(out, "cube", is_socmap_cube, overwrite)
    check_ee_only(cat)
    stats = FetchStats()
    fetcher = PixelFetcher(policy, stats)  # checks that Earth Engine is initialised
    plan = plan_pull(cat, target, chunk, request_limit)
    partial = partial_path(out)

    def create(store: Path) -> None:
        write_template(store, target, plan.names, _cube_attrs(cat, target, chunk, plan), chunk)

    resumed = _open_partial(partial, _identity(target, chunk, plan, cat), overwrite, create)
    store, records = partial / _STORE, partial / _RECORDS
    array = zarr.open_array(store=str(store / CUBE_VAR), mode="r+", zarr_format=3)
    items = list(enumerate(plan.windows))
    todo = [(i, w) for i, w in items if not (resumed and _is_done(array, records, w))]
    logger.info(
        "pulling %r: %d bands in %d group(s), %d windows of up to %d px (%d to fetch%s)",
        cat.name,
        len(plan.names),
        len(plan.groups),
        len(items),
        plan.side,
        len(todo),
        ", resuming" if resumed else "",
    )
    hint = f" (finished windows are kept in {str(partial)!r}: rerun the same pull to resume)"
    writer = _make_window_writer(array, records, plan, target, cat, fetcher, hint)
    results: Iterable[dict[str, Any]] = bounded_map(writer, todo, workers)
    if progress:
        results = track(results, f"pulling {cat.name!r} from Earth Engine", total=len(todo))
    for _ in results:
        pass
    valid, unknown = _totals(records, plan.windows, len(plan.names))
    empty = [name for name, v in zip(plan.names, valid, strict=True) if v == 0]
    if empty:
        remove_path(partial)
        raise RasterError(
            f"band(s) {empty!r} have no valid pixel on {target!r}; check the asset, band, date "
            "range and filters in the catalog, and that the grid lies inside the asset's "
            "footprint (nothing was written)"
        )
    try:
        check_unknown_classes(plan.names, unknown, unknown_classes)
    except CatalogError:
        remove_path(partial)
        raise
    array.attrs.update(band_coverage_attrs(target, valid, unknown))
    publish_path(store, out)
    remove_path(partial)
    counts = stats.as_dict()
    logger.info(
        "pulled %r into %s: %d requests, %d retries, %d bytes",
        cat.name,
        out,
        counts["requests"],
        counts["retries"],
        counts["bytes"],
    )
    return out


def _totals(
    records: Path, windows: Sequence[Window], n_bands: int
) -> tuple[np.ndarray, list[dict[str, int]]]:
    valid = np.zeros(n_bands, dtype=np.int64)
    unknown: list[dict[str, int]] = [{} for _ in range(n_bands)]
    for window in windows:
        record = read_record(_record_path(records, window))
        if record is None:  # pragma: no cover - every window was just written
            raise RasterError(f"completion record of window {window!r} is missing; rerun the pull")
        valid += np.asarray(record["valid"], dtype=np.int64)
        # records of an older socmap hold counts only
        part = [f if isinstance(f, dict) else {"unrecorded codes": int(f)} if f else {}
                for f in record["unknown"]]  # fmt: skip
        add_class_counts(unknown, part)
    return valid, unknown

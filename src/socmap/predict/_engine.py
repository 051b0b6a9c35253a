"""Per-tile inference: a block of covariates in, SOC statistics (or draws) per depth out.

This is the compute kernel of a prediction run; :mod:`socmap.predict._run` schedules it. A
tile's pixels are encoded with the bundle's feature spec, the depth-independent fused
features are computed once per pixel batch, all depth intervals are conditioned in one
matmul, and only the layers after the first dropout run ``passes`` times
(:meth:`~socmap.model.network.SocNet.map_passes`).

**Monte Carlo passes are whole-map realisations.** Pass ``t`` uses one set of dropout masks,
drawn from the run seed, for every pixel and every depth interval: one sampled network
(Gal & Ghahramani 2016) applied to the whole map. Per pixel the statistics are those of
ordinary MC dropout; across pixels and depths, a pass is coherent, which is what stratum
totals and cumulative stocks need. And the result does not depend on tiling, batching,
workers or order. The aleatoric noise of a draw (:func:`draws_from`) is a counter-based
normal of (seed, pixel, pass, depth), tiling-independent as well.

Statistics per depth interval, from the log1p(SOC) mean ``m`` and total sd ``s`` (epistemic
variance of the pass means plus the mean aleatoric variance), calibrated with the bundle's
conformal multiplier ``q`` for 90 % intervals (``q = 1.645`` when the bundle has none):

* ``q05``, ``q95`` = ``expm1(m -/+ q s)``, clipped at 0 g/kg; ``q50`` = ``expm1(m)``;
* ``mean``, ``sd``: of a log-normal with log-scale sd ``s q / 1.645`` (the Gaussian sd whose
  90 % interval matches the calibrated one).

A pixel with any missing covariate gives NaN everywhere (the network could fill it, but a map
should not silently extrapolate over nodata).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from socmap.errors import BandMismatch, BundleError, ConfigError
from socmap.focal import FocalSpec, focal_mean
from socmap.model.bundle import Bundle, load_bundle
from socmap.model.depth_atoms import MAX_LOG, atom_weights
from socmap.units import STATS, Z90
from socmap.validate.aoa import AreaOfApplicability
from socmap.validate.calibrate import ConformalCalibrator

__all__ = [
    "DEVICES",
    "STATS",
    "EncodedBlock",
    "TileModel",
    "counter_normal",
    "draws_from",
    "encode_block",
    "forget_passes",
    "load_tile_model",
    "mc_log",
    "predict_block",
    "resolve_device",
    "with_focal",
]


@dataclass(frozen=True, eq=False)
class TileModel:
    """A bundle prepared for mapping.

    Attributes
    ----------
    bundle
        The loaded bundle.
    intervals
        Depth intervals ``(top_cm, bottom_cm)`` mapped, in order.
    q90
        Conformal multiplier of the log-space sd for a 90 % interval, per interval.
    weights_sha256
        Identity of the weights (the worker-level cache key).
    focal
        Neighbourhood bands of a patch model (:mod:`socmap.focal`), or None.
    """

    bundle: Bundle
    intervals: tuple[tuple[float, float], ...]
    q90: np.ndarray
    weights_sha256: str
    focal: FocalSpec | None = None

    @property
    def band_names(self) -> list[str]:
        """Bands the network reads (focal bands included)."""
        return self.bundle.band_names

    @property
    def input_bands(self) -> list[str]:
        """Bands read from the cube (or the global context): focal bands are derived."""
        bands = self.bundle.input_bands
        if self.focal is None:
            return bands
        derived = set(self.focal.names)
        plain = [b for b in bands if b not in derived]
        return plain + [b for b in self.focal.bands if b not in plain]

    @property
    def halo(self) -> int:
        """Pixels a tile needs from its neighbours: the focal radius, 0 for pixel models."""
        return 0 if self.focal is None else self.focal.radius

    @property
    def aoa(self) -> AreaOfApplicability | None:
        """The bundle's area of applicability, if it has one."""
        return self.bundle.aoa

    @property
    def depth_labels(self) -> list[str]:
        """``"0-5cm"``-style labels of :attr:`intervals`."""
        return [f"{t:g}-{b:g}cm" for t, b in self.intervals]

    def masks(self, passes: int, seed: int, device: str = "cpu") -> list[torch.Tensor]:
        """Return the run's dropout masks (the same for every tile; a function of the seed).

        They are drawn on the CPU, then copied to ``device`` once per process.
        """
        return _masks(self, int(passes), int(seed), device)


def _intervals(bundle: Bundle) -> tuple[tuple[float, float], ...]:
    meta = bundle.metadata
    given: Any
    if isinstance(meta.get("intervals"), list) and meta["intervals"]:
        given = meta["intervals"]
    elif bundle.depth_set is not None:
        given = bundle.depth_set.intervals
    else:
        raise BundleError(
            f"bundle {str(bundle.path)!r} records neither 'intervals' nor a 'depth_set'; "
            "re-create it with `socmap finetune` or `socmap pretrain` (Python: save it with "
            "metadata={'intervals': [...]}, the depth intervals it was trained on)"
        )
    # checked on load, before a run folder exists (once refused inside the first tile, after
    # the run was created; a repeated interval mapped the same layer twice at exit 0)
    fix = "re-create it with `socmap finetune` or `socmap pretrain`"
    pairs: list[tuple[float, float]] = []
    for item in given:
        try:
            top, bottom = (float(v) for v in item)
        except (TypeError, ValueError):
            raise BundleError(
                f"bundle {str(bundle.path)!r} records the depth interval {item!r}, not a pair "
                f"[top_cm, bottom_cm]; {fix}"
            ) from None
        if not (math.isfinite(top) and math.isfinite(bottom) and 0 <= top < bottom):
            raise BundleError(
                f"bundle {str(bundle.path)!r} records the depth interval {top:g}-{bottom:g} cm; "
                f"intervals need 0 <= top_cm < bottom_cm; {fix}"
            )
        if (top, bottom) in pairs:
            raise BundleError(
                f"bundle {str(bundle.path)!r} records the depth interval {top:g}-{bottom:g} cm "
                f"twice; {fix}"
            )
        pairs.append((top, bottom))
    return tuple(pairs)


def _q90(bundle: Bundle, intervals: Sequence[tuple[float, float]]) -> np.ndarray:
    record = bundle.metadata.get("calibration")
    if not isinstance(record, dict):
        return np.full(len(intervals), Z90)
    cal = ConformalCalibrator.from_dict(record)
    labels = [f"{t:g}-{b:g}cm" for t, b in intervals]
    known = set(cal.group_tables_ or {})
    q = [cal.scale(0.9, lab if lab in known else None) for lab in labels]
    return np.asarray(q, dtype=np.float64)


@functools.lru_cache(maxsize=4)
def _cached(path: str, sha: str) -> TileModel:
    bundle = load_bundle(path)
    intervals = _intervals(bundle)
    record = bundle.metadata.get("focal")
    focal = FocalSpec.from_dict(record) if isinstance(record, dict) else None
    return TileModel(bundle, intervals, _q90(bundle, intervals), sha, focal)


def load_tile_model(path: str | Path) -> TileModel:
    """Load a bundle for mapping, once per process (a worker-level cache).

    The cache key includes the SHA-256 of the weights, so a bundle replaced on disk is
    reloaded. Tasks therefore carry only the bundle's path, never the weights.
    """
    weights = Path(path) / "weights.safetensors"
    if not weights.is_file():
        load_bundle(path)  # raises the precise InputNotFound / BundleError
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    return _cached(str(Path(path).resolve()), sha)


@functools.lru_cache(maxsize=8)
def _masks(tm: TileModel, passes: int, seed: int, device: str) -> list[torch.Tensor]:
    if device != "cpu":
        return [m.to(torch.device(device)) for m in _masks(tm, passes, seed, "cpu")]
    return tm.bundle.model.dropout_masks(passes, torch.Generator().manual_seed(seed))


#: What ``device`` may say: ``auto`` takes CUDA when torch sees a GPU, else the CPU.
DEVICES = ("cpu", "cuda", "auto")


def resolve_device(device: str) -> str:
    """Return the torch device that ``device`` names (``cpu``, ``cuda``, ``cuda:N``, ``auto``).

    Raises
    ------
    ConfigError
        An unknown name, or CUDA asked for where torch sees no GPU.
    """
    name = str(device).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r}: torch {torch.__version__} sees no CUDA GPU on this "
                "machine; use --device cpu (or auto, which falls back to the CPU)"
            )
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s); use cuda:0 or auto"
            )
        return name
    raise ConfigError(f"device {device!r} must be one of {list(DEVICES)!r} or cuda:N")


@functools.lru_cache(maxsize=8)
def _network_on(tm: TileModel, device: str) -> Any:
    """Return the network on ``device``: a copy, once per process (the CPU uses its own)."""
    if device == "cpu":
        return tm.bundle.model
    return copy.deepcopy(tm.bundle.model).to(torch.device(device))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a counter -> 64 well-mixed bits."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def counter_normal(seed: int, counters: np.ndarray) -> np.ndarray:
    """Draw standard normals that depend only on ``(seed, counter)`` (SplitMix64, Box-Muller).

    Examples
    --------
    >>> a = counter_normal(1, np.arange(4, dtype=np.uint64))
    >>> bool(np.array_equal(a[2:], counter_normal(1, np.arange(2, 4, dtype=np.uint64))))
    True
    """
    with np.errstate(over="ignore"):
        key = _splitmix64(np.full(1, seed, dtype=np.uint64))[0]
        base = counters.astype(np.uint64) * np.uint64(2) + key
        u1 = (_splitmix64(base) >> np.uint64(11)).astype(np.float64) + 0.5
        u2 = (_splitmix64(base + np.uint64(1)) >> np.uint64(11)).astype(np.float64)
    u1 *= 2.0**-53
    u2 *= 2.0**-53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def with_focal(
    tm: TileModel, block: np.ndarray, band_names: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Turn a halo-padded block into the core block plus the model's focal bands.

    Parameters
    ----------
    tm
        A patch model (``tm.halo > 0``); for a pixel model the block is returned unchanged.
    block
        ``(bands, h + 2 halo, w + 2 halo)`` covariates, NaN where the halo leaves the grid.
    band_names
        Names of the block's bands.

    Returns
    -------
    block, names
        ``(bands + focal bands, h, w)`` and the extended band names.
    """
    names = [str(b) for b in band_names]
    if tm.focal is None:
        return block, names
    missing = [b for b in tm.focal.bands if b not in names]
    if missing:
        raise BandMismatch(
            f"covariates lack bands {missing!r} whose focal means the model reads; the cube "
            f"has {names!r}"
        )
    r = tm.halo
    focal = focal_mean(block[[names.index(b) for b in tm.focal.bands]], r)
    core = block[:, r:-r, r:-r]
    return np.concatenate([core, focal.astype(core.dtype)]), names + tm.focal.names


@dataclass(frozen=True)
class EncodedBlock:
    """Network inputs of a tile's valid pixels.

    Attributes
    ----------
    cont, mask, cat
        Encoded covariates of the valid pixels (:meth:`FeatureSpec.encode_covariates`).
    valid
        ``(h * w,)`` True where every band the network reads is present.
    where
        Flat indices of the valid pixels (the rows of ``cont``, ``mask`` and ``cat``).
    pixels
        ``(bands, h * w)`` the block's values, band-major (a view, not a copy).
    index
        Band name -> row of ``pixels``.
    unknown
        Valid pixels per categorical band whose class is not in the vocabulary.
    """

    cont: np.ndarray
    mask: np.ndarray
    cat: np.ndarray
    valid: np.ndarray
    where: np.ndarray
    pixels: np.ndarray
    index: dict[str, int]
    unknown: dict[str, int]

    def counts(self) -> dict[str, Any]:
        """Pixel counts a tile's result carries for its record.

        Returns
        -------
        dict
            ``n_valid`` and ``n_nodata`` pixels, and ``unknown_classes`` (:attr:`unknown`).
        """
        return {
            "n_valid": int(self.valid.sum()),
            "n_nodata": int((~self.valid).sum()),
            "unknown_classes": self.unknown,
        }


def encode_block(tm: TileModel, block: np.ndarray, band_names: Sequence[str]) -> EncodedBlock:
    """Encode a ``(bands, h, w)`` block's pixels with the bundle's feature spec.

    Raises
    ------
    BandMismatch
        The block lacks a band the model reads.
    """
    names = [str(b) for b in band_names]
    index = {b: i for i, b in enumerate(names)}
    missing = [b for b in tm.bundle.input_bands if b not in index]
    if missing:
        raise BandMismatch(
            f"covariates lack bands {missing!r} that the model reads; the cube has {names!r}"
        )
    n_bands, h, w = block.shape
    pixels = block.reshape(n_bands, h * w)
    used = [index[b] for b in tm.band_names]
    valid = np.isfinite(pixels[used]).all(axis=0)
    cov = tm.bundle.spec.encode_covariates({b: pixels[index[b], valid] for b in tm.band_names})
    return EncodedBlock(
        cov.cont, cov.mask, cov.cat, valid, np.flatnonzero(valid), pixels, index, cov.n_unknown
    )


@functools.lru_cache(maxsize=8)
def _depth_plan(tm: TileModel, device: str = "cpu") -> tuple[torch.Tensor, np.ndarray | None]:
    """Depth features to evaluate, and how the mapped intervals are composed of them.

    A bundle with depth atoms (:mod:`socmap.model.depth_atoms`) is evaluated at its atoms;
    an interval inside one atom takes that atom's value and the others are its
    thickness-weighted mean (``(D, A)`` weights), as for tables. Without atoms, or when
    every interval lies in one atom, no composition is needed (weights ``None``). The
    features are copied to ``device`` once per process.
    """
    if device != "cpu":
        depth, weights = _depth_plan(tm)
        return depth.to(torch.device(device)), weights
    tops, bottoms = zip(*tm.intervals, strict=True)
    spec = tm.bundle.spec
    table = pd.DataFrame({"top_cm": tops, "bottom_cm": bottoms})
    if not spec.depth_atoms:
        return torch.from_numpy(spec.encode_depth(table)), None
    atom_depth = spec.atom_depth_features()
    w = atom_weights(np.asarray(tops, float), np.asarray(bottoms, float), spec.depth_atoms)
    if ((w > 0).sum(axis=1) == 1).all():
        return torch.from_numpy(np.ascontiguousarray(atom_depth[w.argmax(axis=1)])), None
    return torch.from_numpy(atom_depth), w


def mc_log(
    tm: TileModel,
    enc: EncodedBlock,
    rows: slice,
    *,
    masks: list[torch.Tensor],
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Pass means and log-variances of log1p(SOC), ``(passes, depths, n)`` each.

    ``rows`` selects valid pixels of ``enc`` (a batch). A bundle's regional adjustment
    (:mod:`socmap.model.adjustment`) scales every pass by its slope, adds its constant, and
    adds its forest's spread to every pass's variance, as it does for tables; a forest that
    reads the network's prediction gets its mean over the passes. ``device``
    (resolved, :func:`resolve_device`) runs the network there: the masks are the same, so
    a GPU gives the CPU's numbers to float32 tolerance.
    """
    adjustment = tm.bundle.adjustment
    if adjustment is not None and adjustment.slope == 0 and not adjustment.prior_input:
        # the forest alone: the network is not evaluated
        n = len(enc.where[rows])
        means = np.zeros((len(masks), len(tm.intervals), n), dtype=np.float32)
        logvars = np.full_like(means, -np.inf)
    else:
        means, logvars = _network_log(tm, enc, rows, masks, device)
    if adjustment is None:
        return means, logvars
    cols = [enc.index[b] for b in adjustment.bands]
    values = enc.pixels[cols][:, enc.where[rows]].T.astype(np.float64)
    # A stacked forest reads the network's mean over the passes, as a table's prior.
    prior = means.mean(axis=0, dtype=np.float64) if adjustment.prior_input else None
    add, spread = adjustment.at_intervals(values, tm.intervals, prior)
    slope = np.float32(adjustment.slope)
    means = (slope * means + add[None]).astype(np.float32)
    with np.errstate(divide="ignore"):  # a forest alone with zero spread: log(0) = -inf
        var = slope.astype(np.float64) ** 2 * np.exp(logvars.astype(np.float64)) + spread[None] ** 2
        logvars = np.log(var).astype(np.float32)
    return means, logvars


#: Memory the Monte Carlo passes of recently mapped batches may hold (:func:`run_passes`).
PASS_CACHE_BYTES = 256 * 2**20


class _PassCache:
    """Least recently used ``(means, logvars)`` of batches, within a byte budget.

    The arrays are stored read-only, so a caller cannot change what another one reads.
    """

    def __init__(self) -> None:
        self._items: OrderedDict[Hashable, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # tiles may run in threads

    def get(self, key: Hashable) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def clear(self) -> None:
        """Drop every kept batch (a new map starts: the last one's passes serve no more)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def put(self, key: Hashable, item: tuple[np.ndarray, np.ndarray]) -> None:
        size = sum(a.nbytes for a in item)
        for a in item:
            a.setflags(write=False)
        with self._lock:
            if size > PASS_CACHE_BYTES or key in self._items:
                return
            self._items[key] = item
            self._bytes += size
            while self._bytes > PASS_CACHE_BYTES:
                _, old = self._items.popitem(last=False)
                self._bytes -= sum(a.nbytes for a in old)


_PASSES = _PassCache()


def forget_passes() -> None:
    """Free the kept passes of earlier maps (:func:`run_passes`); a new map calls it first.

    Without it a long-lived process (a notebook, a benchmark) held up to
    :data:`PASS_CACHE_BYTES` of a finished map while it mapped the next.
    """
    _PASSES.clear()


def _batch_digest(enc: EncodedBlock, rows: slice) -> bytes:
    """Fingerprint of a batch's inputs: its raw pixels and their encoding."""
    h = hashlib.blake2b(digest_size=16)
    for a in (enc.pixels[:, enc.where[rows]], enc.cont[rows], enc.mask[rows], enc.cat[rows]):
        h.update(repr((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.digest()


def passes_fit(passes: int, n_intervals: int, shape: Sequence[int]) -> bool:
    """Whether a whole map's pass outputs fit in :data:`PASS_CACHE_BYTES`.

    Only then does :func:`run_passes` keep them: a larger map would evict its first tiles
    before a later product reached them, so keeping them would cost memory for nothing.
    """
    means_and_logvars = 2 * np.dtype(np.float32).itemsize
    return passes * n_intervals * math.prod(shape) * means_and_logvars <= PASS_CACHE_BYTES


def run_passes(
    tm: TileModel,
    enc: EncodedBlock,
    rows: slice,
    *,
    passes: int,
    seed: int,
    device: str = "cpu",
    keep: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mc_log` of a batch with the run's dropout masks (``passes``, ``seed``).

    A run's SOC map, stocks and stratum totals evaluate the same passes on the same
    pixels. With ``keep`` (the engine sets it when the map's passes fit, :func:`passes_fit`)
    a later product in the same process (``socmap run``, the demo, a notebook) reuses the
    passes the first computed; the key is the batch's content, the model and the masks, so
    a hit returns exactly what evaluating again would. What is kept is read-only.
    """
    if not keep:
        return mc_log(tm, enc, rows, masks=tm.masks(passes, seed, device), device=device)
    key = (tm, device, int(passes), int(seed), _batch_digest(enc, rows))
    item = _PASSES.get(key)
    if item is None:
        item = mc_log(tm, enc, rows, masks=tm.masks(passes, seed, device), device=device)
        _PASSES.put(key, item)
    return item


def _network_log(
    tm: TileModel, enc: EncodedBlock, rows: slice, masks: list[torch.Tensor], device: str
) -> tuple[np.ndarray, np.ndarray]:
    model = _network_on(tm, device)
    depth, weights = _depth_plan(tm, device)
    cont, mask, cat = enc.cont[rows], enc.mask[rows], enc.cat[rows]
    with torch.inference_mode():
        # the masks come from tm.masks(..., device): already there
        inputs = [torch.from_numpy(a).to(torch.device(device)) for a in (cont, mask, cat)]
        fused = model.fuse(*inputs)
        mean, logvar = model.map_passes(fused, depth, masks)
    means, logvars = mean.cpu().numpy(), logvar.cpu().numpy()
    if weights is None:
        return means, logvars
    # Compose each mapped interval of its atoms, pass by pass: (P, A, n) -> (P, D, n).
    w = weights.astype(np.float32)
    soc = np.einsum("da,pan->pdn", w, np.expm1(np.minimum(means, MAX_LOG)))
    var = np.einsum("da,pan->pdn", w, np.exp(logvars))
    return np.log1p(soc), np.log(var)


def _stats(tm: TileModel, means: np.ndarray, logvars: np.ndarray) -> np.ndarray:
    """``(5, depths, n)`` SOC statistics in g/kg from pass means and log-variances."""
    m = means.mean(axis=0, dtype=np.float64)
    var = means.var(axis=0, dtype=np.float64) + np.exp(logvars.astype(np.float64)).mean(axis=0)
    s = np.sqrt(var)
    q = tm.q90[:, None]
    s_cal = s * q / Z90
    out = np.empty((len(STATS), *m.shape), dtype=np.float64)
    out[0] = np.expm1(m + s_cal**2 / 2)
    out[1] = np.sqrt(np.expm1(s_cal**2)) * np.exp(m + s_cal**2 / 2)
    out[2] = np.maximum(np.expm1(m - q * s), 0.0)
    out[3] = np.maximum(np.expm1(m), 0.0)
    out[4] = np.maximum(np.expm1(m + q * s), 0.0)
    return out


def draws_from(
    tm: TileModel, means: np.ndarray, logvars: np.ndarray, seed: int, pixel_ids: np.ndarray
) -> np.ndarray:
    """Calibrated SOC realisations (g/kg), ``(passes, depths, n)``.

    Draw ``t`` is pass ``t``'s mean plus aleatoric noise, a counter-based normal of (seed,
    pixel id, pass, depth); deviations from the pixel's mean are scaled by the calibration
    factor ``q / 1.645`` of each interval. A draw holds every depth of one sampled network,
    so between-layer correlation is kept.
    """
    passes, depths, _ = means.shape
    t = np.arange(passes, dtype=np.uint64)[:, None, None]
    d = np.arange(depths, dtype=np.uint64)[None, :, None]
    ids = np.asarray(pixel_ids, dtype=np.uint64)[None, None, :]
    noise = counter_normal(seed, (ids * np.uint64(passes) + t) * np.uint64(depths) + d)
    raw = means + noise * np.exp(logvars / 2)
    centre = means.mean(axis=0, keepdims=True)
    factor = (tm.q90 / Z90)[None, :, None]
    return np.maximum(np.expm1(centre + (raw - centre) * factor), 0.0)


def predict_block(
    tm: TileModel,
    block: np.ndarray,
    band_names: Sequence[str],
    *,
    passes: int = 32,
    batch_size: int = 1024,
    seed: int = 0,
    device: str = "cpu",
    keep_passes: bool = False,
) -> dict[str, Any]:
    """Predict one tile.

    Parameters
    ----------
    tm
        The prepared bundle (:func:`load_tile_model`).
    block
        ``(bands, h, w)`` covariates, NaN for nodata.
    band_names
        Names of the block's bands (a superset of the model's, any order).
    passes
        Monte Carlo dropout passes (T).
    batch_size
        Pixels per forward batch. Activations take about ``batch_size * depths * 2 KiB``
        whatever ``passes`` is (passes run one after another), so the default keeps them in
        the CPU cache.
    seed
        Run seed (the dropout masks; the same for every tile).
    device
        Where the network runs (a resolved name, :func:`resolve_device`).
    keep_passes
        Keep the passes for later products of the run (:func:`run_passes`).

    Returns
    -------
    dict
        ``soc``: ``(5, depths, h, w)`` float32 (:data:`STATS`); ``di``: ``(h, w)`` float32
        dissimilarity index (NaN without an AOA or where nodata); ``aoa``: ``(h, w)`` float32
        1 inside, 0 outside, NaN where nodata or without an AOA; ``n_valid``, ``n_nodata``,
        ``n_with_value`` (pixels whose mean is finite at every depth), ``unknown_classes``.

    Raises
    ------
    BandMismatch
        The block lacks a band the model reads.
    """
    _, h, w = block.shape
    enc = encode_block(tm, block, band_names)
    n_depth = len(tm.intervals)
    soc = np.full((len(STATS), n_depth, h * w), np.nan, dtype=np.float32)
    where = enc.where
    for start in range(0, len(where), int(batch_size)):
        sl = slice(start, start + int(batch_size))
        means, logvars = run_passes(
            tm, enc, sl, passes=passes, seed=seed, device=device, keep=keep_passes
        )
        soc[:, :, where[sl]] = _stats(tm, means, logvars)
    di = np.full(h * w, np.nan, dtype=np.float32)
    inside = np.full(h * w, np.nan, dtype=np.float32)
    if tm.aoa is not None and where.size:
        feats = tm.aoa.feature_names_in_ or []
        cols = [enc.index[b] for b in feats]
        values = tm.aoa.predict_di(enc.pixels[cols][:, where].T.astype(np.float64))
        di[where] = values
        with np.errstate(invalid="ignore"):
            inside[where] = np.where(np.isnan(values), np.nan, values <= tm.aoa.threshold_)
    return {
        "soc": soc.reshape(len(STATS), n_depth, h, w),
        "di": di.reshape(h, w),
        "aoa": inside.reshape(h, w),
        **enc.counts(),
        "n_with_value": int(np.isfinite(soc[0]).all(axis=0).sum()),
    }

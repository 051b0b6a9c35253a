"""Training loop with early stopping, and Monte Carlo dropout prediction.

:func:`fit` trains a :class:`~socmap.model.network.SocNet` on explicit train/validation
row indices (choose them with a spatial splitter; early stopping must never see the test
fold). It is deterministic for a seed: weights, batch order and dropout masks all derive
from ``TrainConfig.seed``, and the caller's global torch RNG state is restored afterwards.
Fine-tuning strategies are built from two hooks: ``trainable`` (which parameters move) and
``l2sp_alpha`` (an L2 pull towards the starting weights).

:func:`predict` runs ``mc_passes`` dropout passes per batch, computing the deterministic
trunk once and repeating only the head.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from socmap.errors import ConfigError, ProfileValidationError
from socmap.model.depth_atoms import MAX_LOG, compose_log
from socmap.model.features import Encoded
from socmap.model.loop import regression_loss, train_loop
from socmap.model.network import SocNet, mc_dropout

__all__ = ["History", "Prediction", "TrainConfig", "fit", "predict"]

ARRAY_KEYS = ("cont", "mask", "cat", "depth", "target")

Arrays = Encoded | Mapping[str, np.ndarray]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings for :func:`fit`.

    Parameters
    ----------
    max_epochs
        Upper limit on epochs.
    batch_size
        Rows per gradient step.
    lr, weight_decay
        Adam learning rate and (L2) weight decay.
    patience
        Stop after this many consecutive epochs (at least one) without a validation-loss
        improvement above ``min_delta``; the best epoch's weights are restored.
    min_delta
        Smallest decrease of the validation loss that counts as an improvement.
    loss
        ``"gaussian_nll"`` (mean and log-variance, constant dropped), ``"beta_nll"`` (the
        same, each row weighted by its predicted variance to the power ``beta``, without
        gradient through the weight: Seitzer et al. 2022, so rows the network finds hard
        still pull the mean as under squared error) or ``"mse"`` (mean only: the
        log-variance output is then not trained; predict with ``aleatoric=False``).
    beta
        Exponent of ``"beta_nll"`` (0 is the plain NLL, 1 gives the mean MSE gradients).
    schedule
        Learning-rate schedule: ``"constant"``, or ``"cosine"`` (linear warm-up over
        ``warmup_epochs``, then cosine decay to ``lr * min_lr_ratio`` at ``max_epochs``).
    warmup_epochs, min_lr_ratio
        Shape of the cosine schedule.
    monitor
        What early stopping watches on the validation rows: ``"loss"`` (the training loss)
        or ``"mae"`` (mean absolute error of the predicted mean, log1p scale). The Gaussian
        NLL rewards shrinking variances as much as better means, so on data unlike the
        training rows it can be best at the first epoch while the mean still improves.
    ema_decay
        Above 0, train with an exponential moving average of the weights (decay per
        optimiser step) and keep the average: validation and the best epoch use it.
    seed
        Seeds batch order and dropout masks.

    Examples
    --------
    >>> TrainConfig.from_dict(TrainConfig(max_epochs=5).to_dict()).max_epochs
    5
    """

    max_epochs: int = 200
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 20
    min_delta: float = 0.0
    loss: Literal["gaussian_nll", "beta_nll", "mse"] = "gaussian_nll"
    beta: float = 0.5
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_epochs: int = 0
    min_lr_ratio: float = 0.01
    monitor: Literal["loss", "mae"] = "loss"
    ema_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        ints = {"max_epochs": self.max_epochs, "batch_size": self.batch_size}
        bad: dict[str, Any] = {k: v for k, v in ints.items() if int(v) < 1}
        if self.patience < 0:
            bad["patience"] = self.patience
        if not (self.lr > 0 and math.isfinite(self.lr)):
            bad["lr"] = self.lr
        if self.weight_decay < 0:
            bad["weight_decay"] = self.weight_decay
        if self.min_delta < 0:
            bad["min_delta"] = self.min_delta
        if bad:
            raise ConfigError(
                f"invalid training settings {bad!r}; epochs, batch size and lr must be positive, "
                "patience, weight decay and min_delta non-negative"
            )
        if self.loss not in ("gaussian_nll", "beta_nll", "mse"):
            raise ConfigError(
                f"loss {self.loss!r} is not supported; use 'gaussian_nll', 'beta_nll' or 'mse'"
            )
        if not 0 <= self.beta <= 1:
            raise ConfigError(f"beta {self.beta!r} must be in [0, 1]")
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(
                f"schedule {self.schedule!r} is not supported; use 'constant' or 'cosine'"
            )
        if self.monitor not in ("loss", "mae"):
            raise ConfigError(f"monitor {self.monitor!r} is not supported; use 'loss' or 'mae'")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay {self.ema_decay!r} must be in [0, 1) (0: no average)")
        if self.warmup_epochs < 0 or not 0 < self.min_lr_ratio <= 1:
            raise ConfigError(
                f"warmup_epochs {self.warmup_epochs!r} must be >= 0 and min_lr_ratio "
                f"{self.min_lr_ratio!r} in (0, 1]"
            )

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of ``lr`` during zero-based ``epoch``.

        Examples
        --------
        >>> cfg = TrainConfig(max_epochs=10, schedule="cosine", warmup_epochs=2)
        >>> [round(cfg.lr_factor(e), 2) for e in (0, 1, 2, 9)]
        [0.5, 1.0, 1.0, 0.05]
        """
        if self.schedule == "constant":
            return 1.0
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        span = max(self.max_epochs - self.warmup_epochs, 1)
        progress = (epoch - self.warmup_epochs) / span
        floor = self.min_lr_ratio
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        keys = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - keys)
        if unknown:
            raise ConfigError(
                f"training config has unknown keys {unknown!r}; allowed: {sorted(keys)!r}"
            )
        return cls(**dict(data))


@dataclass
class History:
    """What happened during :func:`fit`.

    Attributes
    ----------
    train_loss, val_loss
        Mean loss per epoch (training loss without the L2-SP term; the validation loss is
        NaN when there are no validation rows).
    best_epoch
        Zero-based epoch whose weights the model holds after fitting.
    best_val_loss
        Validation loss at ``best_epoch`` (NaN without validation rows).
    stopped_early
        Whether patience ran out before ``max_epochs``.
    n_train, n_val, n_trainable
        Rows used, and trainable parameters.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.nan
    stopped_early: bool = False
    n_train: int = 0
    n_val: int = 0
    n_trainable: int = 0
    config: TrainConfig = field(default_factory=TrainConfig)
    l2sp_alpha: float = 0.0

    @property
    def epochs_run(self) -> int:
        """Number of epochs trained."""
        return len(self.train_loss)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (NaN becomes None) for a bundle's metadata."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "train_loss": [clean(v) for v in self.train_loss],
            "val_loss": [clean(v) for v in self.val_loss],
            "best_epoch": self.best_epoch,
            "best_val_loss": clean(self.best_val_loss),
            "stopped_early": self.stopped_early,
            "epochs_run": self.epochs_run,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_trainable": self.n_trainable,
            "config": self.config.to_dict(),
            "l2sp_alpha": self.l2sp_alpha,
        }


def _tensors(data: Arrays) -> dict[str, Tensor]:
    if isinstance(data, Encoded):
        arrays = {k: getattr(data, k) for k in ARRAY_KEYS}
        atoms = {"atom_weight": data.atom_weight, "atom_depth": data.atom_depth}
    else:
        absent = [k for k in ARRAY_KEYS if k not in data and k != "target"]
        if absent:
            raise ConfigError(
                f"input arrays lack {absent!r}; pass an Encoded or a mapping with {ARRAY_KEYS!r}"
            )
        arrays = dict(data)
        if "target" not in arrays:
            arrays["target"] = np.full(len(arrays["cont"]), np.nan, dtype=np.float32)
        atoms = {k: data.get(k) for k in ("atom_weight", "atom_depth")}
    out = {
        k: torch.from_numpy(np.ascontiguousarray(arrays[k], dtype=np.float32))
        for k in ("cont", "mask", "depth", "target")
    }
    out["cat"] = torch.from_numpy(np.ascontiguousarray(arrays["cat"], dtype=np.int64))
    n = {k: int(v.shape[0]) for k, v in out.items()}
    if len(set(n.values())) != 1:
        raise ConfigError(f"input arrays have different row counts {n!r}; encode one table")
    weight, depth = atoms["atom_weight"], atoms["atom_depth"]
    if weight is not None and depth is not None:
        w = np.asarray(weight, dtype=np.float32)
        composed = (w > 0).sum(axis=1) > 1
        if composed.any():  # rows inside one atom are already encoded at its depth
            out["atom_weight"] = torch.from_numpy(np.ascontiguousarray(w))
            out["atom_depth"] = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
            out["composed"] = torch.from_numpy(composed)
    return out


def _check_index(idx: Any, n: int, what: str, tensors: Mapping[str, Tensor]) -> np.ndarray:
    arr = np.asarray([] if idx is None else idx)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ConfigError(f"{what} mask has shape {arr.shape!r}; need ({n},)")
        arr = np.flatnonzero(arr)
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= n):
        raise ConfigError(
            f"{what} must be integer row indices in [0, {n}); got dtype {arr.dtype!s}, "
            f"range {(arr.min(), arr.max())!r}"
        )
    arr = arr.astype(np.int64)
    y = tensors["target"].numpy()[arr]
    bad = ~np.isfinite(y)
    if bad.any():
        raise ProfileValidationError(
            f"{int(bad.sum())} {what} rows have no finite target (first row {int(arr[bad][0])}); "
            "select rows with SOC for training and validation"
        )
    return arr


def _batches(idx: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(idx), size):
        yield idx[start : start + size]


def _inputs(t: Mapping[str, Tensor], b: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    i = torch.from_numpy(b)
    return t["cont"][i], t["mask"][i], t["cat"][i], t["depth"][i]


def _atom_trunk(model: SocNet, t: Mapping[str, Tensor], j: Tensor) -> tuple[Tensor, int]:
    """Trunk output of rows ``j`` at every depth atom, and the number of atoms.

    Row ``r`` of ``j`` fills rows ``r * n_atoms`` to ``(r + 1) * n_atoms - 1``: the covariates
    are fused once per row, then conditioned on each atom's depth. Training and prediction
    compose an interval spanning several atoms from these same rows.
    """
    depth = t["atom_depth"]
    n_atoms = int(depth.shape[0])
    fused = model.fuse(t["cont"][j], t["mask"][j], t["cat"][j])
    return model.condition(fused.repeat_interleave(n_atoms, 0), depth.repeat(len(j), 1)), n_atoms


def _forward(model: SocNet, t: Mapping[str, Tensor], b: np.ndarray) -> tuple[Tensor, Tensor]:
    """Mean and log-variance of rows ``b``; intervals spanning atoms are composed of them."""
    mean, logvar = model(*_inputs(t, b))
    if "composed" not in t:
        return mean, logvar
    i = torch.from_numpy(b)
    multi = t["composed"][i]
    if not bool(multi.any()):
        return mean, logvar
    j = i[multi]
    h, n_atoms = _atom_trunk(model, t, j)
    m, lv = model.head(h)
    w = t["atom_weight"][j]
    soc = torch.expm1(m.view(len(j), n_atoms).clamp(max=MAX_LOG))
    composed_mean = torch.log1p((w * soc).sum(dim=1))
    composed_logvar = torch.log((w * lv.view(len(j), n_atoms).exp()).sum(dim=1))
    mean = mean.masked_scatter(multi, composed_mean)
    logvar = logvar.masked_scatter(multi, composed_logvar)
    return mean, logvar


def _evaluate(
    model: SocNet,
    t: Mapping[str, Tensor],
    idx: np.ndarray,
    kind: str,
    w: Tensor | None,
    beta: float = 0.5,
) -> float:
    """Weighted mean loss over ``idx`` (weights ``w`` per row, or equal)."""
    if idx.size == 0:
        return math.nan
    total = 0.0
    weight = 0.0
    with torch.no_grad():
        for b in _batches(idx, 8192):
            i = torch.from_numpy(b)
            mean, logvar = _forward(model, t, b)
            wb = None if w is None else w[i]
            share = float(len(b)) if wb is None else float(wb.sum())
            total += float(regression_loss(mean, logvar, t["target"][i], kind, wb, beta)) * share
            weight += share
    return total / weight


def fit(
    model: SocNet,
    data: Arrays,
    train_idx: Any,
    val_idx: Any,
    config: TrainConfig | None = None,
    *,
    trainable: Callable[[str], bool] | None = None,
    l2sp_alpha: float = 0.0,
    sample_weight: np.ndarray | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` in place with Adam and early stopping on the validation loss.

    Parameters
    ----------
    model
        The network; it ends in eval mode holding the best epoch's weights.
    data
        An :class:`~socmap.model.features.Encoded`, or a mapping with ``cont``, ``mask``,
        ``cat``, ``depth`` and ``target`` arrays.
    train_idx, val_idx
        Row indices (or boolean masks) for training and for early stopping; they must be
        disjoint and every row must have a finite target. An empty ``val_idx`` trains for
        ``max_epochs`` and keeps the last weights.
    config
        Optimisation settings (default :class:`TrainConfig`).
    trainable
        ``name -> bool`` over ``model.named_parameters()``; parameters for which it returns
        False are frozen (e.g. ``lambda n: n.startswith("head")``). Default: all train.
    l2sp_alpha
        Weight of the L2-SP penalty ``alpha * sum ||w - w0||^2`` over the trainable
        parameters, ``w0`` being their values when ``fit`` starts.
    sample_weight
        Non-negative weight per row of ``data`` (e.g. to rebalance sources or climates);
        the training and validation losses are weighted means. Default: equal weights.
    progress
        Show a progress bar over epochs.

    Returns
    -------
    History

    Raises
    ------
    ConfigError
        On bad indices, overlapping train/validation rows, or nothing to train.
    ProfileValidationError
        If a selected row has no finite target.
    """
    cfg = config or TrainConfig()
    if not (l2sp_alpha >= 0 and math.isfinite(l2sp_alpha)):
        raise ConfigError(f"l2sp_alpha must be a finite number >= 0; got {l2sp_alpha!r}")
    t = _tensors(data)
    n = int(t["cont"].shape[0])
    tr = _check_index(train_idx, n, "train_idx", t)
    va = _check_index(val_idx, n, "val_idx", t)
    if tr.size == 0:
        raise ConfigError("train_idx is empty; pass the rows to train on")
    overlap = np.intersect1d(tr, va)
    if overlap.size:
        raise ConfigError(
            f"{overlap.size} rows are in both train_idx and val_idx (first {int(overlap[0])}); "
            "early stopping must use held-out rows"
        )
    weights = _check_weights(sample_weight, n)
    named = list(model.named_parameters())
    chosen = [(name, p) for name, p in named if trainable is None or trainable(name)]
    if not chosen:
        raise ConfigError("trainable() selected no parameters; nothing would be trained")
    history = History(
        n_train=int(tr.size),
        n_val=int(va.size),
        n_trainable=sum(p.numel() for _, p in chosen),
        config=cfg,
        l2sp_alpha=float(l2sp_alpha),
    )
    params = [p for _, p in chosen]
    # L2-SP: the gradient of alpha * ||w - w0||^2, added to each step without autograd.
    anchor = [p.detach().clone() for p in params] if l2sp_alpha > 0 else []

    def l2sp() -> None:
        for p, a in zip(params, anchor, strict=True):
            if p.grad is not None:
                p.grad.add_(p.detach() - a, alpha=2.0 * l2sp_alpha)

    rng = np.random.default_rng(cfg.seed)

    def epoch() -> Iterator[tuple[Tensor, int]]:
        for b in _batches(tr[rng.permutation(tr.size)], cfg.batch_size):
            i = torch.from_numpy(b)
            mean, logvar = _forward(model, t, b)
            wb = None if weights is None else weights[i]
            yield regression_loss(mean, logvar, t["target"][i], cfg.loss, wb, cfg.beta), len(b)

    monitor = cfg.loss if cfg.monitor == "loss" else "mae"
    result = train_loop(
        model, params, epoch, lr=cfg.lr, weight_decay=cfg.weight_decay,
        max_epochs=cfg.max_epochs, seed=cfg.seed,
        validate=lambda: _evaluate(model, t, va, monitor, weights), stop_early=bool(va.size),
        patience=cfg.patience, min_delta=cfg.min_delta, lr_factor=cfg.lr_factor,
        after_backward=l2sp if anchor else None, ema_decay=cfg.ema_decay, foreach=True,
        label="training",
        progress=progress,
    )  # fmt: skip
    history.train_loss, history.val_loss = result.train_loss, result.val_loss
    history.best_epoch, history.stopped_early = result.best_epoch, result.stopped_early
    if math.isfinite(result.best_val_loss):
        history.best_val_loss = result.best_val_loss
    return history


def _check_weights(sample_weight: np.ndarray | None, n: int) -> Tensor | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(
            f"sample_weight must be {n} finite non-negative numbers with a positive sum; got "
            f"shape {w.shape!r}, min {float(np.nanmin(w)) if w.size else None!r}"
        )
    return torch.from_numpy(w.astype(np.float32))


@dataclass(frozen=True, eq=False)
class Prediction:
    """Monte Carlo dropout prediction, in log1p(SOC g/kg) space and back-transformed.

    Attributes
    ----------
    mean
        Mean over passes of the predicted log1p SOC.
    sd
        Total SD: ``sqrt(sd_epistemic**2 + sd_aleatoric**2)``.
    sd_epistemic
        SD of the pass means (population SD over passes; 0 for one pass).
    sd_aleatoric
        ``sqrt`` of the mean over passes of ``exp(logvar)`` (0 when not requested).
    median_g_kg
        ``expm1(mean)``: the median SOC in g/kg if log1p SOC is symmetric.
    mc_passes
        Number of passes.
    """

    mean: np.ndarray
    sd: np.ndarray
    sd_epistemic: np.ndarray
    sd_aleatoric: np.ndarray
    median_g_kg: np.ndarray
    mc_passes: int

    def quantile_g_kg(self, q: float) -> np.ndarray:
        """SOC quantile in g/kg assuming log1p SOC ~ Normal(mean, sd) (before calibration).

        Examples
        --------
        >>> z = np.zeros(1)
        >>> p = Prediction(z, z + 1, z, z + 1, np.expm1(z), 1)
        >>> bool(np.isclose(p.quantile_g_kg(0.5)[0], 0.0))
        True
        """
        if not 0 < q < 1:
            raise ConfigError(f"quantile q must be in (0, 1); got {q!r}")
        z = NormalDist().inv_cdf(q)
        return np.asarray(np.expm1(self.mean + z * self.sd))


def _pass_means(
    model: SocNet, t: Mapping[str, Tensor], b: np.ndarray, passes: int, aleatoric: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(passes, B)`` pass means and ``(B,)`` mean aleatoric variances of rows ``b``.

    The trunk runs once and the head ``passes`` times. Rows whose interval spans several
    depth atoms are composed of their atoms pass by pass (in g/kg, then back to log1p).
    """
    h = model.trunk(*_inputs(t, b))
    means = np.empty((passes, len(b)))
    alea = np.zeros(len(b))
    for p in range(passes):
        m, lv = model.head(h)
        means[p] = m.numpy()
        if aleatoric:
            alea += np.exp(lv.numpy().astype(np.float64))
    alea /= passes
    if "composed" not in t:
        return means, alea
    multi = t["composed"].numpy()[b]
    if not multi.any():
        return means, alea
    j = torch.from_numpy(b[multi])
    h_atoms, n_atoms = _atom_trunk(model, t, j)
    w = t["atom_weight"][j].numpy().astype(np.float64)
    atom_var = np.zeros((len(j), n_atoms))
    for p in range(passes):
        m, lv = model.head(h_atoms)
        atom_mean = m.numpy().astype(np.float64).reshape(len(j), n_atoms)
        means[p, multi], _ = compose_log(atom_mean, atom_var, w)
        if aleatoric:
            atom_var += np.exp(lv.numpy().astype(np.float64)).reshape(len(j), n_atoms)
    alea[multi] = compose_log(np.zeros_like(atom_var), atom_var / passes, w)[1]
    return means, alea


def predict(
    model: SocNet,
    encoded: Arrays,
    mc_passes: int = 32,
    seed: int = 0,
    batch_size: int = 4096,
    *,
    dropout: bool = True,
    aleatoric: bool = True,
) -> Prediction:
    """Predict with Monte Carlo dropout, computing the trunk once per batch.

    Parameters
    ----------
    model
        The network (its train/eval flags are restored afterwards).
    encoded
        Inputs, as for :func:`fit` (``target`` is ignored).
    mc_passes
        Dropout passes (T). Epistemic variance is the variance of the T pass means.
    seed
        Seeds the dropout masks (the global torch RNG state is restored afterwards).
    batch_size
        Rows per trunk evaluation; masks depend on it, so keep it fixed for reproducibility.
    dropout
        False runs the head in eval mode (every pass then gives the same answer).
    aleatoric
        Add the mean predicted variance ``exp(logvar)``; set False for an ``"mse"`` model.

    Returns
    -------
    Prediction
    """
    if int(mc_passes) < 1 or int(batch_size) < 1:
        raise ConfigError(
            f"mc_passes and batch_size must be >= 1; got {mc_passes!r}, {batch_size!r}"
        )
    t = _tensors(encoded)
    n = int(t["cont"].shape[0])
    mean = np.empty(n)
    var_e = np.empty(n)
    var_a = np.zeros(n)
    saved = {m: m.training for m in model.modules()}
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)
            model.eval()
            with mc_dropout(model) if dropout else contextlib.nullcontext():
                for b in _batches(np.arange(n), int(batch_size)):
                    means, alea = _pass_means(model, t, b, int(mc_passes), aleatoric)
                    mean[b] = means.mean(axis=0)
                    var_e[b] = means.var(axis=0)
                    var_a[b] = alea
    finally:
        for mod, flag in saved.items():
            mod.train(flag)
    sd_e, sd_a = np.sqrt(var_e), np.sqrt(var_a)
    return Prediction(
        mean=mean,
        sd=np.sqrt(var_e + var_a),
        sd_epistemic=sd_e,
        sd_aleatoric=sd_a,
        median_g_kg=np.expm1(mean),
        mc_passes=int(mc_passes),
    )

"""The one training loop of socmap's networks: the map network and the spectral CNN.

Both train a mean and a log-variance with Adam, on mini-batches in a seeded order, with
early stopping on a held-out loss and the best epoch's weights restored. What differs is
how a batch becomes a loss, which is the caller's ``epoch`` function, and a few options
(learning-rate schedule, a gradient hook such as L2-SP, ``min_delta``).

Determinism: the loop forks torch's global RNG, seeds it with ``seed`` and turns on
deterministic algorithms for its duration, so the same seed gives the same weights and
the caller's RNG state is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from socmap._progress import track
from socmap.errors import ConfigError

__all__ = ["LOSSES", "LoopResult", "regression_loss", "train_loop"]

#: Losses :func:`regression_loss` computes.
LOSSES = ("nll", "beta_nll", "mse", "mae")


def regression_loss(
    mean: Tensor,
    logvar: Tensor,
    y: Tensor,
    kind: str = "nll",
    w: Tensor | None = None,
    beta: float = 0.5,
) -> Tensor:
    """Mean loss of predictions ``(mean, logvar)`` against ``y`` (weighted by ``w``).

    ``nll`` is the Gaussian negative log-likelihood without its constant ``0.5 log 2 pi``;
    ``beta_nll`` weighs it per row by ``exp(beta * logvar)`` (Seitzer et al. 2022); ``mse``
    and ``mae`` ignore the variance.
    """
    if kind == "mae":
        per_row = (y - mean).abs()
    elif kind == "mse":
        per_row = (y - mean) ** 2
    else:
        per_row = 0.5 * (logvar + (y - mean) ** 2 * torch.exp(-logvar))
        if kind == "beta_nll":
            per_row = per_row * torch.exp(beta * logvar.detach())
    if w is None:
        return per_row.mean()
    return (per_row * w).sum() / w.sum()


@dataclass
class LoopResult:
    """Losses per epoch and how training ended."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    stopped_early: bool = False
    epochs_run: int = 0


def train_loop(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    epoch: Callable[[], Iterable[tuple[Tensor, int]]],
    *,
    lr: float,
    weight_decay: float,
    max_epochs: int,
    seed: int,
    validate: Callable[[], float] | None = None,
    stop_early: bool = True,
    patience: int = 20,
    min_delta: float = 0.0,
    lr_factor: Callable[[int], float] | None = None,
    after_backward: Callable[[], None] | None = None,
    ema_decay: float = 0.0,
    foreach: bool | None = None,
    label: str = "training",
    progress: bool = False,
) -> LoopResult:
    """Train ``params`` of ``model`` in place; the rest of ``model`` stays frozen.

    Parameters
    ----------
    model
        The network; it ends in eval mode, with the best epoch's weights when it validated.
    params
        The parameters to train (Adam); every other parameter is frozen while the loop
        runs, and each parameter's ``requires_grad`` is restored afterwards.
    epoch
        Called once per epoch, in train mode: yields ``(loss, rows)`` per mini-batch, in
        the epoch's (seeded) order. The loop steps the optimiser after each batch, so the
        next batch sees the updated weights.
    lr, weight_decay, foreach
        Adam's settings.
    max_epochs, seed
        Epoch limit, and the seed of torch's RNG (batch order, dropout) for the loop.
    validate
        Held-out loss, called after each epoch in eval mode; ``None`` validates nothing.
    stop_early
        Stop after ``patience`` epochs without a validation loss below the best minus
        ``min_delta``, and restore the best epoch's weights. Without it (or without
        ``validate``) the loop runs ``max_epochs`` and keeps the last weights.
    lr_factor
        Learning rate of epoch ``e`` is ``lr * lr_factor(e)`` (a schedule); default ``lr``.
    after_backward
        Called between ``backward`` and the optimiser step (e.g. to add an L2-SP gradient).
    ema_decay
        Above 0, keep an exponential moving average of the trained parameters (Polyak
        averaging, decay per optimiser step); validation, the best epoch and the returned
        weights are those of the average (for the global network it lowered MAE and CCC
        on held-out regions: docs/benchmarks/global_regions.md).
    label, progress
        Progress bar over epochs.
    """
    named = list(model.named_parameters())
    saved_flags = {name: p.requires_grad for name, p in named}
    chosen = {id(p) for p in params}
    for _, p in named:
        p.requires_grad_(id(p) in chosen)
    if not 0.0 <= ema_decay < 1.0:
        raise ConfigError(f"ema_decay {ema_decay!r} must be in [0, 1) (0: no average)")
    optimiser = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=foreach)
    average = _Average(params, ema_decay) if ema_decay > 0 else None
    result = LoopResult()
    checking = validate is not None and stop_early
    best_state = copy.deepcopy(model.state_dict()) if checking else None
    stale = 0
    epochs: Iterator[int] = iter(range(max_epochs))
    if progress:
        epochs = iter(track(range(max_epochs), label))
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for e in epochs:
                if lr_factor is not None:
                    for group in optimiser.param_groups:
                        group["lr"] = lr * lr_factor(e)
                model.train()
                total, rows = 0.0, 0
                for loss, n in epoch():
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    if after_backward is not None:
                        after_backward()
                    optimiser.step()
                    if average is not None:
                        average.update()
                    total += float(loss.detach()) * n
                    rows += n
                result.train_loss.append(total / max(rows, 1))
                result.epochs_run = e + 1
                if validate is None:
                    result.best_epoch = e
                    continue
                model.eval()
                with average.applied() if average is not None else contextlib.nullcontext():
                    val = validate()
                    if checking and val < result.best_val_loss - min_delta:
                        best_state = copy.deepcopy(model.state_dict())
                result.val_loss.append(val)
                if not checking:
                    result.best_epoch = e
                    continue
                if val < result.best_val_loss - min_delta:
                    result.best_val_loss, stale = val, 0
                    result.best_epoch = e
                else:
                    stale += 1
                    if stale >= max(patience, 1):
                        result.stopped_early = True
                        break
        if best_state is not None:
            model.load_state_dict(best_state)
        elif average is not None:
            average.copy_to_params()
    finally:
        if hasattr(epochs, "close"):
            epochs.close()
        torch.use_deterministic_algorithms(was_deterministic)
        for name, p in named:
            p.requires_grad_(saved_flags[name])
        model.eval()
    return result


class _Average:
    """Exponential moving average of parameters, swapped in for validation."""

    def __init__(self, params: Sequence[nn.Parameter], decay: float) -> None:
        self.params = list(params)
        self.decay = decay
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        for s, p in zip(self.shadow, self.params, strict=True):
            s.lerp_(p.detach(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for s, p in zip(self.shadow, self.params, strict=True):
            p.copy_(s)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Put the averaged weights in the model; restore the trained ones afterwards."""
        saved = [p.detach().clone() for p in self.params]
        self.copy_to_params()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, saved, strict=True):
                    p.copy_(v)

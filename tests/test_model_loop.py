"""The shared training loop: it learns, stops early on the held-out loss, restores the best
weights, trains only what it is given, and leaves the caller's RNG and flags as they were."""

from __future__ import annotations

import torch
from torch import nn

from socmap.model.loop import regression_loss, train_loop


class Line(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(1))
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a * x + self.b, torch.zeros_like(x)


X = torch.linspace(-1, 1, 64)
Y = 2.0 * X + 0.5


def _epoch(model: Line):
    def epoch():
        for b in torch.randperm(64).split(16):
            mean, logvar = model(X[b])
            yield regression_loss(mean, logvar, Y[b], "mse"), len(b)

    return epoch


def test_the_loop_learns_a_line_and_is_deterministic() -> None:
    fits = []
    for _ in range(2):
        model = Line()
        result = train_loop(
            model, list(model.parameters()), _epoch(model), lr=0.05, weight_decay=0.0,
            max_epochs=300, seed=3,
        )  # fmt: skip
        fits.append((model.a.item(), model.b.item()))
        assert result.epochs_run == 300 and result.best_epoch == 299 and not result.val_loss
    assert abs(fits[0][0] - 2.0) < 1e-3 and abs(fits[0][1] - 0.5) < 1e-3
    assert fits[0] == fits[1]


def test_early_stopping_restores_the_best_epoch_weights() -> None:
    model = Line()
    losses = iter([3.0, 2.0, 1.0, 1.5, 1.2, 1.1, 0.9])
    seen: list[float] = []

    def validate() -> float:
        seen.append(model.a.item())  # the weights this epoch ended with
        return next(losses)

    result = train_loop(
        model, list(model.parameters()), _epoch(model), lr=0.05, weight_decay=0.0,
        max_epochs=50, seed=0, validate=validate, patience=3,
    )  # fmt: skip
    assert result.stopped_early and result.epochs_run == 6
    assert result.best_epoch == 2 and result.best_val_loss == 1.0
    assert result.val_loss == [3.0, 2.0, 1.0, 1.5, 1.2, 1.1]
    assert model.a.item() == seen[2] != seen[-1]


def test_only_the_given_parameters_train_and_flags_and_rng_are_restored() -> None:
    model = Line()
    model.b.requires_grad_(False)  # a caller's own setting survives the loop
    torch.manual_seed(11)
    before = torch.rand(3)
    torch.manual_seed(11)
    train_loop(
        model, [model.a], _epoch(model), lr=0.05, weight_decay=0.0, max_epochs=20, seed=5,
    )  # fmt: skip
    assert model.b.item() == 0.0 and model.a.item() != 0.0
    assert model.a.requires_grad and not model.b.requires_grad
    assert torch.equal(torch.rand(3), before)  # the loop forked torch's RNG
    assert not model.training


def test_weight_averaging_returns_the_moving_average_of_the_iterates() -> None:
    # The same seed gives the same trajectory, so the plain run's iterates (recorded at
    # each batch) let the average be recomputed by hand.
    iterates: list[torch.Tensor] = []
    plain = Line()

    def recording():
        for loss, n in _epoch(plain)():
            yield loss, n
            iterates.append(torch.cat([plain.a.detach(), plain.b.detach()]).clone())

    train_loop(plain, list(plain.parameters()), recording, lr=0.05, weight_decay=0.0,
               max_epochs=3, seed=5)  # fmt: skip
    averaged = Line()
    train_loop(averaged, list(averaged.parameters()), _epoch(averaged), lr=0.05,
               weight_decay=0.0, max_epochs=3, seed=5, ema_decay=0.9)  # fmt: skip
    expected = torch.zeros(2)  # the starting weights
    for w in iterates:
        expected = 0.9 * expected + 0.1 * w
    got = torch.cat([averaged.a.detach(), averaged.b.detach()])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, iterates[-1])  # the average, not the last iterate


def test_weight_averaging_validates_the_average_and_keeps_the_best() -> None:
    model = Line()
    seen: list[float] = []

    def validate() -> float:
        seen.append(model.a.item())
        return [1.0, 0.5, 0.7, 0.9][len(seen) - 1]

    result = train_loop(
        model, list(model.parameters()), _epoch(model), lr=0.05, weight_decay=0.0,
        max_epochs=4, seed=0, validate=validate, patience=5, ema_decay=0.95,
    )  # fmt: skip
    assert result.best_epoch == 1
    assert model.a.item() == seen[1]  # the averaged weights validated at the best epoch

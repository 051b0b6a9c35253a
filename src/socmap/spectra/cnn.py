"""A configurable 1D-CNN for soil spectra, with MC dropout, transfer and conformal calibration.

Shen et al. (2022) train a 1D convolutional network on a large spectral library and transfer
it to a site with a few dozen local samples. DTL-R freezes the front (convolutional) layers of
the library network and retrains the rest on the local samples; DTL-I only starts from the
library weights. :class:`SpectralCNNRegressor` does all three, with ``init=`` and
``freeze_front=`` among its parameters (scikit-learn style: ``fit(X, y)`` takes data only).

Layout (defaults of :class:`CNNConfig`)::

    x (B, n_bands), standardised per band
    front:  [Conv1d(k=7, 'same') -> ReLU -> AvgPool(2)]  x 3  (8, 16, 32 channels)
    flatten (channels x remaining bands: the position of an absorption feature matters)
    dense:  [Linear -> ReLU -> Dropout(0.2)]  x 2  (64, 32 units)
    out:    Linear(32, 2) -> mean, log-variance of z = (log1p(SOC g/kg) - mu) / sd

There is no batch normalisation: its running statistics would change the network in MC-dropout
passes and move under frozen layers when fine-tuning.

**Training** minimises the Gaussian negative log-likelihood of ``z`` with Adam on mini-batches,
stopping early on a seeded validation share of the *training* rows and restoring the best
epoch's weights. It is deterministic for a seed and leaves the global torch RNG untouched.

**Prediction** runs ``mc_passes`` passes with only the dropout layers active (Gal &
Ghahramani 2016). The convolutions and the first dense layer precede the first dropout, so they
are computed once; only the rest is repeated. The predictive variance is the variance of the
pass means (epistemic) plus the mean of ``exp(logvar)`` (aleatoric). ``predict`` returns
``expm1`` of the mean of ``log1p(SOC)``: the median SOC if the predictive distribution is
symmetric in ``log1p`` space (not the mean, which would be larger).

**Intervals** are ``mean ± z sd`` in ``log1p`` space, or conformally calibrated
(:class:`~socmap.validate.calibrate.ConformalCalibrator`) on out-of-fold predictions when fitted
with ``calibration_folds``; ``expm1`` is monotone, so the back-transformed interval keeps the
coverage. The lower bound is clipped at 0 g/kg.

References
----------
Shen, Z., Ramirez-Lopez, L., Behrens, T., Cui, L., Zhang, M., Walden, L., Wetterlind, J.,
Shi, Z., Sudduth, K.A., Baumann, P., Song, Y., Catambay, K., Viscarra Rossel, R.A. (2022)
Deep transfer learning of global spectra for local soil carbon monitoring. ISPRS J.
Photogramm. Remote Sens. 188:190-200.
Gal, Y., Ghahramani, Z. (2016) Dropout as a Bayesian approximation. ICML 2016.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal, Self, cast

import numpy as np
import numpy.typing as npt
import torch
from safetensors.torch import load_file
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import KFold
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from socmap._config_io import config_from_dict, config_to_dict
from socmap._records import file_sha256
from socmap.errors import (
    BandMismatch,
    BundleError,
    ConfigError,
    InputNotFound,
    ProfileValidationError,
)
from socmap.model.bundle import cpu_weights, write_weights_dir
from socmap.model.loop import regression_loss, train_loop
from socmap.model.network import mc_dropout
from socmap.validate.calibrate import ConformalCalibrator, nearest_share

__all__ = ["CNNConfig", "SpectralCNN", "SpectralCNNRegressor"]

CONFIG_FORMAT = "socmap-spectral-cnn-config/1"
MODEL_FORMAT = "socmap-spectral-cnn/1"
WEIGHTS = "weights.safetensors"
MODEL_JSON = "model.json"

#: Clamp of the predicted log-variance of z (z has unit variance in the training data).
LOGVAR_RANGE = (-10.0, 4.0)
#: Rows per trunk evaluation in prediction (masks depend on it, so it is fixed).
PREDICT_CHUNK = 2048

#: Fields of :class:`CNNConfig` that define the architecture (the rest is training).
ARCHITECTURE_FIELDS = ("conv_channels", "kernel_size", "pool", "pool_type", "dense", "dropout")


def _calibration_rows(rows: npt.ArrayLike | None, n: int, folds: int) -> np.ndarray:
    """Return the calibration rows' indices from a mask or indices, enough for the folds."""
    if rows is None:
        return np.arange(n)
    r = np.asarray(rows)
    if r.dtype == bool:
        if r.shape != (n,):
            raise ConfigError(
                f"calibration_rows as a mask needs {n!r} values (one per row), got "
                f"{r.shape!r}; pass a boolean mask or row indices"
            )
        r = np.flatnonzero(r)
    if r.size and not np.issubdtype(r.dtype, np.integer):
        raise ConfigError(
            f"calibration_rows must be a boolean mask or integer row indices, got dtype "
            f"{r.dtype!s}; pass e.g. np.arange(n) >= n_library"
        )
    r = np.unique(r.astype(np.int64, copy=False).ravel())
    if r.size and (r[0] < 0 or r[-1] >= n):
        raise ConfigError(
            f"calibration_rows holds row {int(r[0] if r[0] < 0 else r[-1])!r} outside "
            f"[0, {n - 1}]; pass indices of X's rows"
        )
    if r.size < folds:
        raise ConfigError(
            f"calibration_rows selects {r.size!r} rows, fewer than calibration_folds="
            f"{folds!r}; select more rows or use fewer folds"
        )
    return r


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


@dataclass(frozen=True)
class CNNConfig:
    """Architecture and training settings of :class:`SpectralCNNRegressor`.

    With the defaults, pretraining on 730 spectra takes about 6 s at 140 bands and 13-17 s at
    400 bands, and fine-tuning on 30 samples about 1 s (one or two CPU threads). Fits are
    bit-reproducible for a seed at a fixed ``torch.get_num_threads()``.

    Parameters
    ----------
    conv_channels
        Output channels of each convolution block (``Conv1d -> ReLU -> pool``); at least one.
    kernel_size
        Convolution kernel width in bands ('same' padding).
    pool
        Pooling width (and stride) after each convolution; 1 disables pooling.
    pool_type
        ``"avg"`` or ``"max"`` pooling.
    dense
        Widths of the dense blocks (``Linear -> ReLU -> Dropout``); at least one.
    dropout
        Dropout rate of the dense blocks, in [0, 1); MC dropout samples these masks.
    max_epochs
        Upper limit on training epochs.
    batch_size
        Mini-batch size.
    lr
        Adam learning rate.
    weight_decay
        Adam (L2) weight decay.
    patience
        Epochs without a better validation loss before stopping.
    val_fraction
        Share of the training rows held out for early stopping, in [0, 0.5]; 0 trains
        ``max_epochs`` and keeps the last weights.
    min_val_rows
        Smallest validation set worth early stopping on: when ``val_fraction`` of the rows is
        fewer rows than this, ``fit`` trains ``max_epochs`` on all rows and keeps the last
        weights. The loss on a handful of rows is noise: on 6 rows it often peaks after the
        first epochs and early stopping then returns a barely trained network.
    seed
        Seeds the initial weights, the validation split, the batch order and the dropout
        masks, in training and in prediction.

    Examples
    --------
    >>> cfg = CNNConfig(conv_channels=(8, 16), dense=(32,), lr=3e-4)
    >>> CNNConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> CNNConfig(dropout=1.0)
    Traceback (most recent call last):
    ...
    socmap.errors.ConfigError: dropout must be a number in [0, 1), got 1.0; use e.g. 0.2
    """

    conv_channels: tuple[int, ...] = (8, 16, 32)
    kernel_size: int = 7
    pool: int = 2
    pool_type: Literal["avg", "max"] = "avg"
    dense: tuple[int, ...] = (64, 32)
    dropout: float = 0.2
    max_epochs: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 20
    val_fraction: float = 0.2
    min_val_rows: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("conv_channels", "dense"):
            value = getattr(self, name)
            if (
                isinstance(value, str | bytes)
                or not hasattr(value, "__iter__")
                or not (items := tuple(value))
                or not all(_is_int(c) and c >= 1 for c in items)
            ):
                raise ConfigError(
                    f"{name} must be a non-empty sequence of positive integers, got {value!r}; "
                    f"use e.g. {getattr(CNNConfig, name)!r}"
                )
            set_(self, name, tuple(int(c) for c in items))
        for name in (
            "kernel_size",
            "pool",
            "max_epochs",
            "batch_size",
            "patience",
            "min_val_rows",
        ):
            value = getattr(self, name)
            if not (_is_int(value) and value >= 1):
                raise ConfigError(
                    f"{name} must be a positive integer, got {value!r}; use e.g. "
                    f"{getattr(CNNConfig, name)!r}"
                )
            set_(self, name, int(value))
        if not (_is_int(self.seed) and self.seed >= 0):
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}; use e.g. 0")
        set_(self, "seed", int(self.seed))
        if self.pool_type not in ("avg", "max"):
            raise ConfigError(f"pool_type must be 'avg' or 'max', got {self.pool_type!r}")
        if not (_is_real(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(
                f"dropout must be a number in [0, 1), got {self.dropout!r}; use e.g. 0.2"
            )
        if not (_is_real(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a finite number > 0, got {self.lr!r}; use e.g. 1e-3")
        if not (_is_real(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(
                f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}; "
                "use e.g. 1e-4 or 0"
            )
        if not (_is_real(self.val_fraction) and 0.0 <= self.val_fraction <= 0.5):
            raise ConfigError(
                f"val_fraction must be a number in [0, 0.5], got {self.val_fraction!r}; "
                "use e.g. 0.2, or 0 to train max_epochs without early stopping"
            )
        for name in ("dropout", "lr", "weight_decay", "val_fraction"):
            set_(self, name, float(getattr(self, name)))

    def architecture(self) -> dict[str, Any]:
        """Return the architecture fields (a pretrained and a tuned model must share them)."""
        return {k: getattr(self, k) for k in ARCHITECTURE_FIELDS}

    def n_remaining(self, n_bands: int) -> int:
        """Return the number of band positions left after the convolution blocks' pooling."""
        n = int(n_bands)
        for _ in self.conv_channels:
            n //= self.pool
        return n

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return config_to_dict(self, CONFIG_FORMAT)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CNNConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take defaults."""
        return config_from_dict(cls, data, CONFIG_FORMAT, "spectral CNN config")


class SpectralCNN(nn.Module):
    """1D-CNN mapping spectra to the mean and log-variance of standardised log1p SOC.

    Parameters
    ----------
    config
        Architecture (the training fields are ignored here, except ``seed``).
    n_bands
        Number of spectral bands of the input.

    Attributes
    ----------
    front : torch.nn.Sequential
        The convolution blocks, each ``Sequential(Conv1d, ReLU, pool)``; ``front[:n]`` are
        the blocks that DTL-R freezes.
    dense : torch.nn.Sequential
        The dense blocks, each ``Sequential(Linear, ReLU, Dropout)``.
    out : torch.nn.Linear
        Output layer (mean, raw log-variance).

    Examples
    --------
    >>> net = SpectralCNN(CNNConfig(conv_channels=(4, 8), dense=(16,)), n_bands=50)
    >>> mean, logvar = net(torch.zeros(3, 50))
    >>> tuple(mean.shape), tuple(logvar.shape)
    ((3,), (3,))
    """

    def __init__(self, config: CNNConfig, n_bands: int) -> None:
        super().__init__()
        c = config
        remaining = c.n_remaining(n_bands)
        if not (_is_int(n_bands) and remaining >= 1):
            need = c.pool ** len(c.conv_channels)
            raise ConfigError(
                f"{len(c.conv_channels)} convolution blocks with pool={c.pool} need at least "
                f"{need} bands, got {n_bands!r}; use fewer conv_channels or a smaller pool"
            )
        self.config = config
        self.n_bands = int(n_bands)
        pool_cls = nn.AvgPool1d if c.pool_type == "avg" else nn.MaxPool1d
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            blocks: list[nn.Module] = []
            width = 1
            for ch in c.conv_channels:
                layers: list[nn.Module] = [
                    nn.Conv1d(width, ch, c.kernel_size, padding="same"),
                    nn.ReLU(),
                ]
                if c.pool > 1:
                    layers.append(pool_cls(c.pool))
                blocks.append(nn.Sequential(*layers))
                width = ch
            self.front = nn.Sequential(*blocks)
            dense: list[nn.Module] = []
            width = c.conv_channels[-1] * remaining
            for units in c.dense:
                dense.append(
                    nn.Sequential(nn.Linear(width, units), nn.ReLU(), nn.Dropout(c.dropout))
                )
                width = units
            self.dense = nn.Sequential(*dense)
            self.out = nn.Linear(width, 2)

    def trunk(self, x: Tensor) -> Tensor:
        """Deterministic part, up to (not including) the first dropout.

        Parameters
        ----------
        x
            ``(B, n_bands)`` standardised spectra.
        """
        if x.ndim != 2 or x.shape[1] != self.n_bands:
            raise BandMismatch(
                f"input has shape {tuple(x.shape)!r}; the network expects (rows, "
                f"{self.n_bands}) spectra; resample to the model's wavelength grid"
            )
        h = self.front(x.unsqueeze(1)).flatten(1)
        first = cast(nn.Sequential, self.dense[0])
        return torch.relu(first[0](h))

    def head(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Stochastic part: the first dropout and every later layer; returns ``(mean, logvar)``."""
        h = cast(nn.Sequential, self.dense[0])[2](h)
        for block in list(self.dense)[1:]:
            h = block(h)
        raw = self.out(h)
        return raw[:, 0], torch.clamp(raw[:, 1], *LOGVAR_RANGE)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of standardised log1p(SOC), each ``(B,)``."""
        return self.head(self.trunk(x))


def _as_spectra(X: npt.ArrayLike, what: str = "X") -> np.ndarray:
    A = np.asarray(X, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise ProfileValidationError(
            f"{what} must be a non-empty 2-D array (samples x bands), got shape {A.shape!r}; "
            "pass one spectrum per row"
        )
    bad = ~np.isfinite(A).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ProfileValidationError(
            f"{what} has {int(bad.sum())!r} rows with NaN or infinite values (first row "
            f"{row!r}); drop or repair those spectra"
        )
    return A


def _as_target(y: npt.ArrayLike, n: int) -> np.ndarray:
    t = np.asarray(y, dtype=np.float64)
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.ndim != 1 or t.size != n:
        raise ProfileValidationError(
            f"y must be 1-D with one SOC value per spectrum ({n!r}), got shape {t.shape!r}"
        )
    bad = ~(np.isfinite(t) & (t >= 0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ProfileValidationError(
            f"y must be finite SOC in g/kg >= 0; row {row!r} is {float(t[row])!r} "
            f"({int(bad.sum())!r} bad rows); drop rows without a valid SOC value"
        )
    return t


class SpectralCNNRegressor(RegressorMixin, BaseEstimator):
    """Scikit-learn regressor of SOC (g/kg) from preprocessed spectra with a 1D-CNN.

    Parameters
    ----------
    config
        Architecture and training settings (default :class:`CNNConfig`). When fitting with
        ``init``, ``None`` takes the whole config of ``init``; an explicit config must have
        the same architecture as ``init``.
    mc_passes
        Monte Carlo dropout passes in prediction.
    progress
        Show a progress bar over epochs.
    init
        A fitted regressor (e.g. trained on a spectral library) to start from: its network
        weights are copied and its input and target standardisation kept. It is data, not a
        sub-estimator: :func:`sklearn.base.clone` keeps it as it is.
    freeze_front
        Number of leading convolution blocks whose weights stay fixed (DTL-R); needs ``init``.
    calibration_folds
        ``K >= 2`` fits ``K`` more models on seeded folds of the rows (same ``init`` and
        ``freeze_front``) and calibrates the intervals on their out-of-fold predictions; 0
        does not calibrate.

    Attributes
    ----------
    network_ : SpectralCNN
        The trained network (best validation epoch).
    config_ : CNNConfig
        The settings used.
    n_features_in_ : int
        Number of bands.
    x_mean_, x_scale_ : numpy.ndarray
        Per-band input standardisation (from ``init`` when fine-tuned).
    y_mean_, y_scale_ : float
        Mean and SD of ``log1p(SOC)`` defining ``z`` (from ``init`` when fine-tuned).
    frozen_blocks_ : int
        Convolution blocks frozen in the last fit.
    calibrator_ : ConformalCalibrator or None
        Conformal calibration of the intervals (``calibration_folds >= 2``).
    history_ : dict
        ``train_loss``, ``val_loss`` per epoch, ``best_epoch``, ``epochs_run``,
        ``stopped_early``, ``n_train``, ``n_val``, ``seconds``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> soc = rng.uniform(5, 50, 60)
    >>> X = np.log1p(soc)[:, None] * np.hanning(32) + rng.normal(0, 0.01, (60, 32))
    >>> cfg = CNNConfig(conv_channels=(4,), dense=(16,), max_epochs=20)
    >>> model = SpectralCNNRegressor(cfg, mc_passes=8).fit(X, soc)
    >>> model.predict(X[:3]).shape
    (3,)
    >>> lower, upper = model.predict_interval(X[:3], level=0.9)
    >>> bool((lower <= model.predict(X[:3])).all() and (model.predict(X[:3]) <= upper).all())
    True
    """

    network_: SpectralCNN
    config_: CNNConfig
    n_features_in_: int
    x_mean_: np.ndarray
    x_scale_: np.ndarray
    y_mean_: float
    y_scale_: float
    frozen_blocks_: int
    calibrator_: ConformalCalibrator | None
    history_: dict[str, Any]

    def __init__(
        self,
        config: CNNConfig | None = None,
        mc_passes: int = 32,
        progress: bool = False,
        init: SpectralCNNRegressor | None = None,
        freeze_front: int = 0,
        calibration_folds: int = 0,
    ) -> None:
        self.config = config
        self.mc_passes = mc_passes
        self.progress = progress
        self.init = init
        self.freeze_front = freeze_front
        self.calibration_folds = calibration_folds

    def __sklearn_clone__(self) -> SpectralCNNRegressor:
        """Clone the settings; ``init`` (a fitted model to start from) is shared, not refitted."""
        params = self.get_params(deep=False)
        return type(self)(
            **{k: v if k == "init" else clone(v, safe=False) for k, v in params.items()}
        )

    # ------------------------------------------------------------------ fitting
    def _resolve_config(self, init: SpectralCNNRegressor | None) -> CNNConfig:
        if self.config is not None and not isinstance(self.config, CNNConfig):
            raise ConfigError(
                f"config must be a CNNConfig or None, got {type(self.config).__name__!r}"
            )
        if init is None:
            return self.config or CNNConfig()
        base: CNNConfig = init.config_
        if self.config is None:
            return base
        diff = {
            k: (v, base.architecture()[k])
            for k, v in self.config.architecture().items()
            if v != base.architecture()[k]
        }
        if diff:
            raise ConfigError(
                f"config architecture differs from init's (field: (given, init)) {diff!r}; "
                "fine-tuning keeps the init network, so change only training fields, e.g. "
                "dataclasses.replace(init.config_, lr=3e-4)"
            )
        return self.config

    def fit(
        self,
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        calibration_rows: npt.ArrayLike | None = None,
        predict_for: npt.ArrayLike | None = None,
    ) -> Self:
        """Train on spectra ``X`` and SOC ``y``, from ``init`` when given.

        Parameters
        ----------
        X
            ``(n, n_bands)`` preprocessed spectra (finite).
        y
            ``(n,)`` SOC in g/kg (finite, >= 0).
        calibration_rows
            With ``calibration_folds``: boolean mask (or indices) of the rows whose
            out-of-fold predictions calibrate the intervals, e.g. the site's own samples
            when ``X`` also holds library spectra (DTL-I); the folds split these rows and
            every other row always trains. ``None``: all rows.
        predict_for
            With ``calibration_folds``: spectra the intervals are for (e.g. the site's
            unlabelled scans). The calibration scores are then weighted by the share of
            these spectra nearest to each calibration sample
            (:func:`~socmap.validate.calibrate.nearest_share`), for calibration samples
            chosen to span the spectra (Kennard-Stone) rather than at random.

        Returns
        -------
        SpectralCNNRegressor
            ``self``, fitted.

        Raises
        ------
        ProfileValidationError
            Non-finite spectra, or SOC that is missing, infinite or negative.
        BandMismatch
            ``X`` has another band count than ``init``.
        ConfigError
            Bad settings, or too few rows or bands for them.
        """
        init, freeze_front, calibration_folds = self.init, self.freeze_front, self.calibration_folds
        if init is not None:
            if not isinstance(init, SpectralCNNRegressor):
                raise ConfigError(
                    f"init must be a fitted SpectralCNNRegressor, got {type(init).__name__!r}"
                )
            check_is_fitted(init, "network_")
        cfg = self._resolve_config(init)
        A = _as_spectra(X)
        t = _as_target(y, A.shape[0])
        n, n_bands = A.shape
        if n < 2:
            raise ProfileValidationError(
                f"fit needs at least 2 spectra, got {n!r}; add samples with measured SOC"
            )
        if not (_is_int(freeze_front) and 0 <= freeze_front <= len(cfg.conv_channels)):
            raise ConfigError(
                f"freeze_front must be an integer in [0, {len(cfg.conv_channels)}] (the "
                f"number of convolution blocks), got {freeze_front!r}"
            )
        if freeze_front and init is None:
            raise ConfigError(
                f"freeze_front={freeze_front!r} needs init= (a pretrained model): frozen "
                "random convolutions learn nothing; pass init or freeze_front=0"
            )
        if not (
            _is_int(calibration_folds) and (calibration_folds == 0 or 2 <= calibration_folds <= n)
        ):
            raise ConfigError(
                f"calibration_folds must be 0 or an integer in [2, {n}] (the number of rows), "
                f"got {calibration_folds!r}; use e.g. 5"
            )
        if not calibration_folds and (calibration_rows is not None or predict_for is not None):
            raise ConfigError(
                "calibration_rows and predict_for choose and weight the calibration samples, "
                "but calibration_folds is 0 (no calibration); set calibration_folds, e.g. 5"
            )
        # checked before training: a bad calibration set must not cost a fit first
        rows = _calibration_rows(calibration_rows, n, calibration_folds or 1)
        targets = None if predict_for is None else _as_spectra(predict_for)
        if targets is not None and targets.shape[1] != n_bands:
            raise BandMismatch(
                f"predict_for has {targets.shape[1]!r} bands but X has {n_bands!r}; pass "
                "the spectra to predict, preprocessed as X"
            )
        if init is not None:
            if n_bands != init.n_features_in_:
                raise BandMismatch(
                    f"X has {n_bands!r} bands but init was trained on {init.n_features_in_!r}; "
                    "resample the spectra to the init model's wavelength grid"
                )
            net = copy.deepcopy(init.network_)
            x_mean, x_scale = init.x_mean_.copy(), init.x_scale_.copy()
            y_mean, y_scale = init.y_mean_, init.y_scale_
        else:
            net = SpectralCNN(cfg, n_bands)
            x_mean = A.mean(axis=0)
            sd = A.std(axis=0)
            # constant bands (e.g. clipped edges) carry no signal; a unit scale keeps them at 0
            x_scale = np.where(sd > 0, sd, 1.0)
            log_t = np.log1p(t)
            y_mean = float(log_t.mean())
            y_scale = float(log_t.std()) if log_t.std() > 0 else 1.0
        # the deep copy shares no state with init; the config travels with the fitted model
        net.config = cfg
        xt = torch.from_numpy(((A - x_mean) / x_scale).astype(np.float32))
        zt = torch.from_numpy(((np.log1p(t) - y_mean) / y_scale).astype(np.float32))
        self.history_ = _train(net, xt, zt, cfg, int(freeze_front), progress=bool(self.progress))
        self.network_ = net
        self.config_ = cfg
        self.n_features_in_ = int(n_bands)
        self.x_mean_ = np.asarray(x_mean, dtype=np.float64)
        self.x_scale_ = np.asarray(x_scale, dtype=np.float64)
        self.y_mean_ = float(y_mean)
        self.y_scale_ = float(y_scale)
        self.frozen_blocks_ = int(freeze_front)
        self.calibrator_ = None
        if calibration_folds:
            self.calibrator_ = self._calibrate(
                A, t, init, int(freeze_front), calibration_folds, rows, targets
            )
        return self

    def _calibrate(
        self,
        A: np.ndarray,
        t: np.ndarray,
        init: SpectralCNNRegressor | None,
        freeze_front: int,
        folds: int,
        rows: np.ndarray,
        targets: np.ndarray | None,
    ) -> ConformalCalibrator:
        oof_mean = np.empty(len(rows))
        oof_sd = np.empty(len(rows))
        always = np.setdiff1d(np.arange(len(t)), rows)  # rows that train in every fold
        splitter = KFold(n_splits=folds, shuffle=True, random_state=self.config_.seed)
        for train, test in splitter.split(rows):
            fit_rows = np.concatenate([always, rows[train]])
            fold = SpectralCNNRegressor(
                self.config_, self.mc_passes, False, init=init, freeze_front=freeze_front
            )
            fold.fit(A[fit_rows], t[fit_rows])
            oof_mean[test], oof_sd[test] = fold.predict_distribution(A[rows[test]])
        weights = None if targets is None else nearest_share(A[rows], targets)
        return ConformalCalibrator().fit(np.log1p(t[rows]), oof_mean, oof_sd, weights=weights)

    # ------------------------------------------------------------------ prediction
    def _passes(self, mc_passes: int | None) -> int:
        passes = self.mc_passes if mc_passes is None else mc_passes
        if not (_is_int(passes) and passes >= 1):
            raise ConfigError(f"mc_passes must be a positive integer, got {passes!r}; use e.g. 32")
        return int(passes)

    def _standardise(self, X: npt.ArrayLike) -> Tensor:
        check_is_fitted(self, "network_")
        A = _as_spectra(X)
        if A.shape[1] != self.n_features_in_:
            raise BandMismatch(
                f"X has {A.shape[1]!r} bands but the model was trained on "
                f"{self.n_features_in_!r}; resample the spectra to the model's wavelength grid"
            )
        return torch.from_numpy(((A - self.x_mean_) / self.x_scale_).astype(np.float32))

    def predict_distribution(
        self, X: npt.ArrayLike, mc_passes: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and SD of ``log1p(SOC g/kg)`` by MC dropout.

        Parameters
        ----------
        X
            ``(n, n_bands)`` spectra, preprocessed as the training spectra.
        mc_passes
            Dropout passes (default ``self.mc_passes``).

        Returns
        -------
        mean_log, sd_log : numpy.ndarray
            ``(n,)`` each; ``sd_log`` includes the epistemic (spread of the pass means) and
            the aleatoric (mean predicted variance) parts. The same ``X`` and seed give the
            same result (the dropout masks are seeded with ``config_.seed``).
        """
        xt = self._standardise(X)
        passes = self._passes(mc_passes)
        net = self.network_
        n = int(xt.shape[0])
        mean_z = np.empty(n)
        var_z = np.empty(n)
        with torch.random.fork_rng(devices=[]), torch.inference_mode(), mc_dropout(net):
            torch.manual_seed(self.config_.seed)
            for start in range(0, n, PREDICT_CHUNK):
                h = net.trunk(xt[start : start + PREDICT_CHUNK])
                b = h.shape[0]
                reps = h.unsqueeze(0).expand(passes, b, h.shape[1]).reshape(passes * b, -1)
                m, lv = net.head(reps)
                m64 = m.reshape(passes, b).double()
                alea = torch.exp(lv.reshape(passes, b).double()).mean(0)
                mean_z[start : start + b] = m64.mean(0).numpy()
                var_z[start : start + b] = (m64.var(0, correction=0) + alea).numpy()
        mean_log = self.y_mean_ + self.y_scale_ * mean_z
        sd_log = self.y_scale_ * np.sqrt(var_z)
        return mean_log, sd_log

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """SOC in g/kg: ``expm1`` of the MC-dropout mean of ``log1p(SOC)``.

        This is the median of the predictive distribution when it is symmetric in
        ``log1p`` space; it is never negative for a mean above 0.
        """
        mean_log, _ = self.predict_distribution(X)
        return np.asarray(np.expm1(mean_log))

    def predict_interval(
        self, X: npt.ArrayLike, level: float = 0.9
    ) -> tuple[np.ndarray, np.ndarray]:
        """Prediction interval of SOC in g/kg.

        Parameters
        ----------
        X
            ``(n, n_bands)`` spectra.
        level
            Nominal coverage in (0, 1) (at most 0.99 when calibrated).

        Returns
        -------
        lower, upper : numpy.ndarray
            Conformally calibrated ``mean ± q sd`` when ``calibrator_`` exists, else the
            Gaussian ``mean ± z sd``, in ``log1p`` space, back-transformed with ``expm1``;
            ``lower`` is clipped at 0 (``upper`` is ``inf`` when too few calibration
            samples support ``level``).
        """
        if not (_is_real(level) and 0.0 < level < 1.0):
            raise ConfigError(f"level must be in (0, 1), got {level!r}; use e.g. 0.9")
        mean, sd = self.predict_distribution(X)
        if self.calibrator_ is not None:
            lo, hi = self.calibrator_.interval(mean, sd, float(level))
        else:
            z = NormalDist().inv_cdf(0.5 + float(level) / 2.0)
            lo, hi = mean - z * sd, mean + z * sd
        return np.maximum(np.expm1(lo), 0.0), np.asarray(np.expm1(hi))

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the fitted model to a directory (``model.json`` + ``weights.safetensors``).

        The directory is written next to ``path`` and renamed into place, so a failure
        leaves no half-written model.

        Parameters
        ----------
        path
            Directory to create.
        overwrite
            Replace an existing ``path`` (otherwise :class:`~socmap.errors.OutputExists`).

        Returns
        -------
        pathlib.Path
            The model directory.
        """
        check_is_fitted(self, "network_")
        from socmap._versions import __version__

        def document(sha256: str) -> dict[str, Any]:
            return {
                "format": MODEL_FORMAT,
                "socmap_version": __version__,
                "target": "log1p(soc_g_kg)",
                "n_bands": self.n_features_in_,
                "config": self.config_.to_dict(),
                "mc_passes": self.mc_passes,
                "x_mean": self.x_mean_.tolist(),
                "x_scale": self.x_scale_.tolist(),
                "y_mean": self.y_mean_,
                "y_scale": self.y_scale_,
                "frozen_blocks": self.frozen_blocks_,
                "calibration": None if self.calibrator_ is None else self.calibrator_.to_dict(),
                "history": _json_history(self.history_),
                "weights": {"file": WEIGHTS, "sha256": sha256},
            }

        return write_weights_dir(
            Path(path), cpu_weights(self.network_), document, overwrite=overwrite
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SpectralCNNRegressor:
        """Read a model written by :meth:`save` (no pickle: JSON and safetensors only).

        Raises
        ------
        InputNotFound
            ``path`` does not exist.
        BundleError
            Missing files, an unknown format, a checksum mismatch or weights that do not
            fit the stored architecture.
        """
        src = Path(path)
        if not src.is_dir():
            raise InputNotFound(f"spectral CNN model directory {str(src)!r} does not exist")
        for name in (MODEL_JSON, WEIGHTS):
            if not (src / name).is_file():
                raise BundleError(
                    f"{str(src / name)!r} is missing; save the model again with "
                    "SpectralCNNRegressor.save()"
                )
        try:
            doc = json.loads((src / MODEL_JSON).read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{str(src / MODEL_JSON)!r} is not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise BundleError(
                f"model format {got!r} is not {MODEL_FORMAT!r}; save the model again with "
                "this socmap version"
            )
        digest = doc.get("weights", {}).get("sha256")
        if digest is not None and digest != file_sha256(src / WEIGHTS):
            raise BundleError(
                f"{str(src / WEIGHTS)!r} does not match the checksum in {MODEL_JSON!r}; the "
                "model is corrupt or was edited, save it again"
            )
        try:
            cfg = CNNConfig.from_dict(doc["config"])
            n_bands = int(doc["n_bands"])
            net = SpectralCNN(cfg, n_bands)
            net.load_state_dict(load_file(str(src / WEIGHTS)), strict=True)
            model = cls(config=cfg, mc_passes=int(doc["mc_passes"]))
            model.network_ = net.eval()
            model.config_ = cfg
            model.n_features_in_ = n_bands
            model.x_mean_ = np.asarray(doc["x_mean"], dtype=np.float64)
            model.x_scale_ = np.asarray(doc["x_scale"], dtype=np.float64)
            model.y_mean_ = float(doc["y_mean"])
            model.y_scale_ = float(doc["y_scale"])
            model.frozen_blocks_ = int(doc.get("frozen_blocks", 0))
            cal = doc.get("calibration")
            model.calibrator_ = None if cal is None else ConformalCalibrator.from_dict(cal)
            model.history_ = dict(doc.get("history", {}))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(
                f"spectral CNN model {str(src)!r} is malformed ({exc}); save it again".replace(
                    "\n", " "
                )
            ) from None
        if model.x_mean_.shape != (n_bands,) or model.x_scale_.shape != (n_bands,):
            raise BundleError(
                f"stored normalisation has {model.x_mean_.shape!r} / {model.x_scale_.shape!r} "
                f"values for {n_bands!r} bands; the model is corrupt, save it again"
            )
        return model


def _batches(order: Tensor, size: int) -> Iterator[Tensor]:
    for start in range(0, int(order.numel()), size):
        yield order[start : start + size]


def _train(
    net: SpectralCNN,
    xt: Tensor,
    zt: Tensor,
    cfg: CNNConfig,
    freeze_front: int,
    *,
    progress: bool,
) -> dict[str, Any]:
    """Train ``net`` in place (:func:`socmap.model.loop.train_loop`); return the history.

    The first ``freeze_front`` convolution blocks stay frozen; a seeded share of the rows
    (``cfg.val_fraction``) is held out for early stopping on the Gaussian NLL.
    """
    n = int(xt.shape[0])
    rng = np.random.default_rng(cfg.seed)
    n_val = 0
    if cfg.val_fraction > 0 and round(cfg.val_fraction * n) >= cfg.min_val_rows:
        n_val = round(cfg.val_fraction * n)
    perm = rng.permutation(n)
    val = torch.from_numpy(np.sort(perm[:n_val]))
    tr = torch.from_numpy(np.sort(perm[n_val:]))
    frozen = {id(p) for p in net.front[:freeze_front].parameters()}
    params = [p for p in net.parameters() if id(p) not in frozen]
    x_val, z_val = xt[val], zt[val]

    def epoch() -> Iterator[tuple[Tensor, int]]:
        order = tr[torch.randperm(tr.numel())]
        for b in _batches(order, cfg.batch_size):
            mean, logvar = net(xt[b])
            yield regression_loss(mean, logvar, zt[b]), int(b.numel())

    def validate() -> float:
        with torch.no_grad():
            val_mean, val_logvar = net(x_val)
            return float(regression_loss(val_mean, val_logvar, z_val))

    started = time.perf_counter()
    result = train_loop(
        net, params, epoch, lr=cfg.lr, weight_decay=cfg.weight_decay,
        max_epochs=cfg.max_epochs, seed=cfg.seed, validate=validate if n_val else None,
        patience=cfg.patience, label="training spectral CNN", progress=progress,
    )  # fmt: skip
    return {
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "n_train": int(tr.numel()),
        "n_val": int(n_val),
        "seconds": time.perf_counter() - started,
    }


def _json_history(history: Mapping[str, Any]) -> dict[str, Any]:
    def clean(v: float) -> float | None:
        return float(v) if math.isfinite(v) else None

    out = dict(history)
    for key in ("train_loss", "val_loss"):
        out[key] = [clean(v) for v in history.get(key, [])]
    out["seconds"] = clean(float(history.get("seconds", 0.0)))
    return out

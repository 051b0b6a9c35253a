"""The SOC network: per-group encoders, fusion, depth conditioning and a dropout head.

Layout (defaults follow GSoilCPM, Zhang et al. 2025, which uses one 1x1 convolution, i.e. a
per-pixel linear layer, per covariate group)::

    group g:  [values_g, missing_g(, periodic_g)] --Linear--> e_g (16)   (one per group)
    band k:   class index --Embedding(n_classes_k + 1, 4)--> c_k      (one per categorical)
    fused  = ReLU(Linear(concat(e, c), 128) + sum of added-group adapters)
    depth  = ReLU(Linear(3, 16))(top, bottom, log thickness)
    h      = fused * (1 + gamma(depth)) + beta(depth)                  (FiLM)
    trunk  = ReLU(Linear(128, 256))(h)                                 (deterministic)
    head   = Dropout(0.2) -> Linear(256, 128) -> ReLU -> Dropout(0.5) -> Linear(128, 2)
    out    = mean, log-variance of log1p(SOC g/kg)

**Periodic input embeddings** (``periodic = k > 0``; Gorishniy et al. 2022, "On
embeddings for numerical features in tabular deep learning"): each standardised base band
``x`` also enters its group encoder as ``sin(2 pi f x), cos(2 pi f x)`` for ``k`` learned
frequencies ``f`` (initialised from N(0, ``periodic_sigma``)). A plain MLP on standardised
values fits smooth functions of each covariate first; the periodic features let it fit
sharp, thresholded responses as trees do. Off by default: on the global table they did not
beat the seed spread (docs/benchmarks/pretrain_variants.md).

**Depth conditioning is FiLM** (feature-wise linear modulation): the depth interval scales
and shifts every fused feature. SOC falls with depth at a rate that itself depends on the
site (land cover, climate), so a multiplicative interaction suits it better than
concatenating depth features, at about the same parameter count.

**The trunk ends before the first dropout**, so Monte Carlo dropout computes it once per
batch and repeats only :meth:`SocNet.head`; for maps, :meth:`SocNet.map_passes` also folds
the depth conditioning and the fixed per-pass dropout masks into the weights.

**Regional groups** added with :meth:`SocNet.add_group` get their own encoder plus an
adapter ``Linear(16, 128, bias=False)`` whose weights start at zero; its output is added to
the fusion pre-activation, so the extended model's outputs are bit-for-bit those of the
original until fine-tuning moves the adapter. Their categorical bands get new embeddings
(row 0, missing or unknown class, fixed at zero) with zero-initialised adapters
``Linear(4, 128, bias=False)`` of their own.

**Output scaling.** The network's raw mean is ``target_shift + target_scale * raw`` (the
training mean and SD of log1p SOC), so training starts near the right level; the
log-variance is clamped to ``logvar_range``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

from socmap._config_io import config_from_dict, config_to_dict
from socmap.errors import BandMismatch, ConfigError
from socmap.model.features import DEPTH_FEATURES, FeatureSpec

__all__ = ["NetworkConfig", "SocNet", "mc_dropout"]

CONFIG_FORMAT = "socmap-network/1"


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of :class:`SocNet`.

    Parameters
    ----------
    groups
        Continuous group name -> number of bands, in column order.
    vocab_sizes
        Categorical band name -> embedding rows (classes + 1 for missing/unknown).
    added_groups
        Groups added for fine-tuning (:meth:`SocNet.add_group`), in column order after
        ``groups``.
    added_vocab_sizes
        Categorical bands added for fine-tuning, in column order after ``vocab_sizes``.
    depth_features
        Number of depth features (3: top, bottom, log thickness).
    periodic
        Learned frequencies per continuous base band for periodic input embeddings; 0 feeds
        the standardised values and missing flags only.
    periodic_sigma
        Standard deviation of the initial frequencies (cycles per standard deviation).
    enc_dim, emb_dim, fusion_dim, depth_dim
        Width of each group encoder, each embedding, the fusion layer and the depth MLP.
    head
        Widths of the head's hidden layers; the first belongs to the trunk.
    dropout
        Dropout rate after each hidden head layer (same length as ``head``).
    logvar_range
        Clamp of the predicted log-variance of log1p(SOC).
    target_shift, target_scale
        Output mean is ``target_shift + target_scale * raw``.

    Examples
    --------
    >>> cfg = NetworkConfig(groups={"climate": 2}, vocab_sizes={"lc": 9})
    >>> NetworkConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    groups: Mapping[str, int]
    vocab_sizes: Mapping[str, int] = field(default_factory=dict)
    added_groups: Mapping[str, int] = field(default_factory=dict)
    added_vocab_sizes: Mapping[str, int] = field(default_factory=dict)
    depth_features: int = len(DEPTH_FEATURES)
    periodic: int = 0
    periodic_sigma: float = 0.5
    enc_dim: int = 16
    emb_dim: int = 4
    fusion_dim: int = 128
    depth_dim: int = 16
    head: tuple[int, ...] = (256, 128)
    dropout: tuple[float, ...] = (0.2, 0.5)
    logvar_range: tuple[float, float] = (-10.0, 5.0)
    target_shift: float = 0.0
    target_scale: float = 1.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "groups", {str(k): int(v) for k, v in self.groups.items()})
        set_(self, "vocab_sizes", {str(k): int(v) for k, v in self.vocab_sizes.items()})
        set_(self, "added_groups", {str(k): int(v) for k, v in self.added_groups.items()})
        set_(
            self,
            "added_vocab_sizes",
            {str(k): int(v) for k, v in self.added_vocab_sizes.items()},
        )
        set_(self, "head", tuple(int(h) for h in self.head))
        set_(self, "dropout", tuple(float(p) for p in self.dropout))
        lo, hi = (float(v) for v in self.logvar_range)
        set_(self, "logvar_range", (lo, hi))
        if not self.groups and not self.vocab_sizes:
            raise ConfigError(
                "the network needs at least one covariate group or categorical band; got none"
            )
        sizes = {**self.groups, **self.added_groups, **self.all_vocab_sizes}
        bad = {k: v for k, v in sizes.items() if v < 1}
        if bad:
            raise ConfigError(f"group and vocabulary sizes must be >= 1; got {bad!r}")
        clash = (set(self.groups) & set(self.added_groups)) | (
            set(self.vocab_sizes) & set(self.added_vocab_sizes)
        )
        if clash:
            raise ConfigError(
                f"added groups or bands {sorted(clash)!r} repeat base names; rename them"
            )
        dims = {
            "enc_dim": self.enc_dim,
            "emb_dim": self.emb_dim,
            "fusion_dim": self.fusion_dim,
            "depth_dim": self.depth_dim,
            "depth_features": self.depth_features,
        }
        bad = {k: v for k, v in dims.items() if v < 1}
        if bad or not self.head or min(self.head) < 1:
            raise ConfigError(
                f"layer widths must be >= 1 and head non-empty; got {dims!r}, head={self.head!r}"
            )
        if len(self.dropout) != len(self.head) or not all(0 <= p < 1 for p in self.dropout):
            raise ConfigError(
                f"dropout {self.dropout!r} needs one rate in [0, 1) per head layer {self.head!r}"
            )
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(
                f"logvar_range {self.logvar_range!r} must be finite with low < high, e.g. (-10, 5)"
            )
        if self.periodic < 0 or not (
            math.isfinite(self.periodic_sigma) and self.periodic_sigma > 0
        ):
            raise ConfigError(
                f"periodic {self.periodic!r} must be >= 0 and periodic_sigma "
                f"{self.periodic_sigma!r} > 0, e.g. periodic=8, periodic_sigma=0.5"
            )
        if not (math.isfinite(self.target_scale) and self.target_scale > 0):
            raise ConfigError(f"target_scale must be > 0; got {self.target_scale!r}")

    @classmethod
    def from_spec(cls, spec: FeatureSpec, **overrides: Any) -> NetworkConfig:
        """Config whose inputs match ``spec`` (groups, vocabularies, output scaling).

        Examples
        --------
        >>> spec = FeatureSpec(groups={"climate": ("t", "p")}, categorical={"lc": (1, 2, 3)})
        >>> cfg = NetworkConfig.from_spec(spec)
        >>> dict(cfg.groups), dict(cfg.vocab_sizes)
        ({'climate': 2}, {'lc': 4})
        """
        base: dict[str, Any] = {
            "groups": spec.group_sizes,
            "vocab_sizes": spec.vocab_sizes,
            "depth_features": len(DEPTH_FEATURES),
            "target_shift": spec.target_mean,
            "target_scale": spec.target_std,
        }
        return cls(**{**base, **overrides})

    @property
    def all_groups(self) -> dict[str, int]:
        """Base then added groups, in column order."""
        return {**self.groups, **self.added_groups}

    @property
    def all_vocab_sizes(self) -> dict[str, int]:
        """Base then added categorical bands, in column order."""
        return {**self.vocab_sizes, **self.added_vocab_sizes}

    @property
    def n_continuous(self) -> int:
        """Number of continuous input columns."""
        return sum(self.all_groups.values())

    def check_spec(self, spec: FeatureSpec) -> None:
        """Raise :class:`~socmap.errors.BandMismatch` if ``spec`` does not fit this network."""
        if spec.group_sizes != self.all_groups or spec.vocab_sizes != self.all_vocab_sizes:
            raise BandMismatch(
                f"feature spec (groups {spec.group_sizes!r}, vocabularies "
                f"{spec.vocab_sizes!r}) does not match the network (groups {self.all_groups!r}, "
                f"vocabularies {self.all_vocab_sizes!r}); build the network from this spec"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return config_to_dict(self, CONFIG_FORMAT)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return config_from_dict(cls, data, CONFIG_FORMAT, "network config")


class SocNet(nn.Module):
    """Grouped-covariate SOC network with depth conditioning and a Gaussian output.

    Parameters
    ----------
    config
        Architecture; see :class:`NetworkConfig`.
    seed
        Seed for the weight initialisation (the global torch RNG is left untouched).

    Examples
    --------
    >>> net = SocNet(NetworkConfig(groups={"climate": 2}, vocab_sizes={"lc": 4}))
    >>> cont, mask = torch.zeros(5, 2), torch.zeros(5, 2)
    >>> cat, depth = torch.ones(5, 1, dtype=torch.long), torch.zeros(5, 3)
    >>> mean, logvar = net(cont, mask, cat, depth)
    >>> tuple(mean.shape), tuple(logvar.shape)
    ((5,), (5,))
    """

    def __init__(self, config: NetworkConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            # ModuleList, not ModuleDict: band names may contain '.', which keys cannot.
            width = 2 + 2 * c.periodic  # value, missing flag, sin and cos per frequency
            self.encoders = nn.ModuleList(
                nn.Linear(width * n, c.enc_dim) for n in c.groups.values()
            )
            self.frequencies = nn.ParameterList(
                nn.Parameter(torch.randn(n, c.periodic) * c.periodic_sigma)
                for n in (c.groups.values() if c.periodic else ())
            )
            self.embeddings = nn.ModuleList(
                nn.Embedding(v, c.emb_dim) for v in c.vocab_sizes.values()
            )
            fusion_in = c.enc_dim * len(c.groups) + c.emb_dim * len(c.vocab_sizes)
            self.fusion = nn.Linear(fusion_in, c.fusion_dim)
            self.added_encoders = nn.ModuleList()
            self.adapters = nn.ModuleList()
            for n in c.added_groups.values():
                self._append_group(n)
            self.added_embeddings = nn.ModuleList()
            self.embedding_adapters = nn.ModuleList()
            for v in c.added_vocab_sizes.values():
                self._append_embedding(v)
            self.depth_mlp = nn.Sequential(nn.Linear(c.depth_features, c.depth_dim), nn.ReLU())
            self.film = nn.Linear(c.depth_dim, 2 * c.fusion_dim)
            self.head_in = nn.Linear(c.fusion_dim, c.head[0])
            self.head_dropout = nn.ModuleList(nn.Dropout(p) for p in c.dropout)
            self.head_layers = nn.ModuleList(
                nn.Linear(a, b) for a, b in zip(c.head[:-1], c.head[1:], strict=True)
            )
            self.out = nn.Linear(c.head[-1], 2)
        self._offsets = self._group_offsets()

    def _append_group(self, n_bands: int) -> None:
        c = self.config
        self.added_encoders.append(nn.Linear(2 * n_bands, c.enc_dim))
        adapter = nn.Linear(c.enc_dim, c.fusion_dim, bias=False)
        nn.init.zeros_(adapter.weight)
        self.adapters.append(adapter)

    def _append_embedding(self, vocab_size: int) -> None:
        c = self.config
        # Row 0 (missing or unknown class) stays zero: no regional information, no change.
        self.added_embeddings.append(nn.Embedding(vocab_size, c.emb_dim, padding_idx=0))
        adapter = nn.Linear(c.emb_dim, c.fusion_dim, bias=False)
        nn.init.zeros_(adapter.weight)
        self.embedding_adapters.append(adapter)

    def _group_offsets(self) -> list[tuple[int, int]]:
        out, start = [], 0
        for n in self.config.all_groups.values():
            out.append((start, start + n))
            start += n
        return out

    # ------------------------------------------------------------------ forward
    def trunk(self, cont: Tensor, mask: Tensor, cat: Tensor, depth: Tensor) -> Tensor:
        """Deterministic part of the network, up to (not including) the first dropout.

        Parameters
        ----------
        cont, mask
            ``(B, C)`` standardised continuous covariates and their missing indicators.
        cat
            ``(B, K)`` int64 embedding indices.
        depth
            ``(B, 3)`` depth features.
        """
        return self.condition(self.fuse(cont, mask, cat), depth)

    def fuse(self, cont: Tensor, mask: Tensor, cat: Tensor) -> Tensor:
        """Fused covariate features ``(B, fusion_dim)``; they do not depend on depth.

        A map computes them once per pixel and :meth:`condition` once per depth interval.
        """
        c = self.config
        if cont.shape[-1] != c.n_continuous or mask.shape != cont.shape:
            raise BandMismatch(
                f"continuous inputs have shape {tuple(cont.shape)!r} (mask "
                f"{tuple(mask.shape)!r}); the network expects {c.n_continuous} columns "
                "in both; encode with the model's FeatureSpec"
            )
        n_cat = len(c.vocab_sizes)
        if cat.shape[-1] != n_cat + len(c.added_vocab_sizes):
            raise BandMismatch(
                f"categorical inputs have shape {tuple(cat.shape)!r}; the network expects "
                f"{n_cat + len(c.added_vocab_sizes)} columns; encode with the model's FeatureSpec"
            )
        n_base = len(c.groups)
        parts: list[Tensor] = []
        for g, (enc, (a, b)) in enumerate(zip(self.encoders, self._offsets[:n_base], strict=True)):
            inputs = [cont[:, a:b], mask[:, a:b]]
            if c.periodic:
                phase = (2 * math.pi) * cont[:, a:b, None] * self.frequencies[g]
                inputs += [torch.sin(phase).flatten(1), torch.cos(phase).flatten(1)]
            parts.append(enc(torch.cat(inputs, dim=1)))
        for k, emb in enumerate(self.embeddings):
            parts.append(emb(cat[:, k]))
        pre = self.fusion(torch.cat(parts, dim=1))
        for enc, adapter, (a, b) in zip(
            self.added_encoders, self.adapters, self._offsets[n_base:], strict=True
        ):
            pre = pre + adapter(enc(torch.cat([cont[:, a:b], mask[:, a:b]], dim=1)))
        for k, (emb, adapter) in enumerate(
            zip(self.added_embeddings, self.embedding_adapters, strict=True)
        ):
            pre = pre + adapter(emb(cat[:, n_cat + k]))
        return torch.relu(pre)

    def condition(self, fused: Tensor, depth: Tensor) -> Tensor:
        """Depth conditioning (FiLM) of fused features and the first head layer."""
        gamma, beta = self.film(self.depth_mlp(depth)).chunk(2, dim=1)
        h = fused * (1 + gamma) + beta
        return torch.relu(self.head_in(h))

    def head(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Stochastic part: dropout and the remaining layers; returns ``(mean, logvar)``."""
        for i, drop in enumerate(self.head_dropout):
            h = drop(h)
            if i < len(self.head_layers):
                h = torch.relu(self.head_layers[i](h))
        return self._output(self.out(h))

    def dropout_masks(self, passes: int, generator: torch.Generator) -> list[Tensor]:
        """One inverted-dropout mask per pass and dropout layer, ``(passes, width)`` each.

        Kept units are ``1 / (1 - p)``, dropped ones 0, as :class:`torch.nn.Dropout` does.
        """
        masks = []
        for p, width in zip(self.config.dropout, self.config.head, strict=True):
            keep = torch.rand((passes, width), generator=generator) >= p
            masks.append(keep.to(torch.float32) / (1.0 - p))
        return masks

    def map_passes(
        self, fused: Tensor, depth: Tensor, masks: Sequence[Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Monte Carlo passes of every depth interval with given dropout masks.

        Pass ``t`` applies mask ``t`` of each dropout layer (:meth:`dropout_masks`) to every
        row: it is one sampled network (Gal & Ghahramani 2016) evaluated on all inputs, so a
        map's pass is a spatially coherent realisation and does not depend on how the map is
        tiled or batched. Per row, the pass means have the same distribution as with
        :meth:`head` in train mode, whose masks differ between rows.

        Because a pass's masks and a depth interval's FiLM factors are the same for every
        row, both fold into the weights: depth ``d`` conditions through
        ``W diag(1 + gamma_d)`` and bias ``W beta_d + b``, and mask ``t`` scales the rows of
        the next layer's weight matrix. What remains is one matmul per layer and pass, with
        no elementwise mask or FiLM work on the activations.

        Parameters
        ----------
        fused
            ``(B, fusion_dim)`` output of :meth:`fuse`.
        depth
            ``(D, 3)`` depth features of the intervals.
        masks
            Per dropout layer, ``(passes, width)`` (:meth:`dropout_masks`).

        Returns
        -------
        mean, logvar
            ``(passes, D, B)`` each.
        """
        n, n_depth = fused.shape[0], depth.shape[0]
        gamma, beta = self.film(self.depth_mlp(depth)).chunk(2, dim=1)
        w_in = self.head_in.weight.T  # (fusion, head0)
        scaled = (1 + gamma)[:, :, None] * w_in[None]  # (D, fusion, head0)
        weight = scaled.permute(1, 0, 2).reshape(w_in.shape[0], -1)
        bias = (beta @ w_in + self.head_in.bias).reshape(-1)
        # Rows are pixel-major: row p * D + d is pixel p at depth d.
        h = torch.addmm(bias, fused, weight).relu_().reshape(n * n_depth, -1)
        layers = [*self.head_layers, self.out]
        passes = int(masks[0].shape[0])
        raw = torch.empty((passes, n * n_depth, 2), dtype=h.dtype, device=h.device)
        for t in range(passes):
            x = h
            for i, layer in enumerate(layers):
                folded = masks[i][t][:, None] * layer.weight.T
                x = torch.addmm(layer.bias, x, folded)
                if i < len(layers) - 1:
                    x = x.relu_()
            raw[t] = x
        mean, logvar = self._output(raw.reshape(-1, 2))
        shape = (passes, n, n_depth)
        return mean.reshape(shape).transpose(1, 2), logvar.reshape(shape).transpose(1, 2)

    def _output(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        c = self.config
        mean = c.target_shift + c.target_scale * raw[:, 0]
        lo, hi = c.logvar_range
        logvar = torch.clamp(raw[:, 1] + 2.0 * math.log(c.target_scale), lo, hi)
        return mean, logvar

    def forward(
        self, cont: Tensor, mask: Tensor, cat: Tensor, depth: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of log1p(SOC g/kg), each ``(B,)``."""
        return self.head(self.trunk(cont, mask, cat, depth))

    # ------------------------------------------------------------------ fine-tuning
    def add_group(
        self,
        name: str,
        n_bands: int,
        seed: int = 0,
        vocab_sizes: Mapping[str, int] | None = None,
    ) -> None:
        """Add a new covariate group whose contribution starts at exactly zero.

        Parameters
        ----------
        name
            Group name (must match :meth:`FeatureSpec.add_group`).
        n_bands
            Number of continuous bands in the group (0 for categorical bands only); their
            columns follow the existing ones.
        seed
            Seed for the new encoder's and embeddings' initialisation.
        vocab_sizes
            Categorical bands of the group -> embedding rows (classes + 1), in column order
            after the existing categorical bands.
        """
        vocab = {str(k): int(v) for k, v in (vocab_sizes or {}).items()}
        if name in self.config.all_groups:
            raise BandMismatch(
                f"group {name!r} already exists in the network ({list(self.config.all_groups)!r})"
                "; choose a new name"
            )
        if int(n_bands) < 0 or (int(n_bands) == 0 and not vocab):
            raise ConfigError(
                f"n_bands must be >= 1, or 0 with categorical vocab_sizes; got {n_bands!r}"
            )
        added = dict(self.config.added_groups)
        if int(n_bands):
            added[name] = int(n_bands)
        self.config = dataclasses.replace(
            self.config,
            added_groups=added,
            added_vocab_sizes={**self.config.added_vocab_sizes, **vocab},
        )
        new: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if int(n_bands):
                self._append_group(int(n_bands))
                new += [self.added_encoders[-1], self.adapters[-1]]
            for size in vocab.values():
                self._append_embedding(size)
                new += [self.added_embeddings[-1], self.embedding_adapters[-1]]
        ref = self.fusion.weight
        for module in new:
            module.to(device=ref.device, dtype=ref.dtype)
        self._offsets = self._group_offsets()

    def count_parameters(self, trainable_only: bool = False) -> int:
        """Count parameters (optionally only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with only its Dropout modules in train mode.

    The previous train/eval flag of every module is restored on exit.

    Examples
    --------
    >>> net = SocNet(NetworkConfig(groups={"g": 1}))
    >>> with mc_dropout(net):
    ...     sorted({type(m).__name__ for m in net.modules() if m.training})
    ['Dropout']
    >>> net.training
    True
    """
    saved = {m: m.training for m in model.modules()}
    try:
        model.eval()
        for m in model.modules():
            if isinstance(m, _DropoutNd):
                m.train()
        yield model
    finally:
        for m, flag in saved.items():
            m.train(flag)

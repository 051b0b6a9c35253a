"""The SOC network, its feature encoding, model bundles and the training loop.

Typical use::

    spec = FeatureSpec.from_catalog(load_catalog("global_10arcmin")).fit(table)
    data = spec.encode(table)
    model = SocNet(NetworkConfig.from_spec(spec), seed=0)
    history = fit(model, data, train_idx, val_idx, TrainConfig(seed=0))
    save_bundle("global.socmap", model, spec, metadata={"depth_set": "globalsoilmap"})
    pred = predict(load_bundle("global.socmap").model, data, mc_passes=32)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from socmap.model.bundle import Bundle, fingerprint, load_bundle, save_bundle
    from socmap.model.features import Encoded, FeatureSpec
    from socmap.model.network import NetworkConfig, SocNet, mc_dropout
    from socmap.model.train import History, Prediction, TrainConfig, fit, predict

# Imported on first use, so that torch-free submodules (e.g. socmap.model.methods, which the
# CLI uses to check names before any heavy work) do not load torch through this package.
_HOMES = {
    "bundle": ("Bundle", "fingerprint", "load_bundle", "save_bundle"),
    "features": ("Encoded", "FeatureSpec"),
    "network": ("NetworkConfig", "SocNet", "mc_dropout"),
    "train": ("History", "Prediction", "TrainConfig", "fit", "predict"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import a public member from its submodule on first use (PEP 562)."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'socmap.model' has no attribute {name!r}")
    value = getattr(import_module(f"socmap.model.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Bundle",
    "Encoded",
    "FeatureSpec",
    "History",
    "NetworkConfig",
    "Prediction",
    "SocNet",
    "TrainConfig",
    "fingerprint",
    "fit",
    "load_bundle",
    "mc_dropout",
    "predict",
    "save_bundle",
]

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

from socmap.model.bundle import Bundle, fingerprint, load_bundle, save_bundle
from socmap.model.features import Encoded, FeatureSpec
from socmap.model.network import NetworkConfig, SocNet, mc_dropout
from socmap.model.train import History, Prediction, TrainConfig, fit, predict

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

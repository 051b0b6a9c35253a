"""Model bundles: a directory with ``weights.safetensors`` and ``model.json``.

``model.json`` records everything needed to rebuild and trust the model without running
code from the bundle: the architecture (:class:`~socmap.model.network.NetworkConfig`), the
covariates per group, normalisation statistics and vocabularies
(:class:`~socmap.model.features.FeatureSpec`), the target transform and units, the SHA-256
and tensor shapes of the weights, the socmap version, and free metadata (depth set,
training-data fingerprint, CV metrics, calibration, ...). Weights are read with
``safetensors``; nothing is ever unpickled.

The area of applicability (Meyer & Pebesma 2021), when saved, is split in two: its threshold,
normalisation and settings go into ``model.json`` (``metadata["aoa"]``), and its reference
set and training DI, which grow with the training data, go into ``weights.safetensors`` as
float64 tensors named ``aoa.train`` and ``aoa.train_di``.

A bundle may also carry a regional adjustment of its network's predictions
(:class:`~socmap.model.adjustment.RegionalAdjustment`: what the prior-based methods and the
regional forests fit): its settings under ``metadata["adjustment"]`` and its forest's node
arrays as tensors named ``adjustment.*``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from socmap._io import atomic_path, check_replaceable, is_socmap_model_dir
from socmap._records import file_sha256
from socmap.catalog import DepthSet
from socmap.errors import BandMismatch, BundleError, InputNotFound, SocmapError
from socmap.model.adjustment import RegionalAdjustment
from socmap.model.features import FeatureSpec
from socmap.model.network import NetworkConfig, SocNet
from socmap.validate.aoa import AreaOfApplicability

__all__ = ["BUNDLE_FORMAT", "METADATA_KEYS", "Bundle", "fingerprint", "load_bundle", "save_bundle"]

BUNDLE_FORMAT = "socmap-model-bundle/1"
WEIGHTS = "weights.safetensors"
AOA_PREFIX = "aoa."
ADJUSTMENT_PREFIX = "adjustment."
MODEL_JSON = "model.json"
#: Metadata entries with an agreed meaning (others are stored as given).
METADATA_KEYS = (
    "depth_set",
    "band_units",
    "training_fingerprint",
    "cv_metrics",
    "calibration",
    "aoa",
    "adjustment",
    "train_history",
    "notes",
)


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded model bundle.

    Attributes
    ----------
    model
        The network, in eval mode.
    spec
        Feature encoding of its inputs.
    config
        Its architecture.
    metadata
        Free metadata saved with it (see :data:`METADATA_KEYS`).
    path
        Where it was loaded from.
    socmap_version
        Version of socmap that wrote it.
    aoa
        Area of applicability of the training data, if saved with the bundle.
    adjustment
        Regional adjustment of the network's predictions (and its forest), if any.
    """

    model: SocNet
    spec: FeatureSpec
    config: NetworkConfig
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    socmap_version: str = ""
    aoa: AreaOfApplicability | None = None
    adjustment: RegionalAdjustment | None = None

    @property
    def band_names(self) -> list[str]:
        """Covariates the network reads."""
        return self.spec.band_names

    @property
    def input_bands(self) -> list[str]:
        """Covariates the model reads: the network's, then the adjustment forest's others."""
        extra = [] if self.adjustment is None else list(self.adjustment.bands)
        return list(dict.fromkeys([*self.spec.band_names, *extra]))

    @property
    def depth_set(self) -> DepthSet | None:
        """Depth set it was trained for, if recorded."""
        d = self.metadata.get("depth_set")
        if not isinstance(d, Mapping):
            return None
        try:
            return DepthSet.model_validate(d)
        except ValueError as exc:
            raise BundleError(
                f"bundle {str(self.path)!r} has an invalid depth_set {d!r}; re-save it"
            ) from exc

    @property
    def band_units(self) -> dict[str, str]:
        """Units of the covariates it was trained on, ``{band: units}``, as far as recorded.

        Bundles record them under ``metadata["band_units"]``; a bundle from before that,
        trained on a built-in catalog (``metadata["catalog"]``), takes that catalog's units.
        """
        recorded = self.metadata.get("band_units")
        if isinstance(recorded, Mapping):
            return {str(k): str(v) for k, v in recorded.items()}
        name = self.metadata.get("catalog")
        if not isinstance(name, str):
            return {}
        from socmap.catalog import load_catalog

        try:
            return load_catalog(name).band_units
        except SocmapError:  # a user's catalog that is not here: nothing to compare with
            return {}

    def check_units(self, units: Mapping[str, str | None]) -> None:
        """Raise :class:`~socmap.errors.BandMismatch` when a band's units differ from training.

        ``units`` is ``{band: units}`` of the covariates at hand (a cube's band table);
        bands that either side does not record are not compared. Units are compared
        without case and surrounding spaces.

        Examples
        --------
        >>> spec = FeatureSpec(groups={"terrain": ("dem",)}, mean={"dem": 0}, std={"dem": 1})
        >>> cfg = NetworkConfig.from_spec(spec)
        >>> b = Bundle(SocNet(cfg), spec, cfg, metadata={"band_units": {"dem": "m"}})
        >>> b.check_units({"dem": "km"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        socmap.errors.BandMismatch: band 'dem' is in 'km' here but the model was trained on 'm'; ...
        """
        trained = self.band_units
        wrong = {
            b: (str(units[b]), trained[b])
            for b in self.input_bands
            if b in trained and units.get(b) is not None and _norm(units[b]) != _norm(trained[b])
        }
        if wrong:
            band, (have, want) = next(iter(wrong.items()))
            more = f" (and {len(wrong) - 1} more: {sorted(wrong)[1:]!r})" if len(wrong) > 1 else ""
            raise BandMismatch(
                f"band {band!r} is in {have!r} here but the model was trained on {want!r}"
                f"{more}; convert it (scale/offset in the catalog entry, units: {want!r}) "
                "and rebuild the cube, or fine-tune a model on these units"
            )

    def check_bands(self, available: Iterable[str]) -> None:
        """Raise :class:`~socmap.errors.BandMismatch` naming the model's bands not available.

        Examples
        --------
        >>> spec = FeatureSpec(groups={"climate": ("t", "p")}, mean={"t": 0, "p": 0},
        ...                    std={"t": 1, "p": 1})
        >>> cfg = NetworkConfig.from_spec(spec)
        >>> Bundle(SocNet(cfg), spec, cfg).check_bands(["t", "p", "elev"])
        """
        have = set(available)
        missing = [b for b in self.input_bands if b not in have]
        if missing:
            where = f" {str(self.path)!r}" if self.path else ""
            raise BandMismatch(
                f"the cube lacks bands {missing!r} that model{where} needs; add them to the "
                "catalog, or fine-tune with the bands you have"
            )


def _units_map(units: Any) -> bool:
    return isinstance(units, Mapping) and all(isinstance(v, str) for v in units.values())


def _norm(units: Any) -> str:
    return str(units).strip().lower()


def _jsonable(value: Any) -> Any:
    if isinstance(value, DepthSet):
        return {"name": value.name, "intervals": [list(i) for i in value.intervals]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def cpu_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies of a module's state dict, ready to save.

    Parameters
    ----------
    module
        The network.

    Returns
    -------
    dict
        Parameter and buffer name -> tensor.
    """
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def write_weights_dir(
    dest: Path,
    tensors: dict[str, torch.Tensor],
    document: Callable[[str], dict[str, Any]],
    *,
    overwrite: bool,
) -> Path:
    """Write a model directory atomically: the weights file, then its ``model.json``.

    The directory is written next to ``dest`` and renamed into place, so a failure leaves
    nothing half-written.

    Parameters
    ----------
    dest
        Directory to create.
    tensors
        Tensors of the weights file (safetensors).
    document
        Builds the ``model.json`` content from the weights file's SHA-256.
    overwrite
        Replace an existing ``dest`` (otherwise :class:`~socmap.errors.OutputExists`).

    Returns
    -------
    pathlib.Path
        ``dest``.
    """
    # a user's folder at dest is never replaced, --overwrite or not (only socmap's own models)
    check_replaceable(dest, "model bundle", is_socmap_model_dir, overwrite)
    with atomic_path(dest, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        save_file(tensors, str(tmp / WEIGHTS))
        doc = document(file_sha256(tmp / WEIGHTS))
        (tmp / MODEL_JSON).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return dest


def save_bundle(
    path: str | os.PathLike[str],
    model: SocNet,
    spec: FeatureSpec,
    config: NetworkConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    aoa: AreaOfApplicability | None = None,
    adjustment: RegionalAdjustment | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a model bundle directory atomically.

    Parameters
    ----------
    path
        Bundle directory to create.
    model
        The network.
    spec
        Its fitted feature spec.
    config
        Its architecture (default ``model.config``; must equal it).
    metadata
        JSON-serialisable entries such as ``depth_set`` (a name or a
        :class:`~socmap.catalog.DepthSet`), ``training_fingerprint`` (:func:`fingerprint`),
        ``cv_metrics``, ``calibration``. NumPy values are converted.
    aoa
        Fitted area of applicability of the training data (stored as described above).
    adjustment
        Regional adjustment of the network's predictions (stored as described above).
    overwrite
        Replace an existing bundle (otherwise :class:`~socmap.errors.OutputExists`).

    Returns
    -------
    pathlib.Path
        The bundle directory.

    Raises
    ------
    BundleError
        If config, spec and model disagree, the spec is unfitted or metadata is not JSON.
    """
    dest = Path(path)
    config = model.config if config is None else config
    if config != model.config:
        raise BundleError(
            f"config {config!r} differs from the model's own {model.config!r}; "
            "pass config=None to save the model's config"
        )
    if not spec.is_fitted:
        raise BundleError("the feature spec is not fitted; call spec.fit(table) before saving")
    try:
        config.check_spec(spec)
    except BandMismatch as exc:
        raise BundleError(str(exc)) from None
    meta = dict(metadata or {})
    if aoa is not None:
        meta["aoa"] = aoa.to_dict(arrays=False)
    adjustment_arrays: dict[str, np.ndarray] = {}
    if adjustment is not None:
        adjustment_arrays, meta["adjustment"] = adjustment.to_record()
    if isinstance(meta.get("depth_set"), str):
        from socmap.catalog import get_depth_set

        meta["depth_set"] = get_depth_set(meta["depth_set"])
    try:
        meta_json = json.loads(json.dumps(meta, default=_jsonable, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise BundleError(
            f"bundle metadata must be JSON-serialisable without NaN ({exc}); "
            "convert those entries to plain numbers, strings, lists or dicts"
        ) from None
    from socmap._versions import __version__

    tensors = cpu_weights(model)
    if aoa is not None:
        for key, arr in aoa.arrays().items():
            tensors[AOA_PREFIX + key] = torch.from_numpy(np.ascontiguousarray(arr, np.float64))
    for key, arr in adjustment_arrays.items():
        tensors[ADJUSTMENT_PREFIX + key] = torch.from_numpy(np.ascontiguousarray(arr))

    def document(sha256: str) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "socmap_version": __version__,
            "target_transform": spec.target,
            "units": spec.units,
            "network": config.to_dict(),
            "features": spec.to_dict(),
            "weights": {
                "file": WEIGHTS,
                "sha256": sha256,
                "tensors": {k: list(v.shape) for k, v in tensors.items()},
            },
            "metadata": meta_json,
        }

    return write_weights_dir(dest, tensors, document, overwrite=overwrite)


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Load a model bundle written by :func:`save_bundle`.

    The weights file's SHA-256 is checked against ``model.json`` and every tensor must
    match the architecture by name and shape.

    Raises
    ------
    InputNotFound
        If the directory does not exist.
    BundleError
        On a missing or corrupt ``model.json`` or weights file, missing keys, or weights that
        do not fit the recorded architecture.
    """
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise BundleError(
            f"model bundle {str(root)!r} is a file; a bundle is a folder holding model.json "
            "and weights.safetensors (give that folder's path)"
        )
    if not root.is_dir():
        raise InputNotFound(
            f"model bundle {str(root)!r} does not exist; check the path or train one first"
        )
    where = f"model bundle {str(root)!r}"
    fix = "re-create it with socmap pretrain or socmap finetune (Python: save_bundle)"
    meta_path = root / MODEL_JSON
    if not meta_path.is_file():
        raise BundleError(f"{where} has no {MODEL_JSON}; {fix}")
    try:
        doc = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: {MODEL_JSON} is not valid JSON ({exc}); {fix}") from None
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: {MODEL_JSON} must hold a JSON object; {fix}")
    if doc.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where}: format {doc.get('format')!r} is not {BUNDLE_FORMAT!r}; {fix}")
    missing = [k for k in ("network", "features", "weights") if k not in doc]
    if missing:
        raise BundleError(f"{where}: {MODEL_JSON} lacks keys {missing!r}; {fix}")
    try:
        config = NetworkConfig.from_dict(doc["network"])
        spec = FeatureSpec.from_dict(doc["features"])
        config.check_spec(spec)
    except SocmapError as exc:
        raise BundleError(f"{where}: {exc}; {fix}") from None
    # model.json states the target twice (top level for readers, features for the code):
    # an edit to one alone would otherwise be ignored without a word
    for key, used in (("target_transform", spec.target), ("units", spec.units)):
        if key in doc and doc[key] != used:
            raise BundleError(
                f"{where}: {MODEL_JSON} says {key} {doc[key]!r} but its features were "
                f"trained on {used!r}; a bundle's target cannot be changed by editing it. "
                f"Restore {key!r} to {used!r}, or {fix}"
            )
    meta = doc.get("metadata", {})
    units = meta.get("band_units") if isinstance(meta, Mapping) else None
    for key, value, ok in (
        ("metadata", meta, isinstance(meta, Mapping)),
        ("metadata.band_units", units, units is None or _units_map(units)),
    ):  # once a list of units skipped the check of the cube's units without a word
        if not ok:
            raise BundleError(
                f"{where}: {MODEL_JSON} {key} is {str(value)[:80]!r}, not an object of band "
                f'-> units (e.g. {{"dem": "m"}}); restore it, or {fix}'
            )
    weights_path = root / WEIGHTS
    if not weights_path.is_file():
        raise BundleError(f"{where} has no {WEIGHTS}; {fix}")
    expected = doc["weights"].get("sha256") if isinstance(doc["weights"], Mapping) else None
    actual = file_sha256(weights_path)
    if expected != actual:
        raise BundleError(
            f"{where}: {WEIGHTS} has SHA-256 {actual!r} but {MODEL_JSON} records {expected!r} "
            f"(corrupt or replaced file); {fix}"
        )
    try:
        tensors = load_file(str(weights_path))
    except Exception as exc:  # safetensors raises its own error types on a corrupt header
        raise BundleError(f"{where}: cannot read {WEIGHTS} ({exc}); {fix}") from None
    aoa_arrays = {
        k[len(AOA_PREFIX) :]: tensors.pop(k).numpy()
        for k in list(tensors)
        if k.startswith(AOA_PREFIX)
    }
    adjustment_arrays = {
        k[len(ADJUSTMENT_PREFIX) :]: tensors.pop(k).numpy()
        for k in list(tensors)
        if k.startswith(ADJUSTMENT_PREFIX)
    }
    model = SocNet(config)
    wanted = model.state_dict()
    absent = sorted(set(wanted) - set(tensors))
    extra = sorted(set(tensors) - set(wanted))
    shapes = {
        k: (tuple(tensors[k].shape), tuple(v.shape))
        for k, v in wanted.items()
        if k in tensors and (tensors[k].shape != v.shape or tensors[k].dtype != v.dtype)
    }
    if absent or extra or shapes:
        raise BundleError(
            f"{where}: weights do not match the architecture (missing {absent!r}, unexpected "
            f"{extra!r}, shape/dtype mismatch {shapes!r}); {fix}"
        )
    _check_numbers(tensors, spec, where, fix)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    metadata = doc.get("metadata") or {}
    aoa = None
    if isinstance(metadata.get("aoa"), Mapping) and aoa_arrays:
        try:
            aoa = AreaOfApplicability.from_dict({**metadata["aoa"], **aoa_arrays})
        except SocmapError as exc:
            raise BundleError(f"{where}: {exc}; {fix}") from None
    adjustment = None
    if isinstance(metadata.get("adjustment"), Mapping):
        try:
            adjustment = RegionalAdjustment.from_record(metadata["adjustment"], adjustment_arrays)
        except SocmapError as exc:
            raise BundleError(f"{where}: {exc}; {fix}") from None
    return Bundle(
        model=model,
        spec=spec,
        config=config,
        metadata=dict(metadata),
        path=root,
        socmap_version=str(doc.get("socmap_version", "")),
        aoa=aoa,
        adjustment=adjustment,
    )


def _check_numbers(tensors: Mapping[str, Any], spec: Any, where: str, fix: str) -> None:
    """Refuse weights or normalisation that can only give NaN maps (a hash proves no sanity)."""
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(t.isfinite().all())]
    if bad:
        raise BundleError(
            f"{where}: weights {bad[:5]!r} hold NaN or infinite values, so every prediction "
            f"would be NaN; {fix} from a training that converged"
        )
    scales = {f"std[{k!r}]": v for k, v in spec.std.items()}
    scales["target_std"] = spec.target_std
    wrong = {k: v for k, v in scales.items() if not (math.isfinite(v) and v > 0)}
    odd_means = {k: v for k, v in spec.mean.items() if not math.isfinite(v)}
    if wrong or odd_means or not math.isfinite(spec.target_mean):
        raise BundleError(
            f"{where}: feature normalisation is unusable (SDs must be finite and > 0, means "
            f"finite; got {dict(list(wrong.items())[:5])!r}, means {odd_means!r}, target mean "
            f"{spec.target_mean!r}); {fix}"
        )


def fingerprint(table: pd.DataFrame) -> str:
    """SHA-256 of a canonical CSV of ``table`` (columns sorted by name, rows as given).

    Floats are written with round-trip precision, so any change of value, row order, column
    set or missingness changes the fingerprint; column order does not.

    Examples
    --------
    >>> a = pd.DataFrame({"x": [1.0, 2.0], "soc_g_kg": [10.0, float("nan")]})
    >>> fingerprint(a) == fingerprint(a[["soc_g_kg", "x"]])
    True
    >>> fingerprint(a).startswith("sha256:")
    True
    """
    canon = table[sorted(table.columns, key=str)]
    text = canon.to_csv(index=False, lineterminator="\n", na_rep="NA")
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from socmap.catalog import DepthSet
from socmap.errors import BandMismatch, BundleError, InputNotFound, OutputExists
from socmap.model.bundle import fingerprint, load_bundle, save_bundle
from socmap.model.features import FeatureSpec
from socmap.model.network import NetworkConfig, SocNet
from socmap.model.train import predict

SMALL = {"enc_dim": 4, "emb_dim": 2, "fusion_dim": 8, "depth_dim": 4, "head": (16, 8)}


def make_table(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "t": rng.normal(15, 5, n),
            "elev.m": rng.normal(300, 100, n),  # a '.' in a band name must survive
            "lc": rng.choice([2, 4, 6], size=n).astype(float),
            "top_cm": 0.0,
            "bottom_cm": rng.choice([5.0, 30.0], size=n),
            "soc_g_kg": rng.gamma(2.0, 8.0, n),
        }
    )


@pytest.fixture
def trained():
    table = make_table()
    spec = FeatureSpec(
        groups={"climate": ("t",), "terrain": ("elev.m",)},
        categorical={"lc": ()},
        categorical_groups={"lc": "land_cover"},
    ).fit(table)
    model = SocNet(NetworkConfig.from_spec(spec, **SMALL), seed=3)
    with torch.no_grad():  # move off the init so a silent re-init would be caught
        for p in model.parameters():
            p.add_(0.01 * torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape).sin())
    return model, spec, table


def test_round_trip_is_exact(tmp_path, trained):
    model, spec, table = trained
    meta = {
        "depth_set": "globalsoilmap",
        "training_fingerprint": fingerprint(table),
        "cv_metrics": {"rmse": np.float32(0.25), "r2": 0.6},
        "calibration": {"q90": np.array([1.2, 1.3])},
        "aoa": {"threshold": 0.41},
    }
    out = save_bundle(tmp_path / "m.socmap", model, spec, None, meta)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "weights.safetensors"]
    bundle = load_bundle(out)
    assert not bundle.model.training
    a, b = model.state_dict(), bundle.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert bundle.spec == spec and bundle.config == model.config
    enc = spec.encode(table)
    p1 = predict(model, enc, mc_passes=4, seed=1)
    p2 = predict(bundle.model, bundle.spec.encode(table), mc_passes=4, seed=1)
    assert np.array_equal(p1.mean, p2.mean) and np.array_equal(p1.sd, p2.sd)
    assert bundle.metadata["cv_metrics"]["rmse"] == pytest.approx(0.25)
    assert bundle.metadata["calibration"]["q90"] == [1.2, 1.3]
    assert bundle.metadata["training_fingerprint"] == fingerprint(table)
    assert isinstance(bundle.depth_set, DepthSet)
    assert bundle.depth_set.intervals[0] == (0.0, 5.0)
    doc = json.loads((out / "model.json").read_text())
    assert doc["target_transform"] == "log1p" and doc["units"] == "g/kg"
    assert doc["features"]["groups"]["terrain"] == ["elev.m"]
    assert doc["socmap_version"]


def test_round_trip_with_an_added_group(tmp_path, trained):
    model, spec, table = trained
    table = table.assign(ndvi=np.linspace(0, 1, len(table)))
    spec2 = spec.add_group("regional", ["ndvi"], table)
    model.add_group("regional", 1)
    bundle = load_bundle(save_bundle(tmp_path / "m", model, spec2))
    assert bundle.config.added_groups == {"regional": 1}
    enc = spec2.encode(table)
    p1 = predict(model, enc, mc_passes=1, dropout=False)
    p2 = predict(bundle.model, enc, mc_passes=1, dropout=False)
    assert np.array_equal(p1.mean, p2.mean)


def test_loading_never_unpickles(tmp_path, trained, monkeypatch):
    model, spec, _ = trained
    out = save_bundle(tmp_path / "m", model, spec)

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    loaded = load_bundle(out).model.state_dict()
    saved = model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_check_bands_names_missing(tmp_path, trained):
    model, spec, _ = trained
    bundle = load_bundle(save_bundle(tmp_path / "m", model, spec))
    bundle.check_bands(["lc", "t", "elev.m", "extra"])
    with pytest.raises(BandMismatch, match=r"\['elev\.m', 'lc'\]"):
        bundle.check_bands(["t"])


def test_missing_directory_is_input_not_found(tmp_path):
    with pytest.raises(InputNotFound, match="does not exist"):
        load_bundle(tmp_path / "nope")


def _corrupt_json(d):
    (d / "model.json").write_text("{not json")


def _drop_features(d):
    doc = json.loads((d / "model.json").read_text())
    del doc["features"]
    (d / "model.json").write_text(json.dumps(doc))


def _flip_weights(d):
    raw = bytearray((d / "weights.safetensors").read_bytes())
    raw[-5] ^= 0xFF
    (d / "weights.safetensors").write_bytes(bytes(raw))


def _truncate_weights(d):
    (d / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")


def _drop_weights(d):
    (d / "weights.safetensors").unlink()


def _edit_target(d):
    doc = json.loads((d / "model.json").read_text())
    doc["units"] = "%"
    (d / "model.json").write_text(json.dumps(doc))


def _bad_network(d):
    doc = json.loads((d / "model.json").read_text())
    doc["network"]["head"] = [16]
    (d / "model.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (_corrupt_json, "not valid JSON"),
        (_drop_features, r"lacks keys \['features'\]"),
        (_flip_weights, "SHA-256"),
        (_drop_weights, "has no weights.safetensors"),
        (_bad_network, "dropout"),
        (_edit_target, r"says units '%' but its features were trained on 'g/kg'"),
    ],
)
def test_damaged_bundles_raise_bundle_error(tmp_path, trained, damage, match):
    model, spec, _ = trained
    out = save_bundle(tmp_path / "m", model, spec)
    damage(out)
    with pytest.raises(BundleError, match=match) as info:
        load_bundle(out)
    assert str(out) in str(info.value) and "re-create it with socmap pretrain" in str(info.value)
    assert "\n" not in str(info.value)


def _rewrite_weights(d, tensors):
    import hashlib

    save_file(tensors, str(d / "weights.safetensors"))
    doc = json.loads((d / "model.json").read_text())
    doc["weights"]["sha256"] = hashlib.sha256((d / "weights.safetensors").read_bytes()).hexdigest()
    (d / "model.json").write_text(json.dumps(doc))


def test_mismatched_weights_raise_bundle_error(tmp_path, trained):
    model, spec, _ = trained
    out = save_bundle(tmp_path / "m", model, spec)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    missing = dict(state)
    del missing["out.bias"]
    _rewrite_weights(out, missing)
    with pytest.raises(BundleError, match=r"missing \['out\.bias'\]"):
        load_bundle(out)
    reshaped = dict(state, **{"out.bias": torch.zeros(3)})
    _rewrite_weights(out, reshaped)
    with pytest.raises(BundleError, match=r"'out\.bias': \(\(3,\), \(2,\)\)"):
        load_bundle(out)
    _truncate_weights(out)
    doc = json.loads((out / "model.json").read_text())
    import hashlib

    doc["weights"]["sha256"] = hashlib.sha256(
        (out / "weights.safetensors").read_bytes()
    ).hexdigest()
    (out / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"cannot read weights\.safetensors"):
        load_bundle(out)


def test_save_refuses_inconsistent_inputs(tmp_path, trained):
    model, spec, _ = trained
    with pytest.raises(BundleError, match="not fitted"):
        save_bundle(tmp_path / "a", model, FeatureSpec(groups={"climate": ("t",)}))
    other = spec.add_group("regional", ["x"], {"x": (0.0, 1.0)})
    with pytest.raises(BundleError, match="does not match the network"):
        save_bundle(tmp_path / "b", model, other)
    with pytest.raises(BundleError, match="differs from the model"):
        save_bundle(tmp_path / "c", model, spec, NetworkConfig.from_spec(spec))
    with pytest.raises(BundleError, match="JSON"):
        save_bundle(tmp_path / "d", model, spec, metadata={"cv_metrics": {"r2": float("nan")}})
    with pytest.raises(BundleError, match="JSON"):
        save_bundle(tmp_path / "e", model, spec, metadata={"when": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written
    save_bundle(tmp_path / "f", model, spec)
    with pytest.raises(OutputExists):
        save_bundle(tmp_path / "f", model, spec, overwrite=False)


def test_fingerprint_is_canonical_and_sensitive():
    t = make_table()
    f = fingerprint(t)
    assert f == fingerprint(t[list(reversed(t.columns))])
    assert f == fingerprint(t.copy())
    changed = t.copy()
    changed.loc[3, "soc_g_kg"] = np.nextafter(changed.loc[3, "soc_g_kg"], np.inf)
    assert fingerprint(changed) != f
    assert fingerprint(t.iloc[::-1]) != f
    assert fingerprint(t.assign(extra=1)) != f
    missing = t.copy()
    missing.loc[0, "t"] = np.nan
    assert fingerprint(missing) != f


def test_round_trip_with_regional_categorical_bands_and_an_aoa(tmp_path, trained):
    from safetensors.torch import load_file

    from socmap.validate.aoa import AreaOfApplicability

    model, spec, table = trained
    table = table.assign(geology=np.resize([3.0, 7.0, 9.0], len(table)))
    spec2 = spec.add_group("regional", [], table, categorical=["geology"])
    assert spec2.categorical["geology"] == (3, 7, 9)
    assert spec2.categorical_groups["geology"] == "regional"
    model.add_group("regional", 0, vocab_sizes={"geology": spec2.vocab_sizes["geology"]})
    aoa = AreaOfApplicability().fit(table[["t", "elev.m"]])
    path = save_bundle(tmp_path / "m", model, spec2, aoa=aoa)
    bundle = load_bundle(path)
    enc = spec2.encode(table)
    p1 = predict(model, enc, mc_passes=1, dropout=False)
    p2 = predict(bundle.model, enc, mc_passes=1, dropout=False)
    assert np.array_equal(p1.mean, p2.mean)
    # the threshold is in model.json, the reference set a float64 tensor beside the weights
    doc = json.loads((path / "model.json").read_text())
    assert doc["metadata"]["aoa"]["threshold"] == aoa.threshold_
    assert "train" not in doc["metadata"]["aoa"]
    tensors = load_file(str(path / "weights.safetensors"))
    assert tensors["aoa.train"].dtype == torch.float64
    assert bundle.aoa is not None and bundle.aoa.threshold_ == aoa.threshold_
    new = table[["t", "elev.m"]].iloc[:7] + 3.0
    np.testing.assert_array_equal(bundle.aoa.predict_di(new), aoa.predict_di(new))
    assert load_bundle(save_bundle(tmp_path / "plain", model, spec2)).aoa is None


def test_bundles_that_can_only_map_nan_are_refused_on_load(tmp_path, trained):
    model, spec, _ = trained
    out = save_bundle(tmp_path / "m", model, spec)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["out.bias"] = torch.full_like(state["out.bias"], float("nan"))
    _rewrite_weights(out, state)  # the hash matches: only the numbers are wrong
    with pytest.raises(BundleError, match=r"weights \['out\.bias'\] hold NaN"):
        load_bundle(out)

    out = save_bundle(tmp_path / "n", model, spec)
    doc = json.loads((out / "model.json").read_text())
    doc["features"]["std"]["t"] = 0.0
    (out / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"normalisation is unusable.*std\['t'\]\": 0\.0"):
        load_bundle(out)


def test_an_adjustment_round_trips_and_an_altered_forest_is_refused(tmp_path, trained):
    from safetensors.torch import load_file
    from sklearn.ensemble import RandomForestRegressor

    from socmap._records import file_sha256
    from socmap.model.adjustment import RegionalAdjustment

    model, spec, table = trained
    x = table[["t", "top_cm", "bottom_cm"]].to_numpy(dtype=float, copy=True)
    x[::7, 0] = np.nan  # trees that learned where missing values go
    forest = RandomForestRegressor(10, random_state=0).fit(x, np.log1p(table["soc_g_kg"]))
    adj = RegionalAdjustment(["t"], slope=0.5, level=0.1, shrink=0.8, forest=forest,
                             depth_offsets={(0.0, 5.0): 0.2})  # fmt: skip
    out = save_bundle(tmp_path / "m", model, spec, adjustment=adj)
    loaded = load_bundle(out).adjustment
    assert loaded is not None and loaded.depth_offsets == {(0.0, 5.0): 0.2}
    mean, sd = np.ones(len(x)), np.full(len(x), 0.3)
    for got, want in zip(loaded.apply(x, mean, sd), adj.apply(x, mean, sd), strict=True):
        np.testing.assert_array_equal(got, want)
    # a forest whose child index points outside its tree is refused, even with a matching hash
    tensors = {k: v.clone() for k, v in load_file(str(out / "weights.safetensors")).items()}
    tensors["adjustment.left_child"][0] = 10**6
    save_file(tensors, str(out / "weights.safetensors"))
    doc = json.loads((out / "model.json").read_text())
    doc["weights"]["sha256"] = file_sha256(out / "weights.safetensors")
    (out / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="tree 0 of the stored forest has invalid nodes"):
        load_bundle(out)


def test_a_save_replaces_only_a_socmap_model_never_a_users_folder(tmp_path, trained):
    model, spec, _ = trained
    mine = tmp_path / "thesis"
    (mine / "sub").mkdir(parents=True)
    (mine / "thesis.docx").write_text("years of work")
    with pytest.raises(OutputExists, match=r"'.*thesis' exists and is not a socmap model bundle"):
        save_bundle(mine, model, spec)
    assert (mine / "thesis.docx").read_text() == "years of work" and (mine / "sub").is_dir()
    first = save_bundle(tmp_path / "m.socmap", model, spec, metadata={"run": 1})
    save_bundle(first, model, spec, metadata={"run": 2})  # its own bundle: replaced
    assert load_bundle(first).metadata["run"] == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert save_bundle(empty, model, spec).joinpath("model.json").is_file()  # nothing to lose


def test_a_file_given_as_a_bundle_is_named_as_a_file(tmp_path):
    (tmp_path / "model.socmap").write_text("junk")
    with pytest.raises(BundleError, match=r"'.*model.socmap' is a file; a bundle is a folder"):
        load_bundle(tmp_path / "model.socmap")

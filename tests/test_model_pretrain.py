"""Global pretraining end to end, on the small ISIS subset of the embedded table."""

import json

import pytest

from socmap.cli import main
from socmap.model import load_bundle
from socmap.model.pretrain import pretrain, region_bbox_lonlat

FAST = {"max_epochs": 2, "patience": 2, "batch_size": 256}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    return [
        pretrain(
            root / f"run{i}",
            sources=["ISRIC-ISIS"],
            folds=3,
            train=FAST,
            mc_passes=2,
            seed=3,
            progress=False,
        )
        for i in range(2)
    ]


@pytest.mark.slow
def test_same_seed_same_bundle_and_cv_table(two_runs):
    a, b = two_runs
    assert (a.bundle / "weights.safetensors").read_bytes() == (
        b.bundle / "weights.safetensors"
    ).read_bytes()
    assert a.cv is not None and b.cv is not None
    assert a.cv.metrics.equals(b.cv.metrics)
    assert a.cv.oof["fold"].nunique() == 3


@pytest.mark.slow
def test_bundle_records_protocol_licences_and_calibration(two_runs):
    bundle = load_bundle(two_runs[0].bundle)
    meta = bundle.metadata
    assert meta["cv_protocol"]["block_size_deg"] == 5.0 and meta["cv_protocol"]["folds"] == 3
    assert {s["source"] for s in meta["training_sources"]} == {"ISRIC-ISIS"}
    assert all(s["licence"] for s in meta["training_sources"])
    assert meta["calibration"]["n"] == meta["training_counts"]["rows_with_target"]
    assert meta["training_fingerprint"].startswith("sha256:")
    depths = {r["depth"] for r in meta["cv_metrics"]}
    assert {"0-5cm", "100-200cm", "all"} <= depths
    assert bundle.band_names[:2] == ["wc_bio1_mat_degC", "wc_bio12_map_mm"]
    # rows rebalanced by climate class; the trained intervals are the depth atoms
    assert meta["balance"] == "climate" and meta["balance_power"] == 0.5
    assert bundle.spec.depth_atoms == ((0, 5), (5, 15), (15, 30), (30, 60), (60, 100), (100, 200))


@pytest.mark.slow
def test_cli_pretrain_leaves_a_region_out(tmp_path, capsys):
    kenya = "33.9,-4.7,41.9,5.0"
    out = tmp_path / "b"
    with pytest.raises(SystemExit) as exc:
        main(
            ["pretrain", "--out", str(out), "--sources", "AfSP:Af_LDSF", "--exclude-bbox", kenya,
             "--folds", "2", "--max-epochs", "1", "--mc-passes", "2"]
        )  # fmt: skip
    assert exc.value.code == 0
    meta = json.loads((out / "model.json").read_text())["metadata"]
    assert meta["exclude_bbox"] == [33.9, -4.7, 41.9, 5.0]
    assert meta["training_counts"]["excluded_by_bbox"] > 0
    assert "spatial CV" in capsys.readouterr().out


def test_region_bbox_lonlat_of_edgeroi():
    minx, miny, maxx, maxy = region_bbox_lonlat("edgeroi")
    assert 149.4 < minx < maxx < 150.1 and -30.4 < miny < maxy < -29.9


def test_cli_rejects_a_bad_bbox(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--out", str(tmp_path / "b"), "--exclude-bbox", "1,2,3"])
    assert exc.value.code == 2
    assert "minlon,minlat,maxlon,maxlat" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()

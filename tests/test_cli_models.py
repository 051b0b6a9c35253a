"""The model commands end to end on Edgeroi with the shipped global bundle."""

import inspect
import json

import numpy as np
import pandas as pd
import pytest

from socmap.catalog import embedded_data_dir
from socmap.cli import main
from socmap.cube import build_cube

BUNDLE = embedded_data_dir() / "bundles" / "global_gsm"


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return build_cube("edgeroi", None, tmp_path_factory.mktemp("e") / "e.zarr", progress=False)


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


@pytest.mark.slow
def test_finetune_writes_a_bundle_with_the_regional_group(cube, tmp_path, capsys):
    out = tmp_path / "ft"
    code, text, _ = run(
        ["finetune", BUNDLE, "--format", "edgeroi", "--cube", cube, "--strategy", "head",
         "--cv-folds", 3, "--out", out],
        capsys,
    )  # fmt: skip
    assert code == 0 and "fine-tuned (head)" in text
    doc = json.loads((out / "model.json").read_text())
    assert doc["metadata"]["strategy"] == "head"
    assert doc["metadata"]["parent_bundle"] == str(BUNDLE)
    assert "regional" in doc["features"]["groups"]
    # map-ready: intervals, a calibration from the spatial CV, and the area of applicability
    meta = doc["metadata"]
    assert len(meta["intervals"]) == 5 and meta["cv_protocol"]["folds"] == 3
    # without --cv-folds the calibration CV has 5 folds (three keep this test quick)
    from socmap.cli.models import finetune_cmd

    assert inspect.signature(finetune_cmd).parameters["cv_folds"].default == 5
    assert {g["label"] for g in meta["calibration"]["groups"]} >= {"0-5cm", "60-100cm"}
    assert meta["aoa"]["threshold"] > 0 and "aoa.train" in doc["weights"]["tensors"]
    assert "geology" in doc["features"]["categorical"]


@pytest.mark.slow
def test_finetune_prior_residual_writes_the_network_with_its_adjustment(cube, tmp_path, capsys):
    out = tmp_path / "pr"
    code, text, _ = run(
        ["finetune", BUNDLE, "--format", "edgeroi", "--cube", cube, "--strategy",
         "prior-residual", "--cv-folds", 2, "--out", out],
        capsys,
    )  # fmt: skip
    assert code == 0 and "fine-tuned (prior-residual)" in text and "epochs" not in text
    from socmap.model.bundle import load_bundle

    bundle = load_bundle(out)
    meta = bundle.metadata
    assert bundle.adjustment is not None and meta["strategy"] == "prior-residual"
    assert "geology" in bundle.adjustment.bands and "regional" not in bundle.spec.groups
    # the forest's regional bands get their units recorded, beside the global inputs'
    assert {"geology", "wc_bio1_mat_degC"} <= set(meta["band_units"])
    assert meta["cv_protocol"]["folds"] == 2 and meta["aoa"]["threshold"] > 0


@pytest.mark.slow
def test_cv_command_writes_oof_and_metrics(cube, tmp_path, capsys):
    code, text, _ = run(
        ["cv", "--format", "edgeroi", "--cube", cube, "--method", "rf", "--folds", "3",
         "--out", tmp_path],
        capsys,
    )  # fmt: skip
    assert code == 0 and "calibrated" in text
    oof = pd.read_parquet(tmp_path / "oof.parquet")
    assert oof["fold"].nunique() == 3 and oof["site_id"].nunique() > 300
    code, _, err = run(
        ["cv", "--format", "edgeroi", "--cube", cube, "--method", "full", "--out", tmp_path],
        capsys,
    )
    assert code == 2 and "--bundle" in err


@pytest.mark.slow
def test_benchmark_transfer_command(cube, tmp_path, capsys):
    code, text, _ = run(
        ["benchmark", "transfer", "--format", "edgeroi", "--cube", cube, "--bundle", BUNDLE,
         "--out", tmp_path, "--folds", "2", "--sizes", "15", "--repeats", "1",
         "--methods", "rf,global,head", "--n-estimators", "20", "--mc-passes", "4"],
        capsys,
    )  # fmt: skip
    assert code == 0 and "ΔMAE" in text
    s = pd.read_csv(tmp_path / "summary.csv")
    assert set(s["method"]) == {"rf", "global", "finetune"}
    assert (tmp_path / "skill_vs_n.png").exists()
    fits = pd.read_csv(tmp_path / "fits.csv")
    head = fits[fits["strategy"] == "head"]
    assert {"history_.best_epoch", "history_.epochs_run"} <= set(head["attribute"])
    assert set(head["fold"].astype(str)) == {"0", "1"}


@pytest.mark.slow
def test_cv_command_with_own_folds_training_sets_and_target(cube, tmp_path, capsys):
    from socmap import profiles as read

    table = read.read_edgeroi()
    sites = list(table["site_id"].unique())
    fold = {s: ("east", "west")[i % 2] for i, s in enumerate(sites)}
    table["fold"] = table["site_id"].map(fold)
    table["carbon"] = 2.0 * table["soc_g_kg"]
    path = tmp_path / "profiles.csv"
    table.drop(columns=["NOTEOBS"]).to_csv(path, index=False)
    with_soc = table.loc[table["soc_g_kg"].notna(), "site_id"].unique()
    train = {label: [s for s in with_soc if fold[s] != label][:40] for label in ("east", "west")}
    sets = tmp_path / "sets.csv"
    pd.DataFrame(
        [{"fold": label, "site_id": s} for label, ids in train.items() for s in ids]
    ).to_csv(sets, index=False)
    code, text, err = run(
        ["cv", "--profiles", path, "--crs", "EPSG:28355", "--cube", cube, "--method", "rf",
         "--folds-column", "fold", "--train-sets", sets, "--target", "carbon",
         "--block-size", "2km", "--out", tmp_path / "cv"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "block size 2km = 2000 metre(s), the units of EPSG:28355" in text
    assert "target: carbon" in text
    oof = pd.read_parquet(tmp_path / "cv" / "oof.parquet")
    np.testing.assert_array_equal(oof["fold_id"], oof["site_id"].map(fold))
    folds = pd.read_csv(tmp_path / "cv" / "folds.csv")
    assert list(folds["fold_id"]) == ["east", "west"]
    assert list(folds["n_train_sites"]) == [40, 40]
    assert "n_rows_without_target_" in folds.columns

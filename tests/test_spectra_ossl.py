"""The OSSL table layout as a spectral library, on small fixtures written in that layout."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from socmap.errors import InputNotFound, SpectraError
from socmap.spectra.datasets import load_limesoda, load_nirsoil
from socmap.spectra.ossl import read_ossl


def _visnir_fixture(tmp_path, fmt="csv", *, one_without_carbon=True):
    """NIRsoil (absorbance) rewritten as OSSL vis-NIR reflectance + a soil-lab table in %."""
    lib = load_nirsoil()
    ids = [f"uuid{i:04d}" for i in range(lib.n_samples)]
    scans = pd.DataFrame(10.0**-lib.values, columns=[f"scan_visnir.{a:g}_ref" for a in lib.axis])
    scans.insert(0, "id.layer_uuid_txt", ids)
    scans.insert(1, "dataset.code_ascii_txt", "NIRSOIL.TEST")
    lab = pd.DataFrame({"id.layer_uuid_txt": ids, "oc_usda.c729_w.pct": lib.target() / 10})
    if one_without_carbon:
        lab.loc[3, "oc_usda.c729_w.pct"] = np.nan
    lab["dataset.license.title_ascii_txt"] = "CC-BY 4.0"
    paths = tmp_path / f"visnir.{fmt}", tmp_path / f"soillab.{fmt}"
    for frame, path in zip((scans, lab), paths, strict=True):
        frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    return lib, paths


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_visnir_tables_give_back_the_library_they_were_written_from(tmp_path, fmt):
    lib, (scans, lab) = _visnir_fixture(tmp_path, fmt)
    got = read_ossl(scans, lab, "visnir")
    assert (got.unit, got.quantity) == ("nm", "reflectance")
    assert (
        got.n_samples == lib.n_samples - 1 and "left out 1 scans without a carbon" in got.notes[1]
    )
    keep = np.r_[0:3, 4 : lib.n_samples]
    np.testing.assert_allclose(-np.log10(got.values), lib.values[keep], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.target(), lib.target()[keep], rtol=1e-12)  # % x 10
    np.testing.assert_array_equal(got.axis, lib.axis)
    assert set(got.meta["dataset.license.title_ascii_txt"]) == {"CC-BY 4.0"}
    assert set(got.meta["dataset.code_ascii_txt"]) == {"NIRSOIL.TEST"}


def test_mir_tables_and_bad_tables(tmp_path):
    site = load_limesoda("O.32")  # MIR, reflectance in the embedded data
    ids = [f"m{i}" for i in range(site.n_samples)]
    scans = pd.DataFrame(-np.log10(site.values), columns=[f"scan_mir.{a:g}_abs" for a in site.axis])
    scans.insert(0, "id.layer_uuid_txt", ids)
    scans.iloc[2, 5] = np.nan  # a gap: left out and counted
    scans.to_csv(tmp_path / "mir.csv", index=False)
    pd.DataFrame({"id.layer_uuid_txt": ids, "oc_iso.10694_w.pct": site.target() / 10}).to_csv(
        tmp_path / "lab.csv", index=False
    )
    got = read_ossl(tmp_path / "mir.csv", tmp_path / "lab.csv", "mir")
    assert (got.unit, got.quantity, got.n_samples) == ("cm-1", "absorbance", site.n_samples - 1)
    assert "1 with gaps in the spectrum" in got.notes[1]
    with pytest.raises(SpectraError, match="no OSSL visnir columns"):
        read_ossl(tmp_path / "mir.csv", tmp_path / "lab.csv", "visnir")
    with pytest.raises(SpectraError, match="no organic-carbon column"):
        read_ossl(tmp_path / "mir.csv", tmp_path / "mir.csv", "mir")
    with pytest.raises(InputNotFound, match=r"nope\.csv"):
        read_ossl(tmp_path / "nope.csv", tmp_path / "lab.csv", "mir")
    twice = pd.DataFrame({"id.layer_uuid_txt": ["m0", "m0"], "oc_iso.10694_w.pct": [1.0, 2.0]})
    twice.to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(SpectraError, match=r"lists id.layer_uuid_txt 'm0' more than once"):
        read_ossl(tmp_path / "mir.csv", tmp_path / "twice.csv", "mir")
    other = pd.DataFrame({"id.layer_uuid_txt": ["x1", "x2"], "oc_iso.10694_w.pct": [1.0, 2.0]})
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(SpectraError, match=r"none of the 32 scans.*'m0'.*'x1'.*belong together"):
        read_ossl(tmp_path / "mir.csv", tmp_path / "other.csv", "mir")


def test_scans_missing_from_the_soil_lab_table_are_left_out_and_counted(tmp_path):
    lib, (scans, lab) = _visnir_fixture(tmp_path, one_without_carbon=False)
    table = pd.read_csv(lab)
    table.drop(index=[5, 9]).iloc[::-1].to_csv(lab, index=False)  # two gone, the rest reversed
    got = read_ossl(scans, lab, "visnir")
    assert (
        got.n_samples == lib.n_samples - 2 and "left out 2 scans without a carbon" in got.notes[1]
    )
    keep = np.setdiff1d(np.arange(lib.n_samples), [5, 9])
    np.testing.assert_allclose(got.target(), lib.target()[keep], rtol=1e-12)


def test_cli_turns_ossl_tables_into_a_library_the_benchmark_reads(tmp_path, cli):
    lib, (scans, lab) = _visnir_fixture(tmp_path)
    out = tmp_path / "lib.csv"
    assert cli(["spectra", "ossl", scans, lab, "--out", out]) == 0
    table = pd.read_csv(out)
    assert len(table) == lib.n_samples - 1 and "soc_g_kg" in table.columns
    assert cli(["spectra", "ossl", scans, lab, "--kind", "uv", "--out", tmp_path / "x.csv"]) == 2


def test_a_users_site_and_an_ossl_library_run_end_to_end_from_the_cli(tmp_path, cli):
    """Issue 19's acceptance: a site table and an OSSL-layout library, from the CLI."""
    _, (scans, lab) = _visnir_fixture(tmp_path, one_without_carbon=False)
    library = tmp_path / "lib.csv"
    assert cli(["spectra", "ossl", scans, lab, "--out", library]) == 0
    site = tmp_path / "my_site.csv"
    load_limesoda("CV.98").to_frame().to_csv(site, index=False)
    base = ["spectra", "benchmark", "--sites", site, "--methods", "local-pls,global-pls",
            "--n-local", "20"]  # fmt: skip
    assert cli([*base, "--library", library, "--out", tmp_path / "ossl"]) == 0
    assert cli([*base, "--out", tmp_path / "embedded"]) == 0
    ossl, embedded = (pd.read_csv(tmp_path / d / "results.csv") for d in ("ossl", "embedded"))
    # the OSSL tables were NIRsoil as reflectance: the embedded library's results, up to the
    # float32 round trip of the spectra
    assert pd.read_csv(tmp_path / "ossl" / "sites.csv").loc[0, "n_library"] == 732
    np.testing.assert_allclose(ossl["rmse"], embedded["rmse"], rtol=5e-3)  # measured: 0.16 %


def _broken_ossl_inputs(folder):
    """Small OSSL vis-NIR tables (20 scans) and broken variants, by name."""
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(20)]

    def scans(ids, bands=range(400, 2501, 10)):
        return pd.DataFrame(
            {"id.layer_uuid_txt": ids, **{f"scan_visnir.{b}_ref": rng.uniform(0.1, 0.6, len(ids))
                                          for b in bands}}
        )  # fmt: skip

    lab = pd.DataFrame({"id.layer_uuid_txt": ids, "oc_usda.c729_w.pct": rng.uniform(0.2, 5, 20)})
    files = {
        "spec.csv": scans(ids),
        "lab.csv": lab,
        "header_only.csv": scans([]),
        "twice.csv": scans([*ids, "u0"]),
        "three_bands.csv": scans(ids, [500, 1000, 1500]),
    }
    for name, frame in files.items():
        frame.to_csv(folder / name, index=False)
    (folder / "empty.csv").write_bytes(b"")
    import zipfile

    with zipfile.ZipFile(folder / "workbook.xlsx", "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    (folder / "broken.parquet").write_bytes(b"not a parquet file")
    return folder


@pytest.mark.parametrize(
    ("spectra", "soillab", "extra", "message"),
    [
        ("spec.csv", "empty.csv", [], r"'.*empty.csv' is empty \(no header row\)"),
        ("workbook.xlsx", "lab.csv", [], r"workbook.xlsx' cannot be read as CSV .*save it as CSV"),
        ("broken.parquet", "lab.csv", [], r"'.*broken.parquet' cannot be read as Parquet"),
        ("header_only.csv", "lab.csv", [], r"has no scans \(a header only\)"),
        ("twice.csv", "lab.csv", [], r"spectra table lists id.layer_uuid_txt 'u0' more than once"),
        ("three_bands.csv", "lab.csv", [], r"has 3 OSSL visnir band columns \(need >= 10\)"),
        ("spec.csv", "lab.csv", ["--oc-column", "oc"], r"\('oc'\); name one with --oc-column"),
        ("spec.csv", "lab.csv", ["--kind", "mir"], r"it holds visnir scans: pass --kind visnir"),
    ],
)  # fmt: skip
def test_broken_ossl_tables_are_refused_in_one_line(
    tmp_path, capsys, cli, spectra, soillab, extra, message
):
    folder = _broken_ossl_inputs(tmp_path)
    out = tmp_path / "lib.csv"
    code = cli(["spectra", "ossl", folder / spectra, folder / soillab, *extra, "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists()


def test_impossible_carbon_is_left_out_and_counted_and_ids_join_as_text(tmp_path):
    lib, (scans, lab) = _visnir_fixture(tmp_path, "parquet", one_without_carbon=False)
    table = pd.read_parquet(lab)
    table.loc[[2, 7], "oc_usda.c729_w.pct"] = [250.0, 1e9]  # above 100 weight %
    numbered = {f"uuid{i:04d}": i for i in range(len(table))}
    table["id.layer_uuid_txt"] = table["id.layer_uuid_txt"].map(numbered)  # numbers here...
    table.to_parquet(lab)
    spectra = pd.read_parquet(scans)
    spectra["id.layer_uuid_txt"] = spectra["id.layer_uuid_txt"].map(numbered).astype(str)
    spectra.to_parquet(scans)  # ...and text there: they still join
    got = read_ossl(scans, lab, "visnir")
    assert got.n_samples == lib.n_samples - 2
    assert "0 scans without a carbon value, 2 with carbon above 100 %" in got.notes[1]
    assert got.target().max() <= 1000.0


def test_percent_reflectance_in_an_ossl_table_is_converted_and_said(tmp_path):
    lib, (scans, lab) = _visnir_fixture(tmp_path, one_without_carbon=False)
    table = pd.read_csv(scans)
    bands = [c for c in table if c.startswith("scan_visnir.")]
    table[bands] *= 100.0
    table.to_csv(scans, index=False)
    got = read_ossl(scans, lab, "visnir")
    np.testing.assert_allclose(-np.log10(got.values), lib.values, rtol=1e-5, atol=1e-6)
    assert any("read as percent" in n for n in got.notes)

"""Spectral transfer benchmark and the spectra CLI, on the embedded sites."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from socmap.cli import EXIT_BAD_INPUT, main
from socmap.errors import ConfigError
from socmap.spectra import kennard_stone
from socmap.spectra.benchmark import (
    METHODS,
    SpectralBenchmarkConfig,
    prepare_site,
    spectral_benchmark,
    write_spectral_benchmark,
)
from socmap.spectra.datasets import load_limesoda

# a small, fast network: the protocol is under test here, not the architecture
TINY = {"conv_channels": (4, 8), "dense": (16,), "max_epochs": 15, "patience": 5}
FAST = SpectralBenchmarkConfig(
    n_local=20, k=20, b=2, repeats=1, calibration_folds=2, cnn=TINY, freeze_front=1
)


def run(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sites_share_the_library_range_and_keep_local_and_test_apart():
    nir = prepare_site("RP.62", FAST)
    assert nir.library_name == "NIRsoil" and nir.site.unit == "nm"
    assert nir.preprocess.start == 1100 and nir.preprocess.stop == 2400  # the shared range
    np.testing.assert_array_equal(nir.site.axis, nir.library.axis)
    assert len(nir.local) == 20 and len(nir.test) == nir.site.n_samples - 20
    assert not set(nir.local) & set(nir.test)
    np.testing.assert_array_equal(nir.local, kennard_stone(nir.site.values, 20))
    mir = prepare_site("O.32", FAST)
    assert mir.site.unit == "cm-1" and "O.32" not in mir.library_name
    assert set(mir.library.meta["site"]) == {"H.138", "NRW.115", "NRW.42"}
    # SNV absorbance on both sides
    np.testing.assert_allclose(mir.library.values.mean(axis=1), 0, atol=1e-9)


def test_sites_without_soc_in_g_kg_or_too_small_are_refused():
    with pytest.raises(ConfigError, match="g/dm3"):
        prepare_site("SSP.58", FAST)
    with pytest.raises(ConfigError, match="lower n_local"):
        prepare_site("O.32", SpectralBenchmarkConfig(n_local=30))


@pytest.mark.slow
def test_benchmark_runs_every_method_and_reports_against_local_pls(tmp_path):
    result = spectral_benchmark(["O.32"], METHODS, FAST, progress=False)
    r = result.results
    assert list(r["method"]) == list(METHODS)
    assert (r["n_test"] == 12).all() and (r["n_local"] == 20).all()
    assert np.isfinite(r[["rmse", "me", "ccc", "r2"]].to_numpy()).all()
    cnn = r["method"].isin(["local-cnn", "global-cnn", "dtl-i", "dtl-r", "dtl-ir"])
    assert r.loc[cnn, "picp90"].between(0, 1).all() and r.loc[~cnn, "picp90"].isna().all()
    assert (r.loc[r["method"] == "dtl-i", "n_train"] == 40).all()
    s = result.summary
    ref = s[(s["site"] == "O.32") & (s["method"] == "local-pls")]
    assert float(ref["delta_rmse_pct"].iloc[0]) == 0.0
    row = s[(s["site"] == "O.32") & (s["method"] == "global-pls")].iloc[0]
    assert row["delta_rmse_pct"] == pytest.approx(100 * (row["rmse"] / ref["rmse"].iloc[0] - 1))
    assert (s[s["site"] == "mean"]["method"].tolist()) == list(METHODS)
    paths = write_spectral_benchmark(result, tmp_path / "bench")
    report = paths["report"].read_text()
    assert re.search(r"\| dtl-ir +\|", report) and "MIR pool" in report
    assert pd.read_csv(paths["results"]).shape[0] == len(METHODS)
    with paths["plot"].open("rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"  # a PNG, not an empty or text file
    import matplotlib.image

    height, width = matplotlib.image.imread(paths["plot"]).shape[:2]
    assert height > 200 and width > 200


def test_same_seed_same_results_for_the_deterministic_methods():
    methods = ["local-pls", "local-rf", "dtl-i-pls"]
    a = spectral_benchmark(["NRW.42"], methods, FAST, progress=False).results
    b = spectral_benchmark(["NRW.42"], methods, FAST, progress=False).results
    pd.testing.assert_frame_equal(
        a.drop(columns=["seconds", "shared_seconds"]), b.drop(columns=["seconds", "shared_seconds"])
    )


def test_dtl_i_intervals_are_calibrated_on_the_site_samples_only(monkeypatch):
    from socmap.spectra import cnn

    seen = []
    real = cnn.SpectralCNNRegressor.fit

    def spy(self, X, y, calibration_rows=None, predict_for=None):
        seen.append((len(y), None if calibration_rows is None else int(np.sum(calibration_rows)),
                     None if predict_for is None else len(predict_for)))  # fmt: skip
        return real(self, X, y, calibration_rows, predict_for)

    monkeypatch.setattr(cnn.SpectralCNNRegressor, "fit", spy)
    for calibration, rows, targets in (("site-weighted", 20, 12), ("all-rows", None, None)):
        seen.clear()
        cfg = dataclasses.replace(FAST, calibration=calibration)
        spectral_benchmark(["O.32"], ["local-pls", "dtl-i"], cfg, progress=False)
        # the final fit (40 rows: library instances + 20 site samples), then its folds
        assert seen[0] == (40, rows, targets)


def test_unknown_methods_are_refused():
    with pytest.raises(ConfigError, match="unknown methods"):
        spectral_benchmark(["O.32"], ["magic"], FAST, progress=False)


def test_cli_select_writes_the_kennard_stone_rows(tmp_path, capsys):
    table = tmp_path / "scans.csv"
    load_limesoda("CV.98").to_frame().to_csv(table, index=False)
    out = tmp_path / "to_lab.csv"
    code, printed, err = run(
        ["spectra", "select", str(table), "--n", "10", "--out", str(out),
         "--quantity", "reflectance"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    chosen = pd.read_csv(out)
    assert list(chosen["selection_order"]) == list(range(1, 11))
    assert chosen["sample_id"].is_unique and "SNV" in printed
    # input_row points back at the user's file, which may have no sample ids
    scans = pd.read_csv(table)
    for _, row in chosen.iterrows():
        assert scans.iloc[row["input_row"] - 1]["sample_id"] == row["sample_id"]
    # percent reflectance was not re-scaled: to_frame wrote fractions
    assert "percent" not in printed


def test_cli_spectra_bad_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({f"wl_{w}": [np.nan, 0.5] for w in range(400, 420)}).to_csv(bad, index=False)
    target = str(tmp_path / "o.csv")
    code, _, err = run(["spectra", "select", str(bad), "--n", "2", "--out", target], capsys)
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1 and "nan='interpolate'" in err
    assert not (tmp_path / "o.csv").exists()
    code, _, err = run(["spectra", "benchmark", "--sites", "SSP.58", "--out", str(tmp_path / "b")],
                       capsys)  # fmt: skip
    assert code == EXIT_BAD_INPUT and "g/dm3" in err and not (tmp_path / "b").exists()
    code, _, err = run(["spectra", "benchmark", "--sites", "O.32", "--calibration", "loo",
                        "--out", str(tmp_path / "c")], capsys)  # fmt: skip
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1 and "'loo'" in err
    assert "site-weighted" in err and not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "args", [["spectra", "select", "--help"], ["spectra", "benchmark", "--help"]]
)
def test_spectra_commands_have_help_with_an_example(args, capsys):
    code, out, _ = run(args, capsys)
    example = re.search(r"Example: (socmap [^\n]+)", out)
    assert code == 0 and example is not None
    assert example.group(1).startswith("socmap " + " ".join(args[:-1]) + " ")  # its own command


def test_cli_api_and_published_table_share_the_default_settings(monkeypatch, tmp_path):
    """`socmap spectra benchmark` without options runs the published protocol (issue 19.7)."""
    import re

    import socmap.spectra.benchmark as bench
    from socmap.cli import main

    doc = (Path(__file__).parents[1] / "docs" / "benchmarks" / "spectral_transfer.md").read_text()
    published = {k: int(v) for k, v in re.findall(r"^- `(\w+)`: (\d+)$", doc, flags=re.M)}
    default = bench.SpectralBenchmarkConfig()
    for name in ("repeats", "n_local", "k", "freeze_front", "calibration_folds"):
        assert published[name] == getattr(default, name), name
    seen = {}

    def capture(sites, methods, config, **kw):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(bench, "spectral_benchmark", capture)
    with pytest.raises(SystemExit):
        main(["spectra", "benchmark", "--out", str(tmp_path / "b")])
    assert seen["config"] == default
    with pytest.raises(SystemExit):
        main(["spectra", "benchmark", "--out", str(tmp_path / "b"), "--repeats", "2"])
    assert seen["config"].repeats == 2 and seen["config"].n_local == default.n_local


def test_a_users_site_table_runs_end_to_end_and_a_table_in_percent_is_refused(tmp_path, capsys):
    """`--sites my_site.csv`: any table read_spectra reads, with soc_g_kg (issue 19 items 1, 3)."""
    from socmap.spectra.datasets import load_limesoda

    table = load_limesoda("CV.98").to_frame()
    mine = tmp_path / "my_site.csv"
    table.to_csv(mine, index=False)
    out = tmp_path / "bench"
    args = ["spectra", "benchmark", "--sites", str(mine), "--methods", "local-pls,global-pls",
            "--n-local", "20", "--out", str(out)]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 0, err
    results = pd.read_csv(out / "results.csv")
    assert set(results["site"]) == {"my_site.csv"}
    assert set(results["method"]) == {"local-pls", "global-pls"}
    assert (results["n_test"] == len(table) - 20).all()
    sites = pd.read_csv(out / "sites.csv")
    assert sites.loc[0, "library"] == "NIRsoil" and sites.loc[0, "location"] == "user table"
    assert sites.loc[0, "selection"].startswith("Kennard-Stone on SNV absorbance over ")
    # the same table with SOC in % is refused before any fit, with the fix
    table.assign(soc_g_kg=table["soc_g_kg"] / 10).to_csv(tmp_path / "pct.csv", index=False)
    code, _, err = run([*args[:3], str(tmp_path / "pct.csv"), *args[4:-1], str(tmp_path / "b2")],
                       capsys)  # fmt: skip
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1
    assert "looks like SOC in %" in err and "x 10" in err and not (tmp_path / "b2").exists()
    code, _, err = run([*args[:3], str(tmp_path / "nope.csv"), *args[4:]], capsys)
    assert code == EXIT_BAD_INPUT and "nope.csv" in err and "neither an embedded" in err


def test_select_picks_the_benchmarks_local_set_and_both_state_the_rule(tmp_path, capsys):
    """One selection rule for `spectra select` and the benchmark (issue 19 item 6)."""
    from socmap.spectra.benchmark import prepare_site

    table = tmp_path / "scans.csv"
    load_limesoda("CV.98").to_frame().to_csv(table, index=False)
    out = tmp_path / "to_lab.csv"
    code, printed, err = run(["spectra", "select", str(table), "--n", "30", "--out", str(out)],
                             capsys)  # fmt: skip
    assert code == 0, err
    data = prepare_site("CV.98")
    chosen = pd.read_csv(out)["input_row"].to_numpy() - 1
    assert list(chosen) == list(data.local)  # the same samples, in the same order
    rule = " ".join(printed.split())
    assert f"the range shared with {data.library_name}" in rule
    assert f"{data.preprocess.start:g}-{data.preprocess.stop:g} nm" in rule
    # every measured band is the other rule, named as such
    code, printed, _ = run(["spectra", "select", str(table), "--n", "30", "--grid", "measured",
                            "--out", str(tmp_path / "m.csv")], capsys)  # fmt: skip
    assert code == 0 and "over all measured bands" in printed
    code, _, err = run(["spectra", "select", str(table), "--n", "30", "--step", "10",
                        "--out", str(tmp_path / "x.csv")], capsys)  # fmt: skip
    assert code == EXIT_BAD_INPUT and "--grid measured" in err


def test_a_users_library_table_gives_what_the_embedded_library_gives(tmp_path, capsys):
    """`--library LIB.csv`: NIRsoil written as a user's table is the same library (item 2)."""
    from socmap.spectra.datasets import load_nirsoil

    library = tmp_path / "my_library.csv"
    load_nirsoil().to_frame().to_csv(library, index=False)
    base = ["spectra", "benchmark", "--sites", "CV.98", "--methods", "local-pls,global-pls",
            "--n-local", "20"]  # fmt: skip
    code, _, err = run([*base, "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    code, _, err = run([*base, "--library", str(library), "--library-quantity", "absorbance",
                        "--out", str(tmp_path / "b")], capsys)  # fmt: skip
    assert code == 0, err
    a, b = (pd.read_csv(tmp_path / d / "results.csv") for d in ("a", "b"))
    np.testing.assert_allclose(a["rmse"], b["rmse"], rtol=1e-9)
    assert pd.read_csv(tmp_path / "b" / "sites.csv").loc[0, "library"] == "my_library.csv"
    # a MIR library for a vis-NIR site is refused, naming both axes
    mir = tmp_path / "mir.csv"
    load_limesoda("O.32").to_frame().to_csv(mir, index=False)
    code, _, err = run([*base, "--library", str(mir), "--out", str(tmp_path / "c")], capsys)
    assert code == EXIT_BAD_INPUT and "cm-1" in err and "nm" in err


def test_every_embedded_site_passes_the_unit_check_with_the_ratios_the_docs_state():
    """The numbers beside UNIT_RATIO_LIMIT (0.7 to 9 times the library's median SOC)."""
    from socmap.spectra.benchmark import UNIT_RATIO_LIMIT, _library_for, check_target_units
    from socmap.spectra.datasets import spectral_sites

    ratios = []
    for name in spectral_sites():
        site = load_limesoda(name)
        parts, library_name = _library_for(name, site.unit)
        library = np.concatenate([p.target() for p in parts])
        check_target_units(site.target(), library, name, library_name)  # passes
        ratios.append(np.median(site.target()) / np.median(library))
    assert 0.7 <= min(ratios) < 0.75 and 8.5 < max(ratios) <= 9.1
    assert min(ratios) * UNIT_RATIO_LIMIT > 1  # far from the refusal threshold


@pytest.fixture(scope="module")
def bad_tables(tmp_path_factory) -> dict[str, Path]:
    """The tables of :func:`_tables_for_bad_input`, written once for the module."""
    return _tables_for_bad_input(tmp_path_factory.mktemp("spectra_tables"))


def _tables_for_bad_input(folder: Path) -> dict[str, Path]:
    """A real site (CV.98) and library (NIRsoil) as tables, and broken copies of them."""
    from socmap.spectra.datasets import load_nirsoil

    site = load_limesoda("CV.98").to_frame()
    library = load_nirsoil().to_frame().sample(300, random_state=0)
    tables = {
        "site": site,
        "library": library,
        "site_text_soc": site.astype({"soc_g_kg": object}),
        "library_percent": library.assign(soc_g_kg=library["soc_g_kg"] / 10),
        "site_empty": site.head(0),
        "site_one_row": site.head(1),
        "site_visible": site[
            ["sample_id", "soc_g_kg", *[c for c in site if c[:3] == "wl_" and float(c[3:]) <= 700]]
        ],
    }
    tables["site_text_soc"].loc[3, "soc_g_kg"] = "<0.5"
    paths = {}
    for name, frame in tables.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["benchmark", "--sites", "{site_text_soc}", "--library", "{library}"],
         r"site table .*site_text_soc.csv' has 1 rows whose soc_g_kg is .*not a number.*'<0\.5'"),
        (["benchmark", "--sites", "{site}", "--library", "{site_text_soc}"],
         r"library table .*site_text_soc.csv' has 1 rows"),
        (["benchmark", "--sites", "{site}", "--library", "{library_percent}"],
         r"library 'library_percent.csv' has a median SOC of 1.* it looks like SOC in %"),
        (["benchmark", "--sites", "{site}", "--library", "{library}", "--methods", ","],
         r"no method given; choose at least one of"),
        (["benchmark", "--sites", "{site_empty}", "--library", "{library}"],
         r"site table .*site_empty.csv' has no spectra \(0 rows\)"),
        (["benchmark", "--sites", "{site}", "--library", "{nowhere}"],
         r"library table .*nowhere.csv' does not exist; check the path \(--library\)"),
        (["benchmark", "--sites", "{site_visible}", "--library", "{library}"],
         r"share less than one step of 10 nm; give a library that covers the site's range"),
        (["select", "{site_one_row}", "--n", "2"], r"selection needs at least 2 spectra, got 1"),
        (["select", "{site_visible}", "--n", "5"], r"spectra select --grid measured"),
        (["select", "{site}", "--n", "5", "--grid", "measured", "--components", "0"],
         r"n_components 0 \(CLI: --components\)"),
    ],
)  # fmt: skip
def test_bad_site_and_library_tables_are_one_line_naming_the_value(
    tmp_path, capsys, bad_tables, command, message
):
    paths = {**bad_tables, "nowhere": tmp_path / "nowhere.csv"}
    out = tmp_path / ("out.csv" if command[0] == "select" else "out")
    args = ["spectra", *[a.format(**paths) for a in command], "--out", str(out)]
    if command[0] == "benchmark":
        args += ["--library-quantity", "absorbance", "--repeats", "1"]
        args += [] if "--methods" in command else ["--methods", "local-pls"]
    code, _, err = run(args, capsys)
    assert code == EXIT_BAD_INPUT, err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not out.exists()


def test_the_reference_alone_is_reported_without_a_comparison_plot(tmp_path, capsys, bad_tables):
    paths = bad_tables
    out = tmp_path / "ref"
    args = ["spectra", "benchmark", "--sites", str(paths["site"]), "--library",
            str(paths["library"]), "--library-quantity", "absorbance", "--methods", "local-pls",
            "--repeats", "1", "--out", str(out)]  # fmt: skip
    code, _, err = run(args, capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "report.md",
        "results.csv",
        "sites.csv",
        "summary.csv",
    ]
    assert "delta_rmse.png" not in (out / "report.md").read_text()
    assert "local-pls" in pd.read_csv(out / "summary.csv")["method"].tolist()

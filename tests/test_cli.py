import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from socmap import __version__
from socmap.cli import EXIT_BAD_INPUT, EXIT_INTERNAL, main, os_error_line


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_python_dash_m_and_version():
    res = subprocess.run(
        [sys.executable, "-m", "socmap", "--version"], capture_output=True, text=True, check=True
    )
    assert res.stdout.strip() == f"socmap {__version__}"


@pytest.mark.parametrize(
    "args",
    [["--help"], ["cube", "build", "--help"], ["cube", "info", "--help"],
     ["profiles", "qc", "--help"], ["profiles", "harmonise", "--help"], ["extract", "--help"],
     ["demo", "--help"], ["pretrain", "--help"], ["finetune", "--help"], ["cv", "--help"],
     ["benchmark", "transfer", "--help"], ["predict", "--help"], ["stocks", "--help"],
     ["strata", "--help"], ["design", "--help"], ["posterior", "--help"], ["report", "--help"]],
)  # fmt: skip
def test_every_command_has_help_with_an_example(args, capsys):
    code, out, _ = run(args, capsys)
    assert code == 0
    if args != ["--help"]:
        # the example runs the command it documents
        text = " ".join(out.split())
        start = text.index("Example")
        example = text[start : start + 200].split(":", 1)[1].strip()
        assert example.startswith(f"socmap {' '.join(args[:-1])} "), example[:80]


def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    code, _, err = run(["cube", "info", str(tmp_path / "missing.zarr")], capsys)
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and err.startswith("socmap: error:")
    assert "missing.zarr" in err

    code, _, err = run(["cube", "build", "nope", "--out", str(tmp_path / "c.zarr")], capsys)
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1
    assert not (tmp_path / "c.zarr").exists()

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"profile": ["a"], "depth": [1]}).to_csv(bad, index=False)
    code, _, err = run(
        ["profiles", "qc", str(bad), "--crs", "EPSG:4326", "--out", str(tmp_path / "qc")], capsys
    )
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1
    assert "site_id" in err  # the message lists the expected columns
    assert not (tmp_path / "qc").exists()

    code, _, err = run(["profiles", "qc", "--format", "bluecarbon", str(bad)], capsys)
    assert code != 0 and "--samples" in err


def test_cube_build_names_the_bands_that_leave_gaps(
    make_raster, make_catalog, utm_grid, tmp_path, capsys
):
    half = np.full(utm_grid.shape, 5.0, dtype="float32")
    half[:, : utm_grid.width // 4] = -9999.0  # a source that misses the west quarter
    entries = [
        {"name": "full", "source": make_raster("full", utm_grid), "units": "m",
         "kind": "continuous", "group": "terrain", "nodata": -9999},
        {"name": "part", "source": make_raster("part", utm_grid, data=half), "units": "m",
         "kind": "continuous", "group": "terrain", "nodata": -9999},
    ]  # fmt: skip
    catalog = make_catalog(entries, utm_grid)
    code, out, _ = run(["cube", "build", str(catalog), "--out", str(tmp_path / "c.zarr")], capsys)
    assert code == 0
    assert "bands with gaps (nodata; the best-covered band 0.0 %): part 25.0 %." in out


def test_cube_build_info_extract_round_trip(shared_local_catalog, tmp_path, capsys):
    cube = tmp_path / "c.zarr"
    code, out, _ = run(["cube", "build", str(shared_local_catalog), "--out", str(cube)], capsys)
    assert code == 0 and "wrote cube" in out and cube.exists()
    assert "gaps" not in out  # its largest gap, 0.83 % of the grid, is within the tolerance
    code, out, _ = run(["cube", "info", str(cube)], capsys)
    assert code == 0
    for band in ("elev", "temp", "cover", "ndvi"):
        assert band in out
    code, _, err = run(["cube", "build", str(shared_local_catalog), "--out", str(cube)], capsys)
    assert code == EXIT_BAD_INPUT and "overwrite" in err

    from socmap.cube import cube_grid, open_cube

    g = cube_grid(open_cube(cube))
    sites = pd.DataFrame(
        {"site_id": ["a", "b"], "x": g.xs[[1, 5]], "y": g.ys[[2, 7]], "crs": g.crs}
    )
    sites.to_csv(tmp_path / "sites.csv", index=False)
    code, out, _ = run(
        ["extract", str(cube), str(tmp_path / "sites.csv"), "-o", str(tmp_path / "t.csv")], capsys
    )
    assert code == 0 and "ok 2" in out
    assert list(pd.read_csv(tmp_path / "t.csv")["site_id"]) == ["a", "b"]


def test_profiles_commands_on_bluecarbon_fixtures(tmp_path, capsys):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "bluecarbon"
    args = [
        str(data / "core_locations.csv"),
        "--format",
        "bluecarbon",
        "--samples",
        str(data / "core_samples.csv"),
    ]
    code, _, _ = run(["profiles", "qc", *args, "--out", str(tmp_path / "qc")], capsys)
    assert code == 0 and (tmp_path / "qc" / "flags.csv").exists()
    code, _, _ = run(
        ["profiles", "harmonise", *args, "--depths", "vm0033", "-o", str(tmp_path / "h.csv")],
        capsys,
    )
    assert code == 0
    h = pd.read_csv(tmp_path / "h.csv")
    assert sorted(h["top_cm"].unique()) == [0, 15, 30, 50]
    assert (tmp_path / "h_sites.csv").exists()


@pytest.mark.parametrize(
    "command",
    [["cv", "--cube", "c.zarr", "--out", "o"],
     ["benchmark", "transfer", "--cube", "c.zarr", "--bundle", "b", "--out", "o"],
     ["finetune", "b", "--cube", "c.zarr", "--out", "o"],
     ["pretrain", "--out", "o"]],
)  # fmt: skip
def test_bad_block_size_is_one_line(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run([*command, "--block-size", "2 miles"], capsys)
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1
    assert err.startswith("socmap: error: block size '2 miles' has an unknown unit 'miles'")
    assert "'2km'" in err and "'0.1deg'" in err
    code, _, err = run([*command, "--block-size", "-3km"], capsys)
    assert code == EXIT_BAD_INPUT and "'-3km' must be positive" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [["cv"], ["benchmark", "transfer"]])
def test_block_size_help_names_the_cv_and_early_stopping(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run([*command, "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())
    block = text[text.index("--block-size") : text.index("--folds ")]
    assert "CV folds" in block and "early-stopping split" in block and "2km" in block
    for option in ("--folds-column", "--train-sets", "--target"):
        assert option in text


def test_user_folds_and_target_are_checked_on_the_profiles(tmp_path, capsys):
    profiles = tmp_path / "p.csv"
    pd.DataFrame(
        {"site_id": ["a", "a", "b"], "x": [150.0, 150.0, 150.1], "y": [-30.0, -30.0, -30.1],
         "top_cm": [0, 10, 0], "bottom_cm": [10, 30, 10], "soc_g_kg": [12.0, 8.0, 10.0],
         "fold": [1, 2, 2], "clay": ["20", "25", "x"]}
    ).to_csv(profiles, index=False)  # fmt: skip
    common = ["cv", "--cube", str(tmp_path / "c.zarr"), "--out", str(tmp_path / "o"),
              "--profiles", str(profiles), "--crs", "EPSG:4326"]  # fmt: skip
    code, _, err = run([*common, "--folds-column", "fold"], capsys)
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1
    assert "profile 'a' has rows in folds [1, 2] of column 'fold'" in err
    code, _, err = run([*common, "--folds-column", "region"], capsys)
    assert code == EXIT_BAD_INPUT and "fold column 'region' is not in the table" in err
    code, _, err = run([*common, "--target", "ph"], capsys)
    assert code == EXIT_BAD_INPUT and "--target 'ph' is not a column" in err
    code, _, err = run([*common, "--target", "clay"], capsys)
    assert code == EXIT_BAD_INPUT and "holds non-numbers, e.g. 'x'" in err
    code, _, err = run([*common, "--train-sets", str(tmp_path / "none.csv")], capsys)
    assert code == EXIT_BAD_INPUT and "none.csv" in err and "fold,repeat,site_id" in err


def _bluecarbon_args():
    from pathlib import Path

    data = Path(__file__).parent / "data" / "bluecarbon"
    return [str(data / "core_locations.csv"), "--format", "bluecarbon",
            "--samples", str(data / "core_samples.csv")]  # fmt: skip


def test_a_file_in_the_way_of_the_output_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a user's file\n")
    out = blocker / "h.csv"
    code, _, err = run(["profiles", "harmonise", *_bluecarbon_args(), "-o", str(out)], capsys)
    assert code == EXIT_BAD_INPUT
    assert err.count("\n") == 1 and err.startswith("socmap: error:")
    assert "not_a_folder" in err and "Traceback" not in err
    assert blocker.read_text() == "a user's file\n"  # untouched


def test_an_unexpected_error_is_one_line_unless_debug(tmp_path, capsys, monkeypatch):
    import socmap.depth

    def broken(*args, **kwargs):
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(socmap.depth, "harmonise", broken)
    args = ["profiles", "harmonise", *_bluecarbon_args(), "-o", str(tmp_path / "h.csv")]
    code, _, err = run(args, capsys)
    assert code == EXIT_INTERNAL
    assert err.count("\n") == 1 and err.startswith("socmap: internal error: RuntimeError: a bug")
    assert "--debug" in err and __version__ in err
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--debug", *args])
    monkeypatch.setenv("SOCMAP_DEBUG", "1")
    with pytest.raises(RuntimeError, match="a bug"):
        main(args)


def test_os_error_line_names_the_path_and_a_fix():
    import errno

    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", "/data/run"))
    assert line.startswith("No space left on device: '/data/run'") and "free disk space" in line
    line = os_error_line(OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"))
    assert "'/a' -> '/b'" in line and line.endswith("check the path and the file system")


def test_top_level_help_lists_the_commands_in_data_flow_order(capsys, monkeypatch):
    from socmap.cli import PANELS

    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    rows = [line.strip("│ ").split()[0] for line in out.splitlines() if line.startswith("│ ")]
    commands = [r for r in rows if not r.startswith("-")]
    assert commands == [name for names in PANELS.values() for name in names]
    for panel in PANELS:
        assert panel in out
    assert "(the [ee] extra)" in out  # rich markup must not eat it
    # flags take no value, so no type is shown beside them; options with values keep theirs
    assert "--version" in out and "<bool>" not in out
    code, out, _ = run(["view", "--help"], capsys)
    assert "--no-open" in out and "<bool>" not in out
    code, out, _ = run(["predict", "--help"], capsys)
    assert re.search(r"--passes\s+<int>", out)


def test_spectra_benchmark_help_shows_the_defaults_it_runs_with(capsys, monkeypatch):
    from socmap.spectra.benchmark import SpectralBenchmarkConfig

    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run(["spectra", "benchmark", "--help"], capsys)
    assert code == 0
    cfg = SpectralBenchmarkConfig()
    shown = dict(re.findall(r"^│\s+--([a-z-]+)\s.*\[default: (\d+)", out, flags=re.M))
    assert shown == {"n-local": str(cfg.n_local), "k": str(cfg.k), "repeats": str(cfg.repeats),
                     "freeze-front": str(cfg.freeze_front), "seed": str(cfg.seed)}  # fmt: skip


def test_finetune_cv_and_benchmark_share_one_profile_option_group(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    group = ["--profiles", "--format", "--samples", "--map", "--crs", "--soc-units",
             "--accept-qc"]  # fmt: skip
    for command in (["finetune"], ["cv"], ["benchmark", "transfer"]):
        code, out, _ = run([*command, "--help"], capsys)
        assert code == 0
        rows = re.findall(r"^│\s+(?:\*\s+)?(--[a-z-]+)", out, flags=re.M)  # the option column
        assert [o for o in rows if o in group] == group, command

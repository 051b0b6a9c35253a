import json

import numpy as np
import pandas as pd
import pytest

from socmap.datasets import synthetic_soil_field
from socmap.errors import ConfigError
from socmap.model.baselines import RegionalForest
from socmap.model.transfer import transfer_methods
from socmap.validate import BlockKFold
from socmap.validate.benchmark import parse_sizes, transfer_benchmark

BANDS = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]
SEEN: dict = {}


class Recorder(RegionalForest):
    def fit(self, X, y=None):
        SEEN.setdefault(self.tag, []).append(frozenset(X["site_id"]))
        return super().fit(X, y)

    def __init__(self, tag="", bands=None, n_estimators=10, random_state=0):
        super().__init__(bands=bands, n_estimators=n_estimators, random_state=random_state)
        self.tag = tag


@pytest.fixture(scope="module")
def bench():
    SEEN.clear()
    table = synthetic_soil_field(80, depths="vm0033", seed=2).table
    methods = {"rf": Recorder("a", BANDS), "rf:two": Recorder("b", BANDS[:2])}
    cv = BlockKFold(4, 10.0, random_state=0)
    return transfer_benchmark(
        methods, table, cv, sizes=[10, None], repeats=2, seed=1, progress=False
    ), table


def test_results_are_tidy_and_complete(bench):
    tb, _ = bench
    r = tb.results
    assert set(r["method"]) == {"rf"} and set(r["strategy"]) == {"-", "two"}
    # 2 repeats at n=10 and one run with all profiles, per method
    runs = r[["strategy", "n", "repeat"]].drop_duplicates()
    assert len(runs) == 2 * 3
    per_fold = r[(r["fold"] != "all") & (r["metric"] == "mae")]
    assert set(per_fold["fold"]) == {"0", "1", "2", "3"}
    assert set(per_fold["depth"]) == {"0-15cm", "15-30cm", "30-50cm", "50-100cm"}
    s = tb.summary[tb.summary["depth"] == "all"].set_index(["strategy", "n"])
    assert s.loc[("-", 10), "delta_mae_pct"] == 0 and s.loc[("-", "all"), "delta_ccc_pct"] == 0
    assert np.isfinite(s["delta_mae_pct"]).all()


def test_every_method_trains_on_the_same_draw(bench):
    a, b = SEEN["a"], SEEN["b"]
    assert a == b
    sizes = {len(s) for s in a}
    assert 10 in sizes and max(sizes) > 10
    # repeats draw different profiles
    assert len(set(a)) > 4


def test_write_outputs(bench, tmp_path):
    tb, _ = bench
    paths = tb.write(tmp_path / "out")
    assert set(paths) == {"results", "summary", "markdown", "figure", "timings", "fits"}
    assert len(pd.read_csv(paths["results"])) == len(tb.results)
    fits = pd.read_csv(paths["fits"])
    assert len(fits) == len(tb.fits) > 0
    assert paths["figure"].stat().st_size > 1000
    assert "ΔMAE" in paths["markdown"].read_text()


def test_bad_input():
    assert parse_sizes("20, 50,all") == [20, 50, None]
    with pytest.raises(ConfigError, match="'0'"):
        parse_sizes("0,10")
    with pytest.raises(ConfigError, match="'ten'"):
        parse_sizes("ten")
    with pytest.raises(ConfigError, match="unknown methods \\['xgboost'\\]"):
        transfer_methods(["rf", "xgboost"], "b", BANDS, BANDS)
    table = synthetic_soil_field(20, depths="0-30", seed=0).table
    with pytest.raises(ConfigError, match="reference method 'rf'"):
        transfer_benchmark({"x": RegionalForest(BANDS)}, table, BlockKFold(2, 10.0))


def test_timings_and_aoa_per_fold(tmp_path):
    table = synthetic_soil_field(60, depths="0-30", seed=3).table
    tb = transfer_benchmark(
        {"rf": RegionalForest(BANDS, n_estimators=10, random_state=0)},
        table,
        BlockKFold(3, 10.0, random_state=0),
        sizes=[10],
        repeats=2,
        aoa_bands=BANDS[:4],
        progress=False,
    )
    assert len(tb.timings) == 2 and (tb.timings["seconds"] > 0).all()
    aoa = tb.results[tb.results["metric"] == "aoa_inside"]
    assert len(aoa) == 2 * 3 and aoa["value"].between(0, 1).all()
    table_md = tb.to_markdown()
    assert "held-out sites inside the AOA" in table_md
    assert set(tb.write(tmp_path)) >= {"timings"}


def test_fits_record_every_fold(bench):
    tb, _ = bench
    fits = tb.fits
    assert list(fits.columns) == ["method", "strategy", "n", "repeat", "fold", "attribute", "value"]
    # two methods x (2 repeats at n=10 + 1 run with all) x 4 folds, one attribute each
    assert len(fits) == 2 * 3 * 4
    assert set(fits["attribute"]) == {"n_rows_without_target_"}
    assert set(fits["fold"]) == {"0", "1", "2", "3"}


class Picky(RegionalForest):
    def fit(self, X, y=None):
        super().fit(X, y)
        self.choice_ = f"{X['site_id'].nunique()}sites"
        return self


def test_listed_training_sets_user_folds_and_target():
    from socmap.validate import ColumnFolds

    SEEN.clear()
    table = synthetic_soil_field(60, depths="0-30", seed=5).table
    sites = table["site_id"].unique()
    fold_of = {s: ("a", "b", "c")[i % 3] for i, s in enumerate(sites)}
    table = table.assign(fold=table["site_id"].map(fold_of), carbon=table["soc_g_kg"] * 3)
    rows = []
    for n, repeat in ((5, 0), (5, 1), (12, 0)):
        for label in ("a", "b", "c"):
            train = [s for s in sites if fold_of[s] != label][repeat : repeat + n]
            rows += [{"n": n, "repeat": repeat, "fold": label, "site_id": s} for s in train]
    sets = pd.DataFrame(rows)
    methods = {"rf": Recorder("listed", BANDS), "rf:picky": Picky(BANDS, n_estimators=10)}
    tb = transfer_benchmark(
        methods,
        table,
        ColumnFolds("fold"),
        target="carbon",
        train_sets=sets,
        sizes=[1000],  # not used with train_sets
        progress=False,
    )
    # each (n, repeat, fold) trained on exactly the listed profiles, in the order of the runs
    expected = [
        frozenset(g["site_id"]) for _, g in sets.groupby(["n", "repeat", "fold"], sort=True)
    ]
    assert SEEN["listed"] == expected
    r = tb.results
    assert set(r["n"]) == {5, 12} and set(r.loc[r["n"] == 5, "repeat"]) == {0, 1}
    assert set(r.loc[r["fold"] != "all", "fold"]) == {"a", "b", "c"}
    choices = tb.fits[tb.fits["attribute"] == "choice_"]
    assert set(choices["value"]) == {"5sites", "12sites"}
    assert set(choices["fold"]) == {"a", "b", "c"}
    # the target flows through: MAE on carbon (3 x SOC) is larger than on SOC
    plain = transfer_benchmark(
        {"rf": RegionalForest(BANDS, n_estimators=10, random_state=0)},
        table, ColumnFolds("fold"), train_sets=sets, progress=False,
    )  # fmt: skip
    mae = tb.summary.set_index(["strategy", "n", "depth"]).loc[("-", 12, "all"), "mae"]
    mae_soc = plain.summary.set_index(["strategy", "n", "depth"]).loc[("-", 12, "all"), "mae"]
    assert mae > 2 * mae_soc


def test_a_killed_benchmark_resumes_from_its_checkpoint(tmp_path):
    table = synthetic_soil_field(60, depths="vm0033", seed=3).table
    cv = BlockKFold(3, 10.0, random_state=0)

    def run(path, key="k1"):
        SEEN.clear()
        methods = {"rf": Recorder("a", BANDS), "rf:two": Recorder("b", BANDS[:2])}
        return transfer_benchmark(methods, table, cv, sizes=[10, None], repeats=2, seed=1,
                                  progress=False, checkpoint=path, checkpoint_key=key)  # fmt: skip

    full = run(tmp_path / "full.jsonl")
    assert len(SEEN["a"]) == len(SEEN["b"]) == 3 * 3  # 3 runs x 3 folds, fitted
    lines = (tmp_path / "full.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"checkpoint_key": "k1"} and len(lines) == 1 + 3 * 2
    # killed after 2 of 6 runs, in the middle of writing the third
    part = tmp_path / "part.jsonl"
    part.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    resumed = run(part)
    assert len(SEEN["a"]) + len(SEEN["b"]) == 4 * 3  # only the 4 runs not finished are fitted
    pd.testing.assert_frame_equal(resumed.results, full.results)
    pd.testing.assert_frame_equal(resumed.summary, full.summary)
    again = run(part)  # complete: nothing is fitted
    assert SEEN == {} and again.results.equals(full.results)
    with pytest.raises(ConfigError, match=r"checkpoint .*part\.jsonl' belongs to other settings"):
        run(part, key="k2")
    empty = tmp_path / "empty.jsonl"  # killed before its first line
    empty.touch()
    assert run(empty).results.equals(full.results)
    assert len(SEEN["a"]) == 9 and json.loads(empty.read_text().splitlines()[0])["checkpoint_key"]

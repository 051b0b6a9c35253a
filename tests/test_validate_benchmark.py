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
    assert set(paths) == {"results", "summary", "markdown", "figure", "timings"}
    assert len(pd.read_csv(paths["results"])) == len(tb.results)
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

"""Sampling design: Neyman allocation, spaced uncertainty-weighted sites, field outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from hypothesis import given
from hypothesis import strategies as st

from socmap.design import design_sites, neyman_allocation, sample_sites, write_design
from socmap.errors import ConfigError
from socmap.grid import Grid


def test_neyman_allocation_is_proportional_to_size_times_sd():
    got = neyman_allocation(
        {"a": 200.0, "b": 100.0, "c": 100.0}, {"a": 1.0, "b": 2.0, "c": 0.0}, 20
    )
    assert got == {"a": 10, "b": 10, "c": 0}
    # the minimum first, when the budget allows it for every stratum
    assert neyman_allocation({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 0.0}, 7, minimum=3) == {
        "a": 4,
        "b": 3,
    }
    # a budget short of every minimum tops up the largest shortfalls first
    assert neyman_allocation({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 0.0}, 5, minimum=3) == {
        "a": 3,
        "b": 2,
    }
    # cores already taken count towards the minimum
    got = neyman_allocation({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, 4, 3, {"a": 5, "b": 1})
    assert got["b"] >= 2 and sum(got.values()) == 4
    with pytest.raises(ConfigError, match="budget"):
        neyman_allocation({"a": 1.0}, {"a": 1.0}, -1)
    with pytest.raises(ConfigError, match="lack a size"):
        neyman_allocation({"a": 1.0}, {}, 3)


@given(
    st.lists(st.tuples(st.floats(0, 1e4), st.floats(0, 10)), min_size=1, max_size=6),
    st.integers(0, 60),
    st.integers(0, 4),
    st.lists(st.integers(0, 5), min_size=6, max_size=6),
)
def test_allocation_spends_exactly_the_budget(strata, budget, minimum, have):
    sizes = {f"s{i}": a for i, (a, _) in enumerate(strata)}
    sds = {f"s{i}": s for i, (_, s) in enumerate(strata)}
    existing = {f"s{i}": have[i] for i in range(len(strata))}
    got = neyman_allocation(sizes, sds, budget, minimum, existing)
    assert sum(got.values()) == budget and min(got.values()) >= 0
    shortfall = sum(max(0, minimum - existing[s]) for s in sizes)
    if shortfall <= budget:
        assert all(existing[s] + got[s] >= minimum for s in sizes)


def _one_core_at_a_time(shortfall: dict[str, int], order: list[str], budget: int) -> dict:
    """The top-up rule as first written: a loop per core (it hung on --min-cores 1e12)."""
    base, left = dict.fromkeys(order, 0), budget
    while left > 0 and any(base[s] < shortfall[s] for s in order):
        for s in order:
            if left > 0 and base[s] < shortfall[s]:
                base[s] += 1
                left -= 1
    return base


@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=6),
    st.integers(0, 40),
)
def test_the_top_up_in_whole_rounds_gives_what_one_core_at_a_time_gave(short, budget):
    names = [f"s{i}" for i in range(len(short))]
    sizes = {n: 1.0 for n in names}  # equal scores: the top-up order is by shortfall, then name
    have = {n: 12 - k for n, k in zip(names, short, strict=True)}
    got = neyman_allocation(sizes, sizes, min(budget, sum(short)), 12, have)
    order = sorted(names, key=lambda n: (-(12 - have[n]), names.index(n)))
    assert got == _one_core_at_a_time(
        {n: 12 - have[n] for n in names}, order, min(budget, sum(short))
    )


def test_a_huge_minimum_or_budget_is_allocated_at_once():
    got = neyman_allocation({"a": 1.0, "b": 3.0}, {"a": 1.0, "b": 1.0}, 10**15, 10**12)
    assert got == {"a": 10**12 + (10**15 - 2 * 10**12) // 4, "b": 10**15 - got["a"]}


def test_sites_keep_their_spacing_follow_uncertainty_and_prefer_the_aoa():
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1000, size=(3000, 2))
    weights = np.where(xy[:, 0] > 500, 10.0, 1.0)  # the east is less certain
    idx = sample_sites(xy, weights, 40, 50.0, rng=3)
    assert len(idx) == 40 and len(set(idx.tolist())) == 40
    pts = xy[idx]
    d = np.hypot(*(pts[:, None] - pts[None]).transpose(2, 0, 1))
    assert d[np.triu_indices(len(pts), 1)].min() >= 50.0
    assert (pts[:, 0] > 500).mean() > 0.6
    np.testing.assert_array_equal(idx, sample_sites(xy, weights, 40, 50.0, rng=3))
    preferred = xy[:, 1] < 100
    idx = sample_sites(xy, weights, 5, 10.0, preferred=preferred, rng=0)
    assert preferred[idx].all()
    # no room left: fewer sites, not overlapping ones
    assert len(sample_sites(xy[:3], np.ones(3), 5, 1e6, rng=0)) == 1


def test_design_on_a_grid_writes_field_files(tmp_path):
    grid = Grid("EPSG:32756", Affine(30.0, 0, 500000.0, 0, -30.0, 7000000.0), (60, 80))
    codes = np.full(grid.shape, -1, dtype=np.int32)
    codes[:, :40], codes[:, 40:] = 0, 1
    codes[:5, :5] = -1
    sd = np.where(codes == 1, 4.0, 1.0)
    sd[10:12, 10:12] = np.nan
    aoa = np.ones(grid.shape)
    aoa[:, 60:] = 0
    sites, alloc = design_sites(
        grid, codes, ["marsh", "flat"], sd, 12, min_spacing=90.0, aoa=aoa, seed=2
    )
    assert alloc.set_index("stratum")["allocated"].to_dict() == {"marsh": 4, "flat": 8}
    assert len(sites) == 12 and sites["core_id"].is_unique
    assert sites["inside_aoa"].all()
    assert (sites.loc[sites["stratum"] == "flat", "x"] > 500000 + 40 * 30).all()
    assert sites["latitude"].between(-28, -26).all()
    again, _ = design_sites(
        grid, codes, ["marsh", "flat"], sd, 12, min_spacing=90.0, aoa=aoa, seed=2
    )
    pd.testing.assert_frame_equal(sites, again)
    paths = write_design(sites, grid, tmp_path / "design")
    table = pd.read_csv(paths["csv"])
    assert list(table.columns[:4]) == ["core_id", "longitude", "latitude", "stratum"]
    import geopandas as gpd

    frame = gpd.read_file(paths["gpkg"])
    assert len(frame) == 12 and frame.crs.to_epsg() == 32756


def test_design_refuses_strata_without_a_mapped_pixel_and_keeps_columns_when_none_fit():
    grid = Grid("EPSG:32756", Affine(30.0, 0, 500000.0, 0, -30.0, 7000000.0), (10, 10))
    codes = np.zeros(grid.shape, dtype=np.int32)
    with pytest.raises(ConfigError, match="none of the 1 strata has a mapped pixel"):
        design_sites(grid, codes, ["marsh"], np.full(grid.shape, np.nan), 5)
    # a spacing wider than the grid places one site; the table keeps its columns
    sites, alloc = design_sites(grid, codes, ["marsh"], np.ones(grid.shape), 3, min_spacing=1e6)
    assert len(sites) == 1 and alloc["placed"].tolist() == [1]
    assert list(sites.columns) == ["core_id", "stratum", "x", "y", "longitude", "latitude",
                                   "uncertainty", "inside_aoa"]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "stocks", "message"),
    [
        ("running", {}, r"run '.*run' is 'running'; finish it \(rerun `socmap predict`\) first"),
        ("predicted", {"status": "running"}, r"the stocks of run '.*run' are 'running'; finish "
         r"them \(rerun `socmap stocks .*run` with the options it was started with\) first"),
    ],
)  # fmt: skip
def test_design_refuses_an_unfinished_run_before_it_looks_at_the_strata(
    tmp_path, status, stocks, message
):
    """As `socmap stocks` does; once "none of the 2 strata has a mapped pixel"."""
    from socmap.design import design_for_run
    from socmap.predict import PredictionRun, RunConfig

    grid = Grid("EPSG:32756", Affine(30.0, 0, 500000.0, 0, -30.0, 7000000.0), (10, 10))
    config = RunConfig(
        bundle="bundle", bundle_sha256="0", cube=str(tmp_path / "cube.zarr"), cube_id="0",
        grid=grid.to_dict(), chunk=32, bands=["dist"], context_bands=[], intervals=[[0.0, 15.0]],
        stats=["mean", "sd"], passes=2, batch_size=64, seed=0,
    )  # fmt: skip
    (tmp_path / "run").mkdir()
    PredictionRun(tmp_path / "run", config, status=status, stocks=stocks).save()
    with pytest.raises(ConfigError, match=message):
        design_for_run(tmp_path / "run", "soil", 5, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.json"]

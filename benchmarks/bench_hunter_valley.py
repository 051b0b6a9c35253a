"""Hunter Valley transfer benchmark: 98 topsoil cores with 25 m terrain covariates.

The few-cores case with a region's own fine covariates (issue 14, item 3): the HV100 samples
(0-5 cm, staged by ``stage_hunter_valley.py`` into ``benchmarks/data/hunter_valley``) with
eight 25 m terrain layers as regional covariates and the 10' global layers for the network.
The global network and ``global-gbm`` are pretrained with the valley's box left out (cached
like the leave-region-out benchmark's bundles). Every method of that benchmark runs under
10-fold 2 km block CV at n = 20, 50 and all training profiles, 5 repeats; paired differences
against ``rf`` and ``rf-log``. Writes ``docs/benchmarks/hunter_valley_transfer.md`` and its
folder of tidy results.

Run: ``.venv/bin/python benchmarks/bench_hunter_valley.py [--repeats 5] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

import pandas as pd

import socmap
from _common import pin_two_cores
from bench_edgeroi_transfer import paired_table, time_per_method
from bench_transfer_regions import METHODS, region_bundle
from socmap._io import atomic_path
from socmap.model.transfer import transfer_methods
from socmap.training import global_context_covariates, sites_lonlat
from socmap.validate import BlockKFold
from socmap.validate.benchmark import parse_sizes, transfer_benchmark

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data" / "hunter_valley" / "hv100_sites.csv"
DOC = ROOT / "docs" / "benchmarks" / "hunter_valley_transfer.md"
REGIONAL = ["aacn_m", "elevation_m", "hillshading", "insolation", "mrvbf", "slope_deg", "tri",
            "twi"]  # fmt: skip
#: Degrees added around the sites' box before it is left out of pretraining.
MARGIN_DEG = 0.1


def hunter_valley_table() -> tuple[pd.DataFrame, tuple[float, float, float, float]]:
    """The staged sites with the 10' global covariates, and their lon/lat box (with margin)."""
    table = pd.read_csv(DATA)
    table = table.merge(global_context_covariates(table), on="site_id", how="left")
    lon, lat = sites_lonlat(table)
    bbox = (float(lon.min()) - MARGIN_DEG, float(lat.min()) - MARGIN_DEG,
            float(lon.max()) + MARGIN_DEG, float(lat.max()) + MARGIN_DEG)  # fmt: skip
    return table, bbox


def main() -> None:
    """Run the benchmark and write the page."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--sizes", default="20,50,all")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--cache", type=Path, default=ROOT / ".bench_cache" / "transfer_regions")
    p.add_argument("--out", type=Path, default=DOC.with_suffix(""))
    args = p.parse_args()
    machine = f"{platform.machine()}, {pin_two_cores()}"
    start = time.perf_counter()
    table, bbox = hunter_valley_table()
    bundle = region_bundle("hunter_valley", bbox, args.cache, 0)
    pretrain_s = time.perf_counter() - start
    methods = transfer_methods(
        args.methods.split(","), bundle, REGIONAL, REGIONAL, block_size="2km", mc_passes=16,
        seed=0,
    )  # fmt: skip
    cv = BlockKFold(args.folds, "2km", random_state=0)
    bench = transfer_benchmark(
        methods, table, cv, sizes=parse_sizes(args.sizes), repeats=args.repeats, seed=0,
        reference="rf", n_jobs=args.jobs, progress=True,
    )  # fmt: skip
    bench.write(args.out)
    wall = time.perf_counter() - start
    covered = int(table[REGIONAL].notna().all(axis=1).sum())
    lines = [
        "# Hunter Valley transfer benchmark",
        "",
        "`benchmarks/bench_hunter_valley.py` (this page is generated). The HV100 topsoil "
        f"samples (Malone et al. 2011; {len(table)} cores, 0-5 cm, SOC % converted to g/kg; "
        "staged with `benchmarks/stage_hunter_valley.py`, source and GPL-2 licence in "
        "`benchmarks/data/hunter_valley/NOTICE.md`) with eight 25 m terrain covariates "
        f"({', '.join(REGIONAL)}) as the regional layers; {covered} cores have every one "
        f"(the others lie on nodata pixels and are kept, with NaN). {args.folds}-fold 2 km "
        f"block CV, profiles whole; n = {args.sizes} training cores, {args.repeats} repeats. "
        "The global network and `global-gbm` were trained with the valley's box "
        f"({', '.join(f'{v:.2f}' for v in bbox)}, lon/lat) left out of the global table. "
        "Methods as in the leave-region-out benchmark (transfer_regions.md); `rf` is the "
        "raw-target forest with R ranger's defaults, the reference of ΔMAE %.",
        "",
        f"Machine: {machine}; socmap {socmap.__version__}. Wall time {wall / 60:.1f} min "
        f"(pretraining without the valley {pretrain_s:.0f} s, 0 when cached).",
        "",
        (args.out / "summary.md").read_text(),
        "## Paired differences against the two forests",
        "",
        "Per fold and repeat, the method's MAE and CCC minus the forest's on the same "
        "held-out cores; mean ± standard error over those pairs.",
        "",
        *paired_table(pd.read_csv(args.out / "results.csv")),
        "",
        "## Time per method",
        "",
        *time_per_method(pd.read_csv(args.out / "timings.csv")),
        "",
    ]
    with atomic_path(DOC) as tmp:
        tmp.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

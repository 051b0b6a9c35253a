"""Which prior, and how much of the cores' level correction, for prior + residual? (issue 14)

On held-out regions of the leave-region-out benchmark (the global models trained without
the region, cached by ``bench_transfer_regions.py``), compares ``PriorResidualRegressor``
settings on the same folds and training draws:

* the level rule: ``n / (n + 2)`` (the rule before), the empirical-Bayes weight with a prior
  level sd of 0.1, 0.2 (the default) and 0.3, and the default with the one-standard-error
  rule (``tie_se=1``) and with the level chosen by inner CV (``level="cv"``);
* the prior: the network, the network and ``global-gbm`` averaged (``global-ens``), or the
  one of network, booster and mean that fits the training cores best (``SelectedPrior``);
* beside them the forests and the priors alone.

Paired differences (per fold, layer and repeat) against the ``n / (n + 2)`` rule, mean and
standard error. Writes ``docs/benchmarks/transfer_priors.md``.

Run: ``.venv/bin/python benchmarks/bench_transfer_priors.py [--regions a,b] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import pandas as pd  # noqa: E402

import socmap  # noqa: E402
from _common import paired_differences, pin_two_cores  # noqa: E402
from bench_transfer_regions import REGIONS, region_bundle, region_table  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import load_catalog  # noqa: E402
from socmap.model.prior import LEVEL_SD, PriorResidualRegressor  # noqa: E402
from socmap.model.transfer import _global_ensemble, _selected_prior, transfer_methods  # noqa: E402
from socmap.validate import BlockKFold  # noqa: E402
from socmap.validate.benchmark import transfer_benchmark  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks" / "transfer_priors.md"
REFERENCE = "network, n/(n+2)"

#: label -> (prior: network, ens or best; PriorResidualRegressor overrides).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    REFERENCE: ("network", {"level_sd": None}),
    "network, EB 0.1": ("network", {"level_sd": 0.1}),
    f"network, EB {LEVEL_SD:g} (default)": ("network", {}),
    "network, EB 0.3": ("network", {"level_sd": 0.3}),
    "network, EB + 1 SE": ("network", {"tie_se": 1.0}),
    "network, EB + level by CV + 1 SE": ("network", {"tie_se": 1.0, "level": "cv"}),
    "ens, EB": ("ens", {}),
    "best prior, EB": ("best", {}),
}


def methods_for(bundle: Path, bands: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The forests, the priors alone and every prior + residual variant."""
    out = transfer_methods(
        ["rf", "rf-log", "global", "global-ens"], bundle, bands, [],
        block_size=args.block_size, mc_passes=args.mc_passes, seed=args.seed,
    )  # fmt: skip
    priors = {
        "network": out["global"],
        "ens": _global_ensemble(bundle, args.mc_passes, args.seed),
        "best": _selected_prior(bundle, args.mc_passes, args.seed),
    }
    for label, (prior, overrides) in VARIANTS.items():
        out[label] = PriorResidualRegressor(
            prior=priors[prior], bands=bands, block_size=args.block_size, units="auto",
            mc_passes=args.mc_passes, random_state=args.seed, **overrides,
        )  # fmt: skip
    return out


def main() -> None:
    """Run every region and write the doc."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--regions", default="middle_east,andes_north,india,pampas_south_brazil")
    p.add_argument("--sizes", default="20,50,100")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--block-size", default="0.5deg")
    p.add_argument("--mc-passes", type=int, default=16)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=ROOT / ".bench_cache" / "transfer_regions")
    args = p.parse_args()
    machine = f"{platform.machine()}, {pin_two_cores()}"
    bands = load_catalog("global_10arcmin").band_names
    start = time.perf_counter()
    results = []
    for name in args.regions.split(","):
        bbox = tuple(float(v) for v in REGIONS[name]["bbox"])
        bundle = region_bundle(name, bbox, args.cache, args.seed)
        table = region_table(bbox)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        bench = transfer_benchmark(
            methods_for(bundle, bands, args), table,
            BlockKFold(args.folds, args.block_size, random_state=args.seed),
            sizes=[int(s) for s in args.sizes.split(",")], repeats=args.repeats,
            seed=args.seed, reference=REFERENCE, n_jobs=args.jobs, progress=False,
        )  # fmt: skip
        results.append(bench.results.assign(region=name))
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    res = pd.concat(results, ignore_index=True)
    res.to_csv(args.cache / "transfer_priors_results.csv", index=False)  # for --doc-only
    write_doc(res, args, machine, time.perf_counter() - start)


def write_doc(res: pd.DataFrame, args: argparse.Namespace, machine: str, seconds: float) -> None:
    """Per region: MAE, CCC and paired differences to the ``n / (n + 2)`` rule."""
    pooled = res[(res["fold"].astype(str) == "all") & (res["depth"] == "all")]
    scores = pooled.pivot_table(index=["region", "method", "n"], columns="metric",
                                values="value").reset_index()  # fmt: skip
    diffs = paired_differences(res[res["depth"] != "all"], REFERENCE)
    lines = [
        "# Priors and level rules for prior + residual",
        "",
        "`benchmarks/bench_transfer_priors.py` (generated). Regions and cached region-less "
        "global models of `bench_transfer_regions.py`; "
        f"{args.folds}-fold {args.block_size} block CV, n = {args.sizes}, {args.repeats} "
        f"repeats, every method on the same training draws. SOC in g/kg, both layers (0-30, "
        f"30-60 cm) pooled. Differences are paired against `{REFERENCE}` (the level rule "
        "before this comparison), mean ± SE over folds, layers and repeats.",
        "",
        f"Machine: {machine}; socmap {socmap.__version__}; wall time {seconds / 60:.1f} min.",
        "",
    ]
    order = ["rf", "rf-log", "global", "global-ens", *VARIANTS]
    for region in args.regions.split(","):
        lines += [f"## {region}", "", "| method | n | MAE | CCC | ΔMAE | ΔCCC |",
                  "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        s = scores[scores["region"] == region]
        for method in order:
            for n in args.sizes.split(","):
                row = s[(s["method"] == method) & (s["n"].astype(str) == n)]
                if row.empty:
                    continue
                cells = [_diff(diffs, region, method, n, m) for m in ("mae", "ccc")]
                lines.append(f"| {method} | {n} | {row['mae'].iloc[0]:.3f} | "
                             f"{row['ccc'].iloc[0]:.3f} | {cells[0]} | {cells[1]} |")  # fmt: skip
        lines.append("")
    mean = scores[scores["method"].isin(VARIANTS)].groupby(["method", "n"])["mae"].mean()
    ref = mean.xs(REFERENCE, level="method")
    rel = (mean / ref.reindex(mean.index, level="n") - 1) * 100
    lines += ["## Mean over regions", "", "| method | n | MAE | ΔMAE % |", "|---|---:|---:|---:|"]
    for (method, n), value in mean.items():
        lines.append(f"| {method} | {n} | {value:.3f} | {rel[(method, n)]:+.1f} |")
    with atomic_path(DOC) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"wrote {DOC}")


def _diff(diffs: pd.DataFrame, region: str, label: str, n: str, metric: str) -> str:
    d = diffs[(diffs["region"] == region) & (diffs["label"] == label)
              & (diffs["n"] == n) & (diffs["metric"] == metric)]  # fmt: skip
    if d.empty:
        return "-"
    return f"{d['mean'].iloc[0]:+.3f} ± {d['se'].iloc[0]:.3f}"


if __name__ == "__main__":
    main()

"""Should ``auto`` consider the fine-tuned network, and from how many profiles?

On every held-out region of ``bench_transfer_regions.py`` (same boxes, same region-excluded
pretraining, same 10' covariates, same 0.5-degree blocks), at n = 100 and all profiles:

- ``auto-table``: ``auto`` among its table-level candidates only (rf, rf-log,
  prior-residual, recalibrate), as before commit 80cc51b;
- ``auto-always``: the same plus the fine-tuned network (``freeze-encoders``) at any n;
- ``auto``: the default, which adds the network from ``AUTO_NETWORK_FROM`` training
  profiles;
- ``rf``, ``rf-log`` and ``freeze-encoders`` alone, for reference.

Fewer folds and repeats than the full benchmark (5 folds, 1 repeat), so every region runs in
one go; paired differences are per fold and layer. Writes
``docs/benchmarks/auto_candidates/`` (tidy CSVs per region) and
``docs/benchmarks/auto_candidates.md``.

Run::

    .venv/bin/python benchmarks/bench_auto_candidates.py            # 63 min on 2 cores (10 regions)
    .venv/bin/python benchmarks/bench_auto_candidates.py --summary-only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from sklearn.base import clone

from _common import (
    against_forests,
    load_study,
    paired_cell,
    paired_differences,
    region_study,
    write_wall,
)
from bench_transfer_regions import REGIONS, _commit, region_bundle, region_table
from socmap._io import atomic_path
from socmap.catalog import load_catalog
from socmap.model.transfer import AUTO_NETWORK_FROM, transfer_methods
from socmap.validate import BlockKFold
from socmap.validate.benchmark import parse_sizes, transfer_benchmark

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "auto_candidates"
DOC = ROOT / "docs" / "benchmarks" / "auto_candidates.md"
LABELS = ("rf", "rf-log", "finetune:freeze-encoders", "finetune:auto-table",
          "finetune:auto-always", "finetune:auto")  # fmt: skip


def run_region(name: str, args: argparse.Namespace) -> None:
    """Run the six methods on one region; write its folder."""
    bbox = tuple(float(v) for v in REGIONS[name]["bbox"])
    start = time.perf_counter()
    commit = _commit()
    bundle = region_bundle(name, bbox, args.cache, args.seed)
    table = region_table(bbox)  # type: ignore[arg-type]
    bands = load_catalog("global_10arcmin").band_names
    names = ["rf", "rf-log", "freeze-encoders", "auto"]
    methods = transfer_methods(
        names, bundle, bands, [], block_size=args.block_size, mc_passes=16, seed=args.seed
    )
    auto = methods["finetune:auto"]
    methods["finetune:auto-table"] = clone(auto).set_params(network_from=None)
    methods["finetune:auto-always"] = clone(auto).set_params(network_from=1)
    bench = transfer_benchmark(
        methods, table, BlockKFold(args.folds, args.block_size, random_state=args.seed),
        sizes=parse_sizes(args.sizes), repeats=1, seed=args.seed, reference="rf", n_jobs=2,
        progress=False,
    )  # fmt: skip
    out = args.out / name
    bench.write(out)
    seconds = time.perf_counter() - start
    write_wall(out, table["site_id"].nunique(), seconds, commit)
    print(f"{name}: {seconds:.0f} s", flush=True)


def write_summary(out: Path, doc: Path, machine: str) -> None:
    """Tables of MAE/CCC per region and paired differences of the auto variants."""
    r, walls = load_study(out)
    pooled = r[(r["fold"].astype(str) == "all") & (r["depth"] == "all")]
    lines = [
        "# Which candidates should `auto` compare?",
        "",
        "`benchmarks/bench_auto_candidates.py` (this page is generated). The held-out regions "
        "of [transfer_regions.md](transfer_regions.md) (region-excluded pretraining, 10' "
        "covariates, 0.5-degree blocks), 5-fold spatial block CV, 1 repeat, n = "
        f"{', '.join(sorted(r['n'].unique()))} training profiles. `auto-table` chooses among "
        "rf, rf-log, prior-residual and recalibrate (the candidates before this benchmark); "
        "`auto-always` adds the fine-tuned network (`freeze-encoders`) at any n; `auto` (the "
        f"default) adds it from {AUTO_NETWORK_FROM} training profiles. SOC g/kg, both layers "
        "(0-30, 30-60 cm) pooled.",
        "",
        f"Machine: {machine}. Regions (profiles, wall time): {'; '.join(walls)}.",
        "",
        "## MAE (g/kg) and CCC, pooled out of fold",
        "",
        "| region | n | " + " | ".join(LABELS) + " |",
        "|---|---:|" + "---:|" * len(LABELS),
    ]
    wide = pooled.pivot_table(index=["region", "n"], columns=["metric", "label"], values="value")
    for (region, n), row in wide.iterrows():
        cells = [
            f"{row.get(('mae', lab), float('nan')):.2f} / {row.get(('ccc', lab), float('nan')):.3f}"
            for lab in LABELS
        ]
        lines.append(f"| {region} | {n} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Paired differences (per fold and layer), mean ± SE",
        "",
        "| region | n | auto − auto-table MAE | auto-always − auto-table MAE "
        "| auto − rf MAE | auto − rf CCC | auto − rf-log MAE | auto − rf-log CCC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    table_ref = paired_differences(r, "finetune:auto-table")
    raw_ref = paired_differences(r, "rf")
    log_ref = paired_differences(r, "rf-log")

    for region, n in wide.index:
        lines.append(
            f"| {region} | {n} | {paired_cell(table_ref, region, n, 'finetune:auto', 'mae')} | "
            f"{paired_cell(table_ref, region, n, 'finetune:auto-always', 'mae')} | "
            f"{paired_cell(raw_ref, region, n, 'finetune:auto', 'mae')} | "
            f"{paired_cell(raw_ref, region, n, 'finetune:auto', 'ccc')} | "
            f"{paired_cell(log_ref, region, n, 'finetune:auto', 'mae')} | "
            f"{paired_cell(log_ref, region, n, 'finetune:auto', 'ccc')} |"
        )
    means = pooled[pooled["metric"] == "mae"].pivot_table(index="n", columns="label",
                                                          values="value")  # fmt: skip
    lines += ["", "## Mean MAE over regions (g/kg)", "",
              "| n | " + " | ".join(LABELS) + " |", "|---:|" + "---:|" * len(LABELS)]  # fmt: skip
    for n, row in means.iterrows():
        lines.append(f"| {n} | " + " | ".join(f"{row.get(lab, float('nan')):.3f}"
                                              for lab in LABELS) + " |")  # fmt: skip
    lines += _against_forests(wide, raw_ref, log_ref)
    lines += ["", "## What `auto` chose (folds per candidate)", "",
              "| region | n | auto | auto-always |", "|---|---:|---|---|"]  # fmt: skip
    fits = pd.concat(
        [pd.read_csv(f / "fits.csv").assign(region=f.name)
         for f in sorted(out.glob("*/")) if (f / "fits.csv").exists()],
        ignore_index=True,
    )  # fmt: skip
    chosen = fits[fits["attribute"] == "strategy_"].assign(n=lambda f: f["n"].astype(str))
    for region, n in wide.index:
        cells = []
        for strategy in ("auto", "auto-always"):
            hit = chosen[(chosen["region"] == region) & (chosen["n"] == n)
                         & (chosen["strategy"] == strategy)]  # fmt: skip
            counts = hit["value"].value_counts()
            cells.append(", ".join(f"{k} {v}" for k, v in counts.items()) or "-")
        lines.append(f"| {region} | {n} | {cells[0]} | {cells[1]} |")
    with atomic_path(doc) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _against_forests(wide: pd.DataFrame, raw_ref: pd.DataFrame, log_ref: pd.DataFrame) -> list[str]:
    """Each auto variant against both forests: wins beyond 1 SE, worst loss, mean change."""
    lines = [
        "",
        "## Against both forests (rf on SOC, rf-log on log1p SOC)",
        "",
        "Beats both: paired MAE lower and CCC higher than rf and than rf-log, each by more "
        "than 1 SE. Worst loss: pooled MAE against the better of rf and rf-log. Mean Δ: "
        "pooled MAE against each forest, mean of the regions.",
        "",
        "| method | n | beats both (regions) | worst loss to the better forest "
        "| mean ΔMAE vs rf | mean ΔMAE vs rf-log |",
        "|---|---:|---:|---|---:|---:|",
    ]

    for label in ("finetune:auto-table", "finetune:auto"):
        for n in sorted({k[1] for k in wide.index}):
            cmp = against_forests(wide, raw_ref, log_ref, label, n)
            regions, mae, wins = cmp["regions"], cmp["rows"], cmp["wins"]
            loss, worst = cmp["loss"], cmp["worst"]
            vs = {
                ref: sum(100 * (m[("mae", label)] / m[("mae", ref)] - 1) for m in mae.values())
                / len(mae)
                for ref in ("rf", "rf-log")
            }
            lines.append(
                f"| {label.removeprefix('finetune:')} | {n} | {wins} of {len(regions)} | "
                f"{loss[worst]:+.1f} % ({worst}) | {vs['rf']:+.1f} % | {vs['rf-log']:+.1f} % |"
            )
    return lines


def main() -> None:
    """Parse options, run the regions not yet done, write the summary."""
    defaults = {"sizes": "100,all", "out": OUT, "doc": DOC,
                "cache": ROOT / ".bench_cache" / "transfer_regions"}  # fmt: skip
    region_study(__doc__.splitlines()[0], REGIONS, defaults, run_region, write_summary)


if __name__ == "__main__":
    main()

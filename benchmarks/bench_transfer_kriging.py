"""Does kriging the residuals of ``prior-residual`` help on held-out regions?

On every held-out region of ``bench_transfer_regions.py`` (same boxes, same region-excluded
pretraining, same 10' covariates, same 0.5-degree blocks), at n = 20, 50 and 100 training
profiles:

- ``prior-residual``: the pretrained network plus a shrunk regional residual forest (one of
  ``auto``'s candidates);
- ``prior-residual-krige``: the same plus kriging (a Gaussian process per depth interval,
  :class:`socmap.model.kriging.ResidualKriging`) of its inner-CV residuals over the
  profiles' coordinates;
- ``rf`` and ``rf-log``, the forests users run.

Fewer folds and repeats than the full benchmark (5 folds, 2 repeats), so every region runs
in one go; paired differences are per fold, layer and repeat. Writes
``docs/benchmarks/transfer_kriging/`` (tidy CSVs per region) and
``docs/benchmarks/transfer_kriging.md``.

Run::

    .venv/bin/python benchmarks/bench_transfer_kriging.py            # all 10 regions
    .venv/bin/python benchmarks/bench_transfer_kriging.py --summary-only
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

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
from socmap.model.transfer import transfer_methods
from socmap.validate import BlockKFold
from socmap.validate.benchmark import parse_sizes, transfer_benchmark

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "transfer_kriging"
DOC = ROOT / "docs" / "benchmarks" / "transfer_kriging.md"
LABELS = ("rf", "rf-log", "prior-residual", "prior-residual-krige")
KRIGED, PLAIN = "prior-residual-krige", "prior-residual"


def run_region(name: str, args: argparse.Namespace) -> None:
    """Run the four methods on one region; write its folder."""
    bbox = tuple(float(v) for v in REGIONS[name]["bbox"])
    start = time.perf_counter()
    commit = _commit()
    bundle = region_bundle(name, bbox, args.cache, args.seed)
    table = region_table(bbox)  # type: ignore[arg-type]
    bands = load_catalog("global_10arcmin").band_names
    methods = transfer_methods(
        list(LABELS), bundle, bands, [], block_size=args.block_size, mc_passes=16, seed=args.seed
    )
    bench = transfer_benchmark(
        methods, table, BlockKFold(args.folds, args.block_size, random_state=args.seed),
        sizes=parse_sizes(args.sizes), repeats=args.repeats, seed=args.seed, reference="rf",
        n_jobs=2, progress=False,
    )  # fmt: skip
    out = args.out / name
    bench.write(out)
    seconds = time.perf_counter() - start
    write_wall(out, table["site_id"].nunique(), seconds, commit)
    print(f"{name}: {seconds:.0f} s", flush=True)


def write_summary(out: Path, doc: Path, machine: str) -> None:
    """MAE/CCC per region, kriged minus plain, and both against the two forests."""
    r, walls = load_study(out)
    pooled = r[(r["fold"].astype(str) == "all") & (r["depth"] == "all")]
    wide = pooled.pivot_table(index=["region", "n"], columns=["metric", "label"], values="value")
    plain_ref = paired_differences(r, PLAIN)
    raw_ref, log_ref = paired_differences(r, "rf"), paired_differences(r, "rf-log")
    lines = [
        "# Kriging the residuals of prior + residual",
        "",
        "`benchmarks/bench_transfer_kriging.py` (this page is generated). The held-out regions "
        "of [transfer_regions.md](transfer_regions.md) (region-excluded pretraining, 10' "
        "covariates, 0.5-degree blocks), 5-fold spatial block CV, 2 repeats, n = "
        f"{', '.join(sorted(r['n'].unique(), key=int))} training profiles. "
        "`prior-residual-krige` adds to `prior-residual` a Gaussian process per depth "
        "interval (Matérn 3/2 plus nugget, sill, range and nugget by maximum likelihood) of "
        "its inner-CV residuals over the profiles' coordinates. SOC g/kg, both layers (0-30, "
        "30-60 cm) pooled; paired differences per fold, layer and repeat, mean ± SE.",
        "",
        f"Machine: {machine}. Regions (profiles, wall time, commit): {'; '.join(walls)}.",
        "",
        "## MAE (g/kg) / CCC, pooled out of fold, and the kriged minus the plain model",
        "",
        "| region | n | " + " | ".join(LABELS) + " | krige − plain MAE | krige − plain CCC |",
        "|---|---:|" + "---:|" * (len(LABELS) + 2),
    ]
    for region, n in sorted(wide.index, key=lambda k: (k[0], int(k[1]))):
        row = wide.loc[(region, n)]
        cells = [
            f"{row.get(('mae', lab), float('nan')):.2f} / {row.get(('ccc', lab), float('nan')):.3f}"
            for lab in LABELS
        ]
        diffs = [paired_cell(plain_ref, region, n, KRIGED, m) for m in ("mae", "ccc")]
        lines.append(f"| {region} | {n} | " + " | ".join(cells + diffs) + " |")
    lines += [
        "",
        "## Against both forests (rf on SOC, rf-log on log1p SOC)",
        "",
        "Beats both: paired MAE lower and CCC higher than rf and than rf-log, each by more "
        "than 1 SE (the rule of issue 14's acceptance). Worst loss: pooled MAE against the "
        "better of rf and rf-log. Mean MAE and CCC: over the regions.",
        "",
        "| method | n | beats both (regions) | worst loss to the better forest | mean MAE "
        "| mean CCC | kriged better than plain beyond 1 SE (MAE, regions) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for label in (PLAIN, KRIGED):
        for n in sorted({k[1] for k in wide.index}, key=int):
            cmp = against_forests(wide, raw_ref, log_ref, label, n)
            regions, rows, wins = cmp["regions"], cmp["rows"], cmp["wins"]
            loss, worst = cmp["loss"], cmp["worst"]
            better = "-"
            if label == KRIGED:
                d = plain_ref[(plain_ref["label"] == KRIGED) & (plain_ref["n"] == n)
                              & (plain_ref["metric"] == "mae")]  # fmt: skip
                won, lost = int((d["mean"] < -d["se"]).sum()), int((d["mean"] > d["se"]).sum())
                better = f"{won} (worse: {lost})"
            mean_mae = sum(m[("mae", label)] for m in rows.values()) / len(rows)
            mean_ccc = sum(m[("ccc", label)] for m in rows.values()) / len(rows)
            lines.append(
                f"| {label} | {n} | {wins} of {len(regions)} | {loss[worst]:+.1f} % ({worst}) "
                f"| {mean_mae:.3f} | {mean_ccc:.3f} | {better} |"
            )
    lines += _chosen_weights(out)
    with atomic_path(doc) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _chosen_weights(out: Path) -> list[str]:
    """Fits per kriging weight that the inner CV chose (``kriging_weight_`` in fits.csv)."""
    fits = pd.concat(
        [pd.read_csv(f / "fits.csv").assign(region=f.name)
         for f in sorted(out.glob("*/")) if (f / "fits.csv").exists()],
        ignore_index=True,
    )  # fmt: skip
    chosen = fits[(fits["method"] == KRIGED) & (fits["attribute"] == "kriging_weight_")]
    counts = chosen.assign(n=chosen["n"].astype(int), w=chosen["value"].astype(float))
    table = counts.pivot_table(index="n", columns="w", values="value", aggfunc="count")
    weights = list(table.columns)
    lines = ["", "## Kriging weight chosen by the inner CV (fits, all regions)", "",
             "| n | " + " | ".join(f"weight {w:g}" for w in weights) + " |",
             "|---:|" + "---:|" * len(weights)]  # fmt: skip
    for n, row in table.fillna(0).iterrows():
        lines.append(f"| {n} | " + " | ".join(str(int(v)) for v in row) + " |")
    return lines


def main() -> None:
    """Parse options, run the regions not yet done, write the summary."""
    defaults = {"sizes": "20,50,100", "repeats": 2, "out": OUT, "doc": DOC,
                "cache": ROOT / ".bench_cache" / "transfer_regions"}  # fmt: skip
    region_study(__doc__.splitlines()[0], REGIONS, defaults, run_region, write_summary)


if __name__ == "__main__":
    main()

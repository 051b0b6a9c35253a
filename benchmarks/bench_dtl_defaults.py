"""Benchmark: the fine-tuning defaults of representation transfer (DTL-R, DTL-IR), one at a time.

Runs :func:`socmap.spectra.benchmark.spectral_benchmark` on the embedded (shared) sites with
``dtl-r`` and ``dtl-ir`` under the shipped settings and under variants that change one setting
each: how many convolution blocks stay frozen, the fine-tuning learning rate, the epoch
limit, and early stopping on the local samples. Writes ``docs/benchmarks/dtl_defaults.md``
(mean over sites of ΔRMSE % against ``local-pls`` at the same site, and PICP90) and the
per-site table ``docs/benchmarks/dtl_defaults.csv``.

Run: ``.venv/bin/python benchmarks/bench_dtl_defaults.py [--variants A,B]``
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path
from typing import Any

import pandas as pd

import socmap
from _common import pin_two_cores
from socmap._tables import markdown_table
from socmap.spectra.benchmark import SpectralBenchmarkConfig, spectral_benchmark

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("dtl-r", "dtl-ir")
#: The settings the variants change one at a time: those shipped before this benchmark
#: (fine-tuning learning rate 1e-4; its result made 1e-3 the default).
SHIPPED = dataclasses.replace(SpectralBenchmarkConfig(), finetune={"lr": 1e-4, "max_epochs": 100})
TUNE = dict(SHIPPED.finetune)

#: name -> (what changes, overrides of SHIPPED)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "shipped": ("shipped until this benchmark: 2 conv blocks frozen, lr 1e-4, 100 epochs", {}),
    "freeze 0": ("no conv block frozen", {"freeze_front": 0}),
    "freeze 1": ("1 conv block frozen", {"freeze_front": 1}),
    "freeze 3": ("every conv block frozen (only the dense layers retrain)", {"freeze_front": 3}),
    "lr 3e-4": ("fine-tuning learning rate 3e-4", {"finetune": {**TUNE, "lr": 3e-4}}),
    "lr 1e-3": ("fine-tuning learning rate 1e-3", {"finetune": {**TUNE, "lr": 1e-3}}),
    "300 epochs": ("fine-tuning epoch limit 300", {"finetune": {**TUNE, "max_epochs": 300}}),
    "no early stop": (
        "no early stopping: every epoch on every local sample",
        {"finetune": {**TUNE, "val_fraction": 0.0}},
    ),
}


def run_variant(name: str) -> pd.DataFrame:
    """Per-site summary of one variant (``local-pls`` and the DTL methods)."""
    _, overrides = VARIANTS[name]
    config = dataclasses.replace(SHIPPED, **overrides)
    summary = spectral_benchmark(None, METHODS, config, progress=False).summary
    return summary.assign(variant=name)


def write_page(table: pd.DataFrame, out: Path, machine: str) -> list[str]:
    """Write the Markdown page from the per-site table of every variant."""
    per_site = table[(table["site"] != "mean") & table["method"].isin(METHODS)]
    shipped = per_site[per_site["variant"] == "shipped"][["site", "method", "rmse"]]
    rows = []
    for name in dict.fromkeys(per_site["variant"]):
        for method in METHODS:
            sel = per_site[(per_site["variant"] == name) & (per_site["method"] == method)]
            paired = sel.merge(shipped, on=["site", "method"], suffixes=("", "_shipped"))
            better = int((paired["rmse"] < paired["rmse_shipped"]).sum())
            rows.append({
                "variant": name, "change": VARIANTS[name][0], "method": method,
                "ΔRMSE % vs local-pls (mean)": round(float(sel["delta_rmse_pct"].mean()), 1),
                "PICP90 (mean)": round(float(sel["picp90"].mean()), 3),
                "sites better than shipped": f"{better} of {len(paired)}",
            })  # fmt: skip
    # every fit's own seconds (the library CNN is charged to the first method using it)
    seconds = table[table["site"] != "mean"].groupby("variant", sort=False)["seconds"].sum()
    lines = [
        "# DTL-R and DTL-IR fine-tuning defaults, one setting at a time",
        "",
        "`benchmarks/bench_dtl_defaults.py` (this page is generated). The spectral transfer "
        "benchmark (`spectral_transfer.md`: Kennard-Stone 30 local samples per site, the rest "
        f"of the site as the test set, {SHIPPED.repeats} repeat, seed {SHIPPED.seed}) on the "
        "embedded sites, for the two methods that fine-tune the library CNN; every variant "
        "changes one setting of the shipped `SpectralBenchmarkConfig`. ΔRMSE % is against "
        "`local-pls` at the same site, averaged over sites (negative is better); PICP90 is "
        "the calibrated 90 % interval's coverage of the test samples; 'sites better' counts "
        "the sites where the variant's RMSE is below the shipped setting's. Since this "
        "benchmark the fine-tuning default is the `lr 1e-3` row (`SpectralBenchmarkConfig`); "
        "`spectral_transfer.md` is the whole benchmark with it.",
        "",
        f"Machine: {machine}; socmap {socmap.__version__}. Fit seconds per variant (summed "
        "over sites and methods, the library CNN included): "
        + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
        + ".",
        "",
        markdown_table(pd.DataFrame(rows)),
        "",
    ]
    (out / "dtl_defaults.md").write_text("\n".join(lines))
    return lines


def main() -> None:
    """Run the variants (or read their table) and write the page."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    p.add_argument("--summary-only", action="store_true", help="rewrite the page from the CSV")
    args = p.parse_args()
    chosen = args.variants.split(",")
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    machine = f"{platform.machine()}, {pin_two_cores()}"
    if args.summary_only:
        table = pd.read_csv(args.out / "dtl_defaults.csv")
    else:
        frames = []
        for name in chosen:
            t0 = time.perf_counter()
            frames.append(run_variant(name))
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        table = pd.concat(frames, ignore_index=True)
        table.to_csv(args.out / "dtl_defaults.csv", index=False)
    print("\n".join(write_page(table, args.out, machine)))


if __name__ == "__main__":
    main()

"""Leave-region-out transfer benchmark: does transfer beat the regional forest on unseen regions?

For each held-out region cut from the embedded global table (a longitude/latitude box):

1. the global network is pretrained **without the region** (final fit, no CV; the shipped
   pretraining settings) and cached under ``--cache``;
2. the region's profiles are harmonised onto 0-30 and 30-60 cm (the network answers these
   intervals by composing its GlobalSoilMap depth atoms);
3. every method is run under ``--folds``-fold spatial block CV (``--block-size``, default
   0.5 degrees, larger than one 10' covariate cell), at training sizes ``--sizes``, each drawn
   ``--repeats`` times; every method sees the same training profiles.

The region's covariates are the 10' global layers (what a user without regional rasters
has), so the forests and the networks see the same inputs. Methods: the raw-target forest
``rf`` (ranger-like defaults, the reference), ``rf-log``, ``stacked``, ``global-gbm`` (gradient
boosting on the global table without the region), ``global`` (the pretrained network alone),
the transfer strategies and ``auto``.

Results go to ``--out/regions/<region>/`` (tidy CSVs, one folder per region, so a run resumes
region by region; inside a region every finished run is checkpointed in ``partial.jsonl``, so a
killed region resumes at the same commit and settings, e.g. in the next session) and the
summary to ``docs/benchmarks/transfer_regions.md``.

Run::

    .venv/bin/python benchmarks/bench_transfer_regions.py --quick      # ~20 min, 3 regions
    .venv/bin/python benchmarks/bench_transfer_regions.py              # the full grid, resumable
    .venv/bin/python benchmarks/bench_transfer_regions.py --summary-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import socmap  # noqa: E402
from _common import paired_differences, pin_two_cores  # noqa: E402
from socmap._io import atomic_path  # noqa: E402
from socmap.catalog import load_catalog  # noqa: E402
from socmap.datasets import global_training_table  # noqa: E402
from socmap.model.pretrain import (  # noqa: E402
    DEFAULT_BALANCE,
    DEFAULT_NETWORK,
    DEFAULT_PRETRAIN,
    pretrain,
)
from socmap.model.transfer import transfer_methods  # noqa: E402
from socmap.validate import BlockKFold  # noqa: E402
from socmap.validate.benchmark import parse_sizes, transfer_benchmark  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks" / "transfer_regions.md"

#: Held-out regions: (min lon, min lat, max lon, max lat), continent, climate in words.
REGIONS: dict[str, dict[str, Any]] = {
    "europe_central_east": {"bbox": (12, 43, 30, 55), "continent": "Europe",
                            "climate": "temperate"},
    "north_america": {"bbox": (-125, 25, -65, 50), "continent": "North America",
                      "climate": "temperate to subtropical"},
    "andes_north": {"bbox": (-82, -15, -70, 5), "continent": "South America",
                    "climate": "tropical, montane"},
    "pampas_south_brazil": {"bbox": (-65, -38, -45, -20), "continent": "South America",
                            "climate": "humid subtropical"},
    "se_asia": {"bbox": (95, 0, 125, 22), "continent": "Asia", "climate": "humid tropical"},
    "middle_east": {"bbox": (30, 25, 50, 40), "continent": "Asia", "climate": "arid"},
    "india": {"bbox": (68, 6, 90, 30), "continent": "Asia", "climate": "monsoon tropical"},
    "east_africa_highlands": {"bbox": (33, -5, 40, 2), "continent": "Africa",
                              "climate": "tropical highland"},
    "southern_africa": {"bbox": (25, -30, 32, -22), "continent": "Africa",
                        "climate": "semi-arid subtropical"},
    "west_africa_sahel": {"bbox": (-17, 10, -5, 16), "continent": "Africa",
                          "climate": "hot semi-arid"},
}  # fmt: skip
QUICK_REGIONS = ("europe_central_east", "andes_north", "southern_africa")
METHODS = (
    "rf", "rf-log", "stacked", "global-gbm", "global", "global-ens", "freeze-encoders",
    "prior-residual", "prior-residual-ens", "prior-stacked", "recalibrate", "blend", "auto",
)  # fmt: skip
DEPTHS = "0-30-60"


def region_table(bbox: tuple[float, float, float, float]) -> pd.DataFrame:
    """The region's profiles on 0-30 and 30-60 cm with the 10' covariates (rows with SOC)."""
    table = global_training_table(DEPTHS).table
    inside = table["x"].between(bbox[0], bbox[2]) & table["y"].between(bbox[1], bbox[3])
    rows = table.loc[inside & table["soc_g_kg"].notna()].reset_index(drop=True)
    return rows


def region_bundle(name: str, bbox: tuple[float, ...], cache: Path, seed: int) -> Path:
    """Pretrain (cached) the global network with the region left out.

    The cache key holds the pretraining defaults and the seed, so changed defaults
    re-pretrain instead of silently reusing an old network.
    """
    settings = json.dumps(
        [DEFAULT_NETWORK, DEFAULT_PRETRAIN, DEFAULT_BALANCE, seed, socmap.__version__],
        sort_keys=True, default=str,
    )  # fmt: skip
    key = hashlib.sha256(settings.encode()).hexdigest()[:10]
    path = cache / f"global_without_{name}-{key}"
    if (path / "model.json").exists():
        return path
    pretrain(path, exclude_bbox=bbox, cv=False, seed=seed, progress=False)  # type: ignore[arg-type]
    return path


def run_region(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run every method on one region and write its folder; returns its record."""
    spec = REGIONS[name]
    bbox = tuple(float(v) for v in spec["bbox"])
    start = time.perf_counter()
    commit = _commit()  # the code that runs, not what the tree holds when the region ends
    bundle = region_bundle(name, bbox, args.cache, args.seed)
    pretrain_s = time.perf_counter() - start
    table = region_table(bbox)  # type: ignore[arg-type]
    bands = load_catalog("global_10arcmin").band_names
    # global-gbm is the bundle's counterpart: the same rows (region left out) and the same
    # climate rebalancing as the network, so the two differ in the model family only.
    methods = transfer_methods(
        args.methods.split(","), bundle, bands, [], block_size=args.block_size,
        mc_passes=args.mc_passes, seed=args.seed,
    )  # fmt: skip
    cv = BlockKFold(args.folds, args.block_size, random_state=args.seed)
    out = args.out / "regions" / name
    # A region takes hours: each finished run is checkpointed, and a killed region resumes
    # at the same commit and settings (another commit or setting starts it over).
    partial = out / "partial.jsonl"
    same = {k: str(getattr(args, k)) for k in ("methods", "sizes", "repeats", "folds",
                                               "block_size", "mc_passes", "seed")}  # fmt: skip
    key = json.dumps({"commit": commit, "region": name, **same}, sort_keys=True)
    lines = partial.read_text().splitlines() if partial.is_file() else []
    if lines and (args.rerun or json.loads(lines[0]) != {"checkpoint_key": key}):
        partial.unlink()
        lines = []
    resumed = max(len(lines) - 1, 0)
    if resumed:
        print(f"{name}: resuming after {resumed} finished runs ({partial})", flush=True)
    bench = transfer_benchmark(
        methods, table, cv, sizes=parse_sizes(args.sizes), repeats=args.repeats,
        seed=args.seed, reference="rf", n_jobs=args.jobs, progress=True,
        checkpoint=partial, checkpoint_key=key,
    )  # fmt: skip
    bench.write(out)
    # resumed: the runs' own seconds in every process (timings.csv), not this one's wall
    here = time.perf_counter() - start - pretrain_s
    timings = bench.timings
    seconds = float(timings["seconds"].sum()) if resumed and timings is not None else here
    record = {
        "region": name,
        **{k: spec[k] for k in ("continent", "climate")},
        "bbox": list(bbox),
        "profiles": int(table["site_id"].nunique()),
        "rows": len(table),
        "pretrain_seconds": round(pretrain_s, 1),
        "benchmark_seconds": round(seconds, 1),
        "runs_resumed": resumed,
        "commit": commit,
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    with atomic_path(out / "region.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    partial.unlink(missing_ok=True)
    return record


def _same_code(commits: list[str]) -> bool:
    """Whether clean commits (no ``+changes``) all hold the same ``src/`` tree."""
    if any(not c or "+" in c or c == "unknown" for c in commits):
        return False
    try:
        return all(
            subprocess.run(["git", "diff", "--quiet", commits[0], c, "--", "src"],
                           cwd=ROOT, capture_output=True).returncode == 0
            for c in commits[1:]
        )  # fmt: skip
    except OSError:
        return False


def _commit() -> str:
    """Short git commit of the code that ran, with ``+changes`` when the tree was dirty."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")  # fmt: skip


# ---------------------------------------------------------------------------- summary
def _label(frame: pd.DataFrame) -> pd.Series:
    return frame["method"].where(
        frame["strategy"] == "-", frame["method"] + ":" + frame["strategy"]
    )


def _load(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[dict[str, Any]]]:
    results, summaries, records = [], [], []
    for folder in sorted((out / "regions").glob("*/")):
        if not (folder / "region.json").exists():
            continue  # an interrupted region: rerun resumes it
        records.append(json.loads((folder / "region.json").read_text()))
        name = folder.name
        results.append(pd.read_csv(folder / "results.csv").assign(region=name))
        summaries.append(pd.read_csv(folder / "summary.csv").assign(region=name))
    if not records:
        raise SystemExit(f"no finished region under {out / 'regions'}; run the benchmark first")
    res, summ = pd.concat(results, ignore_index=True), pd.concat(summaries, ignore_index=True)
    res["label"], summ["label"] = _label(res), _label(summ)
    res["n"], summ["n"] = res["n"].astype(str), summ["n"].astype(str)
    return res, summ, records


def _forest_pairs(res: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Paired differences of every method against ``rf`` and against ``rf-log``."""
    return {ref: paired_differences(res, ref) for ref in ("rf", "rf-log")}


def _beats_both_forests(pairs: dict[str, pd.DataFrame], label: str, region: str, n: str) -> bool:
    """Lower MAE and higher CCC than rf and than rf-log, each beyond 1 paired SE."""
    for table in pairs.values():
        d = table[(table["region"] == region) & (table["label"] == label) & (table["n"] == n)]
        if d.empty:
            return False
        mae, ccc = d.set_index("metric").loc["mae"], d.set_index("metric").loc["ccc"]
        if not (mae["mean"] < -mae["se"] and ccc["mean"] > ccc["se"]):
            return False
    return True


def _wins(res: pd.DataFrame) -> list[str]:
    """Per method and n: the regions where it beats both forests in MAE and CCC (> 1 SE)."""
    pairs = _forest_pairs(res)
    regions = sorted(res["region"].unique())
    sizes = list(dict.fromkeys(res["n"]))
    lines = [
        "| method | " + " | ".join(f"n = {n}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for label in dict.fromkeys(res["label"]):
        if label in ("rf", "rf-log"):
            continue
        cells = []
        for n in sizes:
            won = [r for r in regions if _beats_both_forests(pairs, label, r, n)]
            cells.append(f"{len(won)} of {len(regions)}" + (f" ({', '.join(won)})" if won else ""))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _method_summary(summ: pd.DataFrame) -> list[str]:
    """Per method: the acceptance's averages and worst case, for every method run."""
    pooled = summ[summ["depth"] == "all"].set_index(["region", "n", "label"])
    lines = [
        "| method | ΔMAE % vs rf | ΔCCC % vs rf | ΔMAE % vs rf-log | worst ΔMAE % vs the "
        "better forest | PICP90 cal. |",
        "|---|---:|---:|---:|---|---|",
    ]
    forests = ("rf", "rf-log")
    for label in dict.fromkeys(summ["label"]):
        if label in forests:
            continue
        rows = pooled.xs(label, level="label")
        ref = {f: pooled.xs(f, level="label").loc[rows.index] for f in forests}
        better = np.minimum(ref["rf"]["mae"], ref["rf-log"]["mae"])
        worst = 100 * (rows["mae"] / better - 1)
        where = worst.idxmax()
        lines.append(
            f"| {label} | {100 * (rows['mae'] / ref['rf']['mae'] - 1).mean():+.1f} | "
            f"{100 * (rows['ccc'] / ref['rf']['ccc'] - 1).mean():+.1f} | "
            f"{100 * (rows['mae'] / ref['rf-log']['mae'] - 1).mean():+.1f} | "
            f"{worst.max():+.1f} ({where[0]}, n = {where[1]}) | "
            f"{rows['calibrated_picp_90'].min():.3f}-{rows['calibrated_picp_90'].max():.3f} |"
        )
    return lines


def _acceptance(res: pd.DataFrame, summ: pd.DataFrame) -> list[str]:
    """The issue's acceptance lines, computed from the results."""
    pooled = summ[summ["depth"] == "all"]
    regions = sorted(pooled["region"].unique())
    lines = ["| check | measured | holds |", "|---|---|---|"]

    def mean_of(label: str, metric: str) -> pd.Series:
        sel = pooled[pooled["label"] == label]
        return sel.groupby(["region", "n"])[metric].mean()

    # Global-only skill: the network against global-gbm (same values at every n).
    if {"global", "global-gbm"} <= set(pooled["label"]):
        net_mae, gbm_mae = mean_of("global", "mae"), mean_of("global-gbm", "mae")
        net_ccc, gbm_ccc = mean_of("global", "ccc"), mean_of("global-gbm", "ccc")
        wins = [r for r in regions if (net_mae[r].mean() < gbm_mae[r].mean())
                and (net_ccc[r].mean() > gbm_ccc[r].mean())]  # fmt: skip
        lines.append(
            f"| global network beats global-gbm (MAE and CCC), regions | {len(wins)} of "
            f"{len(regions)} ({', '.join(wins) or 'none'}) | {len(wins) >= 7} |"
        )
    if "auto" not in set(pooled["label"]) and "finetune:auto" in set(pooled["label"]):
        auto = "finetune:auto"
    else:
        auto = "auto"
    if auto not in set(pooled["label"]):
        return lines
    pairs = _forest_pairs(res)
    for n in ("20", "50"):
        won = [r for r in regions if _beats_both_forests(pairs, auto, r, n)]
        lines.append(
            f"| auto beats rf and rf-log in MAE and CCC beyond 1 SE at n = {n}, regions | "
            f"{len(won)} of {len(regions)} | {len(won) >= 7} |"
        )
    worst = []
    for (r, n), g in pooled.groupby(["region", "n"]):
        by = g.set_index("label")["mae"]
        if auto in by and "rf" in by and "rf-log" in by:
            worst.append((100 * (by[auto] / min(by["rf"], by["rf-log"]) - 1), r, n))
    if worst:
        w = max(worst)
        lines.append(
            f"| auto never loses > 2 % MAE to the better forest | worst {w[0]:+.1f} % "
            f"({w[1]}, n = {w[2]}) | {w[0] <= 2.0} |"
        )
    small = pooled[pooled["n"].isin(["20", "50", "100"])]
    a = small[small["label"] == auto].set_index(["region", "n"])
    rf = small[small["label"] == "rf"].set_index(["region", "n"])
    d_mae = 100 * (a["mae"] / rf["mae"] - 1)
    d_ccc = 100 * (a["ccc"] / rf["ccc"] - 1)
    lines.append(
        f"| auto vs rf, mean over regions and n <= 100: ΔMAE ≤ -10 %, ΔCCC ≥ +15 % | "
        f"{d_mae.mean():+.1f} % / {d_ccc.mean():+.1f} % | "
        f"{bool(d_mae.mean() <= -10 and d_ccc.mean() >= 15)} |"
    )
    picp = pooled[pooled["label"] == auto].groupby("region")["calibrated_picp_90"].mean()
    inside = picp.between(0.87, 0.93)
    lines.append(
        f"| auto calibrated PICP90 in 0.87-0.93 in every region | "
        f"{picp.min():.3f}-{picp.max():.3f} | {bool(inside.all())} |"
    )
    return lines


def _region_tables(res: pd.DataFrame, summ: pd.DataFrame, region: str) -> list[str]:
    pooled = summ[(summ["depth"] == "all") & (summ["region"] == region)]
    pairs = {ref: paired_differences(res[res["region"] == region], ref) for ref in ("rf", "rf-log")}
    lines = [
        "| method | n | MAE | CCC | PICP90 cal. | ΔMAE % vs rf | ΔMAE vs rf (g/kg) | "
        "ΔCCC vs rf | ΔMAE vs rf-log (g/kg) | ΔCCC vs rf-log |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in pooled.itertuples(index=False):
        cells = []
        for ref in ("rf", "rf-log"):
            d = pairs[ref]
            d = d[(d["label"] == r.label) & (d["n"] == r.n)].set_index("metric")
            for metric in ("mae", "ccc"):
                cells.append(
                    "-" if d.empty or metric not in d.index
                    else f"{d.loc[metric, 'mean']:+.3f} ± {d.loc[metric, 'se']:.3f}"
                )  # fmt: skip
        lines.append(
            f"| {r.label} | {r.n} | {r.mae:.2f} | {r.ccc:.3f} | {r.calibrated_picp_90:.3f} | "
            f"{r.delta_mae_pct:+.1f} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |"
        )
    return lines


def _plot(summ: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled = summ[summ["depth"] == "all"]
    regions = sorted(pooled["region"].unique())
    cols = min(3, len(regions))
    rows = int(np.ceil(len(regions) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, region in zip(axes.ravel(), regions, strict=False):
        g = pooled[pooled["region"] == region]
        order = list(dict.fromkeys(g["n"]))
        for label, h in g.groupby("label", sort=False):
            h = h.set_index("n").reindex(order)
            style = "-" if label in ("rf", "rf-log", "auto", "finetune:auto") else ":"
            width = 2.5 if label in ("auto", "finetune:auto") else 1.2
            ax.plot(order, h["mae"], style, marker="o", lw=width, ms=3, label=label)
        ax.set_title(region)
        ax.set_xlabel("training profiles (n)")
        ax.set_ylabel("MAE (g/kg)")
    for ax in axes.ravel()[len(regions) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def write_summary(out: Path, doc: Path, machine: str, preface: str = "") -> None:
    """Combine every finished region into the Markdown report and the skill plot."""
    res, summ, records = _load(out)
    plot = doc.parent / doc.stem / "skill_vs_n.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    _plot(summ, plot)
    total = sum(r["pretrain_seconds"] + r["benchmark_seconds"] for r in records)
    settings = records[0]["settings"]
    lines = [
        "# Leave-region-out transfer benchmark",
        "",
        *([preface, ""] if preface else []),
        "`benchmarks/bench_transfer_regions.py` (this page is generated). Each region is a "
        "longitude/latitude box cut from the embedded global table; the global network and "
        "`global-gbm` are trained **without it**. The region's profiles (harmonised onto "
        "0-30 and 30-60 cm) are split by spatial block CV; each method trains on n profiles "
        "drawn from the training folds and predicts the whole held-out fold. Covariates: the "
        "10' global layers for every method. Metrics pool both layers, SOC in g/kg, mean over "
        "repeats. `rf` is the raw-target Random Forest with ranger-like defaults, the "
        "reference of ΔMAE %; paired differences (method minus reference, per fold, layer "
        "and repeat) are mean ± standard error (folds and layers are not independent, so "
        "read the SE as a rough scale). `finetune:auto` (auto) chooses among rf, rf-log, "
        "prior-residual, prior-stacked and recalibrate by inner spatial CV on the training "
        "profiles only, keeping prior-stacked unless another beats it by > 1 SE (a region run "
        "before commit 5862a3a had no prior-stacked and kept prior-residual); "
        "since commit 1cb37d8 a bundle holds any of them (the pretrained network with a "
        "regional adjustment, `socmap.model.adjustment`), so these are the numbers of the "
        "maps that `socmap finetune --strategy auto` and `socmap run` make. Since commit "
        "80cc51b `auto` also compares the fine-tuned network (`freeze-encoders`) from 200 "
        "training profiles; a region run before that commit has the older `auto`, and "
        "[auto_candidates.md](auto_candidates.md) measures the change on every region at "
        "n = 100 and all (5 folds, 1 repeat).",
        "",
        f"Settings: folds {settings['folds']}, block size {settings['block_size']}, sizes "
        f"{settings['sizes']}, repeats {settings['repeats']}, MC passes {settings['mc_passes']}, "
        f"seed {settings['seed']}. Machine: {machine}; socmap {socmap.__version__}. "
        f"Wall time of the regions below (pretraining included): **{total / 60:.1f} min**.",
        "",
        "## Regions",
        "",
        "| region | continent | climate | profiles | pretrain (s) | benchmark (s) | commit |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['region']} | {r['continent']} | {r['climate']} | {r['profiles']} | "
        f"{r['pretrain_seconds']:.0f} | {r['benchmark_seconds']:.0f}"
        f"{' (resumed)' if r.get('runs_resumed') else ''} | {r.get('commit', 'not recorded')} |"
        for r in records
    ]
    commits = {r.get("commit") for r in records}
    if len(commits) > 1 and _same_code(sorted(str(c) for c in commits)):
        lines += [
            "",
            f"The regions were run at {len(commits)} commits that differ only outside `src/`: "
            "the same socmap code.",
        ]
    elif len(commits) > 1:
        lines += [
            "",
            f"**The regions were run at {len(commits)} different commits: compare them with "
            "care, or rerun the older ones (`--rerun --regions ...`).**",
        ]
    checks = _acceptance(res, summ)
    if len(checks) <= 2:  # the header alone: neither auto nor the global pair was run
        checks = ["Not measured here: this run has neither `auto` nor `global` and `global-gbm`."]
    lines += ["", "## Acceptance checks (issue 14)", "", *checks, ""]
    lines += [
        "Regions where each method beats **both** forests, in MAE and in CCC, each by more "
        "than one paired standard error (the test of the second line, for every method):",
        "",
        *_wins(res),
        "",
        "Every method against the forests, averaged over regions and the sizes run (ΔCCC % "
        "is the mean of per-region ratios, so a region whose rf CCC is near 0 weighs a lot), "
        "its largest MAE loss against the better forest, and the range of its calibrated "
        "90 % coverage:",
        "",
        *_method_summary(summ),
        "",
    ]
    lines += [
        "Regions are run one at a time (resumable); the full list is `REGIONS` in the script, "
        "and a region missing above has not been run yet. Wall times are on a shared 2-core "
        "machine and grow when other jobs run beside the benchmark.",
        "",
        "What was tried for the first line (the global network against `global-gbm`): "
        "pretraining settings one at a time under 5-degree block CV, beside the spread of "
        "three seeds ([pretrain_variants.md](pretrain_variants.md)), the shipped bundle's "
        "10-fold CV ([pretrain.md](pretrain.md)), and the first line alone on all ten "
        "regions, for the shipped settings, variants and a seed ensemble, in minutes "
        "instead of hours ([global_regions.md](global_regions.md)).",
        "",
    ]
    lines += [f"![skill against n]({doc.stem}/skill_vs_n.png)", ""]
    for r in records:
        lines += [f"## {r['region']}", "", *_region_tables(res, summ, r["region"]), ""]
    with atomic_path(doc) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Parse options, run the regions not yet done, write the summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 regions, 5 folds, 2 repeats, n = 20,50,100 (daily work)",
    )
    p.add_argument("--regions", default=",".join(REGIONS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--sizes", default="20,50,100,all")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--block-size", default="0.5deg")
    p.add_argument("--mc-passes", type=int, default=16)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "transfer_regions")
    p.add_argument("--cache", type=Path, default=ROOT / ".bench_cache" / "transfer_regions")
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--rerun", action="store_true", help="recompute finished regions")
    p.add_argument("--summary-only", action="store_true")
    p.add_argument("--preface", default="", help="a paragraph on this run, under the title")
    args = p.parse_args()  # fmt: skip
    if args.quick:
        args.regions = ",".join(QUICK_REGIONS)
        args.folds, args.repeats, args.sizes = 5, 2, "20,50,100"
        args.out = args.out.with_name(args.out.name + "_quick")
        args.doc = args.doc.with_name(args.doc.stem + "_quick.md")
    machine = f"{platform.machine()}, {pin_two_cores()}"
    if not args.summary_only:
        for name in args.regions.split(","):
            if name not in REGIONS:
                raise SystemExit(f"unknown region {name!r}; choose from {sorted(REGIONS)!r}")
            if (args.out / "regions" / name / "region.json").exists() and not args.rerun:
                print(f"{name}: done, skipped (--rerun recomputes it)", flush=True)
                continue
            record = run_region(name, args)
            print(f"{name}: {record['profiles']} profiles, "
                  f"{record['benchmark_seconds']:.0f} s", flush=True)  # fmt: skip
            write_summary(args.out, args.doc, machine, args.preface)
    write_summary(args.out, args.doc, machine, args.preface)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()

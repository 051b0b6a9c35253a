"""Transfer benchmark: skill against the number of regional profiles, under spatial CV.

For each spatial fold, each training-set size ``n`` and each repeat, every method is trained
on ``n`` profiles drawn (seeded) from the other folds and predicts the whole held-out fold.
Results are tidy (one row per method x strategy x n x repeat x fold x depth x metric) and are
summarised against a reference method (the regional-only Random Forest) as ΔMAE% and ΔCCC%.
The folds may be your own (:class:`~socmap.validate.splitters.ColumnFolds`), the training
profiles of every fold and repeat may be listed instead of drawn (``train_sets``), and what each
fold's fit chose is kept in ``fits``.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap._io import atomic_path
from socmap._progress import track
from socmap._tables import markdown_table
from socmap.errors import ConfigError
from socmap.validate.cv import _check_train_sets, cross_validate
from socmap.validate.metrics import regression_metrics

__all__ = ["TransferBenchmark", "parse_sizes", "plot_skill", "transfer_benchmark"]

ALL = "all"
_POINT_METRICS = ("mae", "rmse", "me", "r2", "ccc")


def parse_sizes(text: str) -> list[int | None]:
    """``"20,50,100,all"`` -> ``[20, 50, 100, None]`` (``None`` = every training profile)."""
    sizes: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == ALL:
            sizes.append(None)
        elif part.isdigit() and int(part) > 0:
            sizes.append(int(part))
        else:
            raise ConfigError(f"size {part!r} in {text!r} must be a positive integer or 'all'")
    twice = sorted({ALL if s is None else str(s) for s in sizes if sizes.count(s) > 1})
    if twice:  # once each was run again: results and fits doubled, without a word
        raise ConfigError(
            f"--sizes {text!r} lists {', '.join(twice)} more than once; list each training "
            "size once (--repeats sets the draws per size)"
        )
    return sizes


def _sampler(n: int | None, seed: int) -> Callable[[int, np.ndarray], np.ndarray]:
    def pick(fold: int, sites: np.ndarray) -> np.ndarray:
        if n is None or n >= len(sites):
            return sites
        rng = np.random.default_rng([seed, fold, n])
        return rng.choice(sites, size=n, replace=False)

    return pick


@dataclass(frozen=True)
class TransferBenchmark:
    """Results of :func:`transfer_benchmark`.

    Attributes
    ----------
    results
        Tidy: ``method, strategy, n, repeat, fold, depth, metric, value, n_obs``; ``fold`` is
        ``"all"`` for metrics pooled over the folds of one repeat.
    summary
        Per method, strategy, n and depth: the mean over repeats of the pooled metrics, and
        ``delta_mae_pct`` / ``delta_ccc_pct`` against the reference method.
    reference
        Name of the reference method.
    timings
        Wall seconds per ``method, strategy, n, repeat`` (every fold's fit and prediction);
        kept apart from ``results``, which a seed reproduces exactly.
    fits
        What each fold's fit chose (:func:`~socmap.validate.cv.fitted_attributes`), tidy:
        ``method, strategy, n, repeat, fold, attribute, value`` (e.g. ``strategy_``,
        ``history_.best_epoch``, ``weight_``).
    """

    results: pd.DataFrame
    summary: pd.DataFrame
    reference: str
    timings: pd.DataFrame | None = None
    fits: pd.DataFrame | None = None

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``results.csv``, ``summary.csv``, ``summary.md``, ``skill_vs_n.png``.

        Also ``timings.csv`` and ``fits.csv`` (what each fold's fit chose) when present.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "results": out / "results.csv",
            "summary": out / "summary.csv",
            "markdown": out / "summary.md",
            "figure": out / "skill_vs_n.png",
        }
        if self.timings is not None:
            paths["timings"] = out / "timings.csv"
        if self.fits is not None:
            paths["fits"] = out / "fits.csv"
        for key in [k for k in ("results", "summary", "timings", "fits") if k in paths]:
            with atomic_path(paths[key], record=True) as tmp:
                getattr(self, key).to_csv(tmp, index=False)
        with atomic_path(paths["markdown"], record=True) as tmp:
            tmp.write_text(self.to_markdown())
        plot_skill(self.summary, paths["figure"], record=True)
        return paths

    def aoa_table(self) -> pd.DataFrame:
        """Per training size: mean AOA threshold and share of held-out sites inside the AOA.

        The AOA depends on the training sites only, so the reference method's folds are used.
        """
        method, strategy = _split(self.reference)
        r = self.results
        sel = r[
            (r["method"] == method)
            & (r["strategy"] == strategy)
            & r["metric"].isin(["aoa_threshold", "aoa_inside"])
        ]
        if sel.empty:
            return pd.DataFrame(columns=["n", "aoa_threshold", "aoa_inside"])
        out = sel.groupby(["n", "metric"], sort=False)["value"].mean().unstack("metric")
        return out.reset_index()[["n", "aoa_threshold", "aoa_inside"]]

    def to_markdown(self, depth: str = ALL) -> str:
        """Summary table at one depth (pooled depths by default), then the AOA per size."""
        s = self.summary[self.summary["depth"] == depth]
        cols = {"method": "method", "strategy": "strategy", "n": "n", "mae": "MAE",
                "rmse": "RMSE", "r2": "R²", "ccc": "CCC", "calibrated_picp_90": "PICP90 cal.",
                "delta_mae_pct": "ΔMAE %", "delta_ccc_pct": "ΔCCC %"}  # fmt: skip
        formats = {"MAE": "{:.2f}", "RMSE": "{:.2f}", "R²": "{:.3f}", "CCC": "{:.3f}",
                   "PICP90 cal.": "{:.3f}", "ΔMAE %": "{:+.1f}", "ΔCCC %": "{:+.1f}"}  # fmt: skip
        table = s[list(cols)].rename(columns=cols)
        lines = [markdown_table(table, columns={k: f.format for k, f in formats.items()})]
        aoa = self.aoa_table()
        if not aoa.empty:
            lines += [
                "",
                "Area of applicability of each fold's training sites (Meyer & Pebesma 2021; "
                "mean over folds and repeats):",
                "",
                markdown_table(aoa.rename(columns=AOA_COLUMNS), columns=AOA_FORMATS),
            ]
        return "\n".join(lines) + "\n"


#: Headers and formats of the area-of-applicability table of :meth:`TransferBenchmark.to_markdown`.
AOA_COLUMNS = {"aoa_threshold": "AOA threshold (DI)", "aoa_inside": "held-out sites inside the AOA"}
AOA_FORMATS = {
    "AOA threshold (DI)": "{:.3f}".format,
    "held-out sites inside the AOA": "{:.1%}".format,
}


def _split(name: str) -> tuple[str, str]:
    method, _, strategy = name.partition(":")
    return method, strategy or "-"


_FIT_TABLE = ["method", "strategy", "n", "repeat", "fold", "attribute", "value"]


def _runs(
    sizes: Sequence[int | None],
    repeats: int,
    seed: int,
    train_sets: pd.DataFrame | None,
) -> list[tuple[Any, int, Any]]:
    """``(n, repeat, train_sites)`` per run: seeded draws, or the rows of ``train_sets``."""
    if train_sets is None:
        return [
            (n, r, _sampler(n, zlib.crc32(f"{seed}:{r}".encode())))
            for n in sizes
            for r in range(1 if n is None else repeats)
        ]
    frame = _check_train_sets(train_sets, "train_sets")
    if "n" not in frame.columns:
        frame = frame.assign(n="listed")
    runs: list[tuple[Any, int, Any]] = []
    for key, g in frame.groupby(["n", "repeat"], sort=True):
        n, r = key
        runs.append((n, int(str(r)), g[["fold", "site_id"]]))
    return runs


def _check_sizes(sizes: Sequence[int | None], table: pd.DataFrame, cv: Any, target: str) -> None:
    """Refuse a training size no fold can draw (it would be "all", mislabelled)."""
    asked = [n for n in sizes if n is not None]
    if not asked or target not in table.columns:
        return
    data = table.loc[table[target].notna()].reset_index(drop=True)
    sites = data["site_id"].to_numpy()
    largest = max(
        (len(pd.unique(sites[train])) for train, _ in cv.split(data, groups=sites)), default=0
    )
    too_big = [n for n in asked if n > largest]
    if too_big:
        raise ConfigError(
            f"training size(s) {too_big!r} exceed the {largest} profiles of the largest "
            f"training fold ({len(pd.unique(sites))} profiles in all); use sizes up to "
            f"{largest}, or 'all'"
        )


def transfer_benchmark(
    methods: Mapping[str, Any],
    table: pd.DataFrame,
    cv: Any,
    *,
    sizes: Sequence[int | None] = (20, 50, 100, None),
    repeats: int = 5,
    seed: int = 0,
    reference: str = "rf",
    aoa_bands: Sequence[str] | None = None,
    target: str = "soc_g_kg",
    train_sets: pd.DataFrame | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_key: str = "",
) -> TransferBenchmark:
    """Run every method at every training-set size under the same spatial folds.

    Parameters
    ----------
    methods
        ``name -> estimator`` (cloned per fit). Names ``"method:strategy"`` fill both columns.
    table
        Regional training table (see :func:`socmap.training.regional_training_table`).
    cv
        Spatial splitter, e.g. ``BlockKFold(10, "2km")``, or
        :class:`~socmap.validate.splitters.ColumnFolds` for folds of your own; results then
        name folds by their own ids.
    sizes
        Numbers of training profiles; ``None`` uses all of the training folds.
    repeats
        Draws per size (``None`` runs once: there is nothing to draw).
    seed
        Seed of the draws; every method sees the same profiles.
    reference
        Method whose skill the deltas are relative to.
    aoa_bands
        Covariates of each fold's area of applicability: its threshold and the share of
        held-out sites inside it are reported per fold (metrics ``aoa_threshold``,
        ``aoa_inside``, depth ``all``).
    target
        Target column (see :func:`~socmap.validate.cross_validate`: another column than
        ``soc_g_kg`` is copied into ``soc_g_kg`` for the estimators).
    train_sets
        Training profiles of your own instead of draws (``sizes``, ``repeats`` and ``seed``
        are then not used): one row per profile with ``fold``, ``site_id`` and optionally
        ``repeat`` and ``n`` (a size label for the results; ``"listed"`` without it), as
        :func:`~socmap.validate.cv.read_train_sets` reads. Each ``(n, repeat)`` is a run,
        and must list every fold.
    n_jobs
        Folds fitted at once (see :func:`~socmap.validate.cross_validate`).
    progress
        Progress bar over runs.
    checkpoint, checkpoint_key
        A JSON-lines file that every finished ``(n, repeat, method)`` is appended to, so a
        benchmark killed after hours resumes where it stopped: runs already in the file are
        read back, not fitted again (draws and fits are seeded, so the result is the one an
        uninterrupted benchmark gives). ``checkpoint_key`` names the settings and code the
        file belongs to (e.g. the commit and the options); a file written under another key
        is an error.

    Raises
    ------
    ConfigError
        An unknown reference method, or a checkpoint written under another key.
    """
    if reference not in methods:
        raise ConfigError(f"reference method {reference!r} is not among {list(methods)!r}")
    if train_sets is None:
        _check_sizes(sizes, table, cv, target)
    runs = _runs(sizes, repeats, seed, train_sets)
    jobs = [(run, name) for run in runs for name in methods]
    rows: list[dict[str, Any]] = []
    timings: list[dict[str, Any]] = []
    fits: list[dict[str, Any]] = []
    done = _read_checkpoint(checkpoint, checkpoint_key)
    it = track(jobs, "transfer benchmark") if progress else jobs
    for (n, r, chosen), name in it:
        job = json.dumps([n, r, name])
        if job in done:
            rows += done[job]["rows"]
            timings += done[job]["timings"]
            fits += done[job]["fits"]
            continue
        first = (len(rows), len(timings), len(fits))
        start = time.perf_counter()
        res = cross_validate(
            methods[name],
            table,
            cv,
            target=target,
            train_sites=chosen,
            aoa_bands=aoa_bands,
            n_jobs=n_jobs,
            progress=False,
        )
        method, strategy = _split(name)
        base = {"method": method, "strategy": strategy, "n": ALL if n is None else n, "repeat": r}
        timings.append({**base, "seconds": time.perf_counter() - start})
        assert res.folds is not None  # cross_validate always reports its folds
        f = res.folds
        label = dict(zip(f["fold"], f["fold_id"] if "fold_id" in f else f["fold"], strict=True))
        for rec in res.metrics.itertuples(index=False):
            rows.append({**base, "fold": ALL, "depth": rec.depth, "metric": rec.metric,
                         "value": rec.value, "n_obs": rec.n})  # fmt: skip
        for (fold, depth), g in res.oof.groupby(["fold", "depth"]):
            scores = regression_metrics(g["obs_g_kg"], g["pred_g_kg"])
            for metric in _POINT_METRICS:
                rows.append({**base, "fold": str(label[fold]), "depth": depth, "metric": metric,
                             "value": float(scores[metric]), "n_obs": len(g)})  # fmt: skip
        if "aoa_threshold" in f.columns:
            for metric in ("aoa_threshold", "aoa_inside"):
                for fold, value, n_obs in zip(f["fold"], f[metric], f["n_test_sites"], strict=True):
                    rows.append({**base, "fold": str(label[fold]), "depth": ALL, "metric": metric,
                                 "value": float(value), "n_obs": int(n_obs)})  # fmt: skip
        for fold, record in enumerate(res.fitted):
            fits += [{**base, "fold": str(label[fold]), "attribute": key, "value": value}
                     for key, value in record.items()]  # fmt: skip
        if checkpoint is not None:
            part = {"job": job, "rows": rows[first[0] :], "timings": timings[first[1] :],
                    "fits": fits[first[2] :]}  # fmt: skip
            _append_checkpoint(Path(checkpoint), checkpoint_key, part)
    results = pd.DataFrame(rows)
    return TransferBenchmark(
        results,
        _summarise(results, reference),
        reference,
        pd.DataFrame(timings),
        pd.DataFrame(fits, columns=_FIT_TABLE),
    )


def _read_checkpoint(path: str | Path | None, key: str) -> dict[str, dict[str, Any]]:
    """Finished runs of an interrupted benchmark: job -> its rows, timings and fits."""
    if path is None or not Path(path).is_file():
        return {}
    lines = Path(path).read_text().splitlines()
    if not lines:  # killed before its first line: nothing finished
        return {}
    try:
        head = json.loads(lines[0])
    except json.JSONDecodeError:
        head = {}
    if head.get("checkpoint_key") != key:
        raise ConfigError(
            f"checkpoint {str(path)!r} belongs to other settings or code "
            f"({head.get('checkpoint_key')!r}, not {key!r}); delete it to start over"
        )
    done = {}
    for line in lines[1:]:
        try:
            part = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed write: that run reruns
            continue
        done[part["job"]] = part
    return done


def _append_checkpoint(path: Path, key: str, part: dict[str, Any]) -> None:
    """Append one finished run, flushed to disk before the next run starts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file() or path.stat().st_size == 0
    torn = False
    if not new:  # a killed write leaves a half line: end it before appending
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
    with path.open("a") as fh:
        if new:
            fh.write(json.dumps({"checkpoint_key": key}) + "\n")
        elif torn:
            fh.write("\n")
        fh.write(json.dumps(part, default=_jsonable) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _jsonable(value: Any) -> Any:
    """NumPy scalars as Python numbers; anything else a fit records as its text."""
    return value.item() if isinstance(value, np.generic) else str(value)


def _summarise(results: pd.DataFrame, reference: str) -> pd.DataFrame:
    pooled = results[results["fold"] == ALL]
    keep = [*_POINT_METRICS, "calibrated_picp_90", "picp_90"]
    wide = (
        pooled[pooled["metric"].isin(keep)]
        .groupby(["method", "strategy", "n", "depth", "metric"], sort=False)["value"]
        .mean()
        .unstack("metric")
        .reset_index()
    )
    method, strategy = _split(reference)
    is_ref = (wide["method"] == method) & (wide["strategy"] == strategy)
    ref = wide[is_ref].set_index(["n", "depth"])[["mae", "ccc"]]
    joined = wide.merge(ref.reset_index(), on=["n", "depth"], how="left", suffixes=("", "_ref"))
    joined["delta_mae_pct"] = 100 * (joined["mae"] - joined["mae_ref"]) / joined["mae_ref"]
    joined["delta_ccc_pct"] = 100 * (joined["ccc"] - joined["ccc_ref"]) / joined["ccc_ref"].abs()
    return joined.drop(columns=["mae_ref", "ccc_ref"])


def plot_skill(
    summary: pd.DataFrame, path: str | Path, depth: str = ALL, *, record: bool = False
) -> Path:
    """MAE and CCC against the number of training profiles, one line per method.

    ``record`` lists the figure in its folder's ledger (:func:`socmap._io.record_output`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = summary[summary["depth"] == depth].copy()
    order = sorted({str(v) for v in s["n"]}, key=lambda v: (v == ALL, int(v) if v.isdigit() else 0))
    s["x"] = s["n"].astype(str).map({v: i for i, v in enumerate(order)})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for (method, strategy), g in s.groupby(["method", "strategy"], sort=False):
        g = g.sort_values("x")
        label = method if strategy == "-" else f"{method}:{strategy}"
        for ax, metric in zip(axes, ("mae", "ccc"), strict=True):
            ax.plot(g["x"], g[metric], marker="o", label=label)
    for ax, title in zip(
        axes, ("MAE (g/kg), lower is better", "CCC, higher is better"), strict=True
    ):
        ax.set_xticks(range(len(order)), order)
        ax.set_xlabel("training profiles (n)")
        ax.set_title(title, fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out, record=record) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out

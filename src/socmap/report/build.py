"""The run report: one self-contained HTML page (images inlined) and the same in Markdown.

``socmap report RUN`` gathers what a verifier or a reviewer asks for, from the run directory
and the bundle it used:

* inputs and provenance (fingerprints of the bundle, cube and strata; run settings;
  library versions);
* QC: the training counts recorded in the bundle, and a QC summary when one is given;
* spatial CV: the bundle's CV metrics with their protocol, and a transfer benchmark's
  methods x metrics table (ΔMAE/ΔCCC against the regional-only forest) and skill against n
  when its folder is given;
* calibration: PICP at each nominal level, raw and calibrated;
* maps: SOC, its sd, the stock and the area of applicability;
* the stratum table (``socmap strata``) with intervals and compliance flags, and the
  sampling recommendations (``socmap design``, else the additional cores per stratum).

Sections whose inputs are absent say so rather than vanish.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from socmap._io import atomic_path, check_out_folder
from socmap._tables import html_table, markdown_table
from socmap._versions import versions
from socmap.errors import ConfigError, InputNotFound
from socmap.report._inputs import read_checked_json, read_checked_table
from socmap.report.map import build_map

__all__ = ["Report", "build_report"]

PICP_LEVELS = (50, 80, 90, 95)
#: The files ``socmap report`` writes into its ``--out`` folder (beside ``report_files/``).
REPORT_FILES = ("report.html", "report.md", "map.html", "report.pdf")
STRATA_COLUMNS = [
    "stratum", "layer", "area_ha", "unmapped_area_ha", "mean_t_c_ha", "se_t_c_ha", "ci90_low",
    "ci90_high", "ci95_low", "ci95_high", "relative_error", "conservative_t_c_ha",
    "total_t_co2e", "conservative_t_co2e", "n_cores", "cores_needed", "additional_cores",
    "min_cores_ok", "precision_ok",
]  # fmt: skip
#: Columns of ``strata/project.csv`` the summary reads.
PROJECT_COLUMNS = [
    "layer", "area_ha", "total_mg_c", "total_ci95_low", "total_ci95_high", "total_t_co2e",
    "co2e_ci95_low", "co2e_ci95_high", "conservative_t_co2e", "relative_error",
    "strata_left_out",
]  # fmt: skip
#: Columns of a transfer benchmark's ``summary.csv`` (``socmap benchmark transfer``).
BENCHMARK_COLUMNS = ["method", "depth", "n", "mae", "ccc", "delta_mae_pct", "delta_ccc_pct"]


@dataclass
class Details:
    """A collapsed part of a section (``<details>`` in HTML, a sub-heading in Markdown)."""

    summary: str
    blocks: list[Any] = field(default_factory=list)


@dataclass
class Link:
    """A link to a file beside the report (e.g. the map page)."""

    text: str
    href: str


@dataclass
class Report:
    """The pieces of a report, rendered to HTML and Markdown."""

    title: str
    sections: list[tuple[str, list[Any]]] = field(default_factory=list)

    def add(self, heading: str, *blocks: Any) -> None:
        """Add a section: text (str), tables (DataFrame) and figures (bytes of a PNG)."""
        self.sections.append((heading, list(blocks)))

    # ------------------------------------------------------------------ HTML
    def to_html(self, *, expand: bool = False) -> str:
        """Render a self-contained page: CSS inline, images as data URIs, no network.

        ``expand`` opens every collapsed part (for print, where nothing can be clicked).
        """
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for heading, blocks in self.sections:
            anchor = "-".join("".join(c if c.isalnum() else " " for c in heading).lower().split())
            parts.append(f'<section id="{anchor}"><h2>{html.escape(heading)}</h2>')
            for block in blocks:
                parts.append(_html_block(block, expand))
            parts.append("</section>")
        parts.append(f"<script>{_CHECK_IMAGES}</script></body></html>")
        return "\n".join(parts)

    # ------------------------------------------------------------------ Markdown
    def to_markdown(self, figures_dir: Path) -> str:
        """Markdown with figures written as PNG files into ``figures_dir``."""
        lines = [f"# {self.title}", ""]
        n = 0
        for heading, section in self.sections:
            lines += [f"## {heading}", ""]
            blocks = list(section)
            while blocks:
                block = blocks.pop(0)
                if isinstance(block, Details):
                    lines += [f"### {block.summary}", ""]
                    blocks = [*block.blocks, *blocks]
                elif isinstance(block, Link):
                    lines += [f"[{block.text}]({block.href})", ""]
                elif isinstance(block, bytes):
                    n += 1
                    path = figures_dir / f"figure_{n}.png"
                    with atomic_path(path, overwrite=True) as tmp:
                        tmp.write_bytes(block)
                    lines += [f"![figure {n}]({figures_dir.name}/{path.name})", ""]
                elif isinstance(block, pd.DataFrame):
                    lines += [markdown_table(block, _fmt), ""]
                else:
                    lines += [str(block), ""]
        return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#222}"
    "table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem}"
    "th,td{border:1px solid #ccc;padding:.2rem .45rem;text-align:right}"
    "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%;border:1px solid #ddd}.bad{color:#b00020;font-weight:600}"
    "td.txt,th.txt{text-align:left}"
    "section{margin-bottom:2rem}p.note{color:#555;font-size:.9rem}"
    "details{margin:.5rem 0}summary{cursor:pointer;color:#0645ad}"
    ".wide{overflow-x:auto;max-width:100%}"
    "@page{size:A4;margin:14mm}"
    "@media print{body{margin:0;max-width:none}table{font-size:.68rem}"
    "h2{break-after:avoid}img,tr{break-inside:avoid}.wide{overflow:visible}}"
)
# Marks the body once every image has decoded, and whether the page is wider than the
# window, so a headless browser can check both.
_CHECK_IMAGES = (
    "window.addEventListener('load',function(){var imgs=Array.from(document.images);"
    "var ok=imgs.every(function(i){return i.complete&&i.naturalWidth>0;});"
    "document.body.setAttribute('data-images',ok?'loaded':'broken');"
    "document.body.setAttribute('data-image-count',String(imgs.length));"
    "var wide=document.documentElement.scrollWidth>window.innerWidth;"
    "document.body.setAttribute('data-overflow',wide?'horizontal':'none');});"
)


def _html_block(block: Any, expand: bool = False) -> str:
    if isinstance(block, Details):
        inner = "".join(_html_block(b, expand) for b in block.blocks)
        tag = "<details open>" if expand else "<details>"
        return f"{tag}<summary>{html.escape(block.summary)}</summary>{inner}</details>"
    if isinstance(block, Link):
        href = html.escape(block.href, quote=True)
        return f'<p><a href="{href}">{html.escape(block.text)}</a></p>'
    if isinstance(block, bytes):
        data = base64.b64encode(block).decode("ascii")
        return f'<p><img alt="figure" src="data:image/png;base64,{data}"></p>'
    if isinstance(block, pd.DataFrame):
        return html_table(block, _fmt)
    text = html.escape(str(block))
    return f'<p class="note">{text}</p>'


def _fmt(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "NO"
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return "–"
        number = float(value)
        return f"{number:.3g}" if abs(number) < 1000 else f"{number:,.0f}"
    if value is None or value is pd.NA:
        return "–"
    return str(value)


# ---------------------------------------------------------------------- figures
def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _map_figure(panels: list[tuple[str, np.ndarray, str, str]], max_pixels: int = 500) -> bytes:
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, values, units, cmap) in zip(axes[0], panels, strict=True):
        step = max(1, int(np.ceil(max(values.shape) / max_pixels)))
        shown = values[::step, ::step]
        finite = shown[np.isfinite(shown)]
        vmin, vmax = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        im = ax.imshow(shown, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.75, label=units)
    return _png(fig)


# ---------------------------------------------------------------------- sections
def _provenance(run: Any, meta: dict[str, Any]) -> pd.DataFrame:
    c = run.config
    rows = [
        ("run", str(run.path)),
        ("bundle", c.bundle),
        ("bundle weights sha256", c.bundle_sha256),
        ("bundle strategy", meta.get("strategy", "–")),
        ("training table fingerprint", meta.get("training_fingerprint", "–")),
        ("cube", c.cube),
        ("cube id", c.cube_id),
        ("bands", ", ".join(c.bands)),
        ("global context bands", ", ".join(c.context_bands) or "none"),
        ("depth intervals", ", ".join(run.depth_labels)),
        ("Monte Carlo passes, seed", f"{c.passes}, {c.seed}"),
        ("stocks: bulk density", str(run.stocks.get("options", {}).get("bd", "not computed"))),
        ("strata source sha256", str(run.strata.get("options", {}).get("strata_sha256", "–"))),
    ]
    return pd.DataFrame(rows, columns=["item", "value"])


def _cv_tables(meta: dict[str, Any]) -> list[Any]:
    records = meta.get("cv_metrics")
    if not records:
        return ["The bundle records no cross-validation (fine-tune with --cv-folds to add one)."]
    cv = pd.DataFrame(records)
    wide = cv[cv["metric"].isin(["mae", "rmse", "me", "r2", "ccc"])].pivot_table(
        index="depth", columns="metric", values="value"
    )
    wide = wide.reset_index()[
        ["depth", *[m for m in ("mae", "rmse", "me", "r2", "ccc") if m in wide]]
    ]
    wide = wide.sort_values("depth", key=lambda d: d.map(_depth_order), kind="stable")
    protocol = meta.get("cv_protocol", {})
    note = (
        f"Protocol: {protocol.get('method', 'spatial CV')}, {protocol.get('folds', '?')} folds, "
        f"blocks {protocol.get('block_size', protocol.get('block_size_deg', '?'))}. "
        "Spatial CV estimates map accuracy; it is not a design-based estimate. "
        "SOC in g/kg, of the median prediction (the q50 layer: the back-transformed mean of "
        "log1p SOC); the mean layer, the log-normal mean that stocks use, lies above it."
    )
    return [note, wide]


def _depth_order(label: str) -> tuple[float, float]:
    """Sort key of a depth label: ``"0-5cm"`` by (top, bottom), anything else (``"all"``) last.

    Examples
    --------
    >>> sorted(["all", "5-15cm", "15-30cm", "0-5cm", "100-200cm"], key=_depth_order)
    ['0-5cm', '5-15cm', '15-30cm', '100-200cm', 'all']
    """
    top, sep, bottom = str(label).removesuffix("cm").partition("-")
    try:
        return (float(top), float(bottom)) if sep else (float("inf"), 0.0)
    except ValueError:
        return (float("inf"), 0.0)


def _calibration_table(meta: dict[str, Any]) -> pd.DataFrame | str:
    records = meta.get("cv_metrics")
    if not records:
        return "No calibration record (no cross-validation in the bundle)."
    table = pd.DataFrame(records)
    cv = table[table["depth"] == "all"].set_index("metric")["value"]
    rows = []
    for level in PICP_LEVELS:
        rows.append(
            {
                "nominal": f"{level} %",
                "PICP raw": cv.get(f"picp_{level}", np.nan),
                "PICP calibrated": cv.get(f"calibrated_picp_{level}", np.nan),
                "MPIW calibrated (g/kg)": cv.get(f"calibrated_mpiw_{level}", np.nan),
            }
        )
    return pd.DataFrame(rows)


def _benchmark_blocks(folder: Path | None) -> list[Any]:
    if folder is None:
        return ["No transfer benchmark given (socmap report --benchmark DIR)."]
    fix = (
        "--benchmark takes the folder that `socmap benchmark transfer -o DIR` writes (a "
        "spectral benchmark, `socmap spectra benchmark`, is not one)"
    )
    if not folder.is_dir():
        raise InputNotFound(f"--benchmark {str(folder)!r} is not a folder; {fix}")
    summary = read_checked_table(
        folder / "summary.csv", BENCHMARK_COLUMNS, "benchmark summary", fix, empty_ok=True
    )
    if "strategy" in summary.columns:  # four fine-tuning strategies are four methods
        named = summary["strategy"].notna() & ~summary["strategy"].isin(["-", ""])
        summary.loc[named, "method"] = (
            summary.loc[named, "method"] + ":" + summary.loc[named, "strategy"].astype(str)
        )
    table = summary[summary["depth"] == "all"][
        ["method", "n", "mae", "ccc", "delta_mae_pct", "delta_ccc_pct"]
    ].rename(columns={"delta_mae_pct": "ΔMAE % vs rf", "delta_ccc_pct": "ΔCCC % vs rf"})
    blocks: list[Any] = [
        f"Methods x metrics on held-out spatial blocks, against the regional-only random forest "
        f"(all depths; from {folder}).",
        table,
    ]
    figure = folder / "skill_vs_n.png"
    if figure.is_file():
        blocks.append(figure.read_bytes())
    return blocks


def _maps(run: Any) -> list[Any]:
    soc = run.open()
    top = run.depth_labels[0]
    panels = [
        (f"SOC median {top}", soc["soc"].sel(stat="q50", depth=top).values, "g/kg", "YlOrBr"),
        (f"SOC sd {top}", soc["soc"].sel(stat="sd", depth=top).values, "g/kg", "magma"),
    ]
    if run.stocks.get("status") in ("computed", "complete"):
        stock = run.open("stock.zarr")["stock"]
        label = str(run.stocks["labels"][-1])
        panels.append(
            (f"stock mean {label}", stock.sel(stat="mean", depth=label).values, "t C/ha", "viridis")
        )
    aoa = soc["aoa"].values
    if np.isfinite(aoa).any():
        panels.append(("area of applicability", aoa, "1 inside, 0 outside", "RdYlGn"))
    return [_map_figure(panels)]


@dataclass
class StrataOutputs:
    """What ``socmap strata`` (and ``socmap design``) wrote into a run, checked."""

    table: pd.DataFrame
    meta: dict[str, Any]
    project: pd.DataFrame
    design: pd.DataFrame | None


def _read_strata(run: Any) -> StrataOutputs | None:
    """Read the stratum outputs once per report, checked before anything is written.

    None before ``socmap strata``; a folder that ``run.json`` lists but that is missing or
    damaged is refused, never reported as "no stratum table yet".
    """
    folder = run.path / "strata"
    if not run.strata and not (folder / "strata.csv").is_file():
        return None
    source = (run.strata.get("options") or {}).get("strata_source", "STRATA")
    fix = f"rerun `socmap strata {run.path} --strata {source}`"
    if not folder.is_dir():
        raise InputNotFound(
            f"run {str(run.path)!r} lists stratum totals (run.json) but their folder "
            f"{str(folder)!r} is missing; {fix}"
        )
    required = [c for c in STRATA_COLUMNS if c != "unmapped_area_ha"]  # older tables lack it
    table = read_checked_table(
        folder / "strata.csv", required, "stratum table", fix, dtype={"stratum": str}
    )
    meta = read_checked_json(
        folder / "strata.json",
        {"config": ("min_cores", "target_relative_error", "conservative_confidence"),
         "approximation": ()},
        "stratum metadata",
        fix,
    )  # fmt: skip
    project = read_checked_table(folder / "project.csv", PROJECT_COLUMNS, "project totals", fix)
    allocation = run.path / "design" / "allocation.csv"
    design = None
    if allocation.is_file():
        design = read_checked_table(
            allocation, ["stratum", "allocated", "placed"], "sampling design",
            f"rerun `socmap design {run.path} --strata {source} --budget N -o "
            f"{run.path / 'design'}`, or move that folder away",
        )  # fmt: skip
    return StrataOutputs(table, meta, project, design)


def _strata_blocks(run: Any, outputs: StrataOutputs | None) -> tuple[list[Any], list[Any]]:
    if outputs is None:
        msg = "No stratum table yet (socmap strata RUN --strata ...)."
        return [msg], [msg]
    table, meta = outputs.table, outputs.meta
    cfg = meta["config"]
    totals = [str(t) for t in run.stocks.get("options", {}).get("total_labels", [])]
    reported = [t for t in totals if t in set(table["layer"])] or [str(table["layer"].iloc[-1])]
    strata: list[Any] = [
        f"Targets: at least {cfg['min_cores']} cores per stratum; relative error (95 % "
        f"half-width / mean) at most {cfg['target_relative_error']:.0%}. Conservative = lower "
        f"bound of the {cfg['conservative_confidence']:.0%} interval. {meta['approximation']}",
    ]
    for layer in reported:
        strata += [f"Stocks {layer}, one row per stratum:", _stratum_rows(table, layer)]
    strata.append(
        Details(
            f"Every layer and column ({len(table)} rows: {table['stratum'].nunique()} strata × "
            f"{table['layer'].nunique()} layers)",
            [table[[c for c in STRATA_COLUMNS if c in table.columns]]],
        )
    )
    recs: list[Any]
    if outputs.design is not None:
        recs = ["Sampling design (socmap design):", outputs.design]
    else:
        deepest = table["layer"].iloc[-1]
        need = table[table["layer"] == deepest][
            ["stratum", "n_cores", "cores_needed", "additional_cores", "min_cores_ok"]
        ]
        recs = [
            f"Additional cores per stratum for the {deepest} stock to reach the target precision "
            "(n = (t CV / E)^2 from the cores' CV; socmap design places them).",
            need,
        ]
    return strata, recs


def _quantity(value: Any, digits: int = 4) -> str:
    """Format a reported quantity: ``digits`` significant digits, thousands separators.

    Examples
    --------
    >>> _quantity(111754.3), _quantity(9.6873), _quantity(0.09861), _quantity(float("nan"))
    ('111,800', '9.687', '0.09861', '–')
    """
    v = float(value)
    if not np.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    exponent = int(np.floor(np.log10(abs(v))))
    rounded = round(v, digits - 1 - exponent)
    if exponent >= digits - 1:
        return f"{rounded:,.0f}"
    return f"{rounded:,.{digits - 1 - exponent}f}"


def _unmapped_notes(run: Any, table: pd.DataFrame | None) -> list[str]:
    """Explain what is not mapped: pixels, the covariates behind them, the strata they hit."""
    s = run.summary or {}
    mapped, nodata = int(s.get("pixels_predicted", 0)), int(s.get("pixels_nodata", 0))
    notes = []
    if mapped + nodata:
        notes.append(
            f"Mapped {mapped:,} pixels; {nodata:,} ({nodata / (mapped + nodata):.1%}) have no "
            "value because a covariate the model reads is missing there."
        )
    causes = _cube_nodata(run)
    if nodata and causes:
        notes.append("Missing covariates: " + "; ".join(causes) + ".")
    unknown = {b: int(n) for b, n in (s.get("unknown_class_pixels") or {}).items() if int(n)}
    if unknown:
        listed = ", ".join(f"{b} {n:,} pixels" for b, n in unknown.items())
        notes.append(
            f"Classes the model was not trained on ({listed}) are mapped with its "
            "unknown-class embedding, not left out."
        )
    if table is not None and "unmapped_area_ha" in table:
        first = table[table["layer"] == table["layer"].iloc[0]]
        hit = first[first["unmapped_area_ha"] > 0]
        share = hit["unmapped_area_ha"] / (hit["area_ha"] + hit["unmapped_area_ha"])
        if len(hit):
            notes.append(
                "Unmapped area by stratum (not in its totals): "
                + ", ".join(
                    f"{r} {_quantity(a)} ha ({f:.0%})"
                    for r, a, f in zip(hit["stratum"], hit["unmapped_area_ha"], share, strict=True)
                )
                + "."
            )
    return notes


def _cube_nodata(run: Any) -> list[str]:
    """Per band of the run's cube: its nodata share, and pixels of classes set to nodata."""
    from socmap.cube import open_cube
    from socmap.errors import SocmapError

    try:
        attrs = open_cube(run.config.cube).attrs
    except (OSError, SocmapError, ValueError, KeyError):
        return []  # a published or moved run: the cube is not beside it
    names = list(attrs.get("band_names", []))
    fractions = list(attrs.get("band_nodata_fraction", [0.0] * len(names)))
    unknown = list(attrs.get("band_unknown_class_pixels", [0] * len(names)))
    used = set(run.config.bands) | set(run.config.context_bands)
    out = []
    for band, frac, n_unknown in zip(names, fractions, unknown, strict=False):
        if band in used and float(frac) > 0:
            extra = (
                f", {int(n_unknown):,} of them class codes not in the catalog" if n_unknown else ""
            )
            out.append(f"{band} {float(frac):.1%} of the grid{extra}")
    return out


def _summary_blocks(run: Any, strata: StrataOutputs | None) -> list[Any]:
    """Project totals per layer, precision compliance and cores needed, for the first screen."""
    blocks: list[Any] = _unmapped_notes(run, None if strata is None else strata.table)
    if strata is None:
        return [*blocks, "No project totals yet (socmap strata RUN --strata ...)."]
    project = strata.project
    rows = [
        {
            "layer": r["layer"],
            "area (ha)": _quantity(r["area_ha"]),
            "stock (Mg C)": _quantity(r["total_mg_c"]),
            "stock 95 % interval (Mg C)": (
                f"{_quantity(r['total_ci95_low'])} – {_quantity(r['total_ci95_high'])}"
            ),
            "t CO₂e": _quantity(r["total_t_co2e"]),
            "t CO₂e 95 % interval": (
                f"{_quantity(r['co2e_ci95_low'])} – {_quantity(r['co2e_ci95_high'])}"
            ),
            "conservative t CO₂e": _quantity(r["conservative_t_co2e"]),
            "relative error": f"{r['relative_error']:.1%}",
        }
        for _, r in project.iterrows()
    ]
    blocks.append(pd.DataFrame(rows))
    left_out = project["strata_left_out"].dropna().astype(str)
    if (left_out != "").any():
        blocks.append(f"Strata without mapped pixels, not in the totals: {left_out.iloc[0]}.")
    table, meta = strata.table, strata.meta
    deepest = table["layer"].iloc[-1]
    last = table[table["layer"] == deepest]
    ok = int(last["precision_ok"].astype(bool).sum())
    extra = pd.to_numeric(last["additional_cores"], errors="coerce")
    target = meta["config"]["target_relative_error"]
    blocks.append(
        f"{ok} of {len(last)} strata meet the precision target for {deepest} (95 % "
        f"half-width of the mapped stock at most {target:.0%} of the mean). "
        + (
            f"Sized from the cores' own variability, a design-based estimate at that "
            f"precision needs {int(extra.sum()):,} more cores (see Sampling "
            "recommendations)."
            if extra.notna().any()
            else "No cores were given to size a design-based check."
        )
    )
    return blocks


def _stratum_rows(table: pd.DataFrame, layer: str) -> pd.DataFrame:
    """Tabulate the reported layer: one row per stratum, formatted, units in the headers."""
    rows = table[table["layer"] == layer]
    return pd.DataFrame(
        {
            "stratum": rows["stratum"],
            "area (ha)": rows["area_ha"].map(_quantity),
            "mean (t C/ha)": rows["mean_t_c_ha"].map(_quantity),
            "95 % interval (t C/ha)": [
                f"{_quantity(a)} – {_quantity(b)}"
                for a, b in zip(rows["ci95_low"], rows["ci95_high"], strict=True)
            ],
            "relative error": rows["relative_error"].map(lambda v: f"{v:.1%}"),
            "t CO₂e": rows["total_t_co2e"].map(_quantity),
            "conservative t CO₂e": rows["conservative_t_co2e"].map(_quantity),
            "cores": rows["n_cores"],
            "enough cores": rows["min_cores_ok"].astype(bool),
            "more cores needed": rows["additional_cores"],
            "precision ok": rows["precision_ok"].astype(bool),
        }
    )


def build_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    benchmark: str | Path | None = None,
    qc: str | Path | None = None,
    title: str | None = None,
    pdf: bool = False,
) -> dict[str, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` for a prediction run.

    Parameters
    ----------
    run_dir
        The prediction run (with stocks and strata for those sections).
    out_dir
        Folder for the report; default ``RUN/report``.
    benchmark
        A transfer benchmark folder (``summary.csv``, ``skill_vs_n.png``).
    qc
        A QC summary table (CSV: one row per flag or check, with counts).
    title
        Page title.
    pdf
        Also print ``report.pdf`` with a headless Chromium (:mod:`socmap.report.pdf`),
        every collapsed table expanded.

    Returns
    -------
    dict
        ``html``, ``markdown`` and ``map`` (the interactive map page,
        :func:`socmap.report.map.build_map`) paths, and ``pdf``.

    Raises
    ------
    ConfigError
        The run, its stocks or its strata did not finish; a table it reads (stratum
        table, project totals, design, benchmark summary) lacks columns or is damaged.
    InputNotFound
        A file or folder that ``run.json`` lists, or ``benchmark``, is missing.
    """
    from socmap.model.bundle import load_bundle
    from socmap.predict import open_run

    if title is not None and any(ord(c) < 32 or ord(c) == 127 for c in title):
        # once a line break split the Markdown heading: the report's first line was cut
        raise ConfigError(
            f"report title {title!r} holds a line break or another control character; give "
            "it on one line (--title, or report.title in a run configuration)"
        )
    run = open_run(run_dir)
    run.require_finished(["stocks", "strata"])  # as `socmap stocks` refuses it
    # every input is read and checked before the first file is written
    strata_outputs = _read_strata(run)
    benchmark_blocks = _benchmark_blocks(Path(benchmark) if benchmark is not None else None)
    qc_table = None
    if qc is not None:  # once read only here, after the work: an empty file was exit 1
        qc_table = read_checked_table(
            Path(qc), ["check", "severity", "n_rows", "n_sites"], "QC summary",
            "--qc takes the summary.csv that `socmap profiles qc -o DIR` writes",
        )  # fmt: skip
    meta = dict(load_bundle(run.config.bundle).metadata)
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    # the run's cube and bundle stay as they are (once a report written into the cube)
    files = REPORT_FILES if pdf else tuple(f for f in REPORT_FILES if f != "report.pdf")
    check_out_folder(out, [run.config.cube, run.config.bundle], files=files)
    report = Report(title or f"socmap report: {run.path.name}")
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report.add("Summary", *_summary_blocks(run, strata_outputs))
    report.add(
        "Inputs and provenance",
        f"Generated {created}.",
        _provenance(run, meta),
        pd.DataFrame(list(versions("not installed").items()), columns=["component", "version"]),
    )
    qc_blocks: list[Any] = []
    counts = meta.get("training_counts")
    if counts:
        qc_blocks += [
            "Training data counts recorded in the bundle:",
            pd.DataFrame(list(counts.items()), columns=["count", "value"]),
        ]
    if qc_table is not None:
        qc_blocks += ["QC summary:", qc_table]
    if run.summary:
        s = run.summary
        qc_blocks.append(
            f"Map: {s.get('pixels_predicted', 0):,} pixels predicted, "
            f"{s.get('pixels_nodata', 0):,} nodata (NaN, a covariate missing), "
            f"unknown classes {s.get('unknown_class_pixels') or 'none'}."
        )
    report.add("Quality control", *(qc_blocks or ["No QC information recorded."]))
    report.add("Spatial cross-validation", *_cv_tables(meta))
    report.add("Transfer benchmark and skill against n", *benchmark_blocks)
    report.add("Calibration (PICP at each nominal level)", _calibration_table(meta))
    map_page = build_map(run.path, out / "map.html", title=f"{report.title}: map")
    report.add(
        "Maps",
        Link("Open the interactive map (every depth and statistic, click for values)", "map.html"),
        "SOC is shown as its median (the q50 layer, expm1 of the mean log1p prediction): "
        "the point prediction the spatial cross-validation above scores. The mean layer is "
        "the log-normal mean, higher where the prediction is uncertain; stocks and stratum "
        "totals average their draws, so they are means.",
        *_maps(run),
    )
    strata, recs = _strata_blocks(run, strata_outputs)
    report.add("Stratum stocks", *strata)
    report.add("Sampling recommendations", *recs)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"html": out / "report.html", "markdown": out / "report.md", "map": map_page}
    with atomic_path(paths["html"], record=True) as tmp:
        tmp.write_text(report.to_html(), encoding="utf-8")
    figures = out / "report_files"
    figures.mkdir(exist_ok=True)
    with atomic_path(paths["markdown"], record=True) as tmp:
        tmp.write_text(report.to_markdown(figures), encoding="utf-8")
    if pdf:
        from socmap.report.pdf import html_to_pdf

        with tempfile.TemporaryDirectory(prefix="socmap-report-") as scratch:
            printable = Path(scratch) / "report.html"  # self-contained: it prints anywhere
            printable.write_text(report.to_html(expand=True), encoding="utf-8")
            paths["pdf"] = html_to_pdf(printable, out / "report.pdf")
    return paths

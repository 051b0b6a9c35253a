"""The main job on embedded data: ``socmap run`` on the built-in Edgeroi configuration.

The demo is the scheduled-run pipeline (:func:`socmap.pipeline.run_pipeline`) on
``catalogs/runs/edgeroi.yaml``: cube, profile QC and harmonisation, fine-tuning of the shipped
global bundle (pretrained without Edgeroi) with a calibration CV, tiled prediction with MC
dropout, carbon stocks, stratum stocks by geology unit with a design of new cores, and the
report. It only adds a summary of what the run did; a second demo into the same folder reuses
every unchanged stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from socmap.pipeline.config import RunSpec

__all__ = ["DEMO_CONFIG", "DemoResult", "demo_spec", "run_demo"]

#: The built-in run configuration the demo runs.
DEMO_CONFIG = "edgeroi"


@dataclass
class DemoResult:
    """What :func:`run_demo` did and where it wrote it."""

    out_dir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_text(self) -> str:
        """Summarise the run: facts, then one line per output."""
        lines = [f"socmap demo finished in {self.seconds:.1f} s; outputs in {self.out_dir}/"]
        lines += [f"  {k}: {v}" for k, v in self.facts.items()]
        lines.append("outputs:")
        lines += [f"  {k:<18} {v}" for k, v in self.outputs.items()]
        if "report" in self.outputs:
            lines.append(f"report: {self.outputs['report']}")
        return "\n".join(lines)


def demo_spec(*, strategy: str | None = None, passes: int | None = None) -> RunSpec:
    """Return the demo's run configuration: the built-in ``edgeroi`` one, with overrides.

    From a source checkout the report also shows the committed Edgeroi transfer benchmark
    (``docs/benchmarks/edgeroi_transfer``).
    """
    from socmap.pipeline.config import load_run_config

    spec = load_run_config(DEMO_CONFIG)
    update: dict[str, Any] = {}
    if strategy is not None:
        update["model"] = spec.model.model_copy(update={"strategy": strategy})
    if passes is not None:
        update["predict"] = spec.predict.model_copy(update={"passes": passes})
    report: dict[str, Any] = {"title": "socmap demo: Edgeroi SOC and carbon stocks"}
    bench = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "edgeroi_transfer"
    if (bench / "summary.csv").is_file():
        report["benchmark"] = str(bench)
    update["report"] = spec.report.model_copy(update=report)
    return spec.model_copy(update=update)


def run_demo(
    out_dir: str | Path = "demo_output",
    *,
    strategy: str | None = None,
    passes: int | None = None,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> DemoResult:
    """Run the main job end to end on the embedded Edgeroi data (``socmap run edgeroi``).

    Parameters
    ----------
    out_dir
        The run root: versions under ``runs/``, the newest one behind ``latest``.
    strategy, passes
        Overrides of the configuration's fine-tuning strategy (``auto``) and Monte Carlo
        dropout passes (32).
    progress, log
        As in :func:`~socmap.pipeline.run_pipeline`.

    Returns
    -------
    DemoResult
        Facts from the run's manifest and the paths of its outputs (through ``latest``).
    """
    from socmap.pipeline import run_pipeline
    from socmap.pipeline.versions import RunRoot

    start = time.perf_counter()
    outcome = run_pipeline(demo_spec(strategy=strategy, passes=passes), output=out_dir,
                           progress=progress, log=log)  # fmt: skip
    root = RunRoot(outcome.root)
    version = root.latest_version()
    assert version is not None  # run_pipeline publishes or finds an unchanged latest
    res = DemoResult(out_dir=Path(out_dir))
    manifest = root.manifest(version)
    res.facts = _facts(manifest["metrics"], manifest["config"])
    res.outputs = _outputs(root.latest)
    res.seconds = time.perf_counter() - start
    return res


def _facts(metrics: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, str]:
    """One line per stage from the manifest's metrics and configuration."""
    cube, prof, tune = metrics["cube"], metrics["profiles"], metrics["finetune"]
    facts = {
        "cube": f"{cube['bands']} bands x {cube['shape'][0]} x {cube['shape'][1]} px",
        "profiles": f"{prof['sites']} sites, {prof['horizons']} horizons, "
        f"{prof.get('horizons_with_soc', '?')} with SOC; {prof['qc_flags']} QC flags",
        "harmonised": ", ".join(f"{k} {v}" for k, v in prof["harmonised"].items()),
    }
    cv = tune.get("cv", {})
    facts["fine-tuned"] = (
        f"{tune['strategy']}; 5-fold 2 km block CV MAE {cv.get('all:mae', float('nan')):.2f} "
        f"g/kg, CCC {cv.get('all:ccc', float('nan')):.3f}, 90% intervals cover "
        f"{cv.get('all:calibrated_picp_90', float('nan')):.3f} after calibration; AOA "
        f"threshold {tune.get('aoa_threshold', float('nan')):.3f}"
    )
    pred = metrics["predict"]
    facts["maps"] = (
        f"{pred['pixels_predicted']} pixels predicted, {pred['pixels_nodata']} nodata pixels "
        "left NaN"
    )
    facts["stocks"] = str(metrics["stocks"]["stocks"])
    if "strata" in metrics:
        st = metrics["strata"]
        facts["strata"] = (
            f"{st['strata']} {config['strata']['source']} strata, {st['area_ha']:,.0f} ha "
            f"mapped; {st['layer']} "
            f"{st['total_t_co2e']:,.0f} t CO2e (conservative {st['conservative_t_co2e']:,.0f}); "
            f"{st.get('strata_short_of_cores', '?')} strata below the minimum cores, "
            f"{st.get('strata_short_of_precision', '?')} above the target relative error"
        )
        if "design_sites" in st:
            spacing = float(config["design"]["min_spacing_m"])
            facts["design"] = (
                f"{st['design_sites']} new core sites (Neyman allocation, {spacing:g} m apart "
                "at least)"
            )
    return facts


def _outputs(latest: Path) -> dict[str, Path]:
    """Where the run's outputs are, through ``latest``."""
    run = latest / "run"
    candidates = {
        "cube": latest / "cube.zarr",
        "qc summary": latest / "profiles" / "qc" / "summary.md",
        "harmonised": latest / "profiles" / "harmonised.parquet",
        "spline figure": latest / "profiles" / "figures" / "spline_fits.png",
        "training table": latest / "training" / "training_table.parquet",
        "cube figure": latest / "training" / "cube_bands.png",
        "bundle": latest / "bundle",
        "SOC maps": run / "soc.zarr",
        "COGs": run / "cogs",
        "quicklooks": run / "quicklooks",
        "STAC item": run / "item.json",
        "stock maps": run / "stock.zarr",
        "stratum table": run / "strata" / "strata.csv",
        "core design": run / "design" / "design.csv",
        "report": run / "report" / "report.html",
    }
    return {name: path for name, path in candidates.items() if path.exists()}

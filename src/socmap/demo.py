"""The main job on embedded data: from the Edgeroi cores to SOC and stock maps.

Cube, profile QC, harmonisation, training table; fine-tuning of the shipped global bundle
(pretrained without Edgeroi) with a calibration CV; tiled prediction with MC dropout into
Zarr, COGs, quicklooks and a STAC Item; carbon stocks with joint Monte Carlo uncertainty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from socmap.catalog import load_catalog

__all__ = ["DemoResult", "run_demo"]


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


#: Stratum layer of the demo's stock table (a categorical band of the Edgeroi cube).
DEMO_STRATA = "geology"
#: New cores the demo's sampling design places.
DEMO_BUDGET = 20


def run_demo(
    out_dir: str | Path = "demo_output",
    *,
    depths: str = "globalsoilmap",
    strategy: str = "auto",
    passes: int = 32,
    maps: bool = True,
    log: Callable[[str], object] = print,
) -> DemoResult:
    """Run the main job end to end on the embedded Edgeroi data.

    Steps: build the Edgeroi covariate cube from ``catalogs/covariates/edgeroi.yaml`` on its
    100 m grid; read and QC the 359 Edgeroi profiles; harmonise SOC to ``depths`` with the
    equal-area spline; sample the cube at the sites (nearest pixel) into a training table;
    draw quicklook figures; then (``maps``) fine-tune the shipped global bundle on the
    profiles down to 100 cm, map SOC with ``passes`` MC dropout passes, compute stocks,
    stratum stocks by geology unit and a design of new cores, and write the HTML report.

    Parameters
    ----------
    out_dir
        Output folder (created; files inside are replaced).
    depths
        Depth set from ``catalogs/depths.yaml``.
    strategy
        Fine-tuning strategy.
    passes
        Monte Carlo dropout passes of the maps.
    maps
        Fine-tune, map and compute stocks (otherwise stop after the training table).
    log
        Called with one line per step.
    """
    from socmap.cube import build_cube, open_cube
    from socmap.depth import harmonise
    from socmap.extraction import extract, write_table
    from socmap.profiles import qc_profiles, read_edgeroi, write_qc
    from socmap.report.figures import plot_cube_bands, plot_spline_fits

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(out_dir=out)

    catalog = load_catalog("edgeroi")
    n = 10 if maps else 5
    log(f"[1/{n}] building the Edgeroi cube ({len(catalog.covariates)} covariates)")
    cube_path = build_cube(catalog, None, out / "edgeroi_cube.zarr", overwrite=True)
    cube = open_cube(cube_path)
    res.outputs["cube"] = cube_path
    res.facts["cube"] = f"{cube.sizes['band']} bands x {cube.sizes['y']} x {cube.sizes['x']} px"

    log(f"[2/{n}] reading and QC-ing the Edgeroi profiles")
    profiles = read_edgeroi()
    report = qc_profiles(profiles)
    flags_path, summary_path = write_qc(report, out / "qc")
    res.outputs["qc flags"] = flags_path
    res.outputs["qc summary"] = summary_path
    res.facts["profiles"] = (
        f"{profiles['site_id'].nunique()} sites, {len(profiles)} horizons, "
        f"{int(profiles['soc_g_kg'].notna().sum())} with SOC; {len(report.flags)} QC flags"
    )

    log(f"[3/{n}] harmonising SOC onto {depths} depths (equal-area spline, lambda 0.1)")
    harmonised = harmonise(profiles, depths, value_cols=("soc_g_kg",))
    h_path = write_table(harmonised.table, out / f"edgeroi_soc_{depths}.parquet")
    s_path = write_table(harmonised.sites, out / f"edgeroi_soc_{depths}_sites.csv")
    res.outputs["harmonised"] = h_path
    res.outputs["spline fits"] = s_path
    res.facts["harmonised"] = ", ".join(f"{k} {v}" for k, v in harmonised.summary().items())

    log(f"[4/{n}] sampling the cube at the sites")
    extraction = extract(cube, harmonised.table, method="nearest")
    t_path = write_table(extraction.table, out / "training_table.parquet")
    res.outputs["training table"] = t_path
    res.facts["training table"] = (
        f"{len(extraction.table)} rows x {len(extraction.table.columns)} columns; sites: "
        + ", ".join(f"{k} {v}" for k, v in extraction.summary.items() if v)
    )

    log(f"[5/{n}] drawing quicklooks")
    site_xy = extraction.table.drop_duplicates("site_id")
    res.outputs["cube figure"] = plot_cube_bands(
        cube, out / "figures" / "cube_bands.png", sites=site_xy
    )
    res.outputs["spline figure"] = plot_spline_fits(
        profiles, harmonised.table, out / "figures" / "spline_fits.png"
    )
    if maps:
        _maps(
            res, profiles, harmonised, cube_path, depths=depths, strategy=strategy,
            passes=passes, log=log,
        )  # fmt: skip
        _report(res, harmonised.table, log=log)
    res.seconds = time.perf_counter() - start
    return res


def _maps(
    res: DemoResult,
    profiles: Any,
    harmonised: Any,
    cube_path: Path,
    *,
    depths: str,
    strategy: str,
    passes: int,
    log: Callable[[str], object],
) -> None:
    """Fine-tune the shipped bundle, map SOC, compute stocks (steps 6 to 8)."""
    res.outputs["run"] = res.out_dir / "run"
    from socmap.catalog import embedded_data_dir
    from socmap.cube import open_cube
    from socmap.model.finetune import finetune_bundle
    from socmap.predict import predict_cube
    from socmap.stocks import stocks_for_run
    from socmap.training import regional_training_table

    out = res.out_dir
    log(f"[6/10] fine-tuning the global bundle ({strategy}, 5-fold calibration CV)")
    data = regional_training_table(
        profiles, open_cube(cube_path), depths=depths, max_depth_cm=100, harmonised=harmonised
    )
    tuned = finetune_bundle(
        embedded_data_dir() / "bundles" / "global_gsm",
        data,
        out / "edgeroi_bundle",
        strategy=strategy,
        depth_set=depths,
        cv_folds=5,
        n_jobs=2,
    )
    res.outputs["bundle"] = tuned.bundle
    assert tuned.cv is not None
    cv = tuned.cv.summary().loc["all"]
    m = tuned.cv.metrics.set_index(["depth", "metric"])["value"]
    res.facts["fine-tuned"] = (
        f"{tuned.strategy}; 5-fold 2 km block CV MAE {cv['mae']:.2f} g/kg, "
        f"CCC {cv['ccc']:.3f}, 90% intervals cover {m[('all', 'calibrated_picp_90')]:.3f} "
        f"after calibration; AOA threshold {tuned.aoa.threshold_:.3f}"
    )
    log(f"[7/10] mapping SOC ({passes} MC dropout passes)")
    run = predict_cube(tuned.bundle, cube_path, out / "run", passes=passes, overwrite=True)
    res.outputs["SOC maps"] = run.path / "cogs"
    res.outputs["quicklooks"] = run.path / "quicklooks"
    res.outputs["STAC item"] = run.path / "item.json"
    s = run.summary
    res.facts["maps"] = (
        f"{s['pixels_predicted']} pixels x {len(run.config.intervals)} intervals, "
        f"{s['pixels_nodata']} nodata pixels left NaN"
    )
    log("[8/10] carbon stocks (bulk density from the WoSIS pedotransfer function)")
    stocks = stocks_for_run(run.path, overwrite=True)
    res.outputs["stock maps"] = run.path / "cogs"
    res.facts["stocks"] = stocks.describe()


def _report(res: DemoResult, cores: Any, *, log: Callable[[str], object]) -> None:
    """Stratum stocks by geology unit, a core design, and the HTML report (steps 9 and 10)."""
    from socmap.design import design_for_run
    from socmap.report.build import build_report
    from socmap.strata import strata_for_run

    run_dir = res.out_dir / "run"
    log(f"[9/10] stratum stocks by {DEMO_STRATA} and a design of {DEMO_BUDGET} new cores")
    strata = strata_for_run(run_dir, DEMO_STRATA, cores=cores)
    res.outputs["stratum table"] = strata.path
    deepest = strata.table[strata.table["layer"] == strata.table["layer"].iloc[-1]]
    total = float(deepest["total_t_co2e"].sum())
    conservative = float(deepest["conservative_t_co2e"].sum())
    res.facts["strata"] = (
        f"{len(deepest)} {DEMO_STRATA} strata, {deepest['area_ha'].sum():,.0f} ha mapped; "
        f"{deepest['layer'].iloc[0]} {total:,.0f} t CO2e (conservative {conservative:,.0f}); "
        f"{int((~deepest['min_cores_ok']).sum())} strata below 3 cores, "
        f"{int((~deepest['precision_ok']).sum())} above 20 % relative error"
    )
    sites, _, paths = design_for_run(
        run_dir, DEMO_STRATA, DEMO_BUDGET, run_dir / "design", min_spacing=1000.0, cores=cores
    )
    res.outputs["core design"] = paths["csv"]
    res.facts["design"] = f"{len(sites)} new core sites (Neyman allocation, 1 km spacing)"
    log("[10/10] writing the report")
    # the committed Edgeroi transfer benchmark, when running from a source checkout
    bench = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "edgeroi_transfer"
    qc_csv = res.out_dir / "qc" / "summary.csv"
    report = build_report(
        run_dir,
        title="socmap demo: Edgeroi SOC and carbon stocks",
        benchmark=bench if (bench / "summary.csv").is_file() else None,
        qc=qc_csv if qc_csv.is_file() else None,
    )
    res.outputs["report"] = report["html"]
    res.facts["report"] = f"{report['html']} (open it in a browser)"

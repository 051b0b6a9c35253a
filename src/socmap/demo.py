"""The main job on embedded data: Edgeroi cube, profile QC, harmonisation, training table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
        return "\n".join(lines)


def run_demo(
    out_dir: str | Path = "demo_output",
    *,
    depths: str = "globalsoilmap",
    log: Callable[[str], object] = print,
) -> DemoResult:
    """Run the data layer end to end on the embedded Edgeroi data.

    Steps: build the Edgeroi covariate cube from ``catalogs/covariates/edgeroi.yaml`` on its
    100 m grid; read and QC the 359 Edgeroi profiles; harmonise SOC to ``depths`` with the
    equal-area spline; sample the cube at the sites (nearest pixel) into a training table;
    draw quicklook figures.

    Parameters
    ----------
    out_dir
        Output folder (created; files inside are replaced).
    depths
        Depth set from ``catalogs/depths.yaml``.
    log
        Called with one line per step.
    """
    from socmap.cube import build_cube, open_cube
    from socmap.depth import harmonise
    from socmap.extract import extract, write_table
    from socmap.profiles import qc_profiles, read_edgeroi, write_qc
    from socmap.report.figures import plot_cube_bands, plot_spline_fits

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = DemoResult(out_dir=out)

    catalog = load_catalog("edgeroi")
    log(f"[1/5] building the Edgeroi cube ({len(catalog.covariates)} covariates)")
    cube_path = build_cube(catalog, None, out / "edgeroi_cube.zarr", overwrite=True)
    cube = open_cube(cube_path)
    res.outputs["cube"] = cube_path
    res.facts["cube"] = f"{cube.sizes['band']} bands x {cube.sizes['y']} x {cube.sizes['x']} px"

    log("[2/5] reading and QC-ing the Edgeroi profiles")
    profiles = read_edgeroi()
    report = qc_profiles(profiles)
    flags_path, summary_path = write_qc(report, out / "qc")
    res.outputs["qc flags"] = flags_path
    res.outputs["qc summary"] = summary_path
    res.facts["profiles"] = (
        f"{profiles['site_id'].nunique()} sites, {len(profiles)} horizons, "
        f"{int(profiles['soc_g_kg'].notna().sum())} with SOC; {len(report.flags)} QC flags"
    )

    log(f"[3/5] harmonising SOC onto {depths} depths (equal-area spline, lambda 0.1)")
    harmonised = harmonise(profiles, depths, value_cols=("soc_g_kg",))
    h_path = write_table(harmonised.table, out / f"edgeroi_soc_{depths}.parquet")
    s_path = write_table(harmonised.sites, out / f"edgeroi_soc_{depths}_sites.csv")
    res.outputs["harmonised"] = h_path
    res.outputs["spline fits"] = s_path
    res.facts["harmonised"] = ", ".join(f"{k} {v}" for k, v in harmonised.summary().items())

    log("[4/5] sampling the cube at the sites")
    extraction = extract(cube, harmonised.table, method="nearest")
    t_path = write_table(extraction.table, out / "training_table.parquet")
    res.outputs["training table"] = t_path
    res.facts["training table"] = (
        f"{len(extraction.table)} rows x {len(extraction.table.columns)} columns; sites: "
        + ", ".join(f"{k} {v}" for k, v in extraction.summary.items() if v)
    )

    log("[5/5] drawing quicklooks")
    site_xy = extraction.table.drop_duplicates("site_id")
    res.outputs["cube figure"] = plot_cube_bands(
        cube, out / "figures" / "cube_bands.png", sites=site_xy
    )
    res.outputs["spline figure"] = plot_spline_fits(
        profiles, harmonised.table, out / "figures" / "spline_fits.png"
    )
    res.seconds = time.perf_counter() - start
    return res

"""Stage the Hunter Valley HV100 topsoil samples with their 25 m covariates for benchmarks.

Reads the shared data folder (``../shared/data/hunter_valley_hv100_topsoil``: 100 samples,
SOC in %, 0-5 cm, and eight 25 m terrain rasters in EPSG:28356), samples every raster at
every site (the pixel containing it) and writes one tidy table into the repository, so
``bench_hunter_valley.py`` runs from any clone without the rasters (14 MB):
``benchmarks/data/hunter_valley/hv100_sites.csv`` with a NOTICE on source and licence.

SOC is converted from % to g/kg (x 10). Sites on a nodata pixel keep NaN covariates and
are counted in the NOTICE (the forests handle missing values); none is dropped.

Run once: ``.venv/bin/python benchmarks/stage_hunter_valley.py [--source DIR]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "hunter_valley_hv100_topsoil"
OUT = ROOT / "benchmarks" / "data" / "hunter_valley"
#: Raster file stem -> column name and units (the shared README's descriptions).
COVARIATES = {
    "AACN": ("aacn_m", "m (altitude above channel network)"),
    "elevation": ("elevation_m", "m"),
    "Hillshading": ("hillshading", "unitless"),
    "light_insolation": ("insolation", "annual solar radiation (as in the source)"),
    "MRVBF": ("mrvbf", "unitless (multi-resolution valley bottom flatness)"),
    "Slope": ("slope_deg", "degrees"),
    "TRI": ("tri", "unitless (terrain ruggedness index)"),
    "TWI": ("twi", "unitless (topographic wetness index)"),
}


def stage(source: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """The staged table and the count of sites with nodata per covariate."""
    samples = pd.read_csv(source / "hv100_topsoil_0_5cm.csv")
    table = pd.DataFrame({
        "site_id": samples["site"].astype(str),
        "x": samples["x_epsg28356"].astype(float),
        "y": samples["y_epsg28356"].astype(float),
        "crs": "EPSG:28356",
        "top_cm": 0.0,
        "bottom_cm": 5.0,
        "soc_g_kg": samples["soc_pct"].astype(float) * 10.0,
    })  # fmt: skip
    nodata: dict[str, int] = {}
    coords = list(zip(table["x"], table["y"], strict=True))
    for stem, (column, _) in COVARIATES.items():
        with rasterio.open(source / "covariates_25m" / f"hunterCovariates_A_{stem}.tif") as src:
            if src.crs.to_epsg() != 28356:
                raise SystemExit(f"{stem}: CRS {src.crs} is not EPSG:28356 as the README says")
            values = np.array([v[0] for v in src.sample(coords, masked=True)], dtype=object)
            flat = np.array([np.nan if v is np.ma.masked else float(v) for v in values])
        table[column] = flat
        nodata[column] = int(np.isnan(flat).sum())
    return table, nodata


def main() -> None:
    """Write the staged table and its NOTICE."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=SOURCE)
    args = p.parse_args()
    table, nodata = stage(args.source)
    OUT.mkdir(parents=True, exist_ok=True)
    table.to_csv(OUT / "hv100_sites.csv", index=False, float_format="%.10g")
    units = "\n".join(f"- `{col}`: {u}" for col, u in COVARIATES.values())
    missing = ", ".join(f"`{c}` {n}" for c, n in nodata.items() if n) or "none"
    (OUT / "NOTICE.md").write_text(
        "# Hunter Valley HV100 topsoil samples (staged for benchmarks)\n\n"
        "Source: B. Malone, R package ithir 2.0.0 (`github.com/brendo1001/ithir_github` @ "
        "f3caeb44c97fcb3d81c38a410c182fb1a5569f21): `data/HV100.rda` and "
        "`inst/extdata/hunterCovariates_A_*.tif`. Licence: GPL-2 (the package's DESCRIPTION); "
        "the rasters are provided for demonstration and educational purposes. Reference: "
        "Malone, B.P., McBratney, A.B., Minasny, B. (2011). Empirical estimates of uncertainty "
        "for mapping continuous depth functions of soil attributes. Geoderma 160, 614-626; and "
        "Malone et al. (2011) SSSAJ 75:1032-1043.\n\n"
        "`hv100_sites.csv` was written by `benchmarks/stage_hunter_valley.py`: the 100 samples "
        "(0-5 cm, EPSG:28356 metres), SOC converted from % to g/kg (x 10), and each 25 m "
        "covariate sampled at the pixel containing the site. Covariates:\n\n"
        f"{units}\n\nSites on a nodata pixel (kept, NaN): {missing}.\n"
    )
    print(f"wrote {OUT / 'hv100_sites.csv'}: {len(table)} sites; nodata: {nodata}")


if __name__ == "__main__":
    main()

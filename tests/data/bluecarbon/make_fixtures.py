"""Regenerate the synthetic blue-carbon fixtures in this folder (seeded, deterministic).

Run from anywhere: ``python tests/data/bluecarbon/make_fixtures.py``. Writes
``core_locations.csv`` and ``core_samples.csv`` in the MMRV template's shape.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20260
HERE = Path(__file__).parent

# Six cores in Moreton Bay (Queensland), three per stratum. Depth layouts cover the cases the
# readers must handle: fine 5-cm increments, VM0033 intervals, a single 0-30 cm composite.
CORES = [
    # core_id, stratum, longitude, latitude, elevation_m_ahd, sampling_date, depth breaks (cm)
    ("MG-01", "mangrove", 153.1702, -27.3951, 0.42, "2024-03-12", list(range(0, 101, 5))),
    ("MG-02", "mangrove", 153.1731, -27.3978, 0.55, "2024-03-12", [0, 15, 30, 50, 100]),
    ("MG-03", "mangrove", 153.1688, -27.4012, 0.38, "2024-03-13", [0, 10, 20, 30, 50, 75]),
    ("SM-01", "saltmarsh", 153.1615, -27.3902, 1.05, "2024-03-14", [0, 30]),
    ("SM-02", "saltmarsh", 153.1597, -27.3925, 1.12, "2024-03-14", [0, 10, 20, 30, 50]),
    ("SM-03", "saltmarsh", 153.1642, -27.3889, 0.98, "2024-03-15", [0, 15, 30, 50]),
]
# Stratum means: SOC (g/kg) at the surface and its loss per metre; BD (g/cm3) at the surface
# and its gain per metre. Ranges follow published mangrove/saltmarsh cores (SOC 20-150 g/kg,
# BD 0.3-1.2 g/cm3).
STRATA = {
    "mangrove": {"soc0": 110.0, "soc_per_m": -35.0, "bd0": 0.50, "bd_per_m": 0.35},
    "saltmarsh": {"soc0": 65.0, "soc_per_m": -40.0, "bd0": 0.75, "bd_per_m": 0.40},
}


def make(seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the locations and samples tables."""
    rng = np.random.default_rng(seed)
    locs = []
    samples = []
    for core_id, stratum, lon, lat, elev, date, breaks in CORES:
        p = STRATA[stratum]
        locs.append(
            {
                "core_id": core_id,
                "longitude": lon,
                "latitude": lat,
                "stratum": stratum,
                "elevation_m_ahd": elev,
                "sampling_date": date,
                "site_name": "Moreton Bay (synthetic)",
            }
        )
        core_offset = rng.normal(0.0, 8.0)
        for k, (top, bottom) in enumerate(itertools.pairwise(breaks)):
            mid_m = (top + bottom) / 200.0
            soc = p["soc0"] + core_offset + p["soc_per_m"] * mid_m + rng.normal(0.0, 6.0)
            bd = p["bd0"] + p["bd_per_m"] * mid_m + rng.normal(0.0, 0.05)
            samples.append(
                {
                    "core_id": core_id,
                    "sample_id": f"{core_id}-{k + 1:02d}",
                    "depth_top_cm": float(top),
                    "depth_bottom_cm": float(bottom),
                    "soc_g_kg": round(float(np.clip(soc, 20.0, 150.0)), 1),
                    "bulk_density_g_cm3": round(float(np.clip(bd, 0.3, 1.2)), 2),
                }
            )
    return pd.DataFrame(locs), pd.DataFrame(samples)


if __name__ == "__main__":
    locations, samples = make()
    locations.to_csv(HERE / "core_locations.csv", index=False)
    samples.to_csv(HERE / "core_samples.csv", index=False)
    print(f"wrote {len(locations)} cores and {len(samples)} samples to {HERE}")

"""Small meuse prediction runs with stocks and strata, built by seeded code in seconds.

Tests that need whole runs (stocks, stratum tables, comparisons) build them from these
pieces instead of repeating the setup: a meuse cube, seeded cores whose SOC depends on the
covariates, a small fine-tuned bundle, and a run with stocks and strata on top::

    cube = meuse_cube(root)
    cores = meuse_cores(cube, n=60, seed=0)
    bundle = meuse_bundle(cube, cores, root / "bundle")
    run = meuse_run(bundle, cube, root / "run", cores=cores)

Nothing here reads shared or demo data; every number comes from the seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

INTERVALS: tuple[tuple[float, float], ...] = ((0.0, 15.0), (15.0, 30.0))


def meuse_cube(root: Path, *, chunk: int = 32) -> Path:
    """The embedded meuse cube (104 x 78 pixels of 40 m; 12 tiles of 32 px by default)."""
    from socmap.cube import build_cube

    return build_cube("meuse", None, root / f"meuse{chunk}.zarr", chunk=chunk, progress=False)


def meuse_cores(
    cube_path: Path,
    *,
    n: int = 60,
    seed: int = 0,
    shift: float = 0.0,
    prefix: str = "s",
    intervals: Sequence[tuple[float, float]] = INTERVALS,
) -> pd.DataFrame:
    """Seeded cores on valid cube pixels: ``log SOC = 3.2 + shift - 2 dist - top/40 + noise``.

    ``shift`` raises SOC everywhere (a later survey after a gain); ``prefix`` keeps site ids
    of several surveys apart.
    """
    from socmap.cube import open_cube

    cube = open_cube(cube_path)
    values = cube.values
    rng = np.random.default_rng(seed)
    valid = np.argwhere(np.isfinite(values).all(axis=0))
    rows = []
    for i, (r, c) in enumerate(valid[rng.choice(len(valid), n, replace=False)]):
        dist, ffreq, soil = (float(v) for v in values[:, r, c])
        for top, bottom in intervals:
            soc = float(np.exp(3.2 + shift - 2 * dist - top / 40 + rng.normal(0, 0.2)))
            rows.append(
                {"site_id": f"{prefix}{i}", "x": float(cube.x[c]), "y": float(cube.y[r]),
                 "crs": "EPSG:28992", "top_cm": top, "bottom_cm": bottom, "dist": dist,
                 "ffreq": ffreq, "soil": soil, "soc_g_kg": soc}
            )  # fmt: skip
    return pd.DataFrame(rows)


def meuse_bundle(
    cube_path: Path,
    cores: pd.DataFrame,
    out: Path,
    *,
    epochs: int = 3,
    intervals: Sequence[tuple[float, float]] = INTERVALS,
) -> Path:
    """A small network fitted on ``cores`` and saved as a bundle (a few seconds)."""
    from socmap.cube import band_table, open_cube
    from socmap.model.estimator import SocNetRegressor

    est = SocNetRegressor(
        band_table(open_cube(cube_path)),
        network={"fusion_dim": 16, "head": (32, 16)},
        train={"max_epochs": epochs},
        block_size=500.0,
        units="metres",
    ).fit(cores)
    return Path(est.save(out, {"intervals": [tuple(iv) for iv in intervals]}))


def meuse_run(
    bundle: Path,
    cube_path: Path,
    out: Path,
    *,
    seed: int = 0,
    passes: int = 4,
    bd: float = 1.3,
    bd_sd: float = 0.1,
    totals: Sequence[tuple[float, float]] | None = None,
    strata: str | None = "soil",
    cores: pd.DataFrame | None = None,
) -> Path:
    """A run with stocks (constant BD) and, unless ``strata`` is None, a stratum table.

    Exports are skipped (they are tested where they are made); ``strata`` is a cube band or
    a stratum file as :func:`socmap.predict.strata_for_run` takes.
    """
    from socmap.predict import predict_cube
    from socmap.stocks import stocks_for_run
    from socmap.strata import strata_for_run

    predict_cube(
        bundle, cube_path, out, passes=passes, seed=seed, workers=0, exports=False,
        progress=False,
    )  # fmt: skip
    stocks_for_run(out, bd=bd, bd_sd=bd_sd, totals=totals, workers=0, exports=False, progress=False)
    if strata is not None:
        strata_for_run(out, strata, cores=cores, workers=0, progress=False)
    return out

"""Sampling design: how many new cores per stratum, and where to take them.

**Allocation** is Neyman's (optimum allocation for a stratified mean, Cochran 1977 §5.5):
``n_h = n N_h S_h / sum_k N_k S_k`` with ``N_h`` the stratum's area and ``S_h`` its
uncertainty (the mean of the uncertainty raster over the stratum: the map's sd, or an
interval width). Strata first get ``minimum`` cores each where the budget allows (VM0033 asks
for 3); the rest is allocated by Neyman's rule and rounded by largest remainders, so the
total is exactly the budget.

**Sites** within a stratum are drawn by simple sequential inhibition (Diggle 2013, §6): each
next site is drawn with probability proportional to the pixel's uncertainty among the
pixels at least ``min_spacing`` from the sites drawn so far, so sites go where the map is
least sure and are spread in space. Pixels inside the area of applicability are used first;
pixels outside it only when too few inside remain ("inside the AOA where possible"), and
each site records which it is. A stratum too small for its sites at that spacing gets
fewer, and the shortfall is reported, never hidden.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from socmap._io import atomic_path, check_out_folder
from socmap.errors import ConfigError
from socmap.grid import Grid

__all__ = [
    "DESIGN_FILES",
    "design_for_run",
    "design_sites",
    "neyman_allocation",
    "sample_sites",
    "write_design",
]

#: The files ``socmap design`` writes into its ``--out`` folder.
DESIGN_FILES = ("design.csv", "design.gpkg", "allocation.csv")


def neyman_allocation(
    sizes: Mapping[str, float],
    sds: Mapping[str, float],
    budget: int,
    minimum: int = 0,
    existing: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Allocate new cores: strata below ``minimum`` first, the rest by Neyman's rule.

    Parameters
    ----------
    sizes
        Stratum -> size (area in ha, or pixel count).
    sds
        Stratum -> uncertainty (sd of the variable within the stratum).
    budget
        Total number of cores.
    minimum
        Cores every stratum should have (VM0033: 3). Strata below it, counting their
        ``existing`` cores, are topped up first, the largest shortfall first when the budget
        cannot cover them all.
    existing
        Cores a stratum already has.

    Examples
    --------
    >>> neyman_allocation({"a": 100, "b": 100}, {"a": 3.0, "b": 1.0}, 8)
    {'a': 6, 'b': 2}
    >>> neyman_allocation({"a": 100, "b": 100}, {"a": 3.0, "b": 1.0}, 8, minimum=3)
    {'a': 5, 'b': 3}
    >>> neyman_allocation({"a": 100, "b": 100}, {"a": 3.0, "b": 1.0}, 4, 3, {"a": 0, "b": 3})
    {'a': 4, 'b': 0}
    >>> neyman_allocation({"a": 1, "b": 2, "c": 3}, {"a": 1.0, "b": 1.0, "c": 1.0}, 5, 10**12)
    {'a': 1, 'b': 2, 'c': 2}
    """
    if budget < 0:
        raise ConfigError(f"core budget {budget!r} must be >= 0")
    strata = list(sizes)
    bad = [s for s in strata if not (sizes[s] >= 0 and sds.get(s, float("nan")) >= 0)]
    if bad:
        raise ConfigError(
            f"strata {bad!r} lack a size >= 0 or an uncertainty >= 0; check the stratum map "
            "and the uncertainty raster overlap"
        )
    have = dict(existing or {})
    score = np.array([sizes[s] * sds[s] for s in strata], dtype=np.float64)
    shortfall = {s: max(0, minimum - int(have.get(s, 0))) for s in strata}
    base = {s: 0 for s in strata}
    order = sorted(range(len(strata)), key=lambda i: (-shortfall[strata[i]], -score[i], i))
    left = budget
    # one core at a time to every stratum still short, largest shortfall first; whole rounds
    # at once, so a huge budget or minimum costs no more than a small one
    while left > 0:
        short = [strata[i] for i in order if base[strata[i]] < shortfall[strata[i]]]
        if not short:
            break
        rounds = min(left // len(short), min(shortfall[s] - base[s] for s in short))
        for s in short if rounds else short[:left]:
            base[s] += max(rounds, 1)
        left -= rounds * len(short) if rounds else min(left, len(short))
    if left <= 0 or not strata:
        return base
    if score.sum() <= 0:
        score = np.array([float(sizes[s]) for s in strata])
    if score.sum() <= 0:
        score = np.ones(len(strata))
    exact = left * score / score.sum()
    whole = np.floor(exact).astype(int)
    # largest remainders; ties to the larger score, then the stratum order
    order = sorted(range(len(strata)), key=lambda i: (-(exact[i] - whole[i]), -score[i], i))
    for i in order[: left - int(whole.sum())]:
        whole[i] += 1
    return {s: base[s] + int(whole[i]) for i, s in enumerate(strata)}


def sample_sites(
    xy: npt.ArrayLike,
    weights: npt.ArrayLike,
    n: int,
    min_spacing: float,
    *,
    preferred: npt.ArrayLike | None = None,
    rng: np.random.Generator | int = 0,
) -> np.ndarray:
    """Draw ``n`` candidates by weighted simple sequential inhibition; return their indices.

    Parameters
    ----------
    xy
        ``(N, 2)`` candidate coordinates (metres, or the units of ``min_spacing``).
    weights
        ``(N,)`` non-negative selection weights (the uncertainty).
    n
        Sites wanted.
    min_spacing
        No two sites closer than this.
    preferred
        ``(N,)`` bool: candidates used first (inside the AOA); the others only when no
        preferred candidate is left at the spacing.
    rng
        Seed or Generator (same seed, same sites).

    Returns
    -------
    numpy.ndarray
        Up to ``n`` indices, in drawing order (fewer when the spacing leaves no room).
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    w = np.nan_to_num(np.asarray(weights, dtype=np.float64), nan=0.0).clip(min=0.0)
    pref = np.ones(len(pts), dtype=bool) if preferred is None else np.asarray(preferred, bool)
    gen = np.random.default_rng(rng)
    free = np.ones(len(pts), dtype=bool)
    chosen: list[int] = []
    while len(chosen) < n:
        pool = free & pref
        if not pool.any():
            pool = free
        if not pool.any():
            break
        idx = np.flatnonzero(pool)
        p = w[idx]
        p = p / p.sum() if p.sum() > 0 else np.full(len(idx), 1.0 / len(idx))
        pick = int(gen.choice(idx, p=p))
        chosen.append(pick)
        near = np.hypot(*(pts - pts[pick]).T) < min_spacing
        free &= ~near
        free[pick] = False
    return np.asarray(chosen, dtype=np.int64)


def design_sites(
    grid: Grid,
    codes: np.ndarray,
    labels: list[str],
    uncertainty: np.ndarray,
    budget: int,
    *,
    min_spacing: float = 0.0,
    minimum: int = 3,
    aoa: np.ndarray | None = None,
    existing: Mapping[str, int] | None = None,
    seed: int = 0,
    max_candidates: int = 20000,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Allocate a core budget across strata and place the cores.

    Parameters
    ----------
    grid
        Grid of the rasters.
    codes
        ``(y, x)`` int stratum codes, -1 outside every stratum.
    labels
        Stratum label of each code.
    uncertainty
        ``(y, x)`` sd or interval width; NaN where unmapped (never sampled).
    budget
        Total cores.
    min_spacing
        Minimum distance between sites, in metres (measured in the grid's CRS units for a
        projected grid; a geographic grid is measured in a local equal-area projection).
    minimum
        Cores per stratum before Neyman allocation (VM0033: 3).
    aoa
        ``(y, x)`` 1 inside the area of applicability, 0 outside, NaN unknown.
    existing
        Cores each stratum already has (they count towards ``minimum``).
    seed
        Same seed, same sites.
    max_candidates
        Pixels per stratum considered (a seeded random subset of larger strata).

    Returns
    -------
    sites, allocation
        Sites (``core_id, stratum, x, y, longitude, latitude, uncertainty, inside_aoa``) and
        per stratum ``area_ha, mean_uncertainty, existing_cores, allocated, placed``
        (placed < allocated when the spacing left no room).
    """
    from pyproj import Transformer

    if codes.shape != grid.shape or uncertainty.shape != grid.shape:
        raise ConfigError(
            f"stratum map {codes.shape!r} and uncertainty {uncertainty.shape!r} must both have "
            f"the grid's shape {grid.shape!r}"
        )
    area_ha = grid.pixel_areas_m2() / 1e4
    usable = np.isfinite(uncertainty) & (codes >= 0)
    sizes, sds = {}, {}
    for c, label in enumerate(labels):
        inside = usable & (codes == c)
        if inside.any():
            sizes[label] = float(area_ha[inside].sum())
            sds[label] = float(uncertainty[inside].mean())
    if not sizes:
        raise ConfigError(
            f"none of the {len(labels)} strata has a mapped pixel with an uncertainty, so no "
            "core can be placed; check that the strata overlap the mapped area"
        )
    mapped = int(usable.sum())
    if budget > mapped:  # once 1e20: an int64 overflow, "-9223372036854775804 cores", exit 0
        raise ConfigError(
            f"--budget {budget} asks for more cores than the strata's {mapped} mapped pixels "
            f"(one core per pixel at most); give --budget {mapped} or less"
        )
    allocation = neyman_allocation(sizes, sds, budget, minimum, existing)
    xs, ys = np.meshgrid(grid.xs, grid.ys)
    if grid.is_geographic:
        lon, lat = grid.centre_lonlat
        local = f"+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m"
        mx, my = Transformer.from_crs(grid.crs, local, always_xy=True).transform(xs, ys)
        metric = np.stack([np.asarray(mx), np.asarray(my)], axis=-1)
    else:
        metric = np.stack([xs, ys], axis=-1)
    to_geo = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    gen = np.random.default_rng(seed)
    rows, summary = [], []
    for c, label in enumerate(labels):
        if label not in allocation:
            continue
        rr, cc = np.nonzero(usable & (codes == c))
        if len(rr) > max_candidates:
            keep = np.sort(gen.choice(len(rr), max_candidates, replace=False))
            rr, cc = rr[keep], cc[keep]
        inside = None if aoa is None else aoa[rr, cc] == 1
        picked = sample_sites(
            metric[rr, cc], uncertainty[rr, cc], allocation[label], min_spacing,
            preferred=inside, rng=gen,
        )  # fmt: skip
        for i in picked:
            r, col = int(rr[i]), int(cc[i])
            lon, lat = to_geo.transform(grid.xs[col], grid.ys[r])
            rows.append(
                {
                    "stratum": label,
                    "x": float(grid.xs[col]),
                    "y": float(grid.ys[r]),
                    "longitude": round(float(lon), 7),
                    "latitude": round(float(lat), 7),
                    "uncertainty": float(uncertainty[r, col]),
                    "inside_aoa": None if aoa is None else bool(aoa[r, col] == 1),
                }
            )
        summary.append(
            {
                "stratum": label,
                "area_ha": sizes[label],
                "mean_uncertainty": sds[label],
                "existing_cores": int((existing or {}).get(label, 0)),
                "allocated": allocation[label],
                "placed": len(picked),
            }
        )
    columns = ["stratum", "x", "y", "longitude", "latitude", "uncertainty", "inside_aoa"]
    sites = pd.DataFrame(rows, columns=columns)
    width = max(3, len(str(len(sites))))
    sites.insert(0, "core_id", [f"C{i + 1:0{width}d}" for i in range(len(sites))])
    return sites, pd.DataFrame(summary)


def write_design(sites: pd.DataFrame, grid: Grid, out_dir: str | Path) -> dict[str, Path]:
    """Write the sites as a GeoPackage (grid CRS) and a field CSV (WGS84), atomically.

    The CSV has ``core_id, longitude, latitude, stratum`` first, then the rest.
    """
    import geopandas as gpd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = ["core_id", "longitude", "latitude", "stratum"]
    table = sites[first + [c for c in sites.columns if c not in first]]
    paths = {"csv": out / "design.csv", "gpkg": out / "design.gpkg"}
    with atomic_path(paths["csv"], record=True) as tmp:
        table.to_csv(tmp, index=False)
    frame = gpd.GeoDataFrame(
        table, geometry=gpd.points_from_xy(table["x"], table["y"]), crs=grid.crs
    )
    with atomic_path(paths["gpkg"], record=True) as tmp:
        frame.to_file(tmp, driver="GPKG", layer="design")
    return paths


def design_for_run(
    run_dir: str | Path,
    strata: str | Path,
    budget: int,
    out_dir: str | Path,
    *,
    field: str = "stratum",
    layer: str | None = None,
    min_spacing: float = 0.0,
    minimum: int = 3,
    cores: pd.DataFrame | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Path]]:
    """Design new cores for a prediction run: its uncertainty, its AOA, a stratum map.

    The uncertainty is the sd of the run's stock layer ``layer`` (default: its last
    cumulative total) when stocks exist, else of SOC in the top interval; the AOA mask is
    the run's. Strata are a polygon file, a stratum raster or a cube band
    (:func:`socmap.strata.rasterise_strata`). ``cores`` (site_id and a stratum or
    x, y, crs) are the cores already taken: they count towards ``minimum``.

    Returns
    -------
    sites, allocation, paths
        As :func:`design_sites`, and the files written (:func:`write_design`).

    Raises
    ------
    ConfigError
        A bad option, an unfinished run (or stocks), an unknown layer, strata without a
        mapped pixel, or cores that cannot be found on the map
        (:func:`socmap.strata.cores_with_strata`).
    """
    # the options first: refusing a bad number must not wait for the run and torch to load
    if int(budget) < 1:
        raise ConfigError(f"core budget {budget!r} places no core; give --budget 1 or more")
    if not (math.isfinite(min_spacing) and min_spacing >= 0):
        raise ConfigError(
            f"--min-spacing {min_spacing!r} m must be a distance >= 0 (0: no minimum)"
        )
    if int(minimum) < 0:  # once read as 0 without a word
        raise ConfigError(f"--min-cores {minimum!r} must be >= 0 (0: no minimum per stratum)")
    from socmap.cube import open_cube
    from socmap.predict import open_run
    from socmap.strata._maps import cores_with_strata, rasterise_strata

    run = open_run(run_dir)
    # not into the run's cube or bundle (once design.csv written into the cube)
    check_out_folder(out_dir, [run.config.cube, run.config.bundle], files=DESIGN_FILES)
    # an interrupted run's maps are part NaN: refuse it as such, not as strata off the map
    run.require_finished(["stocks"])
    grid = run.grid
    if run.stocks.get("status") in ("computed", "complete"):
        ds = run.open("stock.zarr")
        chosen = layer or str(run.stocks["labels"][-1])
        variable = "stock"
    else:
        ds = run.open()
        chosen = layer or run.depth_labels[0]
        variable = "soc"
    have = [str(d) for d in ds["depth"].values]
    if chosen not in have:
        raise ConfigError(
            f"layer {chosen!r} is not in the run's {variable} maps; pick one of {have!r}"
        )
    sd = np.asarray(ds[variable].sel(stat="sd", depth=chosen).values, dtype=np.float64)
    aoa = np.asarray(run.open()["aoa"].values, dtype=np.float64)
    codes, labels = rasterise_strata(grid, strata, field=field, cube=open_cube(run.config.cube))
    existing: dict[str, int] | None = None
    if cores is not None:
        located = cores_with_strata(cores, grid, codes, labels)
        key = "site_id" if "site_id" in located.columns else None
        per = located.drop_duplicates(key) if key else located
        existing = {str(k): int(v) for k, v in per["stratum"].value_counts().items()}
    sites, allocation = design_sites(
        grid, codes, labels, sd, int(budget), min_spacing=min_spacing, minimum=minimum,
        aoa=None if np.isnan(aoa).all() else aoa, existing=existing, seed=seed,
    )  # fmt: skip
    allocation.insert(1, "uncertainty", f"{variable} sd {chosen}")
    paths = write_design(sites, grid, out_dir)
    with atomic_path(Path(out_dir) / "allocation.csv", record=True) as tmp:
        allocation.to_csv(tmp, index=False)
    paths["allocation"] = Path(out_dir) / "allocation.csv"
    return sites, allocation, paths

"""Benchmark: build a covariate cube from 8 synthetic GeoTIFFs on an 8192 x 8192 grid.

Sources are tiled, zstd-compressed GeoTIFFs written strip by strip (no layer is ever whole in
memory). They mix aligned, coarser, shifted, reprojected and categorical layers so every read
path is exercised. The build runs in a child process; its wall time and peak RSS (its own
``VmHWM``) are recorded, and a Markdown table goes to ``docs/benchmarks/cube.md``.

Usage::

    python benchmarks/bench_cube.py [--size 8192] [--chunk 512] [--workers N] [--keep]

Temporary data lives under /tmp and is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import yaml
from affine import Affine
from rasterio.warp import transform_bounds
from rasterio.windows import Window

import socmap
import socmap.cube as socmap_cube
from _common import run_child
from socmap.grid import Grid

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "benchmarks" / "cube.md"
STRIP = 512  # rows generated and written at a time
CRS = "EPSG:32755"
RES = 10.0  # m, target grid resolution
ORIGIN = (700_000.0, 6_700_000.0)


@dataclass
class Layer:
    name: str
    crs: str
    res: float
    kind: str
    resampling: str
    dtype: str
    nodata: float
    shift: float = 0.0  # origin shift in source pixels (0.5 = half a pixel off the target grid)


LAYERS = [
    Layer("dem", CRS, 10.0, "continuous", "bilinear", "float32", -9999.0),
    Layer("slope", CRS, 10.0, "continuous", "bilinear", "float32", -9999.0),
    Layer("aspect_shifted", CRS, 10.0, "continuous", "bilinear", "float32", -9999.0, 0.5),
    Layer("twi_30m", CRS, 30.0, "continuous", "bilinear", "float32", -9999.0),
    Layer("ndvi_20m", CRS, 20.0, "continuous", "average", "float32", -9999.0),
    Layer("temp_mga55", "EPSG:28355", 25.0, "continuous", "cubic", "float32", -9999.0),
    Layer("rain_wgs84", "EPSG:4326", 0.0003, "continuous", "bilinear", "float32", -9999.0),
    Layer("landcover_wgs84", "EPSG:4326", 0.0003, "categorical", "mode", "int16", 0.0),
]
N_CLASSES = 12


def target_grid(size: int) -> Grid:
    return Grid(CRS, Affine(RES, 0.0, ORIGIN[0], 0.0, -RES, ORIGIN[1]), (size, size))


def source_grid(layer: Layer, target: Grid) -> Grid:
    """A grid in the layer's CRS covering the target with a 1 km margin."""
    left, bottom, right, top = target.bounds
    box = (left - 1000, bottom - 1000, right + 1000, top + 1000)
    if layer.crs != target.crs:
        box = transform_bounds(target.crs, layer.crs, *box, densify_pts=21)
    if layer.res == RES and layer.crs == target.crs:
        box = target.bounds  # same grid (or shifted by `shift` pixels below)
    g = Grid.from_bbox(box, layer.res, layer.crs)
    if layer.shift:
        t = g.transform
        g = Grid(g.crs, Affine(t.a, 0, t.c + layer.shift * t.a, 0, t.e, t.f), g.shape)
    return g


def field(layer_index: int, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth seeded field over map coordinates plus a little noise (a realistic compression)."""
    k = 2 * np.pi / (5000.0 + 1500.0 * layer_index)
    z = (
        np.sin(k * xs[np.newaxis, :] + layer_index)
        + np.cos(0.7 * k * ys[:, np.newaxis] - layer_index)
        + 0.5 * np.sin(0.3 * k * (xs[np.newaxis, :] + ys[:, np.newaxis]))
    )
    return z + rng.normal(0.0, 0.05, size=z.shape)


def write_layer(path: Path, layer: Layer, grid: Grid, index: int) -> None:
    profile = {
        "driver": "GTiff",
        "height": grid.height,
        "width": grid.width,
        "count": 1,
        "dtype": layer.dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": layer.nodata,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "zstd",
        "zstd_level": 1,
        "predictor": 3 if layer.dtype.startswith("float") else 2,
        "BIGTIFF": "IF_SAFER",
    }
    xs = grid.xs
    # A "lake" of nodata in every layer, so nodata handling is on the measured path.
    cx, cy = xs[len(xs) // 3], grid.ys[grid.height // 3]
    radius = 0.05 * (grid.bounds[2] - grid.bounds[0])
    with rasterio.open(path, "w", **profile) as dst:
        for row0 in range(0, grid.height, STRIP):
            rows = min(STRIP, grid.height - row0)
            ys = grid.ys[row0 : row0 + rows]
            rng = np.random.default_rng([index, row0])
            z = field(index, xs, ys, rng)
            if layer.kind == "categorical":
                data = (np.floor((z + 2.5) / 5.0 * N_CLASSES) % N_CLASSES + 1).astype(np.int16)
            else:
                data = (100.0 * z).astype(layer.dtype)
            lake = (xs[np.newaxis, :] - cx) ** 2 + (ys[:, np.newaxis] - cy) ** 2 < radius**2
            data[lake] = layer.nodata
            dst.write(data, 1, window=Window(0, row0, grid.width, rows))


def write_catalog(folder: Path, target: Grid, paths: dict[str, Path]) -> Path:
    entries = []
    for layer in LAYERS:
        entry: dict[str, object] = {
            "name": layer.name,
            "source": paths[layer.name].name,
            "units": "class" if layer.kind == "categorical" else "1",
            "kind": layer.kind,
            "group": "land_cover" if layer.kind == "categorical" else "other",
            "resampling": layer.resampling,
        }
        if layer.kind == "categorical":
            entry["classes"] = {i: f"class {i}" for i in range(1, N_CLASSES + 1)}
        entries.append(entry)
    doc = {
        "name": "bench_synthetic",
        "grid": {"crs": target.crs, "bbox": list(target.bounds), "resolution": RES},
        "covariates": entries,
    }
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


BUILD = """
import sys
import socmap.cube
from socmap.cube import build_cube
if sys.argv[5] == "uncapped":
    socmap.cube.GDAL_CACHE_BYTES = 1 << 62  # leave GDAL's default block cache alone
build_cube(sys.argv[1], None, sys.argv[2], chunk=int(sys.argv[3]),
           workers=None if sys.argv[4] == "auto" else int(sys.argv[4]), progress=False)
"""

IMPORT_ONLY = "import socmap.cube"


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem = f"{mem_kb / 1024**2:.1f} GiB"
    except (OSError, StopIteration):
        mem = "unknown"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def timed(label: str, fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    dt_s = time.perf_counter() - t
    print(f"{label}: {dt_s:.1f} s", flush=True)
    return dt_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="grid side in pixels")
    ap.add_argument("--chunk", type=int, default=512)
    ap.add_argument("--workers", default="auto", help="threads, or 'auto'")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data")
    ap.add_argument(
        "--no-compare-uncapped",
        dest="compare_uncapped",
        action="store_false",
        help="skip the second build with GDAL's default block cache",
    )
    ap.add_argument("--out", type=Path, default=OUT_MD)
    args = ap.parse_args()

    import zarr

    target = target_grid(args.size)
    work = Path(tempfile.mkdtemp(prefix="socmap-bench-cube-", dir="/tmp"))
    try:
        paths = {layer.name: work / f"{layer.name}.tif" for layer in LAYERS}
        src_shapes = {}

        def generate() -> None:
            for i, layer in enumerate(LAYERS):
                g = source_grid(layer, target)
                src_shapes[layer.name] = g
                write_layer(paths[layer.name], layer, g, i)

        gen_s = timed("generate sources", generate)
        catalog = write_catalog(work, target, paths)
        src_bytes = sum(p.stat().st_size for p in paths.values())

        base_wall, base_rss = run_child(IMPORT_ONLY)
        out = work / "cube.zarr"
        wall, rss = run_child(
            BUILD, str(catalog), str(out), str(args.chunk), args.workers, "capped"
        )
        print(f"build: {wall:.1f} s wall, peak RSS {rss / 2**20:.0f} MiB", flush=True)
        uncapped: tuple[float, int] | None = None
        if args.compare_uncapped:
            out2 = work / "cube_uncapped.zarr"
            uncapped = run_child(
                BUILD, str(catalog), str(out2), str(args.chunk), args.workers, "uncapped"
            )
            shutil.rmtree(out2)
            print(f"uncapped build: {uncapped[0]:.1f} s, {uncapped[1] / 2**20:.0f} MiB")

        n_bands = len(LAYERS)
        logical = n_bands * target.height * target.width * 4
        store = dir_size(out)
        attrs = json.loads((out / "covariates" / "zarr.json").read_text())["attributes"]
        nodata = dict(zip(attrs["band_names"], attrs["band_nodata_fraction"], strict=True))

        # Sanity: the aligned layer is copied exactly at random pixels.
        from socmap.cube import open_cube

        cube = open_cube(out)
        rng = np.random.default_rng(0)
        rows = rng.integers(0, target.height, 200)
        cols = rng.integers(0, target.width, 200)
        with rasterio.open(paths["dem"]) as src:
            dem = src.read(1)
        got = cube.sel(band="dem").values[rows, cols]
        want = dem[rows, cols].astype(np.float32)
        want[want == -9999] = np.nan
        np.testing.assert_array_equal(got, want)
        del dem

        workers = os.cpu_count() if args.workers == "auto" else int(args.workers)
        workers_txt = f"{min(4, workers or 1)} (auto)" if args.workers == "auto" else args.workers
        m = machine()
        lines = [
            "# Covariate cube build benchmark",
            "",
            f"Generated by `benchmarks/bench_cube.py` on {dt.date.today().isoformat()} "
            f"(socmap {socmap.__version__}, GDAL {rasterio.__gdal_version__}, "
            f"rasterio {rasterio.__version__}, zarr {zarr.__version__}, numpy {np.__version__}).",
            "",
            "## Machine",
            "",
            "| item | value |",
            "|---|---|",
            f"| CPU | {m['cpu']} |",
            f"| cores | {m['cores']} |",
            f"| RAM | {m['ram']} |",
            f"| OS | {m['os']} |",
            f"| Python | {m['python']} |",
            "",
            "## Parameters",
            "",
            f"- target grid: {target.height} x {target.width} px, {RES:g} m, {target.crs}",
            f"- chunk: {args.chunk} x {args.chunk} px, all {n_bands} bands per chunk "
            f"({-(-target.height // args.chunk) * -(-target.width // args.chunk)} tiles)",
            f"- worker threads: {workers_txt}",
            "- sources: tiled (512 x 512), zstd-compressed GeoTIFFs, generated strip by strip; "
            f"{src_bytes / 1e6:.0f} MB on disk in total:",
            "",
            "| band | source CRS | source px | source shape | resampling | path | nodata % |",
            "|---|---|---|---|---|---|---|",
        ]
        for layer in LAYERS:
            g = src_shapes[layer.name]
            if layer.crs != target.crs:
                path_kind = "reprojected"
            elif layer.res == RES and not layer.shift:
                path_kind = "aligned copy"
            elif layer.shift:
                path_kind = "same CRS, half-pixel shift"
            else:
                path_kind = "same CRS, other resolution"
            lines.append(
                f"| {layer.name} ({layer.kind}) | {layer.crs} | {layer.res:g} | "
                f"{g.height} x {g.width} | {layer.resampling} | {path_kind} | "
                f"{100 * nodata[layer.name]:.2f} |"
            )
        lines += [
            "",
            "## Results",
            "",
            "| metric | value |",
            "|---|---|",
            f"| source generation (not part of the build) | {gen_s:.1f} s |",
            f"| build wall time (child process, incl. ~{base_wall:.1f} s of imports) | "
            f"{wall:.1f} s |",
            f"| output size, float32 logical | {logical / 1e6:.0f} MB |",
            f"| throughput (logical output / wall time) | {logical / 1e6 / wall:.0f} MB/s |",
            f"| Zarr store on disk (zstd) | {store / 1e6:.0f} MB |",
            f"| peak RSS of the build process | {rss / 2**20:.0f} MiB |",
            f"| peak RSS of a process that only imports socmap.cube | {base_rss / 2**20:.0f} MiB |",
        ]
        if uncapped is not None:
            lines += [
                f"| same build with GDAL's default block cache (5% of RAM): wall | "
                f"{uncapped[0]:.1f} s |",
                f"| same build with GDAL's default block cache: peak RSS | "
                f"{uncapped[1] / 2**20:.0f} MiB |",
            ]
        lines += [
            "",
            "The builder caps GDAL's process-wide block cache at "
            f"{socmap_cube.GDAL_CACHE_BYTES // 2**20} MiB (`socmap.cube.GDAL_CACHE_BYTES`) for "
            "the duration of a build; otherwise every decompressed source block stays cached.",
            "",
            "Peak RSS is the build process's own high-water mark (`VmHWM` in /proc/self/status; "
            "`ru_maxrss` would inherit the parent's peak across vfork/exec). Wall time is that "
            "of the whole child process. The aligned `dem` band was checked against its source "
            "at 200 random pixels.",
            "",
        ]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines))
        print(f"wrote {args.out}")
        print("\n".join(lines))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

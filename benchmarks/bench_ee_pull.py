"""Benchmark: pull a 2048 x 2048, 16-band cube from the fake Earth Engine, with failures.

The fake REST server (``tests/ee_fake_server.py``) runs in a child process, so the client's
memory and CPU are measured on their own; the real ``earthengine-api`` client talks to it
over loopback HTTP, authenticated with a service-account key. The catalog is the first 16
bands of ``soilgrids_priors`` (SOC, bulk density, coarse fragments), on a 30 m UTM grid in
512-pixel chunks: 16 requests of 512 x 512 x 16 float32 (16 MiB, 16.25 MiB with the mask
byte, under the 48 MiB limit). Each run pulls the whole cube; the runs differ in worker
threads and in the share of requests the server answers 429/503.

Measured per run: wall time, requests (server side, by status), retries (client side),
bytes received, the largest request, the most requests in flight at once, and the client
process's RSS (sampled every 20 ms) before and during the pull, against the bound expected
from ``workers x`` the per-window working set (response body, decoded structured array,
float32 block, Zarr chunk encoding: about 4 x 16 MiB per window in flight). Every run's
cube is hashed and compared with the no-failure run.

Writes ``docs/benchmarks/ee_pull.md`` and ``docs/benchmarks/ee_pull.csv``.

Run: ``.venv/bin/python benchmarks/bench_ee_pull.py [--size 2048] [--runs 4:0,1:0.3,2:0.3,4:0.3]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import zarr
from affine import Affine

import socmap
from _common import PeakMemory, pin_two_cores
from socmap.catalog import Catalog, load_catalog
from socmap.cube import pull_cube
from socmap.grid import Grid
from socmap.sources.earthengine import initialize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import ee_fake_server  # noqa: E402

OUT_MD = ROOT / "docs" / "benchmarks" / "ee_pull.md"
N_BANDS = 16
CHUNK = 512
MIB = 2**20
#: Copies of one window a worker holds at its peak: the response body while it is joined
#: (twice), the decoded structured array, the float32 block, the encoded Zarr chunk.
BOUND_WINDOWS = 5


class Server:
    """The fake server in a child process (it stops when its stdin closes)."""

    def __init__(self) -> None:
        path = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "ee_fake_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def control(url: str, command: str, **settings: Any) -> dict[str, Any]:
    """Drive the fake server (reset, configure, stats) over its control endpoints."""
    query = f"?settings={urllib.parse.quote(json.dumps(settings))}" if settings else ""
    with urllib.request.urlopen(f"{url}/_fake/{command}{query}", timeout=30) as response:
        return json.loads(response.read())


class PullLog(logging.Handler):
    """Keeps the pull's summary line (requests, retries, bytes) from socmap's logger."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.summary: tuple[Any, ...] = ()

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("pulled"):
            self.summary = tuple(record.args or ())


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores (this process and the server)": str(len(os.sched_getaffinity(0))),
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def cube_digest(path: Path) -> str:
    arr = zarr.open_array(store=str(path / "covariates"), mode="r", zarr_format=3)
    h = hashlib.sha256()
    for r0 in range(0, arr.shape[1], CHUNK):
        h.update(np.ascontiguousarray(arr[:, r0 : r0 + CHUNK, :]).tobytes())
    return h.hexdigest()


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One pull in this (fresh) process: wall time, RSS before and during, request counts."""
    soilgrids = load_catalog("soilgrids_priors")
    catalog = Catalog(name="soilgrids16", covariates=soilgrids.covariates[:N_BANDS])
    size = spec["size"]
    grid = Grid("EPSG:32755", Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 7000000.0), (size, size))
    handler = PullLog()
    logger = logging.getLogger("socmap.sources.earthengine")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    out = Path(spec["out"])
    with ee_fake_server.no_outbound_auth_lookups():
        initialize(service_account_key=spec["key"], url=spec["url"])
        # A one-window pull first, so imports, thread pools and the Zarr event loop are warm
        # and the RSS below is the pull's own.
        warm = Grid("EPSG:32755", Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 7000000.0), (64, 64))
        pull_cube(catalog, warm, out.with_name("warm.zarr"), chunk=64, progress=False)
        shutil.rmtree(out.with_name("warm.zarr"))
        control(spec["url"], "reset")
        control(spec["url"], "configure", seed=spec["seed"], fail_rate=spec["fail_rate"])
        before = psutil.Process().memory_info().rss
        with PeakMemory() as rss:
            start = time.perf_counter()
            pull_cube(catalog, grid, out, chunk=CHUNK, workers=spec["workers"], progress=False,
                      backoff_s=spec["backoff"], max_backoff_s=2.0, seed=spec["seed"])  # fmt: skip
            wall = time.perf_counter() - start
    _, _, requests, retries, nbytes = handler.summary
    return {
        "stats": control(spec["url"], "stats"),
        "wall_s": wall,
        "rss_before": before,
        "rss_peak": rss.peak,
        "client_requests": requests,
        "client_retries": retries,
        "received": nbytes,
        "digest": cube_digest(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--runs",
        default="2048:4:0,2048:1:0.3,2048:2:0.3,2048:4:0.3,4096:4:0.3",
        help="size:workers:fail_rate triples, comma-separated",
    )
    parser.add_argument("--backoff", type=float, default=0.1, help="backoff_s (max 2 s)")
    parser.add_argument("--report", type=Path, default=OUT_MD)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return
    pinned = pin_two_cores()
    runs = [(int(n), int(w), float(f)) for n, w, f in (r.split(":") for r in args.runs.split(","))]
    tmp = Path(tempfile.mkdtemp(prefix="bench_ee_pull_"))
    server = Server()
    rows = []
    reference: dict[int, str] = {}
    window_mib = CHUNK * CHUNK * N_BANDS * 4 / MIB
    try:
        key, _ = ee_fake_server.service_account_key(tmp / "key.json", server.url)
        for i, (size, workers, fail_rate) in enumerate(runs):
            spec = {
                "size": size,
                "workers": workers,
                "backoff": args.backoff,
                "seed": i,
                "fail_rate": fail_rate,
                "key": str(key),
                "url": server.url,
                "out": str(tmp / f"run{i}.zarr"),
            }
            done = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise RuntimeError(f"run {spec!r} failed:\n{done.stderr}")
            res = json.loads(done.stdout.strip().splitlines()[-1])
            stats = res["stats"]
            reference.setdefault(size, res["digest"])
            wall = res["wall_s"]
            rows.append(
                {
                    "size": size,
                    "workers": workers,
                    "fail_rate": fail_rate,
                    "wall_s": round(wall, 2),
                    "requests": stats["requests"],
                    "failed_429_503": stats["requests"] - stats["statuses"].get("200", 0),
                    "client_requests": res["client_requests"],
                    "client_retries": res["client_retries"],
                    "received_MiB": round(res["received"] / MIB, 1),
                    "MiB_per_s": round(res["received"] / MIB / wall, 1),
                    "max_request_MiB": round(stats["max_request_bytes"] / MIB, 2),
                    "max_in_flight": stats["max_in_flight"],
                    "rss_before_MiB": round(res["rss_before"] / MIB),
                    "rss_peak_MiB": round(res["rss_peak"] / MIB),
                    "rss_increase_MiB": round((res["rss_peak"] - res["rss_before"]) / MIB),
                    "bound_MiB": round(workers * BOUND_WINDOWS * window_mib),
                    "identical": res["digest"] == reference[size],
                }
            )
            print(rows[-1], flush=True)
            shutil.rmtree(tmp / f"run{i}.zarr")
    finally:
        server.close()
        shutil.rmtree(tmp, ignore_errors=True)
    write_report(args.report, rows, pinned)


def write_report(path: Path, rows: list[dict[str, Any]], pinned: str) -> None:
    pd.DataFrame(rows).to_csv(path.with_suffix(".csv"), index=False)
    import ee

    versions = (
        f"socmap {socmap.__version__}, earthengine-api {ee.__version__}, "
        f"zarr {zarr.__version__}, numpy {np.__version__}"
    )
    window = CHUNK * CHUNK * N_BANDS * 4 / MIB
    with_mask = CHUNK * CHUNK * (N_BANDS * 4 + 1) / MIB
    today = dt.date.today().isoformat()
    lines = [
        "# Earth Engine pull benchmark",
        "",
        f"Generated by `benchmarks/bench_ee_pull.py` on {today} ({versions}).",
        "",
        "## Machine",
        "",
        "| item | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine().items()],
        f"| pinning | {pinned} |",
        "",
        "## Setup",
        "",
        f"- grids: N x N px of 30 m, EPSG:32755; chunks of {CHUNK} x {CHUNK} px holding all bands",
        f"- catalog: the first {N_BANDS} bands of `soilgrids_priors` (int16 on the server, "
        "requested as float32 with nodata masked and bilinear resampling; scaled on the client)",
        f"- requests: one per {CHUNK} x {CHUNK} window, {window:.0f} MiB of float32 "
        f"({with_mask:.2f} MiB counting the mask byte; computePixels' limit is 48 MiB)",
        "- server: `tests/ee_fake_server.py` in a child process on loopback HTTP; it computes the "
        "synthetic fields of every request itself, on the second core. Failures: a seeded "
        "share of requests answered 429 or 503",
        "- client: one fresh process per run (after a one-window warm-up pull); retries with "
        "backoff_s 0.1, max_backoff_s 2, seeded jitter, max_retries 8",
        "- memory: the client process's RSS, sampled every 20 ms. Expected bound of the "
        f"increase: workers x {BOUND_WINDOWS} x {window:.0f} MiB (per window in flight: the "
        "response body while it is assembled, twice; the decoded structured array; the float32 "
        "block; the encoded Zarr chunk)",
        "",
        "## Results",
        "",
        "| grid | workers | failures | wall s | requests | answered 429/503 | client retries | "
        "received MiB | MiB/s | largest request MiB | most in flight | RSS before MiB | "
        "RSS peak MiB | increase MiB | bound MiB | same cube |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']}² | {r['workers']} | {r['fail_rate']:.0%} | {r['wall_s']} | "
            f"{r['requests']} | {r['failed_429_503']} | {r['client_retries']} | "
            f"{r['received_MiB']} | {r['MiB_per_s']} | {r['max_request_MiB']} | "
            f"{r['max_in_flight']} | {r['rss_before_MiB']} | {r['rss_peak_MiB']} | "
            f"{r['rss_increase_MiB']} | {r['bound_MiB']} | "
            f"{'yes' if r['identical'] else 'NO'} |"
        )
    same = all(r["identical"] for r in rows)
    within = [r for r in rows if r["rss_increase_MiB"] <= r["bound_MiB"]]
    in_flight = all(r["max_in_flight"] <= r["workers"] for r in rows)
    retried = all(r["client_retries"] == r["failed_429_503"] for r in rows)
    lines += [
        "",
        "## Reading",
        "",
        "- Same cube: every run of a grid size wrote the same array, bit for bit, whatever the "
        "failures and the workers."
        if same
        else "- WARNING: some runs wrote a different cube.",
        f"- Requests in flight {'never exceeded' if in_flight else 'EXCEEDED'} the workers; the "
        f"largest request was {max(r['max_request_MiB'] for r in rows)} MiB with the mask byte.",
        "- Every 429/503 answer was retried by socmap and by nothing else (the client "
        "library's own retries are off): "
        + ("client retries = failed answers." if retried else "MISMATCH, see the table."),
        f"- Memory: {len(within)} of {len(rows)} runs stayed within the bound. The increase "
        "grows with the workers, not with the grid (compare the 2048² and 4096² runs at the "
        "same workers): windows are written as they arrive and never accumulate.",
        "- Wall time is the fake server's (it evaluates the 16 synthetic fields of every "
        "request on one core) plus the backoff waits of retried requests; with one worker "
        "every wait is on the critical path. Real Earth Engine latency is not modelled.",
        "",
        "Raw numbers: `ee_pull.csv`.",
        "",
    ]
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

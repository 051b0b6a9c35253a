"""Serve a run's map at full resolution: tiles and pixel values over HTTP on loopback.

The self-contained map page (:func:`socmap.report.map.build_map`) embeds every layer as
one image, strided to at most 600 pixels a side, which is what a large map cannot afford.
``socmap view RUN --serve`` starts :func:`serve` instead: the same page, whose layers are
256-pixel tiles cut from the run's Zarr stores on request, and whose click popup asks the
server for the pixel's values. The page keeps the run's own grid in pixel space (Leaflet's
``CRS.Simple``, one map unit per grid pixel): the tile ``(z, x, y)`` at zoom ``z <= 0``
shows rows ``y * 256 * 2**-z`` onwards, every ``2**-z``-th pixel; Leaflet enlarges the
zoom-0 tiles for closer views. Nothing is reprojected or resampled, and nothing is written.

Only loopback addresses are served: the run's data stays on this machine.

Usage (``tests/test_report.py`` runs it on a real run)::

    server = serve("runs/edgeroi")          # http://127.0.0.1:<free port>/
    urllib.request.urlopen(server.url + "value?row=10&col=20").read()
    server.stop()
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from socmap.errors import ConfigError
from socmap.report.map import (
    LayerSource,
    _overlays,
    _page,
    class_colour,
    class_legend,
    colour,
    continuous_legend,
    layer_sources,
    png_bytes,
)

__all__ = ["TILE", "TileServer", "TileSource", "serve"]

#: Tile side in pixels.
TILE = 256
#: Loopback hosts :func:`serve` accepts.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class TileSource:
    """A run's layers cut into tiles, their legends and the values of any pixel.

    Parameters
    ----------
    run_dir
        A finished ``socmap predict`` run (stocks and strata are added when present).
    sample_side
        Side, in pixels, of the strided sample the legends' 2-98 % ranges come from.
    """

    run_dir: str | Path
    sample_side: int = 600
    layers: list[dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        from socmap.predict import open_run

        self.run = open_run(self.run_dir)
        self.run.require_finished(["stocks", "strata"])  # as `socmap view` without --serve
        step = max(1, math.ceil(max(self.run.grid.shape) / self.sample_side))
        every = (slice(None, None, step), slice(None, None, step))
        self.sources: dict[str, LayerSource] = {}
        self.layers = []
        for source in layer_sources(self.run):
            sample = source.read(*every)
            if source.classes is not None:
                legend = class_legend(source.label, source.classes)
            elif source.optional and not np.isfinite(sample).any():
                continue
            else:
                legend = continuous_legend(source.label, source.units, sample, source.cmap)
            self.sources[source.key] = source
            self.layers.append({**legend, "id": source.key})
        self._legend = {layer["id"]: layer for layer in self.layers}
        self._soc = self.run.open()["soc"]
        self._strata = self.sources.get("strata")

    def page(self, title: str | None = None) -> str:
        """Return the map page, which draws tiles from and asks values of this server."""
        data = {
            **_overlays(self.run, 1),
            "layers": self.layers,
            "values": {},
            "strata_codes": None,
            "tiles": {"url": "tiles/{id}/{z}/{x}/{y}.png", "value": "value"},
        }
        return _page(title or f"socmap map: {self.run.path.name}", data)

    def tile(self, key: str, z: int, x: int, y: int) -> bytes:
        """PNG of tile ``(z, x, y)`` of layer ``key`` (transparent outside the grid).

        Raises
        ------
        ConfigError
            An unknown layer, or ``z > 0`` (Leaflet enlarges zoom-0 tiles itself).
        """
        source = self.sources.get(key)
        if source is None or z > 0:
            raise ConfigError(
                f"no tile {key!r} at zoom {z!r}; layers are {sorted(self.sources)!r}, zooms <= 0"
            )
        step = 2 ** (-z)
        span = TILE * step
        height, width = self.run.grid.shape
        plane = np.full((TILE, TILE), np.nan, dtype=np.float32)
        r0, c0 = y * span, x * span
        if 0 <= r0 < height and 0 <= c0 < width:
            window = source.read(slice(r0, r0 + span, step), slice(c0, c0 + span, step))
            plane[: window.shape[0], : window.shape[1]] = window
        if source.classes is not None:
            codes = np.where(np.isfinite(plane), plane, -1).astype(np.int64)
            return png_bytes(class_colour(codes, len(source.classes)))
        legend = self._legend[key]
        return png_bytes(colour(plane, legend["low"], legend["high"], source.cmap))

    def value(self, row: int, col: int) -> dict[str, Any]:
        """SOC mean, sd, q05 and q95 at every depth of a grid pixel (None: no value).

        Raises
        ------
        ConfigError
            The pixel lies outside the grid.
        """
        height, width = self.run.grid.shape
        if not (0 <= row < height and 0 <= col < width):
            raise ConfigError(
                f"pixel ({row!r}, {col!r}) is outside the {height} x {width} grid; "
                "rows and columns start at 0"
            )
        stats = [str(s) for s in self._soc["stat"].values]
        cell = np.asarray(self._soc.isel(y=row, x=col).values, dtype=np.float64)
        out: dict[str, Any] = {}
        for d, depth in enumerate(str(v) for v in self._soc["depth"].values):
            out[depth] = {
                stat: (float(cell[stats.index(stat), d]) if np.isfinite(cell[stats.index(stat), d])
                       else None)
                for stat in ("mean", "sd", "q05", "q95")
            }  # fmt: skip
        out["stratum"] = None
        if self._strata is not None and self._strata.classes is not None:
            code = int(self._strata.read(slice(row, row + 1), slice(col, col + 1))[0, 0])
            out["stratum"] = self._strata.classes[code] if code >= 0 else "none"
        return out


class _Handler(BaseHTTPRequestHandler):
    """Routes: ``/`` the page, ``/tiles/ID/Z/X/Y.png``, ``/value?row=R&col=C``."""

    source: TileSource

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            if not parts:
                self._send(200, "text/html; charset=utf-8", self.source.page().encode())
            elif parts[0] == "tiles" and len(parts) == 5 and parts[4].endswith(".png"):
                z, x, y = int(parts[2]), int(parts[3]), int(parts[4][: -len(".png")])
                self._send(200, "image/png", self.source.tile(parts[1], z, x, y))
            elif parts == ["favicon.ico"]:  # browsers ask; no icon is not an error
                self._send(204, "image/x-icon", b"")
            elif parts == ["value"]:
                query = parse_qs(url.query)
                row, col = int(query["row"][0]), int(query["col"][0])
                body = json.dumps(self.source.value(row, col)).encode()
                self._send(200, "application/json", body)
            else:
                self._send(404, "text/plain", f"no such page: {url.path}".encode())
        except (ConfigError, ValueError, KeyError) as exc:
            self._send(400, "text/plain", str(exc).encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        cache = "no-store" if kind.startswith("text/html") else "max-age=3600"
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: a map asks for dozens of tiles a second."""


@dataclass
class TileServer:
    """A running :func:`serve`: its address and how to stop it."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:8765/``."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def serve(run_dir: str | Path, port: int = 0, host: str = "127.0.0.1") -> TileServer:
    """Serve a run's full-resolution map page in a background thread.

    Parameters
    ----------
    run_dir
        A finished prediction run.
    port
        TCP port; 0 picks a free one.
    host
        A loopback address (the run's data is not offered to the network).

    Returns
    -------
    TileServer
        Its ``url`` to open; ``stop()`` ends it.

    Raises
    ------
    ConfigError
        ``host`` is not a loopback address, or the port is taken.
    """
    if host not in LOOPBACK:
        raise ConfigError(f"host {host!r} is not a loopback address; use one of {LOOPBACK!r}")
    source = TileSource(run_dir)
    handler = type("Handler", (_Handler,), {"source": source})
    try:
        httpd = ThreadingHTTPServer((host, int(port)), handler)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve on {host}:{port} ({exc.strerror}); pass another --port"
        ) from None
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="socmap-tiles", daemon=True)
    thread.start()
    return TileServer(httpd, thread)

"""An interactive, offline map page of a run: every layer, the cores, design sites, strata.

``report/map.html`` is one self-contained file (Leaflet inlined from ``report/vendor``, the
layers as PNG data URIs): pan and zoom; a layer switcher for every depth x statistic of SOC
(mean, sd, q05, q95), the stocks, the dissimilarity index and the area of applicability, each
with a legend in its units; the cores of the stratum table (with their stocks), the
design's new core sites and the stratum polygons as vector layers with popups; a click on a
pixel shows the mean, sd and 90 % interval of SOC at every depth.

The page draws the run's own grid in pixel space (Leaflet's ``CRS.Simple``, one map unit per
displayed pixel), so it needs no tiles and no reprojection; vector layers are converted to
grid pixels. Grids larger than ``max_side`` pixels are shown (and clicked) at a coarser
step, stated on the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib import colormaps

from socmap._io import atomic_path, refuse_input_as_output
from socmap.errors import ConfigError, OutputExists

__all__ = ["LayerSource", "build_map", "inline_map", "layer_sources"]

VENDOR = Path(__file__).parent / "vendor" / "leaflet"
#: Statistics of SOC offered as layers (q50 is close to the mean and left out).
MAP_STATS = ("mean", "sd", "q05", "q95")
_CMAPS = {"mean": "YlOrBr", "sd": "magma", "q05": "YlOrBr", "q95": "YlOrBr"}


#: What every map page holds (its data block): a file without it is not socmap's to replace.
PAGE_MARK = b'<script id="socmap-data"'


def build_map(
    run_dir: str | Path,
    out: str | Path | None = None,
    max_side: int = 600,
    title: str | None = None,
) -> Path:
    """Write the map page of a prediction run.

    Parameters
    ----------
    run_dir
        A finished ``socmap predict`` run (stocks, strata and design are added when present).
    out
        Output file; default ``RUN/report/map.html``.
    max_side
        Largest side shown, in pixels; larger grids are strided.
    title
        Page title (default: the run folder's name).

    Returns
    -------
    pathlib.Path
        The page.
    """
    from socmap.predict import open_run

    run = open_run(run_dir)
    # an interrupted run's maps are part NaN (once: a page of half a map, exit 0)
    run.require_finished(["stocks", "strata"])
    path = Path(out) if out is not None else run.path / "report" / "map.html"
    if path.is_dir():  # before the work, not at the final rename
        raise OutputExists(
            f"{str(path)!r} is a folder; socmap writes a file there and will not replace a "
            "folder with it (nothing was changed); give another path for the file, e.g. "
            f"{str(path / 'map.html')!r}"
        )
    if path.suffix.lower() not in (".html", ".htm"):  # once: run.json replaced by the page
        raise ConfigError(
            f"--out {str(path)!r} must end in .html (the map is one HTML page), e.g. map.html"
        )
    if path.is_file() and PAGE_MARK not in path.read_bytes():  # once replaced at exit 0
        raise OutputExists(
            f"--out {str(path)!r} already exists and is not a socmap map page, so socmap will "
            "not replace it (nothing was changed); give another path, e.g. "
            f"{str(path.with_name(path.stem + '_map.html'))!r}"
        )
    # nor inside the run's stores, its cube or its bundle (once a page inside the cube)
    stores = [p for p in run.path.iterdir() if p.suffix == ".zarr"]
    refuse_input_as_output(path, [*stores, run.config.cube, run.config.bundle])
    step = max(1, int(np.ceil(max(run.grid.shape) / max_side)))
    every = (slice(None, None, step), slice(None, None, step))
    layers: list[dict[str, Any]] = []
    values: dict[str, dict[str, str]] = {}
    strata_codes: np.ndarray | None = None
    for source in layer_sources(run):
        plane = source.read(*every)
        if source.depth is not None:
            values.setdefault(source.depth, {})[str(source.stat)] = _b64(plane)
        if source.classes is not None:
            strata_codes = plane
            layers.append(_class_layer(source.label, plane, source.classes))
        elif not source.optional or np.isfinite(plane).any():
            layers.append(_layer(source.label, source.units, plane, source.cmap))
    data = {
        **_overlays(run, step),
        "layers": layers,
        "values": values,
        "strata_codes": None if strata_codes is None else _b64(strata_codes),
    }
    with atomic_path(path, record=True) as tmp:
        tmp.write_text(_page(title or f"socmap map: {run.path.name}", data), encoding="utf-8")
    return path


@dataclass(frozen=True)
class LayerSource:
    """One raster layer of the map page and how to read a window of it.

    Attributes
    ----------
    key
        Short id (used in tile URLs).
    label, units, cmap
        Switcher label, legend units and colour map.
    read
        ``read(rows, cols)``: the 2-D values of a window (slices, steps allowed).
    depth, stat
        For SOC layers, the depth label and statistic (the click popup's values).
    classes
        Class labels of a categorical layer (codes ``0..n-1``, ``-1`` outside), else None.
    optional
        Left out of the page when it holds no value (DI and AOA without an AOA).
    """

    key: str
    label: str
    units: str
    cmap: str
    read: Callable[[slice, slice], np.ndarray]
    depth: str | None = None
    stat: str | None = None
    classes: list[str] | None = None
    optional: bool = False


def layer_sources(run: Any) -> list[LayerSource]:
    """Every raster layer of a run's map, in switcher order (nothing is read yet)."""
    soc = run.open()
    out: list[LayerSource] = []

    def reader(array: Any) -> Callable[[slice, slice], np.ndarray]:
        return lambda rows, cols: np.asarray(array[rows, cols], dtype=np.float32)

    for i, depth in enumerate(str(d) for d in run.depth_labels):
        for stat in MAP_STATS:
            array = soc["soc"].sel(stat=stat, depth=depth).data
            out.append(LayerSource(f"soc-{stat}-{i}", f"SOC {stat} {depth}", "SOC (g/kg)",
                                   _CMAPS[stat], reader(array), depth, stat))  # fmt: skip
    if run.stocks.get("status") in ("computed", "complete"):
        stock = run.open("stock.zarr")["stock"]
        for i, label in enumerate(str(v) for v in run.stocks["labels"]):
            array = stock.sel(stat="mean", depth=label).data
            out.append(LayerSource(f"stock-{i}", f"stock mean {label}", "stock (t C/ha)",
                                   "viridis", reader(array)))  # fmt: skip
    for name, units, cmap in (("di", "DI (unitless)", "cividis"), ("aoa", "AOA (1 in)", "RdYlGn")):
        out.append(LayerSource(name, name.upper(), units, cmap, reader(soc[name].data),
                               optional=True))  # fmt: skip
    labels = _strata_labels(run)
    path = run.path / "strata_codes.zarr"
    if labels and path.exists():
        import zarr

        codes = zarr.open_array(store=str(path), mode="r")
        out.append(LayerSource("strata", "strata", "stratum", "tab20", reader(codes),
                               classes=labels))  # fmt: skip
    return out


def _strata_labels(run: Any) -> list[str]:
    """Stratum names of a run's stratum codes (empty before ``socmap strata``)."""
    return [str(v) for v in ((run.strata or {}).get("options") or {}).get("strata_labels", [])]


def _overlays(run: Any, step: int) -> dict[str, Any]:
    """Return what the page shows besides the rasters: shape, depths, cores, sites, polygons."""
    labels = _strata_labels(run)
    return {
        "shape": [int(np.ceil(run.grid.height / step)), int(np.ceil(run.grid.width / step))],
        "step": step,
        "depths": [str(d) for d in run.depth_labels],
        "sites": _design_sites(run, step),
        **_cores(run, step),
        "strata": _strata_polygons(run, step),
        "strata_labels": labels,
    }


def inline_map(page: str | Path, height: int = 520) -> Any:
    """Show the map page in a notebook: an ``<iframe srcdoc>``, self-contained and offline.

    Parameters
    ----------
    page
        A page written by :func:`build_map`.
    height
        Frame height in pixels.

    Returns
    -------
    IPython.display.HTML
        Display it (the last expression of a cell) to show the map inline.
    """
    from IPython.display import HTML

    text = Path(page).read_text(encoding="utf-8")
    # In a div: IPython suggests IFrame for a bare <iframe>, but IFrame needs a URL to serve.
    return HTML(
        f'<div><iframe srcdoc="{html.escape(text, quote=True)}" '
        f'style="width:100%;height:{int(height)}px;border:1px solid #ddd"></iframe></div>'
    )


def _b64(plane: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(plane, dtype="<f4").tobytes()).decode("ascii")


def _layer(label: str, units: str, plane: np.ndarray, cmap: str) -> dict[str, Any]:
    """Colour ``plane`` into a PNG (NaN transparent) and give its legend range."""
    legend = continuous_legend(label, units, plane, cmap)
    png = png_bytes(colour(plane, legend["low"], legend["high"], cmap))
    return {**legend, "png": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}


def continuous_legend(label: str, units: str, plane: np.ndarray, cmap: str) -> dict[str, Any]:
    """Legend of a continuous layer: its 2-98 % range in ``plane`` and the colour gradient."""
    finite = plane[np.isfinite(plane)]
    lo, hi = (float(v) for v in np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    stops = [colormaps[cmap](t) for t in np.linspace(0, 1, 6)]
    gradient = ", ".join(f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f})" for r, g, b, _ in stops)
    return {"label": label, "units": units, "low": lo, "high": hi,
            "gradient": f"linear-gradient(to right, {gradient})"}  # fmt: skip


def colour(plane: np.ndarray, low: float, high: float, cmap: str) -> np.ndarray:
    """RGBA ``uint8`` of ``plane`` scaled from ``low`` to ``high``; NaN is transparent."""
    scaled = np.clip((plane - low) / (high - low), 0, 1)
    rgba = (colormaps[cmap](np.nan_to_num(scaled)) * 255).astype(np.uint8)
    rgba[~np.isfinite(plane), 3] = 0
    return rgba


def png_bytes(rgba: np.ndarray) -> bytes:
    """Encode an RGBA ``uint8`` image as PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def _class_layer(label: str, codes: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Colour a categorical plane (one colour per class, none outside); give its swatches."""
    png = png_bytes(class_colour(codes, len(classes)))
    return {**class_legend(label, classes),
            "png": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}  # fmt: skip


def _class_colours(n: int) -> list[tuple[float, ...]]:
    palette = colormaps["tab20"]
    return [tuple(palette(i % 20)) for i in range(n)]


def class_colour(codes: np.ndarray, n: int) -> np.ndarray:
    """RGBA ``uint8`` of class codes ``0..n-1`` (others transparent)."""
    rgba = np.zeros((*codes.shape, 4), dtype=np.uint8)
    for i, rgb in enumerate(_class_colours(n)):
        rgba[codes == i] = [int(c * 255) for c in rgb[:3]] + [200]
    return rgba


def class_legend(label: str, classes: list[str]) -> dict[str, Any]:
    """Legend of a categorical layer: one swatch per class."""
    swatches = [
        {"name": name, "colour": f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f})"}
        for name, (r, g, b, _) in zip(classes, _class_colours(len(classes)), strict=True)
    ]
    return {"label": label, "units": "stratum", "classes": swatches}


def _design_sites(run: Any, step: int) -> list[dict[str, Any]]:
    """Return the design's new core sites in displayed-pixel coordinates."""
    from socmap.report._inputs import read_checked_table

    path = run.path / "design" / "design.csv"
    if not path.is_file():
        return []
    sites = read_checked_table(
        path, ["core_id", "stratum", "x", "y"], "design sites",
        f"rerun `socmap design {run.path} ... -o {path.parent}`, or move that folder away",
        empty_ok=True,
    )  # fmt: skip
    row, col = run.grid.rowcol(sites["x"].to_numpy(float), sites["y"].to_numpy(float))
    return [
        {"id": str(cid), "stratum": str(s), "row": float(r) / step, "col": float(c) / step}
        for cid, s, r, c in zip(sites["core_id"], sites["stratum"], row, col, strict=True)
    ]


def _cores(run: Any, step: int) -> dict[str, Any]:
    """Return the cores of the stratum table (``strata/cores.csv``) with their stocks.

    Returns ``{"cores": [...], "cores_unplaced": n}``: a core without coordinates cannot be
    drawn, so it is counted (and the layer's name says so) instead of vanishing.
    """
    import pandas as pd

    from socmap.report._inputs import read_checked_table

    path = run.path / "strata" / "cores.csv"
    if not path.is_file():
        return {"cores": [], "cores_unplaced": 0}
    options = (getattr(run, "strata", None) or {}).get("options") or {}
    source = options.get("strata_source", "STRATA")
    cores = read_checked_table(
        path, ["site_id", "stratum", "x", "y"], "core table",
        f"rerun `socmap strata {run.path} --strata {source} --cores ...`", empty_ok=True,
    )  # fmt: skip
    placed = cores[["x", "y"]].notna().all(axis=1)
    unplaced = int((~placed).sum())
    cores = cores.loc[placed]
    row, col = run.grid.rowcol(cores["x"].to_numpy(float), cores["y"].to_numpy(float))
    layers = [c for c in cores.columns if c.startswith("stock_")]
    out = []
    for (_, core), r, c in zip(cores.iterrows(), row, col, strict=True):
        stocks = {k[len("stock_") :]: None if pd.isna(core[k]) else round(float(core[k]), 2)
                  for k in layers}  # fmt: skip
        out.append({"id": str(core["site_id"]), "stratum": str(core["stratum"]),
                    "row": float(r) / step, "col": float(c) / step, "stocks": stocks})  # fmt: skip
    return {"cores": out, "cores_unplaced": unplaced}


def _strata_polygons(run: Any, step: int) -> list[dict[str, Any]]:
    """Stratum polygons (a vector strata source) as rings of displayed-pixel coordinates."""
    options = (run.strata or {}).get("options") or {}
    source, field = options.get("strata_source"), options.get("strata_field", "stratum")
    if not source or not Path(str(source)).is_file():
        return []  # a stratum band of the cube, or a source moved away: no polygons to draw
    import geopandas as gpd

    frame = gpd.read_file(source)
    if frame.crs is None or field not in frame.columns:
        return []
    frame = frame.to_crs(run.grid.crs)
    out = []
    for label, geom in zip(frame[field], frame.geometry, strict=True):
        if geom is None or geom.is_empty:
            continue
        polygons = getattr(geom, "geoms", [geom])
        rings = []
        for poly in polygons:
            x, y = np.asarray(poly.exterior.coords).T[:2]
            row, col = run.grid.rowcol(x, y)
            rings.append(
                [[float(-r / step), float(c / step)] for r, c in zip(row, col, strict=True)]
            )
        out.append({"stratum": str(label), "rings": rings})
    return out


def _page(heading: str, data: dict[str, Any]) -> str:
    css = (VENDOR / "leaflet.css").read_text(encoding="utf-8")
    js = (VENDOR / "leaflet.js").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(heading)
    note = (
        f"Shown every {data['step']} pixels of the grid. " if data["step"] > 1 else ""
    ) + "Click a pixel for SOC at every depth (mean, sd, 90 % interval)."
    if data.get("tiles"):
        note = "Full resolution, served as tiles from the run. " + note
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{css}</style>
<style>
html,body{{margin:0;height:100%;font-family:system-ui,sans-serif}}
#map{{position:absolute;top:2.4rem;bottom:0;left:0;right:0;background:#f4f4f4}}
header{{height:2.4rem;display:flex;align-items:center;gap:1rem;padding:0 .8rem;font-size:.9rem}}
.socmap-layer,.socmap-layer img{{image-rendering:pixelated}}
.legend{{background:#fff;padding:.4rem .6rem;border-radius:4px;font-size:.8rem;min-width:12rem}}
.legend .bar{{height:.7rem;margin:.2rem 0}}
.legend .ends{{display:flex;justify-content:space-between}}
.leaflet-popup-content table{{border-collapse:collapse;font-size:.8rem}}
.leaflet-popup-content td,.leaflet-popup-content th{{padding:.1rem .4rem;text-align:right}}
</style></head>
<body><header><strong>{title}</strong><span>{html.escape(note)}</span></header>
<div id="map"></div>
<script>{js}</script>
<script id="socmap-data" type="application/json">{payload}</script>
<script>
(function () {{
  var data = JSON.parse(document.getElementById('socmap-data').textContent);
  var h = data.shape[0], w = data.shape[1];
  var bounds = [[-h, 0], [0, w]];
  var map = L.map('map', {{crs: L.CRS.Simple, minZoom: -5, maxZoom: 6, zoomSnap: 0.25,
    attributionControl: false}});
  map.fitBounds(bounds);
  var base = {{}}, first = null, tiles = data.tiles || null;
  data.layers.forEach(function (layer) {{
    // served runs draw full-resolution tiles (z <= 0 from the server, Leaflet enlarges them)
    var overlay = tiles
      ? L.tileLayer(tiles.url.replace('{{id}}', layer.id), {{tileSize: 256, bounds: bounds,
          noWrap: true, minZoom: -20, maxZoom: 6, maxNativeZoom: 0, className: 'socmap-layer'}})
      : L.imageOverlay(layer.png, bounds, {{className: 'socmap-layer'}});
    overlay.socmap = layer;
    base[layer.label] = overlay;
    if (first === null) {{ first = overlay; }}
  }});
  var overlays = {{}};
  if (data.sites.length) {{
    var sites = L.layerGroup(data.sites.map(function (s) {{
      return L.circleMarker([-s.row, s.col], {{radius: 5, color: '#1565c0', weight: 2}})
        .bindPopup('design site ' + s.id + '<br>stratum ' + s.stratum);
    }}));
    overlays['design sites (' + data.sites.length + ')'] = sites;
    sites.addTo(map);
  }}
  if (data.cores.length) {{
    var cores = L.layerGroup(data.cores.map(function (c) {{
      var lines = Object.keys(c.stocks).map(function (k) {{
        return k + ': ' + (c.stocks[k] === null ? 'no value' : c.stocks[k] + ' t C/ha');
      }});
      return L.circleMarker([-c.row, c.col], {{radius: 4, color: '#e65100', weight: 2,
        fillOpacity: 0.8}})
        .bindPopup('core ' + c.id + '<br>stratum ' + c.stratum + '<br>' + lines.join('<br>'));
    }}));
    var unplaced = data.cores_unplaced ? '; ' + data.cores_unplaced + ' without x/y not drawn' : '';
    overlays['cores (' + data.cores.length + unplaced + ')'] = cores;
    cores.addTo(map);
  }}
  if (data.strata.length) {{
    var strata = L.layerGroup(data.strata.map(function (s) {{
      return L.polygon(s.rings, {{color: '#333', weight: 1, fill: false}})
        .bindPopup('stratum ' + s.stratum);
    }}));
    overlays['strata (' + data.strata.length + ')'] = strata;
    strata.addTo(map);
  }}
  var legend = L.control({{position: 'bottomright'}});
  legend.onAdd = function () {{ this.div = L.DomUtil.create('div', 'legend'); return this.div; }};
  legend.addTo(map);
  function fmt(v) {{
    return isFinite(v) ? v.toLocaleString('en', {{maximumSignificantDigits: 4}}) : '–';
  }}
  function show(layer) {{
    var m = layer.socmap;
    document.body.setAttribute('data-layer', m.label);
    if (m.classes) {{
      legend.div.innerHTML = '<div>' + m.label + '</div>' + m.classes.map(function (c) {{
        return '<div><span style="display:inline-block;width:.8rem;height:.8rem;background:' +
          c.colour + '"></span> ' + c.name + '</div>';
      }}).join('');
      return;
    }}
    legend.div.innerHTML = '<div>' + m.label + ' – ' + m.units + '</div>' +
      '<div class="bar" style="background:' + m.gradient + '"></div>' +
      '<div class="ends"><span>' + fmt(m.low) + '</span><span>' + fmt(m.high) + '</span></div>';
  }}
  map.on('baselayerchange', function (e) {{ show(e.layer); }});
  if (first !== null) {{ first.addTo(map); show(first); }}
  var switcher = L.control.layers(base, overlays, {{collapsed: false}}).addTo(map);
  var planes = {{}};
  (tiles ? [] : data.depths).forEach(function (d) {{
    planes[d] = {{}};
    Object.keys(data.values[d]).forEach(function (stat) {{
      var raw = atob(data.values[d][stat]), bytes = new Uint8Array(raw.length);
      for (var k = 0; k < raw.length; k++) {{ bytes[k] = raw.charCodeAt(k); }}
      planes[d][stat] = new Float32Array(bytes.buffer);
    }});
  }});
  var strataCodes = null;
  if (data.strata_codes) {{
    var rawCodes = atob(data.strata_codes), codeBytes = new Uint8Array(rawCodes.length);
    for (var j = 0; j < rawCodes.length; j++) {{ codeBytes[j] = rawCodes.charCodeAt(j); }}
    strataCodes = new Float32Array(codeBytes.buffer);
  }}
  window.socmapValueAt = function (row, col) {{
    var out = {{}};
    data.depths.forEach(function (d) {{
      var i = row * w + col, p = planes[d];
      out[d] = {{mean: p.mean[i], sd: p.sd[i], q05: p.q05[i], q95: p.q95[i]}};
    }});
    var code = strataCodes === null ? null : strataCodes[row * w + col];
    out.stratum = code === null ? null : (code >= 0 ? data.strata_labels[code] : 'none');
    return out;
  }};
  function valueAt(row, col, done) {{
    if (!tiles) {{ done(window.socmapValueAt(row, col)); return; }}
    fetch(tiles.value + '?row=' + row + '&col=' + col).then(function (r) {{ return r.json(); }})
      .then(function (v) {{
        data.depths.forEach(function (d) {{  // JSON has no NaN: null is no value
          ['mean', 'sd', 'q05', 'q95'].forEach(function (k) {{
            if (v[d][k] === null) {{ v[d][k] = NaN; }}
          }});
        }});
        done(v);
      }});
  }}
  map.on('click', function (e) {{
    var row = Math.floor(-e.latlng.lat), col = Math.floor(e.latlng.lng);  // displayed pixel
    if (row < 0 || row >= h || col < 0 || col >= w) {{ return; }}
    valueAt(row, col, function (v) {{ popup(e.latlng, row, col, v); }});
  }});
  function popup(latlng, row, col, v) {{
    var rows = '';
    data.depths.forEach(function (d) {{
      rows += '<tr><td>' + d + '</td><td>' + fmt(v[d].mean) + '</td><td>' + fmt(v[d].sd) +
        '</td><td>' + fmt(v[d].q05) + ' – ' + fmt(v[d].q95) + '</td></tr>';
    }});
    var where = 'row ' + row * data.step + ', col ' + col * data.step;  // grid pixel
    if (v.stratum !== null && v.stratum !== undefined) {{ where += ', stratum ' + v.stratum; }}
    // pan the popup clear of the layer switcher, not only of the map's edge
    var right = switcher.getContainer().offsetWidth + 20;
    L.popup({{autoPanPaddingTopLeft: [10, 10], autoPanPaddingBottomRight: [right, 10]}})
      .setLatLng(latlng).setContent('<div>' + where + ' (SOC g/kg)</div><table>' +
      '<tr><th>depth</th><th>mean</th><th>sd</th><th>90 % interval</th></tr>' + rows +
      '</table>').openOn(map);
    document.body.setAttribute('data-clicked', where);
  }}
  // Links can open a layer and a pixel: map.html#layer=SOC%20sd%200-30cm&pixel=120,85
  // (grid row, column), which is also how the tests drive the page.
  var hash = new URLSearchParams(window.location.hash.slice(1));
  if (hash.get('layer') && base[hash.get('layer')]) {{
    Object.keys(base).forEach(function (k) {{ map.removeLayer(base[k]); }});
    base[hash.get('layer')].addTo(map);
    show(base[hash.get('layer')]);
  }}
  if (hash.get('pixel')) {{
    var rc = hash.get('pixel').split(',').map(Number);
    var at = L.latLng(-(rc[0] / data.step + 0.5), rc[1] / data.step + 0.5);
    map.fire('click', {{latlng: at}});
  }}
  document.body.setAttribute('data-map', 'ready');
}})();
</script></body></html>
"""

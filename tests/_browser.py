"""Browser checks of a run's report, map page and PDF, shared by the report and notebook tests.

Playwright drives the system Chromium (``executable_path``; nothing is downloaded). Each
check opens a page as a user would, collects console errors and uncaught exceptions, and
saves a screenshot under ``ARTIFACTS``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ARTIFACTS = Path(
    os.environ.get("SOCMAP_TEST_ARTIFACTS", Path(__file__).parents[1] / ".test-artifacts")
)


def chromium_path() -> str:
    """The system Chromium; fails the test (or skips with ``SOCMAP_SKIP_BROWSER=1``)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("SOCMAP_SKIP_BROWSER") == "1":
            pytest.skip("SOCMAP_SKIP_BROWSER=1 and no chromium")
        pytest.fail("chromium is not installed; `make test` installs it (apt-get install chromium)")
    return found


def open_page(browser: Any, url: str, width: int = 1280, height: int = 900) -> tuple[Any, list]:
    """A page at ``url``, with every console error and uncaught exception collected."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_load_state("load")
    return page, errors


def check_report_page(browser: Any, html_path: Path, shot: str) -> None:
    """Every image decodes, nothing scrolls sideways at 1280 px, the full table opens."""
    page, errors = open_page(browser, html_path.as_uri())
    page.wait_for_function("document.body.dataset.images === 'loaded'", timeout=10_000)
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
    assert images and all(done and width > 0 for done, width in images)
    assert int(page.get_attribute("body", "data-image-count")) == len(images)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, width
    details = page.locator("details").first
    assert details.get_attribute("open") is None
    details.locator("summary").click()
    assert details.get_attribute("open") is not None
    assert not errors, errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    page.close()


def check_map_page(browser: Any, page_path: Path, run_dir: Path, shot: str) -> None:
    """Switch layers in the switcher, click a mapped pixel, read the COG's values back.

    The page must be offline (nothing loaded from the network), list the cores and design
    sites with their counts, change the visible layer and legend on a click in the
    switcher, and show the COG's mean and sd of a clicked pixel with its stratum.
    """
    import rasterio
    import zarr

    from socmap.predict import open_run

    html_text = page_path.read_text()
    markup = re.sub(r"<script.*?</script>", "", html_text, flags=re.S)
    assert "<script src" not in html_text and not re.search(r"(src|href)=.https?:", markup)
    assert not re.search(r"url\(.?https?:", markup)
    page, errors = open_page(browser, page_path.as_uri())
    page.wait_for_function("document.body.dataset.map === 'ready'")
    switcher = page.locator(".leaflet-control-layers")
    overlays = []
    if (run_dir / "design" / "design.csv").is_file():
        overlays.append(f"design sites ({len(pd.read_csv(run_dir / 'design' / 'design.csv'))})")
    if (run_dir / "strata" / "cores.csv").is_file():
        overlays.append(f"cores ({len(pd.read_csv(run_dir / 'strata' / 'cores.csv'))})")
    for label in overlays:
        assert switcher.get_by_text(label, exact=True).count() == 1, label
    depths = [str(d) for d in open_run(run_dir).depth_labels]
    shown = page.locator("img.socmap-layer")
    first_src = shown.first.get_attribute("src")
    target = f"SOC sd {depths[-1]}"
    switcher.get_by_text(target, exact=True).click()
    assert page.get_attribute("body", "data-layer") == target
    assert shown.count() == 1 and shown.first.get_attribute("src") != first_src
    assert target in page.locator(".legend").inner_text()
    # hide the markers and polygons so the click reaches the raster
    for label in overlays:
        switcher.get_by_text(label, exact=True).click()
    polygons = switcher.get_by_text(re.compile(r"^ ?strata \(\d+\)$"))
    if polygons.count():
        polygons.click()
    with rasterio.open(run_dir / "cogs" / f"soc_{depths[0]}_mean.tif") as src:
        mean = src.read(1)
    with rasterio.open(run_dir / "cogs" / f"soc_{depths[0]}_sd.tif") as src:
        sd = src.read(1)
    data = json.loads(page.locator("#socmap-data").text_content())
    step, (h, w) = data["step"], data["shape"]
    shown_pixels = mean[::step, ::step]
    valid = np.argwhere(np.isfinite(shown_pixels))
    r, c = (int(v) for v in valid[len(valid) // 2])
    box = shown.first.bounding_box()
    page.mouse.click(
        box["x"] + (c + 0.5) * box["width"] / w, box["y"] + (r + 0.5) * box["height"] / h
    )
    row, col = r * step, c * step
    where = page.get_attribute("body", "data-clicked")
    codes = run_dir / "strata_codes.zarr"
    if codes.exists():
        code = int(zarr.open_array(store=str(codes), mode="r")[row, col])
        labels = json.loads((run_dir / "run.json").read_text())["strata"]["options"]
        named = labels["strata_labels"][code] if code >= 0 else "none"
        assert where == f"row {row}, col {col}, stratum {named}"
    else:
        assert where == f"row {row}, col {col}"
    popup = page.locator(".leaflet-popup-content").inner_html()
    cells = re.findall(rf"<tr><td>{depths[0]}</td><td>([^<]+)</td><td>([^<]+)</td>", popup)
    shown_mean, shown_sd = (float(v.replace(",", "")) for v in cells[0])
    assert shown_mean == pytest.approx(float(mean[row, col]), rel=5e-4)
    assert shown_sd == pytest.approx(float(sd[row, col]), rel=5e-4)
    assert not errors, errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)  # the popup fades in
    page.screenshot(path=str(ARTIFACTS / shot))
    page.close()


def check_report_pdf(pdf: Path, run_dir: Path) -> None:
    """A4 pages with every section, the project totals and the full stratum table as text."""
    import pypdf

    from socmap.report.build import _quantity

    reader = pypdf.PdfReader(pdf)
    text = " ".join(page.extract_text() for page in reader.pages)
    width, height = (float(v) for v in reader.pages[0].mediabox[2:])
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    assert "Summary" in text and "Stratum stocks" in text and "Maps" in text
    project = pd.read_csv(run_dir / "strata" / "project.csv").iloc[-1]
    assert _quantity(project["total_t_co2e"]) in text
    assert _quantity(project["conservative_t_co2e"]) in text
    # the collapsed full stratum table is printed open: every layer's rows are there
    strata = pd.read_csv(run_dir / "strata" / "strata.csv", dtype={"stratum": str})
    assert "ci95_low" in text and all(layer in text for layer in strata["layer"].unique())
    assert 2 <= len(reader.pages) <= 40

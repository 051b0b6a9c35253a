"""Print the HTML report to PDF with a headless Chromium (what verification bodies file).

Chromium lays the page out exactly as the browser shows it, so the PDF needs no second
template. It is found as ``SOCMAP_CHROMIUM`` (a path), else ``chromium``,
``chromium-browser`` or ``google-chrome`` on ``PATH``; socmap does not download one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from socmap._io import atomic_path
from socmap.errors import ConfigError

__all__ = ["find_chromium", "html_to_pdf"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str:
    """Path of the Chromium to print with; raise :class:`ConfigError` when there is none."""
    given = os.environ.get("SOCMAP_CHROMIUM")
    if given:
        if shutil.which(given) is None:
            raise ConfigError(
                f"SOCMAP_CHROMIUM={given!r} is not an executable; point it at chromium or unset it"
            )
        return given
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError(
        "--pdf needs Chromium and none is on PATH; install it (apt-get install chromium) or "
        "set SOCMAP_CHROMIUM=/path/to/chromium"
    )


def html_to_pdf(html_path: str | Path, pdf_path: str | Path, timeout: float = 180.0) -> Path:
    """Print ``html_path`` to ``pdf_path`` (A4, no browser header or footer).

    Raises
    ------
    ConfigError
        No Chromium, or Chromium failed or wrote nothing (its last message is quoted).
    """
    browser = find_chromium()
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path)
    with (
        tempfile.TemporaryDirectory(prefix="socmap-pdf-") as scratch,
        atomic_path(pdf_path, record=True) as tmp,
    ):
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={scratch}", "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}", html_path.as_uri(),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(
                f"Chromium did not print {html_path.name} within {timeout:.0f} s; retry, or "
                "open the HTML report and print it from the browser"
            ) from exc
        if done.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
            raise ConfigError(
                f"Chromium ({browser}) could not print {html_path.name}: {last}; open the HTML "
                "report and print it from a browser instead"
            )
    return pdf_path

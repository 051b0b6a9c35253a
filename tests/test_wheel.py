"""socmap installed from its wheel (no editable install) has everything it needs.

The built-in catalogs, run configurations, embedded data, the shipped bundle and the map
page's vendored Leaflet are package data; a wheel that lost one of them would only fail on
a user's machine. The notebooks (tests/test_notebooks.py) also run against this install,
the quickstart from the Edgeroi cores to the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _run(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "SOCMAP_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, check=False
    )


def test_the_wheel_carries_its_package_data(wheel_site: Path) -> None:
    pkg = wheel_site / "socmap"
    for rel in (
        "py.typed",
        "catalogs/covariates/edgeroi.yaml",
        "catalogs/depths.yaml",
        "catalogs/runs/edgeroi.yaml",
        "catalogs/regions/edgeroi.yaml",
        "report/vendor/leaflet/leaflet.js",
        "report/vendor/leaflet/LICENSE",
        "_data/bundles/global_gsm/model.json",
        "_data/bundles/global_gsm/weights.safetensors",
    ):
        assert (pkg / rel).is_file(), rel
    notices = list((pkg / "_data").rglob("NOTICE.md"))
    assert notices, "embedded data ships without its licence notices"


def test_the_installed_wheel_is_what_runs_and_finds_its_builtins(
    wheel_site: Path, tmp_path: Path
) -> None:
    code = (
        "import socmap, socmap.catalog as c; "
        "print(socmap.__file__); "
        "print(len(c.load_catalog('edgeroi').covariates), c.load_grid('edgeroi').shape)"
    )
    done = _run(wheel_site, "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    where, builtins = done.stdout.splitlines()
    assert Path(where).is_relative_to(wheel_site)
    assert builtins == "15 (321, 476)"
    # the CLI plans the built-in demo run: run config, catalog, region and shipped bundle
    plan = _run(wheel_site, "-m", "socmap", "run", "edgeroi", "--plan", "--out", "r", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    stages = [line.split()[0] for line in plan.stdout.splitlines() if line.strip()]
    assert stages == ["cube", "profiles", "finetune", "predict", "stocks", "strata", "report"]

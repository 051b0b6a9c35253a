"""The package's layering is a checked contract (``[tool.importlinter]`` in pyproject.toml).

The layers follow the data flow (sources -> cube -> extract -> model -> predict -> report),
the run engine knows no product, and no two sibling modules or packages import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    # In a child process: import-linter configures logging, which would silence the
    # loggers of the tests that run after this one.
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, "
        "no_cache=True, no_logo=True))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7 kept, 0 broken" in done.stdout


def test_the_run_engine_names_no_product() -> None:
    """The engine module never mentions a product's kind or module by name."""
    engine = ROOT / "src" / "socmap" / "predict" / "_run.py"
    tree = ast.parse(engine.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not names & {"SOC", "STOCK", "STRATA", "CHANGE"}
    assert not imported & {
        "socmap.predict._soc", "socmap.stocks._maps", "socmap.strata._maps",
        "socmap.predict._export", "socmap.compare",
    }  # fmt: skip


def test_mapping_does_not_import_scikit_learn() -> None:
    """Loading a bundle and mapping stay clear of scikit-learn (about 1 s of start-up)."""
    code = (
        "import sys; import socmap.cli.maps, socmap.predict._soc, socmap.model.bundle; "
        "print(sorted(m for m in ('sklearn', 'scipy.stats') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_validate_package_loads_its_names_on_first_use() -> None:
    import socmap.validate as validate
    from socmap.validate import BlockKFold
    from socmap.validate.splitters import BlockKFold as Home

    assert BlockKFold is Home and "cross_validate" in dir(validate)
    assert set(validate.__all__) <= set(dir(validate))
    try:
        validate.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("an unknown name must raise AttributeError")

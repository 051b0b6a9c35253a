"""The facade (``import socmap``): the whole chain, lazily, and no name shadowed by a submodule."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys

import socmap


def test_every_facade_name_is_the_documented_callable() -> None:
    for name in socmap.__all__:
        if name == "__version__":
            assert isinstance(socmap.__version__, str)
            continue
        obj = getattr(socmap, name)
        assert callable(obj), name
        assert obj.__name__ == name, (name, obj)
        assert name in (socmap.__doc__ or ""), f"{name} is missing from the facade's table"


def test_no_facade_name_is_a_submodule() -> None:
    """``import socmap.<name>`` must never replace the facade's function."""
    for name in socmap.__all__:
        assert importlib.util.find_spec(f"socmap.{name}") is None, name


def test_extract_stays_the_function_after_the_submodule_is_imported() -> None:
    code = (
        "import socmap, socmap.extraction, inspect; "
        "print(inspect.isfunction(socmap.extract), socmap.extract.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "socmap.extraction"]


def test_importing_socmap_loads_no_heavy_module() -> None:
    code = (
        "import socmap, sys; "
        "print(sorted(m for m in ('torch', 'xarray', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dir_lists_the_lazy_names() -> None:
    assert {"predict_cube", "build_report", "run_pipeline"} <= set(dir(socmap))
    assert inspect.isfunction(socmap.predict_cube)

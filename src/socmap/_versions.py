"""The versions that shaped a result: Python, socmap and the libraries it computes with.

One list for the run manifest, the report and ``socmap.show_versions()`` (what a bug report
or an auditor asks for).
"""

from __future__ import annotations

import functools
import hashlib
import platform
from importlib import metadata
from pathlib import Path

__all__ = ["LIBRARIES", "__version__", "code_sha256", "show_versions", "versions"]

try:
    __version__ = metadata.version("socmap")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

#: Libraries whose version can change a number socmap writes.
LIBRARIES = (
    "numpy",
    "pandas",
    "xarray",
    "dask",
    "zarr",
    "torch",
    "rasterio",
    "scikit-learn",
)


def versions(missing: str | None = None) -> dict[str, str]:
    """Return ``{component: version}`` for Python, socmap and :data:`LIBRARIES`.

    Parameters
    ----------
    missing
        Value for a library that is not installed; ``None`` leaves it out.

    Examples
    --------
    >>> v = versions()
    >>> list(v)[:2], "numpy" in v
    (['python', 'socmap'], True)
    """
    found = {"python": platform.python_version(), "socmap": __version__}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                found[name] = missing
    return found


@functools.lru_cache(maxsize=1)
def code_sha256() -> str:
    """SHA-256 of socmap's own source (every ``.py`` file of the package, names and bytes).

    The version number alone does not change between development builds, so a cached result
    keyed on it would survive a change of the code that made it.

    Examples
    --------
    >>> len(code_sha256())
    64
    """
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def show_versions() -> None:
    """Print the versions, one per line, for bug reports."""
    found = {**versions("not installed"), "platform": platform.platform()}
    width = max(len(k) for k in found)
    for name, value in found.items():
        print(f"{name:<{width}}  {value}")

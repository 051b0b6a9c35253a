"""The versions that shaped a result: Python, socmap and the libraries it computes with.

One list for the run manifest, the report and ``socmap.show_versions()`` (what a bug report
or an auditor asks for).
"""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["LIBRARIES", "__version__", "show_versions", "versions"]

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


def show_versions() -> None:
    """Print the versions, one per line, for bug reports."""
    found = {**versions("not installed"), "platform": platform.platform()}
    width = max(len(k) for k in found)
    for name, value in found.items():
        print(f"{name:<{width}}  {value}")

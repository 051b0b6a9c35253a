"""socmap: soil organic carbon mapping with global-to-regional transfer.

The facade lists the everyday entry points; everything else lives in the submodules
(``socmap.grid``, ``socmap.catalog``, ``socmap.cube``, ``socmap.profiles``,
``socmap.depth``, ``socmap.extract``). Heavy modules load on first use.

Examples
--------
>>> import socmap
>>> socmap.Grid.from_bbox((0, 0, 100, 50), 10, "EPSG:32755").shape
(5, 10)
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from socmap.errors import SocmapError
from socmap.grid import Grid

try:
    __version__ = version("socmap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "Grid",
    "SocmapError",
    "__version__",
    "build_cube",
    "extract",
    "harmonise",
    "load_catalog",
    "load_grid",
    "open_cube",
    "qc_profiles",
    "read_profiles",
    "show_versions",
]

_LAZY = {
    "build_cube": "socmap.cube",
    "open_cube": "socmap.cube",
    "load_catalog": "socmap.catalog",
    "load_grid": "socmap.catalog",
    "read_profiles": "socmap.profiles",
    "qc_profiles": "socmap.profiles",
    "harmonise": "socmap.depth",
    "extract": "socmap.extract",
    "show_versions": "socmap._versions",
}

if TYPE_CHECKING:
    from socmap._versions import show_versions
    from socmap.catalog import load_catalog, load_grid
    from socmap.cube import build_cube, open_cube
    from socmap.depth import harmonise
    from socmap.extract import extract
    from socmap.profiles import qc_profiles, read_profiles


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'socmap' has no attribute {name!r}")

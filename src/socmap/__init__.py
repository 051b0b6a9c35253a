"""socmap: soil organic carbon mapping with global-to-regional transfer."""

from socmap.errors import SocmapError
from socmap.grid import Grid

__version__ = "0.1.0"

__all__ = ["Grid", "SocmapError", "__version__"]

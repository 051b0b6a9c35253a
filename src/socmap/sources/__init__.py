"""Covariate sources: read catalog layers onto a :class:`~socmap.grid.Grid`.

``socmap.sources.local`` reads local GeoTIFF/COG files; ``socmap.sources.earthengine`` (the only
module that imports ``ee``) pulls Earth Engine assets. Import the submodule you need.
"""

from __future__ import annotations

__all__: list[str] = []

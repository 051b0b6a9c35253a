"""Exception hierarchy.

Every error socmap raises on bad input is a :class:`SocmapError`. Each subclass also
inherits the matching builtin, so ``except ValueError`` keeps working for callers that
do not know about socmap. Messages state the constraint, show the offending value with
``!r`` and say how to fix it; the CLI prints them as one line.
"""

from __future__ import annotations

__all__ = [
    "BandMismatch",
    "BundleError",
    "CRSError",
    "CatalogError",
    "ConfigError",
    "DimensionOrderError",
    "EarthEngineError",
    "GridMismatch",
    "InputNotFound",
    "MissingDependency",
    "OutputExists",
    "ProfileValidationError",
    "RasterError",
    "SocmapError",
    "SpectraError",
    "UnitsError",
]


class SocmapError(Exception):
    """Root of every error socmap raises on bad input or bad state."""


class GridMismatch(SocmapError, ValueError):
    """Two grids differ by more than floating-point noise."""


class CRSError(SocmapError, ValueError):
    """A raster or table has no CRS, or one that cannot be parsed."""


class DimensionOrderError(SocmapError, ValueError):
    """An array's dimensions are not in ``(..., y, x)`` order."""


class RasterError(SocmapError, ValueError):
    """A raster layer is unusable (all NaN, wrong band, unreadable)."""


class BandMismatch(SocmapError, ValueError):
    """A cube lacks bands that a model or a step needs, or lists one twice."""


class ProfileValidationError(SocmapError, ValueError):
    """A soil-profile table breaks the canonical contract."""


class UnitsError(ProfileValidationError):
    """Values are in a unit other than the one declared (e.g. % where g/kg is expected)."""


class CatalogError(SocmapError, ValueError):
    """A covariate or depth catalog is malformed."""


class BundleError(SocmapError, ValueError):
    """A model bundle is missing, corrupt or incompatible."""


class SpectraError(SocmapError, ValueError):
    """A spectra table is unusable: wavelengths, NaN or values out of their physical range."""


class EarthEngineError(SocmapError, RuntimeError):
    """Earth Engine refused or failed a request."""


class InputNotFound(SocmapError, FileNotFoundError):
    """An input file or directory does not exist."""


class OutputExists(SocmapError, FileExistsError):
    """An output already exists and overwriting was not asked for."""


class ConfigError(SocmapError, ValueError):
    """A setting (network, training, splitter, method option) is out of its range."""


class MissingDependency(SocmapError, ImportError):
    """An optional dependency is not installed."""

"""The ``socmap`` command line: a thin shell over the library.

Each command parses its options, calls one library function and prints. The commands live
in one module per group, in data-flow order (:data:`PANELS`); :func:`main` is the error
boundary. Importing this package registers every command.
"""

from socmap.cli import covariates, maps, models, profiles, reports, runs, spectra  # noqa: F401
from socmap.cli._app import EXIT_BAD_INPUT, EXIT_INTERNAL, PANELS, app, main, os_error_line

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERNAL", "PANELS", "app", "main", "os_error_line"]

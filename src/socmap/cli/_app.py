"""The CLI application, its command panels and its error boundary.

The commands are listed in data-flow order (:data:`PANELS`); :func:`main` turns every
expected failure into one line and exit status 2.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup, TyperOption
from typer.exceptions import TyperException

from socmap._versions import __version__
from socmap.errors import ConfigError, SocmapError

#: Commands in data-flow order, by help panel: ``socmap --help`` lists them so.
PANELS: dict[str, tuple[str, ...]] = {
    "1 Covariates": ("cube", "ee"),
    "2 Profiles and training tables": ("profiles", "extract"),
    "3 Models": ("pretrain", "finetune", "cv"),
    "4 Maps": ("predict", "stocks", "strata", "posterior", "compare"),
    "5 Field work and reports": ("design", "report", "view"),
    "The whole chain": ("run", "demo"),
    "Spectra and benchmarks": ("spectra", "benchmark"),
}


_ORDER = [name for names in PANELS.values() for name in names]

_type_column = TyperOption.display_type_rich


def _flag_without_type(self: TyperOption, ctx: Any) -> str | None:
    # Typer's rich help prints "<bool>" beside every flag (--help, --version, --open/--no-open),
    # which reads as if the flag took a value; a flag has no value to describe.
    return None if self.is_flag else _type_column(self, ctx)


TyperOption.display_type_rich = _flag_without_type  # type: ignore[method-assign]


_PANEL = {name: panel for panel, names in PANELS.items() for name in names}


class _DataFlowGroup(TyperGroup):
    """Lists the commands in data-flow order (:data:`PANELS`), not registration order."""

    def list_commands(self, ctx: Any) -> list[str]:  # typer vendors its own click
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))


app = typer.Typer(
    name="socmap",
    help="Maps of soil organic carbon and stocks from few cores: global-to-regional transfer, "
    "honest uncertainty, reports for carbon standards.",
    cls=_DataFlowGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def command(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a top-level command under its help panel."""
    return app.command(name, rich_help_panel=_PANEL[name])


def group(name: str, help: str) -> typer.Typer:
    """Register a command group under its help panel."""
    group = typer.Typer(help=help, no_args_is_help=True)
    app.add_typer(group, name=name, rich_help_panel=_PANEL[name])
    return group


cube_app = group("cube", "Build and inspect covariate cubes (Zarr).")


ee_app = group("ee", "Pull covariates from Google Earth Engine (the \\[ee] extra).")


profiles_app = group("profiles", "Read, QC and harmonise soil-profile tables.")


benchmark_app = group("benchmark", "Benchmarks that write result tables.")


spectra_app = group("spectra", "Soil spectra: choose lab samples, benchmark spectral transfer.")


out = Console(soft_wrap=True)


#: Exit status for bad input (SocmapError and friends, and file-system refusals).
EXIT_BAD_INPUT = 2


#: Exit status for an unexpected error (a bug).
EXIT_INTERNAL = 1


#: What to do about a file-system refusal, by errno.
_OS_REMEDY = {
    errno.EACCES: "check the permissions of the folder or write elsewhere (--out)",
    errno.EPERM: "check the permissions of the folder or write elsewhere (--out)",
    errno.EROFS: "the file system is read-only; write elsewhere (--out)",
    errno.ENOSPC: "free disk space or write elsewhere (--out)",
    errno.EDQUOT: "free disk space or write elsewhere (--out)",
    errno.ENOTDIR: "a file stands where a folder is needed; move it or choose another path",
    errno.EISDIR: "a folder stands where a file is needed; choose a file path",
    errno.EEXIST: "something already exists there; choose another path",
    errno.ENOENT: "check the path (does its folder exist?)",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def os_error_line(exc: OSError) -> str:
    """One line for a file-system refusal: what failed, on which path, and the fix.

    Examples
    --------
    >>> os_error_line(PermissionError(13, "Permission denied", "/srv/out"))
    "Permission denied: '/srv/out'; check the permissions of the folder or write elsewhere (--out)"
    """
    what = exc.strerror or str(exc) or type(exc).__name__
    paths = [p for p in (exc.filename, exc.filename2) if p is not None]
    where = ": " + " -> ".join(repr(str(p)) for p in paths) if paths else ""
    remedy = _OS_REMEDY.get(exc.errno or -1, "check the path and the file system")
    return f"{what}{where}; {remedy}".replace("\n", " ")


def _version(value: bool) -> None:
    if value:
        out.print(f"socmap {__version__}")
        raise typer.Exit()


#: Set by ``--debug`` (or ``SOCMAP_DEBUG=1``): unexpected errors keep their traceback.
_debug = {"on": False}


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show the Python traceback of an unexpected error."),
    ] = False,
) -> None:
    """socmap: soil organic carbon mapping with global-to-regional transfer."""
    _debug["on"] = _debug["on"] or debug


def print_frame(frame: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    for col in frame.columns:
        table.add_column(str(col))
    for row in frame.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    out.print(table)


def _given_value(argv: list[str], param: Any) -> str | None:
    """Find the value the command line gave an option (for messages that do not name it)."""
    for opt in getattr(param, "opts", None) or []:
        if not opt.startswith("-"):
            continue
        for i, arg in enumerate(argv):
            if arg == opt and i + 1 < len(argv):
                return str(argv[i + 1])
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
    return None


def _takes_a_path(param: Any) -> bool:
    import pathlib
    import typing

    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    return annotation is pathlib.Path or pathlib.Path in typing.get_args(annotation)


def refuse_empty_path(argv: list[str]) -> None:
    """Refuse a path option given as '' (an unset shell variable).

    ``Path("")`` is ``Path(".")``: once ``-o ""`` wrote a run, a CV or a design into the
    working directory at exit 0, and ``cube build -o ""`` was an internal error.
    """
    if all(arg.strip() and not arg.strip().endswith("=") for arg in argv):
        return  # no empty value anywhere: skip building the command tree (start-up time)
    import click

    cmd: Any = typer.main.get_command(app)
    ctx = click.Context(cmd)
    rest = list(argv)
    while rest and hasattr(cmd, "get_command"):  # walk down to the subcommand
        if rest[0].startswith("-"):  # a global option such as --debug
            rest.pop(0)
            continue
        sub = cmd.get_command(ctx, rest[0])
        if sub is None:
            return  # an unknown command: the parser says so
        cmd, rest = sub, rest[1:]
    flags = {o for p in getattr(cmd, "params", []) if _takes_a_path(p) for o in p.opts}
    for i, arg in enumerate(rest):
        flag, eq, value = arg.partition("=")
        if not eq:
            value = rest[i + 1] if i + 1 < len(rest) else "-"
        if flag in flags and not value.strip():
            raise ConfigError(
                f"{flag} {value!r} is an empty path (an unset shell variable?); give a file or "
                "folder path"
            )


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; bad input becomes one line on stderr and exit status 2.

    An unexpected error is one line too (exit status 1), unless ``--debug`` or
    ``SOCMAP_DEBUG=1`` asks for its traceback.
    """
    _debug["on"] = os.environ.get("SOCMAP_DEBUG", "") not in ("", "0")
    try:
        refuse_empty_path(sys.argv[1:] if argv is None else list(argv))
        rv = app(args=argv, prog_name="socmap", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("socmap: aborted", file=sys.stderr)
        sys.exit(130)
    except TyperException as exc:  # usage errors: bad option, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        given = _given_value(sys.argv[1:] if argv is None else argv, getattr(exc, "param", None))
        if given is not None and given not in message:
            message += f" (got {given!r})"
        print(f"socmap: error: {message}".replace("\n", " "), file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except SocmapError as exc:
        print(f"socmap: error: {exc}".replace("\n", " "), file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as exc:  # the file system refused: permissions, a file in the way, disk full
        if _debug["on"]:
            raise
        print(f"socmap: error: {os_error_line(exc)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:  # a bug: one line and how to see and report it
        if _debug["on"]:
            raise
        print(
            f"socmap: internal error: {type(exc).__name__}: {exc}".replace("\n", " ")
            + f" (socmap {__version__}; rerun with --debug for the traceback and report it"
            " with the command you ran)",
            file=sys.stderr,
        )
        sys.exit(EXIT_INTERNAL)
    # Without standalone mode click returns the exit code of --help and typer.Exit.
    sys.exit(rv if isinstance(rv, int) else 0)

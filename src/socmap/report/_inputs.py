"""The files a report reads, checked before anything is written.

A report reads tables other commands wrote (``socmap strata``, ``socmap design``,
``socmap benchmark transfer``). A file damaged by hand, or one of another kind, must be
refused in one line naming the file, what it lacks and the command that writes it again,
not end in a ``KeyError`` halfway through writing the report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from socmap.errors import ConfigError, InputNotFound

__all__ = ["read_checked_json", "read_checked_table"]


def read_checked_table(
    path: Path,
    columns: Sequence[str],
    what: str,
    fix: str,
    *,
    dtype: Mapping[str, Any] | None = None,
    empty_ok: bool = False,
) -> pd.DataFrame:
    r"""Read a CSV that a report needs; refuse it when it lacks ``columns`` or rows.

    Parameters
    ----------
    path
        The CSV file.
    columns
        Columns the report reads.
    what
        What the file is, for the message (``"stratum table"``).
    fix
        What to do about it, in CLI terms (the command that writes the file again).
    dtype
        As :func:`pandas.read_csv` takes it (for columns that exist).
    empty_ok
        Accept a table without rows.

    Raises
    ------
    InputNotFound
        The file does not exist.
    ConfigError
        It cannot be parsed, lacks a column, or has no rows.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "strata.csv"
    >>> _ = p.write_text("garbage\n")
    >>> try:
    ...     read_checked_table(p, ["stratum", "layer"], "stratum table", "rerun it")
    ... except ConfigError as exc:
    ...     print(str(exc).split(".csv' ")[1])
    lacks the columns ['stratum', 'layer'] (it has ['garbage']); rerun it
    """
    if not path.is_file():
        raise InputNotFound(f"{what} {str(path)!r} is missing; {fix}")
    try:
        table = pd.read_csv(path, dtype=dict(dtype or {}))
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser errors are ValueErrors
        raise ConfigError(
            f"{what} {str(path)!r} is not a readable CSV table ({type(exc).__name__}: {exc}); {fix}"
        ) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        found = [str(c) for c in table.columns]
        shown = found if len(found) <= 8 else [*found[:8], f"... {len(found) - 8} more"]
        raise ConfigError(
            f"{what} {str(path)!r} lacks the columns {missing!r} (it has {shown!r}); {fix}"
        )
    if table.empty and not empty_ok:
        raise ConfigError(f"{what} {str(path)!r} has no rows; {fix}")
    return table


def read_checked_json(path: Path, keys: Mapping[str, Sequence[str]], what: str, fix: str) -> Any:
    """Read a JSON object that a report needs; refuse it when it lacks ``keys``.

    ``keys`` maps each top-level key to the keys it must hold in turn (an empty sequence
    when it need not be an object).

    Raises
    ------
    InputNotFound
        The file does not exist.
    ConfigError
        It is not JSON, not an object, or lacks a key.
    """
    if not path.is_file():
        raise InputNotFound(f"{what} {str(path)!r} is missing; {fix}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{what} {str(path)!r} is not readable JSON ({type(exc).__name__}: {exc}); {fix}"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{what} {str(path)!r} holds a {type(doc).__name__}, not an object; {fix}"
        )
    missing = []
    for key, inner in keys.items():
        if key not in doc:
            missing.append(key)
        elif inner:
            held = doc[key] if isinstance(doc[key], dict) else {}
            missing += [f"{key}.{k}" for k in inner if k not in held]
    if missing:
        raise ConfigError(f"{what} {str(path)!r} lacks the keys {missing!r}; {fix}")
    return doc

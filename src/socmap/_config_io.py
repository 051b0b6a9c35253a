"""JSON form of the dataclass configurations that bundles store (network and spectral CNN).

A configuration is written with a ``format`` marker and its tuples as lists; it is read back
only when the marker matches and every key is a field, so a file from another format or a
misspelt key is refused instead of silently building a different network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from socmap.errors import ConfigError

__all__ = ["config_from_dict", "config_to_dict"]

T = TypeVar("T")


def config_to_dict(config: Any, fmt: str) -> dict[str, Any]:
    """Return the JSON-ready fields of dataclass ``config`` with ``format=fmt``."""
    out = dataclasses.asdict(config)
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
    out["format"] = fmt
    return out


def config_from_dict(cls: type[T], data: Mapping[str, Any], fmt: str, what: str) -> T:
    """Inverse of :func:`config_to_dict`; fields left out take their defaults.

    Raises
    ------
    ConfigError
        Another ``format``, a key that is not a field, or values the class refuses; the
        message starts with ``what`` (e.g. ``"network config"``).
    """
    if not isinstance(data, Mapping) or data.get("format", fmt) != fmt:
        got = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        raise ConfigError(f"{what} format {got!r} is not {fmt!r}; re-save the model")
    body = {k: v for k, v in data.items() if k != "format"}
    keys = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(body) - keys)
    if unknown:
        raise ConfigError(f"{what} has unknown keys {unknown!r}; allowed: {sorted(keys)!r}")
    try:
        return cls(**body)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{what} is malformed ({exc}); re-save the model".replace("\n", " ")
        ) from exc

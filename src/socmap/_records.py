"""Digests and completion records: the one place socmap hashes arrays, files and folders.

Completion records of tiled writes are a JSON file per finished tile with a SHA-256 of its data.

A tiled writer (prediction runs, Earth Engine pulls) writes a tile's region of a Zarr store and
then its record, through a temporary file and a rename. On a rerun a tile counts as done only
if its record exists and the stored data still hash to the recorded digest; anything else,
including a region half-written when the process died, is computed again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from socmap._io import atomic_path, file_sha256

__all__ = ["array_digest", "file_sha256", "read_record", "tree_sha256", "write_record"]


def array_digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the raw bytes of ``arrays`` (C order), in order.

    Examples
    --------
    >>> a = np.zeros((2, 2), dtype=np.float32)
    >>> array_digest(a) == array_digest(a.copy()) != array_digest(a + 1)
    True
    """
    h = hashlib.sha256()
    for a in arrays:
        c = np.ascontiguousarray(a)
        if c.size:  # the buffer itself, not a tobytes() copy (a window can be tens of MiB)
            h.update(c.data.cast("B"))
    return h.hexdigest()


def tree_sha256(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        h.update(file_sha256(f).encode())
    return h.hexdigest()


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write a completion record atomically (a reader sees all of it or none)."""
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(record))


def read_record(path: Path) -> dict[str, Any] | None:
    """Read a completion record; ``None`` if it is missing or unreadable."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None

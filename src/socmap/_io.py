"""Atomic outputs: write to a temporary sibling, then rename into place.

A failed or interrupted command never leaves a half-written file or directory at the
destination; at worst a ``.tmp-*`` sibling that the next run replaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from socmap.errors import OutputExists

__all__ = ["atomic_path", "publish_path", "remove_path"]


def remove_path(path: Path) -> None:
    """Delete a file or a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def publish_path(src: Path, dest: Path) -> None:
    """Rename a finished ``src`` to ``dest``, replacing an existing ``dest``.

    The old ``dest`` is moved aside first, so the swap is two renames, not a long delete;
    ``src`` and ``dest`` must be on the same filesystem (siblings are).
    """
    if dest.exists():
        old = dest.with_name(f".old-{uuid.uuid4().hex[:8]}-{dest.name}")
        dest.rename(old)
        src.rename(dest)
        remove_path(old)
    else:
        src.rename(dest)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it to ``dest`` on success.

    Parameters
    ----------
    dest
        Final file or directory path.
    overwrite
        Replace an existing ``dest``. If false and ``dest`` exists, raise
        :class:`~socmap.errors.OutputExists` before any work is done.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "out.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "out.txt").read_text()
    'done'
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise OutputExists(f"{str(dest)!r} exists; pass overwrite=True or choose another path")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{dest.name}")
    try:
        yield tmp
        publish_path(tmp, dest)
    finally:
        if tmp.exists():
            remove_path(tmp)

"""The run root: versioned run directories, the ``latest`` pointer, the stage cache, a lock.

::

    ROOT/
      .lock                    held (flock) while a run works; a second run fails at once
      cache/STAGE/KEY/         one finished stage output each (stage.json inside)
      runs/VERSION/            published versions: manifest.json + hard-linked stage outputs
      latest -> runs/VERSION   switched by one rename, only after a version is complete

A run that fails or is killed never touches ``runs/`` or ``latest``: its finished stages
stay in the cache (the next run reuses them) and its unfinished ones leave only ``.tmp-*``
directories, removed by the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from socmap._io import remove_path
from socmap.errors import ConfigError

__all__ = [
    "MANIFEST",
    "RunRoot",
]

MANIFEST = "manifest.json"
STAGE_JSON = "stage.json"


class RunRoot:
    """The directory a configuration's runs live in."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.cache = self.path / "cache"
        self.runs = self.path / "runs"
        self.latest = self.path / "latest"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the root's lock; another process holding it is an error, not a wait."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / ".lock").open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise ConfigError(
                    f"another socmap run (pid {holder}) is working in {str(self.path)!r}; wait "
                    "for it to finish (a scheduler should not start overlapping runs)"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(str(os.getpid()))
            fh.flush()
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def clean_incomplete(self) -> int:
        """Remove ``.tmp-*``/``.old-*`` leftovers of killed runs; return how many."""
        n = 0
        for parent in [self.runs, *(self.cache.glob("*") if self.cache.is_dir() else [])]:
            if not parent.is_dir():
                continue
            for p in parent.iterdir():
                if p.name.startswith((".tmp-", ".old-")):
                    remove_path(p)
                    n += 1
        return n

    # ------------------------------------------------------------------ cache
    def stage_dir(self, stage: str, key: str) -> Path:
        """Where the output of ``stage`` with cache key ``key`` lives."""
        return self.cache / stage / key[:24]

    def cached(self, stage: str, key: str) -> dict[str, Any] | None:
        """Return the record of a finished stage output with this key, or ``None``."""
        record = self.stage_dir(stage, key) / STAGE_JSON
        if not record.is_file():
            return None
        doc: dict[str, Any] = json.loads(record.read_text())
        return doc if doc.get("key") == key else None

    # ------------------------------------------------------------------ versions
    def versions(self) -> list[str]:
        """List the published versions, oldest first."""
        if not self.runs.is_dir():
            return []
        return sorted(
            p.name for p in self.runs.iterdir() if (p / MANIFEST).is_file() and p.name[0] != "."
        )

    def latest_version(self) -> str | None:
        """Return the version ``latest`` points at (``None`` before the first run)."""
        if not self.latest.is_symlink():
            return None
        return Path(os.readlink(self.latest)).name

    def manifest(self, version: str) -> dict[str, Any]:
        """Read a published version's manifest."""
        doc: dict[str, Any] = json.loads((self.runs / version / MANIFEST).read_text())
        return doc

    def new_version_id(self) -> str:
        """Return a sortable, unique version name: UTC time, then a counter if needed."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        existing = set(self.versions())
        name, i = stamp, 1
        while name in existing:
            name, i = f"{stamp}-{i}", i + 1
        return name

    def point_latest(self, version: str) -> None:
        """Switch ``latest`` to ``runs/version`` with one atomic rename."""
        tmp = self.path / f".latest-{uuid.uuid4().hex[:8]}"
        os.symlink(Path("runs") / version, tmp)
        os.replace(tmp, self.latest)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest versions, and cache entries none of them uses."""
        versions = self.versions()
        current = self.latest_version()
        old = [v for v in versions[:-keep] if v != current] if keep < len(versions) else []
        for v in old:
            remove_path(self.runs / v)
        used = set()
        for v in self.versions():
            for st in self.manifest(v).get("stages", []):
                used.add(self.stage_dir(st["name"], st["key"]))
        if self.cache.is_dir():
            for stage in self.cache.iterdir():
                for entry in stage.iterdir():
                    if entry not in used:
                        remove_path(entry)
        return old

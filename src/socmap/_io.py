"""Atomic outputs: write to a temporary sibling, then rename into place.

A failed or interrupted command never leaves a half-written file or directory at the
destination; at worst a ``.tmp-*`` sibling that the next run replaces.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from socmap.errors import OutputExists

__all__ = [
    "OUTPUT_LEDGER",
    "RASTER_SUFFIXES",
    "STORE_MARKS",
    "VECTOR_SUFFIXES",
    "atomic_path",
    "check_out_folder",
    "check_replaceable",
    "duplicated_header",
    "file_sha256",
    "publish_path",
    "record_output",
    "refuse_file_in_the_way",
    "refuse_input_as_output",
    "refuse_inside_store",
    "remove_path",
    "wrote_file",
]

#: Vector files socmap reads through GDAL (pyogrio): profile points and stratum polygons.
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb")
#: Raster files socmap takes as a stratum map (besides a cube band).
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img")


def remove_path(path: Path) -> None:
    """Delete a file or a directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_replaceable(
    dest: str | os.PathLike[str], what: str, is_ours: Callable[[Path], bool], overwrite: bool
) -> None:
    """Refuse to replace ``dest`` unless asked to and it is socmap's own output.

    ``--overwrite`` must never delete a user's folder: an existing ``dest`` is replaced only
    when ``overwrite`` is true **and** ``is_ours(dest)`` recognises it as a ``what`` socmap
    wrote (an empty folder counts as nothing to lose).

    Raises
    ------
    OutputExists
        ``dest`` exists and either ``overwrite`` is false or it is not socmap's output.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "notes.txt").write_text("mine")
    4
    >>> check_replaceable(d, "cube", lambda p: False, overwrite=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    socmap.errors.OutputExists: ...is not a socmap cube...
    """
    dest = Path(dest)
    if not (dest.exists() or dest.is_symlink()):
        return
    empty = dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir())
    if not overwrite and not empty and not is_ours(dest):
        # recommending --overwrite here would only lead to the refusal below
        raise OutputExists(
            f"output {str(dest)!r} already exists and is not a socmap {what}; choose another "
            "path (--overwrite replaces only socmap's own outputs)"
        )
    if not overwrite and not empty:
        raise OutputExists(
            f"output {str(dest)!r} already exists; pass --overwrite (Python: overwrite=True) "
            "to replace it, or choose another path"
        )
    if not empty and not is_ours(dest):
        raise OutputExists(
            f"output {str(dest)!r} exists and is not a socmap {what}, so socmap will not "
            "replace it (not even with --overwrite); choose another path, or move it away "
            "yourself"
        )


def refuse_input_as_output(
    dest: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None],
    flag: str = "--out",
    *,
    replaces: bool = True,
) -> None:
    """Refuse an output that is one of the command's inputs, holds one, or lies inside one.

    ``replaces=False`` says the output is a folder the command only adds its own files to
    (``profiles qc``, ``cv``): one that holds an input is then fine.

    Writing there would replace the input with the result (a command's output is written
    whole, then renamed over whatever stood there), or put files inside an input folder (a
    cube, a bundle) that then no longer reads as one.

    Raises
    ------
    ConfigError
        ``dest`` is an existing input, an input lies inside ``dest``, or ``dest`` lies inside
        an input folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "cores.csv").write_text("site_id")
    7
    >>> refuse_input_as_output(d / "cores.csv", [d / "cores.csv"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    socmap.errors.ConfigError: --out '...cores.csv' is the input '...cores.csv'...
    >>> refuse_input_as_output(d / "out.csv", [d / "cores.csv"])  # a sibling is fine
    """
    from socmap.errors import ConfigError

    out = Path(dest)
    target = out.resolve()
    for given in inputs:
        if given is None or not Path(given).exists():
            continue
        source = Path(given).resolve()
        if source == target and not replaces:
            raise ConfigError(
                f"{flag} {str(out)!r} is the input {str(given)!r}; writing there would put the "
                "output's files inside the input; choose another output folder"
            )
        if source == target:
            raise ConfigError(
                f"{flag} {str(out)!r} is the input {str(given)!r}; writing there would replace "
                "the input with the result; choose another output path"
            )
        if replaces and target in source.parents:
            raise ConfigError(
                f"{flag} {str(out)!r} holds the input {str(given)!r}; writing there would "
                "replace the input; choose an output path outside it"
            )
        if source.is_dir() and source in target.parents:
            raise ConfigError(
                f"{flag} {str(out)!r} lies inside the input {str(given)!r}; writing there "
                "would change the input; choose an output path outside it"
            )


def refuse_file_in_the_way(
    dest: str | os.PathLike[str], what: str = "--out", *, folder: bool = True
) -> None:
    """Refuse an output whose nearest existing path is a file where a folder must be.

    ``folder=True``: ``dest`` is a folder the command creates, so ``dest`` itself must not be
    a file either; ``folder=False``: ``dest`` is a file (which may be replaced), and only the
    folders above it are checked. A file there would fail only at the write, after the work.

    Raises
    ------
    ConfigError
        A file stands where a folder is needed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "notes.txt").write_text("mine")
    4
    >>> refuse_file_in_the_way(d / "notes.txt" / "t.csv", "output", folder=False)
    Traceback (most recent call last):
    ...
    socmap.errors.ConfigError: output '...t.csv' cannot be written: '...notes.txt' is a file, not a folder; choose another path
    >>> refuse_file_in_the_way(d / "notes.txt", "output", folder=False)  # replaced: fine
    """  # noqa: E501
    from socmap.errors import ConfigError

    out = Path(dest)
    above = (out, *out.parents) if folder else tuple(out.parents)
    taken = next((p for p in above if p.exists() or p.is_symlink()), None)
    if taken is not None and not taken.is_dir():
        raise ConfigError(
            f"{what} {str(out)!r} cannot be {'a folder' if folder else 'written'}: "
            f"{str(taken)!r} is a file, not a folder; choose another path"
        )


#: Files that mark a folder as one of socmap's stores, which no other output may go into
#: (a Zarr store with foreign files warns on every read; a bundle is replaced whole).
STORE_MARKS = {"zarr.json": "a Zarr store", "model.json": "a model bundle"}


def refuse_inside_store(
    dest: str | os.PathLike[str],
    flag: str = "--out",
    marks: dict[str, str] | None = None,
) -> None:
    """Refuse an output that is, or lies inside, one of socmap's stores (:data:`STORE_MARKS`).

    ``marks`` replaces the marker files (name -> what it marks).

    Raises
    ------
    ConfigError
        ``dest`` or a folder above it holds a marker file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "zarr.json").write_text("{}")
    2
    >>> refuse_inside_store(d / "qc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    socmap.errors.ConfigError: --out '...qc' is or lies inside '...', which is a Zarr store...
    """
    from socmap.errors import ConfigError

    out = Path(dest)
    marks = STORE_MARKS if marks is None else marks
    for folder in (out, *out.parents):
        held = next((m for m in marks if (folder / m).is_file()), None)
        if held is not None:
            raise ConfigError(
                f"{flag} {str(out)!r} is or lies inside {str(folder)!r}, which is "
                f"{marks[held]} ({held}); writing there would change it; choose another path"
            )


#: Hidden file in an output folder listing the files socmap wrote there, with their SHA-256.
OUTPUT_LEDGER = ".socmap-outputs.json"


def file_sha256(path: Path, *, block_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in blocks (memory does not grow with the file).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     p = Path(tmp) / "x.bin"
    ...     _ = p.write_bytes(b"abc")
    ...     file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(block_size):
            h.update(block)
    return h.hexdigest()


def _ledger(folder: Path) -> dict[str, str]:
    try:
        doc = json.loads((folder / OUTPUT_LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def wrote_file(path: str | os.PathLike[str]) -> bool:
    """Whether socmap wrote ``path`` into its folder and nobody changed it since.

    The folder's :data:`OUTPUT_LEDGER` must list the file with its current SHA-256, so a
    user's file of the same name, or socmap's file edited by hand, is not socmap's to replace.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "design.csv").write_text("my notes")
    >>> wrote_file(d / "design.csv")
    False
    >>> record_output(d / "design.csv")
    >>> wrote_file(d / "design.csv")
    True
    """
    p = Path(path)
    recorded = _ledger(p.parent).get(p.name)
    return recorded is not None and p.is_file() and recorded == file_sha256(p)


def record_output(path: str | os.PathLike[str]) -> None:
    """Add a file socmap has just written to its folder's :data:`OUTPUT_LEDGER`."""
    p = Path(path)
    ledger = _ledger(p.parent)
    ledger[p.name] = file_sha256(p)
    tmp = p.parent / f".tmp-{uuid.uuid4().hex[:8]}-{OUTPUT_LEDGER}"
    tmp.write_text(json.dumps(ledger, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(p.parent / OUTPUT_LEDGER)


def refuse_foreign_files(out: Path, files: Iterable[str], flag: str = "--out") -> None:
    """Refuse an output folder holding a file of a name socmap writes there that is not its own.

    Raises
    ------
    OutputExists
        ``out / name`` exists and :func:`wrote_file` does not recognise it.
    """
    for name in files:
        path = out / name
        if (path.exists() or path.is_symlink()) and not wrote_file(path):
            raise OutputExists(
                f"{flag} folder {str(out)!r} already holds {name!r}, which socmap did not write "
                "there (or which was changed since), so socmap will not replace it; move it "
                f"away or choose another {flag} folder"
            )


def check_out_folder(
    dest: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    flag: str = "--out",
    files: Iterable[str] = (),
) -> Path:
    """Refuse, before any work, an output folder that cannot be one or would touch an input.

    The command adds its files to the folder (or, when it does not exist yet, the nearest
    path above it that does), which must be a folder, not a file, and neither an input folder
    nor inside one (see :func:`refuse_input_as_output`), nor inside a store of socmap's
    (:func:`refuse_inside_store`); nor may the ``files`` it writes there be inputs, nor
    files of those names that socmap did not write (:func:`refuse_foreign_files`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "notes.txt").write_text("mine")
    4
    >>> check_out_folder(d / "notes.txt" / "cv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    socmap.errors.ConfigError: --out '...cv' cannot be a folder: '...notes.txt' is a file...
    """
    out = Path(dest)
    refuse_file_in_the_way(out, flag)
    inputs = list(inputs)
    refuse_input_as_output(out, inputs, flag, replaces=False)
    refuse_inside_store(out, flag)
    for name in files:  # the files it writes there must not be inputs either
        refuse_input_as_output(out / name, inputs, f"{flag} (its {name})")
    refuse_foreign_files(out, files, flag)
    return out


def is_socmap_model_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a model folder socmap wrote (a ``model.json`` with a socmap format).

    Map bundles and spectral CNNs both qualify; they are the only folders a model save may
    replace.

    Examples
    --------
    >>> import tempfile
    >>> is_socmap_model_dir(tempfile.mkdtemp())
    False
    """
    import json

    try:
        doc = json.loads((Path(path) / "model.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and str(doc.get("format", "")).startswith("socmap-")


def duplicated_header(path: str | os.PathLike[str], **read_csv: object) -> list[str]:
    r"""Column names a CSV's header repeats (pandas would silently rename them ``x.1``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("id,480,480,482\na,1,2,3\n")
    >>> duplicated_header(p)
    ['480']
    """
    import pandas as pd

    first = pd.read_csv(path, header=None, nrows=1, dtype=str, **read_csv)  # type: ignore[call-overload]
    names = [str(v) for v in first.iloc[0].tolist()] if len(first) else []
    return sorted({n for n in names if names.count(n) > 1})


def read_failure(exc: BaseException) -> str:
    r"""One short line saying why a table could not be read, for an error message.

    Examples
    --------
    >>> read_failure(ValueError("No columns to parse\n  from file"))
    'ValueError: No columns to parse from file'
    """
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def publish_path(src: Path, dest: Path) -> None:
    """Rename a finished ``src`` to ``dest``, replacing an existing ``dest``.

    The old ``dest`` is moved aside first, so the swap is two renames, not a long delete;
    ``src`` and ``dest`` must be on the same filesystem (siblings are). A file never
    replaces a folder, nor a folder a file: that ``dest`` is not an earlier output of the
    same writer, and replacing it could delete a user's files.

    Raises
    ------
    OutputExists
        If ``dest`` is a folder and ``src`` a file, or the other way round.
    """
    if dest.exists() and dest.is_dir() != src.is_dir():
        have, want = ("folder", "file") if dest.is_dir() else ("file", "folder")
        raise OutputExists(
            f"{str(dest)!r} is a {have}; socmap writes a {want} there and will not replace a "
            f"{have} with it (nothing was changed); give another path for the {want}"
        )
    if dest.exists():
        old = dest.with_name(f".old-{uuid.uuid4().hex[:8]}-{dest.name}")
        dest.rename(old)
        src.rename(dest)
        remove_path(old)
    else:
        src.rename(dest)


@contextlib.contextmanager
def atomic_path(
    dest: str | os.PathLike[str], *, overwrite: bool = True, record: bool = False
) -> Iterator[Path]:
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
        if record:
            record_output(dest)
    finally:
        if tmp.exists():
            remove_path(tmp)

"""Read and write wide spectra tables in row batches, so a large library costs one array.

A 100,000 x 1,700 library is 1.3 GB as the float64 :class:`~socmap.spectra.Spectra` holds.
Reading it whole through pandas costs about three times that (the parsed frame, its
consolidated block, the reordered copy); here the band columns go batch by batch into one
array allocated up front, so the peak is that array plus one batch. CSV and Parquet alike.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from socmap._io import atomic_path
from socmap.errors import SpectraError

__all__ = [
    "BATCH_ROWS",
    "compact_rows",
    "finite_max",
    "read_bands",
    "table_columns",
    "write_bands",
]

#: Rows per batch: 8,192 x 1,700 float64 is 110 MB, small next to a library it streams.
BATCH_ROWS = 8192
#: Bytes of one Parquet read (a slice of columns of one row group).
READ_BYTES = 64 << 20
_OPENERS: dict[str, Callable[..., Any]] = {
    ".gz": gzip.open,
    ".bz2": bz2.open,
    ".xz": lzma.open,
}


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def table_columns(path: Path) -> list[str]:
    """Column names of a CSV (any compression pandas reads) or Parquet table.

    Raises
    ------
    SpectraError
        The file is empty or is not a table of its kind (e.g. an Excel workbook).
    """
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq  # type: ignore[import-untyped]

            return [str(c) for c in pq.read_schema(path).names]
        return [str(c) for c in pd.read_csv(path, nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise SpectraError(
            f"table {str(path)!r} is empty (no header row); give a table with a header and "
            "one row per spectrum"
        ) from None
    except (ValueError, OSError) as exc:  # not CSV text, or not Parquet: say which and why
        kind = "Parquet" if _is_parquet(path) else "CSV"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SpectraError(
            f"table {str(path)!r} cannot be read as {kind} ({reason}); save it as CSV (UTF-8) "
            "or Parquet with a .csv or .parquet name"
        ) from None


def _csv_row_bound(path: Path) -> int | None:
    """Return an upper bound on a CSV's rows (its line count); None for unknown compression."""
    suffix = path.suffix.lower()
    opener = _OPENERS.get(suffix, open if suffix not in (".zip", ".zst", ".tar") else None)
    if opener is None:
        return None
    lines, last = 0, b"\n"
    with opener(path, "rb") as fh:
        while block := fh.read(1 << 24):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def _float_column(column: Any, name: str, path: Path) -> np.ndarray:
    """One band column as float64; a value that is not a number is named with its column."""
    column = pd.Series(column) if not isinstance(column, pd.Series) else column
    try:
        return column.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
        raise SpectraError(
            f"band column {name!r} of {str(path)!r} holds {column[bad].iloc[0]!r}, which is not "
            "a number; fix the value or leave the cell empty"
        ) from None


def _read_parquet(
    path: Path, bands: Sequence[str], others: Sequence[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Read row group by row group, a slice of columns at a time.

    Arrow's batch reader decodes whole row groups of every requested column and its memory
    pool keeps what it freed, which cost as much again as the array; a slice of columns of
    one row group is at most :data:`READ_BYTES`.
    """
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    meta = handle.metadata
    values = np.empty((meta.num_rows, len(bands)), dtype=np.float64)
    start = 0
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        step = max(1, READ_BYTES // max(8 * rows, 1))
        for first in range(0, len(bands), step):
            names = list(bands[first : first + step])
            part = handle.read_row_group(group, columns=names)
            for j, name in enumerate(names):
                column = part.column(name).to_numpy()
                values[start : start + rows, first + j] = _float_column(column, name, path)
        start += rows
    if others:
        frame = handle.read(columns=list(others)).to_pandas()[list(others)]
    else:
        frame = pd.DataFrame(index=pd.RangeIndex(meta.num_rows))
    return values, frame


def _csv_batches(path: Path, bands: Sequence[str], others: Sequence[str]) -> Iterator[pd.DataFrame]:
    """Yield the table's rows in batches of at most :data:`BATCH_ROWS` (frames)."""
    dtypes: dict[str, Any] = dict.fromkeys(bands, np.float64)
    try:
        with pd.read_csv(
            path, usecols=[*others, *bands], dtype=dtypes, chunksize=BATCH_ROWS
        ) as reader:
            yield from reader
    except ValueError:  # a band column that is not numeric: find it and name it
        with pd.read_csv(path, usecols=[*others, *bands], chunksize=BATCH_ROWS) as reader:
            for chunk in reader:
                for name in bands:
                    _float_column(chunk[name], name, path)
        raise


def read_bands(
    path: Path, bands: Sequence[str], others: Sequence[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Read ``bands`` as one float64 array (in the order given) and ``others`` as a frame.

    The array is allocated once (Parquet: its row count; CSV: its line count) and filled
    in parts (Parquet: column slices of each row group; CSV: batches of rows); a CSV's other
    columns are concatenated from the batches, or reread whole if the batches inferred
    different types for them.

    Raises
    ------
    SpectraError
        A band column holds a value that is not a number.
    """
    if _is_parquet(path):
        return _read_parquet(path, bands, others)
    bound = _csv_row_bound(path)
    values = np.empty((bound or 0, len(bands)), dtype=np.float64)
    parts: list[np.ndarray] = []  # only when the row count is unknown
    metas: list[pd.DataFrame] = []
    rows = 0
    for frame in _csv_batches(path, bands, others):
        block = frame[list(bands)].to_numpy(dtype=np.float64)
        if bound is None:
            parts.append(block)
        else:
            values[rows : rows + len(block)] = block
        rows += len(block)
        metas.append(frame[list(others)])
    if bound is None:
        values = np.concatenate(parts) if parts else values
    return values[:rows], _concat_meta(path, metas, others)


def _concat_meta(path: Path, metas: list[pd.DataFrame], others: Sequence[str]) -> pd.DataFrame:
    if not metas:
        return pd.DataFrame(columns=list(others))
    if len({tuple(m.dtypes) for m in metas}) > 1:  # batches disagree: infer over the whole column
        return pd.read_csv(path, usecols=list(others))[list(others)]
    return pd.concat(metas, ignore_index=True)


def finite_max(values: np.ndarray) -> float:
    """Return the largest finite value (0 if none), without a masked copy of the array."""
    top = 0.0
    for start in range(0, len(values), BATCH_ROWS):
        block = values[start : start + BATCH_ROWS]
        finite = block[np.isfinite(block)]
        top = max(top, float(finite.max())) if finite.size else top
    return top


def compact_rows(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``values[keep]`` without a second copy of the array: rows move up in place, in batches.

    Returns a view of the first ``keep.sum()`` rows of ``values`` (which it overwrites).
    """
    if keep.all():
        return values
    write = 0
    for start in range(0, len(values), BATCH_ROWS):
        rows = start + np.flatnonzero(keep[start : start + BATCH_ROWS])
        values[write : write + len(rows)] = values[rows]  # rows >= write: the source is read first
        write += len(rows)
    return values[:write]


def write_bands(meta: pd.DataFrame, values: np.ndarray, bands: Sequence[str], path: Path) -> None:
    """Write ``meta`` then one column per band, atomically, batch by batch (CSV or Parquet)."""
    meta = meta.reset_index(drop=True)
    with atomic_path(path) as tmp:
        writer: Any = None
        if _is_parquet(path):
            import pyarrow as pa
            import pyarrow.parquet as pq

            # the schema from the whole (small) meta: a batch of all-None would say "null"
            schema = pa.Schema.from_pandas(meta, preserve_index=False)
            for band in bands:
                schema = schema.append(pa.field(band, pa.float64()))
            writer = pq.ParquetWriter(tmp, schema)
        try:
            for start in range(0, max(len(values), 1), BATCH_ROWS):
                stop = start + BATCH_ROWS
                part = pd.DataFrame(values[start:stop], columns=list(bands))
                frame = pd.concat([meta.iloc[start:stop].reset_index(drop=True), part], axis=1)
                if writer is not None:
                    writer.write_table(
                        pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
                    )
                else:
                    frame.to_csv(tmp, mode="a", header=start == 0, index=False)
        finally:
            if writer is not None:
                writer.close()

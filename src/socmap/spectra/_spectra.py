"""The spectra contract, and reading spectra tables.

A :class:`Spectra` holds ``n`` spectra on one spectral axis: ``values (n, p)`` (float64, finite),
``axis (p,)`` strictly increasing, in ``nm`` (wavelength) or ``cm-1`` (wavenumber; MIR tables
usually list wavenumbers decreasing, they are stored increasing), the ``quantity``
(``reflectance`` as a fraction in (0, 1], or ``absorbance`` log10(1/R)), and ``meta``, one row
per spectrum (``sample_id``, and targets such as ``soc_g_kg``). ``notes`` lists every
conversion applied on the way in, so a user is told what was done to the data.

A spectra table has one row per sample and one column per wavelength, named by a common
prefix and the wavelength (``wl_350``, ``nm_1100.5``, ``wn_3799``) or by the bare number.
:func:`read_spectra` finds those columns, checks them and keeps the other columns as meta.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from socmap._io import duplicated_header
from socmap.errors import BandMismatch, InputNotFound, SpectraError
from socmap.spectra._tables import (
    compact_rows,
    finite_max,
    read_bands,
    table_columns,
    write_bands,
)

__all__ = [
    "AxisUnit",
    "Quantity",
    "Spectra",
    "check_same_axis",
    "concat",
    "read_spectra",
    "spectral_columns",
]

AxisUnit = Literal["nm", "cm-1"]
Quantity = Literal["reflectance", "absorbance"]
NanPolicy = Literal["error", "interpolate", "drop"]

_COLUMN = re.compile(r"^(?P<prefix>[A-Za-z_\-]*?)(?P<value>\d+(?:\.\d+)?)$")
#: Fewest band columns a spectra table may have.
MIN_BANDS = 10


@dataclass(frozen=True, eq=False)
class Spectra:
    """Spectra of ``n`` samples on one increasing spectral axis.

    Parameters
    ----------
    values
        ``(n, p)`` array, finite.
    axis
        ``(p,)`` wavelengths (``nm``) or wavenumbers (``cm-1``), strictly increasing.
    unit
        ``"nm"`` or ``"cm-1"``.
    quantity
        ``"reflectance"`` (fraction, in (0, ``max_reflectance``]) or ``"absorbance"``.
    meta
        One row per spectrum; gets a ``sample_id`` column (``0 .. n-1``) if it has none.
    notes
        Conversions applied so far, in order.
    max_reflectance
        Upper bound accepted for reflectance: 1 by default. Diffuse-reflectance MIR measured
        against a reference can exceed 1; raise the bound knowingly for such data.

    Examples
    --------
    >>> s = Spectra(np.full((2, 3), 0.5), np.array([400.0, 500.0, 600.0]), "nm", "reflectance")
    >>> s.n_samples, s.n_bands, list(s.meta["sample_id"])
    (2, 3, [0, 1])
    """

    values: np.ndarray
    axis: np.ndarray
    unit: AxisUnit
    quantity: Quantity
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: tuple[str, ...] = ()
    max_reflectance: float = 1.0

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        axis = np.asarray(self.axis, dtype=np.float64)
        if values.ndim != 2 or axis.ndim != 1 or values.shape[1] != axis.size:
            raise SpectraError(
                f"values {values.shape!r} and axis {axis.shape!r} do not fit; pass values of "
                "shape (n_samples, n_bands) and one axis value per band"
            )
        if self.unit not in ("nm", "cm-1"):
            raise SpectraError(f"unit {self.unit!r} must be 'nm' or 'cm-1'")
        if self.quantity not in ("reflectance", "absorbance"):
            raise SpectraError(f"quantity {self.quantity!r} must be 'reflectance' or 'absorbance'")
        if axis.size < 2 or not np.all(np.diff(axis) > 0):
            raise SpectraError(
                f"the spectral axis must be strictly increasing with >= 2 bands, got "
                f"{_describe_axis(axis)}; sort the columns and remove duplicated wavelengths"
            )
        meta = self.meta.reset_index(drop=True) if len(self.meta.columns) else pd.DataFrame()
        if len(meta.columns) and len(meta) != len(values):
            raise SpectraError(
                f"meta has {len(meta)!r} rows for {len(values)!r} spectra; pass one row per "
                "spectrum"
            )
        if "sample_id" not in meta.columns:
            meta = meta.copy() if len(meta.columns) else pd.DataFrame(index=range(len(values)))
            meta.insert(0, "sample_id", np.arange(len(values)))
        bad = ~np.isfinite(values)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise SpectraError(
                f"{int(bad.any(axis=1).sum())!r} spectra hold NaN or infinite values (first: "
                f"sample {_label(meta, row)!r} at {axis[col]:g} {self.unit}); fill or drop "
                "those values in the table, or pass --nan interpolate or --nan drop (Python: "
                "read_spectra(..., nan='interpolate' or 'drop'))"
            )
        if self.quantity == "reflectance":
            _check_reflectance(values, axis, self.unit, meta, self.max_reflectance)
        values.setflags(write=False)
        axis.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "axis", axis)
        object.__setattr__(self, "meta", meta)
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def n_samples(self) -> int:
        """Number of spectra."""
        return int(self.values.shape[0])

    @property
    def n_bands(self) -> int:
        """Number of bands."""
        return int(self.values.shape[1])

    def replace(
        self,
        values: np.ndarray,
        axis: np.ndarray | None = None,
        *,
        quantity: Quantity | None = None,
        note: str | None = None,
    ) -> Spectra:
        """Return a new :class:`Spectra` with other values (and axis or quantity), same meta.

        ``note`` is appended to :attr:`notes`.
        """
        return Spectra(
            values,
            self.axis if axis is None else axis,
            self.unit,
            quantity or self.quantity,
            self.meta,
            self.notes + ((note,) if note else ()),
            self.max_reflectance,
        )

    def subset(self, rows: npt.ArrayLike) -> Spectra:
        """Return the spectra at ``rows`` (integer positions or a boolean mask), with meta."""
        idx = np.arange(self.n_samples)[np.asarray(rows)]
        return Spectra(
            self.values[idx],
            self.axis,
            self.unit,
            self.quantity,
            self.meta.iloc[idx].reset_index(drop=True),
            self.notes,
            self.max_reflectance,
        )

    def target(self, column: str = "soc_g_kg") -> np.ndarray:
        """Return a meta column as float64 (e.g. the SOC target in g/kg)."""
        if column not in self.meta.columns:
            raise SpectraError(f"no target column {column!r}; meta has {list(self.meta.columns)!r}")
        return self.meta[column].to_numpy(dtype=np.float64, na_value=np.nan)

    def band_columns(self, prefix: str | None = None) -> list[str]:
        """One column name per band: ``wl_`` (nm) or ``wn_`` (cm-1) and the axis value."""
        pre = prefix if prefix is not None else ("wl_" if self.unit == "nm" else "wn_")
        return [f"{pre}{a:g}" for a in self.axis]

    def to_frame(self, prefix: str | None = None) -> pd.DataFrame:
        """Meta columns followed by one column per band (see :meth:`band_columns`)."""
        bands = pd.DataFrame(self.values, columns=self.band_columns(prefix))
        return pd.concat([self.meta.reset_index(drop=True), bands], axis=1)

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_frame`'s table (CSV or Parquet) atomically, in row batches.

        A large library is never copied whole into a frame, so writing it costs one batch
        beyond the array itself.
        """
        path = Path(path)
        write_bands(self.meta, self.values, self.band_columns(), path)
        return path


def _label(meta: pd.DataFrame, row: int) -> object:
    """Return the sample id of ``row`` as a plain Python value (for messages)."""
    value = meta["sample_id"].iloc[row]
    return value.item() if isinstance(value, np.generic) else value


def _describe_axis(axis: np.ndarray) -> str:
    if axis.size == 0:
        return "no bands"
    return f"{axis.size} bands from {axis[0]:g} to {axis[-1]:g}"


def _check_reflectance(
    values: np.ndarray, axis: np.ndarray, unit: str, meta: pd.DataFrame, upper: float
) -> None:
    bad = (values <= 0) | (values > upper)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise SpectraError(
            f"reflectance must be in (0, {upper:g}]: sample {_label(meta, row)!r} has "
            f"{values[row, col]:g} at {axis[col]:g} {unit} ({int(bad.any(axis=1).sum())!r} spectra "
            "affected); if these are absorbances say so (CLI: --quantity absorbance; Python: "
            "quantity='absorbance'); percent reflectance is divided by 100 when the largest "
            "value is above 1.5 (Python: percent=True to force it); otherwise crop the table "
            "to the bands where the instrument is valid"
        )


def spectral_columns(columns: Sequence[str], prefix: str | None = None) -> tuple[list[str], str]:
    """Find the wavelength columns of a table: a shared prefix followed by a number.

    Parameters
    ----------
    columns
        Column names.
    prefix
        The prefix to use (``""`` for bare numbers); by default the most common prefix of the
        numeric-suffixed columns.

    Returns
    -------
    (list of str, str)
        The spectral columns in table order, and their prefix.

    Examples
    --------
    >>> spectral_columns(["id", "SOC", *[f"wl_{w}" for w in range(400, 420)], "pH_1"])[1]
    'wl_'
    """
    found: dict[str, list[str]] = {}
    for c in columns:
        m = _COLUMN.match(str(c))
        if m:
            found.setdefault(m["prefix"], []).append(str(c))
    if prefix is None:
        prefix = max(found, key=lambda k: len(found[k]), default="")
    cols = found.get(prefix, [])
    if len(cols) < MIN_BANDS:
        names = [str(c) for c in columns]
        glued = next((d for d in (";", "\t", "|") if any(n.count(d) > 2 for n in names)), None)
        hint = (  # once "found 0 spectral columns" for a table written with semicolons
            f"; the header reads as one column holding {glued!r}: save the table "
            "comma-separated (in a spreadsheet: CSV, comma)"
            if glued
            else ""
        )
        raise SpectraError(
            f"found {len(cols)!r} spectral columns with prefix {prefix!r} (need >= {MIN_BANDS}); "
            "name the band columns like 'wl_350' or '350', one per wavelength (Python: "
            f"prefix= picks the prefix){hint}"
        )
    return cols, prefix


def read_spectra(
    source: str | Path | pd.DataFrame,
    *,
    prefix: str | None = None,
    unit: AxisUnit | None = None,
    quantity: Quantity = "reflectance",
    percent: bool | Literal["auto"] = "auto",
    crop: tuple[float, float] | None = None,
    nan: NanPolicy = "error",
    max_reflectance: float = 1.0,
    id_column: str | None = None,
) -> Spectra:
    """Read a spectra table (CSV, gzipped CSV or Parquet, or a DataFrame).

    Parameters
    ----------
    source
        The table: one row per sample, one column per band (see :func:`spectral_columns`).
    prefix
        Prefix of the band columns (default: found).
    unit
        ``"nm"`` or ``"cm-1"``; by default ``cm-1`` when the prefix starts with ``wn`` or the
        axis reaches beyond 3000 (no vis-NIR instrument does), else ``nm``.
    quantity
        What the values are: ``"reflectance"`` or ``"absorbance"`` (log10(1/R)).
    percent
        Reflectance in percent: ``True``, ``False`` or ``"auto"`` (percent when the largest
        value exceeds 1.5, i.e. beyond any fraction); converted to a fraction and noted.
    crop
        Keep only bands with ``lo <= axis <= hi``.
    nan
        ``"error"`` (default), ``"interpolate"`` (fill gaps linearly along the axis; spectra
        that are all NaN are refused) or ``"drop"`` (leave out spectra with NaN; counted in
        :attr:`Spectra.notes` and ``meta`` keeps the surviving rows' ``sample_id``).
    max_reflectance
        Largest reflectance accepted (see :class:`Spectra`).
    id_column
        Column to use as ``sample_id`` (default: a ``sample_id`` column if any, else the row
        number).

    Returns
    -------
    Spectra

    Raises
    ------
    InputNotFound
        The file does not exist.
    SpectraError
        No or too few spectral columns, duplicated wavelengths, NaN (with ``nan="error"``),
        reflectance outside (0, ``max_reflectance``] after the percent conversion.
    """
    if isinstance(source, pd.DataFrame):
        frame = source.reset_index(drop=True)
        columns = [str(c) for c in frame.columns]
    else:
        path = Path(source)
        if not path.exists():
            raise InputNotFound(f"spectra table {str(path)!r} does not exist; check the path")
        if path.suffix.lower() != ".parquet":
            try:
                repeated = duplicated_header(path)
            except UnicodeDecodeError as exc:  # once an internal error (UTF-16, Latin-1)
                raise SpectraError(
                    f"spectra table {str(path)!r} is not UTF-8 text ({exc.reason} at byte "
                    f"{exc.start}); re-save it as UTF-8 CSV (or Parquet)"
                ) from None
            except pd.errors.EmptyDataError:  # once an internal error too
                raise SpectraError(
                    f"spectra table {str(path)!r} is empty (no header row); give a table with a "
                    "header and one row per spectrum"
                ) from None
            if repeated:
                raise SpectraError(
                    f"spectra table {str(path)!r} repeats the column(s) {repeated!r}; remove the "
                    "duplicated band columns (pandas would read the second one as e.g. "
                    f"'{repeated[0]}.1')"
                )
        columns = table_columns(path)
    cols, prefix = spectral_columns(columns, prefix)
    axis = np.array([float(c[len(prefix) :]) for c in cols])
    uniq, counts = np.unique(axis, return_counts=True)
    if (counts > 1).any():
        raise SpectraError(
            f"wavelength {float(uniq[counts > 1][0])!r} appears in more than one column; "
            "remove duplicated band columns"
        )
    if unit is None:
        unit = "cm-1" if prefix.lower().startswith("wn") or axis.max() > 3000 else "nm"
    order = np.argsort(axis)
    axis = axis[order]
    bands = [cols[i] for i in order]
    others = [c for c in columns if c not in set(cols)]
    if isinstance(source, pd.DataFrame):
        values, meta = frame[bands].to_numpy(dtype=np.float64, copy=True), frame[others]
    else:
        values, meta = read_bands(path, bands, others)
    if id_column is not None:
        if id_column not in meta.columns:
            raise SpectraError(f"id_column {id_column!r} is not a column of the table")
        meta = meta.rename(columns={id_column: "sample_id"})
    if "sample_id" not in meta.columns:  # row numbers, fixed before any row is dropped
        meta.insert(0, "sample_id", np.arange(len(meta)))
    twice = meta["sample_id"][meta["sample_id"].duplicated()]
    if len(twice):
        raise SpectraError(
            f"sample_id {twice.iloc[0]!r} names more than one spectrum ({len(twice)} "
            "repeated ids); give every spectrum its own sample_id, so the chosen samples and "
            "the predictions can be told apart"
        )
    notes: list[str] = []
    if crop is not None:
        lo, hi = crop
        keep = (axis >= lo) & (axis <= hi)
        if keep.sum() < 2:
            raise SpectraError(
                f"crop {crop!r} keeps {int(keep.sum())!r} bands of the {_describe_axis(axis)} "
                f"{unit} axis; pass a range inside it"
            )
        values, axis = values[:, keep], axis[keep]
        notes.append(f"cropped to {axis[0]:g}-{axis[-1]:g} {unit} ({int(keep.sum())} bands)")
    values, meta = _handle_nan(values, axis, meta, nan, notes)
    if quantity == "reflectance":
        top = finite_max(values)
        if percent is True or (percent == "auto" and top > 1.5):
            values /= 100.0  # values is this function's own array
            notes.append(f"reflectance read as percent (largest value {top:g}); divided by 100")
    return Spectra(values, axis, unit, quantity, meta, tuple(notes), max_reflectance)


def _handle_nan(
    values: np.ndarray, axis: np.ndarray, meta: pd.DataFrame, policy: str, notes: list[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    bad = ~np.isfinite(values)
    if not bad.any() or policy == "error":
        return values, meta  # Spectra raises on what is left
    rows = bad.any(axis=1)
    if policy == "drop":
        notes.append(f"dropped {int(rows.sum())} spectra with NaN values (nan='drop')")
        return compact_rows(values, ~rows), meta[~rows].reset_index(drop=True)
    if policy != "interpolate":
        raise SpectraError(f"nan {policy!r} must be 'error', 'interpolate' or 'drop'")
    empty = bad.all(axis=1)
    if empty.any():
        raise SpectraError(
            f"{int(empty.sum())!r} spectra are all NaN (first row {int(np.argmax(empty))!r}); "
            "nothing to interpolate: leave them out with --nan drop (Python: nan='drop') or "
            "remove those rows"
        )
    for r in np.flatnonzero(rows):  # only the spectra with gaps, in place (read_spectra's array)
        ok = ~bad[r]
        values[r, ~ok] = np.interp(axis[~ok], axis[ok], values[r, ok])
    notes.append(
        f"interpolated {int(bad.sum())} NaN values in {int(rows.sum())} spectra along the axis"
    )
    return values, meta


def check_same_axis(a: Spectra, b: Spectra, what: str = "spectra") -> None:
    """Raise :class:`~socmap.errors.BandMismatch` unless ``a`` and ``b`` share their axis.

    The message gives both axes and the fix (resample both onto one grid).
    """
    if a.unit != b.unit or a.axis.shape != b.axis.shape or not np.allclose(a.axis, b.axis):
        raise BandMismatch(
            f"{what}: axes differ ({_describe_axis(a.axis)} {a.unit} vs "
            f"{_describe_axis(b.axis)} {b.unit}); resample both onto one grid with "
            "socmap.spectra.resample(spectra, common_axis(a, b, step))"
        )


def concat(parts: Sequence[Spectra]) -> Spectra:
    """Stack spectra that share one axis (meta columns are unioned, missing ones NaN).

    Raises
    ------
    BandMismatch
        The parts are on different axes, units or quantities.
    """
    if not parts:
        raise SpectraError("nothing to concatenate; pass at least one Spectra")
    first = parts[0]
    if len(parts) == 1:  # immutable: no copy of a library that may be gigabytes
        return first
    for p in parts[1:]:
        check_same_axis(first, p, "concat")
        if p.quantity != first.quantity:
            raise BandMismatch(
                f"concat: {first.quantity!r} and {p.quantity!r} spectra; convert with "
                "to_absorbance() first"
            )
    return Spectra(
        np.vstack([p.values for p in parts]),
        first.axis,
        first.unit,
        first.quantity,
        pd.concat([p.meta for p in parts], ignore_index=True),
        tuple(dict.fromkeys(n for p in parts for n in p.notes)),
        max(p.max_reflectance for p in parts),
    )

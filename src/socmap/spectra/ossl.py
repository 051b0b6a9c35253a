"""Read the Open Soil Spectral Library (OSSL) table layout as a spectral library.

The OSSL (soilspectroscopy.org; database description in its manual, "OSSL database
description") ships its spectra and its laboratory data as separate tables joined by
``id.layer_uuid_txt``:

* vis-NIR spectra: ``scan_visnir.<nm>_ref``, reflectance as a fraction, 350-2500 nm;
* MIR spectra: ``scan_mir.<cm-1>_abs``, absorbance, 600-4000 cm-1;
* organic carbon in the soil-lab table, in weight percent: ``oc_usda.c729_w.pct`` (and, from
  other sources, ``oc_usda.c1059_w.pct`` or ``oc_iso.10694_w.pct``), converted here to
  ``soc_g_kg`` (% x 10).

Licences differ between the OSSL's source datasets, so ``dataset.code_ascii_txt`` and
``dataset.license.title_ascii_txt`` are kept in ``meta`` when the tables have them (filter
on them before training on a library you mean to use commercially).

Only the needed columns are read (Parquet and CSV alike), in row batches into the one float64
array the :class:`Spectra` keeps: a 100 000 x 1 701 library is 1.3 GB, and reading it peaks
at about that plus the interpreter (``docs/benchmarks/spectral_library.md``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from socmap.errors import InputNotFound, SpectraError
from socmap.spectra._spectra import MIN_BANDS, Spectra
from socmap.spectra._tables import compact_rows, finite_max, read_bands, table_columns

__all__ = ["OC_COLUMNS", "read_ossl"]

#: Organic-carbon columns of the OSSL soil-lab table (weight %), in order of preference.
OC_COLUMNS = ("oc_usda.c729_w.pct", "oc_usda.c1059_w.pct", "oc_iso.10694_w.pct")
_ID = "id.layer_uuid_txt"
_KEEP = ("dataset.code_ascii_txt", "dataset.license.title_ascii_txt")
_SCANS = {
    "visnir": (re.compile(r"^scan_visnir\.(\d+(?:\.\d+)?)_ref$"), "nm", "reflectance"),
    "mir": (re.compile(r"^scan_mir\.(\d+(?:\.\d+)?)_abs$"), "cm-1", "absorbance"),
}


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path, columns=columns)
    return pd.read_csv(path, usecols=columns)[columns]


def read_ossl(
    spectra: str | Path,
    soillab: str | Path,
    kind: Literal["visnir", "mir"] = "visnir",
    *,
    oc_column: str | None = None,
) -> Spectra:
    """Read an OSSL spectra table and its soil-lab table as one library with ``soc_g_kg``.

    Parameters
    ----------
    spectra
        The OSSL vis-NIR or MIR table (CSV or Parquet) with ``id.layer_uuid_txt``.
    soillab
        The OSSL soil-lab table with ``id.layer_uuid_txt`` and an organic-carbon column.
    kind
        ``"visnir"`` (``scan_visnir.*_ref``) or ``"mir"`` (``scan_mir.*_abs``).
    oc_column
        The organic-carbon column (weight %); default the first of :data:`OC_COLUMNS`
        present.

    Returns
    -------
    Spectra
        One row per scan with a carbon value and a complete spectrum; the scans left out
        (no carbon value, or a gap in the spectrum) are counted in :attr:`Spectra.notes`.

    Raises
    ------
    InputNotFound
        A table does not exist.
    SpectraError
        No scan columns of ``kind``, no id column, or no organic-carbon column.
    """
    if kind not in _SCANS:
        raise SpectraError(f"kind {kind!r} must be 'visnir' or 'mir'")
    pattern, unit, quantity = _SCANS[kind]
    paths = {"spectra": Path(spectra), "soil-lab": Path(soillab)}
    for what, path in paths.items():
        if not path.is_file():
            raise InputNotFound(f"OSSL {what} table {str(path)!r} does not exist; check the path")
    names = table_columns(paths["spectra"])
    scans = [(c, float(m.group(1))) for c in names if (m := pattern.match(c))]
    if not scans:
        other = next((k for k, (p, _, _) in _SCANS.items() if any(map(p.match, names))), None)
        hint = (
            f"it holds {other} scans: pass --kind {other} (Python: kind={other!r})"
            if other
            else "give the OSSL vis-NIR (scan_visnir.<nm>_ref) or MIR (scan_mir.<cm-1>_abs) table"
        )
        raise SpectraError(
            f"{str(paths['spectra'])!r} has no OSSL {kind} columns (scan_{kind}.<band>_"
            f"{'ref' if kind == 'visnir' else 'abs'}); {hint}"
        )
    if len(scans) < MIN_BANDS:
        raise SpectraError(
            f"{str(paths['spectra'])!r} has {len(scans)} OSSL {kind} band columns (need >= "
            f"{MIN_BANDS}); give the whole spectra table"
        )
    scans.sort(key=lambda cb: cb[1])
    lab_names = table_columns(paths["soil-lab"])
    for what, cols in (("spectra", names), ("soil-lab", lab_names)):
        if _ID not in cols:
            raise SpectraError(f"the OSSL {what} table has no {_ID!r} column to join on")
    oc = oc_column or next((c for c in OC_COLUMNS if c in lab_names), None)
    if oc is None or oc not in lab_names:
        raise SpectraError(
            f"the OSSL soil-lab table has no organic-carbon column ({oc_column or OC_COLUMNS!r}); "
            "name one with --oc-column (Python: oc_column=)"
        )
    keep = [c for c in _KEEP if c in names or c in lab_names]
    lab_cols = [_ID, oc, *[c for c in keep if c in lab_names and c not in names]]
    lab = _read(paths["soil-lab"], lab_cols)
    values, joined = read_bands(
        paths["spectra"], [c for c, _ in scans], [_ID, *[c for c in keep if c in names]]
    )
    # ids as text on both sides: a Parquet table may hold them as numbers, a CSV as text
    lab[_ID], joined[_ID] = lab[_ID].astype(str), joined[_ID].astype(str)
    for what, ids in (("soil-lab", lab[_ID]), ("spectra", joined[_ID])):
        repeated = ids[ids.duplicated()]
        if len(repeated):
            raise SpectraError(
                f"the OSSL {what} table lists {_ID} {repeated.iloc[0]!r} more than once "
                f"({len(repeated)} repeated rows): which carbon value belongs to which scan is "
                "ambiguous; keep one row per layer"
            )
    if not len(joined):
        raise SpectraError(
            f"the OSSL spectra table {str(paths['spectra'])!r} has no scans (a header only); "
            "give the table with its rows"
        )
    lab_ids = lab[_ID]
    lab = lab.set_index(_ID).reindex(joined[_ID])  # the scans' order; no lab row gives NaN
    for c in lab_cols[2:]:
        joined[c] = lab[c].to_numpy()
    carbon = pd.to_numeric(lab[oc], errors="coerce").to_numpy(dtype=np.float64)
    no_carbon = ~np.isfinite(carbon) | (carbon < 0)
    above = carbon > 100.0  # weight % cannot exceed 100: a unit or entry error
    gaps = ~np.isfinite(values).all(axis=1) & ~no_carbon & ~above
    ok = ~no_carbon & ~above & ~gaps
    if not ok.any():
        raise SpectraError(
            f"none of the {len(ok)} scans has both a complete spectrum and a carbon value in "
            f"{oc!r} (scan ids like {str(joined[_ID].iloc[0])!r}, soil-lab ids like "
            f"{str(lab_ids.iloc[0]) if len(lab_ids) else 'none'!r}); check that the two tables "
            "belong together and that the column holds numbers"
        )
    meta = pd.DataFrame(
        {"sample_id": joined[_ID].astype(str).to_numpy(), "soc_g_kg": carbon * 10.0}
    )
    for c in keep:
        meta[c] = joined[c].to_numpy()
    notes = [
        f"OSSL: {oc} (weight %) x 10 = soc_g_kg",
        f"OSSL: left out {int(no_carbon.sum())} scans without a carbon value, "
        f"{int(above.sum())} with carbon above 100 % and {int(gaps.sum())} with gaps in the "
        f"spectrum, of {len(joined)}",
    ]
    values = compact_rows(values, ok)
    top = finite_max(values) if quantity == "reflectance" else 0.0
    if top > 1.5:  # the OSSL documents fractions; a table in percent is converted, and said so
        values /= 100.0
        notes.append(f"OSSL: reflectance read as percent (largest value {top:g}); divided by 100")
    return Spectra(
        values,
        np.asarray([b for _, b in scans], dtype=np.float64),
        unit,  # type: ignore[arg-type]
        quantity,  # type: ignore[arg-type]
        meta=meta.loc[ok].reset_index(drop=True),
        notes=tuple(notes),
    )

"""The embedded spectral data: the NIRsoil library and the LimeSoDa spectral field sites.

Both ship in ``socmap/_data/spectra/`` with their licence notices (``NOTICE.md``):

- **NIRsoil** (Fernandez Pierna & Dardenne 2008; prospectr, MIT): 825 NIR absorbance spectra,
  1100-2498 nm at 2 nm, of Walloon agricultural topsoils; organic carbon (ISO 14235) in % for
  732 of them, read as ``soc_g_kg = Ciso_pct x 10``.
- **LimeSoDa** (Schmidinger et al. 2025, CC BY-SA 4.0): field sites with vis-NIR or MIR
  reflectance in percent (read as fractions, noted). Targets: SOC in % (x 10 to g/kg); SOM in
  % for SL.125, UL.120 and SP.231, converted with the van Bemmelen factor (SOC = SOM / 1.724,
  noted: an assumption, the true ratio varies between soils); SSP.58 reports SOC in g/dm3 (a
  volumetric unit without bulk density), so it has no ``soc_g_kg`` and is kept for spectra
  only.

:data:`SITES` lists every site with its technique, range and target conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

from socmap.errors import SpectraError
from socmap.spectra._spectra import Spectra, read_spectra

__all__ = ["SITES", "SiteInfo", "load_limesoda", "load_nirsoil", "spectral_sites"]

#: van Bemmelen factor: SOM (%) / 1.724 = SOC (%).
VAN_BEMMELEN = 1.724
#: DRIFT MIR reflectance is relative to a reference and exceeds 1 at some bands.
MIR_MAX_REFLECTANCE = 1.5


@dataclass(frozen=True)
class SiteInfo:
    """One embedded LimeSoDa spectral site.

    Attributes
    ----------
    name
        LimeSoDa ID, e.g. ``"SSP.460"``.
    technique
        ``"vis-NIR"``, ``"NIR"`` or ``"MIR"``.
    target
        Source column (``SOC_target`` or ``SOM_target``).
    target_unit
        ``"%"`` (SOC), ``"SOM %"`` or ``"g/dm3"``.
    location
        Where the site is.
    """

    name: str
    technique: str
    target: str
    target_unit: str
    location: str

    @property
    def has_soc(self) -> bool:
        """Whether the target converts to g/kg."""
        return self.target_unit != "g/dm3"


SITES: dict[str, SiteInfo] = {
    s.name: s
    for s in [
        SiteInfo("SSP.460", "vis-NIR", "SOC_target", "%", "State of Sao Paulo, Brazil"),
        SiteInfo("SP.231", "vis-NIR", "SOM_target", "SOM %", "Saitama Prefecture, Japan"),
        SiteInfo("SL.125", "vis-NIR", "SOM_target", "SOM %", "Skane Lan, Sweden"),
        SiteInfo("UL.120", "vis-NIR", "SOM_target", "SOM %", "Uppsala Lan, Sweden"),
        SiteInfo("CV.98", "vis-NIR", "SOC_target", "%", "Canton of Vaud, Switzerland"),
        SiteInfo("RP.62", "NIR", "SOC_target", "%", "Rhineland-Palatinate, Germany"),
        SiteInfo("SSP.58", "vis-NIR", "SOC_target", "g/dm3", "State of Sao Paulo, Brazil"),
        SiteInfo("H.138", "MIR", "SOC_target", "%", "Hubei, China"),
        SiteInfo("NRW.115", "MIR", "SOC_target", "%", "North Rhine-Westphalia, Germany"),
        SiteInfo("NRW.42", "MIR", "SOC_target", "%", "North Rhine-Westphalia, Germany"),
        SiteInfo("O.32", "MIR", "SOC_target", "%", "Occitanie, France"),
    ]
}


def _data_dir() -> Path:
    return Path(str(files("socmap") / "_data" / "spectra"))


def spectral_sites(technique: str | None = None, *, with_soc: bool = True) -> list[str]:
    """Names of the embedded sites, optionally of one technique (``"MIR"``, ``"vis-NIR"``...).

    Examples
    --------
    >>> spectral_sites("MIR")
    ['H.138', 'NRW.115', 'NRW.42', 'O.32']
    """
    return [
        s.name
        for s in SITES.values()
        if (technique is None or s.technique == technique) and (s.has_soc or not with_soc)
    ]


def load_nirsoil(*, with_soc_only: bool = True) -> Spectra:
    """Load the NIRsoil library: absorbance 1100-2498 nm, ``soc_g_kg`` from ISO 14235 C.

    Parameters
    ----------
    with_soc_only
        Keep only the 732 spectra with a carbon value (the 93 without are counted in the
        notes).

    Examples
    --------
    >>> lib = load_nirsoil()
    >>> lib.n_samples, lib.n_bands, lib.quantity
    (732, 700, 'absorbance')
    """
    path = _data_dir() / "nirsoil" / "nirsoil_absorbance_1100_2498nm.csv.gz"
    raw = pd.read_csv(path)
    lead = pd.DataFrame(
        {
            "sample_id": "NIRsoil:" + raw["sample"].astype(str),
            "site": "NIRsoil",
            "soc_g_kg": raw["Ciso_pct"] * 10.0,  # % -> g/kg
        }
    )
    frame = pd.concat([lead, raw.drop(columns=["sample", "Ciso_pct"])], axis=1)
    notes = ["NIRsoil: Ciso (organic carbon, ISO 14235) in % x 10 = soc_g_kg"]
    if with_soc_only:
        missing = frame["soc_g_kg"].isna()
        frame = frame[~missing]
        notes.append(f"NIRsoil: left out {int(missing.sum())} spectra without a carbon value")
    s = read_spectra(frame, prefix="nm_", unit="nm", quantity="absorbance")
    return s.replace(s.values, note="; ".join(notes))


def load_limesoda(name: str) -> Spectra:
    """One LimeSoDa spectral site as reflectance fractions, with ``soc_g_kg``.

    Parameters
    ----------
    name
        A key of :data:`SITES`.

    Raises
    ------
    SpectraError
        Unknown site name.

    Examples
    --------
    >>> s = load_limesoda("CV.98")
    >>> s.n_samples, s.unit, round(float(s.axis[0])), round(float(s.target().mean()), 1)
    (98, 'nm', 350, 17.7)
    """
    if name not in SITES:
        raise SpectraError(f"unknown spectral site {name!r}; choose one of {sorted(SITES)!r}")
    info = SITES[name]
    table = pd.read_csv(_data_dir() / "limesoda" / f"{name}.csv.gz")
    raw = table[info.target].to_numpy(dtype=np.float64)
    extra: dict[str, np.ndarray] = {}
    notes = []
    if info.target_unit == "%":
        soc = raw * 10.0
        notes.append(f"{name}: SOC % x 10 = soc_g_kg")
    elif info.target_unit == "SOM %":
        soc = raw / VAN_BEMMELEN * 10.0
        notes.append(f"{name}: SOM % / {VAN_BEMMELEN} (van Bemmelen) x 10 = soc_g_kg")
    else:
        soc = np.full(len(table), np.nan)
        extra["soc_g_dm3"] = raw
        notes.append(f"{name}: SOC in g/dm3 (volumetric); no soc_g_kg without bulk density")
    lead = pd.DataFrame(
        {"sample_id": [f"{name}:{i}" for i in range(len(table))], "site": name, "soc_g_kg": soc}
        | extra
    )
    frame = pd.concat([lead, table], axis=1)
    mir = info.technique == "MIR"
    prefix = "wn_" if mir else "wl_"
    s = read_spectra(
        frame,
        prefix=prefix,
        quantity="reflectance",
        percent=True,
        max_reflectance=MIR_MAX_REFLECTANCE if mir else 1.0,
    )
    above = int((s.values > 1.0).any(axis=0).sum()) if mir else 0
    if above:  # only where it happens: a note on every MIR site would mean nothing
        notes.append(
            f"{name}: DRIFT reflectance relative to the reference exceeds 1 at {above} bands "
            f"(accepted up to {MIR_MAX_REFLECTANCE})"
        )
    return s.replace(s.values, note="; ".join(notes))

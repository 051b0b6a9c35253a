"""Soil-profile tables: readers onto one canonical layout, and quality control.

Every reader returns the canonical profile table: one row per horizon (or sample), with the
columns of :data:`CANONICAL_COLUMNS` first, in that order, then any extra input columns.

========== ======= ==============================================================
column     dtype   meaning
========== ======= ==============================================================
site_id    str     profile / core identifier
x, y       float   site coordinates in ``crs`` (longitude/latitude when geographic)
crs        str     normalised with :func:`socmap.grid.normalise_crs` (``"EPSG:n"``)
top_cm     float   horizon upper limit, cm below the surface
bottom_cm  float   horizon lower limit, cm
soc_g_kg   float   soil organic carbon, g/kg
bd_g_cm3   float   fine-earth bulk density, g/cm³ (NaN when not measured)
cf_vol     float   coarse-fragment volume fraction, 0–1 (NaN when not measured)
stratum    str     stratum label (blue-carbon cores, stratified designs)
date       str     sampling date, ISO 8601 (``"2021-03-04"``) or a year (``"1995"``)
source     str     data source / database
========== ======= ==============================================================

Quality control (:func:`qc_profiles`) flags problems and never drops a row: each problem
is one row of :attr:`QCReport.flags` with its check name, and the annotated table gets a
``qc_flags`` column. Problems that make a table unreadable (missing file, wrong columns,
mixed or unknown units, non-numeric depths) raise a :mod:`socmap.errors` subclass instead.
"""

from socmap.profiles._qc import QC_CHECKS, QCReport, check_qc_names, qc_profiles, write_qc
from socmap.profiles._read import (
    read_bluecarbon,
    read_edgeroi,
    read_global_covariates_at_sites,
    read_global_table,
    read_profiles,
    read_table,
)
from socmap.profiles._schema import (
    CANONICAL_COLUMNS,
    REQUIRED_COLUMNS,
    SOC_UNITS,
    blank_site_ids,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "QC_CHECKS",
    "REQUIRED_COLUMNS",
    "SOC_UNITS",
    "QCReport",
    "blank_site_ids",
    "check_qc_names",
    "qc_profiles",
    "read_bluecarbon",
    "read_edgeroi",
    "read_global_covariates_at_sites",
    "read_global_table",
    "read_profiles",
    "read_table",
    "write_qc",
]

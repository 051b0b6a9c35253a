"""Stratum totals: areas, mean and total stocks, intervals, conservative estimates, compliance.

Carbon standards report stocks per stratum, not per pixel. For each stratum and depth layer
this module turns Monte Carlo draws of the stratum's area-weighted mean stock (t C/ha) into
the table a verifier reads:

* **mean** stock (t C/ha) = the mean of the draws; **total** (Mg C) = mean x area (ha), and
  **t CO₂e** = Mg C x 44/12;
* **SE** = the standard deviation of the draws (each draw is one whole-map realisation, so
  its spread is the uncertainty of the stratum mean, not of a pixel);
* **90 % and 95 % intervals** = the 5-95 and 2.5-97.5 percentiles of the draws;
* **relative error** = the 95 % half-width / mean (VM0033 and the blue-carbon workflow ask
  for <= 20 %);
* **conservative estimate** = the lower bound of the two-sided interval at the configured
  confidence (default 90 %, i.e. the 5th percentile), as standards ask when uncertainty
  cannot be shown to be small;
* **cores**: the number of cores in the stratum, their observed coefficient of variation
  CV (sd / mean of the cores' stocks), and the cores needed for the target precision E at
  the target confidence: the smallest ``n`` with ``n >= (t CV / E)^2``, ``t`` Student's
  quantile with ``n - 1`` degrees of freedom (:func:`cores_needed`);
  **additional cores** = ``max(0, n - n_cores)``;
* **flags**: at least ``min_cores`` cores (3 in VM0033), relative error within the target.

Where the draws come from (``socmap strata RUN``) the approximation is stated in the report:
the network's (epistemic) uncertainty is a whole-map realisation per draw, but the residual
(aleatoric) noise is drawn independently per pixel, so it averages out over a stratum;
spatial autocorrelation of the residuals is ignored and the SE is a lower bound on that
account.

The package owns the product end to end: the table math (``_table``) and the stratum sums
of a prediction run's draws (``_maps``: :func:`strata_for_run`, a layer kind of the run
engine, with :func:`rasterise_strata` and :func:`cores_with_strata`; loaded on first use,
since it needs the network).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from socmap.strata._table import (
    StrataConfig,
    core_stocks,
    cores_needed,
    project_table,
    stratum_table,
)
from socmap.units import CO2_PER_C

__all__ = [
    "CO2_PER_C",
    "StrataConfig",
    "StrataResult",
    "core_stocks",
    "cores_needed",
    "cores_with_strata",
    "project_table",
    "rasterise_strata",
    "strata_for_run",
    "stratum_table",
]

#: The stratum sums of a run need the network (torch): loaded on first use.
_MAPS = ("StrataResult", "cores_with_strata", "rasterise_strata", "strata_for_run")

if TYPE_CHECKING:
    from socmap.strata._maps import (
        StrataResult,
        cores_with_strata,
        rasterise_strata,
        strata_for_run,
    )


def __getattr__(name: str) -> Any:
    if name in _MAPS:
        return getattr(import_module("socmap.strata._maps"), name)
    raise AttributeError(f"module 'socmap.strata' has no attribute {name!r}")

"""Bulk-density sources: a band, per-stratum constants, or the WoSIS pedotransfer function."""

from __future__ import annotations

import difflib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from socmap._io import read_failure
from socmap.catalog import embedded_data_dir
from socmap.errors import CatalogError, ConfigError, GridMismatch, InputNotFound, UnitsError
from socmap.stocks._formula import (
    SOC_MAX,
    FloatArray,
    Intervals,
    _check_range,
    _floats,
    _one_line,
    _rng,
    _soc_draws,
)
from socmap.stocks._intervals import (
    _intervals,
)
from socmap.units import BD_RANGE

_PTF_FILE = ("ptf", "bd_wosis2017.json")


def _noise_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One normal per draw and pixel, shared by every depth of that draw."""
    return (shape[0], 1, *shape[2:])


def _normals(
    rng: np.random.Generator | None,
    z: npt.ArrayLike | None,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    name: str,
) -> FloatArray:
    if z is not None:
        zz = _floats(z)
        if not _broadcasts(zz.shape, shape):
            raise ConfigError(
                f"{name} has shape {zz.shape!r}; it must broadcast to {shape!r} "
                "(one standard normal per draw and pixel, shared by the depths)"
            )
        return zz.astype(dtype, copy=False)
    if rng is None:
        raise ConfigError(
            f"no random source for {name}: pass rng=<int seed or numpy Generator> or "
            f"{name}=<standard normals of shape {shape!r}>"
        )
    return rng.standard_normal(shape, dtype=dtype)


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to exactly ``target``."""
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _field(name: str, a: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Check that a per-pixel (or per-depth-and-pixel) field broadcasts to ``(D, ...)``."""
    target = shape[1:]
    if not _broadcasts(a.shape, target):
        raise GridMismatch(
            f"{name} has shape {a.shape!r}, which does not broadcast to the draws' "
            f"(depth, ...) shape {target!r}; give a scalar, a (y, x) raster or a "
            "(depth, y, x) stack on the prediction grid"
        )
    return a


def _depth_slice(a: FloatArray, d: int, ndim: int) -> FloatArray:
    """Depth ``d`` of a field that broadcasts to ``(D, ...)`` of draws with ``ndim`` axes."""
    if a.ndim == ndim - 1:  # has the depth axis
        return a[d] if a.shape[0] > 1 else a[0]
    return a


class BulkDensitySource(ABC):
    """A source of bulk-density draws (g/cm³) that matches SOC draws one for one.

    Subclasses implement :meth:`_draw`; :meth:`draw` validates the inputs and makes the
    standard normals. Every source uses one normal per draw and pixel, shared by all depths
    of that draw (see :func:`stock_draws` for why).
    """

    def draw(
        self,
        soc_draws: npt.ArrayLike,
        intervals: Intervals,
        *,
        rng: np.random.Generator | int | None = None,
        z: npt.ArrayLike | None = None,
        covariates: Mapping[str, npt.ArrayLike] | None = None,
    ) -> FloatArray:
        """Draw bulk density for each SOC draw.

        Parameters
        ----------
        soc_draws
            SOC realisations, ``(T, D, ...)`` in g/kg.
        intervals
            The ``D`` depth intervals ``[(top, bottom), ...]`` in cm (or a DepthSet).
        rng
            Seed or Generator for the residuals.
        z
            Standard normals broadcastable to ``(T, 1, ...)``, instead of ``rng`` (e.g.
            counter-based normals, so that tiled output equals untiled output).
        covariates
            Extra per-pixel layers a source reads (``clay``/``sand`` in %, ``stratum``).

        Returns
        -------
        numpy.ndarray
            BD draws of the shape of ``soc_draws`` (may be a read-only broadcast view), g/cm³,
            clipped to :data:`BD_RANGE`; NaN where SOC or the source is NaN.
        """
        soc = _soc_draws(soc_draws)
        iv = _intervals(intervals, soc.shape[1])
        zz = self._noise(_rng(rng), z, soc, "z")
        return self._draw(soc, iv, zz, dict(covariates or {}))

    def _noise(
        self, rng: np.random.Generator | None, z: npt.ArrayLike | None, soc: FloatArray, name: str
    ) -> FloatArray:
        if z is None and not self.random:
            return np.zeros((1,) * soc.ndim, dtype=soc.dtype)  # no randomness needed
        return _normals(rng, z, _noise_shape(soc.shape), soc.dtype, name)

    @property
    def random(self) -> bool:
        """Whether draws need random normals (false when every sd is zero)."""
        return True

    @abstractmethod
    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        """BD draws for validated inputs (``z`` broadcastable to ``(T, 1, ...)``)."""


def _normal_draws(
    mean: FloatArray, sd: FloatArray, z: FloatArray, shape: tuple[int, ...]
) -> FloatArray:
    """``mean + sd z`` clipped to :data:`BD_RANGE`, broadcast to ``shape``."""
    if not np.any(sd):
        return np.broadcast_to(mean, shape)
    bd = np.asarray(mean + sd * z)
    np.clip(bd, *BD_RANGE, out=bd)
    return np.broadcast_to(bd, shape)


class BandBD(BulkDensitySource):
    """Bulk density from a raster band (or per-depth stack) in g/cm³, with an optional sd.

    Draws are ``mean + sd × z`` with one normal ``z`` per draw and pixel, clipped to
    :data:`BD_RANGE`. With ``sd = 0`` the band is used as is.

    Parameters
    ----------
    mean
        BD in g/cm³: a scalar, a ``(y, x)`` band or a ``(depth, y, x)`` stack. NaN is nodata
        and gives NaN stocks.
    sd
        Standard deviation in g/cm³, same shapes allowed (e.g. from the band's quantiles).

    Raises
    ------
    UnitsError
        A value is outside :data:`BD_RANGE` (e.g. SoilGrids cg/cm³, kg/m³, or nodata 0), or
        ``sd`` is negative.

    Examples
    --------
    >>> soc = np.full((2, 1, 3), 10.0)
    >>> BandBD(1.3).draw(soc, [(0, 30)], rng=0)[:, 0, 0].tolist()
    [1.3, 1.3]
    """

    def __init__(self, mean: npt.ArrayLike, sd: npt.ArrayLike = 0.0) -> None:
        self.mean = _floats(mean)
        self.sd = _floats(sd)
        _check_range(
            "bulk-density band",
            self.mean,
            *BD_RANGE,
            unit="g/cm³",
            hint="convert to g/cm³ (SoilGrids bdod: from_soilgrids(v, 'bdod')) and set nodata "
            "cells (often 0) to NaN",
        )
        _check_range(
            "bulk-density sd", self.sd, 0.0, math.inf, unit="g/cm³", hint="give a non-negative sd"
        )

    @property
    def random(self) -> bool:
        """Whether draws need random normals (false when the sd is zero everywhere)."""
        return bool(np.any(self.sd))

    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        mean = _field("bulk-density band", self.mean, soc.shape).astype(soc.dtype, copy=False)
        sd = _field("bulk-density sd", self.sd, soc.shape).astype(soc.dtype, copy=False)
        return _normal_draws(mean, sd, z, soc.shape)


class StratumLookup(NamedTuple):
    """Per-pixel BD mean and sd from a stratum table, and how many pixels took the default."""

    mean: FloatArray
    sd: FloatArray
    n_default: int
    defaulted: tuple[Hashable, ...]


def _code(key: Any) -> str:
    """Write a stratum code as the user wrote it: 1, not 1.0 (codes are read as floats)."""
    return f"{key:g}" if isinstance(key, float) else repr(key)


class StratumBD(BulkDensitySource):
    """Bulk density as per-stratum constants ``(mean, sd)`` in g/cm³, with a default.

    The stratum of each pixel comes from ``covariates[key]`` (a ``(y, x)`` array of labels or
    codes; NaN/None is nodata and gives NaN). Labels missing from the table take ``default``;
    :meth:`lookup` reports how many pixels did. Without strata every pixel takes ``default``.
    Each draw and pixel gets its own normal (shared by depths), so ``sd`` is read as the
    spread of BD within a stratum.

    Parameters
    ----------
    table
        Stratum label -> ``(mean, sd)`` in g/cm³ (e.g. ``{"mangrove": (0.6, 0.15)}``).
    default
        ``(mean, sd)`` for labels not in the table, or ``None`` to make them an error.
    key
        Name of the covariate that holds the strata.

    Examples
    --------
    >>> bd = StratumBD({"mangrove": (0.6, 0.0), "saltmarsh": (0.9, 0.0)})
    >>> soc = np.full((1, 1, 2), 50.0)
    >>> strata = np.array(["saltmarsh", "mangrove"], dtype=object)
    >>> bd.draw(soc, [(0, 30)], rng=0, covariates={"stratum": strata})[0, 0].tolist()
    [0.9, 0.6]
    """

    def __init__(
        self,
        table: Mapping[Hashable, tuple[float, float]],
        default: tuple[float, float] | None = None,
        *,
        key: str = "stratum",
    ) -> None:
        self.table = {k: self._pair(f"stratum {_code(k)}", v) for k, v in table.items()}
        self.default = None if default is None else self._pair("default", default)
        self.key = key

    @property
    def random(self) -> bool:
        """Whether draws need random normals (false when every sd is zero)."""
        pairs = [*self.table.values(), *([self.default] if self.default else [])]
        return any(sd > 0 for _, sd in pairs)

    @staticmethod
    def _pair(what: str, value: Any) -> tuple[float, float]:
        try:
            mean, sd = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{what} bulk density must be a (mean, sd) pair in g/cm³; got {value!r}"
            ) from None
        if not (BD_RANGE[0] <= mean <= BD_RANGE[1]) or not (sd >= 0 and math.isfinite(sd)):
            raise UnitsError(
                f"{what} bulk density must have mean in [{BD_RANGE[0]:g}, {BD_RANGE[1]:g}] "
                f"g/cm³ and sd >= 0; got {value!r}; give g/cm³ (kg/m³ ÷ 1000)"
            )
        return mean, sd

    def lookup(self, strata: npt.ArrayLike) -> StratumLookup:
        """Per-pixel mean and sd for an array of stratum labels.

        Parameters
        ----------
        strata
            Labels or codes, any shape; NaN or None marks nodata.

        Returns
        -------
        StratumLookup
            ``mean`` and ``sd`` arrays of the shape of ``strata`` (NaN at nodata), the number
            of pixels that took the default and their labels.

        Raises
        ------
        ConfigError
            A label is not in the table and there is no default.
        """
        import pandas as pd  # only this path needs it

        a = np.asarray(strata)
        codes, uniques = pd.factorize(a.ravel(), use_na_sentinel=True)
        means = np.empty(len(uniques) + 1)
        sds = np.empty(len(uniques) + 1)
        means[-1] = sds[-1] = np.nan  # code -1 (nodata) indexes the last slot
        defaulted: list[Hashable] = []
        default_idx: list[int] = []
        for i, label in enumerate(uniques.tolist()):
            pair = self.table.get(label)
            if pair is None:
                if self.default is None:
                    raise ConfigError(
                        f"stratum {label!r} has no bulk density in the table "
                        f"{list(self.table)!r}; add it to the --bd-table, or a row with "
                        "stratum 'default' (Python: default=(mean, sd))"
                    )
                pair = self.default
                defaulted.append(label)
                default_idx.append(i)
            means[i], sds[i] = pair
        n_default = int(np.isin(codes, default_idx).sum()) if default_idx else 0
        return StratumLookup(
            means[codes].reshape(a.shape),
            sds[codes].reshape(a.shape),
            n_default,
            tuple(defaulted),
        )

    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        strata = covariates.get(self.key)
        if strata is None:
            if self.default is None:
                raise ConfigError(
                    f"StratumBD needs covariates={{{self.key!r}: array of strata}} or a "
                    "default=(mean, sd) for every pixel"
                )
            mean = np.asarray(self.default[0], dtype=soc.dtype)
            sd = np.asarray(self.default[1], dtype=soc.dtype)
        else:
            look = self.lookup(strata)
            mean = _field(f"stratum layer {self.key!r}", look.mean, soc.shape).astype(soc.dtype)
            sd = look.sd.astype(soc.dtype)
        return _normal_draws(mean, sd, z, soc.shape)


def read_stratum_bd(
    path: str | Path,
) -> tuple[dict[Hashable, tuple[float, float]], tuple[float, float] | None]:
    """Read per-stratum bulk densities from a CSV: ``stratum, bd_g_cm3[, bd_sd_g_cm3]``.

    A row whose stratum is ``default`` gives the pair for strata not listed. Strata that
    look like numbers are read as numbers (the codes of a stratum raster band).

    Returns
    -------
    table, default
        Stratum -> ``(mean, sd)`` in g/cm³, and the default pair or None.

    Raises
    ------
    InputNotFound
        No such file.
    ConfigError
        Missing columns, repeated strata, or a value that is not a number.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputNotFound(f"stratum BD table {str(p)!r} does not exist; give a CSV file")
    try:  # once an empty file was an internal EmptyDataError
        frame = pd.read_csv(p, dtype={"stratum": str})
    except (ValueError, OSError) as exc:  # EmptyDataError, ParserError, UnicodeDecodeError
        reason = read_failure(exc)
        raise ConfigError(
            f"stratum BD table {str(p)!r} is not a readable CSV table ({reason}); --bd-table "
            "takes a CSV with a header line stratum,bd_g_cm3,bd_sd_g_cm3"
        ) from None
    absent = [c for c in ("stratum", "bd_g_cm3") if c not in frame.columns]
    if absent:
        raise ConfigError(
            f"stratum BD table {str(p)!r} lacks columns {absent!r}; it needs stratum, "
            f"bd_g_cm3 and optionally bd_sd_g_cm3 (has {list(frame.columns)!r})"
        )
    known = ("stratum", "bd_g_cm3", "bd_sd_g_cm3")
    misspelt = [c for c in frame.columns if c not in known
                and any(k in str(c).lower() for k in ("bd", "sd", "dens"))]  # fmt: skip
    if misspelt:  # e.g. 'bd_sd', which would silently mean sd 0; notes columns are fine
        raise ConfigError(
            f"stratum BD table {str(p)!r} has column(s) {misspelt!r} that look like bulk "
            "density but socmap does not read them; name them bd_g_cm3 and bd_sd_g_cm3"
        )
    dup = frame["stratum"][frame["stratum"].duplicated()].tolist()
    if dup:
        raise ConfigError(f"stratum BD table {str(p)!r} repeats strata {dup!r}; list each once")
    sds = frame["bd_sd_g_cm3"] if "bd_sd_g_cm3" in frame.columns else pd.Series(0.0, frame.index)
    table: dict[Hashable, tuple[float, float]] = {}
    default = None
    for label, mean, sd in zip(frame["stratum"], frame["bd_g_cm3"], sds, strict=True):
        try:
            pair = (float(mean), float(sd))
        except (TypeError, ValueError):
            raise ConfigError(
                f"stratum {label!r} in {str(p)!r} has a non-numeric bulk density "
                f"{mean!r} / sd {sd!r}; give g/cm3 numbers"
            ) from None
        _check_table_pair(label, pair, p)
        if str(label).strip().lower() == "default":
            default = pair
            continue
        try:
            key: Hashable = float(label)
        except ValueError:
            key = str(label)
        table[key] = pair
    return table, default


def _check_table_pair(label: Any, pair: tuple[float, float], path: Path) -> None:
    """Refuse a --bd-table row out of range, or whose sd would have its draws clipped."""
    from socmap.stocks._options import MAX_CLIPPED

    mean, sd = pair
    lo, hi = BD_RANGE
    if not (lo <= mean <= hi) or not (math.isfinite(sd) and sd >= 0):
        raise UnitsError(
            f"stratum {str(label)!r} in {str(path)!r} has bd_g_cm3 {mean:g} and bd_sd_g_cm3 "
            f"{sd:g}; --bd-table needs bd_g_cm3 in [{lo:g}, {hi:g}] g/cm3 (kg/m3 / 1000) and "
            "a finite bd_sd_g_cm3 >= 0"
        )
    if sd == 0:
        return
    outside = 0.5 * (1.0 + math.erf((lo - mean) / (sd * math.sqrt(2.0))))
    outside += 0.5 * (1.0 - math.erf((hi - mean) / (sd * math.sqrt(2.0))))
    if outside > MAX_CLIPPED:  # once clipped without a word, shifting the stocks
        raise ConfigError(
            f"stratum {str(label)!r} in {str(path)!r}: bd_sd_g_cm3 {sd:g} around bd_g_cm3 "
            f"{mean:g} puts {outside:.0%} of its BD draws outside {lo}-{hi} g/cm3, where they "
            "would be clipped and shift the stocks; give the sd of the bulk density itself "
            "(typically 0.05-0.2 g/cm3) in the --bd-table"
        )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Terms a PTF form may use: ``s = log1p(SOC g/kg)``, ``d = log1p(mid-depth cm)``, clay and
#: sand as fractions (0-1).
PTF_TERMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "1": lambda v: 1.0,
    "log1p_soc": lambda v: v["s"],
    "log1p_soc^2": lambda v: v["s"] ** 2,
    "log1p_soc^3": lambda v: v["s"] ** 3,
    "log1p_depth": lambda v: v["d"],
    "log1p_depth^2": lambda v: v["d"] ** 2,
    "log1p_soc*log1p_depth": lambda v: v["s"] * v["d"],
    "clay_frac": lambda v: v["clay"],
    "sand_frac": lambda v: v["sand"],
    "clay_frac^2": lambda v: v["clay"] ** 2,
    "sand_frac^2": lambda v: v["sand"] ** 2,
}


class PTFResidual(_Strict):
    """Residual error of a PTF: normal on the log scale, sd per SOC class."""

    scale: Literal["log"] = "log"
    distribution: Literal["normal"] = "normal"
    soc_edges_g_kg: tuple[float, ...]
    sd: tuple[float, ...]

    @model_validator(mode="after")
    def _check(self) -> PTFResidual:
        edges = np.asarray(self.soc_edges_g_kg, dtype=float)
        if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
            raise ValueError(f"soc_edges_g_kg must increase strictly; got {self.soc_edges_g_kg!r}")
        if len(edges) > 255:
            raise ValueError(f"at most 255 SOC class edges; got {len(edges)}")
        if len(self.sd) != len(edges) + 1:
            raise ValueError(
                f"sd needs one value per SOC class ({len(edges) + 1}); got {len(self.sd)}"
            )
        if not all(math.isfinite(x) and x > 0 for x in self.sd):
            raise ValueError(f"sd values must be finite and positive; got {self.sd!r}")
        return self


class PTFForm(_Strict):
    """One fitted form of the PTF.

    ``kind="mixing"`` (Adams 1973): ``1/BD = f/BD_om + (1 − f)/BD_min`` with organic-matter
    fraction ``f = clip(om_per_oc × SOC / 1000, 0, 1)`` and mineral end-member
    ``BD_min = exp(Σ coef × term)`` (terms of depth and texture only).
    ``kind="log_linear"``: ``log BD = Σ coef × term``. Both give the median BD; the residual
    is normal on the log scale.
    """

    kind: Literal["mixing", "log_linear"]
    terms: tuple[str, ...] = Field(min_length=1)
    coef: tuple[float, ...]
    bd_organic_g_cm3: float | None = None
    residual: PTFResidual
    requires: tuple[Literal["clay", "sand"], ...] = ()
    validation: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PTFForm:
        unknown = [t for t in self.terms if t not in PTF_TERMS]
        if unknown:
            raise ValueError(f"unknown terms {unknown!r}; known: {sorted(PTF_TERMS)!r}")
        if len(set(self.terms)) != len(self.terms):
            raise ValueError(f"terms repeat: {list(self.terms)!r}")
        if len(self.coef) != len(self.terms):
            raise ValueError(
                f"{len(self.coef)} coefficients for {len(self.terms)} terms; give one per term"
            )
        if not all(math.isfinite(c) for c in self.coef):
            raise ValueError(f"coefficients must be finite; got {self.coef!r}")
        used = {name for name in ("clay", "sand") if any(name in t for t in self.terms)}
        if used != set(self.requires):
            raise ValueError(
                f"requires {list(self.requires)!r} must list the texture inputs the terms use "
                f"({sorted(used)!r})"
            )
        if self.kind == "mixing":
            om = self.bd_organic_g_cm3
            if om is None or not (BD_RANGE[0] <= om <= BD_RANGE[1]):
                raise ValueError(
                    f"a mixing form needs bd_organic_g_cm3 in [{BD_RANGE[0]}, {BD_RANGE[1]}]; "
                    f"got {om!r}"
                )
            if any("soc" in t for t in self.terms):
                raise ValueError("a mixing form's mineral terms cannot use SOC")
        return self


class PTFParams(_Strict):
    """The fitted bulk-density PTF as shipped in ``_data/ptf/bd_wosis2017.json``."""

    name: str
    description: str = ""
    source: str
    licence: str
    units: dict[str, str]
    om_per_oc: float = Field(gt=1.0, lt=3.0)
    training_range: dict[Literal["soc_g_kg", "depth_cm"], tuple[float, float]]
    forms: dict[str, PTFForm]
    fitted: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> PTFParams:
        if "soc_depth" not in self.forms:
            raise ValueError(
                f"forms must include 'soc_depth' (usable at every pixel); got {list(self.forms)!r}"
            )
        for key in ("soc_g_kg", "depth_cm"):
            if key not in self.training_range:
                raise ValueError(f"training_range needs {key!r}")
            lo, hi = self.training_range[key]
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
                raise ValueError(f"training_range {key} must be 0 <= lo < hi; got {(lo, hi)!r}")
        return self


def load_bd_ptf(path: str | Path | None = None) -> PTFParams:
    """Load and validate the bulk-density PTF (the shipped WoSIS 2017 fit by default).

    Parameters
    ----------
    path
        A PTF JSON file; ``None`` reads ``socmap/_data/ptf/bd_wosis2017.json``.

    Returns
    -------
    PTFParams
        The validated parameters.

    Raises
    ------
    InputNotFound
        The file does not exist.
    CatalogError
        The file is not JSON or breaks the schema.

    Examples
    --------
    >>> sorted(load_bd_ptf().forms)
    ['soc_depth', 'soc_depth_texture']
    """
    p = Path(path) if path is not None else embedded_data_dir().joinpath(*_PTF_FILE)
    fix = "re-run scripts/fit_bd_ptf.py or reinstall socmap"
    if not p.is_file():
        raise InputNotFound(f"bulk-density PTF file {str(p)!r} does not exist; {fix}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(
            _one_line(f"bulk-density PTF file {str(p)!r} is not valid JSON ({exc}); {fix}")
        ) from None
    try:
        return PTFParams.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise CatalogError(
            _one_line(f"bulk-density PTF file {str(p)!r}: field {where}: {msg}; {fix}")
        ) from None


class PedotransferBD(BulkDensitySource):
    """Bulk density from the WoSIS 2017 pedotransfer function, with its residual error.

    The median BD of each draw comes from that draw's SOC and the interval's mid-depth (and
    clay and sand for ``form="soc_depth_texture"``); the residual is normal on the log scale
    with an sd per SOC class, one normal per draw and pixel shared by all depths. Draws are
    clipped to :data:`BD_RANGE`. Inputs outside the training data are clamped to it: depth to
    ``training_range["depth_cm"]``, clay and sand to 0-100 %; SOC needs no clamp in the mixing
    form (the organic fraction saturates at 1). See ``docs/bd_ptf.md`` for the fit and its
    validation.

    Parameters
    ----------
    form
        ``"soc_depth"`` (needs only SOC and depth; usable at every pixel) or
        ``"soc_depth_texture"`` (needs ``covariates={"clay": %, "sand": %}``).
    params
        Parameters or a JSON path; ``None`` loads the shipped fit.

    Examples
    --------
    >>> ptf = PedotransferBD()
    >>> bool(1.3 < float(ptf.predict(10.0, 15.0)) < 1.5)
    True
    """

    def __init__(
        self, form: str = "soc_depth", params: PTFParams | str | Path | None = None
    ) -> None:
        self.params = params if isinstance(params, PTFParams) else load_bd_ptf(params)
        if form not in self.params.forms:
            close = difflib.get_close_matches(form, list(self.params.forms), n=1, cutoff=0.6)
            tip = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown PTF form {form!r}; {tip}choose one of {sorted(self.params.forms)!r}"
            )
        self.form = form
        self._f = self.params.forms[form]

    @property
    def requires(self) -> tuple[str, ...]:
        """Covariates this form needs (``clay``, ``sand`` in %)."""
        return tuple(self._f.requires)

    def _texture(self, covariates: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._f.requires:
            if covariates.get(name) is None:
                raise ConfigError(
                    f"PTF form {self.form!r} needs covariates[{name!r}] (% of fine earth); "
                    "pass it or use form='soc_depth'"
                )
            v = _floats(covariates[name])
            _check_range(
                name,
                v,
                0.0,
                100.0,
                unit="%",
                hint=f"give {name} in % (SoilGrids {name}: from_soilgrids(v, {name!r}))",
            )
            out[name] = v / 100.0
        return out

    def _inverse_median(
        self, soc: FloatArray, depth: FloatArray, texture: Mapping[str, Any]
    ) -> FloatArray:
        """``1 / median BD`` before clipping (the mixing model is linear in it)."""
        f = self._f
        lo, hi = self.params.training_range["depth_cm"]
        v: dict[str, Any] = {"d": np.log1p(np.clip(depth, lo, hi)), **texture}
        if f.kind == "mixing":
            eta = sum(c * PTF_TERMS[t](v) for t, c in zip(f.terms, f.coef, strict=True))
            inv_min = np.exp(-np.asarray(eta))
            inv_om = 1.0 / float(f.bd_organic_g_cm3 or BD_RANGE[0])  # set: schema checks it
            # 1/BD = f/BD_om + (1 - f)/BD_min = 1/BD_min + f (1/BD_om - 1/BD_min); SOC >= 0.
            om = np.minimum(soc * (self.params.om_per_oc / 1000.0), 1.0)
            om *= inv_om - inv_min
            om += inv_min
            return np.asarray(om)
        s_lo, s_hi = self.params.training_range["soc_g_kg"]
        v["s"] = np.log1p(np.clip(soc, s_lo, s_hi))
        eta = sum(c * PTF_TERMS[t](v) for t, c in zip(f.terms, f.coef, strict=True))
        return np.asarray(np.exp(-np.asarray(eta)))

    def predict(
        self,
        soc_g_kg: npt.ArrayLike,
        depth_cm: npt.ArrayLike,
        *,
        clay: npt.ArrayLike | None = None,
        sand: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Median bulk density (g/cm³), clipped to :data:`BD_RANGE`.

        Parameters
        ----------
        soc_g_kg
            SOC in g/kg.
        depth_cm
            Mid-depth of the layer in cm.
        clay, sand
            Clay and sand in % (texture form only).

        Returns
        -------
        numpy.ndarray
            Median BD, broadcast over the inputs.
        """
        soc = _floats(soc_g_kg)
        _check_range("SOC", soc, 0.0, SOC_MAX, unit="g/kg", hint="give SOC in g/kg")
        depth = _floats(depth_cm)
        _check_range("depth", depth, 0.0, math.inf, unit="cm", hint="give mid-depth in cm")
        texture = self._texture({"clay": clay, "sand": sand})
        return np.clip(1.0 / self._inverse_median(soc, depth, texture), *BD_RANGE)

    def sd_log(self, soc_g_kg: npt.ArrayLike) -> FloatArray:
        """Residual sd on the log scale for SOC (g/kg), from its SOC class."""
        r = self._f.residual
        soc = _floats(soc_g_kg)
        # Count the edges at or below SOC (= searchsorted side="right"); a few vectorised
        # comparisons are about 5x faster than searchsorted on a tile slice.
        cls = np.zeros(soc.shape, dtype=np.uint8)
        above = np.empty(soc.shape, dtype=bool)
        for edge in r.soc_edges_g_kg:
            np.greater_equal(soc, edge, out=above)
            cls += above
        return np.asarray(r.sd, dtype=soc.dtype)[cls]

    def _draw(
        self,
        soc: FloatArray,
        intervals: npt.NDArray[np.float64],
        z: FloatArray,
        covariates: Mapping[str, npt.ArrayLike],
    ) -> FloatArray:
        texture = {k: _field(k, v, soc.shape) for k, v in self._texture(covariates).items()}
        mid = (intervals[:, 0] + intervals[:, 1]) / 2.0
        out = np.empty(soc.shape, dtype=soc.dtype)
        z0 = np.asarray(z)[:, 0]
        # One (draw, depth) slice at a time: contiguous and cache-sized for a 512x512 tile,
        # which makes the several passes per slice cheap.
        for d in range(soc.shape[1]):
            tex_d = {k: _depth_slice(v, d, soc.ndim).astype(soc.dtype) for k, v in texture.items()}
            depth = np.asarray(mid[d], dtype=soc.dtype)
            for t in range(soc.shape[0]):
                s = soc[t, d]
                inv = self._inverse_median(s, depth, tex_d)
                noise = self.sd_log(s)
                noise *= z0[t if z0.shape[0] > 1 else 0]
                np.exp(noise, out=noise)
                np.divide(noise, inv, out=out[t, d])  # median x exp(sd z)
        np.clip(out, *BD_RANGE, out=out)
        return out

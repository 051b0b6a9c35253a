"""Kriging of log residuals: the spatial part a covariate model leaves behind.

With a few regional cores, what neither the global prior nor a forest of coarse covariates
explains is often spatially correlated (a valley, a farming system, a survey's lab): cores
near a place say more about it than cores far away. :class:`ResidualKriging` fits, per depth
interval, a zero-mean Gaussian process of the residuals over space,

    cov(r_i, r_j) = sill * matern32(d_ij / range) + nugget * [i == j],

with the sill, range and nugget chosen by maximum marginal likelihood (scikit-learn's
Gaussian process, seeded restarts). Its prediction is the simple-kriging mean, which
returns to 0 (the covariate model alone) away from the cores and when the residuals have
no spatial structure (the sill goes to 0), and the kriging standard deviation of the
latent field. Distances are in kilometres: projected coordinates are scaled by their unit,
longitude/latitude are projected around the cores' mean latitude (equirectangular, fine at
the scale of a region).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> rows = pd.DataFrame({"x": rng.uniform(0, 50_000, 60), "y": rng.uniform(0, 50_000, 60),
...                      "crs": "EPSG:32755", "top_cm": 0.0, "bottom_cm": 30.0})
>>> resid = np.where(rows["x"] < 25_000, 0.5, -0.5) + rng.normal(0, 0.05, 60)
>>> krig = ResidualKriging().fit(rows, resid)
>>> mean, sd = krig.predict(rows.iloc[:2])
>>> bool(np.all(np.abs(mean - resid[:2]) < 0.3)), bool(np.all(sd >= 0))
(True, True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from socmap.errors import ConfigError, ProfileValidationError
from socmap.validate.splitters import METRES_PER_DEGREE, coordinate_units

__all__ = ["KRIGING_MIN_ROWS", "ResidualKriging"]

#: Fewest residuals of a depth interval that get a Gaussian process (others get none).
KRIGING_MIN_ROWS = 10
_SQRT3 = np.sqrt(3.0)


@dataclass(frozen=True)
class _Field:
    """One interval's fitted process: what prediction needs, as plain arrays."""

    coords_km: np.ndarray  # (n, 2)
    alpha: np.ndarray  # (K + nugget I)^-1 r
    chol: np.ndarray  # lower Cholesky factor of K + nugget I
    sill: float
    range_km: float
    nugget: float

    def covariance(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)) / self.range_km
        return self.sill * (1.0 + _SQRT3 * d) * np.exp(-_SQRT3 * d)

    def predict(self, coords_km: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import solve_triangular

        k = self.covariance(coords_km, self.coords_km)
        mean = k @ self.alpha
        v = solve_triangular(self.chol, k.T, lower=True)
        var = np.clip(self.sill - (v**2).sum(0), 0.0, None)
        return mean, np.sqrt(var)


class ResidualKriging:
    """Per-interval Gaussian process of log1p residuals over space (see the module).

    Parameters
    ----------
    units
        Coordinate units of ``x``/``y``: ``"auto"`` (from the table's ``crs`` column),
        ``"degrees"`` or ``"metres"``.
    min_rows
        Fewest residuals of an interval to fit its process (:data:`KRIGING_MIN_ROWS`).
    restarts
        Extra seeded starts of the likelihood optimiser.
    random_state
        Seed of those starts.

    Attributes
    ----------
    fields_ : dict
        ``{(top_cm, bottom_cm): field}`` of the fitted intervals.
    params_ : dict
        ``{"top-bottom": {"sill", "range_km", "nugget", "n"}}``: what the likelihood chose.
    """

    def __init__(
        self, units: str = "auto", min_rows: int = KRIGING_MIN_ROWS, restarts: int = 2,
        random_state: int = 0,
    ) -> None:  # fmt: skip
        self.units = units
        self.min_rows = min_rows
        self.restarts = restarts
        self.random_state = random_state

    def _km(self, X: pd.DataFrame) -> np.ndarray:
        x = X["x"].to_numpy(dtype=float)
        y = X["y"].to_numpy(dtype=float)
        if self.units_ == "degrees":
            scale = METRES_PER_DEGREE / 1000.0
            return np.column_stack([x * scale * np.cos(np.radians(self.lat0_)), y * scale])
        return np.column_stack([x, y]) * (self.metres_per_unit_ / 1000.0)

    def fit(self, X: pd.DataFrame, residuals: np.ndarray) -> ResidualKriging:
        """Fit one process per depth interval of ``X`` with at least ``min_rows`` rows.

        Parameters
        ----------
        X
            Rows with ``x``, ``y``, ``top_cm``, ``bottom_cm`` (and ``crs`` for ``"auto"``).
        residuals
            One finite log1p residual per row (out of fold, so that they are honest).
        """
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        r = np.asarray(residuals, dtype=float).ravel()
        if len(r) != len(X) or not np.isfinite(r).all():
            raise ProfileValidationError(
                f"kriging needs one finite residual per row: {len(r)!r} residuals for "
                f"{len(X)!r} rows; drop the rows without SOC first"
            )
        if not (isinstance(self.min_rows, int) and self.min_rows >= 3):
            raise ConfigError(f"min_rows {self.min_rows!r} must be an integer >= 3, e.g. 10")
        self.units_, self.metres_per_unit_ = coordinate_units(X, self.units)  # type: ignore[arg-type]
        self.lat0_ = float(X["y"].mean()) if self.units_ == "degrees" else 0.0
        coords = self._km(X)
        self.fields_: dict[tuple[float, float], _Field] = {}
        self.params_: dict[str, dict[str, float]] = {}
        intervals = X[["top_cm", "bottom_cm"]].to_numpy(dtype=float)
        for top, bottom in sorted({(float(t), float(b)) for t, b in intervals}):
            rows = np.flatnonzero((intervals[:, 0] == top) & (intervals[:, 1] == bottom))
            if len(rows) < self.min_rows:
                continue
            c, res = coords[rows], r[rows]
            var = max(float(np.var(res)), 1e-4)
            extent = float(np.ptp(c, axis=0).max()) or 1.0
            kernel = ConstantKernel(var / 2, (1e-5 * var, 10 * var)) * Matern(
                extent / 5, (extent / 1000, 10 * extent), nu=1.5
            ) + WhiteKernel(var / 2, (1e-5 * var, 10 * var))
            gp = GaussianProcessRegressor(
                kernel, n_restarts_optimizer=self.restarts, random_state=self.random_state
            )
            with warnings.catch_warnings():
                # a sill or nugget at its bound is an answer (no structure, no noise), not a fault
                warnings.simplefilter("ignore", ConvergenceWarning)
                gp.fit(c, res)
            k = gp.kernel_
            field = _Field(
                coords_km=c, alpha=np.asarray(gp.alpha_, dtype=float).ravel(),
                chol=np.asarray(gp.L_, dtype=float), sill=float(k.k1.k1.constant_value),
                range_km=float(k.k1.k2.length_scale), nugget=float(k.k2.noise_level),
            )  # fmt: skip
            self.fields_[(top, bottom)] = field
            self.params_[f"{top:g}-{bottom:g}"] = {
                "sill": field.sill, "range_km": field.range_km, "nugget": field.nugget,
                "n": float(len(rows)),
            }  # fmt: skip
        return self

    def predict(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Kriged residual and its sd (latent field, no nugget) per row; 0, 0 elsewhere."""
        if not hasattr(self, "fields_"):
            raise ConfigError("ResidualKriging is not fitted; call fit(rows, residuals) first")
        mean, sd = np.zeros(len(X)), np.zeros(len(X))
        if not self.fields_:
            return mean, sd
        coords = self._km(X)
        intervals = X[["top_cm", "bottom_cm"]].to_numpy(dtype=float)
        for (top, bottom), field in self.fields_.items():
            rows = np.flatnonzero((intervals[:, 0] == top) & (intervals[:, 1] == bottom))
            if len(rows):
                mean[rows], sd[rows] = field.predict(coords[rows])
        return mean, sd

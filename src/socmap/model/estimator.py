"""The SOC network behind the scikit-learn interface used by the CV harness.

:class:`SocNetRegressor` takes a training table (one row per site x depth interval), fits
the feature spec on it, splits it spatially for early stopping (whole blocks and profiles,
never the caller's test fold, which it never sees) and trains :class:`~socmap.model.SocNet`.
``predict_log`` returns the MC-dropout mean and total sd of log1p(SOC g/kg).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from socmap.catalog import Catalog, load_catalog
from socmap.errors import ProfileValidationError
from socmap.model.bundle import save_bundle
from socmap.model.features import FeatureSpec
from socmap.model.network import NetworkConfig, SocNet
from socmap.model.train import TrainConfig, fit, predict
from socmap.validate.aoa import AreaOfApplicability
from socmap.validate.splitters import spatial_train_val_split

__all__ = ["SocNetRegressor", "balance_weights", "climate_zone"]

#: Bin edges of :func:`climate_zone`: mean annual temperature (degC), precipitation (mm).
CLIMATE_EDGES = {"wc_bio1_mat_degC": (0.0, 10.0, 20.0), "wc_bio12_map_mm": (250.0, 750.0, 1500.0)}


def climate_zone(table: pd.DataFrame) -> pd.Series:
    """Coarse climate class per row from mean annual temperature and precipitation.

    Four temperature bins (< 0, 0-10, 10-20, >= 20 degC) times four precipitation bins
    (< 250, 250-750, 750-1500, >= 1500 mm): arid to humid, polar to tropical. Rows without
    climate values form their own class ``"unknown"``.

    Examples
    --------
    >>> t = pd.DataFrame({"wc_bio1_mat_degC": [25.0, 5.0], "wc_bio12_map_mm": [100.0, 900.0]})
    >>> climate_zone(t).tolist()
    ['T3P0', 'T1P2']
    """
    missing = [c for c in CLIMATE_EDGES if c not in table.columns]
    if missing:
        raise ProfileValidationError(
            f"climate balancing needs columns {missing!r}; pass balance=<column> instead"
        )
    parts = []
    for (col, edges), tag in zip(CLIMATE_EDGES.items(), ("T", "P"), strict=True):
        values = table[col].to_numpy(dtype=float)
        parts.append(
            pd.Series(np.digitize(values, edges), index=table.index)
            .map(lambda i, t=tag: f"{t}{i}")
            .where(np.isfinite(values), None)
        )
    zone = parts[0] + parts[1]
    return zone.fillna("unknown")


def balance_weights(
    table: pd.DataFrame, balance: str | None, power: float = 0.5
) -> np.ndarray | None:
    """Row weights ``share(group) ** -power``, normalised to mean 1 (``None`` if no balance).

    Examples
    --------
    >>> t = pd.DataFrame({"source": ["a", "a", "a", "b"]})
    >>> balance_weights(t, "source", 1.0).round(3).tolist()
    [0.667, 0.667, 0.667, 2.0]
    """
    if balance is None:
        return None
    if not (np.isfinite(power) and power >= 0):
        raise ProfileValidationError(f"balance_power must be >= 0; got {power!r}")
    if balance == "climate" and "climate" not in table.columns:
        groups = climate_zone(table)
    elif balance in table.columns:
        groups = table[balance].astype(str).str.split(":").str[0]
    else:
        raise ProfileValidationError(
            f"balance {balance!r} is neither 'climate' nor a column of the training table; "
            "give 'climate' or a column such as 'source' (CLI: --balance source)"
        )
    share = groups.map(groups.value_counts(normalize=True)).to_numpy(dtype=float)
    w = share**-power
    return np.asarray(w / w.mean(), dtype=float)


class SocNetRegressor(RegressorMixin, BaseEstimator):
    """Train the SOC network on a table, with spatial early stopping.

    Parameters
    ----------
    bands
        Covariates and their kinds/groups: a catalog name or :class:`~socmap.catalog.Catalog`,
        or a band table (``name, kind, group[, classes]``) as from
        :func:`socmap.cube.band_table`.
    network
        Overrides of :class:`~socmap.model.NetworkConfig` (e.g. ``{"fusion_dim": 64}``).
    train
        Overrides of :class:`~socmap.model.TrainConfig` (``seed`` comes from
        ``random_state``).
    val_fraction
        Share of the training rows held out, by whole spatial blocks, for early stopping;
        0 trains for ``max_epochs`` without early stopping.
    block_size, units
        Block size of that split (5 degrees by default, as for the global model).
    mc_passes
        Monte Carlo dropout passes in :meth:`predict_log`.
    balance
        Rebalance the training rows by group: a column of the table (e.g. ``"source"``),
        ``"climate"`` (bins of mean annual temperature and precipitation, see
        :func:`climate_zone`) or ``None`` (every row counts the same). A row of a group
        holding a share ``p`` of the rows gets weight ``p ** -balance_power`` (normalised to
        mean 1), so ``balance_power=1`` equalises groups and ``0.5`` halves the imbalance in
        log terms.
    balance_power
        Exponent of the rebalancing.
    random_state
        Seed of the split, the initialisation, the batches and the dropout masks.
    progress
        Show progress bars while training.
    """

    def __init__(
        self,
        bands: str | Catalog | pd.DataFrame = "global_10arcmin",
        network: Mapping[str, Any] | None = None,
        train: Mapping[str, Any] | None = None,
        val_fraction: float = 0.2,
        block_size: float = 5.0,
        units: str = "auto",
        mc_passes: int = 32,
        balance: str | None = None,
        balance_power: float = 0.5,
        random_state: int = 0,
        progress: bool = False,
    ) -> None:
        self.bands = bands
        self.network = network
        self.train = train
        self.val_fraction = val_fraction
        self.block_size = block_size
        self.units = units
        self.mc_passes = mc_passes
        self.balance = balance
        self.balance_power = balance_power
        self.random_state = random_state
        self.progress = progress

    def _source(self) -> Catalog | pd.DataFrame:
        return load_catalog(self.bands) if isinstance(self.bands, str) else self.bands

    def _unfitted_spec(self) -> FeatureSpec:
        return FeatureSpec.from_catalog(self._source())

    def _band_units(self) -> dict[str, str]:
        """Units of the covariates, from the catalog or the band table's ``units`` column."""
        source = self._source()
        if isinstance(source, Catalog):
            return source.band_units
        if "units" not in source.columns:
            return {}
        pairs = zip(source["name"], source["units"], strict=True)
        return {str(n): str(u) for n, u in pairs if u is not None and not pd.isna(u)}

    def _rows_with_target(self, X: pd.DataFrame) -> pd.DataFrame:
        """Rows with a SOC value; the others are counted in ``n_rows_without_target_``."""
        if "soc_g_kg" not in X.columns:
            raise ProfileValidationError("training table lacks the target column 'soc_g_kg'")
        rows = X.loc[X["soc_g_kg"].notna()].reset_index(drop=True)
        if len(rows) < 2:
            raise ProfileValidationError(
                f"only {len(rows)} rows have a SOC value; the network needs at least 2"
            )
        self.n_rows_without_target_ = len(X) - len(rows)
        return rows

    def _early_stopping_split(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Whole blocks and profiles of the training rows for early stopping.

        ``val_fraction == 0`` validates on nothing: training runs ``max_epochs``.
        """
        if self.val_fraction == 0:
            return np.arange(len(rows)), np.arange(0)
        return spatial_train_val_split(
            rows,
            groups=rows["site_id"].to_numpy(),
            val_fraction=self.val_fraction,
            block_size=self.block_size,
            units=self.units,  # type: ignore[arg-type]
            random_state=self.random_state,
        )

    def fit(self, X: pd.DataFrame, y: Any = None) -> SocNetRegressor:
        """Fit on the rows of ``X`` with a ``soc_g_kg`` value; ``y`` is ignored."""
        rows = self._rows_with_target(X)
        spec = self._unfitted_spec().fit(rows)
        data = spec.encode(rows)
        train_idx, val_idx = self._early_stopping_split(rows)
        config = NetworkConfig.from_spec(spec, **dict(self.network or {}))
        model = SocNet(config, seed=self.random_state)
        train_cfg = TrainConfig(**{**dict(self.train or {}), "seed": self.random_state})
        weights = balance_weights(rows, self.balance, self.balance_power)
        self.history_ = fit(
            model,
            data,
            train_idx,
            val_idx,
            train_cfg,
            sample_weight=weights,
            progress=self.progress,
        )
        self.spec_, self.config_, self.model_ = spec, config, model
        self.train_config_ = train_cfg
        return self

    def predict_log(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """MC-dropout mean and total sd (epistemic + aleatoric) of log1p(SOC g/kg)."""
        check_is_fitted(self, "model_")
        pred = predict(
            self.model_, self.spec_.encode(X), mc_passes=self.mc_passes, seed=self.random_state
        )
        return np.asarray(pred.mean, dtype=float), np.asarray(pred.sd, dtype=float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """SOC in g/kg (back-transformed mean of log1p SOC)."""
        mean, _ = self.predict_log(X)
        return np.expm1(mean)

    def save(
        self,
        path: str | Path,
        metadata: Mapping[str, Any] | None = None,
        aoa: AreaOfApplicability | None = None,
    ) -> Path:
        """Write the fitted network as a model bundle (see :func:`socmap.model.save_bundle`).

        The covariates' units are recorded (``metadata["band_units"]``, unless given), so
        mapping a cube that holds a band in other units is refused.
        """
        check_is_fitted(self, "model_")
        meta = {
            "train_config": self.train_config_.to_dict(),
            "history": self.history_.to_dict(),
            "band_units": self._band_units(),
            **dict(metadata or {}),
        }
        return save_bundle(path, self.model_, self.spec_, self.config_, meta, aoa=aoa)

"""Neighbourhood (focal) covariates: the inputs that make a model a patch model.

A focal band is the mean of a cube band over the ``(2r + 1) x (2r + 1)`` window centred on a
pixel, ignoring nodata (Behrens et al. 2018, multi-scale contextual covariates). A network
fed focal bands predicts a pixel from a patch around it, so a tile needs ``r`` pixels of
halo from its neighbours; the prediction run takes them through dask's overlap (halo
exchange) and its tiled output equals the untiled output.

One function, :func:`focal_mean`, computes the windows both at training sites
(:func:`socmap.extraction.extract_focal`) and over map tiles, summing in the same order for
every pixel, so a pixel's value is bitwise the same whatever tile or window holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from socmap.errors import BandMismatch, ConfigError, GridMismatch

__all__ = ["FocalSpec", "check_focal_bands", "focal_band_table", "focal_mean", "window_at"]


@dataclass(frozen=True)
class FocalSpec:
    """Which cube bands get a focal mean, and over which radius (pixels).

    Examples
    --------
    >>> spec = FocalSpec(("elev", "ndvi"), 2)
    >>> spec.names
    ['elev_focal2', 'ndvi_focal2']
    >>> FocalSpec.from_dict(spec.to_dict()) == spec
    True
    """

    bands: tuple[str, ...]
    radius: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(str(b) for b in self.bands))
        if int(self.radius) < 1 or not self.bands:
            raise ConfigError(
                f"a focal spec needs at least one band and radius >= 1 pixel; got bands "
                f"{list(self.bands)!r}, radius {self.radius!r}"
            )
        object.__setattr__(self, "radius", int(self.radius))

    @property
    def names(self) -> list[str]:
        """Names of the focal bands, in the order of :attr:`bands`."""
        return [f"{b}_focal{self.radius}" for b in self.bands]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (stored in a bundle's ``model.json`` under ``focal``)."""
        return {"bands": list(self.bands), "radius": self.radius}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FocalSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["bands"]), int(data["radius"]))


def focal_mean(block: np.ndarray, radius: int) -> np.ndarray:
    """Window means of a halo-padded block, ignoring NaN.

    Parameters
    ----------
    block
        ``(bands, h, w)`` values with ``radius`` pixels of halo on every side (NaN where the
        halo falls outside the grid).
    radius
        Window half-width in pixels.

    Returns
    -------
    numpy.ndarray
        ``(bands, h - 2 radius, w - 2 radius)`` float32 means of the windows centred on the
        block's inner pixels; NaN where a window has no data.

    Examples
    --------
    >>> b = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> focal_mean(b, 1)[0].tolist()
    [[5.0, 6.0], [9.0, 10.0]]
    """
    r = int(radius)
    _, h, w = block.shape
    if r < 0 or h <= 2 * r or w <= 2 * r:
        raise GridMismatch(
            f"block of shape {block.shape!r} is too small for focal radius {radius!r}: it needs "
            f"at least {2 * r + 1} pixels per side; pass the block with its halo"
        )
    ok = np.isfinite(block)
    values = np.where(ok, block, 0.0).astype(np.float64)
    counts = ok.astype(np.float64)
    # Separable sums in a fixed order (rows, then columns): every pixel adds the same terms
    # in the same sequence wherever its window sits in the block.
    sum_v = _window_sum(_window_sum(values, 1, r), 2, r)
    sum_n = _window_sum(_window_sum(counts, 1, r), 2, r)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sum_n > 0, sum_v / sum_n, np.nan)
    return out.astype(np.float32)


def _window_sum(a: np.ndarray, axis: int, r: int) -> np.ndarray:
    """Sum of the ``2r + 1`` shifts of ``a`` along ``axis`` (valid part only)."""
    n = a.shape[axis] - 2 * r

    def shift(k: int) -> np.ndarray:
        index = [slice(None)] * a.ndim
        index[axis] = slice(k, k + n)
        return a[tuple(index)]

    out = shift(0).copy()
    for k in range(1, 2 * r + 1):
        out += shift(k)
    return out


def check_focal_bands(bands: pd.DataFrame, spec: FocalSpec) -> None:
    """Raise :class:`BandMismatch` unless every focal band is a continuous band of ``bands``.

    A window mean of class codes means nothing, so categorical bands are refused.
    """
    kinds = dict(zip(bands["name"], bands["kind"], strict=True))
    bad = [b for b in spec.bands if kinds.get(b) != "continuous"]
    if bad:
        raise BandMismatch(
            f"focal bands {bad!r} are not continuous cube bands; choose among "
            f"{[n for n, k in kinds.items() if k == 'continuous']!r}"
        )


def focal_band_table(bands: pd.DataFrame, spec: FocalSpec, group: str = "focal") -> pd.DataFrame:
    """Extend a cube's band table with the focal bands (one network group, continuous).

    Raises
    ------
    BandMismatch
        A focal band is not a continuous band of ``bands``.
    """
    check_focal_bands(bands, spec)
    units = dict(zip(bands["name"], bands["units"], strict=True))
    extra = pd.DataFrame(
        {
            "name": spec.names,
            "units": [units[b] for b in spec.bands],
            "kind": "continuous",
            "group": group,
            "n_classes": 0,
            "source": [f"focal mean of {b}, radius {spec.radius} px" for b in spec.bands],
        }
    )
    return pd.concat([bands, extra], ignore_index=True)


def window_at(cube: xr.DataArray, row: int, col: int, radius: int) -> np.ndarray:
    """Return the ``(bands, 2r + 1, 2r + 1)`` window centred on a pixel, NaN off the grid."""
    r = int(radius)
    height, width = cube.sizes["y"], cube.sizes["x"]
    window = np.full((cube.sizes["band"], 2 * r + 1, 2 * r + 1), np.nan, dtype=np.float32)
    r0, r1 = max(row - r, 0), min(row + r + 1, height)
    c0, c1 = max(col - r, 0), min(col + r + 1, width)
    if r0 < r1 and c0 < c1:
        window[:, r0 - row + r : r1 - row + r, c0 - col + r : c1 - col + r] = cube.isel(
            y=slice(r0, r1), x=slice(c0, c1)
        ).to_numpy()
    return window

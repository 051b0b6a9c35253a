"""computePixels calls with socmap's own retries: exponential backoff with seeded jitter.

HTTP 429 and 5xx answers, connection errors and timeouts are retried up to ``max_retries``
times, waiting ``min(max_backoff_s, backoff_s * 2**attempt) * (0.5 + 0.5 * u)`` seconds, with
``u`` drawn from a generator seeded by ``(seed, request key, attempt)``: the waits depend on the
request, not on thread timing, so a run is reproducible. Any other 4xx fails at once with the
server's message. The Earth Engine client's own retries are switched off
(``ee.data.setMaxRetries(0)``), so these are the only ones.

Messages carry the request's window and the server's reason, never request headers, tokens
or key material.
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from socmap.errors import ConfigError, EarthEngineError
from socmap.grid import Grid
from socmap.sources.earthengine._expr import MASKED, import_ee

__all__ = ["FetchStats", "PixelFetcher", "RetryPolicy", "pixel_grid", "require_initialized"]

logger = logging.getLogger("socmap.sources.earthengine")
#: How retries wait (module-level so tests can observe the waits without sleeping).
_sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Parameters
    ----------
    max_retries
        Retries after the first attempt (so ``max_retries + 1`` attempts at most).
    backoff_s
        Base wait before the first retry, in seconds; doubles with every retry.
    max_backoff_s
        Cap on the base wait, in seconds.
    seed
        Seed of the jitter.

    Examples
    --------
    >>> p = RetryPolicy(max_retries=3, backoff_s=1.0, max_backoff_s=4.0, seed=0)
    >>> p.delay((7,), 2) == RetryPolicy(seed=0, max_backoff_s=4.0).delay((7,), 2)
    True
    >>> all(min(4.0, 2.0**a) / 2 <= p.delay((7,), a) <= min(4.0, 2.0**a) for a in range(4))
    True
    """

    max_retries: int = 8
    backoff_s: float = 1.0
    max_backoff_s: float = 64.0
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.max_retries) < 0:
            raise ConfigError(f"max_retries {self.max_retries!r} must be >= 0")
        if not (self.backoff_s >= 0 and self.max_backoff_s >= self.backoff_s):
            raise ConfigError(
                f"backoff_s {self.backoff_s!r} must be >= 0 and max_backoff_s "
                f"{self.max_backoff_s!r} >= backoff_s"
            )

    def delay(self, key: Sequence[int], attempt: int) -> float:
        """Seconds to wait before retry ``attempt + 1`` of the request ``key``."""
        base = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        u = float(np.random.default_rng([int(self.seed), *map(int, key), attempt]).random())
        return base * (0.5 + 0.5 * u)


@dataclass
class FetchStats:
    """Counters of one pull or sampling run (thread-safe)."""

    requests: int = 0
    retries: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, retries: int = 0, nbytes: int = 0) -> None:
        """Add to the counters."""
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.bytes += nbytes

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        with self._lock:
            return {"requests": self.requests, "retries": self.retries, "bytes": self.bytes}


def pixel_grid(grid: Grid) -> dict[str, Any]:
    """Describe a socmap grid as computePixels' ``grid`` (a PixelGrid).

    Examples
    --------
    >>> from affine import Affine
    >>> g = Grid("EPSG:32755", Affine(30.0, 0, 500000.0, 0, -30.0, 7000000.0), (2, 3))
    >>> pixel_grid(g)["dimensions"], pixel_grid(g)["crsCode"]
    ({'width': 3, 'height': 2}, 'EPSG:32755')
    """
    t = grid.transform
    out: dict[str, Any] = {
        "dimensions": {"width": int(grid.width), "height": int(grid.height)},
        "affineTransform": {
            "scaleX": float(t.a),
            "shearX": float(t.b),
            "translateX": float(t.c),
            "shearY": float(t.d),
            "scaleY": float(t.e),
            "translateY": float(t.f),
        },
    }
    if grid.crs.upper().startswith("EPSG:"):
        out["crsCode"] = grid.crs.upper()
    else:
        out["crsWkt"] = grid.crs
    return out


def require_initialized() -> Any:
    """Return ``ee`` once it is initialised, with the client's own retries switched off."""
    ee = import_ee()
    if not ee.data.is_initialized():
        raise EarthEngineError(
            "Earth Engine is not initialised; call "
            "socmap.sources.earthengine.initialize(service_account_key=..., project=...) first "
            "(CLI: --key FILE --project P), or ee.Initialize() yourself"
        )
    # Our retries are the only ones: the client would otherwise retry 429/5xx on its own.
    ee.data.setMaxRetries(0)
    return ee


def _http_status(exc: BaseException) -> int | None:
    """HTTP status behind an Earth Engine error (ee keeps the HttpError as the context)."""
    from googleapiclient.errors import HttpError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, HttpError):
            status = getattr(cur, "status_code", None) or getattr(cur.resp, "status", None)
            return int(status) if status is not None else None
        cur = cur.__cause__ or cur.__context__
    return None


def _transient(exc: BaseException) -> bool:
    """Tell connection failures and timeouts apart, whichever layer raised them."""
    import requests

    return isinstance(
        exc,
        ConnectionError | TimeoutError | http.client.HTTPException | requests.RequestException,
    )


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


class PixelFetcher:
    """Fetch pixel blocks with ``ee.data.computePixels`` and socmap's retry policy.

    Parameters
    ----------
    policy
        Retry settings.
    stats
        Counters to update.
    sleep
        Waiting function (tests may pass a fake clock).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        stats: FetchStats | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.policy = policy
        self.stats = stats if stats is not None else FetchStats()
        self._sleep = sleep if sleep is not None else _sleep
        self._ee = require_initialized()

    def fetch(
        self,
        image: Any,
        grid: Grid,
        names: Sequence[str],
        key: Sequence[int],
        what: str,
        hint: str = "",
    ) -> np.ndarray:
        """Pixels of ``image`` on ``grid``: float32 ``(len(names), height, width)``, NaN masked.

        Parameters
        ----------
        image
            The request image (from :func:`~socmap.sources.earthengine._expr.request_image`).
        grid
            The request window's grid.
        names
            Band names expected in the response, in output order.
        key
            Stable identity of the request (seeds its jitter).
        what
            Description of the request for messages (window and bands).
        hint
            Extra advice appended to the message when retries run out.

        Raises
        ------
        EarthEngineError
            A 4xx other than 429 (at once, with the server's message), or retries exhausted.
        """
        ee = self._ee
        params = {"expression": image, "fileFormat": "NUMPY_NDARRAY", "grid": pixel_grid(grid)}
        attempts = int(self.policy.max_retries) + 1
        last = ""
        for attempt in range(attempts):
            self.stats.add(requests=1)
            try:
                raw = ee.data.computePixels(params)
            except Exception as exc:
                status = _http_status(exc)
                if status is not None:
                    last = f"HTTP {status}: {_one_line(exc).rstrip('.')}"
                    if status != 429 and status < 500:
                        raise EarthEngineError(
                            f"Earth Engine refused {what}: {last}; fix the catalog entry "
                            "(asset, band, dates and filters: an empty collection has no "
                            "bands), the grid or the project's permissions (nothing is retried "
                            "on a 4xx other than 429)"
                        ) from exc
                elif _transient(exc):
                    last = f"{type(exc).__name__}: {_one_line(exc)}"
                else:
                    raise
            else:
                block = _decode(raw, names, grid, what)
                self.stats.add(nbytes=int(raw.nbytes))
                return block
            if attempt + 1 < attempts:
                wait = self.policy.delay(key, attempt)
                logger.info(
                    "%s: %s; retry %d/%d in %.2f s",
                    what,
                    last,
                    attempt + 1,
                    self.policy.max_retries,
                    wait,
                )
                self.stats.add(retries=1)
                self._sleep(wait)
        raise EarthEngineError(
            f"{what} failed {attempts} times (max_retries={self.policy.max_retries}); last "
            f"error: {last}. Earth Engine is overloaded or unreachable: try again later"
            f"{hint}, or raise max_retries (CLI: --max-retries)"
        )


def _decode(raw: Any, names: Sequence[str], grid: Grid, what: str) -> np.ndarray:
    """Structured NPY response -> float32 ``(bands, h, w)`` with NaN for masked pixels."""
    fields = tuple(getattr(getattr(raw, "dtype", None), "names", None) or ())
    missing = [n for n in names if n not in fields]
    if missing or tuple(raw.shape) != grid.shape:
        raise EarthEngineError(
            f"unexpected computePixels response for {what}: shape {tuple(raw.shape)!r} with "
            f"fields {list(fields)!r}, expected {grid.shape!r} with bands {list(names)!r}"
        )
    out = np.empty((len(names), *grid.shape), dtype=np.float32)
    mask: Any = np.ma.getmaskarray(raw) if np.ma.isMaskedArray(raw) else None
    for i, name in enumerate(names):
        band = out[i]
        band[...] = np.ma.getdata(raw[name])  # cast to float32 in place, no temporary
        band[band == np.float32(MASKED)] = np.nan
        if mask is not None:
            band[mask[name] if mask.dtype.names else mask] = np.nan
    return out

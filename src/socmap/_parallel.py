"""Bounded thread-pool mapping for tiled readers and writers (cube builds, Earth Engine)."""

from __future__ import annotations

import concurrent.futures as cf
import numbers
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

__all__ = ["SCHEDULER_TIMEOUT_S", "bounded_map", "check_scheduler"]

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """Map ``fn`` over ``items`` on a thread pool, at most ``2 * workers`` in flight.

    Results come in completion order. The first error cancels what has not started and is
    re-raised once running tasks finish.
    """
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    it = iter(items)
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="socmap")
    try:
        pending = {pool.submit(fn, item) for item in islice(it, 2 * workers)}
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                result = fut.result()
                nxt = next(it, _SENTINEL)
                if nxt is not _SENTINEL:
                    pending.add(pool.submit(fn, nxt))  # type: ignore[arg-type]
                yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_SENTINEL = object()


#: Seconds :func:`check_scheduler` waits for a dask scheduler to answer (tests shorten it).
SCHEDULER_TIMEOUT_S = 10.0

_SCHEDULER_FIX = "drop --scheduler to compute here (--workers N sets the threads)"


def check_scheduler(address: str | None) -> None:
    """Refuse a ``--scheduler`` that is no address or where no dask scheduler answers.

    Commands call it before their first write, so a wrong address leaves nothing behind
    (and never blocks the corrected command). The connection is closed again: the tiles
    connect on their own once the run is set up.

    Parameters
    ----------
    address
        ``tcp://host:port`` (or another dask.distributed scheme); None: nothing to check.

    Raises
    ------
    ConfigError
        Not an address, or no scheduler answered within :data:`SCHEDULER_TIMEOUT_S`.
    MissingDependency
        dask.distributed is not installed.
    """
    from socmap.errors import ConfigError, MissingDependency

    if address is None:
        return
    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.comm.registry import get_backend
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise MissingDependency(
            f"--scheduler {address!r} needs dask.distributed (pip install distributed); "
            f"or {_SCHEDULER_FIX}"
        ) from exc
    try:
        # parsed first: an unknown scheme fails an assertion deep in Client otherwise
        scheme, location = parse_address(address.strip())
        get_backend(scheme)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise _not_an_address(address, exc) from None
    timeout = SCHEDULER_TIMEOUT_S
    try:
        with Client(address.strip(), timeout=timeout):
            pass
    except ValueError as exc:  # a scheme-specific address dask could not use
        raise _not_an_address(address, exc) from None
    except OSError:  # refused, unreachable or timed out: dask reports them all as OSError
        raise ConfigError(
            f"--scheduler {address!r}: no dask scheduler answered within {timeout:g} s; start "
            f"one there (`dask scheduler`, then `dask worker {address.strip()}`), or "
            f"{_SCHEDULER_FIX}"
        ) from None


def _not_an_address(address: str, exc: ValueError) -> Exception:
    """Build the error for an address dask cannot parse or use (at the parse or the connect)."""
    from socmap.errors import ConfigError

    return ConfigError(
        f"--scheduler {address!r} is not a dask scheduler address ({exc}); give "
        f"tcp://host:port, e.g. tcp://127.0.0.1:8786, or {_SCHEDULER_FIX}"
    )


def check_n_jobs(n_jobs: int) -> None:
    """Refuse a number of parallel fits joblib cannot use (0, or below -1).

    Parameters
    ----------
    n_jobs
        Folds fitted at once: 1 or more, or -1 for every core.

    Raises
    ------
    ConfigError
        ``n_jobs`` is 0 or below -1 (joblib fails on 0 deep inside the first fit).
    """
    if (
        isinstance(n_jobs, bool)
        or not isinstance(n_jobs, numbers.Integral)
        or (n_jobs < 1 and n_jobs != -1)
    ):
        from socmap.errors import ConfigError

        raise ConfigError(
            f"--jobs {n_jobs!r} must be a number of folds fitted at once, 1 or more, or -1 "
            "for every core (Python: n_jobs=)"
        )

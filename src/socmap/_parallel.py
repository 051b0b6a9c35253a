"""Bounded thread-pool mapping for tiled readers and writers (cube builds, Earth Engine)."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

__all__ = ["bounded_map"]

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

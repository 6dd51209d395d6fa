"""Thread-count helpers: how many OpenMP threads to use, and BLAS kept to one.

The core runs its own OpenMP threads and calls BLAS from inside them, so BLAS
must stay single-threaded there or the two thread pools oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import eqcore


def resolve_threads(threads: int | None) -> int:
    """None means every core OpenMP may use (``OMP_NUM_THREADS`` is honoured)."""
    return eqcore.max_threads() if threads is None else threads


@functools.cache
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit every loaded BLAS to one thread for the duration of the block."""
    with _controller().limit(limits=1, user_api="blas"):
        yield

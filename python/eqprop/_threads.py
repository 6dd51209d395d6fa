"""Thread-count helpers: how many OpenMP threads to use, and BLAS kept to one.

The core runs its own OpenMP threads; when it is set to call BLAS from inside
them, BLAS must stay single-threaded there or the two thread pools
oversubscribe the cores.
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
    """Limit every loaded BLAS to one thread for the duration of the block.

    Only when the core's products go through BLAS (``eqcore.set_gemm_path("blas")``):
    the default skinny kernels never call BLAS, and changing OpenBLAS's thread
    count around every call wakes its worker threads, which then compete with
    the core's OpenMP threads for the cores.
    """
    if eqcore.gemm_path()["path"] != "blas":
        yield
        return
    with _controller().limit(limits=1, user_api="blas"):
        yield

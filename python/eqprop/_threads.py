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
    """The thread count a call uses: ``eqcore.effective_threads`` (scikit-learn's semantics).

    None means every usable core (affinity and cgroup quota respected,
    ``OMP_NUM_THREADS`` honoured), n > 0 exactly n, -k all but k - 1.
    """
    return eqcore.effective_threads(threads)


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

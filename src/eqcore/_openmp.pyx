# cython: language_level=3, cdivision=True
"""What the core was compiled with: OpenMP or not, and how many threads it may use."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define EQCORE_OPENMP_ENABLED 1
    #else
    #define EQCORE_OPENMP_ENABLED 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_num_procs(void) { return 1; }
    #endif
    """
    int EQCORE_OPENMP_ENABLED
    int EQCORE_NATIVE
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil


def openmp_enabled() -> bool:
    """True when the core was compiled with OpenMP (parallel relaxation)."""
    return bool(EQCORE_OPENMP_ENABLED)


def native_build() -> bool:
    """True when the core was compiled with ``-march=native`` (EQPROP_NATIVE=1)."""
    return bool(EQCORE_NATIVE)


def max_threads() -> int:
    """Threads an OpenMP region may use by default (1 in a serial build)."""
    return omp_get_max_threads()


def num_procs() -> int:
    """Processors OpenMP sees (1 in a serial build)."""
    return omp_get_num_procs()


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def effective_threads(threads=None) -> int:
    """The number of OpenMP threads a call will use, with scikit-learn's semantics.

    Parameters
    ----------
    threads : int or None
        ``None``: every usable core (CPU affinity and cgroup quota respected),
        capped by ``OMP_NUM_THREADS`` when it is set. A positive n: exactly n.
        A negative -k: all usable cores but k - 1 (-1 is all of them), at
        least 1. 0 is an error. Always 1 in a serial build.

    Raises
    ------
    TypeError, ValueError
        ``threads`` is not None or a non-zero integer.
    """
    import numbers
    import os

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)):
        raise TypeError(f"threads must be None or a non-zero integer; got {threads!r}")
    if threads is not None and threads == 0:
        raise ValueError("threads must be non-zero: None for every core, n > 0 for exactly n, -k for all but k - 1")
    if threads is not None and not -(2**31) < threads < 2**31:
        raise ValueError(f"threads must be between -2147483647 and 2147483647; got {threads}")
    if not EQCORE_OPENMP_ENABLED:
        return 1
    cores = usable_cores()
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return max(1, min(cores, omp_get_max_threads()))
        return cores
    if threads < 0:
        return max(1, cores + 1 + int(threads))
    return int(threads)


# A thread is only worth starting for this much work (about 10 microseconds);
# below it the start-up and the final barrier cost more than they save, and on
# a busy machine a waiting thread can take a core from the one still working.
cdef double _min_flops_per_thread = 1e6


cdef int useful_threads(int threads, double flops, int max_tasks) noexcept nogil:
    """Threads worth starting for ``flops`` of work split into at most ``max_tasks`` pieces."""
    cdef double by_work = flops / (_min_flops_per_thread if _min_flops_per_thread > 1.0 else 1.0)
    if by_work > 1e9:
        by_work = 1e9
    return max(1, min(threads, min(max_tasks, <int> by_work)))


def set_parallel_threshold(double flops) -> None:
    """Set the work (in floating-point operations) a thread must get to be started.

    Default 1e6. Tests set 0 to force every thread to run even on tiny problems.
    """
    global _min_flops_per_thread
    if not flops >= 0:
        raise ValueError(f"flops must be >= 0; got {flops}")
    _min_flops_per_thread = flops


def parallel_threshold() -> float:
    """The work a thread must get to be started (see ``set_parallel_threshold``)."""
    return _min_flops_per_thread

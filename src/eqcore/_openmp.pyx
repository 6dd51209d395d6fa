# cython: language_level=3
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

# The one home of thread counts (see _openmp.pyx).
cdef int useful_threads(int threads, double flops, int max_tasks) noexcept nogil

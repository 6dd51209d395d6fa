# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C (rows x n) [+]= A (rows x k) @ B (k x n), row-major, for the few rows a thread owns.

Two implementations of the same product, chosen once per process:
``"skinny"`` (the register-blocked kernels of dense_kernels.h, AVX-512 / AVX2 /
portable picked from the CPU at run time) and ``"blas"`` (SciPy's BLAS, which
packs B on every call). ``set_gemm_path`` lets tests run both against the
NumPy reference, and lets benchmarks compare them.

Products whose left operand is the clamped input go through ``input_gemm``,
which skips the input's zeros when there are enough of them
(``set_sparse_threshold``).
"""

from cython cimport floating

from eqcore._blas cimport gemm_rm
from eqcore._kernels cimport (
    eq_best_isa, eq_count_nonzero_f32, eq_count_nonzero_f64, eq_dot_f32, eq_dot_f64,
    eq_gemm_f32, eq_gemm_f64, eq_listed_f32, eq_listed_f64, eq_sparse_f32, eq_sparse_f64,
)

cdef bint _use_blas = False
# The sparse products pay below about this fraction of non-zero entries in A
# (python tools/sparse_crossover.py: with zeros at random places the drive
# stops gaining near 20-35%, the update near 35%; images, whose zeros cluster,
# gain more; docs/performance.md).
cdef double _max_sparse_density = 0.3

_ISA_NAMES = {0: "portable", 1: "avx2", 2: "avx512"}
# The instruction set every kernel of every module runs with: read once per
# call by the entry points (current_isa) and passed down as an argument.
cdef int _isa = eq_best_isa()


cdef int current_isa() noexcept nogil:
    return _isa


cdef void small_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate,
                     floating* c, int ldc, int isa) noexcept nogil:
    if rows <= 0 or n <= 0:
        return
    if _use_blas:
        gemm_rm(False, False, rows, n, k, <floating> 1.0, a, lda, b, ldb,
                <floating> (1.0 if accumulate else 0.0), c, ldc)
    elif floating is float:
        eq_gemm_f32(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc)
    else:
        eq_gemm_f64(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc)


# Below this many output columns, dot products along k (with B^T) beat the
# column-vector kernels, which would leave most vector lanes idle: measured
# 80 against 41 GFLOP/s for 10 x 500 @ 500 x 10 on one AVX-512 core.
DEF NARROW_COLUMNS = 16


cdef void small_gemm_with_transpose(int rows, int n, int k, const floating* a, int lda,
                                    const floating* b, int ldb, const floating* bt,
                                    bint accumulate, floating* c, int ldc, int isa) noexcept nogil:
    """``small_gemm`` given also bt = B^T (n x k, row-major), used when n is narrow."""
    if n >= NARROW_COLUMNS or _use_blas or rows <= 0 or n <= 0:
        small_gemm(rows, n, k, a, lda, b, ldb, accumulate, c, ldc, isa)
    else:
        dot_gemm(rows, n, k, a, lda, bt, k, accumulate, c, ldc, isa)


cdef void dot_gemm(int rows, int n, int k, const floating* a, int lda,
                   const floating* bt, int ldbt, bint accumulate,
                   floating* c, int ldc, int isa) noexcept nogil:
    """C (rows x n) [+]= A (rows x k) @ B for B given as bt = B^T (n x k): dot products along k."""
    if rows <= 0 or n <= 0:
        return
    if _use_blas:
        gemm_rm(False, True, rows, n, k, <floating> 1.0, a, lda, bt, ldbt,
                <floating> (1.0 if accumulate else 0.0), c, ldc)
    elif floating is float:
        eq_dot_f32(isa, rows, n, k, a, lda, bt, ldbt, accumulate, c, ldc)
    else:
        eq_dot_f64(isa, rows, n, k, a, lda, bt, ldbt, accumulate, c, ldc)


cdef void input_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate, floating* c, int ldc,
                     int* idx, floating* val, bint rows_share_b, int isa) noexcept nogil:
    """``small_gemm`` for a product whose left operand holds the clamped input.

    Inputs such as images are often mostly zeros; when the block's fraction of
    non-zero entries is at most the sparse threshold, zero entries are skipped.
    ``rows_share_b``: B is too big to stay in cache (the drive x W_0), so each
    group of rows visits the k where any of its rows is non-zero and reads
    those rows of B once for the group (dense_kernels.h, listed product);
    otherwise every row of A visits only its own non-zeros (sparse_rows.h).
    ``idx`` and ``val`` are scratch for ``k`` entries each, owned by the
    calling thread (``val`` is unused when ``rows_share_b``).
    """
    cdef long nonzero
    if rows <= 0 or n <= 0:
        return
    if _max_sparse_density > 0 and not _use_blas:
        if floating is float:
            nonzero = eq_count_nonzero_f32(rows, k, a, lda)
        else:
            nonzero = eq_count_nonzero_f64(rows, k, a, lda)
        if nonzero <= _max_sparse_density * rows * k:
            if floating is float:
                if rows_share_b:
                    eq_listed_f32(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx)
                else:
                    eq_sparse_f32(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx, val)
            else:
                if rows_share_b:
                    eq_listed_f64(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx)
                else:
                    eq_sparse_f64(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx, val)
            return
    small_gemm(rows, n, k, a, lda, b, ldb, accumulate, c, ldc, isa)


def set_sparse_threshold(double density) -> None:
    """Use the sparse product for input blocks with at most this fraction of non-zeros.

    Default 0.3. ``0`` always multiplies densely, ``1`` always sparsely (tests
    run both against the NumPy reference). The BLAS path (``set_gemm_path``)
    is always dense. Not thread-safe: call it while no relaxation or update
    runs.
    """
    global _max_sparse_density
    if not 0 <= density <= 1:
        raise ValueError(f"density must be in [0, 1]; got {density}")
    _max_sparse_density = density


def sparse_threshold() -> float:
    """The input density at or below which the sparse product is used."""
    return _max_sparse_density


def set_gemm_path(str path, str isa="best") -> None:
    """Choose the relaxation's matrix product: ``"skinny"`` (default) or ``"blas"``.

    ``isa`` caps the instruction set of every kernel (products, convolutions,
    element-wise steps): ``"best"`` (what the CPU has), ``"avx512"``, ``"avx2"``
    or ``"portable"``; a level above the CPU's falls back to the best it has.
    Not thread-safe: call it while no relaxation runs.
    """
    global _use_blas, _isa
    if path not in ("skinny", "blas"):
        raise ValueError(f"path must be 'skinny' or 'blas'; got {path!r}")
    levels = {"best": -1, "portable": 0, "avx2": 1, "avx512": 2}
    if isa not in levels:
        raise ValueError(f"isa must be one of {sorted(levels)}; got {isa!r}")
    _use_blas = path == "blas"
    best = eq_best_isa()
    _isa = best if levels[isa] < 0 else min(levels[isa], best)


def gemm_path() -> dict:
    """The product in use: ``{"path": "skinny" | "blas", "isa": "avx512" | "avx2" | "portable"}``."""
    return {"path": "blas" if _use_blas else "skinny", "isa": _ISA_NAMES[_isa]}


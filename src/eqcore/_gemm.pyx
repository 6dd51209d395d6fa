# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C (rows x n) [+]= A (rows x k) @ B (k x n), row-major, for the few rows a thread owns.

Two implementations of the same product, chosen once per process:
``"skinny"`` (the register-blocked kernels of skinny_gemm.h, AVX-512 / AVX2 /
portable picked from the CPU at run time) and ``"blas"`` (SciPy's BLAS, which
packs B on every call). ``set_gemm_path`` lets tests run both against the
NumPy reference, and lets benchmarks compare them.
"""

from cython cimport floating

from eqcore._blas cimport gemm_rm

cdef extern from "skinny_gemm.h" nogil:
    void eq_gemm_f32(int R, int N, int K, const float* A, int lda, const float* B,
                     int ldb, int acc, float* C, int ldc)
    void eq_gemm_f64(int R, int N, int K, const double* A, int lda, const double* B,
                     int ldb, int acc, double* C, int ldc)
    void eq_dot_f32(int R, int N, int K, const float* A, int lda, const float* BT,
                    int ldbt, int acc, float* C, int ldc)
    void eq_dot_f64(int R, int N, int K, const double* A, int lda, const double* BT,
                    int ldbt, int acc, double* C, int ldc)
    void eq_set_isa(int isa)
    int eq_get_isa()

cdef bint _use_blas = False

_ISA_NAMES = {0: "portable", 1: "avx2", 2: "avx512"}


cdef void small_gemm(int rows, int n, int k, const floating* a, int lda,
                     const floating* b, int ldb, bint accumulate,
                     floating* c, int ldc) noexcept nogil:
    if rows <= 0 or n <= 0:
        return
    if _use_blas:
        gemm_rm(False, False, rows, n, k, <floating> 1.0, a, lda, b, ldb,
                <floating> (1.0 if accumulate else 0.0), c, ldc)
    elif floating is float:
        eq_gemm_f32(rows, n, k, a, lda, b, ldb, accumulate, c, ldc)
    else:
        eq_gemm_f64(rows, n, k, a, lda, b, ldb, accumulate, c, ldc)


# Below this many output columns, dot products along k (with B^T) beat the
# column-vector kernels, which would leave most vector lanes idle: measured
# 80 against 41 GFLOP/s for 10 x 500 @ 500 x 10 on one AVX-512 core.
DEF NARROW_COLUMNS = 16


cdef void small_gemm_with_transpose(int rows, int n, int k, const floating* a, int lda,
                                    const floating* b, int ldb, const floating* bt,
                                    bint accumulate, floating* c, int ldc) noexcept nogil:
    """``small_gemm`` given also bt = B^T (n x k, row-major), used when n is narrow."""
    if n >= NARROW_COLUMNS or _use_blas or rows <= 0 or n <= 0:
        small_gemm(rows, n, k, a, lda, b, ldb, accumulate, c, ldc)
    elif floating is float:
        eq_dot_f32(rows, n, k, a, lda, bt, k, accumulate, c, ldc)
    else:
        eq_dot_f64(rows, n, k, a, lda, bt, k, accumulate, c, ldc)


def set_gemm_path(str path, str isa="best") -> None:
    """Choose the relaxation's matrix product: ``"skinny"`` (default) or ``"blas"``.

    ``isa`` caps the skinny kernels' instruction set: ``"best"`` (what the CPU
    has), ``"avx512"``, ``"avx2"`` or ``"portable"``. Not thread-safe: call it
    while no relaxation runs.
    """
    global _use_blas
    if path not in ("skinny", "blas"):
        raise ValueError(f"path must be 'skinny' or 'blas'; got {path!r}")
    levels = {"best": -1, "portable": 0, "avx2": 1, "avx512": 2}
    if isa not in levels:
        raise ValueError(f"isa must be one of {sorted(levels)}; got {isa!r}")
    _use_blas = path == "blas"
    eq_set_isa(levels[isa])


def gemm_path() -> dict:
    """The product in use: ``{"path": "skinny" | "blas", "isa": "avx512" | "avx2" | "portable"}``."""
    return {"path": "blas" if _use_blas else "skinny", "isa": _ISA_NAMES[eq_get_isa()]}


eq_set_isa(-1)  # the best instruction set this CPU has

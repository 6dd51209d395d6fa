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

``bf16_gemm`` is the bfloat16 product (precision="bfloat16"): AVX512_BF16 where
the CPU has it and the instruction set is AVX-512, else the fallback (operands
rounded to bfloat16 and widened back, then the float32 products above);
``set_gemm_path(..., bf16="fallback")`` forces the fallback.
"""

from cython cimport floating
from libc.stdint cimport uint32_t

from eqcore._blas cimport gemm_rm
from eqcore._kernels cimport (
    eq_amx_available, eq_bf16_gemm, eq_bf16_gemm_amx, eq_bf16_pack_rows_native, eq_bf16_pairs,
    eq_bf16_round_f32, eq_has_bf16,
    eq_best_isa, eq_count_nonzero_f32, eq_count_nonzero_f64, eq_dot_f32, eq_dot_f64,
    eq_gemm_f32, eq_gemm_f64, eq_listed_f32, eq_listed_f64, eq_sparse_f32, eq_sparse_f64, eq_strips_f32,
    eq_strips_f64, EQ_STRIP_ROWS, EQ_STRIP_TAIL,
)

cdef bint _use_blas = False
# The sparse products pay below about these fractions of non-zero entries in A
# (python tools/sparse_crossover.py --threads 2, 2026-12-07 sixth session: with
# zeros at random places the drive's column strips stop gaining near 45%, the
# update's column tiles near 55%; images, whose zeros cluster, gain more;
# docs/performance.md): the drive and the other input products, and the update
# of W_0 (rows_share_b = False), whose 64-row blocks of an MNIST x^T reach 30-45%.
cdef double _max_sparse_density = 0.3
cdef double _max_update_density = 0.5
# The event-driven relaxation (_relax.pyx) sends each row's state changes
# through the weights after a call's first step: through the per-row sparse
# product when at most this fraction of the row's entries changed, else with
# the neighbouring rows' through the listed product (bfloat16: recomputed).
# `python tools/delta_crossover.py --run RUN --thresholds 0,0.01,0.03,0.1,1`
# (one thread, batch 20, milliseconds; docs/performance.md): a trained
# 784-500-500-10 from its fixed point 28.7 / 2.4 / 2.1 / 1.8 / 1.8, untrained on
# MNIST 28.8 / 25.5 / 25.5 / 25.3 / 26.1, states that keep moving (random
# inputs, steps of 0.1) 28.9 / 24.8 / 24.8 / 24.8 / 31.5, the same with
# 784-500-500-500-10 23.4 / 20.9 / 20.8 / 20.7 / 30.0.
cdef double _max_delta_density = 0.1

_ISA_NAMES = {0: "portable", 1: "avx2", 2: "avx512"}
# The instruction set every kernel of every module runs with: read once per
# call by the entry points (current_isa) and passed down as an argument.
cdef int _isa = eq_best_isa()


cdef int current_isa() noexcept nogil:
    return _isa


cdef int column_start(int n, int parts, int part) noexcept nogil:
    """The first of the columns [start(part), start(part + 1)) of part ``part`` of ``n`` columns cut
    into ``parts`` blocks of whole vectors (the last ones may be short or empty).

    The first connection's drive splits W_0's columns this way over the
    threads, thread p taking part p (_relax.pyx).
    """
    cdef int width = ((n + parts - 1) // parts + 15) // 16 * 16
    return min(n, part * width)


cdef inline size_t _strip_ints(int k) noexcept nogil:
    # eq_strips' ints (a multiple of 32, so that its values after them are aligned)
    return <size_t> EQ_STRIP_ROWS * (k + 2)


cdef size_t shared_scratch(int k) noexcept nogil:
    """The ints of scratch ``input_gemm`` needs with ``rows_share_b`` (room for float64 values included)."""
    return _strip_ints(k) + 2 * <size_t> EQ_STRIP_ROWS * (k + EQ_STRIP_TAIL)


cdef int input_half(int n_in) noexcept nogil:
    """Where the first connection's input rows split in two: half of them (rounded down), or 0
    (no split) below 128 inputs.

    A dense drive is the sum of x W_0 over each half (_relax.pyx), and with two or more
    threads the update of W_0 gives each half to the threads that drove with it: each
    core then keeps its half of W_0 in its cache. An image's half is its upper rows.
    """
    return n_in // 2 if n_in >= 128 else 0


cdef double delta_density() noexcept nogil:
    """The largest fraction of a row's entries whose changes take the per-row sparse product
    (0: the event-driven relaxation is off)."""
    return _max_delta_density


cdef bint blas_products() noexcept nogil:
    """Whether the float products run on BLAS (``set_gemm_path("blas")``)."""
    return _use_blas


# AVX512_BF16: read from the CPU once; used unless set_gemm_path(..., bf16="fallback")
# or an instruction set below AVX-512 was chosen.
cdef bint _cpu_bf16 = eq_has_bf16()
cdef bint _bf16_native_allowed = True
# AMX (Intel's tile unit): with AVX512_BF16 native products, the dense ones, the direct
# convolutions and the max-pooled transposed convolutions run on its tiles where the CPU
# has AMX-BF16 and the kernel grants this process the tile state (asked once, here),
# unless set_gemm_path(..., bf16="native").
cdef bint _cpu_amx = _cpu_bf16 and eq_amx_available()
cdef bint _amx_allowed = True


# The bottom-up convolution's algorithm (set_gemm_path(..., conv=...)).
cdef int _conv_algorithm = CONV_AUTO
_CONV_NAMES = {CONV_AUTO: "auto", CONV_DIRECT: "direct", CONV_WINOGRAD: "winograd"}


cdef int conv_algorithm() noexcept nogil:
    return _conv_algorithm


cdef bint amx_active() noexcept nogil:
    """Whether the native bfloat16 products run on AMX tiles (read per call, like current_bf16)."""
    return _cpu_amx and _amx_allowed


cdef int current_bf16() noexcept nogil:
    """The bfloat16 products' mode for this call: BF16_NATIVE or BF16_FALLBACK."""
    if _bf16_native_allowed and _cpu_bf16 and _isa == 2:
        return BF16_NATIVE
    return BF16_FALLBACK


cdef void bf16_gemm(int mode, int rows, int n, int k, const float* a, int lda, const void* b,
                    const float* bt, bint accumulate, float* c, int ldc, float* scratch,
                    int* idx, bint sparse_input, int isa) noexcept nogil:
    """C (rows x n) [+]= bf16(A) (rows x k) @ B, B given as its bfloat16 copy; float32 sums.

    ``mode`` BF16_NATIVE: ``b`` is B's pair layout (bf16_kernels.h) and
    ``scratch`` holds rows x ceil(k / 2) words (A's packed bfloat16 rows).
    BF16_FALLBACK: ``b`` is B rounded to bfloat16 as float32 (k x n), ``bt``
    its transpose (n x k, for a narrow n as in ``small_gemm_with_transpose``)
    or NULL, and ``scratch`` holds rows x k floats (A rounded). With
    ``sparse_input``, A is the clamped input: its zeros are skipped as by
    ``input_gemm`` (``idx``: scratch for ``shared_scratch(k)`` ints). ``scratch`` and ``idx`` are
    owned by the calling thread.
    """
    cdef int pairs
    cdef bint listed
    if rows <= 0 or n <= 0:
        return
    if mode == BF16_NATIVE:
        pairs = eq_bf16_pairs(k)
        eq_bf16_pack_rows_native(rows, k, a, lda, <uint32_t*> scratch, pairs)
        listed = (sparse_input and _max_sparse_density > 0
                  and eq_count_nonzero_f32(isa, rows, k, a, lda) <= _max_sparse_density * rows * k)
        if amx_active() and not listed:
            eq_bf16_gemm_amx(rows, n, pairs, <const uint32_t*> scratch, pairs, <const uint32_t*> b,
                             accumulate, c, ldc)
        else:
            eq_bf16_gemm(rows, n, pairs, <const uint32_t*> scratch, pairs, <const uint32_t*> b,
                         accumulate, c, ldc, idx if listed else NULL)
        return
    eq_bf16_round_f32(rows, k, a, lda, scratch, k)
    if sparse_input:
        input_gemm(rows, n, k, <const float*> scratch, k, <const float*> b, n, accumulate, c, ldc,
                   idx, <float*> NULL, True, isa)
    elif bt != NULL:
        small_gemm_with_transpose(rows, n, k, <const float*> scratch, k, <const float*> b, n, bt,
                                  accumulate, c, ldc, isa)
    else:
        small_gemm(rows, n, k, <const float*> scratch, k, <const float*> b, n, accumulate, c, ldc, isa)


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
    non-zero entries is at most the sparse threshold (``set_sparse_threshold``:
    with ``rows_share_b`` the drive's, else the update's), zero entries are skipped.
    ``rows_share_b``: B is too big to stay in cache (the drive x W_0), so the
    rows take B's columns in strips and its rows in chunks, each chunk's lines
    read once for all of them (sparse_rows.h, ``eq_strips``); ``idx`` is then
    scratch for ``shared_scratch(k)`` ints, ``val`` unused. Otherwise every row
    of A visits only its own non-zeros (``eq_sparse``), ``idx`` and ``val``
    scratch for min(rows, EQ_SPARSE_GROUP) k entries each. Scratch is owned by
    the calling thread.
    """
    cdef long nonzero
    cdef double threshold = _max_sparse_density if rows_share_b else _max_update_density
    if rows <= 0 or n <= 0:
        return
    if threshold > 0 and not _use_blas:
        if floating is float:
            nonzero = eq_count_nonzero_f32(isa, rows, k, a, lda)
        else:
            nonzero = eq_count_nonzero_f64(isa, rows, k, a, lda)
        if nonzero <= threshold * rows * k:
            if floating is float:
                if rows_share_b:
                    eq_strips_f32(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx,
                                  <float*> (idx + _strip_ints(k)))
                else:
                    eq_sparse_f32(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx, val)
            else:
                if rows_share_b:
                    eq_strips_f64(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx,
                                  <double*> (idx + _strip_ints(k)))
                else:
                    eq_sparse_f64(isa, rows, n, k, a, lda, b, ldb, accumulate, c, ldc, idx, val)
            return
    small_gemm(rows, n, k, a, lda, b, ldb, accumulate, c, ldc, isa)


cdef double _fraction(double density) except? -1:
    """``density`` if it is a fraction in [0, 1] (NaN is not), else a ValueError."""
    if not 0 <= density <= 1:
        raise ValueError(f"density must be in [0, 1]; got {density}")
    return density


def set_sparse_threshold(double density, update=None) -> None:
    """Use the sparse products for input blocks with at most this fraction of non-zeros.

    ``density`` is the drive's (x W_0, default 0.3), ``update`` the update of
    W_0's (x^T's blocks of 64 rows, default 0.5); ``update=None`` sets it to
    ``density`` too. ``0`` always multiplies densely, ``1`` always sparsely
    (tests run both against the NumPy reference). The BLAS path
    (``set_gemm_path``) is always dense. Not thread-safe: call it while no
    relaxation or update runs.
    """
    global _max_sparse_density, _max_update_density
    drive = _fraction(density)
    _max_update_density = drive if update is None else _fraction(update)
    _max_sparse_density = drive


def sparse_threshold(bint update=False) -> float:
    """The input density at or below which the drive's (or with ``update``, the update's) sparse product is used."""
    return _max_update_density if update else _max_sparse_density


def set_delta_threshold(double density) -> None:
    """Choose how the relaxation sends each row's state changes through the weights (0: it does not).

    In the relaxation of a dense chain (any solver, float32, float64 or
    bfloat16 products), the bottom-up and top-down inputs are computed at a
    call's first step and afterwards updated by the product of the states'
    changes since the previous step, skipping the entries that did not change
    (near a fixed point most units sit at 0 or 1 and the rest stop moving),
    instead of recomputing the product of the whole states. A row in which at
    most a fraction ``density`` of the source layer's entries changed takes
    the per-row sparse product (a weight row per changed entry); the others
    take the listed product with their neighbouring rows (each weight row
    read once per group of rows; bfloat16 rows recompute). ``0`` turns it off
    (the products of the whole states at every step, as before); the default
    0.1 was measured (``tools/delta_crossover.py``). The results differ by the
    rounding of the accumulated changes. Chains with a readout or conv layers,
    and chains without a connection at least 64 wide on both sides past the
    input's (784-500-10), always recompute. Not thread-safe: call it while no
    relaxation runs.
    """
    global _max_delta_density
    _max_delta_density = _fraction(density)


def delta_threshold() -> float:
    """The fraction of a row's changed entries at or below which the event-driven relaxation
    sends them through the per-row sparse product (0: it is off)."""
    return _max_delta_density


def set_gemm_path(str path, str isa="best", str bf16="best", str conv="auto") -> None:
    """Choose the relaxation's matrix product: ``"skinny"`` (default) or ``"blas"``.

    ``isa`` caps the instruction set of every kernel (products, convolutions,
    element-wise steps): ``"best"`` (what the CPU has), ``"avx512"``, ``"avx2"``
    or ``"portable"``; a level above the CPU's falls back to the best it has.
    ``bf16`` chooses the bfloat16 products (precision="bfloat16"): ``"best"``
    uses AMX tiles for the dense products, the direct convolutions and the
    max-pooled transposed convolutions where the CPU has AMX-BF16 (and
    AVX512_BF16 for the rest), else AVX512_BF16 where the CPU has it, when
    ``isa`` allows AVX-512; ``"amx"`` is ``"best"``; ``"native"`` keeps to the
    AVX512_BF16 vector instructions; ``"fallback"`` always rounds the operands
    and runs the float32 products of ``path`` and ``isa``. ``conv`` chooses the
    bottom-up convolutions: ``"auto"`` runs Winograd's F(m x m, k x k) where
    it is faster (kernels of 2 to 7 with at least 32 input channels, in float64,
    float32 and bfloat16 without AVX512_BF16 products), else the direct
    convolution; ``"direct"`` and ``"winograd"`` force one (``"winograd"``
    still leaves kernels of 1 or above 7, and AMX convolutions, direct).
    Not thread-safe: call it while no relaxation runs.
    """
    global _use_blas, _isa, _bf16_native_allowed, _amx_allowed
    if path not in ("skinny", "blas"):
        raise ValueError(f"path must be 'skinny' or 'blas'; got {path!r}")
    levels = {"best": -1, "portable": 0, "avx2": 1, "avx512": 2}
    if isa not in levels:
        raise ValueError(f"isa must be one of {sorted(levels)}; got {isa!r}")
    if bf16 not in ("best", "amx", "native", "fallback"):
        raise ValueError(f"bf16 must be 'best', 'amx', 'native' or 'fallback'; got {bf16!r}")
    set_conv_algorithm(conv)
    _use_blas = path == "blas"
    best = eq_best_isa()
    _isa = best if levels[isa] < 0 else min(levels[isa], best)
    _bf16_native_allowed = bf16 != "fallback"
    _amx_allowed = bf16 in ("best", "amx")


def set_conv_algorithm(str conv) -> None:
    """Choose the bottom-up convolutions' algorithm alone (``set_gemm_path``'s ``conv``), the rest unchanged.

    ``"auto"`` (default), ``"direct"`` or ``"winograd"``. Not thread-safe: call it while no
    relaxation runs.
    """
    global _conv_algorithm
    conv_codes = {name: code for code, name in _CONV_NAMES.items()}
    if conv not in conv_codes:
        raise ValueError(f"conv must be 'auto', 'direct' or 'winograd'; got {conv!r}")
    _conv_algorithm = conv_codes[conv]


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX-BF16 tiles and this process may use them (Linux grants it on request)."""
    return bool(_cpu_amx)


def cpu_has_bf16() -> bool:
    """Whether this CPU has the AVX512_BF16 instructions."""
    return bool(_cpu_bf16)


def gemm_path() -> dict:
    """The products in use.

    Returns
    -------
    dict
        ``path`` (``"skinny"`` or ``"blas"``), ``isa`` (``"avx512"``,
        ``"avx2"`` or ``"portable"``) and ``bf16``: how precision="bfloat16"
        multiplies, ``"amx"`` (AMX tiles for the dense products, AVX512_BF16
        for the rest), ``"avx512bf16"`` (the native vector instructions) or
        ``"fallback"`` (rounded operands, the float32 products); ``conv``:
        ``"auto"``, ``"direct"`` or ``"winograd"`` (``set_gemm_path``).
    """
    return {"path": "blas" if _use_blas else "skinny", "isa": _ISA_NAMES[_isa],
            "bf16": _bf16_kernel_name(), "conv": _CONV_NAMES[_conv_algorithm]}


def _bf16_kernel_name() -> str:
    if current_bf16() != BF16_NATIVE:
        return "fallback"
    return "amx" if amx_active() else "avx512bf16"


"""eqcore: the compiled core of eqprop (Cython + OpenMP).

The functions here are unchecked: they trust their callers (``eqprop``) to pass
C-contiguous arrays of one floating dtype with consistent shapes. Use
``eqprop.EqPropNetwork`` unless you are writing a new front end.
"""

from __future__ import annotations

import os

# A mini-batch of a small network is a few parallel regions of tens of microseconds each.
# With libgomp's default wait policy the worker threads go to sleep between them, and
# waking them on a VM costs as much as the work: 784-500-10 on 2 threads trained at 42,000
# examples/s, against 81,000 when the workers spin for a while first (docs/performance.md,
# tools/epoch_speed.py). So unless the user chose a policy, the threads spin for up to
# 3,000,000 iterations (milliseconds) before sleeping. libgomp reads these variables when it
# is loaded, which is at the first import below, unless another module loaded it first.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    os.environ["GOMP_SPINCOUNT"] = "3000000"

from eqcore._gemm import (
    cpu_has_amx,
    cpu_has_bf16,
    delta_threshold,
    gemm_path,
    set_conv_algorithm,
    set_delta_threshold,
    set_gemm_path,
    set_sparse_threshold,
    sparse_threshold,
)
from eqcore._engine import KIND_CODES, N_GEOMETRY_FIELDS, POOL_CODES, Chain
from eqcore._openmp import (
    effective_threads,
    max_threads,
    native_build,
    num_procs,
    openmp_enabled,
    parallel_threshold,
    set_parallel_threshold,
    usable_cores,
)
from eqcore._optim import (
    OPTIMIZER_ADAM,
    OPTIMIZER_MOMENTUM,
    OPTIMIZER_NESTEROV,
    OPTIMIZER_SGD,
    optimizer_step,
)
from eqcore._relax import SOLVER_ALTERNATING, SOLVER_EULER, SOLVER_FIXED_POINT, relax_batch
from eqcore._epoch import train_batches
from eqcore._update import apply_ep_update

__all__ = [
    "Chain",
    "KIND_CODES",
    "N_GEOMETRY_FIELDS",
    "OPTIMIZER_ADAM",
    "OPTIMIZER_MOMENTUM",
    "OPTIMIZER_NESTEROV",
    "OPTIMIZER_SGD",
    "POOL_CODES",
    "effective_threads",
    "usable_cores",
    "SOLVER_ALTERNATING",
    "SOLVER_EULER",
    "SOLVER_FIXED_POINT",
    "apply_ep_update",
    "build_info",
    "cpu_has_amx",
    "cpu_has_bf16",
    "delta_threshold",
    "gemm_path",
    "set_conv_algorithm",
    "set_delta_threshold",
    "set_gemm_path",
    "set_parallel_threshold",
    "set_sparse_threshold",
    "sparse_threshold",
    "max_threads",
    "native_build",
    "num_procs",
    "openmp_enabled",
    "optimizer_step",
    "parallel_threshold",
    "relax_batch",
    "train_batches",
]


def build_info() -> dict:
    """What this core was built with and what it runs on.

    Returns
    -------
    dict
        ``openmp`` (bool), ``max_threads`` (int), ``native`` (bool, built with
        ``-march=native``), ``kernel`` (the relaxation's matrix product and
        the instruction set it runs with, ``gemm_path()``), ``bfloat16``
        (``cpu``: whether the CPU has AVX512_BF16; ``amx``: whether it has
        AMX-BF16 tiles this process may use; ``kernel``: what
        precision="bfloat16" runs, ``"amx"``, ``"avx512bf16"`` or ``"fallback"``),
        ``sparse_input_density`` (inputs
        with at most this fraction of non-zeros take the sparse drive),
        ``sparse_update_density`` (the same for the update of W_0's blocks),
        ``state_change_density`` (``delta_threshold()``: the relaxation sends
        a layer's state changes through the weights when at most this fraction
        of its entries changed) and ``blas``: a list of the BLAS libraries loaded in
        this process as threadpoolctl reports them (the one ``eqcore`` calls is
        SciPy's, through ``scipy.linalg.cython_blas``).
    """
    from threadpoolctl import threadpool_info

    blas = [
        {
            "library": entry.get("internal_api"),
            "version": entry.get("version"),
            "threading": entry.get("threading_layer"),
            "architecture": entry.get("architecture"),
            "path": entry.get("filepath"),
        }
        for entry in threadpool_info()
        if entry.get("user_api") == "blas"
    ]
    return {
        "openmp": openmp_enabled(),
        "max_threads": max_threads(),
        "native": native_build(),
        "kernel": gemm_path(),
        "bfloat16": {"cpu": cpu_has_bf16(), "amx": cpu_has_amx(), "kernel": gemm_path()["bf16"]},
        "sparse_input_density": sparse_threshold(),
        "sparse_update_density": sparse_threshold(update=True),
        "state_change_density": delta_threshold(),
        "blas": blas,
    }

# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Optimizer steps on the parameters, in place, nogil: SGD, momentum, Nesterov, Adam.

Given g, the EP estimate of dJ/dtheta (``apply_ep_update`` into zeroed
arrays with scale -1 / (beta batch)), every parameter array k gets one step
with its own learning rate lr_k and weight decay wd_k, following PyTorch's
``torch.optim.SGD`` (dampening 0) and ``torch.optim.Adam`` (amsgrad off):

    d = g + wd theta                                 (L2 weight decay, as PyTorch's weight_decay)
    sgd:       theta -= lr d
    momentum:  b = mu b + d;  theta -= lr b          (b starts at 0, so b_1 = d_1 as in PyTorch)
    nesterov:  b = mu b + d;  theta -= lr (d + mu b)
    adam:      m = m + (1 - beta1) (d - m)           (m = beta1 m + (1 - beta1) d, PyTorch's lerp)
               v = beta2 v + (1 - beta2) d^2
               theta -= lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The work is split into fixed blocks of elements spread over the threads; each
element is computed by the same arithmetic whatever the thread count, so the
result does not depend on it. Arithmetic is in the parameters' dtype, scalar
hyperparameters arrive as double and are cast once (bias corrections are
computed in double first, as PyTorch computes them in Python floats).
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport isfinite, pow, sqrt
from libc.stdlib cimport free, malloc

from eqcore._openmp cimport useful_threads

import numpy as np

DEF BLOCK = 4096

cdef enum:
    KIND_SGD = 0
    KIND_MOMENTUM = 1
    KIND_NESTEROV = 2
    KIND_ADAM = 3

OPTIMIZER_SGD = KIND_SGD
OPTIMIZER_MOMENTUM = KIND_MOMENTUM
OPTIMIZER_NESTEROV = KIND_NESTEROV
OPTIMIZER_ADAM = KIND_ADAM


cdef void _sgd(floating* theta, const floating* grad, Py_ssize_t n, floating lr,
               floating wd) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d
    for i in range(n):
        d = grad[i]
        if wd != 0:
            d = d + wd * theta[i]
        theta[i] = theta[i] - lr * d


cdef void _momentum(floating* theta, const floating* grad, floating* buf, Py_ssize_t n,
                    floating lr, floating wd, floating mu, bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d, b
    for i in range(n):
        d = grad[i]
        if wd != 0:
            d = d + wd * theta[i]
        b = mu * buf[i] + d
        buf[i] = b
        if nesterov:
            d = d + mu * b
        else:
            d = b
        theta[i] = theta[i] - lr * d


cdef void _adam(floating* theta, const floating* grad, floating* m, floating* v, Py_ssize_t n,
                floating wd, floating one_minus_beta1, floating beta2, floating one_minus_beta2,
                floating step_size, floating correction2_sqrt, floating eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating d, first, second
    for i in range(n):
        d = grad[i]
        if wd != 0:
            d = d + wd * theta[i]
        first = m[i] + one_minus_beta1 * (d - m[i])
        second = beta2 * v[i] + one_minus_beta2 * d * d
        m[i] = first
        v[i] = second
        theta[i] = theta[i] - step_size * first / (sqrt(second) / correction2_sqrt + eps)


cdef int _check_size(Py_ssize_t got, Py_ssize_t expected, Py_ssize_t j) except -1:
    if got != expected:
        raise ValueError(f"array {j} of the gradient or state has {got} elements; its parameter has {expected}")
    return 0


cdef bint _step(floating* dtype_tag, int kind, list params, list grads, list first, list second,
                const double[::1] lrs, const double[::1] weight_decays, double momentum,
                double beta1, double beta2, double eps, long long step, int check_from,
                int threads) except -1:
    cdef Py_ssize_t n_arrays = len(params), j, t, n_tasks = 0, start, count
    cdef floating** P = NULL
    cdef floating** G = NULL
    cdef floating** B1 = NULL
    cdef floating** B2 = NULL
    cdef Py_ssize_t* sizes = NULL
    cdef Py_ssize_t* task_array = NULL
    cdef Py_ssize_t* task_start = NULL
    cdef floating* step_sizes = NULL
    cdef floating* corrections = NULL
    cdef floating[::1] view
    cdef const floating[::1] grad_view
    cdef double total = 0.0, correction1, correction2
    cdef int n_threads
    cdef bint finite = True
    cdef floating* theta
    try:
        P = <floating**> malloc(n_arrays * sizeof(floating*))
        G = <floating**> malloc(n_arrays * sizeof(floating*))
        B1 = <floating**> malloc(n_arrays * sizeof(floating*))
        B2 = <floating**> malloc(n_arrays * sizeof(floating*))
        sizes = <Py_ssize_t*> malloc(n_arrays * sizeof(Py_ssize_t))
        step_sizes = <floating*> malloc(n_arrays * sizeof(floating))
        corrections = <floating*> malloc(n_arrays * sizeof(floating))
        if not (P and G and B1 and B2 and sizes and step_sizes and corrections):
            raise MemoryError()
        for j in range(n_arrays):
            view = params[j]
            sizes[j] = view.shape[0]
            P[j] = &view[0] if sizes[j] else NULL
            grad_view = grads[j]
            _check_size(grad_view.shape[0], sizes[j], j)
            G[j] = <floating*> &grad_view[0] if sizes[j] else NULL  # only read
            B1[j] = B2[j] = NULL
            if first is not None:
                view = first[j]
                _check_size(view.shape[0], sizes[j], j)
                B1[j] = &view[0] if sizes[j] else NULL
            if second is not None:
                view = second[j]
                _check_size(view.shape[0], sizes[j], j)
                B2[j] = &view[0] if sizes[j] else NULL
            if kind == KIND_ADAM:
                # bias corrections in double, cast once (as PyTorch's Python floats)
                correction1 = 1.0 - pow(beta1, <double> step)
                correction2 = 1.0 - pow(beta2, <double> step)
                step_sizes[j] = <floating> (lrs[j] / correction1)
                corrections[j] = <floating> sqrt(correction2)
            n_tasks += (sizes[j] + BLOCK - 1) // BLOCK
            total += sizes[j]
        task_array = <Py_ssize_t*> malloc(max(n_tasks, 1) * sizeof(Py_ssize_t))
        task_start = <Py_ssize_t*> malloc(max(n_tasks, 1) * sizeof(Py_ssize_t))
        if not (task_array and task_start):
            raise MemoryError()
        t = 0
        for j in range(n_arrays):
            for start in range(0, sizes[j], BLOCK):
                task_array[t] = j
                task_start[t] = start
                t += 1
        n_threads = useful_threads(threads, 10.0 * total, <int> n_tasks)
        for t in prange(n_tasks, nogil=True, num_threads=n_threads, schedule="static"):
            j = task_array[t]
            start = task_start[t]
            count = min(<Py_ssize_t> BLOCK, sizes[j] - start)
            if kind == KIND_SGD:
                _sgd(P[j] + start, G[j] + start, count, <floating> lrs[j], <floating> weight_decays[j])
            elif kind == KIND_ADAM:
                _adam(P[j] + start, G[j] + start, B1[j] + start, B2[j] + start, count,
                      <floating> weight_decays[j], <floating> (1.0 - beta1), <floating> beta2,
                      <floating> (1.0 - beta2), step_sizes[j], corrections[j], <floating> eps)
            else:
                _momentum(P[j] + start, G[j] + start, B1[j] + start, count, <floating> lrs[j],
                          <floating> weight_decays[j], <floating> momentum, kind == KIND_NESTEROV)
        with nogil:
            for j in range(check_from, n_arrays):
                theta = P[j]
                for start in range(sizes[j]):
                    if not isfinite(theta[start]):
                        finite = False
    finally:
        free(P)
        free(G)
        free(B1)
        free(B2)
        free(sizes)
        free(step_sizes)
        free(corrections)
        free(task_array)
        free(task_start)
    return finite


def optimizer_step(int kind, list params, list grads, list first, list second,
                   const double[::1] lrs, const double[::1] weight_decays, double momentum=0.0,
                   double beta1=0.9, double beta2=0.999, double eps=1e-8, long long step=1,
                   int check_from=0, int threads=1) -> bool:
    """One optimizer step on every array of ``params``, in place.

    Parameters
    ----------
    kind : int
        ``OPTIMIZER_SGD``, ``OPTIMIZER_MOMENTUM``, ``OPTIMIZER_NESTEROV`` or ``OPTIMIZER_ADAM``.
    params, grads : list of 1-D C-contiguous arrays
        The parameters (flat views) and their gradients, one dtype throughout.
    first, second : list of 1-D arrays or None
        The optimizer's state, updated in place: the momentum buffers (first;
        second None), Adam's first and second moments, or None for SGD.
    lrs, weight_decays : float64 arrays
        One learning rate and one L2 weight decay per array.
    momentum : float
        mu of the momentum and Nesterov steps.
    beta1, beta2, eps : float
        Adam's coefficients.
    step : int
        Adam's step count t, from 1 (this step included): the bias corrections use it.
    check_from : int
        Arrays ``check_from`` .. end are checked for finiteness after the step
        (the trainer passes the biases, as ``apply_ep_update`` checks them).
    threads : int
        OpenMP threads at most.

    Returns
    -------
    bool
        Whether the checked arrays are all finite.

    Unchecked core entry point beyond the structural checks that protect
    memory; ``eqprop.optim`` validates the hyperparameters first.
    """
    cdef Py_ssize_t n = len(params), j
    if kind not in (OPTIMIZER_SGD, OPTIMIZER_MOMENTUM, OPTIMIZER_NESTEROV, OPTIMIZER_ADAM):
        raise ValueError(f"kind must be one of the OPTIMIZER_ codes; got {kind}")
    if n == 0:
        return True
    if len(grads) != n or lrs.shape[0] != n or weight_decays.shape[0] != n:
        raise ValueError("grads, lrs and weight_decays need one entry per parameter array")
    if kind != OPTIMIZER_SGD and (first is None or len(first) != n):
        raise ValueError("this optimizer needs a state array (first) per parameter array")
    if kind == OPTIMIZER_ADAM and (second is None or len(second) != n):
        raise ValueError("Adam needs a second-moment array per parameter array")
    if kind == OPTIMIZER_ADAM and step < 1:
        raise ValueError(f"step counts from 1; got {step}")
    if kind == OPTIMIZER_SGD:
        first = second = None
    elif kind != OPTIMIZER_ADAM:
        second = None
    dtype = np.asarray(params[0]).dtype
    for group in (params, grads, first, second):
        if group is None:
            continue
        for j in range(n):
            array = group[j]
            if (not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1
                    or not array.flags.c_contiguous):
                raise ValueError("every array must be a 1-D C-contiguous array of the parameters' dtype")
            if group is not grads and not array.flags.writeable:
                raise ValueError("the parameters and the optimizer state must be writeable")
    if not 0 <= check_from <= n:
        raise ValueError(f"check_from must be in 0 .. {n}; got {check_from}")
    if dtype == np.float32:
        return _step(<float*> NULL, kind, params, grads, first, second, lrs, weight_decays, momentum,
                     beta1, beta2, eps, step, check_from, threads)
    if dtype == np.float64:
        return _step(<double*> NULL, kind, params, grads, first, second, lrs, weight_decays, momentum,
                     beta1, beta2, eps, step, check_from, threads)
    raise TypeError(f"the parameters must be float32 or float64; got {dtype}")

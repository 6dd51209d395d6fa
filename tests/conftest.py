import os
from pathlib import Path

import numpy as np
import pytest

import eqprop

ARCHITECTURES = {
    "1 hidden": [7, 6, 3],
    "2 hidden": [9, 8, 5, 4],
    "3 hidden": [6, 10, 7, 5, 3],
}
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}
# differences allowed between thread counts: a few units in the last place
ROUNDING = {np.float64: 1e-13, np.float32: 2e-6}


def random_network(sizes, dtype, seed=0, bias_scale=0.2, weight_scale=0.5):
    """A network whose biases are nonzero too, so every term of the equations is exercised."""
    net = eqprop.EqPropNetwork(sizes, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for w in net.weights:
        w *= weight_scale
    for b in net.biases:
        b[...] = rng.uniform(-bias_scale, bias_scale, size=b.shape)
    return net


def one_hot(labels, n_classes, dtype):
    out = np.zeros((len(labels), n_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


@pytest.fixture(params=list(ARCHITECTURES), ids=list(ARCHITECTURES))
def sizes(request):
    return ARCHITECTURES[request.param]


def shared_data_dir():
    """The data folder tests read: EQPROP_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("EQPROP_DATA")
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parents[2] / "shared" / "data"
    return candidate if candidate.exists() else None


KERNELS = ["skinny/best", "skinny/avx2", "skinny/portable", "blas"]


@pytest.fixture(params=KERNELS)
def kernel(request):
    """Run a test with each implementation of the relaxation's product (restored after)."""
    from eqcore._gemm import set_gemm_path

    path, isa = request.param.split("/") if "/" in request.param else (request.param, "best")
    set_gemm_path(path, isa)
    yield request.param
    set_gemm_path("skinny", "best")


CONV_KERNELS = KERNELS + ["skinny/best/winograd", "skinny/avx2/winograd", "skinny/portable/winograd",
                          "blas/best/winograd"]


@pytest.fixture(params=CONV_KERNELS)
def conv_kernel(request):
    """``kernel`` for conv networks: every product path with the direct convolution (the ``auto``
    choice, which is direct for the small test networks), and with Winograd's forced (restored after)."""
    from eqcore._gemm import set_gemm_path

    parts = request.param.split("/")
    path, isa, conv = parts[0], parts[1] if len(parts) > 1 else "best", parts[2] if len(parts) > 2 else "auto"
    set_gemm_path(path, isa, conv=conv)
    yield request.param
    set_gemm_path("skinny", "best")


@pytest.fixture
def every_thread_runs():
    """Start every requested thread even for tiny test problems (restored after)."""
    import eqcore

    before = eqcore.parallel_threshold()
    eqcore.set_parallel_threshold(0)
    yield
    eqcore.set_parallel_threshold(before)

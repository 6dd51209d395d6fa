"""The benchmark peers (benchmarks/peers) compute what eqprop computes.

benchmarks/ is not installed by pip, so the repository root is put on sys.path.
The torch peers are checked only where PyTorch can be imported.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reference

import eqprop
from eqprop import Conv2d

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.peers import NumpyEP, available_conv_peers, available_peers, torch_available  # noqa: E402

SIZES = [9, 8, 6, 4]  # two hidden layers: every term of the net input is used
HYPER = dict(beta=0.5, free_steps=7, nudged_steps=3, epsilon=0.5, learning_rates=[0.2, 0.1, 0.05])
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}


def _problem(dtype, seed=0, batch=5):
    net = eqprop.EqPropNetwork(SIZES, dtype=dtype, seed=seed, threads=1)
    rng = np.random.default_rng(seed + 1)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, size=b.shape)
    x = rng.uniform(0, 1, size=(batch, SIZES[0])).astype(dtype)
    target = np.eye(SIZES[-1], dtype=dtype)[rng.integers(0, SIZES[-1], size=batch)]
    init = [rng.uniform(0, 1, size=(batch, n)).astype(dtype) for n in SIZES[1:]]
    return net, x, target, init


def _peer_params(dtype):
    params = [pytest.param("numpy", dtype, id=f"numpy-{np.dtype(dtype).name}")]
    for name in ("torch", "torch-usual"):
        params.append(pytest.param(
            name, dtype, id=f"{name}-{np.dtype(dtype).name}",
            marks=pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed"),
        ))
    return params


@pytest.mark.parametrize("peer_name, dtype", _peer_params(np.float64) + _peer_params(np.float32))
def test_peer_training_matches_eqprop(peer_name, dtype):
    net, x, target, init = _problem(dtype)
    peer = available_peers()[peer_name](net.weights, net.biases, threads=1)
    start = [w.copy() for w in net.weights]
    state_net, state_peer = init, init
    for _ in range(3):  # persistent particles: each step starts where the last free phase ended
        state_net = net.train_step(x, target, init=state_net, **HYPER)
        state_peer = peer.train_step(x, target, state_peer, **HYPER)
    tol = TOLERANCE[dtype]
    for k in range(len(SIZES) - 1):
        assert not np.allclose(net.weights[k], start[k]), "the weights did not move: the test is vacuous"
        np.testing.assert_allclose(peer.get_weights()[k], net.weights[k], atol=tol, rtol=0)
        np.testing.assert_allclose(peer.get_biases()[k], net.biases[k], atol=tol, rtol=0)
        np.testing.assert_allclose(state_peer[k], state_net[k], atol=tol, rtol=0)


@pytest.mark.parametrize("peer_name, dtype", _peer_params(np.float64))
def test_peer_nudged_relaxation_matches_eqprop(peer_name, dtype):
    net, x, target, init = _problem(dtype, seed=3)
    peer = available_peers()[peer_name](net.weights, net.biases, threads=1)
    expected = net.relax(x, steps=5, epsilon=0.4, beta=0.7, target=target, init=init)
    got = peer.relax(x, init, steps=5, epsilon=0.4, beta=0.7, target=target)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, atol=1e-12, rtol=0)


def test_numpy_peer_rejects_bad_arguments():
    net, *_ = _problem(np.float64)
    with pytest.raises(ValueError, match="threads"):
        NumpyEP(net.weights, net.biases, threads=0)
    with pytest.raises(TypeError, match="float32 or float64"):
        NumpyEP([w.astype(np.int64) for w in net.weights], net.biases)


def test_compare_flop_count_of_the_paper_networks():
    from benchmarks.compare import PRESETS, flops_per_example

    # 784-500-10, 24 steps: W_1 both ways per step, x W_0 once, two outer-product sums per matrix
    expected = 24 * 4 * 500 * 10 + 2 * 784 * 500 + 4 * (784 * 500 + 500 * 10)
    assert flops_per_example((784, 500, 10), 20, 4) == expected
    # the estimate of the useful work per 50,000-example epoch: about 8 and 51 TFLOP
    for key, tflop in (("2h", 8.1), ("3h", 51.5)):
        p = PRESETS[key]
        per_epoch = flops_per_example(p.sizes, p.free_steps, p.nudged_steps) * 50_000 / 1e12
        assert per_epoch == pytest.approx(tflop, rel=0.01)


def test_peers_import_without_torch(monkeypatch):
    """asv imports every module under benchmarks/: the torch peer must import without PyTorch."""
    import importlib.util

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert not torch_available() and "torch" not in available_peers()
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "peers" / "torch_ep.py"
    spec = importlib.util.spec_from_file_location("torch_ep_without_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net, *_ = _problem(np.float32)
    with pytest.raises(ImportError, match="PyTorch"):
        module.TorchEP(net.weights, net.biases)


# ------------------------------------------------------------------ conv peers
def conv_layers(pool):
    """Both conv layers pool; the second pads and gets an odd 5x5 map (its last row and column dropped)."""
    return [(1, 12, 12), Conv2d(4, 3, pool=pool), Conv2d(6, 3, padding=1, pool=pool), 10]


CONV_POOLS = ["max", "avg"]
CONV_HYPER = dict(free_steps=7, nudged_steps=3, epsilon=0.5, learning_rates=[0.2, 0.1, 0.05])
CONV_BETAS = (0.5, -0.5, 0.5)  # one-sided, with the sign the Trainer draws


def _conv_problem(pool, dtype, seed=0, batch=5):
    net = eqprop.EqPropNetwork(conv_layers(pool), dtype=dtype, seed=seed, threads=1)
    rng = np.random.default_rng(seed + 1)
    for b in net.biases:
        b[...] = rng.uniform(-0.2, 0.2, size=b.shape)
    # image-like inputs: a sparse 6x6 centre on a blank border
    x = np.zeros((batch, 12, 12))
    x[:, 3:9, 3:9] = rng.uniform(0, 1, size=(batch, 6, 6)) * (rng.uniform(size=(batch, 6, 6)) < 0.6)
    x = x.reshape(batch, -1)
    target = np.eye(10)[rng.integers(0, 10, size=batch)]
    init = [rng.uniform(0, 1, size=(batch, n)) for n in net.layer_sizes]
    # the first hidden layer starts at 0: every window of the second convolution is
    # a tie, so the top-down input of the first step routes the state above by the
    # tie rule (the first maximum in row-major order)
    init[0][...] = 0.0
    return net, x.astype(dtype), target.astype(dtype), [s.astype(dtype) for s in init]


def _conv_peer_params():
    skip = pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed")
    return [pytest.param(name, pool, dtype, id=f"{name}-{pool}-{np.dtype(dtype).name}", marks=skip)
            for name in ("torch", "torch-usual") for pool in CONV_POOLS for dtype in (np.float64, np.float32)]


def _tied_windows(net, maps, j):
    """How many 2x2 windows of connection j's convolution of ``maps`` have their maximum twice or more."""
    link = net.connections[j]
    conv = reference.conv2d(maps.reshape(-1, *link.in_shape), net.weights[j], link.padding)
    _, _, h, w = conv.shape
    windows = np.stack([conv[:, :, u:h - h % 2:2, v:w - w % 2:2] for u in (0, 1) for v in (0, 1)])
    return int(((windows == windows.max(axis=0)).sum(axis=0) > 1).sum())


@pytest.mark.parametrize("peer_name, pool, dtype", _conv_peer_params())
def test_conv_peer_relaxation_matches_eqprop(peer_name, pool, dtype):
    net, x, target, init = _conv_problem(pool, dtype, seed=3)
    peer = available_conv_peers()[peer_name](conv_layers(pool), net.weights, net.biases, threads=1)
    if pool == "max":  # the tie rule matters (see _conv_problem)
        assert _tied_windows(net, init[0], 1) > 0
    tol = TOLERANCE[dtype]
    for beta, t in ((0.0, None), (0.7, target)):
        expected = net.relax(x, steps=8, epsilon=0.4, beta=beta, target=t, init=init)
        got = peer.relax(x, init, steps=8, epsilon=0.4, beta=beta, target=t)
        for e, g, n in zip(expected, got, net.layer_sizes):
            assert g.shape == (x.shape[0], n)
            np.testing.assert_allclose(g, e.reshape(x.shape[0], -1), atol=tol, rtol=0)


@pytest.mark.parametrize("peer_name, pool, dtype", _conv_peer_params())
def test_conv_peer_training_matches_eqprop(peer_name, pool, dtype):
    net, x, target, init = _conv_problem(pool, dtype)
    peer = available_conv_peers()[peer_name](conv_layers(pool), net.weights, net.biases, threads=1)
    start = [w.copy() for w in net.weights]
    if pool == "max":  # the tie rule matters (see _conv_problem)
        assert _tied_windows(net, init[0], 1) > 0
    state_net, state_peer = init, init
    for beta in CONV_BETAS:  # persistent particles: each step starts where the last free phase ended
        state_net = net.train_step(x, target, init=state_net, beta=beta, **CONV_HYPER)
        state_peer = peer.train_step(x, target, state_peer, beta=beta, **CONV_HYPER)
    tol = TOLERANCE[dtype]
    for k in range(len(net.weights)):
        assert not np.allclose(net.weights[k], start[k]), "the weights did not move: the test is vacuous"
        np.testing.assert_allclose(peer.get_weights()[k], net.weights[k], atol=tol, rtol=0)
        np.testing.assert_allclose(peer.get_biases()[k], net.biases[k], atol=tol, rtol=0)
        np.testing.assert_allclose(state_peer[k], state_net[k].reshape(x.shape[0], -1), atol=tol, rtol=0)


@pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed")
def test_conv_peer_rejects_parameters_that_do_not_fit_the_layers():
    net, *_ = _conv_problem("max", np.float32)
    peer_class = available_conv_peers()["torch"]
    with pytest.raises(ValueError, match="connection 1 needs weights"):
        peer_class(conv_layers("max"), [net.weights[0], net.weights[0], net.weights[2]], net.biases)
    with pytest.raises(ValueError, match="3 connections"):
        peer_class(conv_layers("max"), net.weights[:2], net.biases[:2])


def test_compare_flop_count_of_the_conv_network():
    from benchmarks.compare import PRESETS, flops_per_example

    conv = PRESETS["conv"]
    net = eqprop.EqPropNetwork(conv.layers)
    # 1x28x28 -> conv 5x5 24x24, pooled 12x12 -> conv 5x5 8x8, pooled 4x4 -> 10
    first = 2 * 32 * 1 * 25 * 24 * 24           # P(W_1 * x): once per example
    second = 2 * 64 * 32 * 25 * 8 * 8           # one direction of the second conv
    dense = 2 * 64 * 4 * 4 * 10
    per_step = 2 * second + 2 * dense           # both directions, every step
    assert net.core_chain().flops_per_example() == per_step  # eqprop's count of a relaxation step
    steps = conv.free_steps + conv.nudged_steps
    assert flops_per_example(conv.layers, conv.free_steps, conv.nudged_steps) == (
        steps * per_step + first + 2 * (first + second + dense))
    for key in ("1h", "2h", "3h"):  # one definition for dense and conv chains
        p = PRESETS[key]
        net = eqprop.EqPropNetwork(p.layers)
        sizes = p.layers
        expected = ((p.free_steps + p.nudged_steps) * net.core_chain().flops_per_example()
                    + 2 * sizes[0] * sizes[1] + sum(4 * a * b for a, b in zip(sizes[:-1], sizes[1:])))
        assert flops_per_example(p.layers, p.free_steps, p.nudged_steps) == expected


def test_conv_peer_imports_without_torch():
    """asv imports every module under benchmarks/: the conv peer must import without PyTorch too."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from benchmarks.peers import available_conv_peers\n"
        "from benchmarks.peers.torch_conv_ep import TorchConvEP\n"
        "assert available_conv_peers() == {}\n"
        "try:\n"
        "    TorchConvEP([(1, 4, 4), 3], [np.zeros((16, 3), np.float32)], [np.zeros(3, np.float32)])\n"
        "except ImportError as exc:\n"
        "    assert 'PyTorch' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no ImportError')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=120)

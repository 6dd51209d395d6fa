"""The benchmark peers (benchmarks/peers) compute what eqprop computes.

benchmarks/ is not installed by pip, so the repository root is put on sys.path.
The torch peer is checked only where PyTorch can be imported.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

import eqprop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.peers import NumpyEP, available_peers, torch_available  # noqa: E402

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

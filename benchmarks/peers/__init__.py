"""Peer implementations of Equilibrium Propagation for side-by-side comparison.

Each peer is the same algorithm as ``eqprop`` (Scellier & Bengio 2016, with the
equations of ``eqcore._relax`` and ``eqcore._update``) written "the usual way"
for its framework: a Python loop over relaxation steps and one batched matrix
product per layer and direction. They share one interface:

``Peer(weights, biases, threads)``
    Copies the parameters (lists of (n_k, n_{k+1}) and (n_{k+1},) arrays).
``peer.relax(x, init, *, steps, epsilon, beta=0.0, target=None)``
    Returns the relaxed state (a list of NumPy arrays); ``init`` is not modified.
``peer.train_step(x, target, init, *, beta, free_steps, nudged_steps, epsilon, learning_rates)``
    One EP step (free phase from ``init``, nudged phase from the free state,
    in-place update); returns the free state as NumPy arrays.
``peer.get_weights()`` / ``peer.get_biases()``
    The current parameters as NumPy arrays.

Conventions shared with ``eqprop`` (so the work is the same): states are kept
in [0, 1] so rho(s) = s; the clamped input's drive x W_0 is computed once per
training step and shared by the free and nudged phases (neither x nor W_0
changes before the update), not once per relaxation step.

Convolutional networks (``benchmarks/peers/torch_conv_ep.py``, PyTorch only)
take the layers first, as ``eqprop.EqPropNetwork`` does:
``Peer(layers, weights, biases, threads)`` with ``layers`` such as
``[(1, 28, 28), eqprop.Conv2d(32, 5, pool="max"), 10]`` and conv weights in
PyTorch's (C_out, C_in, k, k) layout; ``relax`` and ``train_step`` take and
return flat (batch, C H W) states, the core's layout.

PyTorch is optional: :func:`available_peers` and :func:`available_conv_peers`
only list the torch peers when ``import torch`` works, and importing this
package never imports torch.
"""

from __future__ import annotations

from .numpy_ep import NumpyEP

__all__ = ["NumpyEP", "available_conv_peers", "available_peers", "torch_available"]


def torch_available() -> bool:
    """Whether PyTorch can be imported (the torch peer needs it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def available_peers() -> dict[str, type]:
    """Peer classes by name: ``"numpy"`` always, ``"torch"`` and ``"torch-usual"`` with PyTorch."""
    peers: dict[str, type] = {"numpy": NumpyEP}
    if torch_available():
        from .torch_ep import TorchEP, TorchEPUsual

        peers["torch"] = TorchEP
        peers["torch-usual"] = TorchEPUsual
    return peers


def available_conv_peers() -> dict[str, type]:
    """Conv peer classes by name: ``"torch"`` and ``"torch-usual"`` with PyTorch, else none."""
    if not torch_available():
        return {}
    from .torch_conv_ep import TorchConvEP, TorchConvEPUsual

    return {"torch": TorchConvEP, "torch-usual": TorchConvEPUsual}

"""Run one training step of Scellier's DHN code (rain-neuromorphics/energy-based-learning) itself.

Used by tests/test_presets.py in a subprocess (its module names ``model`` and
``training`` and PyTorch's default dtype stay out of the test process):

    python tests/anchor_dhn.py ANCHOR_DIR step IN.npz OUT.npz
    python tests/anchor_dhn.py ANCHOR_DIR init LAYER_SHAPES_JSON WEIGHT_GAINS_JSON OUT.npz

ANCHOR_DIR is a checkout of that repository (not part of eqprop; the test
extracts one from a git mirror).

``step``: IN.npz holds ``input_shape``, ``sizes`` (the flat layer sizes from
input to output), ``weight_gains``, ``inference``, ``training`` (the two
minimisers' iterations), ``nudging``, ``rates_w``, ``rates_b``, the initial
``W0``, ``W1``, ... (n_in, n_out) and ``b0``, ``b1``, ... and a mini-batch
``x`` (flat) and ``labels``. OUT.npz gets the parameters after one
``Trainer.run`` over that single mini-batch, in the same layout.

``init``: OUT.npz gets the weights ``W0``, ... (n_in, n_out) and biases of a
``DeepHopfieldEnergy(layer_shapes, weight_gains)`` as the code builds it
(float32, PyTorch's generator seeded with 0).

The objects are wired as ``papers/fast-drn/dhn.py`` wires them under
``__main__`` (that file parses arguments at import, so it is not imported).
It imports ``torch.utils.tensorboard`` (through ``training.monitor``), which
needs the tensorboard package: a stub stands in for it. Everything runs in
float64: PyTorch's default dtype is set before the model is built, and the
parameters (float32 in that code) are replaced by float64 copies of IN's.
"""

from __future__ import annotations

import sys
import types

import numpy as np


def _stub_missing_modules() -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except Exception:
        stub = types.ModuleType("torch.utils.tensorboard")

        class SummaryWriter:  # never used: the Monitor is not built here
            def __init__(self, *args, **kwargs):
                raise RuntimeError("stub SummaryWriter")

        stub.SummaryWriter = SummaryWriter
        sys.modules["torch.utils.tensorboard"] = stub
    if "torchvision" not in sys.modules:
        try:
            import torchvision  # noqa: F401
        except Exception:
            sys.modules["torchvision"] = types.ModuleType("torchvision")


def _import_anchor(anchor_dir: str) -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, anchor_dir)
    _stub_missing_modules()


def init(anchor_dir: str, layer_shapes_json: str, weight_gains_json: str, out_path: str) -> None:
    import json

    import torch

    _import_anchor(anchor_dir)
    from model.hopfield.network import DeepHopfieldEnergy

    layer_shapes = [tuple(shape) for shape in json.loads(layer_shapes_json)]
    torch.manual_seed(0)
    energy_fn = DeepHopfieldEnergy(layer_shapes, json.loads(weight_gains_json))
    n = len(layer_shapes) - 1
    params = energy_fn.params()  # biases[1:] + weights
    out = {}
    for k in range(n):
        out[f"b{k}"] = params[k].state.numpy().copy()
        out[f"W{k}"] = params[n + k].state.numpy().reshape(-1, int(np.prod(layer_shapes[k + 1]))).copy()
    np.savez(out_path, **out)


def step(anchor_dir: str, in_path: str, out_path: str) -> None:
    import torch

    _import_anchor(anchor_dir)
    from model.function.cost import SquaredError
    from model.function.network import Network
    from model.hopfield.minimizer import FixedPointMinimizer
    from model.hopfield.network import DeepHopfieldEnergy
    from training.epoch import Trainer
    from training.monitor import Optimizer
    from training.sgd import AugmentedFunction, EquilibriumProp

    data = np.load(in_path)
    sizes = [int(v) for v in data["sizes"]]
    input_shape = tuple(int(v) for v in data["input_shape"])
    layer_shapes = [input_shape] + [(size,) for size in sizes[1:]]
    n = len(sizes) - 1

    torch.set_default_dtype(torch.float64)
    energy_fn = DeepHopfieldEnergy(layer_shapes, [float(g) for g in data["weight_gains"]])
    params = energy_fn.params()  # biases[1:] + weights
    for k in range(n):
        params[k].state = torch.from_numpy(np.array(data[f"b{k}"], dtype=np.float64))
        w = np.array(data[f"W{k}"], dtype=np.float64).reshape(layer_shapes[k] + layer_shapes[k + 1])
        params[n + k].state = torch.from_numpy(w)
    energy_fn.set_device("cpu")

    # wired as papers/fast-drn/dhn.py wires them
    output_layer = energy_fn.layers()[-1]
    cost_fn = SquaredError(output_layer)
    network = Network(energy_fn)
    params = energy_fn.params()
    layers = energy_fn.layers()
    free_layers = network.free_layers()
    augmented_fn = AugmentedFunction(energy_fn, cost_fn)
    energy_minimizer_training = FixedPointMinimizer(augmented_fn, free_layers)
    estimator = EquilibriumProp(params, layers, augmented_fn, cost_fn, energy_minimizer_training)
    estimator.nudging = float(data["nudging"])
    estimator.variant = "centered"
    energy_minimizer_training.num_iterations = int(data["training"])
    energy_minimizer_training.mode = "asynchronous"
    learning_rates = [float(r) for r in data["rates_b"]] + [float(r) for r in data["rates_w"]]
    optimizer = Optimizer(energy_fn, cost_fn, learning_rates, 0.0, 0.0)
    energy_minimizer_inference = FixedPointMinimizer(energy_fn, free_layers)
    energy_minimizer_inference.num_iterations = int(data["inference"])
    energy_minimizer_inference.mode = "asynchronous"
    x = torch.from_numpy(np.array(data["x"], dtype=np.float64).reshape((-1,) + input_shape))
    y = torch.from_numpy(np.array(data["labels"], dtype=np.int64))
    trainer = Trainer(network, cost_fn, params, [(x, y)], estimator, optimizer, energy_minimizer_inference)
    torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.99)  # as dhn.py; stepped after an epoch
    trainer.run()

    out = {}
    for k in range(n):
        out[f"b{k}"] = params[k].state.numpy().copy()
        out[f"W{k}"] = params[n + k].state.numpy().reshape(-1, sizes[k + 1]).copy()
    np.savez(out_path, **out)


if __name__ == "__main__":
    if sys.argv[2] == "step":
        step(sys.argv[1], *sys.argv[3:5])
    else:
        init(sys.argv[1], *sys.argv[3:6])

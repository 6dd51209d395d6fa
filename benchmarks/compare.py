"""eqprop against PyTorch, NumPy and the measured matrix-product peak, in one process.

Run from the repository root (eqprop installed, PyTorch optional)::

    python benchmarks/compare.py                       # the full comparison (a few minutes)
    python benchmarks/compare.py --quick               # a smoke run (about two minutes)
    python benchmarks/compare.py --archs 3h --batch-sizes 20 --threads 1,2
    python benchmarks/compare.py --archs conv --batch-sizes 20 --threads 1,2   # the conv network
    python benchmarks/compare.py --archs 2h,3h --precisions float32,bfloat16   # eqprop in both precisions
    python benchmarks/compare.py --markdown docs/performance.md
    python benchmarks/compare.py --time-to-error --markdown docs/time-to-error.md

What is measured
----------------
Every implementation trains the same network (same initial weights), on the
same mini-batches (real MNIST from ``$EQPROP_DATA/mnist`` when present, else
uniform random pixels and labels of the same shape: the output says which),
with the same hyperparameters: the paper's settings (Scellier & Bengio 2016,
Table 1) for 784-500-10, 784-500-500-10 and 784-500-500-500-10, epsilon 0.5,
float32, persistent particles (each example's free phase starts from where its
last one ended). Each measurement runs ``--warmup`` untimed mini-batches, then
times mini-batches until at least ``--batches`` of them and ``--min-seconds``
have passed (but stops once ``--seconds`` have, after one batch at least), and
reports examples/s and seconds per 50,000-example epoch. The pool of examples
is max(5,000, largest batch * 13); mini-batches cycle through it.

Implementations: ``eqprop`` (the public ``EqPropNetwork.train_step``),
``eqprop-internal`` (the validated-once internals a training loop uses:
``StepEngine.free_phase`` + ``StepEngine.update``), ``eqprop-recompute``
(``eqprop`` with the event-driven relaxation off, ``eqcore.set_delta_threshold(0)``:
the products of the whole states at every step), ``eqprop-trainer``
(``Trainer.fit``, what ``eqprop train`` runs: the compiled epoch loop with its
gathers, particles and scoring, timed over whole epochs of the pool after one
untimed epoch, from the trainer's own training time; fixed beta, as the peers),
``torch`` and ``numpy`` (``benchmarks/peers``: the same algorithm written the
usual way).
``--precisions float32,bfloat16`` runs the eqprop implementations in each
precision (``EqPropNetwork(precision=...)``: bfloat16 relaxation products with
float32 sums), side by side with a "vs float32" column; the
peers run in float32. Every precision is charged the same useful FLOP.

Useful work (FLOP per training example, multiply-add = 2 FLOP; elementwise
work, biases and clipping not counted), the same convention for every
implementation:

    relaxation  (free_steps + nudged_steps) * sum_{j>=1} 2 * 2 n_j n_{j+1}
                (every matrix but the input's is used in both directions each step)
    input drive 2 n_0 n_1
                (x W_0 once per example: x is clamped and W_0 unchanged until
                the update, so both phases share it)
    update      sum_{j>=0} 2 * 2 n_j n_{j+1}
                (two outer-product sums per matrix: nudged and free)

with sizes n_0 = 784, ..., n_L = 10.

The ``conv`` arch is the convolutional network of Ernoult et al. (2019) as
``eqprop`` writes it, ``[(1, 28, 28), Conv2d(32, 5, pool="max"),
Conv2d(64, 5, pool="max"), 10]`` (states 32x12x12, 64x4x4, 10), run by
``eqprop`` and the PyTorch peers of ``benchmarks/peers/torch_conv_ep.py``
(no NumPy peer), usually at batch 20, with the dynamics both implement, the
paper's Euler steps: 40 free / 10 nudged (a short schedule: Laborieux et al.
2021 run 250 free / 25-30 nudged steps of their discrete-time dynamics on
CIFAR-10; the work per step is what is compared, and the count below scales
with the steps), epsilon 0.5, beta 0.5, learning rates 0.1, 0.05, 0.02, Glorot
weights. They measure speed, they are not a training recipe: at plain Glorot
40 steps do not reach this network's fixed point (see docs/benchmarks.md); the
``mnist-conv`` preset trains with init gains and the alternating solver. Its useful work counts one
connection's product as 2 C_out C_in k^2 H_conv W_conv for a conv connection
(the convolution before pooling, H_conv = H_in + 2 padding - k + 1) and
2 n_in n_out for a dense one, and then the same three terms:

    relaxation  (free_steps + nudged_steps) * sum_{j>=1} 2 * product_j
                (every connection but the input's both ways each step: the
                convolution and the transposed convolution of the un-pooled
                state above; dense: the two matrix products)
    input drive product_0
                (P(W_1 * x) once per example: x is clamped)
    update      sum_{j>=0} 2 * product_j
                (two weight correlations per connection: nudged and free)

Pooling, un-pooling, unfolding (im2row) and elementwise work are not counted.
For the conv network: 2 * 64 * 32 * 25 * 8 * 8 = 6.55 MFLOP for the second
convolution in one direction, 2 * 1024 * 10 for the dense layer, and
2 * 32 * 25 * 24 * 24 = 0.92 MFLOP for the drive. ``_common.product_flops``
holds this count for both kinds (the asv suite uses it too), and
``tests/test_peers.py`` checks its relaxation term against
``EqPropNetwork.core_chain().flops_per_example()``, eqprop's own count of
one step.

Achieved GFLOP/s = FLOP/example *
examples/s; "% of peak" divides by the best float32 matrix product measured on
the same thread count in this process (NumPy's BLAS under threadpoolctl limits,
and PyTorch's when installed; both are reported). This process never changes
the OPENBLAS_* environment variables (they are recorded); "% of native peak"
also counts NumPy measured in a child process with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset, so OpenBLAS uses the CPU's own (AVX-512) kernels
(``--no-native-peak`` skips it).

``--time-to-error`` trains mnist-2h to a target test error with the paper's
Euler dynamics (150 free / 6 nudged steps) and with the alternating solver
(``--alt-free`` / ``--alt-nudged`` sweeps, default 20 / 6: each sweep sets every
layer exactly to its conditional minimum, so far fewer sweeps reach the same
fixed point) and reports the training time to reach it (evaluation excluded:
the test error is measured after every epoch, relaxing from zeros for the
solver's free-phase steps). Euler training uses the paper's random sign of
beta; the alternating solver needs beta > -1 and uses beta = +1 (or both use
+1 with ``--fixed-beta-sign``). It needs real MNIST.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # benchmarks/ is not installed: make `peers` and `_common` importable
    sys.path.insert(0, str(HERE))

from _common import CONV_LAYERS, train_flops  # noqa: E402

EPOCH_EXAMPLES = 50_000
EPSILON = 0.5


@dataclass(frozen=True)
class Preset:
    """A benchmarked configuration: the paper's MNIST ones as ``eqprop.presets`` holds them, and ``conv``."""

    name: str
    layers: tuple  # what EqPropNetwork takes: flat sizes, or (C, H, W) then Conv2d / dense entries
    free_steps: int
    nudged_steps: int
    beta: float
    learning_rates: tuple[float, ...]

    @property
    def label(self) -> str:
        """``784-500-10``, or ``1x28x28,c32k5mp,c64k5mp,10`` (the command line's grammar)."""
        from eqprop.layers import format_layers

        return format_layers(self.layers)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Flat sizes of every layer, input included (C * H * W for a map)."""
        from eqprop.layers import resolve_layers

        _, connections = resolve_layers(self.layers)
        return (connections[0].n_in, *(c.n_out for c in connections))

    @property
    def convolutional(self) -> bool:
        return not all(isinstance(e, int) for e in self.layers)


def _paper_preset(name: str) -> Preset:
    """The library's preset of that name (the paper's settings, in eqprop's convention)."""
    from eqprop.presets import get_preset

    p = get_preset(name)
    return Preset(p.name, tuple(p.sizes), p.free_steps, p.nudged_steps, p.beta, tuple(p.learning_rates))


# the Euler dynamics the PyTorch peer implements too (mnist-conv trains with the alternating solver)
CONV = Preset("conv", CONV_LAYERS, free_steps=40, nudged_steps=10, beta=0.5, learning_rates=(0.1, 0.05, 0.02))
PRESETS = {**{key: _paper_preset(f"mnist-{key}") for key in ("1h", "2h", "3h")}, "conv": CONV}
IMPLEMENTATIONS = ("eqprop", "eqprop-internal", "eqprop-recompute", "eqprop-trainer", "torch", "torch-usual", "numpy")


def flops_per_example(layers: Sequence[object], free_steps: int, nudged_steps: int) -> int:
    """Useful FLOP of one training example (see the module docstring for the convention).

    ``layers``: flat sizes (784, 500, 10) or a conv network's layers, as
    ``EqPropNetwork`` takes them; counted by ``_common.train_flops``, the
    definition the asv suite uses too.
    """
    return train_flops(layers, free_steps, nudged_steps)


# ---------------------------------------------------------------------- data
def load_mnist(split: str = "train") -> tuple[np.ndarray, np.ndarray, str] | None:
    """MNIST images (float32 in [0, 1], flattened), labels and their folder, or None offline.

    ``"train"`` is the whole 60,000-image training file (eqprop's training and
    validation splits together), ``"test"`` the 10,000 test images. The files are
    found as ``eqprop.datasets`` finds them (EQPROP_DATA, the cache); nothing is
    downloaded.
    """
    from eqprop.datasets import DatasetError, load_dataset

    try:
        data = load_dataset("mnist", download=False, quiet=True)
    except DatasetError:
        return None
    if split == "train":
        return (np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val]),
                data.source)
    return data.x_test, data.y_test, data.source


def benchmark_data(n_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n_examples`` training images and labels, and a sentence saying where they came from."""
    mnist = load_mnist("train")
    if mnist is not None:
        x, y, folder = mnist
        n = min(n_examples, EPOCH_EXAMPLES)
        return x[:n], y[:n], f"MNIST training images from {folder} (first {n})"
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n_examples, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=n_examples)
    return x, y, (f"random data of MNIST's shape ({n_examples} x 784 uniform pixels, random labels): "
                  "no local MNIST copy found (EQPROP_DATA, ~/.cache/eqprop)")


def one_hot(labels: np.ndarray, n_classes: int, dtype) -> np.ndarray:
    out = np.zeros((len(labels), n_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


# ----------------------------------------------------------- implementations
StepFn = Callable[[np.ndarray, np.ndarray, list], list]


def make_step(impl: str, weights, biases, preset: Preset, threads: int, dtype, precision: str = "float32") -> StepFn:
    """A function (x, target, init) -> free state that runs one training step of ``impl`` (eqprop: in ``precision``)."""
    hyper = dict(beta=preset.beta, free_steps=preset.free_steps, nudged_steps=preset.nudged_steps,
                 epsilon=EPSILON, learning_rates=list(preset.learning_rates))
    if impl in ("eqprop", "eqprop-internal", "eqprop-recompute"):
        import eqcore
        import eqprop
        from eqprop.algorithms import Contrast

        net = eqprop.EqPropNetwork(preset.layers, dtype=dtype, threads=threads, precision=precision)
        net.set_params(weights, biases)
        if impl == "eqprop":
            return lambda x, t, init: net.train_step(x, t, init=init, threads=threads, **hyper)
        if impl == "eqprop-recompute":
            def recomputing_step(x, t, init):
                threshold = eqcore.delta_threshold()
                eqcore.set_delta_threshold(0.0)
                try:
                    return net.train_step(x, t, init=init, threads=threads, **hyper)
                finally:
                    eqcore.set_delta_threshold(threshold)

            return recomputing_step
        rates = net.check_learning_rates(hyper["learning_rates"])

        def internal_step(x, t, init):
            state = [np.array(s, dtype=net.dtype, order="C") for s in init]
            engine = net.step_engine(x.shape[0])  # owns x W_0, shared by both phases
            engine.free_phase(x, state, steps=preset.free_steps, epsilon=EPSILON, solver="euler", threads=threads)
            engine.update(x, state, t, contrast=Contrast("one-sided", preset.beta), nudged_steps=preset.nudged_steps,
                          epsilon=EPSILON, rates=rates, solver="euler", threads=threads)
            return state

        return internal_step
    from peers import available_conv_peers, available_peers

    if preset.convolutional:
        peers = available_conv_peers()
        if impl == "numpy":
            raise RuntimeError("the NumPy peer has no conv layers")
        if impl not in peers:
            raise RuntimeError(f"implementation {impl!r} is not available (is PyTorch installed?)")
        peer = peers[impl](preset.layers, weights, biases, threads=threads)
    else:
        peers = available_peers()
        if impl not in peers:
            raise RuntimeError(f"implementation {impl!r} is not available (is PyTorch installed?)")
        peer = peers[impl](weights, biases, threads=threads)
    return lambda x, t, init: peer.train_step(x, t, init, **hyper)


@dataclass
class Measurement:
    arch: str
    batch: int
    threads: int
    impl: str
    batches: int
    seconds: float
    flops_per_example: int
    precision: str = "float32"

    @property
    def examples_per_second(self) -> float:
        return self.batches * self.batch / self.seconds

    @property
    def seconds_per_epoch(self) -> float:
        return EPOCH_EXAMPLES / self.examples_per_second

    @property
    def gflops(self) -> float:
        return self.flops_per_example * self.examples_per_second / 1e9


def measure(step: StepFn, x: np.ndarray, targets: np.ndarray, particles: list[np.ndarray],
            batch: int, warmup: int, batches: int, min_seconds: float, max_seconds: float) -> tuple[int, float]:
    """Time mini-batches after ``warmup`` untimed ones; return (timed batches, seconds).

    Timing goes on until at least ``batches`` mini-batches and ``min_seconds``
    have passed, but stops once ``max_seconds`` have (after one batch at least).
    """
    n_pool = x.shape[0] // batch
    position = 0

    def one_batch() -> None:
        nonlocal position
        rows = slice((position % n_pool) * batch, (position % n_pool + 1) * batch)
        free = step(x[rows], targets[rows], [p[rows] for p in particles])
        for p, s in zip(particles, free):
            p[rows] = np.reshape(s, (batch, -1))  # eqprop returns conv states as maps
        position += 1

    for _ in range(warmup):
        one_batch()
    done, start = 0, time.perf_counter()
    while True:
        one_batch()
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= max_seconds or (done >= batches and elapsed >= min_seconds):
            return done, elapsed


def measure_trainer(preset: Preset, weights, biases, threads: int, dtype, precision: str, x: np.ndarray,
                    labels: np.ndarray, batch: int, batches: int, min_seconds: float, max_seconds: float,
                    seed: int) -> tuple[int, float]:
    """Time ``Trainer.fit`` on the pool: one untimed epoch, then whole epochs until at least
    ``batches`` mini-batches and ``min_seconds`` (stopping once ``max_seconds`` have passed);
    return (timed mini-batches, training seconds from the trainer's history)."""
    import eqprop

    net = eqprop.EqPropNetwork(preset.layers, dtype=dtype, threads=threads, precision=precision)
    net.set_params(weights, biases)
    trainer = eqprop.Trainer(net, free_steps=preset.free_steps, nudged_steps=preset.nudged_steps, beta=preset.beta,
                             random_sign=False, learning_rates=list(preset.learning_rates), epsilon=EPSILON,
                             batch_size=batch, seed=seed, threads=threads)
    trainer.fit(x, labels, epochs=1, progress=False)
    done, seconds = 0, 0.0
    while True:
        record = trainer.fit(x, labels, epochs=1, progress=False)[-1]
        seconds += x.shape[0] / record.examples_per_second
        done += -(-x.shape[0] // batch)
        if seconds >= max_seconds or (done >= batches and seconds >= min_seconds):
            return done, seconds


# ------------------------------------------------------------ matmul peak
def gemm_peak(threads: int, dtype, quick: bool, use_torch: bool = True) -> dict[str, tuple[float, str]]:
    """Best matrix-product GFLOP/s per library on ``threads`` threads: {library: (GFLOP/s, shape)}."""
    from threadpoolctl import threadpool_limits

    shapes = [(256, 500, 500), (1024, 1024, 1024), (2048, 2048, 2048)]
    repeats = 3 if quick else 8
    rng = np.random.default_rng(0)
    operands = [(rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype))
                for m, k, n in shapes]
    results: dict[str, tuple[float, str]] = {}

    def best(multiply) -> tuple[float, str]:
        top = (0.0, "")
        for (m, k, n), (a, b) in zip(shapes, operands):
            multiply(a, b)
            inner = max(1, int(2e8 // (m * k * n)))  # about 0.4 GFLOP per timing sample
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(inner):
                    multiply(a, b)
                rate = 2.0 * m * k * n * inner / (time.perf_counter() - start) / 1e9
                top = max(top, (rate, f"{m}x{k} @ {k}x{n}"))
        return top

    with threadpool_limits(limits=threads, user_api="blas"):
        outs = {id(a): np.empty((a.shape[0], b.shape[1]), dtype=dtype) for a, b in operands}
        results["numpy"] = best(lambda a, b: np.matmul(a, b, out=outs[id(a)]))
    if not use_torch:
        return results
    try:
        import torch
    except ImportError:
        return results
    torch.set_num_threads(threads)
    tensors = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in operands]
    lookup = {id(a): t for (a, _), t in zip(operands, tensors)}
    results["torch"] = best(lambda a, b: torch.mm(*lookup[id(a)]))
    return results


NATIVE_UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def native_numpy_peak(threads: int, dtype, quick: bool) -> tuple[float, str, str] | None:
    """NumPy's matrix-product peak with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset, in a child process.

    This machine's environment pins OpenBLAS to its Haswell (AVX2) kernels; the
    child, and only the child, runs without those two variables so OpenBLAS
    picks the CPU's own kernels (AVX-512 here). Returns (GFLOP/s, shape, the
    kernel threadpoolctl reports), or None when nothing is pinned or it fails.
    """
    if not any(k in os.environ for k in NATIVE_UNSET):
        return None
    env = {k: v for k, v in os.environ.items() if k not in NATIVE_UNSET}
    command = [sys.executable, str(HERE / "compare.py"), "--gemm-peak-only",
               "--threads", str(threads), "--dtype", np.dtype(dtype).name]
    try:
        out = subprocess.run(command + (["--quick"] if quick else []), env=env, capture_output=True, text=True,
                             check=True, timeout=600).stdout
        rate, shape, kernel = json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        print(f"native-kernel peak measurement failed: {exc}", flush=True)
        return None
    return rate, shape, kernel


def _print_gemm_peak_only(args: argparse.Namespace) -> int:
    from threadpoolctl import threadpool_info

    rate, shape = gemm_peak(args.threads[0], np.dtype(args.dtype), args.quick, use_torch=False)["numpy"]
    kernels = sorted({str(i.get("architecture")) for i in threadpool_info() if i.get("user_api") == "blas"})
    print(json.dumps([rate, shape, "/".join(kernels)]))
    return 0


# ------------------------------------------------------------ environment
def machine_info() -> dict[str, str]:
    """Versions, CPU and the environment variables that change BLAS performance."""
    info: dict[str, str] = {}
    try:
        info["eqprop info"] = subprocess.run(
            [sys.executable, "-m", "eqprop.cli", "info"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (subprocess.CalledProcessError, OSError) as exc:
        info["eqprop info"] = f"(eqprop info failed: {exc})"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        keep = ("Model name", "CPU(s)", "Thread(s) per core", "L1d cache", "L2 cache", "L3 cache", "Flags")
        lines = [line for line in lscpu.splitlines() if line.split(":")[0].strip() in keep]
        info["lscpu"] = "\n".join(
            "Flags (AVX): " + " ".join(f for f in line.split() if f.startswith("avx")) if line.startswith("Flags")
            else " ".join(line.split()) for line in lines)
    except (subprocess.CalledProcessError, OSError):
        info["lscpu"] = platform.processor() or "unknown"
    try:
        import torch

        info["torch"] = f"{torch.__version__} (intra-op threads set per measurement)"
    except ImportError:
        info["torch"] = "not installed"
    info["load"] = "load average (1, 5, 15 min) at start: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    keys = sorted(k for k in os.environ if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOMP")))
    info["environment"] = ", ".join(f"{k}={os.environ[k]}" for k in keys) or "(none set)"
    try:
        head = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        info["git"] = head + (" (with uncommitted changes)" if dirty else "")
    except (subprocess.CalledProcessError, OSError):
        info["git"] = "unknown"
    return info


# ------------------------------------------------------------------- output
HEADER = ("arch", "batch", "threads", "impl", "precision", "batches", "examples/s", "s/epoch", "vs float32",
          "vs torch", "vs torch-usual", "GFLOP/s", "% of peak", "% of native peak")


def table_rows(results: list[Measurement], peaks: dict[int, float],
               native_peaks: dict[int, float]) -> list[tuple[str, ...]]:
    def rates(impl: str) -> dict:
        return {(m.arch, m.batch, m.threads): m.examples_per_second for m in results if m.impl == impl}

    torch_rate, usual_rate = rates("torch"), rates("torch-usual")
    float32_rate = {(m.arch, m.batch, m.threads, m.impl): m.examples_per_second
                    for m in results if m.precision == "float32"}
    rows = []
    for m in results:
        key = (m.arch, m.batch, m.threads)
        reference, usual = torch_rate.get(key), usual_rate.get(key)
        same_in_float32 = float32_rate.get((*key, m.impl)) if m.precision != "float32" else None
        rows.append((
            m.arch, str(m.batch), str(m.threads), m.impl, m.precision, str(m.batches),
            f"{m.examples_per_second:,.0f}", f"{m.seconds_per_epoch:,.1f}",
            f"{m.examples_per_second / same_in_float32:.2f}x" if same_in_float32 else "-",
            f"{m.examples_per_second / reference:.2f}x" if reference else "-",
            f"{m.examples_per_second / usual:.2f}x" if usual else "-",
            f"{m.gflops:.1f}", f"{100 * m.gflops / peaks[m.threads]:.0f}%" if peaks.get(m.threads) else "-",
            f"{100 * m.gflops / native_peaks[m.threads]:.0f}%" if native_peaks.get(m.threads) else "-",
        ))
    return rows


def format_text(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(HEADER, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def format_markdown(header: Sequence[str], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------ time to error
def run_time_to_error(args: argparse.Namespace, dtype) -> list[tuple[str, ...]]:
    """Train mnist-2h with both solvers until the test error reaches ``args.target_error``."""
    import eqprop

    train, test = load_mnist("train"), load_mnist("test")
    if train is None or test is None:
        raise SystemExit("--time-to-error needs real MNIST: set EQPROP_DATA to the folder holding mnist/")
    n_train = min(args.train_examples, EPOCH_EXAMPLES)
    x_train, y_train = train[0][:n_train], train[1][:n_train]
    x_test, y_test = test[0][:args.test_examples], test[1][:args.test_examples]
    preset = PRESETS["2h"]
    threads = args.threads[-1]
    targets = one_hot(y_train, 10, dtype)
    settings = [("euler", preset.free_steps, preset.nudged_steps),
                ("alternating", args.alt_free, args.alt_nudged)]
    rows = []
    for solver, free_steps, nudged_steps in settings:
        net = eqprop.EqPropNetwork(preset.sizes, dtype=dtype, seed=args.seed, threads=threads)
        rng = np.random.default_rng(args.seed)
        particles = net.zero_state(n_train)
        trained, reached, error, epoch = 0.0, None, 1.0, 0
        while epoch < args.max_epochs and trained < args.max_seconds:
            epoch += 1
            order = rng.permutation(n_train)
            start = time.perf_counter()
            for i in range(0, n_train, args.tte_batch):
                rows_ = np.sort(order[i:i + args.tte_batch])
                # the paper's random sign of beta; the alternating solver needs beta > -1
                random_sign = solver == "euler" and not args.fixed_beta_sign
                beta = preset.beta * (rng.choice((-1.0, 1.0)) if random_sign else 1.0)
                free = net.train_step(
                    x_train[rows_], targets[rows_], init=[p[rows_] for p in particles], beta=beta,
                    free_steps=free_steps, nudged_steps=nudged_steps, epsilon=EPSILON,
                    learning_rates=preset.learning_rates, solver=solver, threads=threads)
                for p, s in zip(particles, free):
                    p[rows_] = s
            trained += time.perf_counter() - start
            predicted = net.predict(x_test, steps=free_steps, epsilon=EPSILON, solver=solver, threads=threads)
            error = float(np.mean(predicted != y_test))
            print(f"  {solver}: epoch {epoch}, training time {trained:.0f} s, test error {100 * error:.2f}%",
                  flush=True)
            if error <= args.target_error:
                reached = trained
                break
        fixed = solver != "euler" or args.fixed_beta_sign
        beta_text = f"+{preset.beta:g}" if fixed else f"+-{preset.beta:g} (random sign)"
        rows.append((preset.label, solver, f"{free_steps}/{nudged_steps}", beta_text, str(args.tte_batch), str(threads),
                     str(epoch), f"{100 * error:.2f}%",
                     f"{reached:,.0f}" if reached is not None else f"not reached in {trained:,.0f}"))
    return rows


# --------------------------------------------------------------------- main
def _csv(kind: Callable[[str], object]) -> Callable[[str], list]:
    return lambda text: [kind(item) for item in text.split(",") if item]


def _arch(name: str) -> str:
    for key, preset in PRESETS.items():
        if name in (key, preset.name, preset.label):
            return key
    raise argparse.ArgumentTypeError(f"unknown architecture {name!r}; choose from {', '.join(PRESETS)}")


def _precision(name: str) -> str:
    if name not in ("float32", "bfloat16"):
        raise argparse.ArgumentTypeError(f"unknown precision {name!r}; choose from float32, bfloat16")
    return name


def _impl(name: str) -> str:
    if name not in IMPLEMENTATIONS:
        raise argparse.ArgumentTypeError(f"unknown implementation {name!r}; choose from {', '.join(IMPLEMENTATIONS)}")
    return name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=_csv(_arch), default=["1h", "2h", "3h"],
                        help="architectures: 1h, 2h, 3h (or mnist-2h, 784-500-500-10) and conv "
                             "(1x28x28,c32k5mp,c64k5mp,10; eqprop and torch peers only); default 1h,2h,3h")
    parser.add_argument("--peers", type=_csv(_impl), default=["eqprop", "torch", "torch-usual", "numpy"],
                        help=f"implementations, from {', '.join(IMPLEMENTATIONS)}; "
                             "default eqprop,torch,torch-usual,numpy")
    parser.add_argument("--threads", type=_csv(int), default=[2], help="thread counts, e.g. 1,2 (default 2)")
    parser.add_argument("--batch-sizes", type=_csv(int), default=[20, 256], help="default 20,256")
    parser.add_argument("--batches", type=int, default=None,
                        help="timed mini-batches per measurement, at least (default 10; 3 with --quick)")
    parser.add_argument("--numpy-batches", type=int, default=None,
                        help="--batches for the NumPy peer on 2h/3h (default 3; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed mini-batches first (default 2; 1 with --quick)")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="time at least this long per measurement (default 3; 1 with --quick)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop a measurement after this long, once a batch is done (default 20; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="fewer batches and a shorter peak measurement")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--precisions", type=_csv(_precision), default=["float32"],
                        help="precisions of the eqprop implementations' relaxation products, e.g. "
                             "float32,bfloat16 (default float32; bfloat16 needs --dtype float32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-native-peak", action="store_true",
                        help=f"skip the peak measured with {' and '.join(NATIVE_UNSET)} unset (in a child process)")
    parser.add_argument("--gemm-peak-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the report as Markdown here")
    parser.add_argument("--time-to-error", action="store_true",
                        help="instead: time mnist-2h to --target-error with the euler and alternating solvers")
    parser.add_argument("--target-error", type=float, default=0.03, help="test error to reach (default 0.03)")
    parser.add_argument("--alt-free", type=int, default=20, help="free sweeps of the alternating solver (default 20)")
    parser.add_argument("--alt-nudged", type=int, default=6, help="nudged sweeps of the alternating solver (default 6)")
    parser.add_argument("--fixed-beta-sign", action="store_true",
                        help="--time-to-error: beta > 0 for both solvers (default: the paper's random sign for "
                             "euler; the alternating solver always uses beta > 0, as it needs beta > -1)")
    parser.add_argument("--tte-batch", type=int, default=20, help="mini-batch of --time-to-error (default 20)")
    parser.add_argument("--train-examples", type=int, default=EPOCH_EXAMPLES,
                        help="--time-to-error trains on the first N training images (default 50,000)")
    parser.add_argument("--test-examples", type=int, default=10_000,
                        help="--time-to-error measures the error on the first N test images (default 10,000)")
    parser.add_argument("--max-epochs", type=int, default=100, help="--time-to-error gives up after this many epochs")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600.0,
                        help="--time-to-error gives up after this much training time per solver")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("batches", "numpy_batches", "warmup", "min_seconds", "seconds"):
        value = getattr(args, name)
        if value is not None and (value < 0 or (value == 0 and name != "warmup")):
            raise SystemExit(f"--{name.replace('_', '-')} must be positive; got {value}")
    if args.batches is None:
        args.batches = 3 if args.quick else 10
    if args.numpy_batches is None:
        args.numpy_batches = 1 if args.quick else 3
    if args.min_seconds is None:
        args.min_seconds = 1.0 if args.quick else 3.0
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 20.0
    if any(t < 1 for t in args.threads) or any(b < 1 for b in args.batch_sizes):
        raise SystemExit("--threads and --batch-sizes must be positive")
    dtype = np.dtype(args.dtype)
    if "bfloat16" in args.precisions and dtype != np.float32:
        raise SystemExit("--precisions bfloat16 needs --dtype float32")
    if args.gemm_peak_only:
        return _print_gemm_peak_only(args)
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__), *sys.argv[1:]])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = machine_info()
    print(f"{command}\n{date}\n{info['eqprop info']}\n{info['lscpu']}\ntorch {info['torch']}\n"
          f"environment: {info['environment']}\ngit: {info['git']}\n{info['load']}\n", flush=True)

    if args.time_to_error:
        rows = run_time_to_error(args, dtype)
        header = ("arch", "solver", "free/nudged", "beta", "batch", "threads", "epochs", "test error",
                  "training s to target")
        print(format_markdown(header, rows))
        if args.markdown:
            _write_markdown(args.markdown, command, date, info,
                            f"MNIST ({min(args.train_examples, EPOCH_EXAMPLES):,} training images, "
                            f"{min(args.test_examples, 10_000):,} test images)",
                            f"## Time to {100 * args.target_error:.1f}% test error on mnist-2h\n\n"
                            + format_markdown(header, rows))
        return 0

    peaks: dict[int, float] = {}
    native_peaks: dict[int, float] = {}
    peak_lines = []
    for threads in args.threads:
        found = gemm_peak(threads, dtype, args.quick)
        peaks[threads] = native_peaks[threads] = max(rate for rate, _ in found.values())
        for library, (rate, shape) in found.items():
            peak_lines.append(f"{threads} thread(s), {library}: {rate:.1f} GFLOP/s ({args.dtype}, best shape {shape})")
        native = None if args.no_native_peak else native_numpy_peak(threads, dtype, args.quick)
        if native is not None:
            rate, shape, kernel = native
            native_peaks[threads] = max(native_peaks[threads], rate)
            peak_lines.append(f"{threads} thread(s), numpy with {' and '.join(NATIVE_UNSET)} unset (child process, "
                              f"OpenBLAS kernel {kernel}): {rate:.1f} GFLOP/s ({args.dtype}, best shape {shape})")
    print("matrix-product peak\n  " + "\n  ".join(peak_lines) + "\n", flush=True)

    largest = max(args.batch_sizes)
    n_pool = max(EPOCH_EXAMPLES // 10, largest * 13)
    x, labels, source = benchmark_data(n_pool, args.seed)
    targets = one_hot(labels, 10, dtype)
    x = x.astype(dtype)
    print(f"data: {source}\n", flush=True)

    import eqprop

    results: list[Measurement] = []
    for key in args.archs:
        preset = PRESETS[key]
        reference = eqprop.EqPropNetwork(preset.layers, dtype=dtype, seed=args.seed)
        flops = flops_per_example(preset.layers, preset.free_steps, preset.nudged_steps)
        for batch in args.batch_sizes:
            for threads in args.threads:
                for impl, precision in [(impl, precision) for impl in args.peers
                                        for precision in (args.precisions if impl.startswith("eqprop") else ["float32"])]:
                    if impl == "eqprop-trainer":
                        done, seconds = measure_trainer(preset, reference.weights, reference.biases, threads, dtype,
                                                        precision, x, labels, batch, args.batches, args.min_seconds,
                                                        args.seconds, args.seed)
                    else:
                        try:
                            step = make_step(impl, reference.weights, reference.biases, preset, threads, dtype,
                                             precision)
                        except (RuntimeError, AttributeError) as exc:
                            print(f"skipping {impl}: {exc}", flush=True)
                            continue
                        cap = args.numpy_batches if impl == "numpy" and key != "1h" else args.batches
                        particles = [np.zeros((x.shape[0], n), dtype=dtype) for n in reference.layer_sizes]
                        done, seconds = measure(step, x, targets, particles, batch, args.warmup, cap,
                                                args.min_seconds, args.seconds)
                    m = Measurement(preset.label, batch, threads, impl, done, seconds, flops, precision)
                    results.append(m)
                    print(f"{m.arch} batch {batch} threads {threads} {impl} {precision}: "
                          f"{m.examples_per_second:,.0f} examples/s, "
                          f"{m.gflops:.1f} GFLOP/s ({done} batches in {seconds:.2f} s)", flush=True)

    rows = table_rows(results, peaks, native_peaks)
    print("\n" + format_text(rows))
    if args.markdown:
        flop_lines = []
        for key in args.archs:
            p = PRESETS[key]
            flops = flops_per_example(p.layers, p.free_steps, p.nudged_steps)
            flop_lines.append(f"| {p.label} | {p.free_steps} / {p.nudged_steps} | {p.beta} | "
                              f"{', '.join(map(str, p.learning_rates))} | {flops / 1e6:,.1f} | "
                              f"{flops * EPOCH_EXAMPLES / 1e12:.2f} |")
        body = (
            "## Configurations\n\n"
            f"epsilon {EPSILON}, {args.dtype}, persistent particles; {args.warmup} warm-up mini-batch(es), then "
            f"timed mini-batches until at least {args.batches} ({args.numpy_batches} for numpy on 2h/3h) and "
            f"{args.min_seconds:g} s, stopping after {args.seconds:g} s (column \"batches\").\n\n"
            "| arch | free / nudged steps | beta | learning rates | MFLOP / example | TFLOP / epoch |\n"
            "|---|---|---|---|---|---|\n" + "\n".join(flop_lines) + "\n\n"
            + " ".join(text for text, wanted in (
                (DENSE_FLOP_TEXT, any(not PRESETS[key].convolutional for key in args.archs)),
                (CONV_FLOP_TEXT, "conv" in args.archs)) if wanted) + "\n\n"
            "## Matrix-product peak\n\n" + "\n".join(f"- {line}" for line in peak_lines) + "\n\n"
            "\"% of peak\" divides by the best in-process product on the same thread count (NumPy with this "
            "machine's OPENBLAS_* settings, and PyTorch); \"% of native peak\" also counts NumPy run with "
            f"{' and '.join(NATIVE_UNSET)} unset (OpenBLAS then uses the CPU's own kernels; measured in a child "
            "process, the benchmark itself keeps the environment as it is).\n\n"
            "## Results\n\n"
            "Implementations: `eqprop` is the public `EqPropNetwork.train_step`; `eqprop-internal` the "
            "validated-once internals a training loop calls; `eqprop-recompute` is `eqprop` with the "
            "event-driven relaxation off (`eqcore.set_delta_threshold(0)`); `eqprop-trainer` is `Trainer.fit` "
            "(what `eqprop train` runs: the compiled epoch loop, gathers, particles and scoring included; whole "
            "epochs of the pool after an untimed one, timed by the trainer's history; fixed beta as the peers); "
            "`torch` and `numpy` are `benchmarks/peers` "
            "(the same algorithm written the usual way: a Python loop over steps, one matrix product per "
            "layer and direction; torch under `no_grad`, NumPy's BLAS limited with threadpoolctl), both "
            "computing x W_0 once per training step as eqprop does; `torch-usual` is the PyTorch peer as "
            "most EP scripts write it, recomputing x W_0 at every step (same results, more work)."
            + (CONV_IMPL_TEXT if "conv" in args.archs else "") + "\n\n"
            "s/epoch is for 50,000 examples; \"vs torch\" and \"vs torch-usual\" are speed-ups over those "
            "PyTorch peers at the same batch and threads (all charged the same useful FLOP); \"vs float32\" "
            "that of a bfloat16 row over the same implementation in float32 (precision: the relaxation's "
            "products; parameters, states and updates are float32 in both).\n\n" + format_markdown(HEADER, rows) + "\n"
        )
        _write_markdown(args.markdown, command, date, info, source, body)
    return 0


DENSE_FLOP_TEXT = (
    "Useful FLOP per example = (free + nudged) * sum_{j>=1} 4 n_j n_{j+1} (each matrix but the input's, "
    "both directions, every step) + 2 n_0 n_1 (the clamped input's drive x W_0, once per example: both phases "
    "share it) + "
    "sum_j 4 n_j n_{j+1} (the update's two outer-product sums). Elementwise work is not counted. "
    "Every implementation is charged the same FLOP, dense: eqprop skips the zero pixels of x in the "
    "drive and in the update of W_0 (an MNIST image has about 19% non-zero pixels). Those two products "
    "are 82% of the work of 784-500-10, so there its GFLOP/s and % of peak measure time against the "
    "dense work rather than arithmetic done; they are 1.4% of 784-500-500-10's and 0.2% of "
    "784-500-500-500-10's."
)
CONV_FLOP_TEXT = (
    "The `conv` arch counts a conv connection's product as the convolution before pooling, "
    "2 C_out C_in k^2 H_conv W_conv (a dense one as 2 n_in n_out), with the same three terms: every step "
    "each connection but the input's is used both ways (the convolution, and the transposed convolution of "
    "the un-pooled state above), the input's drive P(W_1 * x) once per example, and two weight "
    "correlations per connection in the update (nudged and free); pooling, un-pooling and unfolding are "
    "elementwise work and not counted. Its settings (40 / 10 steps, beta 0.5, learning rates 0.1, 0.05, "
    "0.02) are benchmark settings, not a tuned preset: the work per step does not depend on them."
)
CONV_IMPL_TEXT = (
    " For `conv` the peers are `benchmarks/peers/torch_conv_ep.py` (`conv2d`, `max_pool2d` with indices, "
    "`max_unpool2d` and `conv_transpose2d` per step, the weight correlation with `torch.nn.grad.conv2d_weight`); "
    "`torch` computes the drive P(W_1 * x) once per training step, `torch-usual` at every step; there is no "
    "NumPy conv peer."
)


def _write_markdown(path: Path, command: str, date: str, info: dict[str, str], source: str, body: str) -> None:
    text = (
        "# Performance\n\n"
        f"Generated by `benchmarks/compare.py` on {date} with\n\n```\n{command}\n```\n\n"
        f"Data: {source}.\n\n"
        "## Machine\n\n"
        f"```\n{info['eqprop info']}\n{info['lscpu']}\n```\n\n"
        f"- torch: {info['torch']}\n- BLAS-related environment: {info['environment']}\n"
        f"- eqprop commit: {info['git']}\n- {info['load']}; at the end: "
        + ", ".join(f"{v:.2f}" for v in os.getloadavg())
        + " (the machine has 2 cores: a load above ~0.2 before the run means other work shared them)\n\n"
        + body
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    sys.exit(main())

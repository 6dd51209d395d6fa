"""EqPropNetwork: the layered Hopfield network of Scellier & Bengio (2016).

State s = (s_1, ..., s_L, y) with the input x clamped, rho the hard sigmoid
clip(., 0, 1), and

    E(s) = 1/2 sum_k ||s_k||^2 - Phi(x, s),   C(s) = 1/2 ||y - d||^2,   F = E + beta * C,
    Phi = sum_dense rho(s_k)^T W_k rho(s_{k+1}) + sum_conv rho(s_{k+1}) . P(W_k * rho(s_k))
          + sum_k b_k . rho(s_k)

(conv layers: Ernoult et al. 2019, Laborieux et al. 2021; see ``eqprop.layers``).

With ``cost="cross-entropy"`` (Laborieux et al. 2021, ``--loss cel --softmax``)
the last connection is a softmax readout outside the energy: s_L (the last
relaxing layer) gives the logits z = rho(s_L) W_out + b_out, p = softmax(z),
C = -sum d log p, E and Phi stop at s_L, and F = E + beta C nudges s_L by
-beta dC/ds_L = beta (d - p) W_out^T. W_out and b_out learn from dC/dW_out at
the free fixed point; the hidden weights by the EP contrast, as always.
The relaxation and the learning rule run in the compiled core ``eqcore``; this
module validates arguments, converts arrays once, and owns the parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import eqcore
from eqprop import _conv_numpy
from eqprop import _validation as check
from eqprop._threads import resolve_threads, single_threaded_blas
from eqprop.layers import Connection, format_layers, resolve_layers
from eqprop.algorithms import Contrast, check_algorithm, check_coupling, uses_beta
from eqprop.algorithms import contrast as contrast_of
from eqprop.step import StepEngine

State = list[np.ndarray]


def rho(s: np.ndarray) -> np.ndarray:
    """The hard sigmoid clip(s, 0, 1) (Scellier & Bengio 2016, section 5)."""
    return np.clip(s, 0.0, 1.0)


def cache_aligned_copy(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` as a C-contiguous array of ``dtype`` starting on a 64-byte boundary.

    The core streams weight rows with 64-byte vector loads; NumPy only promises
    16-byte alignment, and a load that straddles two cache lines costs two on
    some CPUs (docs/performance.md, "On an Intel Xeon").
    """
    dtype = np.dtype(dtype)
    buffer = np.empty(values.size * dtype.itemsize + 64, dtype=np.uint8)
    start = -buffer.ctypes.data % 64
    aligned = buffer[start:start + values.size * dtype.itemsize].view(dtype).reshape(values.shape)
    aligned[...] = values
    return aligned


def _spread(contrast: Contrast) -> float:
    """What the update divides by: beta, 2 beta or the clamp's coupling."""
    if contrast.mode == "clamped":
        return contrast.coupling
    return 2.0 * contrast.beta if contrast.mode == "centered" else contrast.beta


def _all_finite(arrays) -> bool:
    return all(np.isfinite(array).all() for array in arrays)


class EqPropNetwork:
    """A layered Hopfield network, dense or convolutional, trained by Equilibrium Propagation.

    Parameters
    ----------
    layers : sequence
        From input to output. The input is an int (flat features) or a
        (C, H, W) tuple; each later entry an int (a dense layer) or an
        :class:`eqprop.Conv2d`, conv layers first. ``[784, 500, 10]`` is the
        paper's network; ``[(1, 28, 28), Conv2d(32, 5), Conv2d(64, 5), 10]`` a
        convnet (see :mod:`eqprop.layers`).
    dtype : {"float32", "float64"}, default "float32"
        Floating type of the parameters and of every state.
    seed : int or numpy.random.Generator, optional
        Seed of the Glorot-uniform weight initialisation: weights uniform in
        +-sqrt(6 / (fan_in + fan_out)), with fan_in, fan_out = n_in, n_out for
        a dense connection and C_in k^2, C_out k^2 for a conv one; biases start
        at 0.
    init_gains : float or sequence of float, optional
        Multipliers of that Glorot limit, one per weight array (or one for
        all): connection k's weights are uniform in +-init_gains[k] * limit_k.
        Default 1 (plain Glorot). Deep conv chains relax slowly at gain 1 (the
        layers' feedback through the symmetric weights is strong); smaller
        gains above the first layer make the dynamics contract (docs/results.md).
    output : {"clipped", "linear"}, default "clipped"
        The output layer's units: clipped to [0, 1] like the hidden ones (the
        paper's model), or linear (unbounded, rho the identity there, as in
        Scellier et al.'s deep Hopfield networks): E keeps 1/2 ||y||^2 and Phi
        uses y itself.
    cost : {"squared-error", "cross-entropy"}, default "squared-error"
        The cost C the network learns to minimise at its free fixed point.
        ``"squared-error"``: C = 1/2 ||y - d||^2 on the output layer, which
        relaxes (the paper's model). ``"cross-entropy"``: the last connection
        is a softmax readout outside the energy (Laborieux et al. 2021): the
        last size is still the number of classes, but those units do not
        relax; they hold p = softmax(rho(s_L) W_out + b_out) of the last
        relaxing layer s_L, and C = -sum d log p. The nudge reaches s_L as
        beta (d - p sum(d)) W_out^T (beta (d - p) W_out^T for one-hot d),
        added to its net input like any other input and then clipped (rho' is
        never applied, as with the squared error: a unit at 0 or 1 pushed
        outwards stays there). The readout learns dW_out = -rho(s_L^0)^T
        (p^0 - d) / batch at the free fixed point, with any EP algorithm for
        the hidden weights (not the clamped ones, "contrastive" and
        "coupled": there is no relaxing output to clamp). Needs a hidden
        layer and ``output="clipped"``; conv hidden layers are allowed (the
        readout is dense).
    precision : {"float32", "bfloat16"}, default "float32"
        The relaxation's matrix products (the drive x W_0, the bottom-up s W
        and top-down s W^T parts): in the network's dtype, or on bfloat16
        copies of the weights and states (rounded to nearest even) with
        float32 sums, using AVX512_BF16 where the CPU has it (a conv
        connection's transposed convolution multiplies the rounded values with
        the float32 kernels). Everything else stays float32: the parameters,
        the states, the element-wise steps and the EP update. Needs dtype
        float32.
    threads : int, optional
        OpenMP threads the core uses: None means every usable core, n > 0
        exactly n, -k all but k - 1 (scikit-learn's convention). Each method
        also takes ``threads`` to override it for one call.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[k]`` joins layer k to layer k + 1: shape (n_k, n_{k+1}) for a
        dense connection, (C_out, C_in, k, k) for a conv one. These are the
        arrays the core reads and updates in place: writing into them changes
        the model.
    biases : list of ndarray
        ``biases[k]``: the bias of non-input layer k + 1, one per unit (dense)
        or per channel (conv).
    sizes : tuple of int
        Flat sizes of every layer, input included (C * H * W for a map).
    layer_shapes : tuple of tuple
        The state shape of every non-input layer: (n,) or (C, H, W). With the
        cross-entropy the last is the readout's (n_classes,): its slot of a
        state holds p.
    cost_function : str
        The ``cost`` argument.
    input_shape : tuple of int
        (n,) or (C, H, W).
    """

    cost_function = "squared-error"  # networks pickled before the cost option had only this one

    def __init__(
        self,
        layers: Sequence[object],
        *,
        dtype: str | np.dtype = "float32",
        seed: int | np.random.Generator | None = None,
        init_gains: float | Sequence[float] | None = None,
        output: str = "clipped",
        cost: str = "squared-error",
        precision: str = "float32",
        threads: int | None = None,
    ) -> None:
        self.input_shape, self.connections = resolve_layers(layers)
        self.output = check.check_output(output)
        self.cost_function = check.check_cost(cost)
        self.layers: list[object] = [self.input_shape if len(self.input_shape) == 3 else self.input_shape[0],
                                     *layers[1:]]
        self.sizes: tuple[int, ...] = (self.connections[0].n_in, *(c.n_out for c in self.connections))
        self.layer_shapes: tuple[tuple[int, ...], ...] = tuple(c.out_shape for c in self.connections)
        if self.readout:
            if self.output == "linear":
                raise ValueError("cost='cross-entropy' puts a softmax readout on the last connection: the output "
                                 "units do not relax, so output='linear' has no meaning; use output='clipped'")
            if len(self.connections) < 2:
                raise ValueError(f"cost='cross-entropy' needs a hidden layer: the last connection is the readout "
                                 f"and only the layers below it relax; got layers {self.architecture}")
            if self.connections[-1].kind != "dense":
                raise ValueError("cost='cross-entropy' needs a dense last layer: the readout is dense")
        self.dtype = check.check_dtype(dtype)
        self.precision = check.check_precision(precision, self.dtype)
        self.threads = check.check_threads(threads)
        gains = check.check_init_gains(init_gains, len(self.connections))
        rng = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        for connection, gain in zip(self.connections, gains):
            fan_in, fan_out = connection.fans
            limit = gain * np.sqrt(6.0 / (fan_in + fan_out))  # Glorot & Bengio (2010), as in the paper's code
            values = rng.uniform(-limit, limit, size=connection.weight_shape)
            self.weights.append(cache_aligned_copy(values, self.dtype))
        self.biases: list[np.ndarray] = [np.zeros(c.bias_shape, dtype=self.dtype) for c in self.connections]
        self._chain: eqcore.Chain | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Flat sizes of the non-input layers (the ones that relax)."""
        return self.sizes[1:]

    @property
    def readout(self) -> bool:
        """Whether the last connection is the cross-entropy's softmax readout (outside the energy)."""
        return self.cost_function == "cross-entropy"

    @property
    def is_convolutional(self) -> bool:
        return any(c.kind == "conv" for c in self.connections)

    @property
    def architecture(self) -> str:
        """The layers in the command line's grammar, e.g. ``784-500-10`` or ``1x28x28,c32k5mp,10``."""
        return format_layers(self.layers)

    @property
    def n_parameters(self) -> int:
        return sum(w.size for w in self.weights) + sum(b.size for b in self.biases)

    def __repr__(self) -> str:
        output = ", output='linear'" if self.output == "linear" else ""
        cost = ", cost='cross-entropy'" if self.readout else ""
        precision = ", precision='bfloat16'" if self.precision == "bfloat16" else ""
        return f"EqPropNetwork({self.architecture}, dtype={self.dtype.name}{output}{cost}{precision})"

    def zero_state(self, batch: int) -> State:
        """The all-zeros flat state of ``batch`` examples (where relaxation starts by default)."""
        return [np.zeros((batch, n), dtype=self.dtype) for n in self.layer_sizes]

    def shaped(self, state: Sequence[np.ndarray]) -> State:
        """Views of flat (batch, n) states in the layers' shapes: (batch, C, H, W) for conv layers."""
        return [s.reshape((s.shape[0], *shape)) for s, shape in zip(state, self.layer_shapes)]

    def core_chain(self) -> eqcore.Chain:
        """The network described to the core (rebuilt if a parameter array was replaced)."""
        chain = self._chain
        if chain is not None:
            weights, biases = chain.arrays
            if (all(a is b for a, b in zip(weights, self.weights)) and all(a is b for a, b in zip(biases, self.biases))
                    and chain.bfloat16 == (self.precision == "bfloat16")):
                return chain
        self._checked_parameter_arrays()
        geometry = np.array([c.geometry_row() for c in self.connections], dtype=np.int32)
        self._chain = eqcore.Chain(geometry, list(self.weights), list(self.biases),
                                   linear_output=self.output == "linear", readout=self.readout,
                                   precision=self.precision)
        return self._chain

    def __getstate__(self) -> dict:
        # the core's description points into this process's arrays: rebuilt on first use
        state = self.__dict__.copy()
        state["_chain"] = None
        return state

    def _checked_parameter_arrays(self) -> None:
        """The parameter arrays are the ones the core can point into (shapes, dtype, layout)."""
        for name, arrays, shapes in (
            ("weights", self.weights, [c.weight_shape for c in self.connections]),
            ("biases", self.biases, [c.bias_shape for c in self.connections]),
        ):
            if len(arrays) != len(shapes):
                raise ValueError(f"net.{name} must have {len(shapes)} arrays; it has {len(arrays)}")
            for k, (array, shape) in enumerate(zip(arrays, shapes)):
                if not isinstance(array, np.ndarray) or array.shape != shape:
                    got = getattr(array, "shape", type(array).__name__)
                    raise ValueError(f"net.{name}[{k}] must be an array of shape {shape}; got {got}")
                if array.dtype != self.dtype or not array.flags.c_contiguous or not array.flags.writeable:
                    raise ValueError(
                        f"net.{name}[{k}] must be a writeable C-contiguous {self.dtype} array; "
                        f"write into it (net.{name}[k][...] = values) instead of replacing it"
                    )

    def _checked_parameters(self) -> None:
        """Parameters may be replaced or corrupted by users: check them before the core reads them."""
        self._checked_parameter_arrays()
        check.check_parameters(self.weights, self.biases)

    def _flat(self, array: object, name: str, shape: tuple[int, ...]) -> object:
        """``array`` with a (batch, *shape) image layout flattened to (batch, prod(shape)).

        Anything else is returned as it is, for ``_validation.as_batch`` to check.
        """
        if len(shape) == 1:
            return array
        if not isinstance(array, np.ndarray):
            try:
                array = np.asarray(array)
            except (TypeError, ValueError):
                return array
        if array.ndim == 2:
            return array
        if array.ndim == len(shape) + 1:
            if tuple(array.shape[1:]) != tuple(shape):
                raise ValueError(
                    f"{name} has examples of shape {tuple(array.shape[1:])}; the network expects "
                    f"{tuple(shape)} (or flat {int(np.prod(shape))})"
                )
            return array.reshape(array.shape[0], -1)
        return array

    def _inputs(self, x: object) -> np.ndarray:
        """x as a finite C-contiguous flat batch, passed through rho like every layer."""
        x = check.as_batch(self._flat(x, "x", self.input_shape), "x", self.sizes[0], self.dtype)
        if x.size and (x.min() < 0 or x.max() > 1):
            x = rho(x)
        return x

    def _target(self, target: object, batch: int) -> np.ndarray | None:
        """The target as a checked (batch, n_output) array, or None."""
        if target is None:
            return None
        target = check.as_batch(self._flat(target, "target", self.layer_shapes[-1]), "target",
                                self.sizes[-1], self.dtype)
        if target.shape[0] != batch:
            raise ValueError(f"target has {target.shape[0]} rows; x has {batch}")
        if self.readout and target.size and target.min() < 0:
            raise ValueError("with cost='cross-entropy' the target is a distribution over the classes "
                             f"(one-hot, or non-negative weights); it holds {target.min():g}")
        return target

    def _state(self, state: object, name: str, batch: int) -> State:
        """A checked flat copy of a state given flat or in the layers' shapes."""
        if isinstance(state, (list, tuple)) and len(state) == len(self.layer_shapes):
            state = [self._flat(s, f"{name}[{k}]", shape) for k, (s, shape) in enumerate(zip(state, self.layer_shapes))]
        return check.as_state(state, name, batch, self.layer_sizes, self.dtype)

    def _initial_state(self, init: Sequence[np.ndarray] | None, batch: int) -> State:
        """A fresh flat state: zeros, or a checked copy of ``init`` projected onto [0, 1] (a linear output: as is)."""
        if init is None:
            return self.zero_state(batch)
        state = self._state(init, "init", batch)
        for layer in state[:-1] if self.output == "linear" else state:
            np.clip(layer, 0.0, 1.0, out=layer)
        return state

    def _contrast(self, algorithm: object, symmetric: object, beta: object, coupling: object,
                  solver: str) -> Contrast:
        """The checked contrast of one estimate (``algorithm`` or the older ``symmetric`` switch)."""
        symmetric = check.check_bool(symmetric, "symmetric")
        if algorithm is not None:
            algorithm = check_algorithm(algorithm)
            if symmetric:
                raise ValueError("give algorithm or symmetric, not both (algorithm='centered' is symmetric)")
            if algorithm == "random-sign":
                raise ValueError("algorithm='random-sign' draws a sign per mini-batch (use Trainer); "
                                 "here choose 'positive' or 'negative'")
        if algorithm is not None and not uses_beta(algorithm):
            self._check_clamp(algorithm)
            return contrast_of(algorithm, 0.0, check_coupling(coupling))
        if beta is None:
            raise ValueError("beta is required: the EP estimate divides by it")
        beta = check.check_beta(beta, solver, self.dtype)
        if beta == 0.0:
            raise ValueError("beta must be nonzero: the EP estimate divides by it")
        if algorithm is None:
            chosen = Contrast("centered", abs(beta)) if symmetric else Contrast("one-sided", beta)
        else:
            chosen = contrast_of(algorithm, beta, 1.0)
        if chosen.mode == "centered" or chosen.beta < 0:
            check.check_beta(-abs(beta), solver)
        return chosen

    def _check_clamp(self, algorithm: str) -> None:
        """The clamped algorithms need a relaxing output layer (not the cross-entropy's readout)."""
        if self.readout:
            raise ValueError(f"algorithm={algorithm!r} clamps the output layer, but with cost='cross-entropy' the "
                             f"output is the softmax readout, which does not relax; use an EP algorithm "
                             f"('positive', 'negative', 'random-sign' or 'centered')")

    def _threads(self, threads: object) -> int:
        threads = check.check_threads(threads)
        return resolve_threads(threads if threads is not None else self.threads)

    def step_engine(self, max_batch: int) -> StepEngine:
        """A :class:`eqprop.step.StepEngine` for mini-batches of up to ``max_batch`` examples."""
        return StepEngine(self, max_batch)

    # ------------------------------------------------------------- public API
    def relax(
        self,
        x: object,
        *,
        steps: int,
        epsilon: float,
        beta: float = 0.0,
        target: object = None,
        init: Sequence[np.ndarray] | None = None,
        solver: str = "euler",
        threads: int | None = None,
    ) -> State:
        """Relax the state of a batch towards a fixed point of F = E + beta * C.

        Parameters
        ----------
        x : array-like, shape (batch, sizes[0]) or (batch, C, H, W)
            Clamped inputs, flat or in the input's shape (identical results);
            values are passed through rho (scale data to [0, 1]).
        steps : int
            Number of sweeps (Euler steps, or alternating passes).
        epsilon : float
            Euler step size in (0, 1]; the paper uses 0.5. Unused by
            ``"alternating"`` and ``"fixed-point"``.
        beta : float, default 0.0
            Nudging strength; 0 is the free phase. Nonzero needs ``target``.
        target : array-like, shape (batch, sizes[-1]), optional
            Desired output d (one-hot for classification).
        init : list of arrays, optional
            Starting state, one array per non-input layer, flat (batch, n_k) or
            in the layer's shape; it is copied, not modified, and projected
            onto [0, 1]. Default: zeros.
        solver : {"euler", "alternating", "fixed-point"}, default "euler"
            ``"euler"``: the paper's dynamics s <- clip(s - epsilon dF/ds, 0, 1),
            all layers at once. ``"alternating"``: odd then even layers set
            exactly to their conditional minimum clip(h, 0, 1) (block-coordinate
            descent on F; same fixed points, far fewer sweeps). ``"fixed-point"``:
            the same order, each layer set to clip(s - dF/ds) at the current
            state; only the nudged output differs from ``"alternating"``: it
            moves to h + beta (d - y) rather than (h + beta d) / (1 + beta)
            (Scellier's FixedPointMinimizer, mode 'asynchronous'; needs |beta| < 1).
        threads : int, optional
            OpenMP threads for this call (default: the network's setting).

        Returns
        -------
        list of ndarray
            One array per non-input layer, (batch, n_k) for dense layers and
            (batch, C, H, W) for conv layers; the last is the output y (with
            the cross-entropy: the readout's p = softmax(z) at the final s_L;
            ``init``'s last array is then not read).
        """
        steps = check.check_int(steps, "steps")
        epsilon = check.check_epsilon(epsilon)
        solver = check.check_solver(solver)
        beta = check.check_beta(beta, solver, self.dtype)
        n_threads = self._threads(threads)
        x = self._inputs(x)
        batch = x.shape[0]
        target = self._target(target, batch)
        if beta != 0.0 and target is None:
            raise ValueError("beta is nonzero, so a target is needed for the nudged phase")
        check.check_nudge(beta, target, self.dtype)
        state = self._initial_state(init, batch)
        self._checked_parameters()
        with single_threaded_blas():
            StepEngine(self, batch).relax(
                x, state, steps=steps, epsilon=epsilon, beta=beta, target=target,
                solver=solver, threads=n_threads,
            )
        return self.shaped(state)

    def energy(self, x: object, state: Sequence[np.ndarray]) -> np.ndarray:
        """The Hopfield energy E(s) = 1/2 ||s||^2 - Phi(x, s) of each example, shape (batch,).

        Computed in NumPy (a diagnostic, never on the training path). With the
        cross-entropy, E stops at the last relaxing layer (the readout is
        outside the energy; the state's last array is ignored).
        """
        x = self._inputs(x)
        flat = self._state(state, "state", x.shape[0])
        self._checked_parameters()
        batch = x.shape[0]
        layers = [x] + [rho(s) for s in flat]
        if self.output == "linear":
            layers[-1] = flat[-1]
        relaxing = len(self.connections) - 1 if self.readout else len(self.connections)
        energy = sum(0.5 * np.einsum("bi,bi->b", s, s) for s in flat[:relaxing])
        for k, (connection, w, b) in enumerate(zip(self.connections[:relaxing], self.weights, self.biases)):
            above = layers[k + 1]
            if connection.kind == "dense":
                energy = energy - np.einsum("bi,ij,bj->b", layers[k], w, above)
                energy = energy - above @ b
                continue
            below = layers[k].reshape(batch, *connection.in_shape)
            pooled = _conv_numpy.pool(_conv_numpy.correlate(below, w, connection.padding), connection.pool)
            above = above.reshape(batch, *connection.out_shape)
            energy = energy - np.einsum("bchw,bchw->b", above, pooled)
            energy = energy - np.einsum("bchw,c->b", above, b)
        return energy

    def cost(self, state: Sequence[np.ndarray], target: object) -> np.ndarray:
        """C of each example, shape (batch,): 1/2 ||y - d||^2, or -sum d log p with the cross-entropy.

        With the cross-entropy ``state[-1]`` is the readout's p (as :meth:`relax`
        returns it); a p that underflowed to 0 counts as the dtype's smallest
        normal number (at most 87.3 per unit of d in float32, 708.4 in float64).
        """
        output = check.as_batch(self._flat(state[-1], "state[-1]", self.layer_shapes[-1]), "state[-1]",
                                self.sizes[-1], self.dtype)
        target = check.as_batch(self._flat(target, "target", self.layer_shapes[-1]), "target",
                                self.sizes[-1], self.dtype)
        if target.shape[0] != output.shape[0]:
            raise ValueError(f"target has {target.shape[0]} rows; the state has {output.shape[0]}")
        if self.readout:
            tiny = np.finfo(self.dtype).tiny
            log_p = np.log(np.maximum(output.astype(np.float64), tiny))
            return -np.sum(np.where(target != 0, target * log_p, 0.0), axis=1)
        return 0.5 * np.sum((output - target) ** 2, axis=1)

    def predict(
        self,
        x: object,
        *,
        steps: int = 100,
        epsilon: float = 0.5,
        solver: str = "euler",
        threads: int | None = None,
    ) -> np.ndarray:
        """Class indices: the argmax of the output (or the readout's p) at the free fixed point (from zeros)."""
        output = self.relax(x, steps=steps, epsilon=epsilon, solver=solver, threads=threads)[-1]
        return np.argmax(output.reshape(output.shape[0], self.sizes[-1]), axis=1)

    def ep_gradients(
        self,
        x: object,
        target: object,
        *,
        beta: float | None = None,
        free_steps: int,
        nudged_steps: int,
        epsilon: float,
        symmetric: bool = False,
        algorithm: str | None = None,
        coupling: float = 0.5,
        solver: str = "euler",
        threads: int | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """EP estimates of dJ/dW and dJ/db, J = mean over the batch of C at the free fixed point.

        One-sided (eq. 13 of the paper): dJ/dtheta ~ (dE/dtheta(s^beta) - dE/dtheta(s^0)) / beta,
        i.e. dW_k = -(rho(s_k^b)^T rho(s_{k+1}^b) - rho(s_k^0)^T rho(s_{k+1}^0)) / (beta * batch).
        Symmetric (Laborieux et al. 2021): the same with s^{+beta} and s^{-beta}
        over 2 beta, which cancels the O(beta) bias. ``w -= lr * dW`` descends J.
        With the cross-entropy the readout's entries are its exact gradient at
        the free fixed point, rho(s_L^0)^T (p^0 - d) / batch (the readout is
        outside the energy, so s^0 does not depend on it).

        ``algorithm`` picks another estimator of the family (:mod:`eqprop.algorithms`):
        "positive", "negative", "centered" (= ``symmetric=True``), "contrastive"
        or "coupled" (output clamped to y^0 + coupling (d - y^0); ``beta`` is
        then unused). Without it, ``symmetric`` chooses centered or one-sided
        with ``beta`` as given (either sign).

        Returns
        -------
        (list of ndarray, list of ndarray)
            Gradient estimates shaped like ``weights`` and ``biases``. For a conv
            connection dPhi/dW is the correlation of the state below with the
            un-pooled state above (max pooling routes by the winners of that
            state's own bottom-up input).
        """
        solver = check.check_solver(solver)
        contrast = self._contrast(algorithm, symmetric, beta, coupling, solver)
        check.check_update_scale([1.0], _spread(contrast), self.dtype, what=None)
        free_steps = check.check_int(free_steps, "free_steps")
        nudged_steps = check.check_int(nudged_steps, "nudged_steps")
        epsilon = check.check_epsilon(epsilon)
        n_threads = self._threads(threads)
        if target is None:
            raise ValueError("target is required: the EP estimate needs a nudged phase")
        x = self._inputs(x)
        batch = x.shape[0]
        target = self._target(target, batch)
        check.check_nudge(contrast.beta, target, self.dtype)
        self._checked_parameters()
        if batch == 0:
            return [np.zeros_like(w) for w in self.weights], [np.zeros_like(b) for b in self.biases]
        free = self.zero_state(batch)
        engine = StepEngine(self, batch)
        with single_threaded_blas():
            engine.free_phase(x, free, steps=free_steps, epsilon=epsilon, solver=solver, threads=n_threads)
            grads_w, grads_b = engine.gradients(
                x, free, target, contrast=contrast, nudged_steps=nudged_steps, epsilon=epsilon,
                solver=solver, threads=n_threads,
            )
        for grad in (*grads_w, *grads_b):
            if not np.isfinite(grad).all():
                raise FloatingPointError(
                    f"the EP gradient estimate became NaN or infinite (beta = {contrast.beta:g}); "
                    f"relaxation overflowed {self.dtype.name}"
                )
        return grads_w, grads_b

    def train_step(
        self,
        x: object,
        target: object,
        *,
        beta: float | None = None,
        free_steps: int,
        nudged_steps: int,
        epsilon: float,
        learning_rates: Sequence[float],
        init: Sequence[np.ndarray] | None = None,
        symmetric: bool = False,
        algorithm: str | None = None,
        coupling: float = 0.5,
        solver: str = "euler",
        threads: int | None = None,
    ) -> State:
        """One EP training step on a mini-batch; parameters are updated in place.

        Free phase (from ``init`` or zeros), nudged phase from the free fixed
        point, then W_k += lr_k / beta * mean_batch(rho(s^beta) rho(s^beta)^T -
        rho(s^0) rho(s^0)^T) (eq. 13), biases likewise with their layer's rate.

        Parameters
        ----------
        learning_rates : sequence of float
            One positive rate per weight matrix; bias k uses rate k.
        Other parameters are those of :meth:`relax` and :meth:`ep_gradients`
        (``algorithm`` and ``coupling`` choose the estimator).

        Returns
        -------
        list of ndarray
            The free fixed point, in the layers' shapes (use its output for the
            training error, or keep it as the next starting state: persistent
            particles).
        """
        rates = self.check_learning_rates(learning_rates)
        steps = check.check_int(nudged_steps, "nudged_steps")
        solver = check.check_solver(solver)
        contrast = self._contrast(algorithm, symmetric, beta, coupling, solver)
        check.check_update_scale(rates, _spread(contrast), self.dtype)
        if target is None:
            raise ValueError("target is required for a training step")
        free_steps = check.check_int(free_steps, "free_steps")
        epsilon = check.check_epsilon(epsilon)
        n_threads = self._threads(threads)
        x = self._inputs(x)
        batch = x.shape[0]
        target = self._target(target, batch)
        check.check_nudge(contrast.beta, target, self.dtype)
        free = self._initial_state(init, batch)
        if batch == 0:
            return free
        self._checked_parameter_arrays()

        def diverged() -> FloatingPointError:
            return FloatingPointError(
                f"train_step produced NaN or infinite values (beta = {beta:g}, learning rates "
                f"{rates.tolist()}, epsilon = {epsilon:g}); the parameters were restored to their values "
                f"before the step"
            )

        engine = StepEngine(self, batch)
        if self._update_is_bounded():
            # finite states in [0, 1] cannot take parameters below a quarter of the range out
            # of it: checking the states before the update replaces the copy of every parameter
            # and the scan after it (two passes over W_0 instead of four)
            with single_threaded_blas():
                engine.free_phase(x, free, steps=free_steps, epsilon=epsilon, solver=solver, threads=n_threads)
                if not _all_finite(free):
                    raise diverged()
                positive, negative, spread = engine.contrasted_states(
                    x, free, target, contrast=contrast, nudged_steps=steps, epsilon=epsilon, solver=solver,
                    threads=n_threads,
                )
                if not (_all_finite(positive) and _all_finite(negative)):
                    raise diverged()
                engine.accumulate(x, positive, negative, engine.update_scales(rates, spread, batch), n_threads)
            return self.shaped(free)
        check.check_parameters(self.weights, self.biases)
        saved = [array.copy() for array in (*self.weights, *self.biases)]  # restored on divergence
        with single_threaded_blas():
            engine.free_phase(x, free, steps=free_steps, epsilon=epsilon, solver=solver, threads=n_threads)
            engine.update(
                x, free, target, contrast=contrast, nudged_steps=steps, epsilon=epsilon, rates=rates,
                solver=solver, threads=n_threads,
            )
        if not _all_finite((*free, *self.weights, *self.biases)):
            for array, before in zip((*self.weights, *self.biases), saved):
                array[...] = before
            raise diverged()
        return self.shaped(free)

    def _update_is_bounded(self) -> bool:
        """Whether one EP update provably keeps the parameters finite, given finite states.

        For a dense network with clipped layers and no readout every state is in
        [0, 1], so an update moves each parameter by at most lr / |spread|, which
        ``check_update_scale`` holds below a quarter of the dtype's range; from
        parameters within another quarter the result stays finite. Also refuses
        non-finite parameters (ValueError naming the array).
        """
        if self.output != "clipped" or self.readout or any(c.kind != "dense" for c in self.connections):
            return False
        limit = float(np.finfo(self.dtype).max) / 4
        for array in (*self.weights, *self.biases):
            if array.size and not (-limit <= array.min() and array.max() <= limit):  # False for NaN too
                check.check_parameters(self.weights, self.biases)  # NaN or infinity: the usual error
                return False
        return True

    def check_learning_rates(self, learning_rates: object) -> np.ndarray:
        """One positive, finite learning rate per weight matrix, as float64."""
        if isinstance(learning_rates, (str, bytes)) or not isinstance(learning_rates, Sequence | np.ndarray):
            raise TypeError(f"learning_rates must be a sequence of {len(self.weights)} numbers; got {learning_rates!r}")
        if len(learning_rates) != len(self.weights):
            raise ValueError(
                f"learning_rates needs one rate per weight matrix ({len(self.weights)}); got {len(learning_rates)}"
            )
        rates = np.array([check.check_real(r, f"learning_rates[{k}]") for k, r in enumerate(learning_rates)])
        if (rates <= 0).any():
            raise ValueError(f"learning_rates must be positive; got {rates.tolist()}")
        return rates

    # ------------------------------------------------------------ persistence
    def get_params(self) -> dict:
        """Copies of the parameters and the configuration (for checkpoints)."""
        from eqprop.layers import layers_to_json

        return {
            "sizes": list(self.sizes),
            "layers": layers_to_json(self.layers),
            "dtype": self.dtype.name,
            "output": self.output,
            "cost": self.cost_function,
            "precision": self.precision,
            "weights": [w.copy() for w in self.weights],
            "biases": [b.copy() for b in self.biases],
        }

    def set_params(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> None:
        """Write parameters into the existing arrays (shapes must match)."""
        for name, targets, values in (("weights", self.weights, weights), ("biases", self.biases, biases)):
            if len(values) != len(targets):
                raise ValueError(f"{name} must have {len(targets)} arrays; got {len(values)}")
            for k, (dest, value) in enumerate(zip(targets, values)):
                value = np.asarray(value)
                if value.shape != dest.shape:
                    raise ValueError(f"{name}[{k}] must have shape {dest.shape}; got {value.shape}")
                dest[...] = value

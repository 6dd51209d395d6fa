"""EqPropNetwork: the layered Hopfield network of Scellier & Bengio (2016).

State s = (s_1, ..., s_L, y) with the input x clamped, rho the hard sigmoid
clip(., 0, 1), and

    E(s) = 1/2 sum_k ||s_k||^2 - sum_k rho(s_k)^T W_k rho(s_{k+1}) - sum_k b_k^T rho(s_k)
    C(s) = 1/2 ||y - d||^2,       F = E + beta * C.

The relaxation and the learning rule run in the compiled core ``eqcore``; this
module validates arguments, converts arrays once, and owns the parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import eqcore
from eqprop import _validation as check
from eqprop._threads import resolve_threads, single_threaded_blas

_SOLVER_CODES = {"euler": eqcore.SOLVER_EULER, "alternating": eqcore.SOLVER_ALTERNATING}

State = list[np.ndarray]


def rho(s: np.ndarray) -> np.ndarray:
    """The hard sigmoid clip(s, 0, 1) (Scellier & Bengio 2016, section 5)."""
    return np.clip(s, 0.0, 1.0)


class EqPropNetwork:
    """A layered Hopfield network trained by Equilibrium Propagation.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes from input to output, e.g. ``[784, 500, 10]``.
    dtype : {"float32", "float64"}, default "float32"
        Floating type of the parameters and of every state.
    seed : int or numpy.random.Generator, optional
        Seed of the Glorot-uniform weight initialisation (biases start at 0).
    threads : int, optional
        OpenMP threads the core uses; None means all cores. Each method also
        takes ``threads`` to override it for one call.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[k]`` has shape (sizes[k], sizes[k + 1]). These are the arrays
        the core reads and updates in place: writing into them changes the model.
    biases : list of ndarray
        ``biases[k]`` has shape (sizes[k + 1],): the bias of non-input layer k + 1.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        dtype: str | np.dtype = "float32",
        seed: int | np.random.Generator | None = None,
        threads: int | None = None,
    ) -> None:
        self.sizes = check.check_sizes(sizes)
        self.dtype = check.check_dtype(dtype)
        self.threads = check.check_threads(threads)
        rng = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]):
            limit = np.sqrt(6.0 / (n_in + n_out))  # Glorot & Bengio (2010), as in the paper's code
            self.weights.append(rng.uniform(-limit, limit, size=(n_in, n_out)).astype(self.dtype))
        self.biases: list[np.ndarray] = [np.zeros(n, dtype=self.dtype) for n in self.sizes[1:]]

    # ------------------------------------------------------------------ helpers
    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Sizes of the non-input layers (the ones that relax)."""
        return self.sizes[1:]

    @property
    def n_parameters(self) -> int:
        return sum(w.size for w in self.weights) + sum(b.size for b in self.biases)

    def __repr__(self) -> str:
        sizes = "-".join(map(str, self.sizes))
        return f"EqPropNetwork({sizes}, dtype={self.dtype.name})"

    def zero_state(self, batch: int) -> State:
        """The all-zeros state of ``batch`` examples (where relaxation starts by default)."""
        return [np.zeros((batch, n), dtype=self.dtype) for n in self.layer_sizes]

    def _checked_parameters(self) -> None:
        """Parameters may be replaced by users: check them before the core reads them."""
        for name, arrays, shapes in (
            ("weights", self.weights, list(zip(self.sizes[:-1], self.sizes[1:]))),
            ("biases", self.biases, [(n,) for n in self.sizes[1:]]),
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
        check.check_parameters(self.weights, self.biases)

    def _inputs(self, x: object) -> np.ndarray:
        """x as a finite C-contiguous batch, passed through rho like every layer."""
        x = check.as_batch(x, "x", self.sizes[0], self.dtype)
        if x.size and (x.min() < 0 or x.max() > 1):
            x = rho(x)
        return x

    def _target(self, target: object, batch: int) -> np.ndarray | None:
        """The target as a checked (batch, n_output) array, or None."""
        if target is None:
            return None
        target = check.as_batch(target, "target", self.sizes[-1], self.dtype)
        if target.shape[0] != batch:
            raise ValueError(f"target has {target.shape[0]} rows; x has {batch}")
        return target

    def _initial_state(self, init: Sequence[np.ndarray] | None, batch: int) -> State:
        """A fresh state: zeros, or a checked copy of ``init`` projected onto [0, 1]."""
        if init is None:
            return self.zero_state(batch)
        state = check.as_state(init, "init", batch, self.layer_sizes, self.dtype)
        for layer in state:
            np.clip(layer, 0.0, 1.0, out=layer)
        return state

    def _threads(self, threads: object) -> int:
        threads = check.check_threads(threads)
        return resolve_threads(threads if threads is not None else self.threads)

    # ----------------------------------------------------------- core wrappers
    def _relax_in_place(
        self,
        x: np.ndarray,
        state: State,
        *,
        steps: int,
        epsilon: float,
        beta: float,
        target: np.ndarray | None,
        solver: str,
        threads: int,
        drive: np.ndarray | None = None,
        drive_ready: bool = False,
    ) -> None:
        """Relax validated, C-contiguous ``state`` in place (no checks: callers check).

        ``drive`` is an optional (batch, sizes[1]) buffer for x W_0: filled here,
        or reused as it is when ``drive_ready`` (same x, same weights). Callers
        keep BLAS single-threaded around it (``single_threaded_blas``), once for
        all their calls: entering that context costs tens of microseconds.
        """
        eqcore.relax_batch(
            self.weights, self.biases, x, state, steps, epsilon, beta,
            target if beta != 0.0 else None, _SOLVER_CODES[solver], threads,
            drive, drive_ready,
        )

    def _accumulate_update(
        self,
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        x: np.ndarray,
        positive: State,
        negative: State,
        scales: np.ndarray,
        threads: int,
    ) -> bool:
        """weights/biases += scales_k * (rho(P) rho(P)^T - rho(N) rho(N)^T) summed over the batch.

        Returns whether the updated biases are all finite (a cheap divergence check).
        """
        return eqcore.apply_ep_update(weights, biases, x, positive, negative, scales, threads)

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
        x : array-like, shape (batch, sizes[0])
            Clamped inputs; values are passed through rho (scale data to [0, 1]).
        steps : int
            Number of sweeps (Euler steps, or alternating passes).
        epsilon : float
            Euler step size in (0, 1]; the paper uses 0.5. Unused by ``"alternating"``.
        beta : float, default 0.0
            Nudging strength; 0 is the free phase. Nonzero needs ``target``.
        target : array-like, shape (batch, sizes[-1]), optional
            Desired output d (one-hot for classification).
        init : list of arrays, optional
            Starting state, one (batch, n_k) array per non-input layer; it is
            copied, not modified, and projected onto [0, 1]. Default: zeros.
        solver : {"euler", "alternating"}, default "euler"
            ``"euler"``: the paper's dynamics s <- clip(s - epsilon dF/ds, 0, 1),
            all layers at once. ``"alternating"``: odd then even layers set
            exactly to their conditional minimum clip(h, 0, 1) (block-coordinate
            descent on F; same fixed points, far fewer sweeps).
        threads : int, optional
            OpenMP threads for this call (default: the network's setting).

        Returns
        -------
        list of ndarray
            One (batch, n_k) array per non-input layer; the last is the output y.
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
            self._relax_in_place(
                x, state, steps=steps, epsilon=epsilon, beta=beta, target=target,
                solver=solver, threads=n_threads,
            )
        return state

    def energy(self, x: object, state: Sequence[np.ndarray]) -> np.ndarray:
        """The Hopfield energy E(s) of each example (eq. 1 of the paper), shape (batch,)."""
        x = self._inputs(x)
        state = check.as_state(state, "state", x.shape[0], self.layer_sizes, self.dtype)
        self._checked_parameters()
        layers = [x] + [rho(s) for s in state]
        energy = sum(0.5 * np.einsum("bi,bi->b", s, s) for s in state)
        for k, w in enumerate(self.weights):
            energy = energy - np.einsum("bi,ij,bj->b", layers[k], w, layers[k + 1])
        for k, b in enumerate(self.biases):
            energy = energy - layers[k + 1] @ b
        return energy

    def cost(self, state: Sequence[np.ndarray], target: object) -> np.ndarray:
        """C = 1/2 ||y - d||^2 of each example, shape (batch,)."""
        output = check.as_batch(state[-1], "state[-1]", self.sizes[-1], self.dtype)
        target = check.as_batch(target, "target", self.sizes[-1], self.dtype)
        if target.shape[0] != output.shape[0]:
            raise ValueError(f"target has {target.shape[0]} rows; the state has {output.shape[0]}")
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
        """Class indices: the argmax of the output at the free fixed point (from zeros)."""
        output = self.relax(x, steps=steps, epsilon=epsilon, solver=solver, threads=threads)[-1]
        return np.argmax(output, axis=1)

    def ep_gradients(
        self,
        x: object,
        target: object,
        *,
        beta: float,
        free_steps: int,
        nudged_steps: int,
        epsilon: float,
        symmetric: bool = False,
        solver: str = "euler",
        threads: int | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """EP estimates of dJ/dW and dJ/db, J = mean over the batch of C at the free fixed point.

        One-sided (eq. 13 of the paper): dJ/dtheta ~ (dE/dtheta(s^beta) - dE/dtheta(s^0)) / beta,
        i.e. dW_k = -(rho(s_k^b)^T rho(s_{k+1}^b) - rho(s_k^0)^T rho(s_{k+1}^0)) / (beta * batch).
        Symmetric (Laborieux et al. 2021): the same with s^{+beta} and s^{-beta}
        over 2 beta, which cancels the O(beta) bias. ``w -= lr * dW`` descends J.

        Returns
        -------
        (list of ndarray, list of ndarray)
            Gradient estimates shaped like ``weights`` and ``biases``.
        """
        solver = check.check_solver(solver)
        beta = check.check_beta(beta, solver, self.dtype)
        if beta == 0.0:
            raise ValueError("beta must be nonzero: the EP estimate divides by it")
        symmetric = check.check_bool(symmetric, "symmetric")
        if symmetric:
            check.check_beta(-beta, solver)
        check.check_update_scale([1.0], beta, self.dtype, what=None)
        free_steps = check.check_int(free_steps, "free_steps")
        nudged_steps = check.check_int(nudged_steps, "nudged_steps")
        epsilon = check.check_epsilon(epsilon)
        n_threads = self._threads(threads)
        if target is None:
            raise ValueError("target is required: the EP estimate needs a nudged phase")
        x = self._inputs(x)
        batch = x.shape[0]
        target = self._target(target, batch)
        check.check_nudge(beta, target, self.dtype)
        self._checked_parameters()
        grads_w = [np.zeros_like(w) for w in self.weights]
        grads_b = [np.zeros_like(b) for b in self.biases]
        if batch == 0:
            return grads_w, grads_b
        free = self.zero_state(batch)
        drive = np.empty((batch, self.sizes[1]), dtype=self.dtype)
        with single_threaded_blas():
            self._relax_in_place(
                x, free, steps=free_steps, epsilon=epsilon, beta=0.0, target=None,
                solver=solver, threads=n_threads, drive=drive,
            )
            positive, negative, spread = self._contrasted_states(
                x, free, target, beta=beta, nudged_steps=nudged_steps, epsilon=epsilon,
                symmetric=symmetric, solver=solver, threads=n_threads, drive=drive,
            )
            scales = np.full(len(self.weights), -1.0 / (spread * batch))
            self._accumulate_update(grads_w, grads_b, x, positive, negative, scales, n_threads)
        for k, grad in enumerate((*grads_w, *grads_b)):
            if not np.isfinite(grad).all():
                raise FloatingPointError(
                    f"the EP gradient estimate became NaN or infinite (beta = {beta:g}); "
                    f"relaxation overflowed {self.dtype.name}"
                )
        return grads_w, grads_b

    def train_step(
        self,
        x: object,
        target: object,
        *,
        beta: float,
        free_steps: int,
        nudged_steps: int,
        epsilon: float,
        learning_rates: Sequence[float],
        init: Sequence[np.ndarray] | None = None,
        symmetric: bool = False,
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
        Other parameters are those of :meth:`relax` and :meth:`ep_gradients`.

        Returns
        -------
        list of ndarray
            The free fixed point (use its output for the training error, or
            keep it as the next starting state: persistent particles).
        """
        rates = self.check_learning_rates(learning_rates)
        steps = check.check_int(nudged_steps, "nudged_steps")
        solver = check.check_solver(solver)
        beta = check.check_beta(beta, solver, self.dtype)
        if beta == 0.0:
            raise ValueError("beta must be nonzero: the EP update divides by it")
        symmetric = check.check_bool(symmetric, "symmetric")
        if symmetric:
            check.check_beta(-beta, solver)
        check.check_update_scale(rates, beta, self.dtype)
        if target is None:
            raise ValueError("target is required for a training step")
        free_steps = check.check_int(free_steps, "free_steps")
        epsilon = check.check_epsilon(epsilon)
        n_threads = self._threads(threads)
        x = self._inputs(x)
        batch = x.shape[0]
        target = self._target(target, batch)
        check.check_nudge(beta, target, self.dtype)
        free = self._initial_state(init, batch)
        if batch == 0:
            return free
        self._checked_parameters()
        saved = [array.copy() for array in (*self.weights, *self.biases)]  # restored on divergence
        drive = np.empty((batch, self.sizes[1]), dtype=self.dtype)
        with single_threaded_blas():
            self._relax_in_place(
                x, free, steps=free_steps, epsilon=epsilon, beta=0.0, target=None,
                solver=solver, threads=n_threads, drive=drive,
            )
            self._update_from_free(
                x, free, target, beta=beta, nudged_steps=steps, epsilon=epsilon, rates=rates,
                symmetric=symmetric, solver=solver, threads=n_threads, drive=drive,
            )
        if not all(np.isfinite(array).all() for array in (*free, *self.weights, *self.biases)):
            for array, before in zip((*self.weights, *self.biases), saved):
                array[...] = before
            raise FloatingPointError(
                f"train_step produced NaN or infinite values (beta = {beta:g}, learning rates "
                f"{rates.tolist()}, epsilon = {epsilon:g}); the parameters were restored to their values "
                f"before the step"
            )
        return free

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

    def _update_from_free(
        self, x, free, target, *, beta, nudged_steps, epsilon, rates, symmetric, solver, threads,
        drive=None,
    ) -> bool:
        """Nudged phase(s) from a validated free fixed point, then the in-place update.

        ``drive``, if given, must hold x W_0 for the current weights (as left by
        the free phase's ``_relax_in_place(..., drive=...)``); it is reused.
        Returns whether the updated biases are all finite.
        """
        positive, negative, spread = self._contrasted_states(
            x, free, target, beta=beta, nudged_steps=nudged_steps, epsilon=epsilon,
            symmetric=symmetric, solver=solver, threads=threads, drive=drive,
        )
        scales = rates / (spread * x.shape[0])
        return self._accumulate_update(self.weights, self.biases, x, positive, negative, scales, threads)

    def _contrasted_states(
        self, x, free, target, *, beta, nudged_steps, epsilon, symmetric, solver, threads, drive
    ) -> tuple[State, State, float]:
        """The two states EP contrasts and the beta-distance between them.

        One-sided: (s^beta, s^0, beta); symmetric: (s^{+beta}, s^{-beta}, 2 beta).
        """
        positive = self._nudged(x, free, beta, target, nudged_steps, epsilon, solver, threads, drive)
        if symmetric:
            negative = self._nudged(x, free, -beta, target, nudged_steps, epsilon, solver, threads, drive)
            return positive, negative, 2.0 * beta
        return positive, free, beta

    def _nudged(self, x, free, beta, target, steps, epsilon, solver, threads, drive=None) -> State:
        state = [s.copy() for s in free]
        self._relax_in_place(
            x, state, steps=steps, epsilon=epsilon, beta=beta, target=target,
            solver=solver, threads=threads, drive=drive, drive_ready=drive is not None,
        )
        return state

    # ------------------------------------------------------------ persistence
    def get_params(self) -> dict:
        """Copies of the parameters and the configuration (for checkpoints)."""
        return {
            "sizes": list(self.sizes),
            "dtype": self.dtype.name,
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

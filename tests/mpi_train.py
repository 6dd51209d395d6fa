"""Run by tests/test_distributed.py under ``mpiexec -n 2``: data-parallel training runs whose results it checks.

``python mpi_train.py SPEC.json OUT RANKS``: for every run in the spec (a JSON list of
``{"name", "layers", "trainer", "n_train", "epochs", "split_at", "inject", "cost"}``), each
rank trains a float64 network on the first ``n_train`` digits with
``Trainer(..., comm=MPI.COMM_WORLD)`` and writes ``OUT/NAME.rankR.npz`` (weights,
biases, particles, the optimizer's buffers and step count, history, and the
epoch and mini-batch of a divergence).
With ``split_at`` it trains that many epochs into a checkpoint directory, then
continues from it with ``Trainer.resume``. ``inject`` changes rank 1's first
weight after epoch 1: ``"perturb"`` by 1e-3 (the replicas no longer agree),
``"nan"`` to NaN (its next free phase diverges).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

import eqprop
from eqprop.datasets import load_dataset
from eqprop.layers import layers_from_json


def run(spec: dict, out: Path, comm) -> None:
    data = load_dataset("digits")
    x, y = data.x_train[: spec["n_train"]], data.y_train[: spec["n_train"]]
    validation = (data.x_val[:101], data.y_val[:101])  # 101: an odd count to split
    net = eqprop.EqPropNetwork(layers_from_json(spec["layers"]), dtype="float64", seed=0, threads=1,
                               cost=spec.get("cost", "squared-error"))
    trainer = eqprop.Trainer(net, **spec["trainer"], seed=0, threads=1, comm=comm)
    checkpoints = out / f"{spec['name']}.checkpoint"
    split = spec.get("split_at")
    diverged: list[int] = []
    if spec.get("inject"):
        def inject(trainer, record):
            if record.epoch == 1 and comm.Get_rank() == 1:
                trainer.net.weights[0].flat[0] = np.nan if spec["inject"] == "nan" else trainer.net.weights[0].flat[0] + 1e-3

        try:
            trainer.fit(x, y, epochs=spec["epochs"], validation=validation, callbacks=[inject])
        except eqprop.TrainingDiverged as exc:
            diverged = [exc.epoch, exc.batch]
    elif split:
        trainer.fit(x, y, epochs=split, validation=validation, checkpoint_dir=checkpoints)
        trainer = eqprop.Trainer.resume(checkpoints, comm=comm)
        trainer.fit(x, y, epochs=spec["epochs"] - split, validation=validation, checkpoint_dir=checkpoints)
    else:
        trainer.fit(x, y, epochs=spec["epochs"], validation=validation)
    if diverged:  # evaluate would refuse the NaN weight
        trainer.net.weights[0].flat[0] = 0.0
    evaluation = trainer.evaluate(data.x_test, data.y_test)
    arrays = {f"w{k}": w for k, w in enumerate(trainer.net.weights)}
    arrays.update({f"b{k}": b for k, b in enumerate(trainer.net.biases)})
    arrays.update({f"p{k}": p for k, p in enumerate(trainer.particles or [])})
    state = trainer.optimizer_state
    for name, (weights, biases) in state.buffers.items():
        arrays.update({f"{name}_w{k}": w for k, w in enumerate(weights)})
        arrays.update({f"{name}_b{k}": b for k, b in enumerate(biases)})
    rows = trainer.history.to_rows()
    np.savez(
        out / f"{spec['name']}.rank{comm.Get_rank()}.npz", **arrays,
        train_error=[r["train_error"] for r in rows], val_error=[r["val_error"] for r in rows],
        mean_cost=[r["mean_cost"] for r in rows], test=[evaluation.error, evaluation.mean_cost],
        diverged=np.array(diverged, dtype=np.int64), optimizer_step=state.step,
    )


def main() -> int:
    specs = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    if MPI.COMM_WORLD.Get_size() != int(sys.argv[3]):  # mpiexec of another MPI than mpi4py's: lone singletons
        print(f"expected {sys.argv[3]} ranks, got {MPI.COMM_WORLD.Get_size()}: mpiexec and mpi4py use different MPIs",
              file=sys.stderr)
        return 1
    for spec in specs:
        run(spec, out, MPI.COMM_WORLD)
    return 0


if __name__ == "__main__":
    sys.exit(main())

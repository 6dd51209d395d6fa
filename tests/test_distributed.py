"""Data-parallel training over MPI: 2 ranks against one process, resume, the command line, bad setups.

The MPI tests start ``mpiexec -n 2`` (the one next to this Python first, as the
mpich wheel installs it) and are skipped when mpi4py or mpiexec is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eqprop
from eqprop import distributed
from eqprop.cli import main
from eqprop.datasets import load_dataset
from eqprop.layers import layers_from_json

HERE = Path(__file__).parent
RANKS = 2
SETTINGS = dict(beta=1.0, free_steps=8, nudged_steps=3, epsilon=0.5, learning_rates=[0.2, 0.1], batch_size=20)
# the optimizers step on the Allreduced gradient estimate (not in the core): Adam, and momentum with
# weight decay under a cosine schedule (factors 1, 0.75, 0.25 over the 3 epochs)
ADAM = dict(SETTINGS, optimizer="adam", learning_rates=[0.01, 0.005])
MOMENTUM = dict(SETTINGS, optimizer="momentum", momentum=0.9, weight_decay=1e-3, learning_rates=[0.05, 0.02],
                schedule="cosine", schedule_epochs=3)
RUNS = [
    # 150 examples: a short last mini-batch of 10, 5 per rank
    {"name": "dense", "layers": [64, 16, 10], "n_train": 150, "epochs": 2, "trainer": SETTINGS},
    # the same run, checkpointed after epoch 1 and resumed on the 2 ranks
    {"name": "resumed", "layers": [64, 16, 10], "n_train": 150, "epochs": 2, "split_at": 1, "trainer": SETTINGS},
    # conv, symmetric, no random sign, 121 examples: a last mini-batch of 1 leaves rank 0 with nothing
    {"name": "conv", "layers": [[1, 8, 8], {"conv": 4, "kernel": 3, "padding": 1, "pool": "max"}, 10],
     "n_train": 121, "epochs": 2,
     "trainer": dict(SETTINGS, symmetric=True, random_sign=False, learning_rates=[0.1, 0.05])},
    # rank 1's replica changed after epoch 1: rank 0's is broadcast at the end of epoch 2
    {"name": "perturbed", "layers": [64, 16, 10], "n_train": 60, "epochs": 2, "inject": "perturb",
     "trainer": SETTINGS},
    # rank 1's replica gets a NaN after epoch 1: both ranks stop at epoch 2, mini-batch 1
    {"name": "nan", "layers": [64, 16, 10], "n_train": 60, "epochs": 3, "inject": "nan", "trainer": SETTINGS},
    # Adam on 150 examples (a short last mini-batch), uninterrupted and resumed after epoch 1
    {"name": "adam", "layers": [64, 16, 10], "n_train": 150, "epochs": 2, "trainer": ADAM},
    {"name": "adam-resumed", "layers": [64, 16, 10], "n_train": 150, "epochs": 2, "split_at": 1, "trainer": ADAM},
    {"name": "momentum-cosine", "layers": [64, 16, 10], "n_train": 150, "epochs": 3, "trainer": MOMENTUM},
]
#: The optimizer's state arrays each run's npz holds (besides its step count).
STATE_ARRAYS = {"adam": ("exp_avg", "exp_avg_sq"), "momentum": ("momentum_buffer",)}
# float64, a few dozen updates: only the order of the sums differs from one process
RTOL, ATOL = 1e-11, 1e-13


def _mpiexec() -> str | None:
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _require_mpi() -> str:
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich)")
    mpiexec = _mpiexec()
    if mpiexec is None:
        pytest.skip("no mpiexec (pip install mpich, or a system MPI)")
    return mpiexec


def _launch(arguments: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    # stdin from /dev/null: CI runs without one, and mpiexec forwards it to rank 0
    return subprocess.run([_require_mpi(), "-n", str(RANKS), sys.executable, *arguments], cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


# ----------------------------------------------------------- without MPI
@pytest.mark.parametrize("n, batch_size, ranks", [(150, 20, 2), (121, 20, 2), (7, 4, 4), (3, 8, 4), (100, 12, 3)])
def test_epoch_owners_match_the_shares(n, batch_size, ranks):
    owners = distributed.epoch_owners(n, batch_size, ranks)
    expected = np.empty(n, dtype=np.int64)
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        for rank in range(ranks):
            lo, hi = distributed.share(rank, ranks, m)
            expected[start + lo:start + hi] = rank
    np.testing.assert_array_equal(owners, expected)


def test_shares_of_a_full_mini_batch_are_equal():
    assert [distributed.share(r, 4, 20) for r in range(4)] == [(0, 5), (5, 10), (10, 15), (15, 20)]


def test_trainer_refuses_a_comm_that_is_not_a_communicator():
    net = eqprop.EqPropNetwork([4, 3, 2], seed=0)
    with pytest.raises(TypeError, match="mpi4py communicator"):
        eqprop.Trainer(net, **SETTINGS | {"learning_rates": [0.1, 0.1]}, comm=object())


def test_optimizer_step_on_given_gradient_buffers_equals_its_own():
    # with comm, the optimizer steps on views of the Allreduce's receive buffer
    from eqprop.optim import OptimizerState, OptimizerStep, resolve_optimizer

    settings = resolve_optimizer("adam", weight_decay=1e-3, n_matrices=2)
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(shape) for shape in ((4, 3), (3, 2), (3,), (2,))]
    results = []
    for given in (False, True):
        net = eqprop.EqPropNetwork([4, 3, 2], dtype="float64", seed=0)
        state = OptimizerState("adam", net.weights, net.biases)
        flat = np.zeros(sum(g.size for g in grads))
        views, start = [], 0
        for g in grads:
            views.append(flat[start:start + g.size].reshape(g.shape))
            start += g.size
        step = OptimizerStep(settings, state, net.weights, net.biases,
                             grads=(views[:2], views[2:]) if given else None)
        assert all(np.shares_memory(a, flat) for a in (*step.grads[0], *step.grads[1])) == given
        for _ in range(3):
            for buffer, g in zip((*step.grads[0], *step.grads[1]), grads):
                buffer[...] = g
            assert step.apply(np.full(4, 0.01), 1)
        results.append([*net.weights, *net.biases, *state.buffers["exp_avg_sq"][0]])
    for mine, theirs in zip(*results):
        np.testing.assert_array_equal(mine, theirs)
    net = eqprop.EqPropNetwork([4, 3, 2], dtype="float64", seed=0)
    with pytest.raises(ValueError, match="shaped like the parameters"):
        OptimizerStep(settings, OptimizerState("adam", net.weights, net.biases), net.weights, net.biases,
                      grads=([np.zeros((3, 4)), np.zeros((3, 2))], [np.zeros(3), np.zeros(2)]))


def test_launcher_rank_reads_the_environment(monkeypatch):
    for name in distributed.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert distributed.launcher_rank() is None
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "3")
    assert distributed.launcher_rank() == 3


@pytest.mark.parametrize("rank, printed", [(None, True), ("0", True), ("1", False)])
def test_distributed_without_mpi4py_is_one_line(tmp_path, monkeypatch, capsys, rank, printed):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    for name in distributed.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if rank is not None:
        monkeypatch.setenv("PMI_RANK", rank)
    status = main(["train", "--preset", "digits", "--epochs", "1", "--distributed", "--out", str(tmp_path / "r")])
    assert status == 1
    err = capsys.readouterr().err
    if printed:
        assert err.count("\n") == 1 and "needs mpi4py" in err and "pip install mpi4py mpich" in err
    else:
        assert err == ""  # the other ranks stay silent: rank 0 says it once
    assert not (tmp_path / "r").exists()


# -------------------------------------------------------------- 2 ranks
def _single_process(run: dict):
    """The same run in this process, without MPI."""
    data = load_dataset("digits")
    x, y = data.x_train[: run["n_train"]], data.y_train[: run["n_train"]]
    net = eqprop.EqPropNetwork(layers_from_json(run["layers"]), dtype="float64", seed=0, threads=1)
    trainer = eqprop.Trainer(net, **run["trainer"], seed=0, threads=1)
    trainer.fit(x, y, epochs=run["epochs"], validation=(data.x_val[:101], data.y_val[:101]))
    return trainer, trainer.evaluate(data.x_test, data.y_test)


@pytest.fixture(scope="module")
def mpi_runs(tmp_path_factory):
    """Every run of RUNS on 2 ranks, in one mpiexec: {name: [rank 0's npz, rank 1's npz]}, and its stderr."""
    _require_mpi()
    out = tmp_path_factory.mktemp("mpi")
    (out / "runs.json").write_text(json.dumps(RUNS))
    done = _launch([str(HERE / "mpi_train.py"), str(out / "runs.json"), str(out), str(RANKS)], cwd=out)
    assert done.returncode == 0, done.stdout + done.stderr
    results = {run["name"]: [dict(np.load(out / f"{run['name']}.rank{r}.npz")) for r in range(RANKS)] for run in RUNS}
    results["stderr"] = done.stderr
    results["out"] = out
    return results


@pytest.mark.parametrize("name", ["dense", "resumed", "conv", "perturbed", "adam", "adam-resumed",
                                  "momentum-cosine"])
def test_ranks_hold_bitwise_identical_replicas(mpi_runs, name):
    first, second = mpi_runs[name]
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


@pytest.mark.parametrize("name", ["dense", "conv", "adam", "momentum-cosine"])
def test_two_ranks_equal_one_process_up_to_rounding(mpi_runs, name):
    run = next(r for r in RUNS if r["name"] == name)
    trainer, test = _single_process(run)
    result = mpi_runs[name][0]
    expected = {f"w{k}": w for k, w in enumerate(trainer.net.weights)}
    expected.update({f"b{k}": b for k, b in enumerate(trainer.net.biases)})
    expected.update({f"p{k}": p for k, p in enumerate(trainer.particles)})
    state = trainer.optimizer_state
    assert sorted(state.buffers) == sorted(STATE_ARRAYS.get(run["trainer"].get("optimizer", "sgd"), ()))
    for buffer, (weights, biases) in state.buffers.items():
        expected.update({f"{buffer}_w{k}": w for k, w in enumerate(weights)})
        expected.update({f"{buffer}_b{k}": b for k, b in enumerate(biases)})
    assert expected.keys() <= result.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(result[key], value, rtol=RTOL, atol=ATOL, err_msg=key)
    steps = -(-run["n_train"] // run["trainer"]["batch_size"]) * run["epochs"]  # one per mini-batch
    assert int(result["optimizer_step"]) == state.step == steps
    history = trainer.history
    np.testing.assert_array_equal(result["train_error"], history.column("train_error"))
    np.testing.assert_array_equal(result["val_error"], history.column("val_error"))
    np.testing.assert_allclose(result["mean_cost"], history.column("mean_cost"), rtol=1e-12)
    assert result["test"][0] == test.error
    np.testing.assert_allclose(result["test"][1], test.mean_cost, rtol=1e-12)


def test_replicas_that_differ_after_an_epoch_take_rank_0s(mpi_runs):
    assert "the ranks' parameters differed after an epoch; rank 0's were broadcast" in mpi_runs["stderr"]
    assert mpi_runs["stderr"].count("parameters differed") == 1  # epoch 2 only; by rank 0 alone
    np.testing.assert_array_equal(mpi_runs["perturbed"][0]["w0"], mpi_runs["perturbed"][1]["w0"])


def test_a_rank_that_diverges_stops_every_rank_at_the_same_mini_batch(mpi_runs):
    for rank in range(RANKS):
        np.testing.assert_array_equal(mpi_runs["nan"][rank]["diverged"], [2, 1])
        assert len(mpi_runs["nan"][rank]["train_error"]) == 1  # epoch 1 completed, epoch 2 did not


@pytest.mark.parametrize("uninterrupted, resumed", [("dense", "resumed"), ("adam", "adam-resumed")])
def test_resume_on_the_same_ranks_is_bitwise_exact(mpi_runs, uninterrupted, resumed):
    uninterrupted, resumed = mpi_runs[uninterrupted][0], mpi_runs[resumed][0]
    assert uninterrupted.keys() == resumed.keys()
    for key in uninterrupted:
        np.testing.assert_array_equal(resumed[key], uninterrupted[key], err_msg=key)


def test_rank_0_checkpoints_the_shared_optimizer_state(mpi_runs):
    from eqprop.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(mpi_runs["out"] / "adam-resumed.checkpoint")
    final = mpi_runs["adam-resumed"][0]
    assert checkpoint.epoch == 2 and checkpoint.meta["ranks"] == RANKS
    assert checkpoint.meta["optimizer_state"]["optimizer"] == "adam"
    assert checkpoint.meta["optimizer_state"]["step"] == int(final["optimizer_step"]) == 16
    for buffer, (weights, biases) in checkpoint.optimizer_buffers.items():
        for k, (w, b) in enumerate(zip(weights, biases)):
            np.testing.assert_array_equal(w, final[f"{buffer}_w{k}"])
            np.testing.assert_array_equal(b, final[f"{buffer}_b{k}"])


# ------------------------------------------------------- command line
QUICK = ["--dataset", "digits", "--layers", "64-16-10", "--lr", "0.2", "0.1", "--train-size", "150",
         "--batch-size", "20", "--free-steps", "8", "--nudged-steps", "3", "--dtype", "float64",
         "--seed", "3", "--threads", "1"]


def _cli(arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return _launch(["-m", "eqprop.cli", "train", *arguments, "--distributed"], cwd=cwd)


def _assert_same_run(first: Path, second: Path) -> None:
    from eqprop.checkpoint import load_checkpoint

    one, other = load_checkpoint(first), load_checkpoint(second)
    assert one.epoch == other.epoch
    for mine, theirs in zip([*one.weights, *one.biases, *one.particles],
                            [*other.weights, *other.biases, *other.particles]):
        np.testing.assert_allclose(mine, theirs, rtol=RTOL, atol=ATOL)


def test_cli_distributed_run_and_resume_match_one_process(tmp_path, capsys):
    _require_mpi()
    run_dir = tmp_path / "mpi"
    first = _cli([*QUICK, "--epochs", "1", "--out", str(run_dir)], cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    # rank 0 alone prints: one header, one line per epoch, one final line
    assert first.stdout.count("training 64-16-10 on digits") == 1 and "on 2 MPI ranks x 1 threads" in first.stdout
    assert first.stdout.count("epoch   1/1") == 1 and first.stdout.count("final error") == 1
    shutil.copytree(run_dir, tmp_path / "then-alone")
    second = _cli(["--resume", str(run_dir), "--epochs", "2"], cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("resuming") == 1 and "note:" not in second.stderr

    alone = tmp_path / "alone"
    assert main(["train", *QUICK, "--epochs", "2", "--quiet", "--out", str(alone)]) == 0
    from eqprop.checkpoint import load_checkpoint

    assert load_checkpoint(run_dir).meta["ranks"] == RANKS and load_checkpoint(alone).meta["ranks"] == 1
    _assert_same_run(run_dir, alone)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ranks"] == RANKS and summary["epochs"] == 2
    assert summary["test_error"] == json.loads((alone / "summary.json").read_text())["test_error"]
    assert not list(run_dir.glob(".*.tmp"))

    # a 2-rank checkpoint resumed by one process: the same run up to rounding, with a note
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "then-alone"), "--epochs", "2"]) == 0
    assert "written by a run on 2 rank(s), this one has 1" in capsys.readouterr().err
    _assert_same_run(tmp_path / "then-alone", alone)


def test_cli_distributed_adam_with_a_schedule_resumes_and_matches_one_process(tmp_path):
    _require_mpi()
    from eqprop.checkpoint import load_checkpoint

    lr = QUICK.index("--lr")
    adam = [*QUICK[:lr], *QUICK[lr + 3:], "--lr", "0.01", "0.005", "--optimizer", "adam",
            "--schedule", "cosine", "--schedule-epochs", "2"]
    run_dir = tmp_path / "mpi"
    first = _cli([*adam, "--epochs", "1", "--out", str(run_dir)], cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    second = _cli(["--resume", str(run_dir), "--epochs", "2"], cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"] == "adam" and config["schedule"] == "cosine"

    alone = tmp_path / "alone"
    assert main(["train", *adam, "--epochs", "2", "--quiet", "--out", str(alone)]) == 0
    _assert_same_run(run_dir, alone)
    mine, theirs = load_checkpoint(run_dir), load_checkpoint(alone)
    assert mine.meta["optimizer_state"] == theirs.meta["optimizer_state"]  # adam, the same step count
    assert sorted(mine.optimizer_buffers) == ["exp_avg", "exp_avg_sq"]
    for buffer, (weights, biases) in mine.optimizer_buffers.items():
        for array, expected in zip([*weights, *biases], [*theirs.optimizer_buffers[buffer][0],
                                                          *theirs.optimizer_buffers[buffer][1]]):
            np.testing.assert_allclose(array, expected, rtol=RTOL, atol=ATOL, err_msg=buffer)


def test_cli_batch_size_the_ranks_do_not_divide_is_one_line(tmp_path):
    _require_mpi()
    done = _cli([*QUICK, "--batch-size", "15", "--epochs", "1", "--out", str(tmp_path / "bad")], cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "batch_size 15 must be a multiple of the number of MPI ranks (2)" in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bad" / "checkpoint.npz").exists()

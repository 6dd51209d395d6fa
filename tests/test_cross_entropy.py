"""Cross-entropy through a softmax readout (``EqPropNetwork(cost="cross-entropy")``).

The compiled relaxation, gradient estimate and prediction against
tests/reference.py's ``readout_*`` functions (written from the equations: the
readout outside the energy, the nudge -beta dC/ds_L, W_out learning dC/dW_out
at the free fixed point) on every product path and instruction set; the
gradient theorem against finite differences of J = C(s^0); training, the
optimizers, checkpoints, MPI, the command line and bad input.
"""

import json
import sys

import numpy as np
import pytest
import reference
from conftest import ROUNDING, one_hot, random_network

import eqcore
import eqprop
from eqprop import Conv2d
from eqprop.cli import main
from eqprop.datasets import load_dataset

SIZES = (12, 9, 7, 4)
EP_ALGORITHMS = ["positive", "negative", "centered"]


def ce_network(layers, dtype, seed=0, bias_scale=0.3, weight_scale=0.5):
    """A cross-entropy network with random nonzero biases (conftest.random_network's parameters)."""
    net = eqprop.EqPropNetwork(list(layers), dtype=dtype, cost="cross-entropy")
    source = random_network(list(layers), dtype, seed=seed, bias_scale=bias_scale, weight_scale=weight_scale)
    net.set_params(source.weights, source.biases)
    return net


def problem(dtype, sizes=SIZES, batch=6, seed=0, **kwargs):
    net = ce_network(sizes, dtype, seed=seed, **kwargs)
    rng = np.random.default_rng(seed + 1)
    x = rng.uniform(0, 1, (batch, sizes[0])).astype(dtype)
    target = one_hot(rng.integers(0, sizes[-1], batch), sizes[-1], dtype)
    return net, x, target


def assert_close(got, expected, dtype):
    tolerance = 1e-9 if dtype == np.float64 else 2e-3
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


# ------------------------------------------------------------- the core
@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
def test_relax_matches_the_reference(solver, dtype, kernel):
    net, x, target = problem(dtype)
    free = net.relax(x, steps=30, epsilon=0.5, solver=solver)
    want = reference.readout_relax(net.weights, net.biases, x, net.zero_state(6), 30, 0.5, solver=solver)
    assert_close(free, want, dtype)
    np.testing.assert_allclose(free[-1].sum(axis=1), 1.0, rtol=1e-6)
    nudged = net.relax(x, steps=8, epsilon=0.5, beta=0.4, target=target, init=free, solver=solver)
    want = reference.readout_relax(net.weights, net.biases, x, want, 8, 0.5, 0.4, target, solver)
    assert_close(nudged, want, dtype)
    assert np.abs(nudged[-2] - free[-2]).max() > 1e-3  # the nudge reached s_L through the readout


@pytest.mark.parametrize("solver", ["euler", "alternating", "fixed-point"])
@pytest.mark.parametrize("algorithm", EP_ALGORITHMS)
def test_ep_gradients_match_the_reference(algorithm, solver, dtype, kernel):
    net, x, target = problem(dtype)
    got_w, got_b = net.ep_gradients(x, target, beta=0.4, free_steps=20, nudged_steps=8, epsilon=0.5,
                                    algorithm=algorithm, solver=solver)
    want_w, want_b, _ = reference.readout_gradients(net.weights, net.biases, x, target, algorithm, 0.4, 20, 8, 0.5,
                                                    solver=solver)
    assert_close(got_w + got_b, want_w + want_b, dtype)
    assert all(np.abs(g).max() > 1e-4 for g in got_w)  # every layer gets a real signal


def test_soft_targets_use_dC_dz_of_their_weights(dtype):
    """For d that is not one-hot (nor normalised) dC/dz = p sum(d) - d, in the nudge and the readout's update."""
    net, x, _ = problem(dtype)
    target = np.random.default_rng(5).uniform(0, 1, (6, 4)).astype(dtype)
    got_w, got_b = net.ep_gradients(x, target, beta=0.3, free_steps=20, nudged_steps=8, epsilon=0.5,
                                    algorithm="centered")
    want_w, want_b, _ = reference.readout_gradients(net.weights, net.biases, x, target, "centered", 0.3, 20, 8, 0.5)
    assert_close(got_w + got_b, want_w + want_b, dtype)


@pytest.mark.parametrize("hidden", ["conv-conv", "conv-dense"])
def test_conv_hidden_layers_with_a_dense_readout(hidden, dtype):
    input_shape = (2, 8, 8)
    if hidden == "conv-conv":
        spec = [("conv", 3, 3, 1, "max"), ("conv", 4, 2, 0, "avg")]
    else:
        spec = [("conv", 3, 3, 1, "max"), ("dense", 6)]
    layers = [input_shape] + [entry[1] if entry[0] == "dense" else Conv2d(entry[1], entry[2], padding=entry[3],
                                                                          pool=entry[4]) for entry in spec] + [5]
    net = ce_network(layers, dtype, seed=2, bias_scale=0.2)
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (4, 128)).astype(dtype)
    target = one_hot(rng.integers(0, 5, 4), 5, dtype)
    got_w, got_b = net.ep_gradients(x, target, beta=0.5, free_steps=12, nudged_steps=6, epsilon=0.5,
                                    algorithm="centered")
    want_w, want_b, free = reference.readout_gradients(net.weights, net.biases, x, target, "centered", 0.5, 12, 6,
                                                       0.5, chain=(input_shape, spec))
    assert_close(got_w + got_b, want_w + want_b, dtype)
    np.testing.assert_array_equal(net.predict(x, steps=12), free[-1].argmax(axis=1))


def test_predict_cost_and_energy_follow_the_equations():
    net, x, target = problem(np.float64)
    state = net.relax(x, steps=40, epsilon=0.5)
    np.testing.assert_array_equal(net.predict(x, steps=40),
                                  reference.readout_predict(net.weights, net.biases, x, 40, 0.5))
    np.testing.assert_allclose(net.cost(state, target), reference.readout_cost(state[-1], target), rtol=1e-12)
    # the readout is outside the energy: E of the relaxing layers and their connections only
    np.testing.assert_allclose(net.energy(x, state),
                               reference.energy(net.weights[:-1], net.biases[:-1], x, state[:-1]), rtol=1e-12)


def test_threads_do_not_change_the_result(every_thread_runs):
    """Up to a few units in the last place (the products' row blocks follow the rows per thread)."""
    results = []
    for threads in (1, 2):
        net, x, target = problem(np.float32, batch=9)
        grads = net.ep_gradients(x, target, beta=0.4, free_steps=10, nudged_steps=4, epsilon=0.5,
                                 algorithm="centered", threads=threads)
        results.append([*grads[0], *grads[1], *net.relax(x, steps=10, epsilon=0.5, threads=threads)])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=0, atol=ROUNDING[np.float32])


def test_huge_logits_give_no_nan(dtype):
    """Max-subtracted softmax: saturated logits give p in {0, 1}, a finite cost and a finite nudge."""
    net, x, target = problem(dtype)
    net.weights[-1][...] = 1e4 * np.sign(net.weights[-1])
    state = net.relax(x, steps=20, epsilon=0.5)
    assert np.isfinite(state[-1]).all()
    np.testing.assert_allclose(state[-1].sum(axis=1), 1.0, rtol=1e-6)
    cost = net.cost(state, target)
    assert np.isfinite(cost).all() and cost.max() > 50  # a p that underflowed costs -log(tiny), not infinity
    grads = net.ep_gradients(x, target, beta=0.1, free_steps=20, nudged_steps=4, epsilon=0.5, algorithm="centered")
    assert all(np.isfinite(g).all() for g in (*grads[0], *grads[1]))


# ------------------------------------------------------- the gradient theorem
CONVERGED_STEPS = 3000


def mean_cost(net, x, d):
    state = net.relax(x, steps=CONVERGED_STEPS, epsilon=0.5)
    return float(np.mean(net.cost(state, d)))


@pytest.fixture(scope="module")
def theorem_problem():
    sizes = [4, 5, 4, 3]
    net = ce_network(sizes, np.float64, seed=4, bias_scale=0.3, weight_scale=0.8)  # about half the units inside (0, 1)
    rng = np.random.default_rng(5)
    x = rng.random((3, sizes[0]))
    d = one_hot(rng.integers(0, sizes[-1], 3), sizes[-1], np.float64)
    grads, h = [], 1e-6
    for param in net.weights + net.biases:
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + h
            plus = mean_cost(net, x, d)
            param[index] = original - h
            minus = mean_cost(net, x, d)
            param[index] = original
            grad[index] = (plus - minus) / (2 * h)
        grads.append(grad)
    return net, x, d, grads


def estimate(net, x, d, beta, algorithm):
    gw, gb = net.ep_gradients(x, d, beta=beta, free_steps=CONVERGED_STEPS, nudged_steps=CONVERGED_STEPS,
                              epsilon=0.5, algorithm=algorithm)
    return gw + gb


def flat(arrays):
    return np.concatenate([a.ravel() for a in arrays])


def test_centered_estimate_is_the_gradient_of_the_cross_entropy(theorem_problem):
    net, x, d, fd = theorem_problem
    got = estimate(net, x, d, 1e-4, "centered")
    hidden = [0, 1, 3, 4]  # W_0, W_1, b_0, b_1: estimated by the EP contrast
    assert all(np.abs(fd[k]).max() > 1e-3 for k in hidden)  # a real gradient through the relaxation
    assert np.linalg.norm(flat(got) - flat(fd)) / np.linalg.norm(flat(fd)) < 1e-3
    for k in hidden:
        assert np.linalg.norm(got[k] - fd[k]) / np.linalg.norm(fd[k]) < 1e-2
    # the readout's entries are its exact gradient at s^0 (it is outside the energy): beta plays no part
    for k in (2, 5):
        np.testing.assert_allclose(got[k], fd[k], rtol=1e-5, atol=1e-8)


def test_one_sided_estimate_error_is_first_order_in_beta(theorem_problem):
    net, x, d, fd = theorem_problem
    # from beta = 1e-2 down no unit of this network crosses a clip boundary when nudged (at 1e-1 one does)
    errors = [np.linalg.norm(flat(estimate(net, x, d, beta, "positive")) - flat(fd)) for beta in (1e-2, 1e-3, 1e-4)]
    for larger, smaller in zip(errors, errors[1:]):
        assert 5 < larger / smaller < 20
    assert np.linalg.norm(flat(estimate(net, x, d, 1e-2, "centered")) - flat(fd)) < errors[0] / 5


# ------------------------------------------------------------------ training
def one_batch_trainer(net, **kwargs):
    settings = dict(beta=0.4, free_steps=20, nudged_steps=8, epsilon=0.5, learning_rates=[0.1, 0.05, 0.02],
                    batch_size=64, persistent=False, threads=1, seed=3)
    return eqprop.Trainer(net, **{**settings, **kwargs})


@pytest.mark.parametrize("algorithm", ["positive", "centered"])
def test_the_trainer_applies_the_estimate(algorithm):
    net, x, target = problem(np.float64)
    want_w, want_b, _ = reference.readout_gradients(net.weights, net.biases, x, target, algorithm, 0.4, 20, 8, 0.5)
    before = [p.copy() for p in net.weights + net.biases]
    one_batch_trainer(net, algorithm=algorithm).fit(x, target.argmax(axis=1), epochs=1)  # one mini-batch
    rates = [0.1, 0.05, 0.02]
    for k, (after, old, grad) in enumerate(zip(net.weights + net.biases, before, want_w + want_b)):
        np.testing.assert_allclose(after, old - rates[k % 3] * grad, rtol=1e-9, atol=1e-11)


def test_adam_steps_on_the_estimate():
    net, x, target = problem(np.float64)
    want_w, want_b, _ = reference.readout_gradients(net.weights, net.biases, x, target, "centered", 0.4, 20, 8, 0.5)
    before = [p.copy() for p in net.weights + net.biases]
    one_batch_trainer(net, algorithm="centered", optimizer="adam").fit(x, target.argmax(axis=1), epochs=1)
    rates = [0.1, 0.05, 0.02]
    for k, (after, old, grad) in enumerate(zip(net.weights + net.biases, before, want_w + want_b)):
        np.testing.assert_allclose(after, reference.adam_steps(old, [grad], rates[k % 3]), rtol=1e-9, atol=1e-11)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data.x_train[:600], data.y_train[:600], data.x_val, data.y_val


def digits_trainer(optimizer="sgd", dtype="float32", seed=0):
    net = eqprop.EqPropNetwork([64, 32, 10], dtype=dtype, seed=seed, cost="cross-entropy")
    rates = [0.01, 0.005] if optimizer == "adam" else [0.2, 0.1]
    return eqprop.Trainer(net, beta=0.5, free_steps=15, nudged_steps=4, epsilon=0.5, learning_rates=rates,
                          batch_size=20, threads=1, seed=seed, optimizer=optimizer)


def test_fit_lowers_the_cross_entropy_and_the_error(digits):
    x, y, x_val, y_val = digits
    trainer = digits_trainer()
    start = trainer.evaluate(x_val, y_val)
    history = trainer.fit(x, y, epochs=4, validation=(x_val, y_val))
    costs = history.column("mean_cost")
    assert all(later < earlier for earlier, later in zip(costs, costs[1:]))
    end = trainer.evaluate(x_val, y_val)
    assert end.error < 0.15 < start.error and end.mean_cost < 0.6 * start.mean_cost
    # the reported cost is the network's cross-entropy at the free fixed point from zeros
    net = trainer.net
    state = net.relax(x_val, steps=trainer.eval_steps, epsilon=trainer.epsilon)
    np.testing.assert_allclose(end.mean_cost, net.cost(state, one_hot(y_val, 10, np.float32)).mean(), rtol=1e-5)
    assert end.error == np.mean(net.predict(x_val, steps=trainer.eval_steps) != y_val)


def test_train_step_lowers_the_cost(digits):
    x, y, _, _ = digits
    net = eqprop.EqPropNetwork([64, 32, 10], seed=1, cost="cross-entropy")
    xb, d = x[:100], one_hot(y[:100], 10, np.float32)
    before = net.cost(net.relax(xb, steps=15, epsilon=0.5), d).mean()
    for _ in range(30):
        net.train_step(xb, d, beta=0.5, free_steps=15, nudged_steps=4, epsilon=0.5, learning_rates=[0.2, 0.1],
                       algorithm="centered")
    assert net.cost(net.relax(xb, steps=15, epsilon=0.5), d).mean() < 0.7 * before


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_resumed_run_continues_bitwise(optimizer, digits, tmp_path):
    x, y, _, _ = digits
    x, y = x[:200], y[:200]
    straight = digits_trainer(optimizer)
    straight.fit(x, y, epochs=3)
    digits_trainer(optimizer).fit(x, y, epochs=1, checkpoint_dir=tmp_path)
    resumed = eqprop.Trainer.resume(tmp_path)
    assert resumed.net.cost_function == "cross-entropy"
    resumed.fit(x, y, epochs=2, checkpoint_dir=tmp_path)
    for a, b in zip([*straight.net.weights, *straight.net.biases, *straight.particles],
                    [*resumed.net.weights, *resumed.net.biases, *resumed.particles]):
        np.testing.assert_array_equal(a, b)
    assert straight.history.column("mean_cost") == resumed.history.column("mean_cost")


def test_two_mpi_ranks_train_like_one_process(tmp_path):
    """The readout's update goes through the Allreduce like the others (SGD, and Adam on the gradient)."""
    from test_distributed import HERE, RANKS, RTOL, ATOL, _launch

    runs = [{"name": f"ce-{optimizer}", "layers": [64, 16, 10], "n_train": 150, "epochs": 2, "cost": "cross-entropy",
             "trainer": dict(beta=0.5, free_steps=8, nudged_steps=3, epsilon=0.5, batch_size=20, optimizer=optimizer,
                             learning_rates=[0.01, 0.005] if optimizer == "adam" else [0.2, 0.1])}
            for optimizer in ("sgd", "adam")]
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    done = _launch([str(HERE / "mpi_train.py"), str(tmp_path / "runs.json"), str(tmp_path), str(RANKS)], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    data = load_dataset("digits")
    for run in runs:
        net = eqprop.EqPropNetwork([64, 16, 10], dtype="float64", seed=0, threads=1, cost="cross-entropy")
        trainer = eqprop.Trainer(net, **run["trainer"], seed=0, threads=1)
        trainer.fit(data.x_train[:150], data.y_train[:150], epochs=2, validation=(data.x_val[:101], data.y_val[:101]))
        ranks = [dict(np.load(tmp_path / f"{run['name']}.rank{r}.npz")) for r in range(RANKS)]
        for key in ranks[0]:
            np.testing.assert_array_equal(ranks[0][key], ranks[1][key], err_msg=key)
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            np.testing.assert_allclose(ranks[0][f"w{k}"], w, rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(ranks[0][f"b{k}"], b, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(ranks[0]["mean_cost"], trainer.history.column("mean_cost"), rtol=1e-12)


# -------------------------------------------------- command line, sklearn
def test_the_command_line_trains_resumes_and_evaluates_with_the_cost(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--dataset", "digits", "--layers", "64-16-10", "--lr", "0.2", "0.1", "--train-size", "200",
              "--seed", "0", "--threads", "1", "--quiet", "--cost", "cross-entropy"]
    assert main(["train", *common, "--epochs", "1", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["cost"] == "cross-entropy"
    assert main(["train", "--resume", str(out), "--epochs", "2", "--quiet"]) == 0
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    from eqprop.checkpoint import load_checkpoint

    resumed, straight = load_checkpoint(out), load_checkpoint(tmp_path / "straight")
    assert resumed.cost == "cross-entropy" and resumed.epoch == 2
    for a, b in zip(resumed.weights + resumed.biases, straight.weights + straight.biases):
        np.testing.assert_array_equal(a, b)
    assert main(["evaluate", str(out)]) == 0
    assert "test" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(out), "--cost", "squared-error"])
    assert info.value.code == 2 and "--cost cannot be changed" in capsys.readouterr().err
    # config.json edited to the other cost: refused as of another run
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "cost": "squared-error"}))
    assert main(["train", "--resume", str(out), "--epochs", "3", "--quiet"]) == 1
    assert "config.json says cost squared-error" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--output", "linear"], "it takes no --output linear"),
    (["--algorithm", "coupled"], "--algorithm coupled clamps the output layer"),
    (["--layers", "64-10", "--lr", "0.1"], "--cost cross-entropy needs a hidden layer"),
    (["--cost", "log-loss"], "invalid choice: 'log-loss'"),
])
def test_bad_cost_flags(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "digits", "--cost", "cross-entropy", *flags, "--out", str(tmp_path / "x")])
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sklearn_classifier_with_the_cross_entropy(digits):
    from eqprop.sklearn import EqPropClassifier

    x, y, x_val, y_val = digits
    clf = EqPropClassifier((32,), cost="cross-entropy", beta=0.5, epochs=3, threads=1, random_state=0).fit(x, y)
    assert clf.network_.cost_function == "cross-entropy" and clf.get_params()["cost"] == "cross-entropy"
    proba = clf.predict_proba(x_val)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.score(x_val, y_val) > 0.85


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("layers, kwargs, error, match", [
    ([6, 5, 3], dict(cost="mse"), ValueError, "cost must be 'squared-error' or 'cross-entropy'; got 'mse'"),
    ([6, 5, 3], dict(output="linear"), ValueError, "output='linear' has no meaning"),
    ([6, 3], {}, ValueError, "needs a hidden layer: .* got layers 6-3"),
    ([(1, 6, 6), Conv2d(2, 3, pool=None), Conv2d(2, 3, pool=None)], {}, ValueError, "needs a dense last layer"),
])
def test_bad_networks(layers, kwargs, error, match):
    with pytest.raises(error, match=match):
        eqprop.EqPropNetwork(layers, **{"cost": "cross-entropy", **kwargs})


@pytest.mark.parametrize("algorithm", ["contrastive", "coupled"])
def test_clamped_algorithms_are_refused(algorithm):
    net, x, target = problem(np.float64)
    before = [p.copy() for p in net.weights + net.biases]
    with pytest.raises(ValueError, match=f"algorithm='{algorithm}' clamps the output layer.*cost='cross-entropy'"):
        net.ep_gradients(x, target, free_steps=5, nudged_steps=2, epsilon=0.5, algorithm=algorithm)
    with pytest.raises(ValueError, match="clamps the output layer"):
        net.train_step(x, target, free_steps=5, nudged_steps=2, epsilon=0.5, learning_rates=[0.1] * 3,
                       algorithm=algorithm)
    with pytest.raises(ValueError, match="clamps the output layer"):
        eqprop.Trainer(net, free_steps=5, nudged_steps=2, epsilon=0.5, learning_rates=[0.1] * 3, batch_size=4,
                       algorithm=algorithm)
    for after, old in zip(net.weights + net.biases, before):
        np.testing.assert_array_equal(after, old)


def test_bad_targets_and_mismatched_checkpoints(tmp_path):
    net, x, target = problem(np.float64)
    with pytest.raises(ValueError, match="distribution over the classes.*-1"):
        net.ep_gradients(x, -target, beta=0.5, free_steps=5, nudged_steps=2, epsilon=0.5)
    trainer = one_batch_trainer(net)
    trainer.fit(x, target.argmax(axis=1), epochs=1, checkpoint_dir=tmp_path)
    other = eqprop.EqPropNetwork(list(SIZES), dtype="float64")
    with pytest.raises(ValueError, match="cost='cross-entropy'; this trainer's network has cost='squared-error'"):
        one_batch_trainer(other).load_checkpoint(tmp_path)


def test_the_core_refuses_a_readout_chain_used_wrongly():
    net, x, target = problem(np.float64)
    chain = net.core_chain()
    assert chain.readout
    geometry = np.array([c.geometry_row() for c in net.connections[:1]], dtype=np.int32)
    with pytest.raises(ValueError, match="a readout is a dense last connection above a relaxing layer"):
        eqcore.Chain(geometry, net.weights[:1], net.biases[:1], readout=True)
    state = net.zero_state(6)
    with pytest.raises(ValueError, match="nudged through its readout"):
        eqcore.relax_batch(chain, x, state, 2, 0.5, 0.0, target, 0, 1, None, False, True)
    with pytest.raises(ValueError, match="nudged through its readout"):
        eqcore.relax_batch(chain, x, state, 2, 0.5, 0.5, None, 0, 1)
    with pytest.raises(ValueError, match="needs readout_input"):
        eqcore.apply_ep_update(chain, x, state, state, np.ones(3), 1)
    with pytest.raises(ValueError, match="pass free= and target="):
        net.step_engine(6).accumulate(x, state, state, np.ones(3), 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))

"""Sweep specs (eqprop.sweep.spec): the format, its expansion into trials, and bad specs refused up front.

None of these needs Dask: a spec is read and checked before any cluster starts.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from eqprop.cli import main
from eqprop.sweep import SpecError, load_spec, parse_spec
from eqprop.sweep.settings import SETTING_KINDS, SWEEP_OWNED, train_actions

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sweep-digits.toml"


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


BASE = """
[base]
preset = "digits"
epochs = 2
"""


def test_grid_expands_to_every_combination_in_order(tmp_path):
    spec = load_spec(write(tmp_path, BASE + "[grid]\nbeta = [0.5, 1]\nseed = [0, 1, 2]\n"))
    assert spec.name == "spec" and spec.varied == ["beta", "seed"]
    assert [t.id for t in spec.trials] == [f"trial-00{k}" for k in range(1, 7)]
    assert [(t.settings["beta"], t.settings["seed"]) for t in spec.trials] == [
        (0.5, 0), (0.5, 1), (0.5, 2), (1.0, 0), (1.0, 1), (1.0, 2)]
    first = spec.trials[0]
    assert first.settings == {"preset": "digits", "epochs": 2, "beta": 0.5, "seed": 0}
    assert first.argv == ["--preset", "digits", "--epochs", "2", "--beta", "0.5", "--seed", "0"]
    assert first.label() == "beta=0.5, seed=0"


def test_random_space_is_drawn_reproducibly_per_grid_point(tmp_path):
    text = BASE + """
    [sweep]
    name = "rand"
    seed = 3
    [grid]
    seed = [0, 1]
    [random]
    epsilon = { uniform = [0.3, 0.7] }
    free_steps = { int_uniform = [5, 9] }
    lr = [{ log_uniform = [0.05, 0.5] }, { log_uniform = [0.02, 0.2] }]
    solver = { choice = ["euler", "alternating"] }
    symmetric = { choice = [true, false] }
    [budget]
    random_trials = 3
    max_trials = 6
    """
    spec = load_spec(write(tmp_path, text))
    again = load_spec(write(tmp_path, text, "again.toml"))
    assert spec.name == "rand" and len(spec.trials) == 6
    assert spec.trials_record() == again.trials_record()  # the same file gives the same trials
    assert [t.settings["seed"] for t in spec.trials] == [0, 0, 0, 1, 1, 1]
    for trial in spec.trials:
        s = trial.settings
        assert 0.3 <= s["epsilon"] <= 0.7 and 5 <= s["free_steps"] <= 9 and isinstance(s["free_steps"], int)
        assert 0.05 <= s["lr"][0] <= 0.5 and 0.02 <= s["lr"][1] <= 0.2
        assert s["solver"] in ("euler", "alternating") and s["symmetric"] in (True, False)
        assert s["epsilon"] == float(f"{s['epsilon']:.4g}")  # rounded to what the report shows
        assert ("--symmetric" in trial.argv) == s["symmetric"]
    other = load_spec(write(tmp_path, text.replace("seed = 3", "seed = 4"), "other.toml"))
    assert other.trials_record() != spec.trials_record()


def test_aliases_booleans_and_layers_lists(tmp_path):
    spec = load_spec(write(tmp_path, """
    [base]
    dataset = "digits"
    sizes = [64, 20, 10]
    learning-rates = [0.2, 0.1]
    persistent = false
    [grid]
    random-sign = [true, false]
    """))
    first, second = spec.trials
    assert first.settings["layers"] == "64-20-10" and first.settings["lr"] == [0.2, 0.1]
    assert "--no-persistent" in first.argv and "--no-random-sign" not in first.argv
    assert "--no-random-sign" in second.argv


def test_yaml_specs_read_like_toml(tmp_path):
    pytest.importorskip("yaml")
    spec = load_spec(write(tmp_path, """
    base: {preset: digits, epochs: 2}
    grid: {beta: [0.5, 1.0]}
    """, "spec.yaml"))
    assert [t.settings["beta"] for t in spec.trials] == [0.5, 1.0]


def test_optimizer_settings_become_train_flags(tmp_path):
    text = BASE + '[grid]\noptimizer = ["momentum", "adam"]\nweight_decay = [[1e-4]]\nschedule = ["cosine"]\n'
    spec = load_spec(write(tmp_path, text))
    assert [t.settings["optimizer"] for t in spec.trials] == ["momentum", "adam"]
    assert spec.trials[1].argv[-6:] == ["--optimizer", "adam", "--weight-decay", "0.0001", "--schedule", "cosine"]


def test_the_example_spec_is_valid():
    spec = load_spec(EXAMPLE)
    assert 1 < len(spec.trials) <= 16
    assert all(t.settings.get("preset") == "digits" for t in spec.trials)


def test_every_train_flag_is_a_sweep_setting():
    """eqprop train gaining a flag must be reflected in SETTING_KINDS (or SWEEP_OWNED)."""
    assert set(train_actions()) - set(SWEEP_OWNED) == set(SETTING_KINDS)


@pytest.mark.parametrize(
    "text, fragment",
    [
        (BASE + "[grid]\nbetaa = [1.0]\n", "grid.betaa: unknown setting 'betaa'"),
        (BASE + "[grids]\nbeta = [1.0]\n", "unknown table [grids]"),
        (BASE + "[grid]\nbeta = []\n", "grid.beta: the list of values is empty"),
        (BASE, "the search space is empty"),
        (BASE + "[grid]\nbeta = 1.0\n", "grid.beta: expected a list of values"),
        ('[base]\npreset = "digits"\nepochs = "3"\n[grid]\nseed = [0]\n', "base.epochs: expected an integer"),
        (BASE + "[grid]\nfree_steps = [20, 2.5]\n", "grid.free_steps[1]: expected an integer"),
        (BASE + "[grid]\nbeta = [0.0]\n", "grid.beta[0]: beta must be nonzero"),
        (BASE + "[grid]\nepsilon = [1.5]\n", "grid.epsilon[0]: epsilon must be in (0, 1]"),
        (BASE + '[grid]\nsolver = ["rk4"]\n', "grid.solver[0]: expected one of euler, alternating"),
        (BASE + "[grid]\nsymmetric = [1]\n", "grid.symmetric[0]: expected true or false"),
        (BASE + "[grid]\nthreads = [1, 2]\n", "grid.threads: 'threads' is set by eqprop sweep"),
        (BASE + "[grid]\nepochs = [1, 2]\n", "grid.epochs: epochs is already set in base"),
        (BASE + '[grid]\nlayers = ["64-20-20-10"]\n', "lr needs one rate per weight matrix: 3"),
        ('[base]\nlayers = "64-20-10"\nlr = [0.1, 0.1]\n[grid]\nseed = [0]\n', "give a preset, or at least dataset"),
        ('[base]\nepochs = 2\n[grid]\npreset = ["digits", "nope"]\n', "trial-002 (preset=nope): preset: unknown preset"),
        (BASE + "[random]\nbeta = { uniform = [0.5, 1.0] }\n", "budget.random_trials: required"),
        (BASE + "[grid]\nbeta = [1.0]\n[budget]\nrandom_trials = 2\n", "no [random] table"),
        (BASE + "[random]\nbeta = { normal = [0, 1] }\n[budget]\nrandom_trials = 2\n",
         "random.beta: expected one distribution"),
        (BASE + "[random]\nbeta = { log_uniform = [0, 1] }\n[budget]\nrandom_trials = 2\n",
         "random.beta.log_uniform: low must be positive"),
        (BASE + "[random]\nbeta = { uniform = [1, 0.5] }\n[budget]\nrandom_trials = 2\n", "the range is empty"),
        (BASE + "[random]\nfree_steps = { uniform = [5, 9] }\n[budget]\nrandom_trials = 2\n",
         "random.free_steps: uniform does not fit"),
        (BASE + '[random]\nsolver = { choice = ["euler", "rk4"] }\n[budget]\nrandom_trials = 2\n',
         "random.solver.choice[1]: expected one of"),
        (BASE + "[grid]\nseed = [0, 1, 2]\n[budget]\nmax_trials = 2\n", "budget.max_trials: the spec expands to 3"),
        (BASE + "[grid]\nseed = [0]\n[budget]\nrandom_trial = 2\n", "budget.random_trial: unknown key"),
        ("[base\npreset = 1\n", "not valid TOML"),
        (BASE + '[grid]\noptimizer = ["rmsprop"]\n', "grid.optimizer[0]: expected one of sgd, momentum"),
        (BASE + '[grid]\noptimizer = ["adam"]\nmomentum = [0.9]\n',
         "trial-001 (optimizer=adam, momentum=0.9): --momentum applies only to the optimizers"),
        (BASE + '[grid]\nschedule = ["step"]\n', "schedule 'step' needs --schedule-step-size"),
        (BASE + "[grid]\nweight_decay = [[0.1, 0.1, 0.1]]\n", "--weight-decay needs one value per weight matrix"),
    ],
)
def test_bad_specs_are_refused_naming_the_key(tmp_path, capsys, text, fragment):
    spec = write(tmp_path, text)
    with pytest.raises(SpecError, match=None) as info:
        load_spec(spec)
    assert fragment in str(info.value)
    # the CLI: one line on stderr, a non-zero exit, nothing created
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("eqprop sweep: error: ") and fragment in err and err.count("\n") == 1
    assert not out.exists()


def test_wrong_file_suffix_and_missing_file(tmp_path, capsys):
    with pytest.raises(SpecError, match="a sweep spec is a .toml file"):
        load_spec(write(tmp_path, BASE, "spec.ini"))
    assert main(["sweep", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_lists_the_trials(tmp_path, capsys):
    spec = write(tmp_path, BASE + "[grid]\nbeta = [0.5, 1.0]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 trials" in out and "trial-001  beta=0.5" in out and "trial-002  beta=1" in out
    assert not (tmp_path / "o").exists()


def test_parse_spec_takes_a_dict():
    spec = parse_spec({"base": {"preset": "digits"}, "grid": {"seed": [0, 1]}}, default_name="d")
    assert spec.name == "d" and len(spec.trials) == 2

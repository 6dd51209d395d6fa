"""Sweep specifications: read a TOML (or YAML) file, check it whole, expand it into trials.

The format (``examples/sweep-digits.toml`` is a complete example)::

    [sweep]                 # optional
    name = "digits-beta"    # a label for the report (default: the file's name)
    seed = 0                # seed of the random search (default 0): the same file gives the same trials

    [base]                  # settings every trial shares: any `eqprop train` setting
    preset = "digits"       # a preset gives the rest; or dataset, layers and lr
    epochs = 3

    [grid]                  # every combination of these values (a list per setting)
    beta = [0.5, 1.0]
    seed = [0, 1]

    [random]                # drawn afresh for every trial
    epsilon = { uniform = [0.3, 0.7] }
    free_steps = { int_uniform = [10, 30] }           # both ends included
    lr = [{ log_uniform = [0.05, 0.5] }, { log_uniform = [0.02, 0.2] }]  # one per element
    solver = { choice = ["euler", "alternating"] }

    [budget]
    random_trials = 4       # draws of [random] per grid point (required with [random])
    max_trials = 50         # refuse a spec that expands to more trials (optional)

Settings are named like the flags of ``eqprop train`` with ``_`` or ``-``
(``free_steps``, ``batch-size``, ``lr``; ``learning_rates`` is accepted for ``lr``);
``threads``, ``out``, ``resume`` and ``quiet`` belong to the sweep, not to the spec.
A boolean setting (``symmetric``, ``persistent``, ``random_sign``) takes ``true``
or ``false``. Everything is checked before any trial runs: unknown tables or
settings, wrong value types, empty lists, values ``eqprop train`` would refuse,
and combinations that cannot train (no preset and no dataset, a number of
learning rates that does not fit the layers) raise :class:`SpecError` naming
the key. A setting may appear in only one of ``[base]``, ``[grid]``, ``[random]``.
Random floats are rounded to 4 significant digits (so that tables stay readable
and a value is exactly what the report shows).
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eqprop.sweep.settings import SETTING_KINDS, SpecError, canonical_key, check_trial, check_value, to_argv

TABLES = ("sweep", "base", "grid", "random", "budget")
SWEEP_KEYS = ("name", "seed")
BUDGET_KEYS = ("random_trials", "max_trials")
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")


@dataclass(frozen=True)
class Trial:
    """One run of a sweep: its name, its settings (canonical keys) and its ``eqprop train`` flags."""

    id: str
    settings: dict[str, Any]
    varied: dict[str, Any]

    @property
    def argv(self) -> list[str]:
        return to_argv(self.settings)

    def label(self) -> str:
        """The varied settings, e.g. ``beta=0.5, seed=1``."""
        return ", ".join(f"{key}={_show(value)}" for key, value in self.varied.items()) or "(base)"


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep specification and the trials it expands to.

    Attributes
    ----------
    name : str
        The sweep's label.
    source : dict
        The parsed file, as written (kept in the sweep directory).
    trials : list of Trial
        In a fixed order: the grid's combinations (first key slowest), each
        with ``random_trials`` draws of the random space.
    varied : list of str
        The settings that the grid or the random space sets.
    """

    name: str
    source: dict[str, Any]
    trials: list[Trial] = field(repr=False)
    varied: list[str]

    def trials_record(self) -> list[dict[str, Any]]:
        """What identifies the trials (compared when a sweep directory is reused)."""
        return [{"id": t.id, "settings": t.settings} for t in self.trials]


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


# -------------------------------------------------------------------- reading
def read_spec_file(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML) file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SpecError(f"{path}: YAML specs need PyYAML (pip install pyyaml); or write the spec in TOML") from None
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SpecError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    elif suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            try:
                import tomli as tomllib
            except ImportError:
                raise SpecError(f"{path}: reading TOML on Python 3.10 needs tomli (pip install tomli, "
                                f'or "eqprop[cluster]")') from None
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{path}: not valid TOML: {exc}") from None
    else:
        raise SpecError(f"{path}: a sweep spec is a .toml file (or .yaml / .yml); got {suffix or 'no suffix'!r}")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the spec must be a table of tables ([base], [grid], ...)")
    return data


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read, check and expand the sweep spec in ``path`` (see the module documentation)."""
    path = Path(path)
    try:
        return parse_spec(read_spec_file(path), default_name=path.stem)
    except SpecError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise SpecError(f"{path}: {exc}") from None


# ------------------------------------------------------------------- checking
def _table(data: dict[str, Any], name: str) -> dict[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise SpecError(f"[{name}] must be a table; got {table!r}")
    return table


def _int_option(table: dict[str, Any], table_name: str, key: str, minimum: int) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise SpecError(f"{table_name}.{key}: expected an integer >= {minimum}; got {value!r}")
    return int(value)


def _settings_table(table: dict[str, Any], table_name: str, taken: dict[str, str]) -> dict[str, Any]:
    """A table of settings with canonical keys, each in no other table."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = canonical_key(str(key), f"{table_name}.{key}")
        if name in taken:
            raise SpecError(f"{table_name}.{key}: {name} is already set in {taken[name]}; give it in one place")
        taken[name] = table_name
        out[name] = value
    return out


def _check_distribution(name: str, value: Any, where: str) -> Any:
    """A random-space entry: a distribution table, or (for list settings) a list of them."""
    kind = SETTING_KINDS[name]
    if isinstance(value, list) and kind == "floats":
        if not value:
            raise SpecError(f"{where}: the list of distributions is empty")
        return [_check_one_distribution("float", v, f"{where}[{k}]") for k, v in enumerate(value)]
    return _check_one_distribution(kind, value, where)


def _check_one_distribution(kind: str, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise SpecError(
            f"{where}: expected one distribution, {{ uniform = [low, high] }}, {{ log_uniform = [low, high] }}, "
            f"{{ int_uniform = [low, high] }} or {{ choice = [values] }}; got {value!r}"
        )
    (dist, args), = value.items()
    if dist == "choice":
        if not isinstance(args, list) or not args:
            raise SpecError(f"{where}.choice: expected a non-empty list of values; got {args!r}")
        return {dist: args}
    allowed = {"int": ("int_uniform", "choice"), "float": ("uniform", "log_uniform", "choice")}.get(kind, ("choice",))
    if dist not in allowed:
        raise SpecError(f"{where}: {dist} does not fit a setting of kind {kind}; use {' or '.join(allowed)}")
    ok_number = (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)) if dist == "int_uniform" \
        else (lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v))
    if not isinstance(args, list) or len(args) != 2 or not all(ok_number(v) for v in args):
        what = "integers" if dist == "int_uniform" else "finite numbers"
        raise SpecError(f"{where}.{dist}: expected [low, high], two {what}; got {args!r}")
    low, high = args
    if low > high or (dist != "int_uniform" and low == high):
        raise SpecError(f"{where}.{dist}: the range is empty: low {low} must be below high {high}")
    if dist == "log_uniform" and low <= 0:
        raise SpecError(f"{where}.log_uniform: low must be positive; got {low}")
    return {dist: args}


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def _draw(distribution: Any, rng: np.random.Generator) -> Any:
    if isinstance(distribution, list):
        return [_draw(d, rng) for d in distribution]
    (dist, args), = distribution.items()
    if dist == "choice":
        return args[int(rng.integers(len(args)))]
    if dist == "int_uniform":
        return int(rng.integers(args[0], args[1], endpoint=True))
    if dist == "uniform":
        return _round(rng.uniform(args[0], args[1]))
    return _round(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))


def parse_spec(data: dict[str, Any], *, default_name: str = "sweep") -> SweepSpec:
    """Check a parsed spec and expand it into trials (see the module documentation).

    Raises
    ------
    SpecError
        Naming the table and key at fault, before anything runs.
    """
    unknown = [key for key in data if key not in TABLES]
    if unknown:
        raise SpecError(f"unknown table [{unknown[0]}]; a spec has the tables {', '.join(f'[{t}]' for t in TABLES)}")
    sweep = _table(data, "sweep")
    budget = _table(data, "budget")
    for table, table_name, allowed in ((sweep, "sweep", SWEEP_KEYS), (budget, "budget", BUDGET_KEYS)):
        for key in table:
            if key not in allowed:
                raise SpecError(f"{table_name}.{key}: unknown key; [{table_name}] takes {', '.join(allowed)}")
    name = sweep.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise SpecError(f"sweep.name: expected a non-empty string; got {name!r}")
    seed = _int_option(sweep, "sweep", "seed", 0) or 0
    random_trials = _int_option(budget, "budget", "random_trials", 1)
    max_trials = _int_option(budget, "budget", "max_trials", 1)

    taken: dict[str, str] = {}
    base = _settings_table(_table(data, "base"), "base", taken)
    grid = _settings_table(_table(data, "grid"), "grid", taken)
    space = _settings_table(_table(data, "random"), "random", taken)
    base = {key: check_value(key, value, f"base.{key}") for key, value in base.items()}
    for key, values in grid.items():
        if not isinstance(values, list):
            raise SpecError(f"grid.{key}: expected a list of values to try; got {values!r}")
        if not values:
            raise SpecError(f"grid.{key}: the list of values is empty")
        grid[key] = [check_value(key, value, f"grid.{key}[{k}]") for k, value in enumerate(values)]
    space = {key: _check_distribution(key, value, f"random.{key}") for key, value in space.items()}
    for key, distribution in space.items():  # every value a choice may give must be valid too
        for k, choice in enumerate(_choices(distribution)):
            check_value(key, choice, f"random.{key}.choice[{k}]")
    if not grid and not space:
        raise SpecError("the search space is empty: give a [grid] or a [random] table with at least one setting")
    if space and random_trials is None:
        raise SpecError("budget.random_trials: required with a [random] table (the number of random draws)")
    if random_trials is not None and not space:
        raise SpecError("budget.random_trials: given, but there is no [random] table to draw from")

    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else [{}]
    draws = random_trials or 1
    count = len(points) * draws
    if max_trials is not None and count > max_trials:
        raise SpecError(
            f"budget.max_trials: the spec expands to {count} trials ({len(points)} grid points x {draws} "
            f"draws), more than max_trials = {max_trials}"
        )
    rng = np.random.default_rng(seed)
    width = max(3, len(str(count)))
    trials = []
    for point in points:
        for _ in range(draws):
            varied = {**point, **{key: _draw(d, rng) for key, d in space.items()}}
            for key in space:
                check_value(key, varied[key], f"random.{key}")
            settings = {**base, **varied}
            trial_id = f"trial-{len(trials) + 1:0{width}d}"
            check_trial(settings, f"{trial_id} ({', '.join(f'{k}={_show(v)}' for k, v in varied.items())})")
            trials.append(Trial(trial_id, settings, varied))
    return SweepSpec(name=name, source=data, trials=trials, varied=[*grid, *space])


def _choices(distribution: Any) -> list[Any]:
    if isinstance(distribution, list):
        return []
    (dist, args), = distribution.items()
    return list(args) if dist == "choice" else []

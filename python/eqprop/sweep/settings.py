"""The ``eqprop train`` settings a sweep may set, and their conversion to command-line flags.

A sweep trial *is* an ``eqprop train`` run: its settings become the flags of
that command and go through the command's own argument parser, so a spec
value is checked exactly as the same flag typed on the command line would be.
This module knows, for each setting, what kind of TOML value it takes; the
flag, the parsing and the range checks come from :func:`eqprop.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import functools
import numbers
from typing import Any

#: Kind of TOML value of each ``eqprop train`` setting (keyed by the flag's
#: destination, e.g. ``free_steps`` for ``--free-steps``).
SETTING_KINDS: dict[str, str] = {
    "preset": "str",
    "dataset": "str",
    "layers": "layers",       # "64-100-10" or [64, 100, 10]
    "train_size": "int",
    "validation_size": "int",
    "data_dir": "str",
    "beta": "float",
    "init_gain": "floats",    # one gain, or one per weight matrix
    "algorithm": "str",
    "coupling": "float",
    "output": "str",
    "cost": "str",
    "free_steps": "int",
    "nudged_steps": "int",
    "epsilon": "float",
    "lr": "floats",           # one rate per weight matrix, e.g. [0.2, 0.1]
    "batch_size": "int",
    "epochs": "int",
    "solver": "str",
    "symmetric": "bool",
    "persistent": "bool",
    "random_sign": "bool",
    "eval_steps": "int",
    "translate": "int",
    "seed": "int",
    "dtype": "str",
    "precision": "str",
    "conv_algorithm": "str",  # changes only the rounding; a grid over it compares the two convolutions
    "delta_threshold": "float",  # the event-driven relaxation's: changes only the rounding, and the speed
    "optimizer": "str",
    "momentum": "float",
    "betas": "floats",        # [beta1, beta2]
    "eps": "float",
    "weight_decay": "floats",  # one per weight matrix, or [one for all]
    "bias_lr": "floats",
    "schedule": "str",
    "schedule_epochs": "int",
    "schedule_floor": "float",
    "schedule_gamma": "float",
    "schedule_step_size": "int",
}
#: Flags of ``eqprop train`` that the sweep sets itself, per trial (``distributed``: never, a
#: trial is one process on one Dask worker).
SWEEP_OWNED = ("out", "resume", "threads", "quiet", "help", "distributed")
#: Other spellings accepted in a spec (the names used in config.json and the Python API).
ALIASES = {"learning_rates": "lr", "sizes": "layers", "init_gains": "init_gain"}


class SpecError(ValueError):
    """A sweep specification is invalid; the message names the offending key."""


@functools.cache
def train_parser() -> argparse.ArgumentParser:
    """The ``eqprop train`` subparser, whose errors raise :class:`SpecError` instead of exiting."""
    from eqprop.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = subparsers.choices["train"]

    def error(message: str):
        raise SpecError(message)

    train.error = error  # an instance attribute: only this parser object is affected
    return train


@functools.cache
def train_actions() -> dict[str, argparse.Action]:
    """The ``eqprop train`` actions by destination."""
    return {action.dest: action for action in train_parser()._actions}


def canonical_key(key: str, where: str) -> str:
    """The setting's canonical name (``free-steps`` -> ``free_steps``, ``learning_rates`` -> ``lr``)."""
    name = key.replace("-", "_")
    name = ALIASES.get(name, name)
    if name == "distributed":
        raise SpecError(f"{where}: {key!r} is not a sweep setting: a trial is one process on one Dask worker")
    if name in SWEEP_OWNED:
        raise SpecError(
            f"{where}: {key!r} is set by eqprop sweep for each trial, not in the spec"
            + (" (use eqprop sweep --trial-threads)" if name == "threads" else "")
        )
    if name not in SETTING_KINDS or name not in train_actions():
        known = ", ".join(k for k in SETTING_KINDS if k in train_actions())
        raise SpecError(f"{where}: unknown setting {key!r}; eqprop train settings are: {known}")
    return name


def _kind_name(kind: str) -> str:
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
            "floats": "a list of numbers", "layers": 'a string like "64-100-10" or a list of integers'}[kind]


def check_value(name: str, value: Any, where: str) -> Any:
    """``value`` checked for setting ``name`` (kind, then the flag's own parsing); returned normalised."""
    kind = SETTING_KINDS[name]
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
        "float": isinstance(value, numbers.Real) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "floats": isinstance(value, list) and len(value) > 0
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value),
        "layers": isinstance(value, str) or (isinstance(value, list) and len(value) > 0 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)),
    }[kind]
    if not ok:
        raise SpecError(f"{where}: expected {_kind_name(kind)}; got {value!r} ({type(value).__name__})")
    if kind == "float":
        value = float(value)
    elif kind == "floats":
        value = [float(v) for v in value]
    elif kind == "layers" and isinstance(value, list):
        value = "-".join(str(v) for v in value)
    action = train_actions()[name]
    if kind != "bool":
        try:
            for token in _tokens(name, value):
                parsed = action.type(token) if action.type is not None else token
                if action.choices is not None and parsed not in action.choices:
                    raise SpecError(f"expected one of {', '.join(map(str, action.choices))}; got {value!r}")
        except (argparse.ArgumentTypeError, SpecError, ValueError) as exc:
            raise SpecError(f"{where}: {exc}") from None
    return value


def _tokens(name: str, value: Any) -> list[str]:
    if SETTING_KINDS[name] == "floats":
        return [repr(v) for v in value]
    if isinstance(value, float):
        return [repr(value)]
    return [str(value)]


def to_argv(settings: dict[str, Any]) -> list[str]:
    """The ``eqprop train`` flags for checked ``settings`` (without --out / --threads)."""
    argv: list[str] = []
    for name, value in settings.items():
        action = train_actions()[name]
        flag = action.option_strings[-1]
        if SETTING_KINDS[name] == "bool":
            # store_const flags: --symmetric (const True), --no-persistent (const False), ...
            if value == action.const:
                argv.append(flag)
        else:
            argv += [flag, *_tokens(name, value)]
    return argv


def check_trial(settings: dict[str, Any], where: str) -> None:
    """Check a whole trial's settings together, as ``eqprop train`` would before training.

    Catches what single values cannot show: no preset and no dataset, a
    number of learning rates that does not fit the layers, or an optimizer or
    schedule setting that does not fit the chosen optimizer or schedule.
    """
    from eqprop.presets import get_preset

    try:
        args = train_parser().parse_args([*to_argv(settings), "--out", "unused"])
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    preset = None
    if "preset" in settings:
        try:
            preset = get_preset(settings["preset"])
        except ValueError as exc:
            raise SpecError(f"{where}: preset: {exc}") from None
    missing = [key for key in ("dataset", "layers", "lr") if key not in settings]
    if preset is None and missing:
        raise SpecError(f"{where}: give a preset, or at least {', '.join(missing)} (as eqprop train needs)")
    layers = settings.get("layers")
    sizes = [int(n) for n in layers.replace(",", "-").split("-")] if layers else list(preset.sizes)
    rates = settings.get("lr", list(preset.learning_rates) if preset else [])
    if len(rates) != len(sizes) - 1:
        raise SpecError(
            f"{where}: lr needs one rate per weight matrix: {len(sizes) - 1} for layers "
            f"{'-'.join(map(str, sizes))}; got {len(rates)} ({rates})"
        )
    from eqprop.cli import _settings

    try:  # the checks eqprop train makes of the settings together (optimizer, schedule, ...)
        _settings(args, train_parser())
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None

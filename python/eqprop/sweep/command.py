"""The ``eqprop sweep`` subcommand: its arguments and what it runs (the CLI adds it with one call)."""

from __future__ import annotations

import argparse
import sys

_EPILOG = """\
examples:
  eqprop sweep examples/sweep-digits.toml --out sweeps/digits
      a local cluster: one single-threaded worker per core, one trial per worker
  eqprop sweep examples/sweep-digits.toml --out sweeps/digits --dry-run
      check the spec and list its trials; run nothing
  eqprop sweep spec.toml --out /shared/sweeps/s1 --scheduler tcp://10.0.0.5:8786
      an existing Dask cluster (started with `dask scheduler` and `dask worker ADDRESS
      --nworkers N --nthreads 1`); DIR must be on a filesystem every worker sees

Rerunning the same command continues a sweep: finished trials are skipped and
unfinished ones resume from their last checkpoint. The spec format is
documented in eqprop.sweep.spec (and the README, "Scaling out").
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds; got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds; got {text}")
    return value


def add_sweep_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``sweep`` to the ``eqprop`` subcommands."""
    sweep = commands.add_parser(
        "sweep", help="run a hyperparameter sweep (grid and/or random search) on Dask",
        description="Run every trial of a sweep spec (TOML or YAML) as one 'eqprop train' run in "
        "DIR/trials/<trial>, on a local Dask cluster or an existing one; then write DIR/summary.csv, "
        "DIR/summary.md (sorted by validation error) and DIR/sweep.png. Needs eqprop[cluster].",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("spec", metavar="SPEC", help="the sweep spec (.toml, or .yaml/.yml with PyYAML)")
    sweep.add_argument("--out", metavar="DIR", required=True,
                       help="sweep directory (created; rerun with the same DIR to continue a sweep)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running Dask scheduler, e.g. tcp://HOST:8786 (default: a local cluster)")
    sweep.add_argument("--workers", type=_positive_int, metavar="N",
                       help="workers of the local cluster (default: cores // --trial-threads)")
    sweep.add_argument("--trial-threads", type=_positive_int, default=1, metavar="N",
                       help="OpenMP threads of each trial (default 1; workers x N should not exceed the cores)")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="run failed trials again (default: a rerun skips them like finished ones)")
    sweep.add_argument("--dry-run", action="store_true", help="check the spec, list the trials and exit")
    sweep.add_argument("--progress-every", type=_positive_seconds, default=10.0, metavar="SECONDS",
                       help="seconds between progress lines when nothing changes (default 10)")
    sweep.set_defaults(func=cmd_sweep, subparser=sweep)
    return sweep


def cmd_sweep(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Check the spec (a SpecError is a ValueError: ``eqprop`` prints it as one line), then run it."""
    from eqprop.sweep.spec import load_spec

    spec = load_spec(args.spec)
    if args.dry_run:
        print(f"sweep {spec.name}: {len(spec.trials)} trials")
        for trial in spec.trials:
            print(f"  {trial.id}  {trial.label()}")
        return 0
    try:
        import distributed  # noqa: F401
    except ImportError:
        print('eqprop sweep: error: running a sweep needs Dask: pip install "eqprop[cluster]" '
              '(or "dask[distributed]")', file=sys.stderr)
        return 1
    from eqprop.sweep.runner import run_sweep

    try:
        rows = run_sweep(
            spec, args.out, scheduler=args.scheduler, workers=args.workers, trial_threads=args.trial_threads,
            retry_failed=args.retry_failed, progress_every=args.progress_every,
            echo=lambda line: print(line, flush=True),
        )
    except KeyboardInterrupt:
        return 130
    if rows and not any(row["status"] == "done" for row in rows):
        print("eqprop sweep: error: every trial failed (see the message column of summary.md)", file=sys.stderr)
        return 1
    return 0

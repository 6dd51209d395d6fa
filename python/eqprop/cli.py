"""The ``eqprop`` command line."""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy
    import scipy

    import eqcore
    import eqprop

    info = eqcore.build_info()
    print(f"eqprop {eqprop.__version__}")
    print(f"python {platform.python_version()} ({platform.machine()}), numpy {numpy.__version__}, scipy {scipy.__version__}")
    print(f"OpenMP: {'enabled' if info['openmp'] else 'DISABLED (serial build)'}")
    print(f"max threads: {info['max_threads']}")
    print(f"built with -march=native: {'yes' if info['native'] else 'no'}")
    print(f"relaxation kernel: {info['kernel']['path']} ({info['kernel']['isa']})")
    for blas in info["blas"]:
        print(f"BLAS: {blas['library']} {blas['version']} ({blas['threading']}, {blas['architecture']}) {blas['path']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eqprop",
        description="Train Equilibrium Propagation networks fast on multicore CPUs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = commands.add_parser("info", help="show versions and what the compiled core was built with")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

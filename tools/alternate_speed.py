"""Compare builds of eqprop in alternating fresh processes of ``tools/epoch_speed.py``.

Usage: ``python tools/alternate_speed.py ROUNDS NAME=SRC [NAME=SRC ...] [-- EPOCH_SPEED ARGS]``.

Each ``SRC`` is a directory holding a built ``eqcore`` (a worktree's ``src``, built with
``python setup.py build_ext --inplace``); this checkout's ``python/`` supplies the ``eqprop``
package of every run. Each round runs every build once, in the order given, each in a fresh
process of ``tools/epoch_speed.py --stages`` (default arguments: ``--epochs 3 --threads 2``),
and prints its last epoch's examples/s and microseconds per mini-batch in the free phase, the
nudged phase and the update; the end gives each build's median and best, and each later build's
median ratio to the first over the rounds (with how many rounds it was faster).

Why: on a shared 2-core VM the same code runs 10-40% slower in some minutes than in others
(the memory slows first). Builds compared in alternating rounds see the same minutes, and the
best run of each estimates its speed on a quiet machine.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ARGS = ["--epochs", "3", "--threads", "2"]
LINE = re.compile(r"epoch \d+: ([\d,]+) examples/s")
STAGE = {name: re.compile(rf"{name} ([\d.]+)") for name in ("free phase", "nudged phase", "update")}


def parse_builds(specs: list[str]) -> list[tuple[str, Path]]:
    """NAME=SRC pairs, each SRC an existing directory."""
    builds = []
    for spec in specs:
        name, sep, src = spec.partition("=")
        if not sep or not name or not src:
            raise ValueError(f"a build is NAME=SRC; got {spec!r}")
        path = Path(src).resolve()
        if not (path / "eqcore").is_dir():
            raise ValueError(f"{src} holds no eqcore package (a built src directory is expected)")
        builds.append((name, path))
    return builds


def run_once(src: Path, args: list[str]) -> dict[str, float]:
    """One fresh process of epoch_speed.py on the build in ``src``: its last epoch's figures."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(ROOT / "python")]))
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "epoch_speed.py"), "--stages", *args],
                         env=env, capture_output=True, text=True, check=True).stdout
    speeds = LINE.findall(out)
    if not speeds:
        raise RuntimeError(f"epoch_speed.py printed no epoch:\n{out}")
    last_stages = out.strip().splitlines()[-1]
    figures = {"examples/s": float(speeds[-1].replace(",", ""))}
    for name, pattern in STAGE.items():
        found = pattern.search(last_stages)
        figures[name] = float(found.group(1)) if found else float("nan")
    return figures


def main(argv: list[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        argv, extra = argv[:split], argv[split + 1:]
    else:
        extra = DEFAULT_ARGS
    if len(argv) < 2 or not argv[0].isdigit() or int(argv[0]) < 1:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    try:
        builds = parse_builds(argv[1:])
    except ValueError as error:
        print(f"alternate_speed.py: {error}", file=sys.stderr)
        return 2
    runs: dict[str, list[dict[str, float]]] = {name: [] for name, _ in builds}
    width = max(len(name) for name, _ in builds)
    for _ in range(int(argv[0])):
        for name, src in builds:
            figures = run_once(src, extra)
            runs[name].append(figures)
            print(f"{name:{width}s} {figures['examples/s']:>9,.0f} examples/s   free {figures['free phase']:6.1f}"
                  f"   nudged {figures['nudged phase']:5.1f}   update {figures['update']:6.1f} us", flush=True)
    for name, figures in runs.items():
        speeds = [f["examples/s"] for f in figures]
        print(f"{name:{width}s} median {statistics.median(speeds):,.0f}, best {max(speeds):,.0f} examples/s"
              f" ({len(speeds)} runs)")
    first = builds[0][0]
    for name, figures in list(runs.items())[1:]:
        ratios = round_ratios(runs[first], figures)
        print(f"{name:{width}s} / {first}: median {statistics.median(ratios):.3f} per round, above 1 in "
              f"{sum(r > 1 for r in ratios)} of {len(ratios)}")
    return 0


def round_ratios(base: list[dict[str, float]], other: list[dict[str, float]]) -> list[float]:
    """Each round's examples/s of ``other`` over ``base``'s: the two ran minutes apart at most, so a
    slow period of the host (docs/performance.md) usually slows both of a round."""
    return [o["examples/s"] / b["examples/s"] for b, o in zip(base, other)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

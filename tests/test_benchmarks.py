"""Every asv benchmark sets up and runs: each method once for every value of every parameter.

asv reports a benchmark whose ``setup`` raises as failed, and a dashboard then shows
a gap where a regression should show; this runs the grid's first combination and,
one parameter at a time, every other value (``NotImplementedError`` is asv's skip),
with ``best_seconds`` cut to a single call.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the benchmarks package

MODULES = ("benchmarks.bench_relax", "benchmarks.bench_train", "benchmarks.bench_update")
PREFIXES = ("time_", "track_", "peakmem_", "mem_")


def _combinations(params):
    first = [values[0] for values in params]
    yield tuple(first)
    for i, values in enumerate(params):
        for value in values[1:]:
            yield tuple(first[:i] + [value] + first[i + 1:])


def _cases():
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            methods = sorted(m for m in dir(cls) if m.startswith(PREFIXES))
            for combination in _combinations(getattr(cls, "params", ())):
                for method in methods:
                    yield pytest.param(module, cls, method, combination,
                                       id=f"{name}.{method}-{'-'.join(map(str, combination))}")


@pytest.mark.parametrize("module, cls, method, combination", list(_cases()))
def test_benchmark_runs(module, cls, method, combination, monkeypatch):
    monkeypatch.setattr(module, "best_seconds", lambda call, *args, **kwargs: (call(), 1.0)[1], raising=False)
    benchmark = cls()
    try:
        if hasattr(benchmark, "setup"):
            benchmark.setup(*combination)
    except NotImplementedError as skipped:
        pytest.skip(str(skipped))
    result = getattr(benchmark, method)(*combination)
    if method.startswith("track_"):
        assert result > 0
    if hasattr(benchmark, "teardown"):
        benchmark.teardown(*combination)

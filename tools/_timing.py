"""Wall-clock timing shared by the profiling tools (a module, not a script)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_microseconds(function: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls of ``function``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return 1e6 * statistics.median(samples)

"""Hyperparameter sweeps on Dask distributed: ``eqprop sweep SPEC --out DIR``.

Each trial is one ``eqprop train`` run in its own run directory under
``DIR/trials/``; the spec format is described in :mod:`eqprop.sweep.spec`.
Reading and checking a spec needs nothing beyond eqprop; running one needs
``dask[distributed]`` (``pip install "eqprop[cluster]"``).

Modules: ``settings`` (spec keys to ``eqprop train`` flags), ``spec`` (read,
check, expand), ``trial`` (one trial on a worker), ``report`` (summary table and
plot), ``runner`` (the Dask side: cluster, submission, progress), ``command``
(the ``eqprop sweep`` subcommand).
"""

from __future__ import annotations

from eqprop.sweep.settings import SpecError
from eqprop.sweep.spec import SweepSpec, Trial, load_spec, parse_spec

__all__ = ["SpecError", "SweepSpec", "Trial", "load_spec", "parse_spec"]

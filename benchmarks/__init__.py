"""asv benchmarks of eqprop (see asv.conf.json at the repository root).

Modules ``bench_*`` hold the asv suite; ``compare.py`` is a standalone script
(eqprop vs PyTorch vs NumPy) and ``peers/`` its peer implementations. Neither
defines asv benchmarks, and importing them does no work.
"""

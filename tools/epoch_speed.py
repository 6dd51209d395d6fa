"""Examples per second of each epoch of ``Trainer.fit`` in a fresh process (first epoch included).

Usage: ``python tools/epoch_speed.py [--preset mnist-1h] [--examples 20000] [--epochs 3]
[--threads 2] [--loop compiled|python] [--precision float32|bfloat16]
[--bf16 best|amx|native|fallback] [--changes D] [--stages]``.

Trains the preset's network on the first ``--examples`` MNIST training images and
prints, per epoch, the Trainer's own examples/s (training only, from its history)
and the minor page faults taken during the epoch. ``--loop python`` forces the
Python loop over mini-batches (the one the other optimizers and MPI take) instead
of the compiled epoch loop. ``--bf16`` picks the bfloat16 products' kernel
(``eqcore.set_gemm_path``). ``--changes`` sets ``eqcore.set_delta_threshold``
(0: the event-driven relaxation off). ``--stages`` also prints, per epoch, the compiled
loop's wall time per mini-batch in each of its stages (``eqcore._epoch.STAGES``:
gather, refresh of the weight layouts, free phase, scoring and particles, nudged
phase, update). Run it on a quiet machine: a second CPU-bound process
halves an OpenMP run's speed.
"""

from __future__ import annotations

import argparse
import resource

import numpy as np

import eqcore
import eqprop
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS
from eqcore._epoch import STAGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist-1h", choices=sorted(PRESETS))
    parser.add_argument("--examples", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop", choices=["compiled", "python"], default="compiled")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--bf16", choices=["best", "amx", "native", "fallback"], default="best")
    parser.add_argument("--conv", choices=["auto", "direct", "winograd"], default="auto",
                        help="the bottom-up convolutions' algorithm (eqcore.set_gemm_path)")
    parser.add_argument("--changes", type=float, default=None, metavar="D",
                        help="the event-driven relaxation's threshold (eqcore.set_delta_threshold; 0: off)")
    parser.add_argument("--stages", action="store_true",
                        help="print the compiled loop's time per mini-batch in each of its stages")
    args = parser.parse_args()
    if args.stages and args.loop != "compiled":
        parser.error("--stages times the compiled loop's stages: it needs --loop compiled")
    eqcore.set_gemm_path("skinny", "best", bf16=args.bf16, conv=args.conv)
    if args.changes is not None:
        eqcore.set_delta_threshold(args.changes)
    preset = PRESETS[args.preset]
    data = load_dataset(preset.dataset)
    x, labels = data.x_train[:args.examples], data.y_train[:args.examples]
    net = eqprop.EqPropNetwork(preset.sizes, seed=0, init_gains=preset.init_gains, output=preset.output,
                               precision=args.precision, threads=args.threads)
    trainer = eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0, threads=args.threads)
    trainer._compiled_epochs = args.loop == "compiled"
    if args.stages:
        trainer._stage_seconds = np.zeros(len(STAGES))
    faults = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt]

    def report(trainer: eqprop.Trainer, record) -> None:
        now = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        kernel = f" ({eqcore.gemm_path()['bf16']})" if args.precision == "bfloat16" else ""
        kernel += f" conv {args.conv}"
        print(f"{args.preset} {args.precision}{kernel} {args.loop} loop, {args.threads} threads, epoch {record.epoch}: "
              f"{record.examples_per_second:,.0f} examples/s, {now - faults[0]} minor page faults", flush=True)
        faults[0] = now
        if trainer._stage_seconds is not None:
            batches = -(-len(x) // trainer.batch_size)
            per_batch = ", ".join(f"{name} {1e6 * seconds / batches:.1f}"
                                  for name, seconds in zip(STAGES, trainer._stage_seconds))
            print(f"  microseconds per mini-batch: {per_batch}", flush=True)
            trainer._stage_seconds[:] = 0

    trainer.fit(x, labels, epochs=args.epochs, progress=False, callbacks=[report])


if __name__ == "__main__":
    main()

"""Paired A/B inside one process: epochs alternate between two settings of a switch.

Usage: python alternate-epochs-ab.py EPOCHS [MODULE.FUNCTION]; the switch (default
eqcore._epoch.set_serial_score, from serial-score-switch.patch) is a temporary function of a
build that takes True for the old code and False for the new. "in region" in the output is the
new code (switch False), "serial" the old.
"""
import importlib, sys, numpy as np, eqprop
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS
module, _, function = (sys.argv[2] if len(sys.argv) > 2 else "eqcore._epoch.set_serial_score").rpartition(".")
set_switch = getattr(importlib.import_module(module), function)
preset = PRESETS["mnist-1h"]
data = load_dataset(preset.dataset)
x, labels = data.x_train[:20000], data.y_train[:20000]
net = eqprop.EqPropNetwork(preset.sizes, seed=0, init_gains=preset.init_gains, output=preset.output, threads=2)
tr = eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0, threads=2)
speeds = {True: [], False: []}
sequence = []
state = {"serial": False}
def cb(t, r):
    speeds[state["serial"]].append(r.examples_per_second)
    sequence.append((state["serial"], r.examples_per_second))
    state["serial"] = not state["serial"]
    set_switch(state["serial"])
set_switch(False)
tr.fit(x, labels, epochs=int(sys.argv[1]), progress=False, callbacks=[cb])
# each epoch against the mean of its two neighbours (the other setting): no trend bias
ratios = []
for i in range(2, len(sequence) - 1):
    serial, v = sequence[i]
    around = (sequence[i - 1][1] + sequence[i + 1][1]) / 2
    ratios.append(around / v if serial else v / around)
ratios = np.array(ratios)
print(f"in-region / serial against neighbours: median {np.median(ratios):.4f}, mean {ratios.mean():.4f}, "
      f"n {len(ratios)}, above 1 in {np.sum(ratios > 1)}")
a, b = np.array(speeds[True][1:]), np.array(speeds[False][1:])
n = min(len(a), len(b)); ratio = b[:n] / a[:n]
print(f"serial score: median {np.median(a):,.0f} best {a.max():,.0f}; in region: median {np.median(b):,.0f} best {b.max():,.0f}")
print(f"paired ratio in-region/serial: median {np.median(ratio):.4f}, mean {ratio.mean():.4f}, n {n}, in-region faster in {np.sum(ratio > 1)}")

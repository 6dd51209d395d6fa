"""Same process, several trainers, each after a spacer allocation of a random size: does speed vary per placement?"""
import sys, numpy as np, eqcore, eqprop
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS
preset = PRESETS["mnist-1h"]
data = load_dataset(preset.dataset)
x, labels = data.x_train[:20000], data.y_train[:20000]
rng = np.random.default_rng(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
keep = []
for trial in range(6):
    keep.append(np.ones(int(rng.integers(1, 4096)) * 1024, dtype=np.uint8))  # touched spacer
    net = eqprop.EqPropNetwork(preset.sizes, seed=0, init_gains=preset.init_gains, output=preset.output, threads=2)
    tr = eqprop.Trainer(net, **preset.trainer_kwargs(), seed=0, threads=2)
    speeds = []
    tr.fit(x, labels, epochs=3, progress=False, callbacks=[lambda t, r: speeds.append(r.examples_per_second)])
    print(trial, " ".join(f"{s:,.0f}" for s in speeds), flush=True)

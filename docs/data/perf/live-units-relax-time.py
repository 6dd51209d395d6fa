import numpy as np, eqprop, eqcore, time
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS
p = PRESETS["mnist-1h"]
d = load_dataset("mnist")
x, y = d.x_train[:4000], d.y_train[:4000]
net = eqprop.EqPropNetwork(p.sizes, seed=0, init_gains=p.init_gains, output=p.output, threads=2)
tr = eqprop.Trainer(net, **p.trainer_kwargs(), seed=0, threads=2)
tr.fit(x, y, epochs=2, progress=False)
xb = x[:20].astype(np.float32); init = [a[:20].copy() for a in tr.particles]
for thr in (1, 2):
  for steps in (20, 4):
    for live in (True, False, True, False):
        eqcore.set_live_units(live)
        best = 1e9
        for r in range(5):
            t = time.perf_counter()
            for i in range(200):
                net.relax(xb, steps=steps, epsilon=0.5, threads=thr, init=init)
            best = min(best, (time.perf_counter() - t) / 200)
        print(f"threads {thr} steps {steps} live {live}: {best*1e6:.1f} us per relax")

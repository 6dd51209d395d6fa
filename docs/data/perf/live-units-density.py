import numpy as np, eqprop
from eqprop.datasets import load_dataset
from eqprop.presets import PRESETS
p = PRESETS["mnist-1h"]
d = load_dataset("mnist")
x, y = d.x_train[:20000], d.y_train[:20000]
net = eqprop.EqPropNetwork(p.sizes, seed=0, init_gains=p.init_gains, output=p.output, threads=2)
tr = eqprop.Trainer(net, **p.trainer_kwargs(), seed=0, threads=2)
for ep in range(3):
    tr.fit(x, y, epochs=1, progress=False)
    s1 = tr.particles[0]; s2 = tr.particles[1]
    W0, W1 = net.weights; b1, b2 = net.biases
    drive = x @ W0 + b1
    stuck = drive + np.maximum(W1, 0).sum(1) <= 0
    print(f"epoch {ep+1}: hidden zero {np.mean(s1==0):.3f} one {np.mean(s1==1):.3f} stuck-bound {np.mean(stuck):.3f}; "
          f"16-groups all zero {np.mean((s1.reshape(len(s1),-1)[:, :496].reshape(len(s1),31,16)==0).all(-1)):.3f}; out zero {np.mean(s2==0):.3f}")
s1 = tr.particles[0]
freq = (s1 != 0).mean(0)
print("units never active:", np.mean(freq == 0), " active <5%:", np.mean(freq < 0.05), " <20%:", np.mean(freq < 0.2), " >80%:", np.mean(freq > 0.8))
order = np.argsort(freq)
sp = np.zeros((len(s1), 512), np.float32); sp[:, :500] = s1[:, order]
g = (sp.reshape(len(s1), 32, 16) == 0).all(-1)
print("sorted: 16-groups all zero per row, mean:", g.mean(), " per group:", np.round(g.mean(0), 2))

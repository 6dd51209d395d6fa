import numpy as np
from eqprop.datasets import load_dataset
d = load_dataset("mnist"); x = d.x_train[:20000] != 0; y = d.y_train[:20000]
rng = np.random.default_rng(0)
xf = x.astype(np.float32); mu = xf.mean(0)
u, s, vt = np.linalg.svd(xf[:5000] - mu, full_matrices=False)
pc = (xf - mu) @ vt[:3].T
keys = {"random": None, "label": y, "pc1": pc[:, 0], "label+pc1": y * 100 + np.argsort(np.argsort(pc[:, 0])) / len(y)}
nnz_total = x.sum()
for name, key in keys.items():
    for g in (10, 5):
        unions = 0; terms = 0
        order = rng.permutation(len(x))
        for b in range(0, len(x), 20):
            idx = order[b:b+20]
            if key is not None: idx = idx[np.argsort(key[idx], kind="stable")]
            for k in range(0, 20, g):
                grp = x[idx[k:k+g]]
                unions += grp.any(0).sum() * len(grp)
        print(f"{name:10s} groups of {g}: union terms / non-zero terms = {unions / nnz_total:.3f}")

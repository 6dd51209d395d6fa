"""Short conv-MNIST probes: how the mnist-conv / fashion-conv settings were chosen.

Trains the Ernoult et al. (2019) network, 1x28x28,c32k5mp,c64k5mp,10, on the
first N training images for a few epochs with one thread, and prints the
error on the first 5,000 validation images after every epoch (never the test
set). One configuration per call, as a JSON list::

    python tools/conv_probe.py '["g4", "alternating", 15, 5, 0.5, 0.5, [0.3, 0.15, 0.05], true, false, 2, 10000, "mnist", false, [1, 0.5, 0.5]]'

fields: name, solver, free steps, nudged steps, beta, epsilon, learning rates,
symmetric, random sign, epochs, training images, dataset, persistent
particles (optional, default false), init gains (optional, default 1). The
runs behind docs/results.md's probe table used this script with the data in
$EQPROP_DATA.
"""

import json
import os
import sys

from eqprop import Conv2d, EqPropNetwork, Trainer
from eqprop.datasets import load_dataset

config = json.loads(sys.argv[1])
name, solver, free_steps, nudged_steps, beta, epsilon, rates, symmetric, random_sign, epochs, n_train, dataset = config[:12]
persistent = config[12] if len(config) > 12 else False
gains = config[13] if len(config) > 13 else None
data = load_dataset(dataset, data_dir=os.path.join(os.environ["EQPROP_DATA"], dataset))
net = EqPropNetwork([(1, 28, 28), Conv2d(32, 5, pool="max"), Conv2d(64, 5, pool="max"), 10],
                    dtype="float32", seed=0, init_gains=gains)
trainer = Trainer(net, beta=beta, free_steps=free_steps, nudged_steps=nudged_steps, epsilon=epsilon,
                  learning_rates=rates, batch_size=20, threads=1, seed=0, solver=solver, symmetric=symmetric,
                  random_sign=random_sign, persistent=persistent)
for epoch in range(epochs):
    record = trainer.fit(data.x_train[:n_train], data.y_train[:n_train], epochs=1,
                         validation=(data.x_val[:5000], data.y_val[:5000]), progress=False)[-1]
    print(name, epoch + 1, f"train {record.train_error:.4f} val {record.val_error:.4f} "
          f"{record.examples_per_second:.0f} ex/s", flush=True)

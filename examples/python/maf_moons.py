"""Seed 002's MAF on the moons from Python: 1,000 standardised moons, full
batch, 600 epochs with a validation split of 0.2, two MAFs with MADE hidden
[16, 16] and a permutation between them; the loss curves go to loss.png
when matplotlib is installed.
Run: PYTHONPATH=python python3 examples/python/maf_moons.py [--epochs N]"""

import argparse

import numpy as np

import nflow

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=600)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()

x, _ = nflow.datasets.moons(1000, noise=0.05, seed=a.seed)
flow = nflow.Flow("chain(maf(hidden=[16,16]), permute([1,0]), maf(hidden=[16,16]))", 2, seed=a.seed)
h = flow.fit(x, epochs=a.epochs, batch=0, lr=1e-3, val_split=0.2, standardize=True, seed=a.seed + 1)
print("%s: %d epochs in %.2f s; train NLL %.4f, validation %.4f" % (flow, h.epochs, h.seconds, h.train_loss, h.val_loss))
test, _ = nflow.datasets.moons(10000, noise=0.05, seed=a.seed + 12345)
print("test NLL on 10,000 fresh points: %.4f nats" % -np.mean(flow.log_prob(test)))
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.plot(h.train, label="train")
    plt.plot(h.val, label="validation")
    plt.xlabel("epoch")
    plt.ylabel("mean NLL (nats)")
    plt.legend()
    plt.savefig("loss.png", dpi=100)
    print("wrote loss.png")
except ImportError:
    print("matplotlib is not installed (apt-get install python3-matplotlib): no figure")

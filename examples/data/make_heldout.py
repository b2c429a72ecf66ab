#!/usr/bin/python3
"""Writes examples/data/moons_sklearn_10k.csv: 10,000 moons (noise 0.05) drawn by
scikit-learn's make_moons with random_state=12345, the held-out set of the
PyTorch reference (../shared/reference/torch_realnvp_moons.py).  nflow never
generates these points, so NLLs on them compare fairly with PyTorch's.
Run with Debian's python3-sklearn: /usr/bin/python3 examples/data/make_heldout.py"""
import numpy as np
from sklearn.datasets import make_moons

x = make_moons(10_000, noise=0.05, random_state=np.random.RandomState(12345))[0].astype(np.float32)
np.savetxt("examples/data/moons_sklearn_10k.csv", x, fmt="%.8g", delimiter=",", header="x,y", comments="")

"""The generated 2-D data sets of nflow (the CLI's --data NAME).

>>> x, y = moons(4, noise=0.05, seed=0)
>>> x.shape, y.shape
((4, 2), (4,))
"""

import ctypes

import numpy as np

from ._lib import Rng, check, lib, ptr


def names():
    """The generated sets' names."""
    out, k = [], 0
    while lib.nf_data_name(k):
        out.append(lib.nf_data_name(k).decode())
        k += 1
    return out


def generate(name, n, noise=0.05, seed=0):
    """n points of a generated set: (x: n x 2 float32, labels: n int32)."""
    x = np.empty((int(n), 2), np.float32)
    lab = np.empty(int(n), np.int32)
    rng = Rng(seed)  # held until the call returns
    check(lib.nf_data_generate(name.encode(), rng.h, int(n), float(noise), ptr(x),
                               lab.ctypes.data_as(ctypes.POINTER(ctypes.c_int))))
    return x, lab


def moons(n, noise=0.05, seed=0):
    """scikit-learn's make_moons: two interleaved half circles."""
    return generate("moons", n, noise, seed)


def circles(n, noise=0.05, seed=0):
    return generate("circles", n, noise, seed)


def eight_gaussians(n, noise=0.05, seed=0):
    return generate("8gaussians", n, noise, seed)

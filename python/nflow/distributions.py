"""Untrained distributions and bijectors from a spec (TensorFlow
Probability's vocabulary): forward maps base to data, inverse data to base.

>>> round(float(Distribution("normal(0, 1)").log_prob([2.01])[0]), 6)
-2.938988
>>> [round(float(c), 6) for c in Distribution("transformed(normal(0,1), affine_scalar(shift=0, scale=2))").cdf([0, 1, 2])]
[0.5, 0.691462, 0.841345]
"""

import ctypes

import numpy as np

from ._lib import Owned, Rng, check, f32, lib, ptr


class Bijector(Owned):
    """A bijector from a spec, e.g. ``Bijector("exp")`` or
    ``Bijector("affine_scalar(shift=1, scale=2)")`` (dim: its row length).

    >>> Bijector("exp").forward([[0.0]]).tolist()
    [[1.0]]
    """

    _free = lib.nf_bijector_free

    def __init__(self, spec, dim=1, seed=0):
        self._h = ctypes.c_void_p()
        rng = Rng(seed)  # held until the call returns
        check(lib.nf_bijector_from_spec(spec.encode(), int(dim), rng.h, ctypes.byref(self._h)))
        self.spec = spec

    @property
    def dim(self):
        return lib.nf_bijector_dim(self._h)

    def __repr__(self):
        return "Bijector(%r, dim=%d)" % (self.spec, self.dim)

    def _map(self, fn, x):
        x = f32(x, self.dim)
        y = np.empty_like(x)
        check(fn(self._h, ptr(x), len(x), ptr(y), None))
        return y

    def _ldj(self, fn, x):
        x = f32(x, self.dim)
        out = np.empty(len(x), np.float32)
        check(fn(self._h, ptr(x), len(x), ptr(out)))
        return out

    def forward(self, x):
        """y = f(x) (base -> data)."""
        return self._map(lib.nf_bijector_forward, x)

    def inverse(self, y):
        """x = f^-1(y) (data -> base)."""
        return self._map(lib.nf_bijector_inverse, y)

    def forward_log_det_jacobian(self, x):
        return self._ldj(lib.nf_bijector_forward_log_det_jacobian, x)

    def inverse_log_det_jacobian(self, y):
        return self._ldj(lib.nf_bijector_inverse_log_det_jacobian, y)


class Distribution(Owned):
    """A distribution from a spec, e.g. ``Distribution("normal(0, 1)")``.
    A scalar distribution takes a flat list of points."""

    _free = lib.nf_dist_free

    def __init__(self, spec, seed=0):
        self._h = ctypes.c_void_p()
        self._rng = Rng(seed)
        check(lib.nf_dist_from_spec(spec.encode(), self._rng.h, ctypes.byref(self._h)))
        self.spec = spec

    @property
    def dim(self):
        return lib.nf_dist_dim(self._h)

    def __repr__(self):
        return "Distribution(%r, dim=%d)" % (self.spec, self.dim)

    def _eval(self, fn, x):
        x = f32(np.asarray(x, np.float32).reshape(-1, self.dim) if self.dim == 1 else x, self.dim)
        out = np.empty(len(x), np.float32)
        check(fn(self._h, ptr(x), len(x), ptr(out)))
        return out

    def log_prob(self, x):
        return self._eval(lib.nf_dist_log_prob, x)

    def prob(self, x):
        return self._eval(lib.nf_dist_prob, x)

    def cdf(self, x):
        return self._eval(lib.nf_dist_cdf, x)

    def sample(self, n, seed=None):
        rng = self._rng if seed is None else Rng(seed)
        out = np.empty((int(n), self.dim), np.float32)
        check(lib.nf_dist_sample(self._h, rng.h, int(n), ptr(out)))
        return out

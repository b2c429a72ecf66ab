"""nflow: normalizing flows over the nflow C library, numpy in and out.

>>> import nflow
>>> x, _ = nflow.datasets.moons(500, seed=0)
>>> flow = nflow.Flow("maf(layers=2, hidden=[16,16])", 2, seed=0)
>>> history = flow.fit(x, epochs=5, lr=3e-3)
>>> flow.log_prob(x[:3]).shape
(3,)
"""

from . import datasets
from ._lib import lib as _clib
from .distributions import Bijector, Distribution
from .errors import (ArgumentError, DomainError, Error, IOError, NumericalError, ShapeError, UnsupportedError)
from .flow import Flow, History, cuda_available, fit_density, load

__version__ = _clib.nf_version().decode()

__all__ = ["Flow", "History", "load", "fit_density", "cuda_available", "Bijector", "Distribution", "datasets", "Error", "ArgumentError",
           "ShapeError", "DomainError", "NumericalError", "UnsupportedError", "IOError"]

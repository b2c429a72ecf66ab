"""Seed 001 (TensorFlow Probability's walkthrough) with nflow from Python.
Run: PYTHONPATH=python python3 examples/python/walkthrough.py (or with the
package installed by `make python`: .venv/bin/python examples/python/walkthrough.py)."""

import nflow

normal = nflow.Distribution("normal(0, 1)")
print("Normal(0,1).log_prob(2.01)                   = %.6f" % normal.log_prob([2.01])[0])
phi = nflow.Bijector("normal_cdf")
u = phi.forward([[2.01]])
uniform = nflow.Distribution("uniform(0, 1)")
print("Uniform.log_prob(Phi(2.01)) + Phi.fldj(2.01) = %.6f"
      % (uniform.log_prob(u[:, 0])[0] + phi.forward_log_det_jacobian([[2.01]])[0]))
print("Normal(0,1).log_prob([0, 0.5, 1])            =", normal.log_prob([0, 0.5, 1]))
stretched = nflow.Distribution("transformed(normal(0,1), affine_scalar(shift=0, scale=2))")
print("(2 Z).log_prob([0, 1, 2])                    =", stretched.log_prob([0, 1, 2]))
print("(2 Z).cdf([0, 1, 2])                         =", stretched.cdf([0, 1, 2]))

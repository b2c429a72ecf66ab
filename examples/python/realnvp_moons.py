"""The dataflowr notebook from Python: the seed RealNVP (6 couplings,
2-256-256-2 nets) trained on fresh moons every step, then the 2x2 figure
and the density on a 500 x 500 grid (flow.png, with matplotlib if installed).
Run: PYTHONPATH=python python3 examples/python/realnvp_moons.py [--steps N]"""

import argparse

import numpy as np

import nflow

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=5001)
ap.add_argument("--grid", type=int, default=500)
a = ap.parse_args()

flow = nflow.Flow("realnvp(layers=6, hidden=[256,256])", 2, seed=0)
# fresh batches: one large draw, a new batch of 100 rows every step (one pass)
x, _ = nflow.datasets.moons(100 * a.steps, noise=0.05, seed=1)
h = flow.fit(x, epochs=1, batch=100, lr=1e-4)
test, _ = nflow.datasets.moons(10000, noise=0.05, seed=12345)
print("%s: %d steps in %.1f s; test NLL %.4f" % (flow, h.steps, h.seconds, -np.mean(flow.log_prob(test))))
g = np.linspace(-2, 3, a.grid, dtype=np.float32)
gx, gy = np.meshgrid(g, np.linspace(-1.5, 2, a.grid, dtype=np.float32))
density = np.exp(flow.log_prob(np.stack([gx.ravel(), gy.ravel()], 1))).reshape(gx.shape)
try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = flow.to_base(test[:2000])
    s = flow.sample(2000, seed=2)
    fig, ax = plt.subplots(2, 3, figsize=(12, 8))
    panels = [(z, "z = f^-1(X)"), (np.random.default_rng(0).normal(size=(2000, 2)), "z ~ p(z)"),
              (test[:2000], "X ~ p(X)"), (s, "X = f(z)")]
    for k, (pts, title) in enumerate(panels):
        axk = ax[k // 2, k % 2]
        axk.scatter(pts[:, 0], pts[:, 1], s=2)
        axk.set_title(title)
    ax[0, 2].imshow(density, origin="lower", extent=[-2, 3, -1.5, 2])
    ax[0, 2].set_title("p(x) on a %d x %d grid" % (a.grid, a.grid))
    ax[1, 2].axis("off")
    fig.savefig("flow.png", dpi=80)
    print("wrote flow.png")
except ImportError:
    print("matplotlib is not installed (apt-get install python3-matplotlib): no figure")

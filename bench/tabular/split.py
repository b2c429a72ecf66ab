#!/usr/bin/python3
"""The fixed split of docs/tabular.md's comparison (issue "Density quality"):
the label column dropped, rows shuffled with numpy's default_rng(0), 70/15/15
into train/val/test files.  digits: `digits_*.csv` dequantised once with U(0, 1)
noise drawn from the same generator (before the shuffle), and `digitsint_*.csv`
the same rows as integers, for nflow's own --dequantize (fresh noise each epoch).

usage: split.py DATA_DIR OUT_DIR
"""
import os
import sys
import numpy as np


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name in ("breast_cancer", "digits"):
        a = np.genfromtxt(f"{src}/{name}.csv", delimiter=",", names=True)
        cols = [c for c in a.dtype.names if c != "label"]
        x = np.array([a[c] for c in cols]).T.astype(np.float64)
        rng = np.random.default_rng(0)
        noise = rng.uniform(size=x.shape) if name == "digits" else np.zeros_like(x)
        p = rng.permutation(len(x))
        x, noise = x[p], noise[p]
        n = len(x)
        nte = nva = int(0.15 * n)
        ntr = n - nte - nva
        parts = {"train": slice(0, ntr), "val": slice(ntr, ntr + nva), "test": slice(ntr + nva, n)}
        for part, sl in parts.items():
            kw = dict(delimiter=",", header=",".join(cols), comments="", fmt="%.9g")
            np.savetxt(f"{out}/{name}_{part}.csv", x[sl] + noise[sl], **kw)
            if name == "digits":
                np.savetxt(f"{out}/digitsint_{part}.csv", x[sl], **kw)
        print(f"{name}: {ntr} train / {nva} validation / {nte} test rows, {x.shape[1]} columns")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""PyTorch on the GPU: the reference side of bench/device/run.

The same configurations as bench/nflow_bench.c --gpu (bench/torch_bench.py's
models: the dataflowr RealNVP, 6 couplings with s/t nets 2-256-256-2, and the
5-layer MAF, MADE [256,256], ReLU, reversed order), moved to the GPU, fp32
(TF32 off).  Training steps (Adam, a fixed batch) are timed eager and as one
captured CUDA graph (forward, backward and a capturable Adam replayed);
log_prob and sampling of 2^20 points are one call each.  Also the GPU's fp32
sgemm rate (an 8192^3 product).  Prints "RESULT <name> <value> <unit>".

Usage: /usr/bin/python3 bench/device/torch_gpu.py
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_bench import MAF, RealNVP, make_moons, step_ms  # noqa: E402

DEV = "cuda"


def sync():
    torch.cuda.synchronize()


def batch(b):
    return torch.from_numpy(make_moons(b, noise=0.05, random_state=3)[0].astype(np.float32)).to(DEV)


def graph_ms(model, b, steps):
    """The whole step (forward, backward, Adam) captured once and replayed
    (PyTorch's documented whole-network capture)."""
    x = batch(b)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, capturable=True)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss = -model.log_prob(x).mean()
            loss.backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(g):
        loss = -model.log_prob(x).mean()
        loss.backward()
        opt.step()
    for _ in range(5):
        g.replay()
    sync()
    t = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(steps):
            g.replay()
        sync()
        t.append((time.perf_counter() - t0) * 1000 / steps)
    return sorted(t)[1]


def realnvp_sample(m, n):
    return m.g(torch.randn(n, 2, device=DEV))


def maf_sample(m, n):
    x = torch.randn(n, m.d, device=DEV)
    for k in reversed(range(len(m.layers))):
        x = m.layers[k].inverse(x)
        if k > 0:
            x = x.flip(1)
    return x


def timed(fn):
    fn()  # warm up (allocations, kernels)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    p = torch.cuda.get_device_properties(0)
    print(f"INFO torch {torch.__version__} gpu {p.name} sm_{p.major}{p.minor}", flush=True)
    for name, make in (("realnvp", RealNVP), ("maf", MAF)):
        for b, steps in ((100, 200), (1024, 100), (16384, 30)):
            if name == "maf" and b == 16384:
                continue
            print(f"RESULT {name}_step_b{b}_eager {step_ms(make().to(DEV), b, steps, DEV):.4f} ms", flush=True)
            print(f"RESULT {name}_step_b{b}_graph {graph_ms(make().to(DEV), b, steps):.4f} ms", flush=True)
    n = 1 << 20
    x = torch.from_numpy(make_moons(n, noise=0.05, random_state=4)[0].astype(np.float32)).to(DEV)
    with torch.no_grad():
        for name, model, samp in (("realnvp", RealNVP().to(DEV), realnvp_sample), ("maf", MAF().to(DEV), maf_sample)):
            print(f"RESULT {name}_logprob_2p20 {timed(lambda: model.log_prob(x)):.4f} s", flush=True)
            print(f"RESULT {name}_sample_2p20 {timed(lambda: samp(model, n)):.4f} s", flush=True)
        a = torch.randn(8192, 8192, device=DEV)
        bm = torch.randn(8192, 8192, device=DEV)
        t = min(timed(lambda: a @ bm) for _ in range(3))
        print(f"RESULT gpu_sgemm_8192 {2 * 8192 ** 3 / t / 1e9:.1f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()

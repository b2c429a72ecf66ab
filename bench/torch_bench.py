#!/usr/bin/python3
"""The PyTorch side of the benchmark (bench/run runs it next to nflow_bench).

Same configurations as bench/nflow_bench.c: the dataflowr RealNVP (6 couplings,
s/t nets 2-256-256-2, LeakyReLU, tanh on s) and the reference 5-layer MAF (MADE
[256,256], ReLU, reversed order between layers), PyTorch's default nn.Linear
initialisation (nflow's NF_INIT_TORCH), a fixed batch for training steps,
log_prob and sampling of 1,000,000 points in chunks of 2048, IAF sampling in
its one-pass direction.  Prints "RESULT <name> <value> <unit>" lines.

Usage: /usr/bin/python3 bench/torch_bench.py --threads N [--part steps|passes]
(default: both; bench/run runs the steps in several rounds, alternating with
nflow's, and the passes once).
"""
import argparse
import ctypes
import math
import resource
import time

import numpy as np
import torch
from torch import nn


def make_moons(n, noise, random_state):
    """scikit-learn's make_moons where it is installed, else the same two
    half circles with numpy (the timings do not depend on which)."""
    try:
        from sklearn.datasets import make_moons as sk
        return sk(n, noise=noise, random_state=random_state)
    except ImportError:
        r = np.random.default_rng(random_state)
        a, b = n // 2, n - n // 2
        t0, t1 = np.linspace(0, np.pi, a), np.linspace(0, np.pi, b)
        x = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1), np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
        return x + r.normal(scale=noise, size=x.shape), None


def mlp(tanh):
    layers = [nn.Linear(2, 256), nn.LeakyReLU(), nn.Linear(256, 256), nn.LeakyReLU(), nn.Linear(256, 2)]
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class RealNVP(nn.Module):
    def __init__(self, n_layers=6):
        super().__init__()
        self.register_buffer("mask", torch.tensor([[0, 1], [1, 0]] * (n_layers // 2), dtype=torch.float32))
        self.s = nn.ModuleList([mlp(True) for _ in range(n_layers)])
        self.t = nn.ModuleList([mlp(False) for _ in range(n_layers)])

    def g(self, z):
        x = z
        for i in range(len(self.t)):
            m = self.mask[i]
            x_ = x * m
            s = self.s[i](x_) * (1 - m)
            t = self.t[i](x_) * (1 - m)
            x = x_ + (1 - m) * (x * torch.exp(s) + t)
        return x

    def log_prob(self, x):
        logdet = x.new_zeros(x.shape[0])
        z = x
        for i in reversed(range(len(self.t))):
            m = self.mask[i]
            z_ = m * z
            s = self.s[i](z_) * (1 - m)
            t = self.t[i](z_) * (1 - m)
            z = (1 - m) * (z - t) * torch.exp(-s) + z_
            logdet = logdet - s.sum(dim=1)
        return -0.5 * (z ** 2).sum(1) - math.log(2 * math.pi) + logdet

    def sample(self, n):
        return self.g(torch.randn(n, 2))


class MaskedLinear(nn.Linear):
    def __init__(self, i, o, mask):
        super().__init__(i, o)
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    def __init__(self, d, hidden=(256, 256)):
        super().__init__()
        self.d = d
        deg_in = torch.arange(1, d + 1)
        degs = [deg_in]
        for h in hidden:
            degs.append(torch.arange(h) % max(1, d - 1) + 1)
        layers = []
        for k, h in enumerate(hidden):
            layers += [MaskedLinear(degs[k].numel(), h, degs[k + 1][:, None] >= degs[k][None, :]), nn.ReLU()]
        out_mask = deg_in[:, None] > degs[-1][None, :]
        layers.append(MaskedLinear(hidden[-1], 2 * d, torch.cat([out_mask, out_mask], 0)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # one pass: data -> noise (MAF density, IAF sampling)
        mu, alpha = self.net(x).chunk(2, dim=1)
        return (x - mu) * torch.exp(-alpha), -alpha.sum(dim=1)

    def inverse(self, u):  # d passes: noise -> data (MAF sampling)
        x = torch.zeros_like(u)
        for i in range(self.d):
            mu, alpha = self.net(x).chunk(2, dim=1)
            x[:, i] = u[:, i] * torch.exp(alpha[:, i]) + mu[:, i]
        return x


class MAF(nn.Module):
    def __init__(self, d=2, n_layers=5, hidden=(256, 256)):
        super().__init__()
        self.d = d
        self.layers = nn.ModuleList([MADE(d, hidden) for _ in range(n_layers)])

    def log_prob(self, x):
        logdet = x.new_zeros(x.shape[0])
        for k, m in enumerate(self.layers):
            if k > 0:
                x = x.flip(1)
            x, ld = m(x)
            logdet = logdet + ld
        return -0.5 * (x ** 2).sum(1) - 0.5 * self.d * math.log(2 * math.pi) + logdet

    def sample(self, n):
        x = torch.randn(n, self.d)
        for k in reversed(range(len(self.layers))):
            x = self.layers[k].inverse(x)
            if k > 0:
                x = x.flip(1)
        return x

    def sample_iaf(self, n):  # IAF = the MADEs used in their one-pass direction for sampling
        x = torch.randn(n, self.d)
        for k, m in enumerate(self.layers):
            if k > 0:
                x = x.flip(1)
            x, _ = m(x)
        return x


def step_ms(model, b, steps, device="cpu"):
    """ms per training step (Adam, a fixed batch of b moons): the median of
    three timed runs of `steps`, after 5 warm-up steps; on a GPU each run
    ends with a synchronisation."""
    x = torch.from_numpy(make_moons(b, noise=0.05, random_state=3)[0].astype(np.float32)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)

    def run(k):
        for _ in range(k):
            loss = -model.log_prob(x).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    run(5)
    sync()
    t = []
    for _ in range(3):
        t0 = time.perf_counter()
        run(steps)
        sync()
        t.append((time.perf_counter() - t0) * 1000 / steps)
    return sorted(t)[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--part", choices=("steps", "passes"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    blas = next((l.split()[-1] for l in open("/proc/self/maps") if "libblas.so" in l or "libopenblas" in l), "?")
    core = "?"
    try:
        lib = ctypes.CDLL(blas)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        pass
    print(f"INFO torch {torch.__version__} threads {torch.get_num_threads()} blas {blas} kernels {core}", flush=True)
    if a.part != "passes":
        print(f"RESULT realnvp_step_b100 {step_ms(RealNVP(), 100, 200):.4f} ms", flush=True)
        print(f"RESULT realnvp_step_b1024 {step_ms(RealNVP(), 1024, 30):.4f} ms", flush=True)
        print(f"RESULT maf_step_b100 {step_ms(MAF(), 100, 200):.4f} ms", flush=True)
        print(f"RESULT maf_step_b1024 {step_ms(MAF(), 1024, 30):.4f} ms", flush=True)
    if a.part == "steps":
        print(f"RESULT peak_rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB", flush=True)
        return
    n, chunk = 1_000_000, 2048
    x = torch.from_numpy(make_moons(n, noise=0.05, random_state=4)[0].astype(np.float32))
    with torch.no_grad():
        for name, model in (("realnvp", RealNVP()), ("maf", MAF())):
            t0 = time.perf_counter()
            for i in range(0, n, chunk):
                model.log_prob(x[i:i + chunk])
            print(f"RESULT {name}_logprob_1M {time.perf_counter() - t0:.4f} s", flush=True)
            t0 = time.perf_counter()
            for i in range(0, n, chunk):
                model.sample(min(chunk, n - i))
            print(f"RESULT {name}_sample_1M {time.perf_counter() - t0:.4f} s", flush=True)
        model = MAF()
        t0 = time.perf_counter()
        for i in range(0, n, chunk):
            model.sample_iaf(min(chunk, n - i))
        print(f"RESULT iaf_sample_1M {time.perf_counter() - t0:.4f} s", flush=True)
    print(f"RESULT peak_rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()

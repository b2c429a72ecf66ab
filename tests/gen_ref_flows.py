#!/usr/bin/python3
"""Reference tensors for tests/test_torch_flows.c: the PyTorch reference
RealNVP (dataflowr) and MAF (../shared/reference) at hidden width 16, their
weights mapped to nflow's parameter layout, log_prob of 64 points and the
gradient of the mean NLL.  Raw little-endian float32 files in tests/data/.

Run with Debian's python3-torch: /usr/bin/python3 tests/gen_ref_flows.py
"""
import importlib.util
import os
import sys

import numpy as np
import torch

ref = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference", "")


def load(name):
    spec = importlib.util.spec_from_file_location(name, ref + name + ".py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


H = 16
torch.manual_seed(3)
x = torch.randn(64, 2) * torch.tensor([0.9, 0.5]) + torch.tensor([0.5, 0.2])

# RealNVP: reference architecture with width H.
rn = load("torch_realnvp_moons")
from torch import nn  # noqa: E402


def mlp(tanh):
    layers = [nn.Linear(2, H), nn.LeakyReLU(), nn.Linear(H, H), nn.LeakyReLU(), nn.Linear(H, 2)]
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


rn.mlp = mlp
flow = rn.RealNVP()
loss = -flow.log_prob(x).mean()
loss.backward()


def coupling_params(seq, m, grad):
    """nflow layout of one net: W0[:, cond], b0, W1, b1, W2[trans, :], b2[trans]."""
    cond = [j for j in range(2) if m[j] == 1]
    trans = [j for j in range(2) if m[j] == 0]
    lin = [l for l in seq if isinstance(l, nn.Linear)]
    get = (lambda t: t.grad) if grad else (lambda t: t.data)
    out = [get(lin[0].weight)[:, cond], get(lin[0].bias), get(lin[1].weight), get(lin[1].bias),
           get(lin[2].weight)[trans, :], get(lin[2].bias)[trans]]
    return torch.cat([t.reshape(-1) for t in out])


def realnvp_vec(grad):
    parts = []
    for i in range(len(flow.t)):  # application order of the forward pass
        m = flow.mask[i]
        parts += [coupling_params(flow.s[i], m, grad), coupling_params(flow.t[i], m, grad)]
    return torch.cat(parts).detach().numpy().astype("<f4")


realnvp_vec(False).tofile("tests/data/realnvp_params.f32")
realnvp_vec(True).tofile("tests/data/realnvp_grad.f32")
flow.log_prob(x).detach().numpy().astype("<f4").tofile("tests/data/realnvp_logp.f32")

# MAF: 2 MADE layers of width H, reversed between them.
mf = load("torch_maf_moons")
maf = mf.MAF(d=2, n_layers=2, hidden=(H, H))
loss = -maf.log_prob(x).mean()
loss.backward()


def maf_vec(grad):
    parts = []
    for layer in maf.layers:  # density order: first applied to the data first
        for l in layer.net:
            if isinstance(l, nn.Linear):
                w = l.weight.grad if grad else l.weight.data * l.mask
                b = l.bias.grad if grad else l.bias.data
                parts += [w.reshape(-1), b.reshape(-1)]
    return torch.cat(parts).detach().numpy().astype("<f4")


maf_vec(False).tofile("tests/data/maf_params.f32")
maf_vec(True).tofile("tests/data/maf_grad.f32")
maf.log_prob(x).detach().numpy().astype("<f4").tofile("tests/data/maf_logp.f32")
x.numpy().astype("<f4").tofile("tests/data/points.f32")
print("wrote tests/data/*.f32")

#!/usr/bin/python3
"""A side-by-side reference for docs/tabular.md: nflows' affine MAF, rewritten in
plain PyTorch (nflows itself is not packaged for Debian; PyTorch is, python3-torch).

It mirrors nflows 0.14's `MaskedAutoregressiveFlow(features, hidden_features=128,
num_layers=5, num_blocks_per_layer=2)`: per layer a ReversePermutation, then a
MaskedAffineAutoregressiveTransform whose MADE is an initial masked linear layer,
two masked residual blocks (relu, linear, relu, linear, the block's last layer
drawn from U(-1e-3, 1e-3)) and a masked output layer giving (unconstrained scale,
shift) per feature, interleaved; density direction z = x * s + shift with
s = softplus(u) + 1e-3; standard normal base.  Degrees as nflows: inputs 1..D,
hidden units (k mod (D - 1)) + 1, outputs see strictly smaller degrees.

Protocol (the same as bench/tabular.sh gives nflow): a standard scaler fitted to
the training rows (likelihoods reported in the data's units), Adam at 1e-3,
batches of 100 (reshuffled each epoch), at most 500 epochs, early stopping with
patience 20 on the validation NLL, the best epoch's parameters restored.

usage: nflows_maf.py TRAIN.csv VAL.csv TEST.csv SEED  -> prints "test NLL: <nats>"
"""
import sys
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

torch.set_num_threads(1)


class MaskedLinear(nn.Linear):
    def __init__(self, in_deg, out_deg, output):
        super().__init__(len(in_deg), len(out_deg))
        m = (out_deg[:, None] > in_deg) if output else (out_deg[:, None] >= in_deg)
        self.register_buffer("mask", m.float())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class ResBlock(nn.Module):
    def __init__(self, deg):
        super().__init__()
        self.l0, self.l1 = MaskedLinear(deg, deg, False), MaskedLinear(deg, deg, False)
        nn.init.uniform_(self.l1.weight, -1e-3, 1e-3)
        nn.init.uniform_(self.l1.bias, -1e-3, 1e-3)

    def forward(self, x):
        return x + self.l1(F.relu(self.l0(F.relu(x))))


class AffineMADE(nn.Module):
    def __init__(self, d, hidden, blocks):
        super().__init__()
        din = torch.arange(1, d + 1)
        dh = torch.arange(hidden) % max(1, d - 1) + min(1, d - 1)
        dout = din.repeat_interleave(2)  # (scale_j, shift_j) interleaved, as nflows' view(-1, d, 2)
        self.first = MaskedLinear(din, dh, False)
        self.blocks = nn.ModuleList([ResBlock(dh) for _ in range(blocks)])
        self.last = MaskedLinear(dh, dout, True)
        self.d = d

    def forward(self, x):  # density direction: returns z and log|dz/dx|
        h = self.first(x)
        for b in self.blocks:
            h = b(h)
        p = self.last(h).view(-1, self.d, 2)
        s = F.softplus(p[..., 0]) + 1e-3
        return x * s + p[..., 1], torch.log(s).sum(1)


class MAF(nn.Module):
    def __init__(self, d, layers=5, hidden=128, blocks=2):
        super().__init__()
        self.layers = nn.ModuleList([AffineMADE(d, hidden, blocks) for _ in range(layers)])

    def log_prob(self, x):
        ld = torch.zeros(x.shape[0], dtype=x.dtype)
        for m in self.layers:
            x = x.flip(1)  # ReversePermutation before each MADE
            x, l = m(x)
            ld = ld + l
        return -0.5 * (x * x).sum(1) - 0.5 * x.shape[1] * np.log(2 * np.pi) + ld


def load(p):
    return np.loadtxt(p, delimiter=",", skiprows=1, ndmin=2)


def main():
    tr, va, te = (load(p) for p in sys.argv[1:4])
    seed = int(sys.argv[4])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mu, sd = tr.mean(0), tr.std(0)
    logdet = -np.log(sd).sum()  # the scaler's log-Jacobian: likelihoods in the data's units
    T = [torch.tensor((a - mu) / sd, dtype=torch.float32) for a in (tr, va, te)]
    model = MAF(tr.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    best, best_state, wait = np.inf, None, 0
    for epoch in range(500):
        model.train()
        for i in np.array_split(rng.permutation(len(tr)), int(np.ceil(len(tr) / 100))):
            loss = -model.log_prob(T[0][i]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            v = -model.log_prob(T[1]).mean().item()
        if v < best:
            best, wait = v, 0
            best_state = {k: t.clone() for k, t in model.state_dict().items()}
        else:
            wait += 1
            if wait >= 20:
                break
    model.load_state_dict(best_state)
    with torch.no_grad():
        nll = -(model.log_prob(T[2]).double().mean().item() + logdet)
    print(f"test NLL: {nll:.4f} nats (epochs {epoch + 1}, best validation NLL {best - logdet:.4f})")


if __name__ == "__main__":
    main()

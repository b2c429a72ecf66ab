#!/usr/bin/python3
"""Turns bench/run's RESULT lines into a table of times and ratios and writes
docs/performance.md (with the machine it ran on and the peak computation)."""
import os
import platform
import statistics
import subprocess
import sys
import time

runs = {}  # (kernels, lib, threads, name) -> {round: value}; round 0: the passes' one run
units = {}
info = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 8 and p[0] == "RESULT":  # RESULT kernels lib threads round name value unit
        key = (p[1], p[2], int(p[3]), p[5])
        runs.setdefault(key, {})[int(p[4])] = float(p[6])
        units[p[5]] = p[7]
    elif p[:1] == ["INFO"] and len(p) > 2:
        info.setdefault(p[1], []).append(" ".join(p[2:]))
# Times: the median over rounds.  Memory: the largest peak of any of the
# library's processes (the steps' rounds and the passes' run).
res = {k: ((max(v.values()) if k[3] == "peak_rss" else statistics.median(v.values())), units[k[3]])
       for k, v in runs.items()}


def round_ratios(k, t, n):
    """PyTorch / nflow per round (both ran back to back in each round)."""
    a, b = runs.get((k, "nflow", t, n), {}), runs.get((k, "torch", t, n), {})
    return [b[r] / a[r] for r in sorted(a) if r in b and r > 0]

kernels = list(dict.fromkeys(k[0] for k in res))
threads = sorted({k[2] for k in res})
names = ["realnvp_step_b100", "realnvp_step_b1024", "maf_step_b100", "maf_step_b1024", "realnvp_logprob_1M",
         "realnvp_sample_1M", "maf_logprob_1M", "maf_sample_1M", "iaf_sample_1M", "peak_rss"]
# Useful FLOPs per point of one log_prob (2 per multiply-add, networks only):
# RealNVP: 12 nets of 1x256 + 256x256 + 256x1 MACs; MAF: 5 MADEs of 2x256 + 256x256 + 256x4.
FLOP = {"realnvp": 2 * 12 * (256 + 256 * 256 + 256), "maf": 2 * 5 * (2 * 256 + 256 * 256 + 256 * 4)}

cpu = {}
for line in open("/proc/cpuinfo"):
    k, _, v = line.partition(":")
    cpu.setdefault(k.strip(), v.strip())
flags = cpu.get("flags", "").split()
ncores = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
mhz = float(cpu.get("cpu MHz", "0"))
family = int(cpu.get("cpu family", "0"))
width = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
# AMD Zen 4 (family 25) runs 512-bit FMAs on 256-bit units; Zen 5 (26) and Intel
# server cores with AVX-512 have full-width units.  Two FMA pipes per core.
eff = 8 if (family == 25 and width == 16) else width
peak = ncores * mhz / 1000 * eff * 2 * 2  # cores x GHz x lanes x 2 FMA pipes x 2 FLOP


def section(k):
    lines = ["| benchmark | threads | nflow | PyTorch | PyTorch / nflow | per-round ratios |",
             "|---|---|---|---|---|---|"]
    for t in threads:
        for n in names:
            a, b = res.get((k, "nflow", t, n)), res.get((k, "torch", t, n))
            if not a or not b:
                continue
            if n == "peak_rss":
                lines.append(f"| {n} | {t} | {a[0]:.0f} {a[1]} | {b[0]:.0f} {b[1]} | nflow uses {a[0] / b[0]:.2f}x "
                             "PyTorch's memory | |")
            else:
                rr = round_ratios(k, t, n)
                spread = f"{min(rr):.2f}x - {max(rr):.2f}x ({len(rr)} rounds)" if len(rr) > 1 else "one run"
                lines.append(f"| {n} | {t} | {a[0]:.4g} {a[1]} | {b[0]:.4g} {b[1]} | **{b[0] / a[0]:.2f}x** | {spread} |")
    lines += ["", "| large-batch log_prob | threads | nflow GFLOP/s | PyTorch GFLOP/s | sgemm 10000x256x256 GFLOP/s "
              "| nflow / sgemm | nflow / FP32 peak of those cores |", "|---|---|---|---|---|---|---|"]
    for t in threads:
        sg = res.get((k, "nflow", t, "sgemm_10000x256x256"))
        for m in ("realnvp", "maf"):
            a, b = res.get((k, "nflow", t, f"{m}_logprob_1M")), res.get((k, "torch", t, f"{m}_logprob_1M"))
            if not a or not b or not sg:
                continue
            ga, gb = FLOP[m] * 1e6 / a[0] / 1e9, FLOP[m] * 1e6 / b[0] / 1e9
            lines.append(f"| {m} log_prob, 1M points | {t} | {ga:.1f} | {gb:.1f} | {sg[0]:.1f} | {100 * ga / sg[0]:.0f}% | "
                         f"{100 * ga / (peak * t / ncores):.0f}% |")
    title = ("OpenBLAS kernels as the environment gives them" if k == "env"
             else f"OpenBLAS kernels {k} (OPENBLAS_CORETYPE={k} for both processes)")
    return f"## {title}\n\n" + "; ".join(dict.fromkeys(info.get(k, []))) + "\n\n" + "\n".join(lines) + "\n"


sections = [section(k) for k in kernels]
print("\n".join(sections))

with open(sys.argv[2], "w") as f:
    f.write("# Performance: nflow against PyTorch\n\n")
    f.write("Written by `bench/run` (or `make bench`), which runs `build/bench/nflow_bench` and "
            "`bench/torch_bench.py` on identical configurations one after the other in the same run, at 1 and 2 "
            "threads, and reports ratios PyTorch time / nflow time (higher is better for nflow). Training steps run "
            "in rounds, nflow then PyTorch in each (each time the median of 3 timed runs), so that both see the "
            "same moments of a noisy machine: the tables give the median over the rounds, the ratio of those "
            "medians and the range of the per-round ratios; the 1M-point passes run once; peak memory is the "
            "largest of each library's processes; every round's numbers are in `docs/performance_raw.txt`. "
            "Threads: nflow's "
            "training steps split each batch over T threads of its own (`nf_train_opts.threads`) with "
            "single-threaded OpenBLAS inside them, and its 1M-point passes split their chunks of 2048 rows over T threads the same way (`nf_flow_set_threads`); PyTorch runs with "
            "torch.set_num_threads(T) on Debian's OpenMP OpenBLAS (with the default pthread OpenBLAS its 2-thread "
            "training step is about 4x slower here through oversubscription, which would flatter nflow).\n\n")
    f.write(f"Machine: {cpu.get('model name', '?')} (cpu family {family}), {ncores} cores at {mhz:.0f} MHz, "
            f"{platform.platform()}; OPENBLAS_CORETYPE in the environment: {os.environ.get('OPENBLAS_CORETYPE', 'unset')}. "
            f"Run on {time.strftime('%Y-%m-%d %H:%M')}.\n\n")
    f.write("Configurations: dataflowr's RealNVP (6 couplings, s/t nets 2-256-256-2) and a 5-layer MAF "
            "(MADE [256,256], ReLU, reversed order between layers), d = 2; training steps (forward, backward, "
            "Adam) on a fixed batch of 100 or 1024; log_prob and sampling of 1,000,000 points in chunks of 2048 "
            "(both libraries); MAF sampling takes d = 2 passes per layer in PyTorch (the reference program's loop) and one network pass plus one without the network in nflow (the first coordinate's parameters are the MADE's output biases), IAF sampling one in both.\n\n")
    f.write("Each section below is one pass of the whole benchmark with one set of OpenBLAS kernels, the same for "
            "both libraries: the set the environment gives, and, where this CPU runs a faster set than that "
            "(`nf_blas_info`, `nflow --version`), that set too.\n\n")
    f.write("\n".join(sections) + "\n")
    f.write(f"GFLOP/s count the networks' useful multiply-adds (2 FLOP each): {FLOP['realnvp'] / 1e6:.3f} MFLOP per "
            f"RealNVP point, {FLOP['maf'] / 1e6:.3f} MFLOP per MAF point, the same count for both libraries. "
            f"FP32 peak = cores x clock x lanes x 2 FMA pipes x 2 FLOP = {ncores} x {mhz / 1000:.3f} GHz x {eff} x 2 x 2 "
            f"= {peak:.0f} GFLOP/s for the machine ({eff} float lanes per FMA: {'AVX-512' if width == 16 else 'AVX2'}"
            f"{', executed on 256-bit units (Zen 4)' if eff != width else ''}). The clock is the one /proc/cpuinfo "
            "reports; on a virtual machine that is the nominal clock, and a core under load can run faster (a "
            "fraction above 100% says so: the measured single-core sgemm then exceeds the nominal peak). The "
            "measured sgemm rate of each kernel set is the practical roofline for that set.\n")
    # the hand-written reading of the numbers (profiles, what is in the way), kept across runs
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(notes):
        f.write("\n" + open(notes).read())
print(f"\nwrote {sys.argv[2]}")

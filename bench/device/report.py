#!/usr/bin/env python3
"""bench/device/run's table: reads its RESULT lines
   RESULT <where> <library> <name> <value> <unit>
(where: gpu, cpuT) and prints markdown: the GPU table (nflow against PyTorch
eager and CUDA graph, ratios, the issue's targets), the CPU table (1-16
threads, against PyTorch's CPU), and each pass's share of the matrix-product
rate.  Standard library only.

Usage: python3 bench/device/report.py build-cuda/bench/device_results.txt
"""
import re
import sys

# multiply-adds per point of the products (d = 2): RealNVP, 6 couplings of
# two 1-256-256-1 nets; MAF, 5 MADEs 2-256-256-4
FLOP = {"realnvp": 6 * 2 * 2 * (1 * 256 + 256 * 256 + 256 * 1), "maf": 5 * 2 * (2 * 256 + 256 * 256 + 256 * 4)}
GPU_TARGET_MS = {"realnvp_step_b100": 0.40, "realnvp_step_b16384": 2.5, "maf_step_b100": 0.25,
                 "realnvp_logprob_2p20": 30, "maf_logprob_2p20": 12, "realnvp_sample_2p20": 30, "maf_sample_2p20": 12}
AUTO_ROWS = 32  # NF_SPLIT_AUTO_ROWS (include/nflow.h)
CPU16_TARGET_MS = {"realnvp_step_b100": 1.0, "realnvp_step_b1024": 5.0, "maf_step_b100": 0.5}


def load(path):
    r, info = {}, []
    for line in open(path):
        f = line.split()
        if len(f) >= 6 and f[0] == "RESULT":
            v = float(f[4]) * (1000 if f[5] == "s" else 1)  # times in ms
            r[(f[1], f[2], f[3])] = v
        elif f and f[0] == "INFO":
            info.append(line.strip()[5:])
    return r, info


def fmt(v, unit="ms"):
    if v is None:
        return "-"
    return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def main():
    r, info = load(sys.argv[1])
    print("## GPU: nflow (--device cuda) against PyTorch on the same GPU\n")
    for i in info:
        print(f"- {i}")
    print("\n| pass | nflow | PyTorch eager | PyTorch CUDA graph | eager / nflow | graph / nflow | target | met |")
    print("|---|---|---|---|---|---|---|---|")
    names = ["realnvp_step_b100", "realnvp_step_b1024", "realnvp_step_b16384", "maf_step_b100", "maf_step_b1024",
             "realnvp_logprob_2p20", "maf_logprob_2p20", "realnvp_sample_2p20", "maf_sample_2p20"]
    sgemm = r.get(("gpu", "torch", "gpu_sgemm_8192"))
    for n in names:
        nf = r.get(("gpu", "nflow", n))
        if "_step_" in n:
            ea, gr = r.get(("gpu", "torch", n + "_eager")), r.get(("gpu", "torch", n + "_graph"))
        else:
            ea, gr = r.get(("gpu", "torch", n)), None
        t = GPU_TARGET_MS.get(n)
        met = "-" if t is None or nf is None else ("yes" if nf <= t else f"no ({nf / t:.1f}x over)")
        print(f"| {n} | {fmt(nf)} | {fmt(ea)} | {fmt(gr)} | {ratio(ea, nf)} | {ratio(gr, nf)} | "
              f"{fmt(t) if t else '-'} | {met} |")
    if sgemm:
        print(f"\nThe GPU's fp32 sgemm (8192^3, TF32 off): {sgemm:.0f} GFLOP/s.  Each pass's share of it:\n")
        for n in names:
            nf, m = r.get(("gpu", "nflow", n)), re.match(r"(realnvp|maf)_(step|logprob|sample)_(b(\d+)|2p20)", n)
            if not nf or not m:
                continue
            pts = int(m.group(4)) if m.group(4) else 1 << 20
            mult = 3 if m.group(2) == "step" else 1  # a step: forward and two backward products
            if m.group(1) == "maf" and m.group(2) == "sample":
                mult = 2  # d = 2 passes
            rate = FLOP[m.group(1)] * pts * mult / (nf / 1000) / 1e9
            print(f"- {n}: {rate:.0f} GFLOP/s, {100 * rate / sgemm:.1f}% of sgemm")
    threads = sorted({int(k[0][3:]) for k in r if k[0].startswith("cpu")})
    if threads:
        print("\n## CPU: nflow against PyTorch's CPU, by threads\n")
        print("nflow shares a step among its threads by rows or by columns (`--split`); "
              f"auto takes columns below {AUTO_ROWS} rows per thread.\n")
        print("| step | who | " + " | ".join(f"{t} thr" for t in threads) + " | target (16) |")
        print("|---|---|" + "---|" * (len(threads) + 1))
        for n in ["realnvp_step_b100", "realnvp_step_b1024", "maf_step_b100", "maf_step_b1024"]:
            batch = int(n.rsplit("_b", 1)[1])
            auto = {t: "columns" if t > 1 and batch < AUTO_ROWS * t else "rows" for t in threads}
            for who in ("nflow-rows", "nflow-columns", "nflow-auto", "torch"):
                cells = []
                for t in threads:
                    lib = f"nflow-{auto[t]}" if who == "nflow-auto" else who
                    a, b = r.get((f"cpu{t}", lib, n)), r.get((f"cpu{t}", "torch", n))
                    cells.append(fmt(a) + ("" if who == "torch" or not a or not b else f" ({ratio(b, a)})"))
                tg = CPU16_TARGET_MS.get(n)
                nf16 = r.get(("cpu16", f"nflow-{auto.get(16, 'rows')}", n))
                tgs = "-" if tg is None or who != "nflow-auto" else f"{fmt(tg)}" + (
                    "" if nf16 is None else (" met" if nf16 <= tg else f" missed ({nf16 / tg:.1f}x)"))
                print(f"| {n} | {who} | " + " | ".join(cells) + f" | {tgs} |")
        print("\n(nflow's cells: time (PyTorch's time / nflow's); auto: the split the library picks.)")
        rows = [(m, r.get(("cpu1", "nflow", f"realnvp_step_rows{m}")), r.get(("cpu1", "nflow", f"maf_step_rows{m}")))
                for m in (6, 12, 25, 50, 100, 200)]
        if any(a for _, a, _ in rows):
            print("\nOne thread's step by batch rows (a row-split step's slot costs at least the smallest):\n")
            print("| rows | " + " | ".join(str(m) for m, _, _ in rows) + " |")
            print("|---|" + "---|" * len(rows))
            print("| RealNVP | " + " | ".join(fmt(a) for _, a, _ in rows) + " |")
            print("| MAF | " + " | ".join(fmt(b) for _, _, b in rows) + " |")
        one = r.get(("cpu1", "nflow", "sgemm_10000x256x256"))
        lp = r.get(("cpu16", "nflow", "realnvp_logprob_2p20"))
        if one and lp:
            rate = FLOP["realnvp"] * (1 << 20) / (lp / 1000) / 1e9
            print(f"\nRealNVP log_prob of 2^20 points at 16 threads: {lp:.0f} ms, {rate:.0f} GFLOP/s = "
                  f"{100 * rate / (16 * one):.0f}% of 16 x the one-thread sgemm rate ({one:.0f} GFLOP/s; target 80%).")


if __name__ == "__main__":
    main()

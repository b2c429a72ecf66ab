#!/bin/bash
# The affine MAF's scale forms and initialisations (plain MADE, residual=0) on the two real tables, the
# protocol of docs/tabular.md ("The affine MAF's defaults, measured"): prints one
# line per run with its test NLL; the doc's table holds the mean and standard error
# over seeds 1-5 of the test log-likelihood (-NLL).  About 5 minutes on 2 cores.
set -u
N=${NFLOW:-build/nflow}
for data in digits breast_cancer; do
  dq=; [ $data = digits ] && dq="--dequantize uniform"
  for seed in 1 2 3 4 5; do for sc in unbounded tanh sigmoid; do for zl in 0 1; do
    out=$($N train --data examples/data/$data.csv --drop label $dq --standardize --val-split 0.15 --test-split 0.15 \
       --patience 20 --epochs 500 --batch 100 --lr 1e-3 --seed $seed --quiet --grid 20 \
       --flow "maf(layers=5, hidden=[128,128], activation=relu, scale=$sc, zero_last=$zl, residual=0)" \
       --out "${TMPDIR:-/tmp}/nflow_tabular_maf" 2>&1)
    echo "$data seed=$seed scale=$sc zero_last=$zl :: $(echo "$out" | grep -E 'test NLL' | tr '\n' ' ')"
  done; done; done
done

#!/bin/sh
# tests/bench_train.sh LOWBIT_BIN: `make bench`, training part: `lowbit train --bench` on each zoo
# config of TRAIN_CONFIGS (default the largest, gen/zoo/zoo-15m.conf), with each thread count of
# TRAIN_THREADS (default 1 and every core): TRAIN_STEPS timed optimizer steps (default 3) after
# one warm-up step, on the zoo's corpus. tokens/s counts trained tokens (batch x ctx per step);
# GFLOP/s uses 6 x (matrix parameters, output projection included) + the attention's
# 6 x layers x ctx x dim per token (eval/train.h train_flops_per_token); "% of peak" divides by
# the fp32 FMA peak measured in the same process (kernels_fma_peak_gflops), as tests/bench.sh
# does for the forward pass. OMP_WAIT_POLICY=passive, as make zoo runs (libgomp's spinning
# collapses on a shared machine). Output: a markdown table, also in out/bench/train.md.
set -e
BIN=${1:-out/lowbit}
DATA=${LOWBIT_DATA:-../shared/data}
TRAIN_CONFIGS=${TRAIN_CONFIGS:-gen/zoo/zoo-15m.conf}
TRAIN_THREADS=${TRAIN_THREADS:-"1 $(nproc)"}
TRAIN_STEPS=${TRAIN_STEPS:-3}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
corpus=$DATA/datasets/tinystories/train/tinystories_sample.txt
tok=$DATA/tokenizers/tok512.bin
for f in "$corpus" "$tok"; do
    [ -r "$f" ] || { echo "bench: missing data file $f (set LOWBIT_DATA)" >&2; exit 1; }
done
mkdir -p out/bench
{
    echo
    echo "### Training throughput (lowbit train --bench $TRAIN_STEPS)"
    echo
    echo "| config | params | threads | tokens/s | GFLOP/s | FMA peak GFLOP/s | % of peak |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for c in $TRAIN_CONFIGS; do
        for t in $TRAIN_THREADS; do
            out=$("$BIN" train --config "$c" --corpus "$corpus" --tokenizer "$tok" \
                  --bench "$TRAIN_STEPS" --threads "$t") || { echo "bench: lowbit train --bench failed on $c" >&2; exit 1; }
            echo "$out" | awk -v c="$(basename "$c" .conf)" -v t="$t" '
                /params,/ { p = $3 }
                /tokens\/s/ { printf "| %s | %s | %s | %s | %s | %s | %s |\n", c, p, t, $3, $5, $11, $13 }'
        done
    done
} | tee out/bench/train.md

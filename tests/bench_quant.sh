#!/bin/sh
# tests/bench_quant.sh LOWBIT_BIN: `make bench`, second part: what quantizing costs, per method.
#
# For each recipe of QUANT_RECIPES (rows of gen/recipes.csv, one per algorithm) `lowbit quant
# --recipe ID` runs on two models (QUANT_MODELS, default both), and /usr/bin/time measures the
# whole command: wall seconds, CPU seconds (user + system, all threads: the figure a loaded machine
# disturbs least) and peak resident memory (maximum RSS), with THREADS_Q threads (default: every
# core):
#   - stories260K ($LOWBIT_DATA/models/stories260K.gguf): the recipe exactly as the report runs it;
#   - rand-110m: the random stories110M-shape model bench.sh writes (out/bench/models/
#     rand-110m-f32.gguf; written here when missing), 134M parameters, llama SPM vocabulary. The
#     calibrated recipes run there with fewer calibration windows (QUANT_110M_NSAMPLES, default 16,
#     instead of the recipe's 128, same seqlen) and AutoRound with fewer iterations
#     (QUANT_110M_ITERS, default 20, instead of 200), so that the part finishes in minutes: the row
#     says so, and the "full recipe (est.)" column scales the measured time linearly to the recipe's
#     own windows / iterations (the calibration passes and the SignRound steps are linear in them;
#     the per-layer solves are not, so the estimate is an upper bound for GPTQ/AWQ). Only what was
#     measured is marked measured.
# Beside each method: the reference implementation's published cost (REFERENCE.md and the
# projects' own docs), GPU figures for models 50-500x larger, to place ours, not to rank.
# Output: a markdown table on stdout, also in out/bench/quant.md; logs in out/bench/quant/.
set -e
BIN=${1:-out/lowbit}
DATA=${LOWBIT_DATA:-../shared/data}
RECIPES=${RECIPES:-gen/recipes.csv}
QUANT_RECIPES=${QUANT_RECIPES:-"rtn-w4g128 bnb-nf4 gguf-q4_k_m gptq-w4g128 awq-w4g64 autoround-w4g128 aqlm-2x8g8"}
# AQLM on rand-110m is left out by default: its beam search and block fine-tuning took 1341 s
# (22 min, 1124 CPU-s, 2 threads, 16 windows) on this 2-core machine, shared; QUANT_110M_RECIPES=
# "$QUANT_RECIPES" runs it
QUANT_110M_RECIPES=${QUANT_110M_RECIPES:-$(echo "$QUANT_RECIPES" | tr ' ' '\n' | grep -v '^aqlm' | tr '\n' ' ')}
QUANT_110M_NSAMPLES=${QUANT_110M_NSAMPLES:-16}
QUANT_110M_ITERS=${QUANT_110M_ITERS:-20}
THREADS_Q=${THREADS_Q:-$(nproc)}
QUANT_MODELS=${QUANT_MODELS:-"stories260K rand-110m"}
OUT=out/bench/quant
mkdir -p "$OUT"
die() { echo "bench: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no lowbit binary at $BIN (run make first)"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian package time; make deps installs it)"
S260=$DATA/models/stories260K.gguf
[ -f "$S260" ] || die "missing $S260 (set LOWBIT_DATA; see its MANIFEST.md)"
R110=out/bench/models/rand-110m-f32.gguf
if [ ! -f "$R110" ] && case " $QUANT_MODELS " in *" rand-110m "*) true ;; *) false ;; esac; then
    TOOLS=$DATA/../tools/llamacpp-peer
    [ -f "$TOOLS/gguf_random.py" ] || die "missing $TOOLS/gguf_random.py (the llama.cpp peer)"
    mkdir -p out/bench/models
    LOWBIT_DATA=$DATA /usr/bin/python3 "$TOOLS/gguf_random.py" --preset 110m --dtype f32 \
        -o "$R110.tmp" >&2 && mv "$R110.tmp" "$R110"
fi

# the recipes file for rand-110m: the same rows, calibration windows and AutoRound iterations cut
# (CSV edited with python's csv module and json, not by hand)
R110_RECIPES=$OUT/recipes-110m.csv
/usr/bin/python3 - "$RECIPES" "$R110_RECIPES" "$QUANT_110M_NSAMPLES" "$QUANT_110M_ITERS" <<'EOF'
import csv, json, sys
src, dst, ns, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = [r for r in csv.reader(open(src, newline='')) if r and not r[0].startswith('#')]
head, body = rows[0], rows[1:]
c = {k: i for i, k in enumerate(head)}
with open(dst, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(head)
    for r in body:
        if r[c['calib_set']]:
            r[c['calib_nsamples']] = str(min(ns, int(r[c['calib_nsamples']] or 128)))
        if r[c['algorithm']] == 'autoround':
            k = json.loads(r[c['knobs']]) if r[c['knobs']] else {}
            k['iters'] = min(iters, int(k.get('iters', 200)))
            r[c['knobs']] = json.dumps(k, sort_keys=True, separators=(',', ':'))
        w.writerow(r)
EOF

# a recipe's cell by column name
cell() { # file id column
    /usr/bin/python3 -c 'import csv,sys
rows=[r for r in csv.reader(open(sys.argv[1],newline="")) if r and not r[0].startswith("#")]
c={k:i for i,k in enumerate(rows[0])}
print(next((r[c[sys.argv[3]]] for r in rows[1:] if r[0]==sys.argv[2]),""))' "$1" "$2" "$3"
}

published() { # algorithm
    case $1 in
    gptq) echo "OPT-175B: ~4 GPU-hours, one A100 80GB (GPTQ paper, abstract)" ;;
    awq) echo "no figure found in the paper or AutoAWQ docs" ;;
    autoround) echo "Llama-3.1-8B W4G128: 12 min, 18 GB; Qwen2.5-0.5B: 6 min, 2.9 GB (auto-round docs/step_by_step.md: A100, Intel B60)" ;;
    aqlm) echo "Llama-2-7B: ~1 A100-day; 70B: 10-14 GPU-days (AQLM README, issues #28 #32 #36)" ;;
    rtn | bnb | gguf) echo "no calibration: seconds (data-free)" ;;
    *) echo "—" ;;
    esac
}

{
echo "## Quantization cost: lowbit quant --recipe, $THREADS_Q threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
echo "Load average when this part started: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)."
echo
printf '| model | recipe | algorithm | calibration | wall s | CPU s | peak RSS MiB | full recipe (est.) | reference implementation'"'"'s published cost |\n'
printf '|---|---|---|---|---:|---:|---:|---:|---|\n'
for model in $QUANT_MODELS; do
    case $model in
    stories260K) M=$S260; RF=$RECIPES ;;
    rand-110m) M=$R110; RF=$R110_RECIPES ;;
    *) die "QUANT_MODELS: unknown model '$model' (stories260K, rand-110m)" ;;
    esac
    ids=$QUANT_RECIPES
    [ $model = rand-110m ] && ids=$QUANT_110M_RECIPES
    for id in $QUANT_RECIPES; do
        case " $ids " in
        *" $id "*) ;;
        *) printf '| %s | %s | %s | not run (QUANT_110M_RECIPES) | — | — | — | — | %s |\n' "$model" "$id" \
               "$(cell "$RF" "$id" algorithm)" "$(published "$(cell "$RF" "$id" algorithm)")"
           continue ;;
        esac
        alg=$(cell "$RF" "$id" algorithm)
        [ -n "$alg" ] || die "recipe '$id' is not a row of $RF"
        ns=$(cell "$RF" "$id" calib_nsamples); sl=$(cell "$RF" "$id" calib_seqlen)
        ns_full=$(cell "$RECIPES" "$id" calib_nsamples)
        knobs=$(cell "$RF" "$id" knobs)
        calib="—"; scale=1
        if [ -n "$(cell "$RF" "$id" calib_set)" ]; then
            calib="${ns:-128} × ${sl:-2048}"
            scale=$(awk -v a="${ns_full:-128}" -v b="${ns:-128}" 'BEGIN { print a / b }')
        fi
        if [ "$alg" = autoround ]; then
            it=$(echo "$knobs" | /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read().strip(); print(json.loads(t).get("iters",200) if t else 200)')
            itf=$(cell "$RECIPES" "$id" knobs | /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read().strip(); print(json.loads(t).get("iters",200) if t else 200)')
            calib="$calib, $it iters"
            scale=$(awk -v s="$scale" -v a="$itf" -v b="$it" 'BEGIN { print s * a / b }')
        fi
        dst=$OUT/$model-$id
        rm -rf "$dst" "$dst.log"
        if ! /usr/bin/time -f '%e %M %U %S' -o "$dst.time" "$BIN" quant --model "$M" --recipe "$id" \
            --recipes "$RF" --threads "$THREADS_Q" -o "$dst" >"$dst.log" 2>&1; then
            tail -3 "$dst.log" >&2
            die "lowbit quant --recipe $id on $model failed (log: $dst.log)"
        fi
        read -r secs kb usr sys <"$dst.time"
        est="—"
        [ "$scale" != 1 ] && est=$(awk -v s="$secs" -v k="$scale" 'BEGIN { printf "%.0f s", s * k }')
        printf '| %s | %s | %s | %s | %.1f | %.1f | %.0f | %s | %s |\n' "$model" "$id" "$alg" \
            "$calib" "$secs" "$(awk -v u="$usr" -v s="$sys" 'BEGIN { print u + s }')" \
            "$(awk -v k="$kb" 'BEGIN { print k / 1024 }')" "$est" "$(published "$alg")"
        rm -rf "$dst"
    done
done
} | tee out/bench/quant.md

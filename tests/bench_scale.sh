#!/bin/sh
# tests/bench_scale.sh LOWBIT_BIN: `make bench-scale`, what lowbit costs on real model sizes.
#
# Models: random-weight Llama models of real shapes written by tests/gen_scale.py (see its header
# for the weights): tinyllama (TinyLlama-1.1B: 22 layers, dim 2048, hidden 5632, 32 / 4 heads) and
# llama2-7b (Llama-2-7B: 32 layers, dim 4096, hidden 11008, 32 heads), each as an F16 GGUF and as a
# Hugging Face directory (F16 safetensors, sharded at 5 GB), into out/scale/NAME.gguf and
# out/scale/NAME-hf/ (NAME = the shape, or SHAPE-Nl with SCALE_LAYERS=N), 2.2 GB and 13.5 GB per
# format. They are kept: the generator skips a model whose OUT.stamp matches (generator version,
# shape, layers, seed). Random weights make the costs real and the quality figures meaningless.
#
# Stages (SCALE_STAGES, in this order by default), each run under tests/memwatch:
#   fp16               lowbit ppl on the F16 GGUF
#   task               lowbit eval --tasks SCALE_TASK --limit SCALE_TASK_LIMIT on the F16 GGUF
#   rtn-w4g128 bnb-nf4 gptq-w4g128 awq-w4g64 autoround-w4g128 aqlm-2x8g8
#                      lowbit quant --recipe ID on the HF directory (SCALE_SRC=gguf: the GGUF)
#   gguf-q4_k_m        lowbit quant --recipe gguf-q4_k_m on the GGUF (no importance matrix)
#   gguf-q4_k_m-imatrix  lowbit imatrix (its own row) on the GGUF over SCALE_IMATRIX_CHUNKS chunks of
#                      512 tokens of the calibration text, then lowbit quant --ftype Q4_K_M --imatrix
#   after each quant stage (SCALE_EVAL_QUANT=1, default): lowbit ppl on its artifact, a row "ppl ID"
# The calibrated recipes run as gen/recipes.csv says (128 windows x 256 tokens of groups_merged,
# AutoRound 200 iterations) except where a knob cuts them: SCALE_NSAMPLES, SCALE_SEQLEN, SCALE_ITERS
# (every shape), and for llama2-7b SCALE_7B_NSAMPLES (default 16) and SCALE_7B_ITERS (default 20);
# the cut recipes are written to out/scale/work/recipes-NAME.csv (as tests/bench_quant.sh does) and
# the row's calibration column says what ran and what the recipe asks.
#
# Columns: wall s, CPU s (user + sys of the process and its children), peak RSS (ru_maxrss: counts
# the memory-mapped model pages too), peak anonymous memory (RssAnon of the process tree sampled
# every 50 ms: what the stage really allocates), the stage's FLOP count (formulas below), GFLOP/s =
# FLOP / wall s, and % of the fp32 FMA peak on the stage's thread count, measured in the same run
# (`lowbit bench --peak-only`, kernels_fma_peak_gflops) right before and right after the stage, the
# larger of the two (a neighbour's load during one of them does not inflate the %); CPU model and
# kernels ISA. Data-free stages (rtn, bnb, gguf) have no FLOP count: time and memory only.
#
# FLOP counts (multiply-add = 2 FLOP; norms, RoPE, softmax, SwiGLU and quantize/dequantize steps
# are not counted). From `lowbit info`: D dim, F hidden, L layers, V vocab, nh / nkv heads, hd head
# size, q = nh·hd, kvd = nkv·hd. P = D·q + 2·D·kvd + q·D + 3·D·F (a block's linear weights).
#   fwd(n, S)  = L·(2·P·n·S + 2·hd·nh·n·S·(S+1))   n windows of S tokens, causal attention (Q·Kᵀ, P·V)
#   fp16 / ppl: fwd(chunks, ctx) + 2·D·V·chunks·ctx   (lowbit computes every position's logits)
#   task (a lower bound, shown as ≥): 2·L·P·tokens_forward (tokens_forward from eval's JSON;
#               attention and the output head not counted)
#   imatrix:    fwd(chunks, 512)   (no output head)
#   gptq:       N = n·S calibration tokens, the 4 distinct linear inputs K ∈ {D (q,k,v), q (o),
#               D (gate,up), F (down)}:
#               fwd(n, S)                               one pass of every block (layer-wise driver)
#             + L·Σ_K 2·N·K²                            Gram XᵀX per distinct input
#             + L·Σ_K (4/3)·K³                          Cholesky, inverse, Cholesky of the inverse
#             + L·Σ_linears N_out·K²                    column loop (error propagation)
#   awq:        fwd(n, S) + L·Σ_groups min(direct, gram) + L·Σ_{v,o,gate,up,down} min(cdirect, cgram)
#               one pass of every block, as gptq (lowbit runs two: the float pass recording the
#               groups' inputs and the quantized pass giving block l+1's inputs, since AWQ searches
#               and folds every group's scales before any linear is rounded and so cannot advance
#               stage by stage as GPTQ's true-sequential pass does; the bound does not count the
#               second); scale search, n_grid = 20 candidates per group
#               ((q,k,v), (gate,up), (down), and (o) when kvd = q), each loss ‖X·(W − Ŵ)ᵀ‖² over
#               all N tokens, the cheaper of
#                 direct = 20·2·N·Σ_linears N_out·K          (the group's linears run per candidate)
#                 gram   = 2·N·K² + 20·2·Σ_linears N_out·K²  (tr(ΔW·XᵀX·ΔWᵀ) from the group's Gram)
#               (at 128 × 256 tokens gram is ~10x cheaper); clip search: 10 shrink steps over Ts =
#               min(N, 512) sampled tokens per group of g = 64 columns, the cheaper of
#                 cdirect = 10·2·Ts·N_out·K                  (AutoAWQ's way)
#                 cgram   = 2·Ts·g·K + 10·2·N_out·K·g        (each group's g×g Gram, then δᵀ·G·δ)
#               Products counted as written (XᵀX and ΔW·G as dense products, the gptq convention);
#               lowbit computes both in about half by their symmetry (quant/awq.h).
#   autoround:  2·fwd(n, S) (fp targets, then the tuned block's outputs for the next block)
#             + iters·3·fwd(batch, S)   (forward + backward ≈ 3 forwards, batch 8 windows)
#   aqlm (a lower bound, shown as ≥): fwd(n, S) + Grams (as gptq) + per linear one epoch of
#               codebooks 2·(2·cg_iters+4)·N_out·K² and codes 2·(N_out·K·M·2^B + N_out·K²·M)
#               (cg_iters 10, M codebooks of 2^B codes: the recipe's knobs) + fine-tuning
#               epochs·3·fwd(n, S); the beam search runs until a tolerance, so more epochs add more
#
# Knobs: SCALE_SHAPES ("tinyllama llama2-7b"), SCALE_STAGES (above), SCALE_LAYERS (N: the first N
# blocks only, a quick check), SCALE_THREADS (every core), SCALE_SEED (0), SCALE_SRC (hf | gguf),
# SCALE_PPL_CHUNKS (4), SCALE_PPL_CTX (512), SCALE_TASK (arc_easy), SCALE_TASK_LIMIT (20),
# SCALE_IMATRIX_CHUNKS (32), SCALE_EVAL_QUANT (1), SCALE_NSAMPLES / SCALE_SEQLEN / SCALE_ITERS,
# SCALE_7B_NSAMPLES (16), SCALE_7B_ITERS (20), SCALE_7B_MIN_AVAIL_GIB (20: a llama2-7b stage is
# skipped, with a row saying so, when MemAvailable is lower when it would start), SCALE_KEEP (1: keep
# the artifacts in out/scale/work/NAME/; 0 removes each after its ppl row), LOWBIT_DATA, MEMWATCH
# (out/build/tests/memwatch), RECIPES (gen/recipes.csv).
# Output: the markdown table on stdout and in out/scale/bench-scale.md; logs and memwatch lines in
# out/scale/work/NAME/.
set -e
BIN=${1:-out/lowbit}
DATA=${LOWBIT_DATA:-../shared/data}
MEMWATCH=${MEMWATCH:-out/build/tests/memwatch}
RECIPES=${RECIPES:-gen/recipes.csv}
SCALE_SHAPES=${SCALE_SHAPES:-"tinyllama llama2-7b"}
SCALE_STAGES=${SCALE_STAGES:-"fp16 task rtn-w4g128 bnb-nf4 gguf-q4_k_m gguf-q4_k_m-imatrix gptq-w4g128 awq-w4g64 autoround-w4g128 aqlm-2x8g8"}
SCALE_LAYERS=${SCALE_LAYERS:-}
SCALE_THREADS=${SCALE_THREADS:-$(nproc)}
SCALE_SEED=${SCALE_SEED:-0}
SCALE_SRC=${SCALE_SRC:-hf}
SCALE_PPL_CHUNKS=${SCALE_PPL_CHUNKS:-4}
SCALE_PPL_CTX=${SCALE_PPL_CTX:-512}
SCALE_TASK=${SCALE_TASK:-arc_easy}
SCALE_TASK_LIMIT=${SCALE_TASK_LIMIT:-20}
SCALE_IMATRIX_CHUNKS=${SCALE_IMATRIX_CHUNKS:-32}
SCALE_EVAL_QUANT=${SCALE_EVAL_QUANT:-1}
SCALE_7B_NSAMPLES=${SCALE_7B_NSAMPLES:-16}
SCALE_7B_ITERS=${SCALE_7B_ITERS:-20}
SCALE_7B_MIN_AVAIL_GIB=${SCALE_7B_MIN_AVAIL_GIB:-20}
SCALE_KEEP=${SCALE_KEEP:-1}
OUT=out/scale
TOK=$DATA/tokenizers/ggml-vocab-llama-spm.gguf
PPL_TEXT=$DATA/datasets/wikitext-2/wikitext-2-raw/wiki.test.raw
CALIB_TEXT=$DATA/datasets/calibration/groups_merged.txt

die() { echo "bench-scale: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no lowbit binary at $BIN (run make first)"
[ -x "$MEMWATCH" ] || die "no memwatch at $MEMWATCH (make $MEMWATCH)"
/usr/bin/python3 -c 'import numpy' 2>/dev/null ||
    die "/usr/bin/python3 with numpy is needed to write the models (Debian python3-numpy; make deps)"
for f in "$TOK" "$PPL_TEXT" "$CALIB_TEXT" "$RECIPES"; do
    [ -f "$f" ] || die "missing $f (set LOWBIT_DATA; see its MANIFEST.md)"
done
"$BIN" bench --help 2>/dev/null | grep -q -- --peak-only || die "$BIN has no 'bench --peak-only' (rebuild)"
mkdir -p "$OUT/work"

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/ *$//')
ISA=$("$BIN" bench --peak-only --threads 1 --peak-seconds 0.05 | sed -n 's/^kernels: using //p')

# the fp32 FMA peak on N threads (GFLOP/s)
peak() { "$BIN" bench --peak-only --threads "$1" --peak-seconds 0.5 | sed -n 's/^fma_peak_gflops threads=[0-9]* //p'; }
avail_gib() { awk '/^MemAvailable:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo; }
# key=value from a memwatch line
mw() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$1"; }

# a recipe's cell by column name (RFC 4180 via python's csv)
cell() { # file id column
    /usr/bin/python3 -c 'import csv,sys
rows=[r for r in csv.reader(open(sys.argv[1],newline="")) if r and not r[0].startswith("#")]
c={k:i for i,k in enumerate(rows[0])}
print(next((r[c[sys.argv[3]]] for r in rows[1:] if r[0]==sys.argv[2]),""))' "$1" "$2" "$3"
}

# the recipes file for one shape: calibration windows, seqlen and AutoRound iterations cut as asked
write_recipes() { # dst nsamples seqlen iters (empty = the recipe's)
    /usr/bin/python3 - "$RECIPES" "$@" <<'EOF'
import csv, json, sys
src, dst, ns, sl, it = sys.argv[1:6]
rows = [r for r in csv.reader(open(src, newline='')) if r and not r[0].startswith('#')]
head, body = rows[0], rows[1:]
c = {k: i for i, k in enumerate(head)}
with open(dst, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(head)
    for r in body:
        if r[c['calib_set']]:
            if ns: r[c['calib_nsamples']] = ns
            if sl: r[c['calib_seqlen']] = sl
        if r[c['algorithm']] == 'autoround' and it:
            k = json.loads(r[c['knobs']]) if r[c['knobs']] else {}
            k['iters'] = int(it)
            r[c['knobs']] = json.dumps(k, sort_keys=True, separators=(',', ':'))
        w.writerow(r)
EOF
}

# FLOP count of a stage: prints "GFLOP" (or "-") from the model's `lowbit info` and the stage's size
flops() { # info_file kind args...
    /usr/bin/python3 - "$@" <<'EOF'
import json, sys
info, kind, args = sys.argv[1], sys.argv[2], sys.argv[3:]
c = {}
for line in open(info):
    p = line.split()
    if len(p) >= 2 and p[0] in ('dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'head_dim', 'vocab_size'):
        c[p[0]] = int(p[1])
D, F, L, V = c['dim'], c['hidden_dim'], c['n_layers'], c['vocab_size']
nh, nkv, hd = c['n_heads'], c['n_kv_heads'], c['head_dim']
q, kvd = nh * hd, nkv * hd
P = D * q + 2 * D * kvd + q * D + 3 * D * F
lin = [(q, D), (kvd, D), (kvd, D), (D, q), (F, D), (F, D), (D, F)]  # (N_out, K): q k v o gate up down
inputs = [D, q, D, F]
def fwd(n, S):
    return L * (2.0 * P * n * S + 2.0 * hd * nh * n * S * (S + 1))
def grams(N):
    return L * sum(2.0 * N * K * K for K in inputs)
f = None
if kind == 'ppl':
    chunks, ctx = int(args[0]), int(args[1])
    f = fwd(chunks, ctx) + 2.0 * D * V * chunks * ctx
elif kind == 'task':
    f = 2.0 * L * P * int(args[0])
elif kind == 'imatrix':
    f = fwd(int(args[0]), int(args[1]))
else:
    n, S, knobs = int(args[0]), int(args[1]), json.loads(args[2] or '{}')
    N = n * S
    if kind == 'gptq':
        f = fwd(n, S) + grams(N) + L * sum(4.0 / 3.0 * K ** 3 for K in inputs) \
            + L * sum(float(No) * K * K for No, K in lin)
    elif kind == 'awq':
        groups = [lin[0:3], lin[4:6], lin[6:7]] + ([lin[3:4]] if kvd == q else [])
        grid = 0.0
        for g in groups:
            K = g[0][1]
            direct = 20 * sum(2.0 * N * No * K for No, K in g)
            gram = 2.0 * N * K * K + 20 * sum(2.0 * No * K * K for No, K in g)
            grid += min(direct, gram)
        Ts, g = min(N, 512), 64  # AutoAWQ's n_sample_token; the awq recipes' group
        clip = sum(min(10 * 2.0 * Ts * No * K, 2.0 * Ts * g * K + 10 * 2.0 * No * K * g)
                   for No, K in lin[2:])
        f = fwd(n, S) + L * (grid + clip)
    elif kind == 'autoround':
        iters, batch = int(args[3]), int(knobs.get('batch_size', 8))
        f = 2 * fwd(n, S) + iters * 3 * fwd(min(batch, n), S)
    elif kind == 'aqlm':
        M, B = int(knobs.get('num_codebooks', 1)), int(knobs.get('nbits_per_codebook', 16))
        cg, ep = int(knobs.get('cg_iters', 10)), int(knobs.get('finetune_max_epochs', 5))
        per = sum(2.0 * (2 * cg + 4) * No * K * K + 2.0 * (No * K * M * 2 ** B + No * K * K * M) for No, K in lin)
        f = fwd(n, S) + grams(N) + L * per + ep * 3 * fwd(n, S)
print('-' if f is None else '%.1f' % (f / 1e9))
EOF
}

TABLE=$OUT/bench-scale.md
{
echo "## Scale: random-weight TinyLlama-1.1B / Llama-2-7B shapes, $SCALE_THREADS thread(s), $CPU ($ISA)"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), lowbit $(git describe --always --dirty 2>/dev/null || echo '?'), load average at start $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores), MemAvailable $(avail_gib) GiB."
echo
echo "| model | stage | input | calibration | wall s | CPU s | peak RSS MiB | peak anon MiB | GFLOP | GFLOP/s | % of FMA peak | CPU / ISA | notes |"
echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
} | tee "$TABLE"

row() { # model stage input calib wall cpu rss anon gflop gflops pct notes
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s |\n' "$1" "$2" "$3" "$4" \
        "$5" "$6" "$7" "$8" "$9" "${10}" "${11}" "$CPU" "$ISA" "${12}" | tee -a "$TABLE"
}

# run one measured command: measure MODEL STAGE INPUT CALIB FLOPKIND FLOPARGS... -- CMD...
# the FLOP count is computed after the run (a task's token count comes from its JSON)
run_stage() { # name label input calib log flopspec cmd...
    name=$1 label=$2 input=$3 calib=$4 log=$5 fspec=$6
    shift 6
    if [ "$gate" -gt 0 ] && awk -v a="$(avail_gib)" -v g="$gate" 'BEGIN { exit !(a < g) }'; then
        row "$name" "$label" "$input" "$calib" — — — — — — — "skipped: MemAvailable $(avail_gib) GiB < $gate GiB (SCALE_7B_MIN_AVAIL_GIB)"
        return 1
    fi
    p0=$(peak "$SCALE_THREADS")
    st=0
    "$MEMWATCH" -o "$log.mw" -- "$@" >"$log" 2>&1 || st=$?
    p1=$(peak "$SCALE_THREADS")
    pk=$(awk -v a="$p0" -v b="$p1" 'BEGIN { print (a > b ? a : b) }')
    wall=$(mw "$log.mw" wall_s) cpu=$(mw "$log.mw" cpu_s)
    rss=$(mw "$log.mw" maxrss_mib) anon=$(mw "$log.mw" peak_anon_mib)
    notes="FMA peak $pk GFLOP/s"
    gf=— gfs=— pct=—
    if [ "$st" -ne 0 ]; then
        notes="FAILED (exit $st): $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-160 | tr '|' '/') (log $log)"
    elif [ "$fspec" != - ]; then
        gf=$(eval "flops $fspec")
        if [ "$gf" != - ]; then
            gfs=$(awk -v f="$gf" -v t="$wall" 'BEGIN { printf "%.1f", f / t }')
            pct=$(awk -v g="$gfs" -v p="$pk" 'BEGIN { printf "%.1f%%", 100 * g / p }')
            case $fspec in *" task "* | *" aqlm "*) gf="≥ $gf" gfs="≥ $gfs" pct="≥ $pct" ;; esac # lower bounds
        else gf=—
        fi
    fi
    row "$name" "$label" "$input" "$calib" "$wall" "$cpu" "$rss" "$anon" "$gf" "$gfs" "$pct" "$notes"
    return "$st"
}

for shape in $SCALE_SHAPES; do
    case $shape in tinyllama | llama2-7b) ;; *) die "SCALE_SHAPES: unknown shape '$shape' (tinyllama, llama2-7b)" ;; esac
    name=$shape lay=
    [ -n "$SCALE_LAYERS" ] && { name=$shape-${SCALE_LAYERS}l; lay="--layers $SCALE_LAYERS"; }
    M=$OUT/$name
    echo "bench-scale: model $M.gguf and $M-hf/ (tests/gen_scale.py)" >&2
    # shellcheck disable=SC2086
    LOWBIT_DATA=$DATA /usr/bin/python3 tests/gen_scale.py --shape "$shape" $lay --seed "$SCALE_SEED" \
        --cached -o "$M" >&2 || die "tests/gen_scale.py failed for $shape"
    W=$OUT/work/$name
    mkdir -p "$W"
    "$BIN" info "$M.gguf" >"$W/info.txt" || die "lowbit info $M.gguf failed"
    "$BIN" info "$M-hf" >"$W/info-hf.txt" || die "lowbit info $M-hf failed"
    gate=0
    [ "$shape" = llama2-7b ] && gate=$SCALE_7B_MIN_AVAIL_GIB
    ns=$SCALE_NSAMPLES it=$SCALE_ITERS
    [ "$shape" = llama2-7b ] && { ns=${ns:-$SCALE_7B_NSAMPLES}; it=${it:-$SCALE_7B_ITERS}; }
    RF=$W/recipes.csv
    write_recipes "$RF" "$ns" "${SCALE_SEQLEN:-}" "$it"

    for stage in $SCALE_STAGES; do
        log=$W/$stage.log
        case $stage in
        fp16)
            run_stage "$name" "fp16 ppl ($SCALE_PPL_CHUNKS × $SCALE_PPL_CTX)" gguf — "$log" \
                "'$W/info.txt' ppl $SCALE_PPL_CHUNKS $SCALE_PPL_CTX" \
                "$BIN" ppl --model "$M.gguf" --text "$PPL_TEXT" --ctx "$SCALE_PPL_CTX" \
                --chunks "$SCALE_PPL_CHUNKS" --threads "$SCALE_THREADS" || true ;;
        task)
            rm -f "$W/task.json"
            run_stage "$name" "fp16 $SCALE_TASK --limit $SCALE_TASK_LIMIT" gguf — "$log" \
                "'$W/info.txt' task \$(/usr/bin/python3 -c 'import json,sys; print(sum(v[\"tokens_forward\"] for v in json.load(open(sys.argv[1]))[\"timing\"].values()))' '$W/task.json')" \
                "$BIN" eval --model "$M.gguf" --tasks "$SCALE_TASK" --limit "$SCALE_TASK_LIMIT" \
                --threads "$SCALE_THREADS" --json "$W/task.json" || true ;;
        gguf-q4_k_m-imatrix)
            IM=$W/imatrix.gguf
            rm -f "$IM"
            if run_stage "$name" "imatrix ($SCALE_IMATRIX_CHUNKS × 512)" gguf "groups_merged, $SCALE_IMATRIX_CHUNKS × 512" \
                "$W/imatrix.log" "'$W/info.txt' imatrix $SCALE_IMATRIX_CHUNKS 512" \
                "$BIN" imatrix --model "$M.gguf" --text "$CALIB_TEXT" --ctx 512 \
                --chunks "$SCALE_IMATRIX_CHUNKS" --threads "$SCALE_THREADS" -o "$IM"; then
                A=$W/$stage.gguf
                rm -rf "$A"
                if run_stage "$name" "$stage" gguf "imatrix above" "$log" - \
                    "$BIN" quant --model "$M.gguf" --ftype Q4_K_M --imatrix "$IM" --threads "$SCALE_THREADS" -o "$A" &&
                    [ "$SCALE_EVAL_QUANT" = 1 ]; then
                    run_stage "$name" "ppl $stage ($SCALE_PPL_CHUNKS × $SCALE_PPL_CTX)" gguf — "$W/ppl-$stage.log" \
                        "'$W/info.txt' ppl $SCALE_PPL_CHUNKS $SCALE_PPL_CTX" \
                        "$BIN" ppl --model "$A" --text "$PPL_TEXT" --ctx "$SCALE_PPL_CTX" \
                        --chunks "$SCALE_PPL_CHUNKS" --threads "$SCALE_THREADS" || true
                fi
                [ "$SCALE_KEEP" = 1 ] || rm -rf "$A"
            fi ;;
        *)
            alg=$(cell "$RF" "$stage" algorithm)
            [ -n "$alg" ] || die "SCALE_STAGES: '$stage' is neither fp16, task, gguf-q4_k_m-imatrix nor a row of $RECIPES"
            src=$M-hf input=hf tokarg="--tokenizer $TOK"
            case $alg in gguf | fp) src=$M.gguf input=gguf tokarg= ;; esac
            [ "$SCALE_SRC" = gguf ] && { src=$M.gguf input=gguf tokarg=; }
            calib=— fspec=-
            if [ -n "$(cell "$RF" "$stage" calib_set)" ]; then
                n=$(cell "$RF" "$stage" calib_nsamples) s=$(cell "$RF" "$stage" calib_seqlen)
                n0=$(cell "$RECIPES" "$stage" calib_nsamples) s0=$(cell "$RECIPES" "$stage" calib_seqlen)
                n=${n:-128} s=${s:-2048} n0=${n0:-128} s0=${s0:-2048}
                knobs=$(cell "$RF" "$stage" knobs)
                calib="$n × $s"
                [ "$n × $s" != "$n0 × $s0" ] && calib="$calib (recipe $n0 × $s0)"
                iters=0
                if [ "$alg" = autoround ]; then
                    iters=$(echo "$knobs" | /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read().strip(); print(json.loads(t).get("iters",200) if t else 200)')
                    i0=$(cell "$RECIPES" "$stage" knobs | /usr/bin/python3 -c 'import json,sys; t=sys.stdin.read().strip(); print(json.loads(t).get("iters",200) if t else 200)')
                    calib="$calib, $iters iters"
                    [ "$iters" != "$i0" ] && calib="$calib (recipe $i0)"
                fi
                fspec="'$W/info-hf.txt' $alg $n $s '$knobs' $iters"
            fi
            A=$W/$stage
            [ "$alg" = gguf ] || [ "$alg" = fp ] && A=$W/$stage.gguf
            rm -rf "$A" "$A.resume" # a whole run: no checkpoint of an earlier one
            # shellcheck disable=SC2086
            if run_stage "$name" "$stage" "$input" "$calib" "$log" "$fspec" \
                "$BIN" quant --model "$src" $tokarg --recipe "$stage" --recipes "$RF" \
                --threads "$SCALE_THREADS" -o "$A" && [ "$SCALE_EVAL_QUANT" = 1 ]; then
                ptok=
                [ -d "$A" ] && ptok="--tokenizer $TOK"
                # shellcheck disable=SC2086
                run_stage "$name" "ppl $stage ($SCALE_PPL_CHUNKS × $SCALE_PPL_CTX)" "$( [ -d "$A" ] && echo hf || echo gguf)" — \
                    "$W/ppl-$stage.log" "'$W/info.txt' ppl $SCALE_PPL_CHUNKS $SCALE_PPL_CTX" \
                    "$BIN" ppl --model "$A" $ptok --text "$PPL_TEXT" --ctx "$SCALE_PPL_CTX" \
                    --chunks "$SCALE_PPL_CHUNKS" --threads "$SCALE_THREADS" || true
            fi
            [ "$SCALE_KEEP" = 1 ] || rm -rf "$A" ;;
        esac
    done
done
echo >&2
echo "bench-scale: table in $TABLE, logs in $OUT/work/" >&2

#!/bin/sh
# tests/bench.sh LOWBIT_BIN: `make bench`, lowbit's prefill speed beside llama.cpp's, same run.
#
# What is measured: for each model of BENCH_MODELS and each thread count of THREADS, prefill of CTX
# tokens in one batch from an empty cache with logits for the last position only ("pp512" as
# llama-bench calls it): one untimed warm-up pass, then REPS timed passes, the median tokens/s.
# Both engines get the same GGUF file and the same token ids (out/bench/tokens-CTX.txt: BOS = 1,
# then minstd pseudo-random ids x = x*48271 mod 2^31-1 from seed 1, id = x mod VOCAB; `lowbit
# bench` without --tokens makes the same ids). The peer is llama.cpp's own CPU code: the prebuilt
# libraries in the npm package @node-llama-cpp/linux-x64 3.22.1, driven through node-llama-cpp by
# the shared runner $LOWBIT_DATA/../tools/llamacpp-peer/peer.mjs (run in place; see its README for
# its protocol and defaults: F16 KV cache, flash attention auto, mmap).
# The host is a shared VM, so the two engines run interleaved, ROUNDS rounds (odd rounds lowbit
# first, even rounds llama.cpp first); each figure is the median over rounds of the per-round
# median, with the min-max over rounds; the ratio is the median over rounds of the per-round
# ratio lowbit/llama.cpp (the two runs of a round are minutes apart at most). lowbit's GFLOP/s use
# the analytic FLOP count of the pass (gen/bench.c), and "% of peak" divides by the fp32 FMA peak
# that `lowbit bench` measures in the same process (kernels_fma_peak_gflops); llama.cpp's % of
# peak applies the same FLOP count to its tokens/s and divides by the same measured peak.
# Output: a markdown table on stdout and in out/bench/bench.md; per-run JSON and logs in out/bench/.
#
# lowbit's own recipes: a name rand-PRESET-ID, ID a row of gen/recipes.csv (RECIPES), is the F32
# file through `lowbit quant --recipe ID` (made once: delete it to remake it after editing the
# recipe). rtn and bnb recipes write a Hugging Face directory (GPTQ / bitsandbytes checkpoint),
# which llama.cpp cannot load: those rows are measured by lowbit only, the llama.cpp columns show
# "—" and they are left out of the ratios. gguf and fp recipes write a GGUF that both engines run.
# A suffix @C (e.g. rand-110m-bnb-int8@int8, rand-110m-q4_0@int8) runs the same model with
# `lowbit bench --compute C` (int8: int8 activations and integer dot products; fp16, bf16);
# llama.cpp runs GGUF rows as always.
# Each row also shows the model's size on disk (the file, or every file of the directory) and the
# file's bits per weight: those bytes × 8 / the parameters `lowbit info` counts (metadata and the
# vocabulary included). Not `lowbit info`'s own bits/weight: for an HF checkpoint that is the size
# of lowbit's in-memory repacking (rtn g128 and nf4 both show 4.5 bits for their linears).
#
# Env: LOWBIT_DATA (../shared/data), BENCH_MODELS (default: rand-110m-f32 rand-110m-f16
# rand-110m-q8_0 rand-110m-q4_0 rand-110m-q4_k_m rand-110m-q8_0@int8 rand-110m-q4_0@int8
# rand-110m-rtn-w4g128 rand-110m-bnb-nf4
# rand-110m-bnb-int8@int8; a name rand-PRESET-f32|f16 is generated with the peer's gguf_random.py,
# rand-PRESET-q8_0 | q4_0 | q4_k_m [-pure] (any llama.cpp type) with llama.cpp's quantizer from the
# F32 file, rand-PRESET-ID with lowbit's recipe ID as above, a .gguf path is used as is),
# RECIPES (gen/recipes.csv), CTX (512), THREADS (1,2), REPS (5), ROUNDS (2), VOCAB (32000, for the
# token ids), QUIET_WAIT (20).
set -e
BIN=${1:-out/lowbit}
DATA=${LOWBIT_DATA:-../shared/data}
BENCH_MODELS=${BENCH_MODELS:-"rand-110m-f32 rand-110m-f16 rand-110m-q8_0 rand-110m-q4_0 rand-110m-q4_k_m \
rand-110m-q8_0@int8 rand-110m-q4_0@int8 rand-110m-rtn-w4g128 rand-110m-bnb-nf4 rand-110m-bnb-int8@int8"}
RECIPES=${RECIPES:-gen/recipes.csv}
CTX=${CTX:-512}; THREADS=${THREADS:-1,2}; REPS=${REPS:-5}; ROUNDS=${ROUNDS:-2}; VOCAB=${VOCAB:-32000}
OUT=out/bench
PEER=out/peer
NODE_LLAMA_CPP_VERSION=3.22.1

die() { echo "bench: $*" >&2; exit 1; }

[ -x "$BIN" ] || die "no lowbit binary at $BIN (run make first)"
[ -d "$DATA" ] || die "no data directory at $DATA (set LOWBIT_DATA)"
DATA=$(cd "$DATA" && pwd)
TOOLS=$(cd "$DATA/../tools/llamacpp-peer" 2>/dev/null && pwd) || TOOLS=$DATA/../tools/llamacpp-peer
[ -f "$TOOLS/peer.mjs" ] && [ -f "$TOOLS/gguf_random.py" ] ||
    die "the llama.cpp peer is missing: expected $TOOLS/peer.mjs and gguf_random.py"
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    die "node and npm are needed for the llama.cpp peer (node-llama-cpp); install nodejs and npm"
/usr/bin/python3 -c 'import numpy' 2>/dev/null ||
    die "/usr/bin/python3 with numpy is needed to write the random models (make deps installs python3-numpy)"
mkdir -p "$OUT/models" "$PEER"

# ---- the peer: node-llama-cpp and the x64 CPU binaries only (the other platforms' optional
# packages are ~500 MB of unused GPU/ARM builds), installed into out/peer, never into ../shared.
cat > "$PEER/package.json.new" <<EOF
{
  "name": "lowbit-bench-peer",
  "private": true,
  "version": "0.0.0",
  "description": "llama.cpp CPU peer for lowbit's make bench (tests/bench.sh)",
  "type": "module",
  "dependencies": {
    "node-llama-cpp": "$NODE_LLAMA_CPP_VERSION",
    "@node-llama-cpp/linux-x64": "$NODE_LLAMA_CPP_VERSION"
  }
}
EOF
if cmp -s "$PEER/package.json.new" "$PEER/package.json"; then rm "$PEER/package.json.new"
else mv "$PEER/package.json.new" "$PEER/package.json"; rm -rf "$PEER/node_modules"; fi
if [ ! -d "$PEER/node_modules/node-llama-cpp" ] || [ ! -d "$PEER/node_modules/@node-llama-cpp/linux-x64" ]; then
    echo "bench: installing node-llama-cpp $NODE_LLAMA_CPP_VERSION into $PEER (npm)" >&2
    (cd "$PEER" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --omit=optional \
        --loglevel=error >npm-install.log 2>&1) || { tail -20 "$PEER/npm-install.log" >&2; die "npm install failed (log: $PEER/npm-install.log)"; }
fi
# The shared runner, run in place through a symlink: with --preserve-symlinks(-main) node resolves
# its `import "node-llama-cpp"` from the symlink's directory, i.e. out/peer/node_modules.
ln -sf "$TOOLS/peer.mjs" "$PEER/peer.mjs"
peer() { node --preserve-symlinks --preserve-symlinks-main "$PEER/peer.mjs" "$@"; }

# ---- models (cached) and the token ids
# A name is MODEL[@COMPUTE]; MODEL names the file, COMPUTE goes to `lowbit bench --compute`.
base_name() { echo "${1%%@*}"; }
compute_of() { case $1 in *@*) echo "${1#*@}" ;; esac; }
# the algorithm of recipe $1 in $RECIPES ("" when there is no such row); the header names the columns
recipe_algorithm() {
    [ -f "$RECIPES" ] || return 0
    awk -F, -v id="$1" 'NR == 1 { for (i = 1; i <= NF; i++) { h = tolower($i); gsub(/[ \r"]/, "", h); col[h] = i }; next }
        $col["id"] == id { a = tolower($col["algorithm"]); gsub(/[ \r"]/, "", a); print a; exit }' "$RECIPES"
}
# rand-PRESET-ID -> ID when ID is a row of $RECIPES
recipe_of() {
    case $1 in rand-*-*) ;; *) return 0 ;; esac
    preset=${1#rand-}; preset=${preset%%-*}; id=${1#rand-"$preset"-}
    [ -n "$(recipe_algorithm "$id")" ] && echo "$id"
    return 0
}
model_path() { # MODEL[@COMPUTE]
    m=$(base_name "$1")
    case $m in
    *.gguf) echo "$m" ;;
    rand-*-f32 | rand-*-f16 | rand-*-q[0-9]*) echo "$OUT/models/$m.gguf" ;;
    *) id=$(recipe_of "$m"); alg=
        [ -n "$id" ] && alg=$(recipe_algorithm "$id")
        case $alg in
        '' | gguf | fp) echo "$OUT/models/$m.gguf" ;;
        *) echo "$OUT/models/$m" ;; # an HF directory
        esac ;;
    esac
}
# llama.cpp runs a row when its model is a GGUF file (not lowbit's HF checkpoints)
peer_runs() { case $(model_path "$1") in *.gguf) return 0 ;; *) return 1 ;; esac; }
# llama.cpp's own quantizer: the peer's quantize.c, compiled in place against the llama.h of the
# exact release (cloned from the git bundle inside the node-llama-cpp package) and its libllama.
build_quantize() {
    Q=$PEER/quantize
    [ -x "$Q" ] && return 0
    command -v git >/dev/null 2>&1 || die "git is needed to build llama.cpp's quantizer"
    if [ ! -f "$PEER/llama.cpp/include/llama.h" ]; then
        rm -rf "$PEER/llama.cpp"
        git -c advice.detachedHead=false clone -q "$PEER/node_modules/node-llama-cpp/llama/gitRelease.bundle" \
            "$PEER/llama.cpp" || die "cannot clone the llama.cpp source bundle"
    fi
    bins=$(cd "$PEER/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64" && pwd)
    cc -O2 -o "$Q" "$TOOLS/quantize.c" -I"$PEER/llama.cpp/include" -I"$PEER/llama.cpp/ggml/include" \
        "$bins/libllama.v0.5.0.so" -Wl,-rpath,"$bins" || die "cannot build llama.cpp's quantizer"
}
make_model() { # name path
    [ -e "$2" ] && return 0 # lowbit quant renames a finished file or directory into place
    case $1 in
    *.gguf) die "model file $1 not found" ;;
    rand-*-f32 | rand-*-f16) # random weights written by the peer's gguf_random.py (seed 0)
        preset=${1#rand-}; preset=${preset%-*}; dtype=${1##*-}
        echo "bench: writing $2 (random weights, preset $preset, $dtype)" >&2
        LOWBIT_DATA=$DATA /usr/bin/python3 "$TOOLS/gguf_random.py" --preset "$preset" --dtype "$dtype" \
            -o "$2.tmp" >&2 && mv "$2.tmp" "$2" ;;
    rand-*-q[0-9]*) # rand-PRESET-TYPE[-pure]: the F32 file through llama.cpp's quantizer, e.g.
        # rand-110m-q8_0, rand-110m-q4_0 (llama-quantize's default mix), rand-110m-q4_k_m, rand-110m-q4_0-pure
        preset=${1#rand-}; preset=${preset%%-*}; qt=${1#rand-"$preset"-}; pure=
        case $qt in *-pure) qt=${qt%-pure}; pure=--pure ;; esac
        make_model "rand-$preset-f32" "$(model_path "rand-$preset-f32")"
        build_quantize
        echo "bench: writing $2 (llama.cpp quantizer, $qt $pure)" >&2
        "$PEER/quantize" "$(model_path "rand-$preset-f32")" "$2.tmp" "$(echo "$qt" | tr a-z A-Z)" $pure \
            >"$2.log" 2>&1 && mv "$2.tmp" "$2" || { tail -3 "$2.log" >&2; die "quantizing $1 failed"; } ;;
    *) # rand-PRESET-ID: the F32 file through lowbit's recipe ID (rand-110m-rtn-w4g128, ...-bnb-nf4)
        id=$(recipe_of "$1")
        [ -n "$id" ] || die "no recipe for model '$1': name a recipe of $RECIPES (rand-PRESET-ID), a llama.cpp type (rand-PRESET-q4_0), or give a .gguf path"
        preset=${1#rand-}; preset=${preset%%-*}
        make_model "rand-$preset-f32" "$(model_path "rand-$preset-f32")"
        echo "bench: writing $2 (lowbit quant --recipe $id)" >&2
        "$BIN" quant --model "$(model_path "rand-$preset-f32")" --recipe "$id" --recipes "$RECIPES" \
            -o "$2" >"$2.log" 2>&1 || { tail -3 "$2.log" >&2; die "quantizing $1 failed (log: $2.log)"; } ;;
    esac
}
for name in $BENCH_MODELS; do
    make_model "$(base_name "$name")" "$(model_path "$name")"
done

TOKENS=$OUT/tokens-$CTX.txt
awk -v n="$CTX" -v v="$VOCAB" 'BEGIN { x = 1; printf "1"; for (i = 1; i < n; i++) {
    x = (x * 48271) % 2147483647; printf " %d", x % v } printf "\n" }' > "$TOKENS"

# Other processes on this small shared host skew whatever runs beside them. Before each run, sample
# the whole machine's busy fraction over 1 s (/proc/stat, non-idle jiffies); while above 15%, wait,
# for at most QUIET_WAIT seconds (default 20) per run, then run anyway and count the run as noisy.
QUIET_WAIT=${QUIET_WAIT:-20}; NOISY=0
busy_pct() {
    a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
    echo "$a
$b" | awk '{ idle = $5 + $6; tot = 0; for (i = 2; i <= NF; i++) tot += $i
        if (NR == 1) { i0 = idle; t0 = tot } else print (tot > t0) ? int(100 * (1 - (idle - i0) / (tot - t0))) : 0 }'
}
wait_quiet() {
    [ -r /proc/stat ] || return 0
    waited=0
    while p=$(busy_pct) && [ "$p" -gt 15 ]; do
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "bench: the host is still ${p}% busy with other work; running anyway (noisy)" >&2
            NOISY=$((NOISY + 1)); return 0
        fi
        [ "$waited" -eq 0 ] && echo "bench: the host is ${p}% busy with other work; waiting up to ${QUIET_WAIT} s" >&2
        sleep 2; waited=$((waited + 3))
    done
}

# ---- the runs, interleaved; out/bench/LABEL.{lowbit,peer}.rR.{json,log} (LABEL = file name sans .gguf).
# A failed run shows as n/a in the table and makes the script exit non-zero at the end.
FAILED=0
label() { basename "$1" .gguf; }  # a .gguf path -> its file name; a rand-* name as is
run_lowbit() { # name round
    b=$OUT/$(label "$1").lowbit.r$2
    rm -f "$b.json"
    wait_quiet
    echo "bench: round $2/$ROUNDS $(label "$1"): lowbit" >&2
    c=$(compute_of "$1")
    "$BIN" bench --model "$(model_path "$1")" ${c:+--compute "$c"} --ctx "$CTX" --threads "$THREADS" \
        --reps "$REPS" --tokens "$TOKENS" --json "$b.json" >"$b.log" 2>&1 ||
        { tail -5 "$b.log" >&2; echo "bench: lowbit failed on $1 (log: $b.log)" >&2; FAILED=$((FAILED + 1)); }
}
run_peer() { # name round
    b=$OUT/$(label "$1").peer.r$2
    rm -f "$b.json"
    peer_runs "$1" || return 0
    wait_quiet
    echo "bench: round $2/$ROUNDS $(label "$1"): llama.cpp" >&2
    peer --model "$(model_path "$1")" --tokens "$TOKENS" --mode speed --ctx "$CTX" --threads "$THREADS" \
        --reps "$REPS" --json "$b.json" >"$b.log" 2>&1 ||
        { tail -5 "$b.log" >&2; echo "bench: llama.cpp failed on $1 (log: $b.log)" >&2; FAILED=$((FAILED + 1)); }
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)
r=1
while [ "$r" -le "$ROUNDS" ]; do
    for name in $BENCH_MODELS; do
        if [ $((r % 2)) -eq 1 ]; then run_lowbit "$name" $r; run_peer "$name" $r
        else run_peer "$name" $r; run_lowbit "$name" $r; fi
    done
    r=$((r + 1))
done

# ---- the table: tests/peer/bench_table.mjs, then per row the size on disk and the file's bits per
# weight (bench-models.tsv: label, MiB, bits/weight, 1 when llama.cpp runs it), "—" in llama.cpp's
# columns of the rows it cannot run, and a row of n/a for a model no engine measured
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)
RUNS=0
: > "$OUT/bench-models.tsv"
for name in $BENCH_MODELS; do
    RUNS=$((RUNS + ROUNDS)); p=0
    peer_runs "$name" && { RUNS=$((RUNS + ROUNDS)); p=1; }
    mp=$(model_path "$name")
    bytes=$(du -sb "$mp" 2>/dev/null | cut -f1)
    params=$("$BIN" info "$mp" 2>/dev/null | awk '$1 == "parameters" { print $2 }')
    awk -v l="$(label "$name")" -v b="${bytes:-0}" -v n="${params:-0}" -v p="$p" 'BEGIN {
        mib = b > 0 ? sprintf("%.1f", b / 1048576) : "?"
        bpw = b > 0 && n > 0 ? sprintf("%.3f", 8 * b / n) : "?"
        printf "%s\t%s\t%s\t%s\n", l, mib, bpw, p }' >> "$OUT/bench-models.tsv"
done
OUT=$OUT ROUNDS=$ROUNDS CTX=$CTX REPS=$REPS LOAD_BEFORE=$LOAD_BEFORE LOAD_AFTER=$LOAD_AFTER NOISY=$NOISY \
    RUNS=$RUNS node "$(dirname "$0")/peer/bench_table.mjs" $(for name in $BENCH_MODELS; do label "$name"; done) \
    > "$OUT/bench.md.raw"
awk -F'|' -v OFS='|' -v threads="$THREADS" '
    FNR == NR { split($0, f, "\t"); order[++n] = f[1]; mib[f[1]] = f[2]; bpw[f[1]] = f[3]; peer[f[1]] = f[4]; next }
    function trim(x) { gsub(/^ +| +$/, "", x); return x }
    /^\| model \| file MiB \|/ { $3 = " file MiB | file bits/weight "; intable = 1; print; next }
    /^\|---\|/ { $3 = "---:|---:"; print; next }
    /^\|/ && intable {
        l = trim($2); seen[l] = 1
        if (!(l in mib)) { $3 = $3 "| "; print; next }
        logits = trim($5) ~ /^logits/
        $3 = logits ? $3 "| " : " " mib[l] " | " bpw[l] " "
        if (!peer[l] && !logits) $6 = $7 = $8 = $12 = " — "
        print; next
    }
    intable { end_table() }
    { print }
    function end_table(   i, l, na) {
        intable = 0
        for (i = 1; i <= n; i++) {
            l = order[i]
            if (l in seen) continue
            na = peer[l] ? "n/a" : "—"
            printf "| %s | %s | %s | %s | n/a | %s | %s | %s | n/a | n/a | n/a | %s |\n", l, mib[l], bpw[l], threads, na, na, na, na
        }
        print ""
        print "file MiB: the model on disk (the GGUF file, or every file of a Hugging Face directory); " \
            "file bits/weight: its bytes × 8 / the parameters `lowbit info` counts (metadata and vocabulary " \
            "included). A row whose model is a Hugging Face checkpoint (lowbit rtn/bnb recipes) is measured by " \
            "lowbit only: llama.cpp cannot load it, its columns show — and it has no ratio. " \
            "NAME@int8: `lowbit bench --compute int8`."
        done_table = 1
    }
    END { if (intable && !done_table) end_table() }' "$OUT/bench-models.tsv" "$OUT/bench.md.raw" > "$OUT/bench.md.new"
rm -f "$OUT/bench.md.raw"
mv "$OUT/bench.md.new" "$OUT/bench.md"
cat "$OUT/bench.md"
[ "$FAILED" -eq 0 ] || die "$FAILED of $RUNS runs failed (see the logs in $OUT)"

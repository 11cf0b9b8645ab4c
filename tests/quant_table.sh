#!/bin/sh
# tests/quant_table.sh LOWBIT_BIN [RECIPE...]: what each quantizer costs in quality, on stories260K
# (or MODEL=path/to/model.gguf NAME=label: e.g. a zoo model, out/zoo/zoo-15m/model.gguf).
#
# For each recipe (rows of gen/recipes.csv; default: RTN, GPTQ, AWQ and AutoRound at 4, 3 and 2
# bits, AQLM, and two llama.cpp mixes for scale) `lowbit quant --recipe` writes the artifact, then
#   - perplexity of held-out TinyStories text (tinystories-valid.txt.1000: the first ~200 validation
#     stories, never trained on; llama.cpp's protocol: 512-token chunks from BOS, second half scored),
#   - KL divergence against the fp32 model on the same tokens (lowbit kld, llama.cpp's statistics:
#     mean KLD, 99th percentile, same top token), and
#   - bits per weight of the file and of the quantized modules (the quantizer's provenance),
# into a markdown table on stdout (and out/quality/stories260K.md). Every number is computed here.
# The quantized modules differ by format: the GPTQ/AWQ layouts hold stories260K's attention only
# (its 172-wide MLP divides no group size), AQLM 2x8g8 leaves ffn_down float, GGUF mixes hold all.
set -e
BIN=${1:-out/lowbit}
[ $# -gt 0 ] && shift
DATA=${LOWBIT_DATA:-../shared/data}
RECIPES_CSV=${RECIPES:-gen/recipes.csv}
LIST=${*:-"fp32 rtn-w4g128 gptq-w4g128 awq-w4g64 autoround-w4g128 rtn-w3g128 gptq-w3g128 awq-w3g64 \
autoround-w3g128 rtn-w2g64 gptq-w2g64 awq-w2g64 autoround-w2g64 aqlm-2x8g8 aqlm-1x8g4 gguf-q4_k_m gguf-q2_k"}
M=${MODEL:-$DATA/models/stories260K.gguf}
NAME=${NAME:-stories260K}
TEXT=$DATA/datasets/tinystories/tinystories-valid.txt.1000
OUT=out/quality
die() { echo "quant_table: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no lowbit binary at $BIN (run make first)"
for f in "$M" "$TEXT"; do [ -f "$f" ] || die "missing $f (set LOWBIT_DATA; see its MANIFEST.md)"; done
mkdir -p "$OUT"
BASE=$OUT/$NAME-fp32.gguf
[ -f "$BASE" ] || "$BIN" quant --model "$M" --recipe fp32 --recipes "$RECIPES_CSV" -o "$BASE" --quiet

{
echo "## $NAME: held-out TinyStories PPL and KLD vs fp32, by recipe"
echo
echo "| recipe | algorithm | bits | bpw (quantized modules) | bpw (file) | PPL | ΔPPL | mean KLD | KLD p99 | same top % | quant s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for id in $LIST; do
    art=$OUT/$NAME-$id
    rm -rf "$art" "$art.quant.log"
    t0=$(date +%s.%N)
    "$BIN" quant --model "$M" --recipe "$id" --recipes "$RECIPES_CSV" -o "$art" >"$art.quant.log" 2>&1 ||
        { tail -3 "$art.quant.log" >&2; die "lowbit quant --recipe $id failed (log $art.quant.log)"; }
    t1=$(date +%s.%N)
    tok=$(sed -n 's/^quant: .* has no tokenizer; give ppl\/eval --tokenizer //p' "$art.quant.log" | head -1)
    tokarg=; [ -n "$tok" ] && tokarg="--tokenizer $tok"
    # an HF directory from a GGUF source evaluates with the source's vocabulary
    [ -d "$art" ] && [ ! -f "$art/tokenizer.json" ] && tokarg="--tokenizer $M"
    "$BIN" ppl --model "$art" $tokarg --text "$TEXT" --quiet --json "$art.ppl.json" >/dev/null
    "$BIN" kld --base "$BASE" --model "$art" $tokarg --text "$TEXT" --f32 --cache "$OUT/cache" \
        --quiet --json "$art.kld.json" >/dev/null
    /usr/bin/python3 - "$id" "$art" "$RECIPES_CSV" "$t0" "$t1" <<'EOF'
import csv, json, re, sys
rid, art, rcsv, t0, t1 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
rows = [r for r in csv.reader(open(rcsv, newline='')) if r and not r[0].startswith('#')]
c = {k: i for i, k in enumerate(rows[0])}
row = next(r for r in rows[1:] if r[0] == rid)
p = json.load(open(art + '.ppl.json'))
k = json.load(open(art + '.kld.json'))
log = open(art + '.quant.log').read()
def prov(key):
    m = re.search(r'quant\.' + key + r':? *([0-9.]+)', log)
    return float(m.group(1)) if m else None
bq = prov('bpw_quantized_modules')
m = re.search(r'^quant: wrote .* ([0-9.]+) bits/weight', log, re.M)
bf = float(m.group(1)) if m else None
p99 = dict((round(f, 3), v) for f, v in k['kld_percentiles']).get(0.99)
fmt = lambda v, d: ('%.*f' % (d, v)) if v is not None else '—'
print('| %s | %s | %s | %s | %s | %.4f | %+.4f | %.5f | %s | %.2f | %.1f |' % (
    rid, row[c['algorithm']], row[c['bits']] or row[c['weight_dtype']], fmt(bq, 3), fmt(bf, 3),
    k['ppl'], k['ppl'] - k['ppl_base'], k['kld_mean'], fmt(p99, 4), 100 * k['same_top'], t1 - t0))
EOF
done
} | tee "$OUT/$NAME.md"

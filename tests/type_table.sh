#!/bin/sh
# tests/type_table.sh: PPL and KLD of every GGUF type lowbit writes, on one model (issue 20):
# an importance matrix from held-in text for the types that need one (IQ1, IQ2, IQ3_XXS), each
# type quantized with `lowbit quant --ftype`, then `lowbit kld` against the model on held-out
# text; prints a markdown row per type (bits per weight from `lowbit info`, all weights).
#   sh tests/type_table.sh [MODEL [OUTDIR]]   (default out/zoo/zoo-15m/model.gguf, /tmp/type_table)
# Text: LOWBIT_DATA's tinystories train sample (imatrix) and tinystories_val.txt (40 chunks of 512).
set -e
B=${LOWBIT_BIN:-$(pwd)/out/lowbit}
M=${1:-out/zoo/zoo-15m/model.gguf}
O=${2:-/tmp/type_table}
export LOWBIT_DATA=${LOWBIT_DATA:-../shared/data}
D=$LOWBIT_DATA/datasets/tinystories
for f in "$M" "$D/train/tinystories_sample.txt" "$D/tinystories_val.txt"; do
    [ -e "$f" ] || { echo "type_table: missing $f (the model, or LOWBIT_DATA=$LOWBIT_DATA)" >&2; exit 1; }
done
mkdir -p "$O"
"$B" imatrix --model "$M" --text "$D/train/tinystories_sample.txt" --chunks 64 --quiet -o "$O/imat.gguf"
echo "| type | bits/weight | PPL (base) | mean KLD | same top token |"
echo "|---|---:|---:|---:|---:|"
for t in Q6_K Q5_K_M Q4_K_M IQ4_NL IQ4_XS Q3_K_M IQ3_M IQ3_S IQ3_XXS Q2_K IQ2_M IQ2_S IQ2_XS \
         IQ2_XXS IQ1_M IQ1_S TQ2_0 TQ1_0; do
    im=""
    case $t in IQ1* | IQ2* | IQ3_XXS) im="--imatrix $O/imat.gguf" ;; esac
    # shellcheck disable=SC2086
    "$B" quant --model "$M" --ftype $t $im --quiet -o "$O/$t.gguf"
    bpw=$("$B" info "$O/$t.gguf" | awk '/^bits\/weight/ {print $2}')
    "$B" kld --base "$M" --model "$O/$t.gguf" --text "$D/tinystories_val.txt" --chunks 40 \
        --json "$O/$t.json" --quiet > /dev/null
    /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print("| %s | %s | %.4f (%.4f) | %.5f ± %.5f | %.2f%% |" % (sys.argv[2], sys.argv[3], d["ppl"],
      d["ppl_base"], d["kld_mean"], d["kld_stderr"], 100 * d["same_top"] if d["same_top"] <= 1 else d["same_top"]))' \
        "$O/$t.json" "$t" "$bpw"
done

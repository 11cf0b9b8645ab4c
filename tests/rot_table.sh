#!/bin/sh
# tests/rot_table.sh: the rotation / activation-quantization table (README "Rotation and activation
# quantization"): PPL and mean KLD against the unquantized model for W4A4 with and without QuaRot's
# rotation, rotation + GPTQ against GPTQ at W3/W2 weight-only, SmoothQuant W8A8 against plain W8A8,
# on stories260K, zoo-15m and the outlier model (tests/gen_outlier.py, made when missing).
#   sh tests/rot_table.sh [OUT_DIR]      (default out/rot_table)
# Knobs (environment): ROT_MODELS (default "stories260K zoo-15m outlier"), ROT_CTX (256),
# ROT_CHUNKS (8: llama.cpp's protocol, the second half of each chunk scored), ROT_CALIB_N (the
# calibration windows of the gptq and smoothquant rows; default as gen/recipes.csv: 128),
# ROT_GPTQ_MODELS (the models the GPTQ rows run on; default "stories260K zoo-15m"),
# ROT_THREADS (1), LOWBIT (default out/lowbit), ROT_OUTLIER_ARGS (tests/gen_outlier.py's options for
# the model "outlier-v2"; default "--read zero", see tests/outlier_probe.py; the
# model "outlier" is gen_outlier.py's default, the first table's).
# Prints one line per model × recipe: recipe, compute, PPL(Q), KLD.
set -e
OUT=${1:-out/rot_table}
LB=${LOWBIT:-out/lowbit}
D=${LOWBIT_DATA:-../shared/data}
TEXT=$D/datasets/tinystories/tinystories-valid.txt.1000
CTX=${ROT_CTX:-256}
CH=${ROT_CHUNKS:-8}
TH=${ROT_THREADS:-1}
MODELS=${ROT_MODELS:-"stories260K zoo-15m outlier"}
GPTQ_MODELS=${ROT_GPTQ_MODELS:-"stories260K zoo-15m"}
[ -f "$TEXT" ] || { echo "rot_table: missing $TEXT (set LOWBIT_DATA)"; exit 1; }
mkdir -p "$OUT"
CSV=$OUT/recipes.csv
if [ -n "$ROT_CALIB_N" ]; then
    sed "s/,groups_merged,128,256,/,groups_merged,$ROT_CALIB_N,256,/" gen/recipes.csv > "$CSV"
else
    cp gen/recipes.csv "$CSV"
fi
model_path() {
    case $1 in
    stories260K) echo "$D/models/stories260K.gguf" ;;
    zoo-15m) echo "out/zoo/zoo-15m/model.gguf" ;;
    outlier-v2)
        oa=${ROT_OUTLIER_ARGS:-"--read zero"}
        f=out/outlier/llama110m-massive$(echo "$oa" | tr -d ' -').gguf
        # shellcheck disable=SC2086  # the options are words
        [ -f "$f" ] || /usr/bin/python3 tests/gen_outlier.py $oa -o "$f"
        echo "$f" ;;
    outlier)
        [ -f out/outlier/llama110m-massive.gguf ] ||
            /usr/bin/python3 tests/gen_outlier.py -o out/outlier/llama110m-massive.gguf
        echo "out/outlier/llama110m-massive.gguf" ;;
    outlier-scaled)
        [ -f out/outlier/llama110m-outlier.gguf ] ||
            /usr/bin/python3 tests/gen_outlier.py --mode scaled -o out/outlier/llama110m-outlier.gguf
        echo "out/outlier/llama110m-outlier.gguf" ;;
    *) echo "rot_table: unknown model $1" >&2; exit 1 ;;
    esac
}
row() { # model path recipe
    m=$1 p=$2 r=$3
    a=$OUT/$m-$r
    cdt=$(awk -F, -v r="$r" '$1 == r { print $8 }' "$CSV")
    [ -n "$cdt" ] || { echo "rot_table: no recipe $r in $CSV" >&2; exit 1; }
    if [ ! -e "$a.done" ]; then
        rm -rf "$a"
        if [ "$r" = fp32 ]; then a=$p; else
            $LB quant --model "$p" --recipe "$r" --recipes "$CSV" --threads "$TH" --quiet -o "$a" >/dev/null
        fi
        $LB kld --base "$p" --model "$a" --text "$TEXT" --ctx "$CTX" --chunks "$CH" \
            --compute "$cdt" --threads "$TH" --cache "$OUT/kld-cache" --json "$OUT/$m-$r.json" --quiet >/dev/null
        touch "$OUT/$m-$r.done"
    fi
    /usr/bin/python3 - "$OUT/$m-$r.json" "$m" "$r" "$cdt" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print('%-12s %-20s %-5s PPL %10.4f (base %10.4f)  KLD %.5f +/- %.5f' % (sys.argv[2], sys.argv[3],
      sys.argv[4], j['ppl'], j['ppl_base'], j['kld_mean'], j['kld_stderr']))
PY
}
for m in $MODELS; do
    p=$(model_path "$m")
    for r in rtn-w4a4 quarot-rtn-w4a4 rtn-w8a8 smoothquant-w8a8; do row "$m" "$p" "$r"; done
    case " $GPTQ_MODELS " in *" $m "*)
        for r in quarot-gptq-w4a4 gptq-w3g128 quarot-gptq-w3g128 gptq-w2g64 quarot-gptq-w2g64; do
            row "$m" "$p" "$r"
        done ;;
    esac
done

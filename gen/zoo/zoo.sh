#!/bin/sh
# gen/zoo/zoo.sh [--check] BIN NAME...: make zoo. Trains each NAME.conf of this script's
# directory on the TinyStories text in LOWBIT_DATA with the stories260K tokenizer, holding out
# tinystories-valid.txt.1000 (the first ~200 validation stories, the evaluation text), into
# $ZOO_OUT/NAME-HASH/ (ZOO_OUT default out/zoo) and points the link $ZOO_OUT/NAME at it
# (gen/models.csv names out/zoo/NAME/model.gguf). HASH covers the config, the corpus, tokenizer
# and held-out bytes, and the training code (eval/train.[ch], eval/grad.[ch], gen/cmd_train.c):
# a model whose inputs are unchanged is not trained again. An interrupted training resumes from
# its checkpoint ($ZOO_OUT/NAME-HASH.partial/ckpt.bin).
# --check trains nothing: it links every NAME already trained and prints one line per NAME,
# "NAME cached DIR" or "NAME train DIR" (what `lowbit run --zoo` plans from; BIN is unused).
set -e
check=0
[ "$1" = --check ] && { check=1; shift; }
bin=$1; shift
here=$(dirname "$0")
out=${ZOO_OUT:-out/zoo}
D=${LOWBIT_DATA:-../shared/data}
corpus="$D/datasets/tinystories/train/tinystories_sample.txt $D/datasets/tinystories/tinystories_val.txt"
tok=$D/tokenizers/tok512.bin
heldout=$D/datasets/tinystories/tinystories-valid.txt.1000
code="eval/train.c eval/train.h eval/grad.c eval/grad.h gen/cmd_train.c"
for f in $corpus $tok $heldout; do
    [ -r "$f" ] || { echo "make zoo: missing data file $f (set LOWBIT_DATA; see its MANIFEST.md)" >&2; exit 1; }
done
# libgomp's default spin-waiting collapses when the 2 cores are shared with other work
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
mkdir -p "$out"
for name in "$@"; do
    conf=$here/$name.conf
    [ -r "$conf" ] || { echo "make zoo: no config $conf" >&2; exit 1; }
    hash=$({ cat "$conf"; sha256sum $corpus $tok $heldout | cut -c1-64; cat $code; } | sha256sum | cut -c1-16)
    dir=$out/$name-$hash
    if [ -f "$dir/model.gguf" ]; then
        [ $check = 1 ] && echo "$name cached $dir" || echo "zoo: $name cached ($dir)"
    elif [ $check = 1 ]; then
        echo "$name train $dir"
        continue
    else
        echo "zoo: training $name into $dir"
        t0=$(date +%s)
        "$bin" train --config "$conf" --corpus $(echo $corpus | sed 's/ / --corpus /g') \
            --tokenizer "$tok" --heldout "$heldout" -o "$dir.partial" --resume
        rm -rf "$dir" && mv "$dir.partial" "$dir"
        echo "zoo: $name trained in $(( $(date +%s) - t0 )) s"
    fi
    ln -sfn "$name-$hash" "$out/$name"
done

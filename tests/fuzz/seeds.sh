#!/bin/sh
# tests/fuzz/seeds.sh [TESTS_DIR]: fill out/fuzz/corpus/<target>/ with seed inputs for the fuzz
# targets (tests/fuzz/fuzz_*.c):
#  - small real files from $LOWBIT_DATA (stories260K in its three containers, tokenizers, the
#    first lines of every task file, gen/models.csv and gen/recipes.csv), never copied anywhere
#    but out/;
#  - the fixtures the unit tests write (tiny HF directories, safetensors, tokenizer.json, GGUF
#    vocabularies): TESTS_DIR (default out/build/tests) test_hf, test_tokenizer, test_model and
#    test_qformats are run in a scratch directory and their out/tmp is harvested;
#  - the result files of earlier runs (out/results) and two lm-eval/Intel results JSON.
# Existing corpus files (what the fuzzer found) are kept. Safe to re-run.
set -eu

TESTS=${1:-out/build/tests}
DATA=${LOWBIT_DATA:-../shared/data}
ROOT=$(pwd)
C=out/fuzz/corpus
FX=out/fuzz/fixtures
for t in gguf safetensors hf_config tokenizer_json llama2c csv task_jsonl lmeval_json result_json \
         text_path; do
    mkdir -p "$C/$t"
done
case $DATA in /*) ;; *) DATA=$ROOT/$DATA ;; esac

# a seed from a file, named after its path (so re-running overwrites, never duplicates)
seed() { # target file [name]
    [ -f "$2" ] || { echo "seeds: missing $2 (skipped)" >&2; return 0; }
    cp "$2" "$C/$1/${3:-$(echo "$2" | sed 's|^.*/out/tmp/t[0-9]*/||; s|[/ ]|_|g')}"
}

# ---- real files ----
seed gguf "$DATA/models/stories260K.gguf" stories260K.gguf
seed gguf "$DATA/tokenizers/ggml-vocab-llama-spm.gguf" vocab-llama-spm.gguf
seed llama2c "$DATA/models/stories260K.bin" stories260K.bin
seed llama2c "$DATA/models/stories260K_q80.bin" stories260K_q80.bin
seed llama2c "$DATA/models/tinystories_260k/checkpoint_v1.bin" checkpoint_v1.bin
seed llama2c "$DATA/tokenizers/tok512.bin" tok512.bin
seed llama2c "$DATA/tokenizers/tokenizer.bin" tokenizer.bin
seed csv gen/models.csv models.csv
seed csv gen/recipes.csv recipes.csv
for z in out/zoo/*/curve.csv; do [ -f "$z" ] && seed csv "$z" "curve-$(basename "$(dirname "$z")").csv"; done

# task files: byte 0 = enum task_id (eval/task.h), then the first lines of the file; PIQA and
# WinoGrande labels follow "\n--labels--\n" (tests/fuzz/fuzz_task_jsonl.c)
task() { # id name file lines [labels]
    [ -f "$3" ] || { echo "seeds: missing $3 (skipped)" >&2; return 0; }
    {
        printf "\\$(printf %03o "$1")"
        head -n "$4" "$3"
        if [ $# -ge 5 ]; then printf '\n--labels--\n'; head -n "$4" "$5"; fi
    } > "$C/task_jsonl/$2"
}
D=$DATA/datasets
task 0 arc_challenge "$D/arc/ARC-Challenge-Test.jsonl" 3
task 1 arc_easy "$D/arc/ARC-Easy-Dev.jsonl" 3
task 2 boolq "$D/boolq/val.jsonl" 2
task 3 hellaswag "$D/hellaswag/hellaswag_val_full.txt" 18
task 4 lambada "$D/lambada/lambada_test.jsonl" 3
task 5 mmlu "$D/mmlu/test/astronomy_test.csv" 4
task 6 openbookqa "$D/openbookqa/test.tsv" 4
task 6 openbookqa_jsonl "$D/openbookqa/openbook_qa.jsonl" 3
task 7 piqa "$D/piqa/valid.jsonl" 3 "$D/piqa/valid-labels.lst"
task 7 piqa_foundry "$D/piqa/piqa.jsonl" 3
task 9 winogrande "$D/winogrande/winogrande.jsonl" 3 "$D/winogrande/dev-labels.lst"
task 10 wikitext "$D/wikitext-2/wikitext-2-raw/wiki.test.raw" 40
if [ -f "$D/truthfulqa/v0/mc_task.json" ]; then # one JSON array: its first three items
    { printf '\010'; python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[:3]))' \
        "$D/truthfulqa/v0/mc_task.json"; } > "$C/task_jsonl/truthfulqa"
fi

# ---- the unit tests' fixtures ----
# The tests write into ./out/tmp/t<pid>; test_tokenizer removes its directory with system("rm -rf")
# when it passes, so the tests run with an `rm` that does nothing first in PATH.
rm -rf "$FX"
mkdir -p "$FX/shim"
printf '#!/bin/sh\nexit 0\n' > "$FX/shim/rm"
chmod +x "$FX/shim/rm"
for t in test_hf test_tokenizer test_model test_qformats test_aqlm; do
    if [ -x "$TESTS/$t" ]; then
        (cd "$FX" && PATH="$ROOT/$FX/shim:$PATH" LOWBIT_DATA="$DATA" "$ROOT/$TESTS/$t" >/dev/null 2>&1) ||
            echo "seeds: $TESTS/$t failed; its fixtures are used anyway" >&2
    else
        echo "seeds: $TESTS/$t not built (make $TESTS/$t): its fixtures are missing" >&2
    fi
done
small() { find "$FX/out" -type f -name "$1" -size -3M 2>/dev/null | sort; }
for f in $(small '*.gguf'); do seed gguf "$f"; done
for f in $(small '*.safetensors'); do seed safetensors "$f"; done
for f in $(small '*.bin'); do seed llama2c "$f"; done
for f in $(small '*.json'); do
    case $f in
    */config.json | *index.json) ;;
    *) grep -q '"model"' "$f" && seed tokenizer_json "$f" ;;
    esac
done
for f in $(small config.json); do
    d=$(dirname "$f")
    name=$(basename "$d")
    seed hf_config "$f" "$name.config.json"
    if [ -f "$d/model.safetensors" ] && [ "$(wc -c < "$d/model.safetensors")" -lt 3000000 ]; then
        { cat "$f"; printf '\n--model.safetensors--\n'; cat "$d/model.safetensors"; } \
            > "$C/hf_config/$name.dir"
    fi
done

# ---- results JSON ----
n=0
for f in out/results/*.json; do
    [ -f "$f" ] && [ $n -lt 6 ] || continue
    seed result_json "$f" "$(basename "$f")"
    n=$((n + 1))
done
cat > "$C/lmeval_json/lm-eval-0.4.json" <<'EOF'
{
  "results": {
    "arc_challenge": {"alias": "arc_challenge", "acc,none": 0.4352, "acc_stderr,none": 0.0145, "acc_norm,none": 0.4625, "acc_norm_stderr,none": 0.0146},
    "hellaswag": {"acc,none": 0.5715, "acc_stderr,none": 0.0049},
    "lambada_openai": {"perplexity,none": 3.39, "perplexity_stderr,none": 0.066, "acc,none": 0.7377, "acc_stderr,none": "N/A"},
    "mmlu_astronomy": {"acc,none": 0.41},
    "gsm8k": {"exact_match,strict-match": 0.14}
  },
  "n-samples": {"arc_challenge": {"original": 1172, "effective": 1172}, "hellaswag": {"original": 10042, "effective": 10042}},
  "n-shot": {"arc_challenge": 0, "hellaswag": 0},
  "configs": {"arc_challenge": {"dataset_path": "allenai/ai2_arc", "dataset_name": "ARC-Challenge"}},
  "config": {"model": "hf", "model_args": "pretrained=meta-llama/Llama-2-7b-hf,dtype=float16,load_in_4bit=True,bnb_4bit_quant_type=nf4", "batch_size": 1, "limit": null},
  "lm_eval_version": "0.4.2",
  "git_hash": "abc1234",
  "date": 1714521600.0
}
EOF
cat > "$C/lmeval_json/intel.json" <<'EOF'
{
  "config": {"model_name": "Intel/Llama-2-7b-int4-inc", "model_sha": "abc123", "model_params": 7.24, "model_size": 3.9, "precision": "4bit"},
  "results": {
    "arc:challenge": {"acc,none": 0.42, "acc_stderr,none": 0.014},
    "arc:easy": {"acc,none": 0.74},
    "lambada:openai": {"acc,none": 0.71},
    "truthfulqa:mc1": {"acc,none": 0.25},
    "winogrande": {"acc,none": 0.68}
  },
  "task_info": {"weight_dtype": "int4", "compute_dtype": "float16"},
  "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": true, "desc_act": false, "nsamples": 128, "seqlen": 2048}
}
EOF
# a result file made by import from the two above, when out/lowbit is built
if [ -x out/lowbit ]; then
    mkdir -p "$FX/imp"
    out/lowbit import "$C/lmeval_json/lm-eval-0.4.json" "$C/lmeval_json/intel.json" --out "$FX/imp" \
        >/dev/null 2>&1 || true
    for f in "$FX"/imp/results/*.json; do [ -f "$f" ] && seed result_json "$f" "import-$(basename "$f")"; done
fi
# text_path: cells separated by 0x1e (models.csv's nine, then the recipe's id, algorithm,
# compute_dtype, calib_set)
printf 'm\036${LOWBIT_DATA}/models/stories260K.gguf\036\036Good model\036llama\036\036pretrained\036MIT\036a note, "quoted"\nline 2\036fp32\036fp\036fp32\036' \
    > "$C/text_path/plain"
printf 'x\036p\036\036caf\303\251 \342\200\256gnp.exe \360\237\230\200\036=cmd\036\036\036\036<b>n</b>\036r\036GPTQ\036bf16\036groups_merged' \
    > "$C/text_path/unicode"
printf 'x\036p\036\036caf\351\036\036\036\036\036\001\036r\036rtn\036\036' > "$C/text_path/latin1"
rm -rf "$FX"
for t in gguf safetensors hf_config tokenizer_json llama2c csv task_jsonl lmeval_json result_json \
         text_path; do
    printf "%s: %s files\n" "$t" "$(ls "$C/$t" | wc -l)"
done

#!/bin/sh
# Build tests/ggml_oracle.c against ggml's own prebuilt library (llama.cpp de3ff81, as shipped in
# the npm package @node-llama-cpp/linux-x64 3.22.1 that ../shared/tools/llamacpp-peer installs).
#   tests/ggml_oracle.sh [DIR]    (default DIR: out/ggml-oracle)
# Installs node-llama-cpp 3.22.1 into DIR (npm, no build), clones the llama.cpp source bundle the
# package ships for ggml.h, and writes DIR/ggml_oracle. tests/test_iquants.c uses DIR/ggml_oracle
# when it exists (LOWBIT_GGML_ORACLE overrides the path) and says "skipped" otherwise.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/out/ggml-oracle}
mkdir -p "$DIR"
cd "$DIR"
if [ ! -d node_modules/node-llama-cpp ]; then
    printf '{"private":true,"dependencies":{"node-llama-cpp":"3.22.1"}}\n' > package.json
    NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --ignore-scripts >npm.log 2>&1
fi
BINS=$PWD/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
[ -d llama.cpp ] || git -c advice.detachedHead=false clone -q \
    node_modules/node-llama-cpp/llama/gitRelease.bundle llama.cpp
cc -O2 -Wall -Wextra -o ggml_oracle "$ROOT/tests/ggml_oracle.c" -Illama.cpp/ggml/include \
    "$BINS/libggml-base.so" -Wl,-rpath,"$BINS"
L=llama.cpp
g++ -std=c++17 -O1 -o llama-quantize $L/tools/quantize/main.cpp $L/tools/quantize/quantize.cpp \
    -I$L/common -I$L/include -I$L/ggml/include -I$L/vendor -I$L/tools/quantize \
    "$BINS/libllama.v0.5.0.so" "$BINS/libllama-common.so" "$BINS/libggml-base.so" \
    "$BINS/libggml.v0.5.0.so" -Wl,-rpath,"$BINS"
echo "ok: $DIR/ggml_oracle and $DIR/llama-quantize (llama.cpp $(git -C llama.cpp rev-parse --short HEAD))"

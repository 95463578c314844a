#!/usr/bin/env bash
# Builds the offload GPU test and engine_bench here and bundles them with their non-system
# libraries into dist/offload (git-ignored). Device command (carry ["dist/offload"]):
#   bash tools/gpu/device_offload_bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGETS=(tools/gpu/offload_test tools/gpu/engine_bench tools/make_synthetic_model)
bazel build //tools/gpu:offload_test //tools/gpu:engine_bench //tools:make_synthetic_model
BIN=$(bazel info bazel-bin)
rm -rf dist/offload
mkdir -p dist/offload/lib
for t in "${TARGETS[@]}"; do
  cp "$BIN/$t" dist/offload/
  ldd "$BIN/$t" | awk '/=>/ {print $3}' |
    grep -v -E 'cuda|/libc\.so|libm\.so|libdl\.so|libpthread|librt\.so|ld-linux|libstdc\+\+|libgcc_s|libcublas' |
    xargs -r -I{} cp -L {} dist/offload/lib/ || true
done
du -sh dist/offload

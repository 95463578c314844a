#!/usr/bin/env bash
# Builds the offload GPU test and engine_bench here and bundles them with their non-system
# libraries into dist/offload (git-ignored). Device command (carry ["dist/offload"]):
#   bash tools/gpu/device_offload_bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGETS=(tools/gpu/offload_test tools/gpu/engine_bench tools/make_synthetic_model)
bazel build //tools/gpu:offload_test //tools/gpu:engine_bench //tools:make_synthetic_model
BIN=$(bazel info bazel-bin)
tools/bundle.sh dist/offload "$BIN" "${TARGETS[@]}"

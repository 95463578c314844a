#!/usr/bin/env bash
# Builds moe_server, moe_bench and make_synthetic_model here (no GPU needed) and bundles
# them with their non-system shared libraries into dist/serving/ (git-ignored), for
# tools/bench/device_serving.sh on the GPU machine:
#
#   tools/bench/bundle_serving.sh
#   device tool: run(command="bash tools/bench/device_serving.sh", carry=["dist/serving"])
#
# Extra arguments go to bazel build (e.g. --config=cpu for a CPU-only bundle).
set -euo pipefail
cd "$(dirname "$0")/../.."
TARGETS=(server/moe_server tools/bench/moe_bench tools/make_synthetic_model)
bazel build "$@" //server:moe_server //tools/bench:moe_bench //tools:make_synthetic_model
BIN=$(bazel info "$@" bazel-bin 2> /dev/null)
tools/bundle.sh dist/serving "$BIN" "${TARGETS[@]}"
echo
echo "device command (carry [\"dist/serving\"]):"
echo "  bash tools/bench/device_serving.sh"

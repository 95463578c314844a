#!/usr/bin/env bash
# Builds the GPU suite here (no GPU needed), bundles the binaries with their non-system
# libraries into dist/ (git-ignored; see shared/BUILDING.md) and prints the command to
# run on the GPU machine. With --run-here it also runs them (on a machine with a GPU).
#
#   tools/gpu/run_gpu_tests.sh            # build + bundle, print the device command
#   device tool: run(command=<printed>, carry=["dist"])
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGETS=(tools/gpu/kernel_test tools/gpu/sampling_test tools/gpu/runner_test tools/gpu/engine_bench tools/gpu/offload_test
  tools/gpu/default_model_check tools/gpu/experts_bench tools/make_synthetic_model)
bazel build //tools/gpu:all //tools:make_synthetic_model

tools/bundle.sh dist/gpu "$(bazel info bazel-bin)" "${TARGETS[@]}"
cp tools/gpu/device_run.sh dist/gpu/

echo
echo "device command (carry [\"dist\"]):"
echo "  bash dist/gpu/device_run.sh"
if [[ "${1:-}" == "--run-here" ]]; then bash dist/gpu/device_run.sh; fi

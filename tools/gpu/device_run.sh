#!/usr/bin/env bash
# Runs on the GPU machine from the repository root (bundled into dist/gpu by
# run_gpu_tests.sh). Logs go to $OUT when the device tool sets it.
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/dist/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader || true
rc=0
for bin in dist/gpu/kernel_test dist/gpu/runner_test; do
  [[ -x "$bin" ]] || continue
  name=$(basename "$bin")
  timeout 240 "$bin" "$@" > "$OUT/$name.log" 2>&1
  r=$?
  echo "== $name exit $r"
  grep -v '^ok ' "$OUT/$name.log" | tail -60
  [[ $r -ne 0 ]] && rc=$r
done
exit $rc

#!/usr/bin/env bash
# Runs on the GPU machine from the repository root (bundled into dist/gpu by
# run_gpu_tests.sh): the kernel suite, the runner's end-to-end check against the
# transformers references, then (unless --no-bench) engine_bench on a synthetic
# OLMoE-1B-7B-shaped checkpoint made there. Logs and JSON go to $OUT when the device tool
# sets it.
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/dist/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader || true
rc=0
for bin in dist/gpu/kernel_test dist/gpu/runner_test; do
  [[ -x "$bin" ]] || continue
  name=$(basename "$bin")
  timeout 240 "$bin" > "$OUT/$name.log" 2>&1
  r=$?
  echo "== $name exit $r"
  grep -v '^ok ' "$OUT/$name.log" | tail -40
  [[ $r -ne 0 ]] && rc=$r
done
if [[ "${1:-}" != "--no-bench" && -x dist/gpu/engine_bench ]]; then
  if [[ ! -f /tmp/olmoe/config.json ]]; then
    dist/gpu/make_synthetic_model --profile olmoe-1b-7b --seed 1 --out /tmp/olmoe > "$OUT/make_model.log" 2>&1 ||
      { echo "make_synthetic_model failed"; tail -5 "$OUT/make_model.log"; }
  fi
  timeout 300 dist/gpu/engine_bench --model /tmp/olmoe --batches 1,16,64 --context 128 --steps 32 \
    --prompt 512 --json-out "$OUT/engine_bench.json" 2>&1 | tee "$OUT/engine_bench.log"
  r=${PIPESTATUS[0]}
  echo "== engine_bench exit $r"
fi
exit $rc

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
  # Three variants in one session, so before/after share the device and its state:
  # baseline = cuBLAS per-expert loop + host sync per MoE layer, eager;
  # small_experts = device-side small-batch expert kernels, eager; graphs = both + CUDA graphs.
  : > "$OUT/engine_bench.log"
  for variant in baseline small_experts graphs; do
    case $variant in
      baseline) envs=(MOE_CUDA_SMALL_BATCH_EXPERTS=0 MOE_CUDA_GRAPHS=0) ;;
      small_experts) envs=(MOE_CUDA_GRAPHS=0) ;;
      graphs) envs=() ;;
    esac
    echo "== engine_bench variant $variant (${envs[*]:-defaults})" | tee -a "$OUT/engine_bench.log"
    env "${envs[@]}" timeout 200 dist/gpu/engine_bench --model /tmp/olmoe --batches 1,16,64 --context 128 \
      --steps 32 --prompt 512 --json-out "$OUT/engine_bench_$variant.json" 2>&1 | tee -a "$OUT/engine_bench.log"
    r=${PIPESTATUS[0]}
    echo "== engine_bench $variant exit $r"
  done
  # With MOE_NCU=1: GPU time (Nsight Compute) of the small-batch expert kernels in a few
  # eager decode steps at batch 1 and 64 (only decode steps launch them: every prefill of
  # the bench has > 64 tokens). Not yet run on the device in this form.
  if [[ "${MOE_NCU:-0}" == 1 ]] && command -v ncu > /dev/null; then
    MOE_CUDA_GRAPHS=0 timeout 240 ncu --metrics gpu__time_duration.sum,dram__bytes_read.sum \
      --kernel-name regex:ExpertGemv --launch-count 400 --print-summary per-kernel \
      dist/gpu/engine_bench --model /tmp/olmoe --batches 1,64 --context 128 --steps 2 --prompt 128 \
      > "$OUT/ncu.txt" 2>&1
    echo "== ncu exit $? ($(wc -l < "$OUT/ncu.txt") lines in ncu.txt)"
  fi
fi
exit $rc

#!/usr/bin/env bash
# Runs on the GPU machine from the repository root (bundled into dist/gpu by
# run_gpu_tests.sh): the kernel suite, the runner's end-to-end check against the
# transformers references, the offload check, the expert-kernel microbenchmark, then
# (unless --no-bench) engine_bench on a synthetic OLMoE-1B-7B-shaped checkpoint made there
# (default kernels, then the CUDA-core expert kernels for comparison), and expert-cache
# policy rows at batch 8. Logs and JSON go to $OUT (also packed into $OUT/results.tgz).
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/dist/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
OUT="${OUT:-/tmp/gpu_out}"
R="$OUT/results"
mkdir -p "$R"
nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader || true
rc=0
for bin in dist/gpu/kernel_test dist/gpu/sampling_test dist/gpu/runner_test dist/gpu/offload_test dist/gpu/default_model_check; do
  [[ -x "$bin" ]] || continue
  name=$(basename "$bin")
  timeout 240 "$bin" > "$R/$name.log" 2>&1
  r=$?
  echo "== $name exit $r"
  grep -v '^ok ' "$R/$name.log" | tail -25
  [[ $r -ne 0 ]] && rc=$r
done
if [[ -x dist/gpu/experts_bench ]]; then
  timeout 120 dist/gpu/experts_bench --batches 1,16,64 --reps 50 > "$R/experts_bench.txt" 2>&1
  echo "== experts_bench exit $?"
  tail -30 "$R/experts_bench.txt"
fi
if [[ "${1:-}" != "--no-bench" && -x dist/gpu/engine_bench ]]; then
  if [[ ! -f /tmp/olmoe/config.json ]]; then
    dist/gpu/make_synthetic_model --profile olmoe-1b-7b --seed 1 --out /tmp/olmoe > "$R/make_model.log" 2>&1 ||
      { echo "make_synthetic_model failed"; tail -5 "$R/make_model.log"; }
  fi
  for variant in default fma; do
    case $variant in
      default) envs=(MOE_SBE_KERNEL=mma); batches=1,4,16,64,256 ;;
      fma) envs=(MOE_SBE_KERNEL=fma); batches=1,64 ;;
    esac
    echo "== engine_bench $variant (${envs[*]})" | tee -a "$R/engine_bench.log"
    env "${envs[@]}" timeout 200 dist/gpu/engine_bench --model /tmp/olmoe --batches $batches --context 128 \
      --steps 32 --prompt 2048 --json-out "$R/engine_bench_$variant.json" 2>&1 | tee -a "$R/engine_bench.log" | grep -E '^\||copy|loaded|rror'
    echo "== engine_bench $variant exit ${PIPESTATUS[0]}"
  done
  # Expert-cache policies at batch 8 with a 50% cache (LRU thrashes when a step's experts
  # outnumber the slots).
  for policy in lfu belady; do
    for prefetch in off next-gate; do
      name="offload_policy_${policy}_${prefetch}"
      echo "== $name" | tee -a "$R/engine_bench.log"
      timeout 150 dist/gpu/engine_bench --model /tmp/olmoe --batches 1,8,32 --context 128 --steps 24 --prompt 128 \
        --offload on --cache-fraction 0.5 --prefetch $prefetch --policy $policy --json-out "$R/$name.json" 2>&1 |
        tee -a "$R/engine_bench.log" | grep -E '^\| decode \| on|rror'
    done
  done
fi
tar czf "$OUT/results.tgz" -C "$OUT" results
exit $rc

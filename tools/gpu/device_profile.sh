#!/usr/bin/env bash
# Runs on the GPU machine (bundled in dist/gpu): per-kernel GPU time and DRAM bytes of
# eager decode steps (graphs off, so every kernel is profiled on its own) of the synthetic
# OLMoE-1B-7B model at the batches given (default 1 and 64), through Nsight Compute.
# Output: $OUT/ncu_b<batch>.txt (the per-kernel summary).
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/dist/gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
MODEL="${MOE_PROFILE_MODEL:-/tmp/olmoe}"
if [[ ! -f $MODEL/config.json ]]; then
  dist/gpu/make_synthetic_model --profile olmoe-1b-7b --seed 1 --out "$MODEL" > "$OUT/make_model.log" 2>&1 ||
    { echo "make_synthetic_model failed"; tail -5 "$OUT/make_model.log"; exit 1; }
fi
for b in ${MOE_PROFILE_BATCHES:-1 64}; do
  # The bench prefills (> 64 tokens: cuBLAS path), warms up 3 steps, then times --steps;
  # ncu serialises kernels, so the figures are per-kernel GPU times, not the step time.
  MOE_CUDA_GRAPHS=0 timeout 280 ncu --clock-control none \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum \
    --print-summary per-kernel \
    dist/gpu/engine_bench --model "$MODEL" --batches "$b" --context 128 --steps 2 --prompt 128 \
    > "$OUT/ncu_b$b.txt" 2>&1
  echo "== ncu batch $b exit $? ($(wc -l < "$OUT/ncu_b$b.txt") lines)"
done

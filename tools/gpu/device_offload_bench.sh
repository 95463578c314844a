#!/usr/bin/env bash
# Runs on the GPU machine from the repository root, binaries bundled in dist/offload
# (tools/gpu/bundle_offload.sh): the offload GPU test, then engine_bench --offload on for
# the OLMoE-1B-7B shape with standard, pre-gated (and decoupled-router) routing, expert caches of 25% and 50%
# of the experts, prefetch off (on demand) against the routing's predictor, batches 1, 8,
# 32. Each engine_bench first measures the all-resident runner (--compare-resident: the
# compute-only step time of the bound), then the offloaded one. JSON and logs to $OUT.
#   MOE_OFFLOAD_FRACS ("0.25 0.5"), MOE_OFFLOAD_BATCHES ("1,8,32"), MOE_OFFLOAD_STEPS (24),
#   MOE_OFFLOAD_ROUTINGS ("standard pregated"; also "router"), MOE_OFFLOAD_TEST (1: run offload_test),
#   MOE_OFFLOAD_POLICY (lfu), MOE_OFFLOAD_BIN (dist/offload: where the binaries are).
set -uo pipefail
D=${MOE_OFFLOAD_BIN:-dist/offload}
export LD_LIBRARY_PATH="$PWD/$D/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
OUT="${OUT:-/tmp/offload_out}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader || true
free -g | head -2
if [[ "${MOE_OFFLOAD_TEST:-1}" == 1 ]]; then
  timeout 300 $D/offload_test > "$OUT/offload_test.log" 2>&1
  echo "== offload_test exit $? ($(tail -1 "$OUT/offload_test.log"))"
  grep '^FAIL' "$OUT/offload_test.log" | head -20
fi
for routing in ${MOE_OFFLOAD_ROUTINGS:-standard pregated}; do
  dir=/tmp/olmoe_$routing
  if [[ ! -f $dir/config.json ]]; then
    $D/make_synthetic_model --profile olmoe-1b-7b --seed 1 --routing "$routing" --out "$dir" > "$OUT/make_$routing.log" 2>&1 ||
      { echo "make_synthetic_model $routing failed"; tail -5 "$OUT/make_$routing.log"; continue; }
  fi
  predictor=next-gate
  [[ $routing == pregated ]] && predictor=pregate
  [[ $routing == router ]] && predictor=router
  for frac in ${MOE_OFFLOAD_FRACS:-0.25 0.5}; do
    for prefetch in off $predictor; do
      name="olmoe_${routing}_cache${frac}_${prefetch}"
      echo "== $name" | tee -a "$OUT/engine_bench_offload.log"
      MOE_ROUTING=$routing timeout 240 $D/engine_bench --model "$dir" --batches "${MOE_OFFLOAD_BATCHES:-1,8,32}" \
        --context 128 --steps "${MOE_OFFLOAD_STEPS:-24}" --prompt 128 --offload on --cache-fraction "$frac" \
        --prefetch "$prefetch" --policy "${MOE_OFFLOAD_POLICY:-lfu}" --compare-resident --json-out "$OUT/$name.json" 2>&1 |
        tee -a "$OUT/engine_bench_offload.log" | grep -E '^\| (decode|prefill)|loaded|copy|Forward|rror'
      echo "== $name exit ${PIPESTATUS[0]}"
    done
  done
done

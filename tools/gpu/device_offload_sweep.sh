#!/usr/bin/env bash
# Runs on the GPU machine from the repository root: engine_bench --offload on over an
# in-memory synthetic model (no checkpoint on disk: the Mixtral-8x7B shape is larger than
# the device's disk), for one profile and one routing per call, every cache fraction and
# prefetch mode of the issue-6 table in one process (the model is built once; each pass
# creates and destroys its own runner and pinned pool).
#
#   bash tools/gpu/device_offload_sweep.sh PROFILE ROUTING [FRACTIONS] [BATCHES] [STEPS]
#     PROFILE   qwen3-30b-a3b | mixtral-8x7b | olmoe-1b-7b | ...
#     ROUTING   standard | pregated | router
#     FRACTIONS comma list (default 0.25,0.5,0.75)
#   env: MOE_SWEEP_BIN (dist/sweep: engine_bench + lib/), MOE_SWEEP_RESIDENT (1: measure the
#   all-resident step first, the compute-only part of the bound; 0 when the model cannot fit),
#   MOE_SWEEP_DISTINCT (16: distinct random expert tensors the in-memory model cycles through),
#   MOE_SWEEP_POLICY (lfu).
# Output in $OUT: sweep_PROFILE_ROUTING.{log,json}.
set -uo pipefail
PROFILE=$1
ROUTING=$2
FRACS=${3:-0.25,0.5,0.75}
BATCHES=${4:-1,8,32}
STEPS=${5:-12}
D=${MOE_SWEEP_BIN:-dist/sweep}
export LD_LIBRARY_PATH="$PWD/$D/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
OUT="${OUT:-/tmp/sweep_out}"
mkdir -p "$OUT"
predictor=next-gate
[[ $ROUTING == pregated ]] && predictor=pregate
[[ $ROUTING == router ]] && predictor=router
resident=()
[[ ${MOE_SWEEP_RESIDENT:-1} == 1 ]] && resident=(--compare-resident)
name="sweep_${PROFILE}_${ROUTING}"
{ nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader; free -g | head -2; } > "$OUT/$name.env" 2>&1
MOE_ROUTING=$ROUTING $D/engine_bench --synthetic "$PROFILE" --routing "$ROUTING" --seed 1 \
  --distinct-experts "${MOE_SWEEP_DISTINCT:-16}" --batches "$BATCHES" --context 128 --steps "$STEPS" --prompt 128 \
  --offload on --cache-fraction "$FRACS" --prefetch "off,$predictor" --policy "${MOE_SWEEP_POLICY:-lfu}" \
  "${resident[@]}" --json-out "$OUT/$name.json" > "$OUT/$name.log" 2>&1
rc=$?
grep -E '^\| (decode|prefill)|loaded|built|copy|GEMM|rror|fail' "$OUT/$name.log" | cut -c1-400
echo "== $name exit $rc"

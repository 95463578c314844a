#!/usr/bin/env bash
# Hugging Face transformers baseline rows for BENCHMARKS.md, on the GPU machine, from the
# repository root (the device tool copies the working tree there):
#
#   bash tools/baselines/device_hf.sh [MODEL_DIR [OFFLOAD_GPU_GIB]]
#
# MODEL_DIR defaults to /tmp/olmoe; when it has no config.json and dist/gpu/make_synthetic_model
# was carried (tools/gpu/run_gpu_tests.sh bundles it), the OLMoE-1B-7B-shaped synthetic
# checkpoint of BENCHMARKS.md is made there first (--profile olmoe-1b-7b --seed 1).
# Runs tools/baselines/hf_bench.py in bf16 at batches $HF_BATCHES (default 1,4,16,64,256),
# then, when OFFLOAD_GPU_GIB is given, again with accelerate offload (max_memory GPU 0 =
# OFFLOAD_GPU_GIB GiB, the rest on the CPU) at $HF_OFFLOAD_BATCHES (default 1,8,32).
# Logs and JSON go to $OUT (default /tmp/hf_out): hf_bench.{log,json},
# hf_bench_offload.{log,json}, env.txt. Each mode is bounded by `timeout`
# ($HF_TIMEOUT_S, default 270 s each) and each decode row by --max-seconds-per-row
# ($HF_MAX_SECONDS, default 20; $HF_OFFLOAD_MAX_SECONDS, default 25), so both modes fit one
# 10-minute device call with the model already made. MOE_COMMIT is passed through to the
# JSON. Exit status: the first failing mode's (3 = accelerate missing for offload).
set -uo pipefail
MODEL="${1:-/tmp/olmoe}"
OFFLOAD_GIB="${2:-}"
OUT="${OUT:-/tmp/hf_out}"
TIMEOUT_S="${HF_TIMEOUT_S:-270}"
mkdir -p "$OUT"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

{
  nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader || true
  python3 -c 'import sys; print("python", sys.version.split()[0])'
  for pkg in torch transformers accelerate; do
    python3 -c "import importlib.metadata as m; print('$pkg', m.version('$pkg'))" 2>/dev/null || echo "$pkg not installed"
  done
} 2>&1 | tee "$OUT/env.txt"

if [[ ! -f "$MODEL/config.json" ]]; then
  if [[ -x dist/gpu/make_synthetic_model ]]; then
    echo "== making $MODEL (make_synthetic_model --profile olmoe-1b-7b --seed 1)"
    LD_LIBRARY_PATH="$PWD/dist/gpu/lib:${LD_LIBRARY_PATH:-}" timeout 300 dist/gpu/make_synthetic_model \
      --profile olmoe-1b-7b --seed 1 --out "$MODEL" > "$OUT/make_model.log" 2>&1 ||
      { echo "make_synthetic_model failed"; tail -5 "$OUT/make_model.log"; exit 1; }
  else
    echo "no $MODEL/config.json and no dist/gpu/make_synthetic_model to make it" >&2
    exit 1
  fi
fi

rc=0
echo "== hf_bench bf16 ($MODEL)"
timeout "$TIMEOUT_S" python3 -u "$HERE/hf_bench.py" --model "$MODEL" --batches "${HF_BATCHES:-1,4,16,64,256}" \
  --prompt-len 128 --new-tokens 128 --dtype bf16 --max-seconds-per-row "${HF_MAX_SECONDS:-20}" \
  --json-out "$OUT/hf_bench.json" 2>&1 | tee "$OUT/hf_bench.log"
r=${PIPESTATUS[0]}
echo "== hf_bench exit $r"
[[ $r -ne 0 ]] && rc=$r

if [[ -n "$OFFLOAD_GIB" ]]; then
  echo "== hf_bench accelerate offload, GPU 0 max_memory ${OFFLOAD_GIB} GiB ($MODEL)"
  timeout "$TIMEOUT_S" python3 -u "$HERE/hf_bench.py" --model "$MODEL" \
    --batches "${HF_OFFLOAD_BATCHES:-1,8,32}" --prompt-len 128 --new-tokens 128 --dtype bf16 \
    --max-seconds-per-row "${HF_OFFLOAD_MAX_SECONDS:-25}" --offload --gpu-memory-gib "$OFFLOAD_GIB" \
    --json-out "$OUT/hf_bench_offload.json" 2>&1 | tee "$OUT/hf_bench_offload.log"
  r=${PIPESTATUS[0]}
  echo "== hf_bench offload exit $r"
  [[ $r -ne 0 && $rc -eq 0 ]] && rc=$r
fi
exit "$rc"

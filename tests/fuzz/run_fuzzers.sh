#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, --config=fuzz, in a separate Bazel output base so
# the everyday gcc cache is untouched) and runs each one.
#
#   tests/fuzz/run_fuzzers.sh [SECONDS_PER_TARGET] [--runs N] [--only TARGET] [--jobs J]
#
# SECONDS_PER_TARGET defaults to 30. With --runs N each target stops after N executions
# (and SECONDS, if given explicitly, still bounds it). The committed corpus in
# tests/fuzz/corpus/<target>/ is read, never written: new inputs go to a temp dir
# ($MOE_FUZZ_WORK or a mktemp dir), printed at the end. Exits non-zero on any crash,
# leak, timeout or out-of-memory, printing the reproducer path.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

SECONDS_PER_TARGET=30
RUNS=""
ONLY=""
JOBS=1
SECONDS_GIVEN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --jobs) JOBS="$2"; shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) SECONDS_PER_TARGET="$1"; SECONDS_GIVEN=1; shift ;;
  esac
done
if [ -n "$RUNS" ] && [ $SECONDS_GIVEN -eq 0 ]; then SECONDS_PER_TARGET=0; fi

# target  max_len  dictionary (merged with dict/json.dict unless "-")
TARGETS=(
  "safetensors_header_fuzzer   8192  safetensors.dict"
  "model_config_fuzzer         4096  model_config.dict"
  "tokenizer_fuzzer            1024  -"
  "tokenizer_from_json_fuzzer  65536 tokenizer_json.dict"
  "openai_request_fuzzer       4096  openai.dict"
  "chat_template_parse_fuzzer  8192  jinja.dict"
  "chat_template_render_fuzzer 4096  chat_messages.dict"
)

OUTPUT_BASE=${MOE_FUZZ_OUTPUT_BASE:-/tmp/moe_fuzz_base}
WORK=${MOE_FUZZ_WORK:-$(mktemp -d /tmp/moe_fuzz.XXXXXX)}
mkdir -p "$WORK"

FLAGS="--config=fuzz"
if [ ! -x /usr/local/cuda/bin/nvcc ]; then FLAGS="$FLAGS --config=cpu"; fi
LABELS=()
for entry in "${TARGETS[@]}"; do
  read -r name _ _ <<<"$entry"
  if [ -n "$ONLY" ] && [ "$name" != "$ONLY" ]; then continue; fi
  LABELS+=("//tests/fuzz:$name")
done
if [ ${#LABELS[@]} -eq 0 ]; then echo "no such target: $ONLY" >&2; exit 2; fi
echo "== building ${#LABELS[@]} fuzz targets (output base $OUTPUT_BASE)"
# shellcheck disable=SC2086
if ! bazel --output_base="$OUTPUT_BASE" build $FLAGS "${LABELS[@]}"; then
  echo "FAILED: fuzz targets did not build" >&2
  exit 2
fi
# shellcheck disable=SC2086
BIN=$(bazel --output_base="$OUTPUT_BASE" info $FLAGS bazel-bin 2>/dev/null)/tests/fuzz

failures=0
summary=()
for entry in "${TARGETS[@]}"; do
  read -r name max_len dict <<<"$entry"
  if [ -n "$ONLY" ] && [ "$name" != "$ONLY" ]; then continue; fi
  out="$WORK/$name"
  mkdir -p "$out/corpus" "$out/artifacts"
  args=(-max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$out/artifacts/")
  if [ "$SECONDS_PER_TARGET" != "0" ]; then args+=(-max_total_time="$SECONDS_PER_TARGET"); fi
  if [ -n "$RUNS" ]; then args+=(-runs="$RUNS"); fi
  if [ "$JOBS" -gt 1 ]; then args+=(-fork="$JOBS"); fi
  if [ "$dict" != "-" ]; then
    cat tests/fuzz/dict/json.dict "tests/fuzz/dict/$dict" > "$out/merged.dict"
    args+=(-dict="$out/merged.dict")
  fi
  echo "== $name: ${args[*]}"
  start=$(date +%s)
  # New inputs land in $out/corpus (first dir); the committed corpus is only read.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
  MOE_SOURCE_DIR="$ROOT" \
    "$BIN/$name" "${args[@]}" "$out/corpus" "tests/fuzz/corpus/$name" \
    $( [ -d "tests/fuzz/regressions/$name" ] && echo "tests/fuzz/regressions/$name" ) \
    > "$out/log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log" | awk '{print $2}' | tail -1)
  new=$(ls "$out/corpus" | wc -l)
  if [ $rc -ne 0 ]; then
    failures=$((failures + 1))
    repro=$(ls "$out"/artifacts/* 2>/dev/null | head -5 | tr '\n' ' ')
    echo "FAILED: $name exited $rc after ${secs}s; reproducer: ${repro:-none (see $out/log)}"
    grep -E 'ERROR: |SUMMARY: |FUZZ INVARIANT|runtime error' "$out/log" | head -5
    summary+=("$name FAILED rc=$rc execs=${execs:-?} time=${secs}s repro=${repro:-none} log=$out/log")
  else
    summary+=("$name ok execs=${execs:-?} time=${secs}s new_corpus=$new")
  fi
done

echo "== summary (work dir $WORK)"
printf '%s\n' "${summary[@]}"
if [ $failures -ne 0 ]; then
  echo "$failures fuzz target(s) failed"
  exit 1
fi
echo "all fuzz targets clean"

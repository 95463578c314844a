#!/usr/bin/env bash
# Checks that ThreadSanitizer understands absl::Mutex / absl::Notification when linked
# against the instrumented abseil from build_absl_tsan.sh, with the project's
# suppressions (tsan_suppressions.cc) compiled in, exactly as --config=tsan does.
#
#   tools/sanitizers/check_absl_tsan.sh [PREFIX]   # default /opt/absl-tsan; RUNS=20
#
# Passes when: the correctly locked probe gives no report in RUNS runs, the probe with one
# unlocked increment (-DMOE_PROBE_RACE) is reported as a race in our code, and every
# probe process loaded abseil from PREFIX only. Also prints, for contrast, what the
# correct probe gives against Debian's uninstrumented abseil (false races expected).
set -uo pipefail
cd "$(dirname "$0")"
PREFIX="${1:-/opt/absl-tsan}"
RUNS="${RUNS:-20}"
WORK="$(mktemp -d /tmp/absl_tsan_check.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

LIBS="-labsl_synchronization -labsl_graphcycles_internal -labsl_stacktrace
  -labsl_symbolize -labsl_debugging_internal -labsl_demangle_internal
  -labsl_malloc_internal -labsl_time -labsl_civil_time -labsl_time_zone -labsl_strings
  -labsl_strings_internal -labsl_int128 -labsl_base -labsl_spinlock_wait
  -labsl_throw_delegate -labsl_raw_logging_internal -labsl_log_severity -lpthread"
CXX="g++ -std=c++17 -O1 -g -fsanitize=thread"
TSAN="-L$PREFIX/lib -Wl,-rpath,$PREFIX/lib"

[ -e "$PREFIX/lib/libabsl_synchronization.so.20220623" ] ||
  { echo "FAIL: no instrumented abseil in $PREFIX (run build_absl_tsan.sh)"; exit 1; }
$CXX absl_mutex_probe.cc tsan_suppressions.cc -o "$WORK/ok" $TSAN $LIBS || exit 1
$CXX -DMOE_PROBE_RACE absl_mutex_probe.cc tsan_suppressions.cc -o "$WORK/racy" $TSAN $LIBS || exit 1
$CXX absl_mutex_probe.cc -o "$WORK/debian" $LIBS || exit 1

fail=0
LD_DEBUG=libs "$WORK/ok" 2>&1 >/dev/null | grep 'calling init:.*libabsl' >"$WORK/loaded"
if [ ! -s "$WORK/loaded" ] || grep -v "$PREFIX/lib" "$WORK/loaded"; then
  echo "FAIL: abseil not (only) loaded from $PREFIX/lib"; fail=1
else
  echo "ok: all $(wc -l <"$WORK/loaded") abseil libraries loaded from $PREFIX/lib"
fi
reports=0
for i in $(seq "$RUNS"); do
  "$WORK/ok" >/dev/null 2>"$WORK/ok.err"
  if grep -q 'WARNING: ThreadSanitizer' "$WORK/ok.err"; then
    reports=$((reports + 1)); cp "$WORK/ok.err" "$WORK/ok.first.err" 2>/dev/null
  fi
done
if [ "$reports" -eq 0 ]; then
  echo "ok: correctly locked probe, $RUNS runs, no TSan report"
else
  echo "FAIL: correctly locked probe reported in $reports of $RUNS runs:"
  grep -A12 'WARNING: ThreadSanitizer' "$WORK/ok.first.err" | head -40; fail=1
fi
"$WORK/racy" >/dev/null 2>"$WORK/racy.err"
if grep -q 'SUMMARY: ThreadSanitizer: data race .*absl_mutex_probe.cc' "$WORK/racy.err"; then
  echo "ok: unlocked increment reported: $(grep -m1 SUMMARY "$WORK/racy.err")"
else
  echo "FAIL: unlocked increment was not reported"; fail=1
fi
"$WORK/debian" >/dev/null 2>"$WORK/debian.err"
echo "contrast, Debian's abseil: $(grep -c 'WARNING: ThreadSanitizer' "$WORK/debian.err") report(s) on the correct probe"
exit $fail

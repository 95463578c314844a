#!/usr/bin/env bash
# Runs every CPU test (`bazel test //...`), then a short run of each libFuzzer target
# (tests/fuzz/run_fuzzers.sh, MOE_FUZZ_SECONDS per target, default 15; 0 skips), and
# prints one closing line "N passed, N failed" counting Catch2 test cases (a test binary
# that crashed, timed out or printed no Catch2 summary counts as one failed case; a
# passing non-Catch2 test as one passed case) plus one case per fuzz target.
set -uo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }
FLAGS=$(./tools/bazel_flags.sh)
# shellcheck disable=SC2086
bazel test $FLAGS --test_summary=short --keep_going //... "$@" 2>&1 | tee /tmp/moe_bazel_test.log
rc=${PIPESTATUS[0]}
FUZZ_SECONDS=${MOE_FUZZ_SECONDS:-15}
: > /tmp/moe_fuzz.log
if [ "$FUZZ_SECONDS" != "0" ]; then
  tests/fuzz/run_fuzzers.sh "$FUZZ_SECONDS" 2>&1 | tee /tmp/moe_fuzz.log
fi
python3 tools/count_tests.py /tmp/moe_bazel_test.log bazel-testlogs /tmp/moe_fuzz.log
count_rc=$?
if [ $rc -ne 0 ] || [ $count_rc -ne 0 ]; then exit 1; fi
exit 0

#!/usr/bin/env python3
"""Counts test cases after `bazel test`: reads each test target's status from Bazel's
summary and its Catch2 totals from bazel-testlogs/<target>/test.log. Prints
"N passed, N failed" and exits 1 if anything failed or no test ran. An optional third
argument is the log of tests/fuzz/run_fuzzers.sh: each fuzz target counts as one case."""
import os
import re
import sys

STATUS = re.compile(r"^(//\S+)\s+(?:\(cached\)\s+)?(PASSED|FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE|FAILED TO BUILD)\b")
ALL_PASSED = re.compile(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)")
SOME_FAILED = re.compile(r"test cases:\s+(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed")
ONLY_FAILED = re.compile(r"test cases:\s+(\d+)\s*\|\s*(\d+) failed")


def count_fuzz(fuzz_log):
    """(passed, failed) from run_fuzzers.sh's summary; a build failure is one failure."""
    passed = failed = 0
    if not fuzz_log or not os.path.exists(fuzz_log):
        return 0, 0
    text = open(fuzz_log, errors="replace").read()
    if not text.strip():
        return 0, 0
    for line in text.splitlines():
        m = re.match(r"^(\w+_fuzzer) (ok|FAILED)\b", line)
        if m:
            if m.group(2) == "ok":
                passed += 1
            else:
                failed += 1
                print(f"FAILED: fuzz target {m.group(1)}: {line}")
    if "fuzz targets did not build" in text:
        failed += 1
        print("FAILED: fuzz targets did not build")
    return passed, failed


def main(log_path, testlogs, fuzz_log=None):
    passed, failed = count_fuzz(fuzz_log)
    targets = {}
    build_failed = False
    with open(log_path, errors="replace") as f:
        for line in f:
            m = STATUS.match(line.strip())
            if m:
                targets[m.group(1)] = m.group(2)
            if "FAILED: Build did NOT complete successfully" in line:
                build_failed = True
    for target, status in sorted(targets.items()):
        rel = target[2:].replace(":", "/")
        log = os.path.join(testlogs, rel, "test.log")
        text = ""
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
        p = f_ = None
        m = ALL_PASSED.search(text)
        if m:
            p, f_ = int(m.group(2)), 0
        else:
            m = SOME_FAILED.search(text)
            if m:
                p, f_ = int(m.group(2)), int(m.group(3))
            else:
                m = ONLY_FAILED.search(text)
                if m:
                    p, f_ = 0, int(m.group(2))
        if p is None:
            p, f_ = (1, 0) if status in ("PASSED", "FLAKY") else (0, 1)
        elif status not in ("PASSED", "FLAKY") and f_ == 0:
            f_ = 1  # crashed after its summary, or timed out
        if f_:
            print(f"FAILED: {target} ({status}, {f_} failed case(s))")
        passed += p
        failed += f_
    if build_failed and not targets:
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))

#!/bin/bash
# The CI soak: 60 s of load after 5 s of warm-up (see RELIABILITY.md for why this many
# clients on the 2-core CI machine). SOAK_MAX_RSS_GROWTH overrides the 5% RSS bound
# (the asan config raises it: there LeakSanitizer checks leaks, and ASan's quarantine
# holds freed memory, so RSS growth measures ASan rather than the server).
set -euo pipefail
exec tools/soak/moe_soak --server server/moe_server --model tests/data/models/olmoe \
  --clients "${SOAK_CLIENTS:-48}" --duration-s "${SOAK_DURATION_S:-55}" --warmup-s 5 \
  --max-rss-growth "${SOAK_MAX_RSS_GROWTH:-0.05}" \
  --report "${TEST_UNDECLARED_OUTPUTS_DIR:-/tmp}/soak.json"

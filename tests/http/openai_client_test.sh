#!/bin/bash
# Runs the official `openai` Python client (tests/http/openai_client_test.py) against
# tests/http/test_server on an OS-chosen port. Debian has no python3-openai package:
# CI installs it from PyPI (`pip install openai`); set MOE_PYTHON to pick the interpreter.
set -euo pipefail

PY=""
for cand in "${MOE_PYTHON:-}" "$(command -v python3 || true)" /usr/local/bin/python3 \
            /usr/bin/python3; do
  if [ -n "$cand" ] && "$cand" -c "import openai" 2>/dev/null; then PY="$cand"; break; fi
done
if [ -z "$PY" ]; then
  echo "no python3 with the openai package: pip install openai (or set MOE_PYTHON)" >&2
  exit 1
fi

TMP="${TEST_TMPDIR:-$(mktemp -d)}"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

source tests/wait_for_port.sh

# start_server NAME [test_server flags...]: starts a test server, sets PORT.
start_server() {
  local name="$1"; shift
  tests/http/test_server tests/data/models/qwen3_moe \
    tests/data/chat_templates/qwen2_5_instruct.jinja "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  wait_for_port "$pid" "$TMP/$name.out" "$TMP/$name.err" 's/^listening on port \([0-9]*\)$/\1/p'
}

start_server server
MAIN_PORT="$PORT"
start_server tools_server --enable-auto-tool-choice  # as vLLM's --tool-call-parser hermes
TOOLS_PORT="$PORT"

"$PY" tests/http/openai_client_test.py --port "$MAIN_PORT" --tools-port "$TOOLS_PORT"

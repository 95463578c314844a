#!/bin/bash
# tools/client/moe_client against the real moe_server started with an API key: the key
# (flag or $MOE_API_KEY) is sent, a missing one fails with UNAUTHENTICATED, and
# --timeout ends a long generation with DEADLINE_EXCEEDED instead of waiting.
set -euo pipefail

TMP="${TEST_TMPDIR:-$(mktemp -d)}"
server/moe_server --model tests/data/models/olmoe --device cpu --host 127.0.0.1 \
  --grpc-port 0 --http-port -1 --num-kv-blocks 256 --api-key sekret \
  >"$TMP/server.out" 2>"$TMP/server.err" &
PID=$!
cleanup() { kill -KILL "$PID" 2>/dev/null || true; }
trap cleanup EXIT

source tests/wait_for_port.sh
wait_for_port "$PID" "$TMP/server.out" "$TMP/server.err" \
  's/^moe_server listening on .*:\([0-9]*\) (gRPC)$/\1/p'
CLIENT=tools/client/moe_client
EP="127.0.0.1:$PORT"

# The model may still be loading: retry while the server answers UNAVAILABLE.
ok=""
for _ in $(seq 1 100); do
  if "$CLIENT" --endpoint "$EP" --prompt "Hello" --max-tokens 4 --api-key sekret \
       --timeout 30 >"$TMP/out" 2>"$TMP/err"; then ok=1; break; fi
  grep -q "(14)" "$TMP/err" || break
  sleep 0.2
done
[ -n "$ok" ] || { cat "$TMP/err"; echo "FAIL: generation with --api-key"; exit 1; }
grep -q "completion 4 tokens" "$TMP/err" || { cat "$TMP/err"; echo "FAIL: summary"; exit 1; }

MOE_API_KEY=sekret "$CLIENT" --endpoint "$EP" --prompt "Hello" --max-tokens 2 --timeout 30 \
  >/dev/null 2>"$TMP/err" || { cat "$TMP/err"; echo "FAIL: \$MOE_API_KEY not used"; exit 1; }

if env -u MOE_API_KEY "$CLIENT" --endpoint "$EP" --prompt "Hello" --max-tokens 2 \
     --timeout 30 >/dev/null 2>"$TMP/err"; then
  echo "FAIL: a call without the key succeeded"; exit 1
fi
grep -q "(16)" "$TMP/err" || { cat "$TMP/err"; echo "FAIL: expected UNAUTHENTICATED"; exit 1; }

start=$(date +%s)
if "$CLIENT" --endpoint "$EP" --prompt "Hello" --max-tokens 1000 --api-key sekret \
     --timeout 0.1 >/dev/null 2>"$TMP/err"; then
  # 1000 tokens in 0.1 s on a CPU is not expected; if it happened the deadline was moot.
  echo "note: finished before the deadline"
else
  grep -q "(4)" "$TMP/err" || { cat "$TMP/err"; echo "FAIL: expected DEADLINE_EXCEEDED"; exit 1; }
fi
[ $(( $(date +%s) - start )) -lt 20 ] || { echo "FAIL: --timeout not honoured"; exit 1; }
echo "moe_client: api key, \$MOE_API_KEY, UNAUTHENTICATED and --timeout all behave"

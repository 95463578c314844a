#!/bin/bash
# A client this project did not write: Python stubs generated at test time from the
# .proto files with Debian's protoc + grpc_python_plugin, run by Debian's python3-grpcio.
# Starts the real moe_server binary on an OS-chosen port, streams generations, then
# checks that SIGTERM drains in-flight work and the server exits 0.
set -euo pipefail

PY=/usr/bin/python3
TMP="${TEST_TMPDIR:-$(mktemp -d)}"
STUBS="$TMP/stubs"
PROTOS="$TMP/protos"
mkdir -p "$STUBS" "$PROTOS/moe/v1" "$PROTOS/health"
cp proto/moe/v1/inference.proto "$PROTOS/moe/v1/"
# Generated under health/ (not grpc/health/v1/) so it cannot shadow the grpc package.
cp proto/grpc/health/v1/health.proto "$PROTOS/health/"
protoc --proto_path="$PROTOS" --python_out="$STUBS" --grpc_python_out="$STUBS" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  "$PROTOS/moe/v1/inference.proto" "$PROTOS/health/health.proto"

server/moe_server --model tests/data/models/olmoe --device cpu --grpc-port 0 \
  --num-kv-blocks 256 --drain-timeout 30 >"$TMP/server.out" 2>"$TMP/server.err" &
PID=$!
cleanup() { kill -KILL "$PID" 2>/dev/null || true; }
trap cleanup EXIT

source tests/wait_for_port.sh
wait_for_port "$PID" "$TMP/server.out" "$TMP/server.err" \
  's/^moe_server listening on .*:\([0-9]*\) .*/\1/p'
echo "server pid $PID listening on port $PORT"

"$PY" tests/server/python_client.py --endpoint "127.0.0.1:$PORT" --stubs "$STUBS" \
  --server-pid "$PID"

set +e
wait "$PID"
RC=$?
set -e
trap - EXIT
echo "--- server log ---"
cat "$TMP/server.err"
if [ "$RC" -ne 0 ]; then
  echo "server exited with $RC after SIGTERM (want 0)"
  exit 1
fi
echo "PASS"

#!/usr/bin/env bash
# Serves the embedded default model: installs what is missing, builds moe_server and runs
# it with configs/server.json (gRPC on 127.0.0.1:50051, OpenAI-compatible HTTP on
# 127.0.0.1:8080; on the CPU when there is no GPU). Extra arguments go to moe_server,
# e.g. `tools/serve.sh --model /path/to/hf-model --http-port 8000`.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install_deps.sh
FLAGS=$(./tools/bazel_flags.sh)
# shellcheck disable=SC2086
bazel build $FLAGS //server:moe_server >&2
BIN="$(bazel info $FLAGS bazel-bin 2>/dev/null)/server/moe_server"
exec "$BIN" --config configs/server.json "$@"

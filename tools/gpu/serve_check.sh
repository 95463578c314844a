#!/usr/bin/env bash
# Bundles moe_server and moe_client (built here) into dist/serve and writes the device
# script that serves with --device cuda through both frontends and checks the greedy
# tokens against the transformers reference. Run on the GPU machine with carry ["dist"]:
#   bash dist/serve/device_serve.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bazel build //server:moe_server //tools/client:moe_client
BIN=$(bazel info bazel-bin 2>/dev/null)
rm -rf dist/serve && mkdir -p dist/serve/lib
for t in server/moe_server tools/client/moe_client; do
  cp "$BIN/$t" dist/serve/
  ldd "$BIN/$t" | awk '/=>/ {print $3}' |
    grep -v -E 'cuda|/libc\.so|libm\.so|libdl\.so|libpthread|librt\.so|ld-linux|libstdc\+\+|libgcc_s|libcublas' |
    xargs -r -I{} cp -L {} dist/serve/lib/ || true
done
cp tools/gpu/device_serve.sh dist/serve/
du -sh dist/serve

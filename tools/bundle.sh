#!/usr/bin/env bash
# Copies built binaries into a bundle folder for the GPU machine, each with the shared
# libraries it needs that the GPU machine lacks (everything but the CUDA runtime, cuBLAS
# and the C/C++ runtime, which are there already): see shared/BUILDING.md.
#
#   tools/bundle.sh OUT_DIR BAZEL_BIN TARGET_PATH...   (TARGET_PATH relative to BAZEL_BIN)
set -euo pipefail
out=$1
bin=$2
shift 2
rm -rf "$out"
mkdir -p "$out/lib"
for t in "$@"; do
  cp "$bin/$t" "$out/"
  ldd "$bin/$t" | awk '/=>/ {print $3}' |
    grep -v -E 'cuda|/libc\.so|libm\.so|libdl\.so|libpthread|librt\.so|ld-linux|libstdc\+\+|libgcc_s|libcublas' |
    xargs -r -I{} cp -L {} "$out/lib/" || true
done
du -sh "$out"

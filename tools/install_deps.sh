#!/usr/bin/env bash
# Installs the Debian packages moe-serve builds and tests with. Idempotent: does nothing
# when everything is already there. The CUDA toolkit is expected in /usr/local/cuda; when
# it is missing the build uses --config=cpu (see tools/bazel_flags.sh).
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libspdlog-dev nlohmann-json3-dev catch2 libcpp-httplib-dev libabsl-dev libcli11-dev
  libpcre2-dev libutf8proc-dev
  python3-grpcio python3-grpc-tools python3-protobuf
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

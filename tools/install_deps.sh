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
  clang libclang-rt-14-dev
  python3-grpcio python3-grpc-tools python3-protobuf python3-pip
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The official OpenAI Python client drives the HTTP gateway's client test; Debian has no
# package of it, so it comes from PyPI (the only non-Debian source, and only for tests).
if ! python3 -c "import openai" 2>/dev/null; then
  echo "install_deps: pip install openai (for tests/http:openai_client_test)"
  python3 -m pip install -q openai 2>/dev/null ||
    python3 -m pip install -q --break-system-packages openai
fi

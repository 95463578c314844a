#!/usr/bin/env bash
# Builds the installed Debian gRPC core libraries (same upstream version, same Debian
# patches, same SONAMEs) with -fsanitize=thread into a prefix, so that
# `bazel test --config=tsan` runs the gRPC frontend tests against an instrumented gRPC.
#
#   tools/sanitizers/build_grpc_tsan.sh [PREFIX]     # PREFIX defaults to /opt/grpc-tsan
#
# Why: Debian's libgrpc/libgpr/libupb are not built with -fsanitize=thread. gRPC hands
# slices, endpoints and call objects between its threads with its own atomics, which TSan
# cannot see, so every server test reported races inside gRPC (see RELIABILITY.md, TSan).
#
# Only the shared libraries our binaries load are built: libgpr, libupb,
# libaddress_sorting, libgrpc (SONAME .29), libgrpc++ and libgrpc++_reflection (.1.51);
# `ldd` of //tests/server:generate_test lists exactly these from gRPC. grpc_cpp_plugin is
# compiled only because libgrpc++_reflection's sources are generated with it; it is not
# installed. No tests, no Python/Ruby/other plugins, no headers (the installed
# /usr/include/grpc* are the same source).
#
# Dependencies are Debian's packages, as in debian/rules (gRPC_*_PROVIDER=package):
# protobuf, OpenSSL, re2, c-ares, zlib, abseil. Abseil's headers and link-time libraries
# are Debian's; at run time every library here has RUNPATH "$ORIGIN:ABSL_PREFIX/lib", so
# the instrumented abseil from build_absl_tsan.sh (same SONAMEs) is the one that loads.
# Run build_absl_tsan.sh first.
#
# Needs root (apt-get) and Debian's source archive (a deb-src entry is added if missing).
# Idempotent: exits early when PREFIX/.built-<version> exists. Takes ~40-70 min on 2 cores.
# Environment: JOBS (parallel compile jobs, default 2), NICE (niceness, default 10),
# ABSL_PREFIX (default /opt/absl-tsan), WORK (scratch dir, default /tmp/grpc-tsan-build;
# removed on success unless KEEP_WORK=1).
set -euo pipefail

PREFIX="${1:-/opt/grpc-tsan}"
JOBS="${JOBS:-2}"
NICE="${NICE:-10}"
ABSL_PREFIX="${ABSL_PREFIX:-/opt/absl-tsan}"
WORK="${WORK:-/tmp/grpc-tsan-build}"

# The binary package may be a binNMU (1.51.1-3+b1); the source version is what apt fetches.
VERSION="$(dpkg-query -W -f='${source:Version}' libgrpc29 2>/dev/null || true)"
if [ -z "$VERSION" ]; then
  echo "build_grpc_tsan: libgrpc29 is not installed (apt-get install libgrpc++-dev)" >&2
  exit 1
fi
STAMP="$PREFIX/.built-$VERSION"
if [ -e "$STAMP" ]; then
  echo "build_grpc_tsan: $PREFIX already holds gRPC $VERSION built with TSan"
  exit 0
fi
if ! ls "$ABSL_PREFIX"/lib/libabsl_base.so.* >/dev/null 2>&1; then
  echo "build_grpc_tsan: no instrumented abseil in $ABSL_PREFIX (run build_absl_tsan.sh)" >&2
  exit 1
fi

# shellcheck source=tools/sanitizers/debian_src.sh
. "$(dirname "$0")/debian_src.sh"
ensure_debian_sources
# The subset of grpc's Build-Depends that the C/C++ core libraries need (the full
# build-dep list pulls in Ruby, Python, Sphinx, googletest and benchmark).
apt-get install -y -qq --no-install-recommends dpkg-dev cmake make g++ pkgconf xz-utils \
  libabsl-dev libprotobuf-dev libprotoc-dev protobuf-compiler libssl-dev libre2-dev \
  libc-ares-dev zlib1g-dev >/dev/null

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
# apt-get source applies debian/patches (external abseil, no BoringSSL, no OpenCensus).
apt-get source -qq "grpc=$VERSION"
SRC="$(find "$WORK" -mindepth 1 -maxdepth 1 -type d -name 'grpc-*' | head -n 1)"
[ -n "$SRC" ] || { echo "build_grpc_tsan: apt-get source left no grpc-* dir" >&2; exit 1; }

# The public headers decide the ABI our code compiles against; they must be Debian's.
for h in grpc/grpc.h grpcpp/server.h grpc/impl/codegen/port_platform.h; do
  if ! cmp -s "$SRC/include/$h" "/usr/include/$h"; then
    echo "build_grpc_tsan: $SRC/include/$h differs from Debian's installed header" >&2
    exit 1
  fi
done

# Same provider/feature options as debian/rules' shared build, plus TSan; no tests and no
# plugins other than grpc_cpp_plugin (needed to generate the reflection service).
# -O1 -g keeps stacks readable. BUILD_WITH_INSTALL_RPATH: the build-tree libraries are
# the ones copied into PREFIX, so they carry the final RUNPATH.
FLAGS="-fsanitize=thread -O1 -g -fno-omit-frame-pointer"
nice -n "$NICE" cmake -S "$SRC" -B "$WORK/build" \
  -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_STANDARD=17 \
  -DBUILD_SHARED_LIBS=ON \
  -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  -DCMAKE_INSTALL_RPATH="\$ORIGIN:$ABSL_PREFIX/lib" \
  -DgRPC_ABSL_PROVIDER=package \
  -DgRPC_CARES_PROVIDER=package \
  -DgRPC_PROTOBUF_PROVIDER=package \
  -DgRPC_RE2_PROVIDER=package \
  -DgRPC_SSL_PROVIDER=package \
  -DgRPC_ZLIB_PROVIDER=package \
  -DgRPC_BACKWARDS_COMPATIBILITY_MODE=OFF \
  -DgRPC_BUILD_TESTS=OFF \
  -DgRPC_BUILD_CODEGEN=ON \
  -DgRPC_BUILD_GRPC_CPP_PLUGIN=ON \
  -DgRPC_BUILD_GRPC_CSHARP_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_NODE_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_OBJECTIVE_C_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_PHP_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_PYTHON_PLUGIN=OFF \
  -DgRPC_BUILD_GRPC_RUBY_PLUGIN=OFF >/dev/null

# The targets (and their dependencies: gpr, upb, address_sorting, grpc, grpc++).
TARGETS=(gpr upb address_sorting grpc grpc++ grpc++_reflection)
nice -n "$NICE" cmake --build "$WORK/build" -j "$JOBS" --target "${TARGETS[@]}"

# Install the shared libraries only, keeping Debian's file layout: real file
# lib<name>.so.<version>, SONAME link lib<name>.so.<soversion>, dev link lib<name>.so.
mkdir -p "$PREFIX/lib"
n=0
for t in "${TARGETS[@]}"; do
  for f in "$WORK/build/lib$t.so"*; do
    cp -P "$f" "$PREFIX/lib/"
  done
  soname="$(objdump -p "$WORK/build/lib$t.so" | awk '/SONAME/ {print $2}')"
  if ! ls "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/$soname" >/dev/null 2>&1; then
    echo "build_grpc_tsan: built $soname, which Debian does not ship" >&2
    exit 1
  fi
  n=$((n + 1))
done
echo "gRPC $VERSION, $FLAGS, from Debian source package, abseil from $ABSL_PREFIX, $(date -u +%F)" >"$STAMP"
[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
echo "build_grpc_tsan: installed $n shared libraries into $PREFIX/lib"

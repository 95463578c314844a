#!/usr/bin/env bash
# Builds the installed Debian abseil (same upstream version, same Debian patches, same
# SONAMEs and inline namespace `absl::debian3`) with -fsanitize=thread into a prefix, so
# that `bazel test --config=tsan` can link against an instrumented abseil.
#
#   tools/sanitizers/build_absl_tsan.sh [PREFIX]     # PREFIX defaults to /opt/absl-tsan
#
# Why: Debian's libabsl is not built with -fsanitize=thread, so TSan cannot see the
# atomics inside absl::Mutex / CondVar / Notification and reports false races on every
# access they guard. Abseil's own TSan annotations are compiled in only when abseil itself
# is built with -fsanitize=thread.
#
# Because the SONAMEs are Debian's (libabsl_*.so.20220623), a binary whose RUNPATH lists
# PREFIX/lib first loads these libraries *instead of* Debian's, for our code and for
# Debian's gRPC/protobuf alike: there is one abseil in the process, and it is instrumented.
#
# Needs root (apt-get) and Debian's source archive (a deb-src entry is added if missing).
# Idempotent: exits early when PREFIX/.built-<version> exists. Takes ~10-20 min on 2 cores.
# Environment: JOBS (parallel compile jobs, default 2), WORK (scratch dir, default
# /tmp/absl-tsan-build; removed on success unless KEEP_WORK=1).
set -euo pipefail

PREFIX="${1:-/opt/absl-tsan}"
JOBS="${JOBS:-2}"
WORK="${WORK:-/tmp/absl-tsan-build}"

# Match the abseil runtime that Debian's gRPC/protobuf were linked against exactly.
VERSION="$(dpkg-query -W -f='${Version}' libabsl20220623 2>/dev/null || true)"
if [ -z "$VERSION" ]; then
  echo "build_absl_tsan: libabsl20220623 is not installed (apt-get install libabsl-dev)" >&2
  exit 1
fi
STAMP="$PREFIX/.built-$VERSION"
if [ -e "$STAMP" ]; then
  echo "build_absl_tsan: $PREFIX already holds abseil $VERSION built with TSan"
  exit 0
fi

# shellcheck source=tools/sanitizers/debian_src.sh
. "$(dirname "$0")/debian_src.sh"
ensure_debian_sources
# dpkg-dev unpacks the source package (dpkg-source); cmake/g++ build it.
apt-get install -y -qq --no-install-recommends dpkg-dev cmake make g++ xz-utils >/dev/null

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
# apt-get source applies debian/patches: SONAME 20220623, inline namespace debian3,
# absl::optional/string_view/any/variant as own types (not std aliases), hardened mode.
apt-get source -qq "abseil=$VERSION"
SRC="$(find "$WORK" -maxdepth 1 -type d -name 'abseil-*' | head -n 1)"
[ -n "$SRC" ] || { echo "build_absl_tsan: apt-get source left no abseil-* dir" >&2; exit 1; }

# The options header decides the ABI; it must be byte-identical to the installed one.
if ! cmp -s "$SRC/absl/base/options.h" /usr/include/absl/base/options.h; then
  echo "build_absl_tsan: $SRC/absl/base/options.h differs from Debian's installed header" >&2
  exit 1
fi

# Same configuration as debian/rules' shared build, plus TSan. -O1 keeps stacks readable.
# RUNPATH $ORIGIN: a binary's own RUNPATH covers only its direct dependencies, so without
# it libabsl_synchronization would pull Debian's (uninstrumented) libabsl_strings etc.
FLAGS="-fsanitize=thread -O1 -g -fno-omit-frame-pointer"
cmake -S "$SRC" -B "$WORK/build" \
  -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_CXX_STANDARD=17 \
  -DBUILD_SHARED_LIBS=ON \
  -DBUILD_TESTING=OFF \
  -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ \
  -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" \
  -DCMAKE_INSTALL_RPATH='$ORIGIN' \
  -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
cmake --build "$WORK/build" -j "$JOBS"
cmake --install "$WORK/build" >/dev/null

# Only shared libraries are wanted (Bazel links -labsl_*; static ones would not be
# picked up anyway): drop the pkg-config/cmake files that point at the prefix.
rm -rf "$PREFIX/lib/pkgconfig" "$PREFIX/lib/cmake"
echo "abseil $VERSION, $FLAGS, from Debian source package, $(date -u +%F)" >"$STAMP"
[ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$WORK"
echo "build_absl_tsan: installed into $PREFIX"
ls "$PREFIX/lib" | grep -c '\.so\.20220623$' | sed 's/^/build_absl_tsan: shared libraries: /'

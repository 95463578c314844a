// Finding the repository's test data (tests/data/...) from inside a fuzz binary: the
// binary may run from bazel-bin (runfiles next to it), from the repository root, or
// anywhere with MOE_SOURCE_DIR set. Used only by the fuzz targets in this directory.
//
// Thread safety: call from LLVMFuzzerInitialize (single-threaded) only.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace moe::fuzz {

// Directories that may hold the repository's files, best first.
inline std::vector<std::string> DataRoots(const char* argv0) {
  std::vector<std::string> roots;
  if (const char* d = std::getenv("MOE_SOURCE_DIR")) roots.push_back(d);
  if (const char* d = std::getenv("RUNFILES_DIR")) roots.push_back(std::string(d) + "/moe_serve");
  if (argv0 != nullptr) roots.push_back(std::string(argv0) + ".runfiles/moe_serve");
  roots.push_back(".");
  roots.push_back("..");
  roots.push_back("../..");
  return roots;
}

// Reads `relpath` (relative to the repository root) or exits with a message: a fuzz
// target without its fixtures would fuzz nothing useful.
inline std::string ReadDataFile(const std::string& relpath, const char* argv0) {
  for (const std::string& root : DataRoots(argv0)) {
    std::ifstream in(root + "/" + relpath, std::ios::binary);
    if (!in) continue;
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::fprintf(stderr,
               "fuzz target: cannot find %s (run from the repository root, from bazel-bin, "
               "or set MOE_SOURCE_DIR)\n",
               relpath.c_str());
  std::exit(2);
}

// Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF)?
inline bool IsValidUtf8(const std::string& s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    int len; unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

// Aborts with a message (libFuzzer reports it as a crash with the input saved).
[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "FUZZ INVARIANT VIOLATED: %s\n", what);
  std::abort();
}

}  // namespace moe::fuzz

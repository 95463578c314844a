// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available), used by the
// pre-tokenizers, normalizers and decoders that take a {"Regex": ...} pattern.
// Thread safety: immutable after Compile(); FindAll may run concurrently.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe::engine::tok {

class Regex {
 public:
  // `literal`: the pattern is a plain string (the {"String": ...} form).
  // `field` names the JSON field in errors.
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(const std::string& pattern,
                                                        bool literal,
                                                        const std::string& field);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches [start, end), left to right. `subject` must be valid
  // UTF-8. Empty matches are skipped.
  std::vector<std::pair<size_t, size_t>> FindAll(absl::string_view subject) const;

 private:
  Regex() = default;
  pcre2_code* code_ = nullptr;
};

}  // namespace moe::engine::tok

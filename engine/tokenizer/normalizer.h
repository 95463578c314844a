// Normalizers of tokenizer.json ("normalizer"): NFC/NFD/NFKC/NFKD (utf8proc), Prepend,
// Replace, Lowercase, Strip, Sequence. Thread safety: immutable after parsing.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_util.h"
#include "engine/tokenizer/regex.h"

namespace moe::engine::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `s` is valid UTF-8 and stays so.
  virtual void Normalize(std::string* s) const = 0;
};

// `j` is the normalizer object (not null); `path` names it in errors.
absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& j,
                                                            const std::string& path);

// Parses a pattern object, {"String": s} or {"Regex": r}, used by Replace and Split.
absl::StatusOr<std::unique_ptr<Regex>> ParsePattern(const Json& j, const std::string& path);

}  // namespace moe::engine::tok

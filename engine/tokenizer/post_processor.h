// Post-processors of tokenizer.json ("post_processor"), applied to a single sequence
// when special tokens are requested: TemplateProcessing (single template),
// RobertaProcessing, BertProcessing, ByteLevel (no-op on ids), Sequence.
// Thread safety: immutable after parsing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_util.h"

namespace moe::engine::tok {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void AddSpecialTokens(std::vector<int32_t>* ids) const = 0;
  // The id a sequence starts with (the template's leading special token), if any.
  virtual std::optional<int32_t> LeadingId() const { return std::nullopt; }
};

absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& j,
                                                                  const std::string& path);

// Adds `prefix` before and `suffix` after the ids (also used for tokenizer_config's
// add_bos_token / add_eos_token).
std::unique_ptr<PostProcessor> MakeWrapProcessor(std::vector<int32_t> prefix,
                                                 std::vector<int32_t> suffix);

}  // namespace moe::engine::tok

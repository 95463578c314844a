// Added tokens of tokenizer.json ("added_tokens"): found in the text before the model
// runs, leftmost-longest, honouring lstrip / rstrip / single_word / normalized.
// Tokens with normalized=false are matched in the raw text, the others in each
// normalized segment. Thread safety: immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moe::engine::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

// A piece of text: either plain text (token_id < 0) or one added token.
struct Segment {
  std::string text;
  int32_t token_id = -1;
  bool at_start = false;  // starts at offset 0 of the original text
};

class AddedTokenMatcher {
 public:
  // `patterns[i]` is the string to find for `tokens[i]` (its content, normalized
  // when matching in normalized text).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  // Splits `text` into plain segments and token segments; empty plain segments are
  // dropped. `at_start` is the flag of the text's first byte.
  void Split(absl::string_view text, bool at_start, std::vector<Segment>* out) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::vector<std::vector<int>> by_first_byte_;  // candidates, longest first
};

}  // namespace moe::engine::tok

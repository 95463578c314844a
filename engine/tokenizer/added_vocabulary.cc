#include "engine/tokenizer/added_vocabulary.h"

#include <algorithm>

#include <utf8proc.h>

#include "engine/tokenizer/utf8.h"

namespace moe::engine::tok {
namespace {

// Rust's char::is_alphanumeric or '_' (the "word" test of single_word).
bool IsWordChar(uint32_t cp) {
  if (cp == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

size_t PrevCharStart(absl::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)), by_first_byte_(256) {
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (patterns_[i].empty()) continue;
    by_first_byte_[static_cast<uint8_t>(patterns_[i][0])].push_back(static_cast<int>(i));
  }
  for (auto& v : by_first_byte_) {
    std::stable_sort(v.begin(), v.end(), [this](int a, int b) {
      return patterns_[a].size() > patterns_[b].size();
    });
  }
}

void AddedTokenMatcher::Split(absl::string_view text, bool at_start,
                              std::vector<Segment>* out) const {
  size_t start_offset = 0;  // end of the last emitted segment
  auto emit_plain = [&](size_t b, size_t e) {
    if (e > b) out->push_back({std::string(text.substr(b, e - b)), -1, at_start && b == 0});
  };
  size_t pos = 0;
  while (pos < text.size()) {
    int found = -1;
    for (int idx : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (text.substr(pos, patterns_[idx].size()) == patterns_[idx]) {
        found = idx;
        break;
      }
    }
    if (found < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[found];
    size_t start = pos, stop = pos + patterns_[found].size();
    pos = stop;
    if (tok.single_word) {
      size_t len;
      const bool word_before =
          start > 0 && IsWordChar(DecodeUtf8(text, PrevCharStart(text, start), &len));
      const bool word_after = stop < text.size() && IsWordChar(DecodeUtf8(text, stop, &len));
      if (word_before || word_after) continue;
    }
    if (tok.lstrip) {
      while (start > start_offset) {
        const size_t p = PrevCharStart(text, start);
        size_t len;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, p, &len))) break;
        start = p;
      }
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        size_t len;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, stop, &len))) break;
        stop += len;
      }
      pos = stop;
    }
    emit_plain(start_offset, start);
    out->push_back({std::string(text.substr(start, stop - start)), tok.id,
                    at_start && start == 0});
    start_offset = stop;
  }
  emit_plain(start_offset, text.size());
}

}  // namespace moe::engine::tok

#include "engine/tokenizer/regex.h"

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/utf8.h"

namespace moe::engine::tok {

absl::StatusOr<std::unique_ptr<Regex>> Regex::Compile(const std::string& pattern,
                                                      bool literal,
                                                      const std::string& field) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_LITERAL admits PCRE2_UTF but not PCRE2_UCP.
  const uint32_t options = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()),
                                   pattern.size(), options, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot compile pattern '", pattern, "' at offset ", offset,
                     ": ", reinterpret_cast<const char*>(msg)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if absent
  std::unique_ptr<Regex> re(new Regex());
  re->code_ = code;
  return re;
}

Regex::~Regex() { pcre2_code_free(code_); }

std::vector<std::pair<size_t, size_t>> Regex::FindAll(absl::string_view subject) const {
  std::vector<std::pair<size_t, size_t>> out;
  // Validated once here: PCRE2 would otherwise re-check the whole subject on every
  // call, which is quadratic in the text length.
  if (!IsValidUtf8(subject)) return out;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
  if (md == nullptr) return out;
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t pos = 0;
  while (pos <= subject.size()) {
    const int rc = pcre2_match(code_, data, subject.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc < 0) break;  // no match, or a matching error (treated as no further match)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t start = ov[0], end = ov[1];
    if (end > start) {
      out.emplace_back(start, end);
      pos = end;
    } else {
      // Empty match: step over one character.
      if (start >= subject.size()) break;
      size_t step = 1;
      while (start + step < subject.size() &&
             (static_cast<uint8_t>(subject[start + step]) & 0xC0) == 0x80) {
        ++step;
      }
      pos = start + step;
    }
  }
  pcre2_match_data_free(md);
  return out;
}

}  // namespace moe::engine::tok

#include "engine/tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/utf8.h"

namespace moe::engine::tok {
namespace {

class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(int options) : options_(options) {}
  void Normalize(std::string* s) const override {
    if (s->empty()) return;
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s->data()),
                     static_cast<utf8proc_ssize_t>(s->size()), &out,
                     static_cast<utf8proc_option_t>(options_));
    if (n >= 0) s->assign(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);  // on error (never for valid UTF-8) the text is left unchanged
  }

 private:
  int options_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prepend_(std::move(p)) {}
  void Normalize(std::string* s) const override {
    if (!s->empty()) s->insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

// Replaces every match of a pattern (literal or regex) with `content`.
class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  void Normalize(std::string* s) const override {
    const auto matches = re_->FindAll(*s);
    if (matches.empty()) return;
    std::string out;
    size_t prev = 0;
    for (const auto& [b, e] : matches) {
      out.append(*s, prev, b - prev);
      out += content_;
      prev = e;
    }
    out.append(*s, prev, std::string::npos);
    *s = std::move(out);
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void Normalize(std::string* s) const override {
    std::string out;
    out.reserve(s->size());
    for (size_t i = 0; i < s->size();) {
      size_t len;
      const uint32_t cp = DecodeUtf8(*s, i, &len);
      AppendUtf8(static_cast<uint32_t>(utf8proc_tolower(static_cast<int32_t>(cp))), &out);
      i += len;
    }
    *s = std::move(out);
  }
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string* s) const override {
    size_t begin = 0, end = s->size();
    if (left_) {
      while (begin < end) {
        size_t len;
        if (!IsUnicodeWhitespace(DecodeUtf8(*s, begin, &len))) break;
        begin += len;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<uint8_t>((*s)[start]) & 0xC0) == 0x80) --start;
        size_t len;
        if (!IsUnicodeWhitespace(DecodeUtf8(*s, start, &len))) break;
        end = start;
      }
    }
    *s = s->substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> n)
      : normalizers_(std::move(n)) {}
  void Normalize(std::string* s) const override {
    for (const auto& n : normalizers_) n->Normalize(s);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> normalizers_;
};

}  // namespace

// Parses {"String": s} / {"Regex": r} into a compiled pattern.
absl::StatusOr<std::unique_ptr<Regex>> ParsePattern(const Json& j, const std::string& path) {
  if (j.is_object() && j.size() == 1) {
    if (j.contains("String") && j["String"].is_string()) {
      return Regex::Compile(j["String"].get<std::string>(), /*literal=*/true, path);
    }
    if (j.contains("Regex") && j["Regex"].is_string()) {
      return Regex::Compile(j["Regex"].get<std::string>(), /*literal=*/false, path);
    }
  }
  return FieldError(path, "must be {\"String\": ...} or {\"Regex\": ...}");
}

absl::StatusOr<std::unique_ptr<Normalizer>> ParseNormalizer(const Json& j,
                                                            const std::string& path) {
  auto type = GetType(j, path);
  if (!type.ok()) return type.status();
  if (*type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (*type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
  if (*type == "NFKC") {
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                               UTF8PROC_COMPAT);
  }
  if (*type == "NFKD") {
    return std::make_unique<UnicodeNormalizer>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE |
                                               UTF8PROC_COMPAT);
  }
  if (*type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (*type == "Prepend") {
    auto p = GetString(j, "prepend", path);
    if (!p.ok()) return p.status();
    return std::make_unique<PrependNormalizer>(*p);
  }
  if (*type == "Replace") {
    if (!j.contains("pattern")) return FieldError(Sub(path, "pattern"), "is missing");
    auto re = ParsePattern(j["pattern"], Sub(path, "pattern"));
    if (!re.ok()) return re.status();
    auto content = GetString(j, "content", path);
    if (!content.ok()) return content.status();
    return std::make_unique<ReplaceNormalizer>(std::move(*re), *content);
  }
  if (*type == "Strip") {
    auto l = GetBool(j, "strip_left", path, true);
    if (!l.ok()) return l.status();
    auto r = GetBool(j, "strip_right", path, true);
    if (!r.ok()) return r.status();
    return std::make_unique<StripNormalizer>(*l, *r);
  }
  if (*type == "Sequence") {
    auto parts = ParseParts<Normalizer>(j, "normalizers", path, ParseNormalizer);
    if (!parts.ok()) return parts.status();
    return std::make_unique<SequenceNormalizer>(*std::move(parts));
  }
  return Unsupported(path, *type);
}

}  // namespace moe::engine::tok

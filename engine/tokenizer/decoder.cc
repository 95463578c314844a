#include "engine/tokenizer/decoder.h"

#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/utf8.h"

namespace moe::engine::tok {
namespace {

// Byte-level characters back to bytes; a token with a character outside the alphabet
// (an added token such as "<|im_end|>" with unusual characters) is taken as is.
class ByteLevelDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& t : *tokens) {
      std::string mine;
      bool ok = true;
      for (size_t i = 0; i < t.size() && ok;) {
        size_t len;
        uint8_t b;
        ok = UnicodeToByte(DecodeUtf8(t, i, &len), &b);
        mine.push_back(static_cast<char>(b));
        i += len;
      }
      bytes += ok ? mine : t;
    }
    *tokens = {Utf8Lossy(bytes)};
  }
  void TokenBytes(std::string* t) const override {
    std::string mine;
    for (size_t i = 0; i < t->size();) {
      size_t len;
      uint8_t b;
      if (!UnicodeToByte(DecodeUtf8(*t, i, &len), &b)) return;  // taken as is
      mine.push_back(static_cast<char>(b));
      i += len;
    }
    *t = std::move(mine);
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (size_t i = 0; i < tokens->size(); ++i) {
      std::string& t = (*tokens)[i];
      std::string out;
      for (size_t p = 0; p < t.size();) {
        if (!replacement_.empty() && t.compare(p, replacement_.size(), replacement_) == 0) {
          // tokenizers drops the replacement everywhere in the first token.
          if (!(i == 0 && strip_first_)) out.push_back(' ');
          p += replacement_.size();
        } else {
          out.push_back(t[p++]);
        }
      }
      t = std::move(out);
    }
  }
  void TokenBytes(std::string* t) const override {
    if (replacement_.empty()) return;
    std::string out;
    for (size_t p = 0; p < t->size();) {
      if (t->compare(p, replacement_.size(), replacement_) == 0) {
        out.push_back(' ');
        p += replacement_.size();
      } else {
        out.push_back((*t)[p++]);
      }
    }
    *t = std::move(out);
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> re, std::string content)
      : re_(std::move(re)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (std::string& t : *tokens) {
      std::string out;
      size_t prev = 0;
      for (const auto& [b, e] : re_->FindAll(t)) {
        out.append(t, prev, b - prev);
        out += content_;
        prev = e;
      }
      out.append(t, prev, std::string::npos);
      t = std::move(out);
    }
  }
  void TokenBytes(std::string* t) const override {
    std::vector<std::string> one{std::move(*t)};
    DecodeChain(&one);
    *t = std::move(one[0]);
  }

 private:
  std::unique_ptr<Regex> re_;
  std::string content_;
};

// Runs of "<0xXX>" tokens become their bytes if those form valid UTF-8, else one
// U+FFFD per byte token (as tokenizers does).
class ByteFallbackDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t count = 0;
    auto flush = [&]() {
      if (count == 0) return;
      if (IsValidUtf8(bytes)) {
        out.push_back(bytes);
      } else {
        for (size_t k = 0; k < count; ++k) out.push_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      count = 0;
    };
    for (std::string& t : *tokens) {
      int value = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        value = HexByte(t[3], t[4]);
      }
      if (value >= 0) {
        bytes.push_back(static_cast<char>(value));
        ++count;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    *tokens = std::move(out);
  }
  void TokenBytes(std::string* t) const override {
    if (t->size() == 6 && t->compare(0, 3, "<0x") == 0 && (*t)[5] == '>') {
      const int value = HexByte((*t)[3], (*t)[4]);
      if (value >= 0) *t = std::string(1, static_cast<char>(value));
    }
  }

 private:
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int HexByte(char a, char b) {
    const int h = Hex(a), l = Hex(b);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }
};

class FuseDecoder : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>* tokens) const override {
    std::string all;
    for (const auto& t : *tokens) all += t;
    *tokens = {all};
  }
  void TokenBytes(std::string*) const override {}
};

class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    if (content_.empty()) return;
    for (std::string& t : *tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && e - b >= content_.size() &&
                         t.compare(b, content_.size(), content_) == 0; ++k) {
        b += content_.size();
      }
      for (size_t k = 0; k < stop_ && e - b >= content_.size() &&
                         t.compare(e - content_.size(), content_.size(), content_) == 0; ++k) {
        e -= content_.size();
      }
      t = t.substr(b, e - b);
    }
  }
  // Strip trims the sequence's ends (it follows Fuse in practice): nothing mid-sequence.
  void TokenBytes(std::string*) const override {}

 private:
  std::string content_;
  size_t start_, stop_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> d) : parts_(std::move(d)) {}
  void DecodeChain(std::vector<std::string>* tokens) const override {
    for (const auto& d : parts_) d->DecodeChain(tokens);
  }
  void TokenBytes(std::string* t) const override {
    for (const auto& d : parts_) d->TokenBytes(t);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& j, const std::string& path) {
  auto type = GetType(j, path);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (*type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (*type == "Fuse") return std::make_unique<FuseDecoder>();
  if (*type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";
    if (j.contains("replacement")) {
      auto r = GetString(j, "replacement", path);
      if (!r.ok()) return r.status();
      replacement = *r;
    }
    bool strip_first = true;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      auto s = GetString(j, "prepend_scheme", path);
      if (!s.ok()) return s.status();
      if (*s != "always" && *s != "first" && *s != "never") {
        return FieldError(Sub(path, "prepend_scheme"), "'" + *s + "' is not supported");
      }
      strip_first = *s != "never";
    } else {
      auto add = GetBool(j, "add_prefix_space", path, true);
      if (!add.ok()) return add.status();
      strip_first = *add;
    }
    return std::make_unique<MetaspaceDecoder>(replacement, strip_first);
  }
  if (*type == "Replace") {
    if (!j.contains("pattern")) return FieldError(Sub(path, "pattern"), "is missing");
    auto re = ParsePattern(j["pattern"], Sub(path, "pattern"));
    if (!re.ok()) return re.status();
    auto content = GetString(j, "content", path);
    if (!content.ok()) return content.status();
    return std::make_unique<ReplaceDecoder>(std::move(*re), *content);
  }
  if (*type == "Strip") {
    auto content = GetString(j, "content", path);
    if (!content.ok()) return content.status();
    auto start = GetInt(j, "start", path, 0);
    if (!start.ok()) return start.status();
    auto stop = GetInt(j, "stop", path, 0);
    if (!stop.ok()) return stop.status();
    if (*start < 0 || *stop < 0) return FieldError(path, "start/stop must be >= 0");
    return std::make_unique<StripDecoder>(*content, *start, *stop);
  }
  if (*type == "Sequence") {
    auto parts = ParseParts<Decoder>(j, "decoders", path, ParseDecoder);
    if (!parts.ok()) return parts.status();
    return std::make_unique<SequenceDecoder>(*std::move(parts));
  }
  return Unsupported(path, *type);
}

}  // namespace moe::engine::tok

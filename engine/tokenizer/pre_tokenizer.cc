#include "engine/tokenizer/pre_tokenizer.h"

#include <functional>
#include <utility>

#include <utf8proc.h>

#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/regex.h"
#include "engine/tokenizer/utf8.h"

namespace moe::engine::tok {
namespace {

constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

using Span = std::pair<size_t, size_t>;
using MatchFn = std::function<std::vector<Span>(absl::string_view)>;

// Splits every piece around the matches of `find`, as tokenizers' NormalizedString::split.
void SplitPieces(std::vector<Piece>* pieces, const MatchFn& find, Behavior behavior,
                 bool invert) {
  std::vector<Piece> out;
  for (Piece& piece : *pieces) {
    const std::string& s = piece.text;
    // Alternating (span, is_match) covering all of s.
    std::vector<std::pair<Span, bool>> parts;
    size_t prev = 0;
    for (const Span& m : find(s)) {
      if (m.first > prev) parts.push_back({{prev, m.first}, invert});
      parts.push_back({m, !invert});
      prev = m.second;
    }
    if (prev < s.size()) parts.push_back({{prev, s.size()}, invert});

    std::vector<Span> spans;
    bool previous_match = false;
    switch (behavior) {
      case Behavior::kIsolated:
        for (auto& p : parts) spans.push_back(p.first);
        break;
      case Behavior::kRemoved:
        for (auto& p : parts) {
          if (!p.second) spans.push_back(p.first);
        }
        break;
      case Behavior::kMergedWithPrevious:
        for (auto& [span, is_match] : parts) {
          if (is_match && !previous_match && !spans.empty()) {
            spans.back().second = span.second;
          } else {
            spans.push_back(span);
          }
          previous_match = is_match;
        }
        break;
      case Behavior::kMergedWithNext: {
        for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
          if (it->second && !previous_match && !spans.empty()) {
            spans.back().first = it->first.first;
          } else {
            spans.push_back(it->first);
          }
          previous_match = it->second;
        }
        std::reverse(spans.begin(), spans.end());
        break;
      }
      case Behavior::kContiguous:
        for (size_t i = 0; i < parts.size(); ++i) {
          if (i > 0 && parts[i].second == previous_match) {
            spans.back().second = parts[i].first.second;
          } else {
            spans.push_back(parts[i].first);
          }
          previous_match = parts[i].second;
        }
        break;
    }
    for (const Span& sp : spans) {
      if (sp.second <= sp.first) continue;
      out.push_back({s.substr(sp.first, sp.second - sp.first), piece.at_start && sp.first == 0});
    }
  }
  *pieces = std::move(out);
}

// Matches every run of one character each that satisfies `pred` (as char predicates
// in tokenizers' split: each matching character is its own match).
MatchFn CharMatcher(std::function<bool(uint32_t)> pred) {
  return [pred](absl::string_view s) {
    std::vector<Span> m;
    for (size_t i = 0; i < s.size();) {
      size_t len;
      const uint32_t cp = DecodeUtf8(s, i, &len);
      if (pred(cp)) m.push_back({i, i + len});
      i += len;
    }
    return m;
  };
}

MatchFn RegexMatcher(std::shared_ptr<const Regex> re) {
  return [re](absl::string_view s) { return re->FindAll(s); };
}

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::shared_ptr<const Regex> re)
      : add_prefix_space_(add_prefix_space), re_(std::move(re)) {}
  void Apply(std::vector<Piece>* pieces) const override {
    if (add_prefix_space_) {
      for (Piece& p : *pieces) {
        if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, " ");
      }
    }
    if (re_) SplitPieces(pieces, RegexMatcher(re_), Behavior::kIsolated, false);
    for (Piece& p : *pieces) p.text = ByteLevelEncode(p.text);
  }
  bool IsByteLevel() const override { return true; }

 private:
  bool add_prefix_space_;
  std::shared_ptr<const Regex> re_;  // null: use_regex false
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(MatchFn find, Behavior behavior, bool invert)
      : find_(std::move(find)), behavior_(behavior), invert_(invert) {}
  void Apply(std::vector<Piece>* pieces) const override {
    SplitPieces(pieces, find_, behavior_, invert_);
  }

 private:
  MatchFn find_;
  Behavior behavior_;
  bool invert_;
};

class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void Apply(std::vector<Piece>* pieces) const override {
    for (Piece& p : *pieces) {
      std::string t;
      for (char c : p.text) {
        if (c == ' ') {
          t += replacement_;
        } else {
          t.push_back(c);
        }
      }
      const bool starts = absl::string_view(t).substr(0, replacement_.size()) == replacement_;
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_start))) {
        t.insert(0, replacement_);
      }
      p.text = std::move(t);
    }
    if (split_) {
      const std::string rep = replacement_;
      MatchFn find = [rep](absl::string_view s) {
        std::vector<Span> m;
        for (size_t i = s.find(rep); i != absl::string_view::npos; i = s.find(rep, i + rep.size())) {
          m.push_back({i, i + rep.size()});
        }
        return m;
      };
      SplitPieces(pieces, find, Behavior::kMergedWithNext, false);
    }
  }

 private:
  std::string replacement_;
  Prepend prepend_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> p)
      : parts_(std::move(p)) {}
  void Apply(std::vector<Piece>* pieces) const override {
    for (const auto& p : parts_) p->Apply(pieces);
  }
  bool IsByteLevel() const override {
    for (const auto& p : parts_) {
      if (p->IsByteLevel()) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

bool IsNumeric(uint32_t cp) {
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL ||
         cat == UTF8PROC_CATEGORY_NO;
}

absl::StatusOr<Behavior> ParseBehavior(const Json& j, const std::string& path) {
  auto b = GetString(j, "behavior", path);
  if (!b.ok()) return b.status();
  if (*b == "Removed") return Behavior::kRemoved;
  if (*b == "Isolated") return Behavior::kIsolated;
  if (*b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (*b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (*b == "Contiguous") return Behavior::kContiguous;
  return FieldError(Sub(path, "behavior"), "'" + *b + "' is not supported");
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& j,
                                                                const std::string& path) {
  auto type = GetType(j, path);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") {
    auto prefix = GetBool(j, "add_prefix_space", path, true);
    if (!prefix.ok()) return prefix.status();
    auto use_regex = GetBool(j, "use_regex", path, true);
    if (!use_regex.ok()) return use_regex.status();
    std::shared_ptr<const Regex> re;
    if (*use_regex) {
      auto r = Regex::Compile(kGpt2Pattern, false, path);
      if (!r.ok()) return r.status();
      re = std::move(*r);
    }
    return std::make_unique<ByteLevelPreTokenizer>(*prefix, std::move(re));
  }
  if (*type == "Split") {
    if (!j.contains("pattern")) return FieldError(Sub(path, "pattern"), "is missing");
    auto re = ParsePattern(j["pattern"], Sub(path, "pattern"));
    if (!re.ok()) return re.status();
    auto behavior = ParseBehavior(j, path);
    if (!behavior.ok()) return behavior.status();
    auto invert = GetBool(j, "invert", path, false);
    if (!invert.ok()) return invert.status();
    return std::make_unique<SplitPreTokenizer>(
        RegexMatcher(std::shared_ptr<const Regex>(std::move(*re))), *behavior, *invert);
  }
  if (*type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";
    if (j.contains("replacement")) {
      auto r = GetString(j, "replacement", path);
      if (!r.ok()) return r.status();
      replacement = *r;
    }
    auto prepend = MetaspacePreTokenizer::Prepend::kAlways;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      auto s = GetString(j, "prepend_scheme", path);
      if (!s.ok()) return s.status();
      if (*s == "always") {
        prepend = MetaspacePreTokenizer::Prepend::kAlways;
      } else if (*s == "first") {
        prepend = MetaspacePreTokenizer::Prepend::kFirst;
      } else if (*s == "never") {
        prepend = MetaspacePreTokenizer::Prepend::kNever;
      } else {
        return FieldError(Sub(path, "prepend_scheme"), "'" + *s + "' is not supported");
      }
    } else {
      auto add = GetBool(j, "add_prefix_space", path, true);  // pre-0.14 form
      if (!add.ok()) return add.status();
      if (!*add) prepend = MetaspacePreTokenizer::Prepend::kNever;
    }
    auto split = GetBool(j, "split", path, true);
    if (!split.ok()) return split.status();
    return std::make_unique<MetaspacePreTokenizer>(replacement, prepend, *split);
  }
  if (*type == "Digits") {
    auto individual = GetBool(j, "individual_digits", path, false);
    if (!individual.ok()) return individual.status();
    return std::make_unique<SplitPreTokenizer>(
        CharMatcher(IsNumeric), *individual ? Behavior::kIsolated : Behavior::kContiguous,
        false);
  }
  if (*type == "Whitespace") {
    auto r = Regex::Compile(R"(\w+|[^\w\s]+)", false, path);
    if (!r.ok()) return r.status();
    return std::make_unique<SplitPreTokenizer>(
        RegexMatcher(std::shared_ptr<const Regex>(std::move(*r))), Behavior::kRemoved, true);
  }
  if (*type == "WhitespaceSplit") {
    return std::make_unique<SplitPreTokenizer>(CharMatcher(IsUnicodeWhitespace),
                                               Behavior::kRemoved, false);
  }
  if (*type == "Sequence") {
    auto parts = ParseParts<PreTokenizer>(j, "pretokenizers", path, ParsePreTokenizer);
    if (!parts.ok()) return parts.status();
    return std::make_unique<SequencePreTokenizer>(*std::move(parts));
  }
  return Unsupported(path, *type);
}

}  // namespace moe::engine::tok

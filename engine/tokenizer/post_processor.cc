#include "engine/tokenizer/post_processor.h"

namespace moe::engine::tok {
namespace {

// A template is a list of pieces: special-token id lists, or the sequence itself
// (an empty list marks the sequence).
class TemplateProcessor : public PostProcessor {
 public:
  explicit TemplateProcessor(std::vector<std::optional<std::vector<int32_t>>> pieces)
      : pieces_(std::move(pieces)) {}
  void AddSpecialTokens(std::vector<int32_t>* ids) const override {
    std::vector<int32_t> out;
    for (const auto& p : pieces_) {
      if (p) {
        out.insert(out.end(), p->begin(), p->end());
      } else {
        out.insert(out.end(), ids->begin(), ids->end());
      }
    }
    *ids = std::move(out);
  }
  std::optional<int32_t> LeadingId() const override {
    if (!pieces_.empty() && pieces_[0] && !pieces_[0]->empty()) return (*pieces_[0])[0];
    return std::nullopt;
  }

 private:
  std::vector<std::optional<std::vector<int32_t>>> pieces_;
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> p)
      : parts_(std::move(p)) {}
  void AddSpecialTokens(std::vector<int32_t>* ids) const override {
    for (const auto& p : parts_) p->AddSpecialTokens(ids);
  }
  std::optional<int32_t> LeadingId() const override {
    for (const auto& p : parts_) {
      if (auto id = p->LeadingId()) return id;
    }
    return std::nullopt;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

class NoopProcessor : public PostProcessor {
 public:
  void AddSpecialTokens(std::vector<int32_t>*) const override {}
};

// ["<s>", 0] -> 0
absl::StatusOr<int32_t> ParseTokenPair(const Json& j, const std::string& key,
                                       const std::string& path) {
  const std::string field = Sub(path, key);
  if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 ||
      !j[key][1].is_number_integer()) {
    return FieldError(field, "must be [token, id]");
  }
  return j[key][1].get<int32_t>();
}

absl::StatusOr<std::unique_ptr<PostProcessor>> ParseTemplate(const Json& j,
                                                             const std::string& path) {
  const std::string single = Sub(path, "single");
  if (!j.contains("single") || !j["single"].is_array()) {
    return FieldError(single, "must be an array of template pieces");
  }
  const Json empty = Json::object();
  const Json& specials = j.contains("special_tokens") ? j["special_tokens"] : empty;
  std::vector<std::optional<std::vector<int32_t>>> pieces;
  for (size_t i = 0; i < j["single"].size(); ++i) {
    const Json& p = j["single"][i];
    const std::string ppath = Index(single, i);
    if (p.is_object() && p.contains("Sequence")) {
      if (!p["Sequence"].is_object() || p["Sequence"].value("id", "") != "A") {
        return FieldError(ppath, "must refer to sequence A");
      }
      pieces.push_back(std::nullopt);
    } else if (p.is_object() && p.contains("SpecialToken") && p["SpecialToken"].is_object() &&
               p["SpecialToken"].contains("id") && p["SpecialToken"]["id"].is_string()) {
      const std::string name = p["SpecialToken"]["id"].get<std::string>();
      if (!specials.is_object() || !specials.contains(name) ||
          !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
        return FieldError(Sub(path, "special_tokens"), "has no ids for '" + name + "'");
      }
      std::vector<int32_t> ids;
      for (const Json& id : specials[name]["ids"]) {
        if (!id.is_number_integer()) {
          return FieldError(Sub(path, "special_tokens"), "ids of '" + name + "' must be integers");
        }
        ids.push_back(id.get<int32_t>());
      }
      pieces.push_back(std::move(ids));
    } else {
      return FieldError(ppath, "must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  return std::make_unique<TemplateProcessor>(std::move(pieces));
}

}  // namespace

std::unique_ptr<PostProcessor> MakeWrapProcessor(std::vector<int32_t> prefix,
                                                 std::vector<int32_t> suffix) {
  std::vector<std::optional<std::vector<int32_t>>> pieces;
  if (!prefix.empty()) pieces.push_back(std::move(prefix));
  pieces.push_back(std::nullopt);
  if (!suffix.empty()) pieces.push_back(std::move(suffix));
  return std::make_unique<TemplateProcessor>(std::move(pieces));
}

absl::StatusOr<std::unique_ptr<PostProcessor>> ParsePostProcessor(const Json& j,
                                                                  const std::string& path) {
  auto type = GetType(j, path);
  if (!type.ok()) return type.status();
  if (*type == "ByteLevel") return std::make_unique<NoopProcessor>();
  if (*type == "TemplateProcessing") return ParseTemplate(j, path);
  if (*type == "RobertaProcessing" || *type == "BertProcessing") {
    auto cls = ParseTokenPair(j, "cls", path);
    if (!cls.ok()) return cls.status();
    auto sep = ParseTokenPair(j, "sep", path);
    if (!sep.ok()) return sep.status();
    return MakeWrapProcessor({*cls}, {*sep});
  }
  if (*type == "Sequence") {
    auto parts = ParseParts<PostProcessor>(j, "processors", path, ParsePostProcessor);
    if (!parts.ok()) return parts.status();
    return std::make_unique<SequenceProcessor>(*std::move(parts));
  }
  return Unsupported(path, *type);
}

}  // namespace moe::engine::tok

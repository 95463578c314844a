// The Tokenizer implementation over tokenizer.json: added tokens -> normalizer ->
// pre-tokenizer -> BPE -> post-processor; decoding runs the decoder chain.
//
// Input that is not valid UTF-8: for byte-level tokenizers each maximal run of bytes
// that are not part of a well-formed character is encoded as is (byte-level characters,
// BPE, no normalizer or regex), so Decode gives the same bytes back (as U+FFFD, since
// Decode returns valid UTF-8). For other tokenizers each ill-formed subpart is replaced
// by U+FFFD before tokenization (as Python's errors="replace").
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/tokenizer/added_vocabulary.h"
#include "engine/tokenizer/bpe_model.h"
#include "engine/tokenizer/decoder.h"
#include "engine/tokenizer/json_util.h"
#include "engine/tokenizer/normalizer.h"
#include "engine/tokenizer/post_processor.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"

namespace moe::engine {
namespace {

using tok::Json;

class HfTokenizer : public Tokenizer {
 public:
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(absl::string_view tokenizer_json,
                                                           absl::string_view config_json);

  absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                              bool add_special_tokens) const override;
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool skip_special_tokens) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  std::optional<int32_t> TokenToId(absl::string_view token) const override {
    auto it = added_by_content_.find(std::string(token));
    if (it != added_by_content_.end()) return it->second;
    return model_->TokenToId(token);
  }
  std::string IdToToken(int32_t id) const override {
    return id >= 0 && id < vocab_size() ? id_to_token_[id] : "";
  }
  bool IsSpecial(int32_t id) const override {
    return id >= 0 && id < vocab_size() && special_[id];
  }
  std::string TokenBytes(int32_t id) const override {
    if (id < 0 || id >= vocab_size() || special_[id]) return "";
    std::string t = id_to_token_[id];
    if (decoder_) decoder_->TokenBytes(&t);
    return t;
  }
  std::optional<int32_t> bos_id() const override { return bos_id_; }
  std::optional<int32_t> eos_id() const override { return eos_id_; }
  const std::string& chat_template() const override { return chat_template_; }

 private:
  absl::Status ParseTokenizer(const Json& j);
  absl::Status ParseConfig(const Json& config, bool has_post_processor);
  void EncodeValid(absl::string_view text, bool at_start, std::vector<int32_t>* ids) const;
  void EncodePlain(std::string text, bool at_start, std::vector<int32_t>* ids) const;

  std::unique_ptr<tok::Normalizer> normalizer_;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer_;
  std::unique_ptr<tok::BpeModel> model_;
  std::unique_ptr<tok::Decoder> decoder_;
  std::unique_ptr<tok::PostProcessor> post_processor_;
  std::unique_ptr<tok::AddedTokenMatcher> raw_matcher_;         // normalized=false
  std::unique_ptr<tok::AddedTokenMatcher> normalized_matcher_;  // normalized=true
  std::unordered_map<std::string, int32_t> added_by_content_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> special_;
  bool byte_level_ = false;
  std::optional<int32_t> bos_id_, eos_id_;
  std::string chat_template_;
};

absl::Status HfTokenizer::ParseTokenizer(const Json& j) {
  if (!j.is_object()) return tok::FieldError("(top level)", "must be an object");
  if (!j.contains("model") || !j["model"].is_object()) {
    return tok::FieldError("model", "is missing");
  }
  const Json& model = j["model"];
  const std::string model_type = model.value("type", "BPE");
  if (model_type != "BPE") return tok::Unsupported("model", model_type);
  auto bpe = tok::BpeModel::Parse(model);
  if (!bpe.ok()) return bpe.status();
  model_ = std::move(*bpe);

  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    auto n = tok::ParseNormalizer(j["normalizer"], "normalizer");
    if (!n.ok()) return n.status();
    normalizer_ = std::move(*n);
  }
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    auto p = tok::ParsePreTokenizer(j["pre_tokenizer"], "pre_tokenizer");
    if (!p.ok()) return p.status();
    pre_tokenizer_ = std::move(*p);
    byte_level_ = pre_tokenizer_->IsByteLevel();
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    auto d = tok::ParseDecoder(j["decoder"], "decoder");
    if (!d.ok()) return d.status();
    decoder_ = std::move(*d);
  }
  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    auto p = tok::ParsePostProcessor(j["post_processor"], "post_processor");
    if (!p.ok()) return p.status();
    post_processor_ = std::move(*p);
  }

  // Tables are indexed by id, so ids are bounded: real vocabularies stay far below
  // this (the largest are ~260k), and a file naming id 2e9 must not allocate 64 GB.
  constexpr int32_t kMaxTokenId = (1 << 24) - 1;
  int32_t size = 0;
  for (const auto& [token, id] : model_->vocab()) {
    if (id > kMaxTokenId) {
      return tok::FieldError("model.vocab", absl::StrCat("token '", token, "' has id ", id,
                                                          ", above the supported ", kMaxTokenId));
    }
    size = std::max(size, id + 1);
  }
  std::vector<tok::AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) return tok::FieldError("added_tokens", "must be an array");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      const Json& t = j["added_tokens"][i];
      const std::string path = tok::Index("added_tokens", i);
      if (!t.is_object()) return tok::FieldError(path, "must be an object");
      tok::AddedToken a;
      auto id = tok::GetInt(t, "id", path, -1);
      if (!id.ok()) return id.status();
      if (*id < 0 || *id > kMaxTokenId) {
        return tok::FieldError(tok::Sub(path, "id"),
                               absl::StrCat("is missing or out of range [0, ", kMaxTokenId, "]"));
      }
      a.id = static_cast<int32_t>(*id);
      auto content = tok::GetString(t, "content", path);
      if (!content.ok()) return content.status();
      if (content->empty()) return tok::FieldError(tok::Sub(path, "content"), "is empty");
      a.content = *content;
      for (auto [key, dst] : {std::pair<const char*, bool*>{"special", &a.special},
                              {"lstrip", &a.lstrip}, {"rstrip", &a.rstrip},
                              {"single_word", &a.single_word}, {"normalized", &a.normalized}}) {
        auto v = tok::GetBool(t, key, path, false);
        if (!v.ok()) return v.status();
        *dst = *v;
      }
      size = std::max(size, a.id + 1);
      added_by_content_[a.content] = a.id;
      if (a.normalized && normalizer_) {
        // Found in normalized text, and (as in tokenizers) known by its normalized form.
        normalizer_->Normalize(&a.content);
        added_by_content_[a.content] = a.id;
        normalized_patterns.push_back(a.content);
        normalized.push_back(a);
      } else {
        raw_patterns.push_back(a.content);
        raw.push_back(a);
      }
    }
  }
  id_to_token_.assign(size, "");
  special_.assign(size, false);
  for (const auto& [token, id] : model_->vocab()) id_to_token_[id] = token;
  for (const auto* list : {&raw, &normalized}) {
    for (const auto& a : *list) {
      id_to_token_[a.id] = a.content;
      special_[a.id] = a.special;
    }
  }
  raw_matcher_ = std::make_unique<tok::AddedTokenMatcher>(std::move(raw), std::move(raw_patterns));
  normalized_matcher_ = std::make_unique<tok::AddedTokenMatcher>(std::move(normalized),
                                                                 std::move(normalized_patterns));
  return absl::OkStatus();
}

// bos_token / eos_token: a string, an AddedToken object {"content": ...}, or null.
std::optional<std::string> ConfigToken(const Json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

absl::Status HfTokenizer::ParseConfig(const Json& config, bool has_post_processor) {
  auto err = [](const std::string& field, const std::string& msg) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer_config.json: ", field, " ", msg));
  };
  if (!config.is_object()) return err("(top level)", "must be an object");
  if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const Json& t = config["chat_template"];
    if (t.is_string()) {
      chat_template_ = t.get<std::string>();
    } else if (t.is_array()) {
      for (const Json& e : t) {
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
            e["template"].is_string()) {
          chat_template_ = e["template"].get<std::string>();
        }
      }
    } else {
      return err("chat_template", "must be a string or a list of {name, template}");
    }
  }
  std::optional<std::string> bos = ConfigToken(config, "bos_token");
  std::optional<std::string> eos = ConfigToken(config, "eos_token");
  if (bos) bos_id_ = TokenToId(*bos);
  if (eos) eos_id_ = TokenToId(*eos);
  if (bos && !bos_id_) return err("bos_token", "'" + *bos + "' is not in the vocabulary");
  if (eos && !eos_id_) return err("eos_token", "'" + *eos + "' is not in the vocabulary");

  if (!has_post_processor) {
    std::vector<int32_t> prefix, suffix;
    for (auto [key, id, dst] : {std::make_tuple("add_bos_token", bos_id_, &prefix),
                                std::make_tuple("add_eos_token", eos_id_, &suffix)}) {
      if (!config.contains(key) || config[key].is_null()) continue;
      if (!config[key].is_boolean()) return err(key, "must be a boolean");
      if (!config[key].get<bool>()) continue;
      if (!id) return err(key, "is set but the token is not defined");
      dst->push_back(*id);
    }
    if (!prefix.empty() || !suffix.empty()) {
      post_processor_ = tok::MakeWrapProcessor(std::move(prefix), std::move(suffix));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Tokenizer>> HfTokenizer::Create(absl::string_view tokenizer_json,
                                                               absl::string_view config_json) {
  auto t = std::make_unique<HfTokenizer>();
  try {
    Json j = Json::parse(tokenizer_json.begin(), tokenizer_json.end(), nullptr, false);
    if (j.is_discarded()) return absl::InvalidArgumentError("tokenizer.json: malformed JSON");
    const bool has_post = j.contains("post_processor") && !j["post_processor"].is_null();
    absl::Status s = t->ParseTokenizer(j);
    if (!s.ok()) return s;
    Json config = Json::object();
    if (!config_json.empty()) {
      config = Json::parse(config_json.begin(), config_json.end(), nullptr, false);
      if (config.is_discarded()) {
        return absl::InvalidArgumentError("tokenizer_config.json: malformed JSON");
      }
    }
    s = t->ParseConfig(config, has_post);
    if (!s.ok()) return s;
    if (!t->bos_id_ && t->post_processor_) t->bos_id_ = t->post_processor_->LeadingId();
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: bad field type: ", e.what()));
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

void HfTokenizer::EncodePlain(std::string text, bool at_start, std::vector<int32_t>* ids) const {
  std::vector<tok::Piece> pieces;
  pieces.push_back({std::move(text), at_start});
  if (pre_tokenizer_) pre_tokenizer_->Apply(&pieces);
  for (const tok::Piece& p : pieces) model_->EncodeWord(p.text, ids);
}

void HfTokenizer::EncodeValid(absl::string_view text, bool at_start,
                              std::vector<int32_t>* ids) const {
  std::vector<tok::Segment> segments;
  raw_matcher_->Split(text, at_start, &segments);
  for (tok::Segment& seg : segments) {
    if (seg.token_id >= 0) {
      ids->push_back(seg.token_id);
      continue;
    }
    if (normalizer_) normalizer_->Normalize(&seg.text);
    if (normalized_matcher_->empty()) {
      if (!seg.text.empty()) EncodePlain(std::move(seg.text), seg.at_start, ids);
      continue;
    }
    std::vector<tok::Segment> sub;
    normalized_matcher_->Split(seg.text, seg.at_start, &sub);
    for (tok::Segment& s : sub) {
      if (s.token_id >= 0) {
        ids->push_back(s.token_id);
      } else {
        EncodePlain(std::move(s.text), s.at_start, ids);
      }
    }
  }
}

absl::StatusOr<std::vector<int32_t>> HfTokenizer::Encode(absl::string_view text,
                                                         bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (tok::IsValidUtf8(text)) {
    EncodeValid(text, true, &ids);
  } else if (!byte_level_) {
    EncodeValid(tok::Utf8Lossy(text), true, &ids);
  } else {
    // Alternate well-formed runs (normal path) and ill-formed runs (raw bytes).
    size_t i = 0;
    while (i < text.size()) {
      size_t j = i;
      while (j < text.size() && tok::Utf8CharLen(text, j) > 0) j += tok::Utf8CharLen(text, j);
      if (j > i) EncodeValid(text.substr(i, j - i), i == 0, &ids);
      size_t k = j;
      while (k < text.size() && tok::Utf8CharLen(text, k) == 0) ++k;
      if (k > j) model_->EncodeWord(tok::ByteLevelEncode(text.substr(j, k - j)), &ids);
      i = k;
    }
  }
  if (add_special_tokens && post_processor_) post_processor_->AddSpecialTokens(&ids);
  return ids;
}

absl::StatusOr<std::string> HfTokenizer::Decode(absl::Span<const int32_t> ids,
                                                bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size()) {
      return absl::OutOfRangeError(absl::StrCat("Decode: token id ", id, " (position ", i,
                                                ") is outside the vocabulary [0, ",
                                                vocab_size(), ")"));
    }
    if (skip_special_tokens && special_[id]) continue;
    if (id_to_token_[id].empty()) continue;  // a hole in the id space
    tokens.push_back(id_to_token_[id]);
  }
  std::string out;
  if (decoder_) {
    decoder_->DecodeChain(&tokens);
    for (const auto& t : tokens) out += t;
  } else {
    out = absl::StrJoin(tokens, " ");
  }
  if (!tok::IsValidUtf8(out)) out = tok::Utf8Lossy(out);
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(
    absl::string_view tokenizer_json, absl::string_view tokenizer_config_json) {
  return HfTokenizer::Create(tokenizer_json, tokenizer_config_json);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromDirectory(const std::string& dir) {
  auto tokenizer = ReadFile(dir + "/tokenizer.json");
  if (!tokenizer.ok()) return tokenizer.status();
  std::string config;
  std::ifstream probe(dir + "/tokenizer_config.json");
  if (probe) {
    auto c = ReadFile(dir + "/tokenizer_config.json");
    if (!c.ok()) return c.status();
    config = std::move(*c);
  }
  auto t = FromJson(*tokenizer, config);
  if (!t.ok()) {
    return absl::Status(t.status().code(), absl::StrCat(dir, ": ", t.status().message()));
  }
  return t;
}

}  // namespace moe::engine

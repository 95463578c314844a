#include "engine/sampling/tool_call_constraint.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::engine::sampling {
namespace {

using Json = nlohmann::ordered_json;

// {"type": "object", "properties": {"name": {"enum": [name]}, "arguments": params}, ...},
// with the parameters' $defs / definitions moved to the top, where their "$ref"s point.
Json CallSchema(const ToolCallSpec& t) {
  Json params = t.parameters.is_null() ? Json{{"type", "object"}} : t.parameters;
  Json out = Json::object();
  out["type"] = "object";
  for (const char* defs : {"$defs", "definitions"}) {
    if (params.is_object() && params.contains(defs)) {
      out[defs] = params[defs];
      params.erase(defs);
    }
  }
  out["properties"] = Json::object();
  out["properties"]["name"] = Json{{"enum", Json::array({t.name})}};
  out["properties"]["arguments"] = std::move(params);
  out["required"] = Json::array({"name", "arguments"});
  out["additionalProperties"] = false;
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ToolCallGrammar>> ToolCallGrammar::Compile(
    const std::vector<ToolCallSpec>& tools) {
  if (tools.empty()) return absl::InvalidArgumentError("tools: no tool may be called");
  if (static_cast<int>(tools.size()) > kMaxTools) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tools: a forced tool call may choose among at most ", kMaxTools, " tools, got ",
        tools.size()));
  }
  auto g = std::shared_ptr<ToolCallGrammar>(new ToolCallGrammar());
  for (const ToolCallSpec& t : tools) {
    // Compiled alone first, so an error's path is relative to the parameters.
    if (!t.parameters.is_null()) {
      absl::StatusOr<std::shared_ptr<const JsonSchema>> alone =
          JsonSchema::Compile(t.parameters, t.strict);
      if (!alone.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(t.field, ": ", alone.status().message()));
      }
    }
    absl::StatusOr<std::shared_ptr<const JsonSchema>> s = JsonSchema::Compile(CallSchema(t), t.strict);
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(t.field, ": ", s.status().message()));
    }
    g->schemas_.push_back(*std::move(s));
  }
  return std::shared_ptr<const ToolCallGrammar>(std::move(g));
}

ToolCallRecognizer::ToolCallRecognizer(const ToolCallGrammar* grammar) : phase_(kOpenTag) {
  live_ = static_cast<uint8_t>(grammar->size());
  for (int k = 0; k < grammar->size(); ++k) {
    tool_[k] = static_cast<uint8_t>(k);
    alts_[k] = JsonSchemaRecognizer(grammar->schema(k));
  }
}

void ToolCallRecognizer::CopyFrom(const ToolCallRecognizer& o) {
  phase_ = o.phase_;
  live_ = o.live_;
  offset_ = o.offset_;
  tool_ = o.tool_;
  for (int k = 0; k < o.live_; ++k) alts_[k] = o.alts_[k];
}

bool ToolCallRecognizer::Advance(uint8_t b) {
  switch (phase_) {
    case kOpenTag:
    case kCloseTag: {
      const absl::string_view tag =
          phase_ == kOpenTag ? ToolCallGrammar::kOpen : ToolCallGrammar::kClose;
      if (static_cast<uint8_t>(tag[offset_]) != b) return Kill();
      if (++offset_ == tag.size()) {
        phase_ = phase_ == kOpenTag ? kObject : kDone;
        offset_ = 0;
      }
      return true;
    }
    case kObject: {
      uint8_t kept = 0;
      bool any_complete = false;
      for (uint8_t k = 0; k < live_; ++k) {
        if (!alts_[k].Advance(b)) continue;
        any_complete = any_complete || alts_[k].complete();
        if (kept != k) {
          alts_[kept] = alts_[k];
          tool_[kept] = tool_[k];
        }
        ++kept;
      }
      live_ = kept;
      if (kept == 0) return Kill();
      // The object is the whole document: once it closes, the closing tag follows.
      if (any_complete) {
        phase_ = kCloseTag;
        offset_ = 0;
      }
      return true;
    }
    default:  // kDone, kDead
      return Kill();
  }
}

bool ToolCallRecognizer::AdvanceAll(absl::string_view bytes) {
  for (char c : bytes) {
    if (!Advance(static_cast<uint8_t>(c))) return false;
  }
  return true;
}

bool ToolCallRecognizer::AcceptsAnyPlain() const {
  if (phase_ != kObject) return false;
  for (uint8_t k = 0; k < live_; ++k) {
    if (alts_[k].AcceptsAnyPlain()) return true;
  }
  return false;
}

std::vector<int> ToolCallRecognizer::LiveTools() const {
  if (phase_ == kDead) return {};
  return std::vector<int>(tool_.begin(), tool_.begin() + live_);
}

bool operator==(const ToolCallRecognizer& a, const ToolCallRecognizer& b) {
  if (a.phase_ != b.phase_ || a.live_ != b.live_ || a.offset_ != b.offset_) return false;
  for (uint8_t k = 0; k < a.live_; ++k) {
    if (a.tool_[k] != b.tool_[k] || a.alts_[k] != b.alts_[k]) return false;
  }
  return true;
}

ToolCallConstraint::ToolCallConstraint(std::shared_ptr<const ToolCallGrammar> grammar,
                                       std::shared_ptr<const TokenTrie> trie,
                                       std::vector<int32_t> eos_ids)
    : grammar_(std::move(grammar)),
      trie_(std::move(trie)),
      eos_ids_(std::move(eos_ids)),
      state_(grammar_.get()),
      bits_((static_cast<size_t>(trie_->vocab_size()) + 63) / 64, 0),
      states_(static_cast<size_t>(trie_->max_depth()) + 1) {}

bool ToolCallConstraint::IsEos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

int64_t ToolCallConstraint::Walk() {
  std::fill(bits_.begin(), bits_.end(), 0);
  if (state_.dead()) return 0;
  const absl::Span<const TokenTrie::Node> nodes = trie_->nodes();
  const absl::Span<const int32_t> ids = trie_->ids();
  int64_t count = 0;
  auto set = [&](int32_t id) {
    uint64_t& w = bits_[id >> 6];
    const uint64_t m = uint64_t{1} << (id & 63);
    count += (w & m) == 0;
    w |= m;
  };
  states_[0].CopyFrom(state_);
  size_t i = 1;
  while (i < nodes.size()) {
    const TokenTrie::Node& node = nodes[i];
    ToolCallRecognizer& s = states_[node.depth];
    s.CopyFrom(states_[node.depth - 1]);
    if (!s.Advance(node.byte)) {
      i = node.next;  // no token with this prefix fits
      continue;
    }
    if (node.plain_below && s.AcceptsAnyPlain()) {
      for (uint32_t k = node.ids_begin; k < node.subtree_end; ++k) set(ids[k]);
      i = node.next;
      continue;
    }
    for (uint32_t k = node.ids_begin; k < node.ids_end; ++k) set(ids[k]);
    ++i;
  }
  return count;
}

void ToolCallConstraint::Mask(float* logits, int64_t n) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  bool eos_ok = true;  // a broken block may only end
  bool use_bits = false;
  if (!broken_) {
    if (!have_mask_ || mask_state_ != state_) {
      mask_count_ = Walk();
      mask_state_.CopyFrom(state_);
      have_mask_ = true;
    }
    eos_ok = state_.complete() || mask_count_ == 0;
    use_bits = true;
  }
  eos_saved_.clear();
  for (int32_t id : eos_ids_) eos_saved_.push_back(id >= 0 && id < n ? logits[id] : 0.f);
  int64_t covered = 0;
  if (use_bits) {
    covered = std::min<int64_t>(n, static_cast<int64_t>(bits_.size()) * 64);
    for (int64_t w = 0; w * 64 < covered; ++w) {
      const uint64_t word = bits_[w];
      if (word == ~uint64_t{0}) continue;
      const int64_t end = std::min<int64_t>(covered, (w + 1) * 64);
      for (int64_t i = w * 64; i < end; ++i) {
        if (!((word >> (i & 63)) & 1)) logits[i] = kNegInf;
      }
    }
  }
  std::fill(logits + covered, logits + n, kNegInf);
  for (size_t k = 0; k < eos_ids_.size(); ++k) {
    const int32_t id = eos_ids_[k];
    if (id >= 0 && id < n) logits[id] = eos_ok ? eos_saved_[k] : kNegInf;
  }
}

void ToolCallConstraint::Accept(int32_t token) {
  if (broken_ || IsEos(token)) return;
  const std::string& bytes = trie_->bytes(token);
  if (bytes.empty() || !state_.AdvanceAll(bytes)) broken_ = true;
}

std::vector<int32_t> ToolCallConstraint::AllowedIds() {
  int64_t n = trie_->vocab_size();
  for (int32_t id : eos_ids_) n = std::max<int64_t>(n, int64_t{id} + 1);
  std::vector<float> row(static_cast<size_t>(n), 0.f);
  Mask(row.data(), n);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    if (row[i] == 0.f) out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

ToolCallConstraintFactory::ToolCallConstraintFactory(
    std::shared_ptr<const ToolCallGrammar> grammar, std::shared_ptr<const TokenTrie> trie,
    std::vector<int32_t> eos_ids)
    : grammar_(std::move(grammar)), trie_(std::move(trie)), eos_ids_(std::move(eos_ids)) {}

std::unique_ptr<LogitConstraint> ToolCallConstraintFactory::Create() const {
  return std::make_unique<ToolCallConstraint>(grammar_, trie_, eos_ids_);
}

}  // namespace moe::engine::sampling

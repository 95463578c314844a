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

}  // namespace moe::engine::sampling

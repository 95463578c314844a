// Forced tool calls (OpenAI's tool_choice "required" and {"type": "function", "function":
// {"name": X}}) as a LogitConstraint: the output must be exactly one Hermes tool-call
// block, the shape server/http/tool_call_parser.h reads,
//
//   <tool_call>\n{"name": "X", "arguments": {...}}\n</tool_call>
//
// followed by end-of-sequence. The JSON object is validated against, per allowed tool,
// {"type": "object", "properties": {"name": {"enum": [X]}, "arguments": <X's parameters>},
//  "required": ["name", "arguments"], "additionalProperties": false}.
// With several allowed tools, one JsonSchemaRecognizer per tool runs in lockstep over
// the same bytes and a byte is accepted while any of them accepts it (a set of live
// alternatives): the name the model writes leaves only that tool's recogniser alive, so
// the arguments are checked against the chosen function's schema (anyOf, which JsonSchema
// does not support, is not needed). The closing tag follows the object directly; end-of-
// sequence is allowed only after it. Masking works as json_schema_constraint.h (a byte-
// trie walk, copying only the live alternatives per edge; the mask of an unchanged state
// is reused); when nothing fits, or an accepted token broke the block, only
// end-of-sequence is allowed.
//
// Thread safety: ToolCallGrammar and ToolCallConstraintFactory are immutable and shared
// freely; a ToolCallConstraint holds one sequence's state: one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/sampling/json_schema.h"
#include "engine/sampling/json_schema_recognizer.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/token_trie.h"
#include "engine/sampling/trie_constraint.h"

namespace moe::engine::sampling {

// One function the model may call.
struct ToolCallSpec {
  std::string name;
  // Its "parameters" JSON Schema; null means {"type": "object"}.
  nlohmann::ordered_json parameters;
  // OpenAI's function.strict: an absent additionalProperties means false.
  bool strict = false;
  // The request field holding `parameters`, for errors (e.g. "tools[1].function.parameters").
  std::string field;
};

// The compiled schemas of the allowed tools, in the order given.
class ToolCallGrammar {
 public:
  static constexpr int kMaxTools = 16;
  static constexpr absl::string_view kOpen = "<tool_call>\n";
  static constexpr absl::string_view kClose = "\n</tool_call>";

  // INVALID_ARGUMENT when there are no tools or more than kMaxTools ("tools: ..."), or a
  // tool's parameters use what JsonSchema does not support ("<spec.field>: json_schema
  // keyword 'X' is not supported (at #/...)"). "$defs" / "definitions" of a parameters
  // schema stay reachable by its "$ref"s.
  static absl::StatusOr<std::shared_ptr<const ToolCallGrammar>> Compile(
      const std::vector<ToolCallSpec>& tools);

  int size() const { return static_cast<int>(schemas_.size()); }
  const JsonSchema* schema(int i) const { return schemas_[i].get(); }

 private:
  std::vector<std::shared_ptr<const JsonSchema>> schemas_;
};

// The byte-level state of one block: the opening tag, the object (live alternatives),
// the closing tag, then nothing. A value type (no allocation); copy with CopyFrom, which
// copies only the live alternatives.
class ToolCallRecognizer {
 public:
  ToolCallRecognizer() = default;  // dead
  explicit ToolCallRecognizer(const ToolCallGrammar* grammar);

  bool Advance(uint8_t byte);
  bool AdvanceAll(absl::string_view bytes);
  void CopyFrom(const ToolCallRecognizer& o);

  bool dead() const { return phase_ == kDead; }
  bool complete() const { return phase_ == kDone; }
  // Any plain string byte is accepted whatever came before (some alternative is inside
  // an unconstrained string).
  bool AcceptsAnyPlain() const;
  // The tools still consistent with the bytes so far (indices into the grammar).
  std::vector<int> LiveTools() const;

  friend bool operator==(const ToolCallRecognizer& a, const ToolCallRecognizer& b);
  friend bool operator!=(const ToolCallRecognizer& a, const ToolCallRecognizer& b) {
    return !(a == b);
  }

 private:
  enum Phase : uint8_t { kDead, kOpenTag, kObject, kCloseTag, kDone };
  bool Kill() {
    phase_ = kDead;
    return false;
  }

  uint8_t phase_ = kDead;
  uint8_t live_ = 0;    // alts_[0, live_) are alive; tool_[k] is alts_[k]'s tool
  uint32_t offset_ = 0; // bytes of the current tag matched
  std::array<uint8_t, ToolCallGrammar::kMaxTools> tool_{};
  std::array<JsonSchemaRecognizer, ToolCallGrammar::kMaxTools> alts_{};
};

using ToolCallConstraint = TrieConstraint<ToolCallRecognizer, ToolCallGrammar>;
using ToolCallConstraintFactory = TrieConstraintFactory<ToolCallRecognizer, ToolCallGrammar>;

}  // namespace moe::engine::sampling

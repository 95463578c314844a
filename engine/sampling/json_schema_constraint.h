// Structured outputs (OpenAI's response_format {"type": "json_schema"}) as a
// LogitConstraint: at each step only tokens whose bytes keep the output a prefix of a
// document valid under the compiled schema (json_schema_recognizer.h) may be sampled;
// end-of-sequence only once the document is complete. As JSON mode (json_constraint.h):
// the allowed set comes from a walk of the tokenizer's byte trie, copying the state per
// edge and skipping rejected subtrees (whole plain-ASCII subtrees are accepted at once
// inside unconstrained strings and free-form keys); the set of the last state is reused
// while the state is unchanged; when nothing fits, or an accepted token broke the
// document, only end-of-sequence is allowed.
//
// Thread safety: JsonSchemaConstraint holds one sequence's state: one thread at a time.
// JsonSchemaConstraintFactory is immutable and shared freely.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/sampling/json_schema.h"
#include "engine/sampling/json_schema_recognizer.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/token_trie.h"

namespace moe::engine::sampling {

class JsonSchemaConstraint : public LogitConstraint {
 public:
  JsonSchemaConstraint(std::shared_ptr<const JsonSchema> schema,
                       std::shared_ptr<const TokenTrie> trie, std::vector<int32_t> eos_ids);

  void Mask(float* logits, int64_t n) override;
  void Accept(int32_t token) override;

  // The ids Mask would leave allowed now, ascending (for tests and tools).
  std::vector<int32_t> AllowedIds();
  const JsonSchemaRecognizer& recognizer() const { return state_; }
  bool broken() const { return broken_; }

 private:
  bool IsEos(int32_t id) const;
  int64_t Walk();  // fills bits_ for state_; returns the count

  std::shared_ptr<const JsonSchema> schema_;
  std::shared_ptr<const TokenTrie> trie_;
  std::vector<int32_t> eos_ids_;
  JsonSchemaRecognizer state_;
  bool broken_ = false;
  bool have_mask_ = false;
  JsonSchemaRecognizer mask_state_;
  int64_t mask_count_ = 0;
  std::vector<uint64_t> bits_;
  std::vector<JsonSchemaRecognizer> states_;  // walk scratch: states_[d] after d bytes
  std::vector<float> eos_saved_;
};

class JsonSchemaConstraintFactory : public LogitConstraintFactory {
 public:
  JsonSchemaConstraintFactory(std::shared_ptr<const JsonSchema> schema,
                              std::shared_ptr<const TokenTrie> trie,
                              std::vector<int32_t> eos_ids);
  std::unique_ptr<LogitConstraint> Create() const override;

 private:
  std::shared_ptr<const JsonSchema> schema_;
  std::shared_ptr<const TokenTrie> trie_;
  std::vector<int32_t> eos_ids_;
};

}  // namespace moe::engine::sampling

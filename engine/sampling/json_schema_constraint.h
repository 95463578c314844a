// Structured outputs (OpenAI's response_format {"type": "json_schema"}) as a
// LogitConstraint: at each step only tokens whose bytes keep the output a prefix of a
// document valid under the compiled schema (json_schema_recognizer.h) may be sampled;
// end-of-sequence only once the document is complete. The masking is trie_constraint.h's
// (a byte-trie walk with the recogniser's state; whole plain-ASCII subtrees are accepted
// at once inside unconstrained strings and free-form keys).
//
// Thread safety: as trie_constraint.h.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/sampling/json_schema.h"
#include "engine/sampling/json_schema_recognizer.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/token_trie.h"
#include "engine/sampling/trie_constraint.h"

namespace moe::engine::sampling {

using JsonSchemaConstraint = TrieConstraint<JsonSchemaRecognizer, JsonSchema>;
using JsonSchemaConstraintFactory = TrieConstraintFactory<JsonSchemaRecognizer, JsonSchema>;

}  // namespace moe::engine::sampling

// A constraint on which tokens a sequence may produce next (constrained decoding, e.g.
// JSON mode: json_constraint.h). A Sampler holding one applies Mask after logit_bias and
// penalties and before temperature / greedy, and calls Accept with every token it returns.
//
// Thread safety: a LogitConstraint holds one sequence's state; one thread at a time (it
// belongs to that sequence's Sampler). A LogitConstraintFactory is immutable and may be
// shared by any number of threads (one factory per request, one constraint per sequence).
#pragma once

#include <cstdint>
#include <memory>

namespace moe::engine {

class LogitConstraint {
 public:
  virtual ~LogitConstraint() = default;
  // Sets logits[i] to -inf for every token i in [0, n) that may not come next, leaving
  // the others as they are. Leaves at least one token allowed whenever the vocabulary
  // has an end-of-sequence token (when nothing else fits, that token).
  virtual void Mask(float* logits, int64_t n) = 0;
  // The sequence's next token was `token` (whether or not Mask allowed it).
  virtual void Accept(int32_t token) = 0;
};

class LogitConstraintFactory {
 public:
  virtual ~LogitConstraintFactory() = default;
  // A fresh constraint in its initial state, for one sequence.
  virtual std::unique_ptr<LogitConstraint> Create() const = 0;
};

}  // namespace moe::engine

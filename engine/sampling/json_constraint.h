// JSON mode (OpenAI's response_format {"type": "json_object"}) as a LogitConstraint: at
// each step only tokens whose bytes keep the output a valid prefix of a JSON document
// (json_recognizer.h) may be sampled; end-of-sequence only once the top-level value is
// complete, and then only end-of-sequence or whitespace (within the recogniser's
// whitespace limit), so the output is a parseable document whenever it ends by EOS.
//
// The allowed set is found by walking the tokenizer's byte trie (token_trie.h) from the
// recogniser's state, copying the 16-byte state per trie edge and skipping every subtree
// whose prefix is rejected; inside a string, subtrees of plain ASCII are accepted whole.
// Inside a string most tokens never leave it, and which of those fit does not depend on
// where the string is: JsonTokenIndex computes that set once per vocabulary, with, for
// each token that closes the string, where its closing '"' is; from inside a string only
// those tokens' bytes from their closing quote on are checked, with no trie walk. A
// constraint remembers the set of the last state it computed, so steps that leave the
// state unchanged (runs of plain string characters) reuse it.
//
// If nothing fits (a vocabulary lacking the bytes a value needs), or an accepted token
// broke the document (Accept of a token Mask had forbidden), only end-of-sequence is
// allowed, so the request ends instead of running to max_tokens.
//
// Thread safety: JsonTokenMask and JsonConstraint hold one sequence's scratch state: one
// thread at a time. JsonConstraintFactory is immutable and shared freely.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/sampling/json_recognizer.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/token_trie.h"

namespace moe::engine::sampling {

// A vocabulary's trie plus what JSON masks need of it regardless of state, from inside a
// string with nothing pending (JsonRecognizer::InPlainString): which tokens stay inside
// the string, and which close it and where. Built once per tokenizer
// (token_trie_cache.h); immutable, shared by any number of threads.
class JsonTokenIndex {
 public:
  struct Closing {
    int32_t id;
    uint32_t at;  // the offset of the '"' that closes the string
  };
  explicit JsonTokenIndex(std::shared_ptr<const TokenTrie> trie);
  const TokenTrie& trie() const { return *trie_; }
  const std::shared_ptr<const TokenTrie>& shared_trie() const { return trie_; }
  // Bit i: every byte of token i fits inside a string and it never closes it.
  const std::vector<uint64_t>& in_string() const { return in_string_; }
  // The tokens whose bytes before some '"' fit inside a string and that '"' closes it:
  // whether they fit depends on what follows the string.
  const std::vector<Closing>& closing() const { return closing_; }

 private:
  std::shared_ptr<const TokenTrie> trie_;
  std::vector<uint64_t> in_string_;
  std::vector<Closing> closing_;
};

// The tokens whose bytes a recogniser state accepts, as a bitset over the vocabulary.
class JsonTokenMask {
 public:
  explicit JsonTokenMask(std::shared_ptr<const JsonTokenIndex> index);
  // Without an index: every walk visits the whole trie below the accepted prefixes
  // (slower inside strings; the index is built with it).
  explicit JsonTokenMask(std::shared_ptr<const TokenTrie> trie);

  // Recomputes the set for `state` (nothing when it is dead); returns its size.
  int64_t Compute(const JsonRecognizer& state);
  bool allowed(int32_t id) const {
    return id >= 0 && id < trie_->vocab_size() && ((bits_[id >> 6] >> (id & 63)) & 1);
  }
  // Bit i of word i / 64: token i is allowed.
  const std::vector<uint64_t>& bits() const { return bits_; }
  const TokenTrie& trie() const { return *trie_; }

 private:
  // The trie walk (any state).
  int64_t Walk(const JsonRecognizer& state);
  // From a plain string state, with the index: its in-string set plus the closing
  // tokens whose rest fits.
  int64_t InString(const JsonRecognizer& state);
  // Sets token id's bit; 1 if it was clear.
  int Set(int32_t id) {
    uint64_t& w = bits_[id >> 6];
    const uint64_t m = uint64_t{1} << (id & 63);
    const int fresh = (w & m) == 0;
    w |= m;
    return fresh;
  }

  std::shared_ptr<const JsonTokenIndex> index_;  // may be null
  std::shared_ptr<const TokenTrie> trie_;
  std::vector<uint64_t> bits_;
  std::vector<JsonRecognizer> states_;  // states_[d]: after the first d bytes of the path
};

class JsonConstraint : public LogitConstraint {
 public:
  JsonConstraint(std::shared_ptr<const JsonTokenIndex> index, std::vector<int32_t> eos_ids,
                 JsonTopLevel top);

  void Mask(float* logits, int64_t n) override;
  void Accept(int32_t token) override;

  // The ids Mask would leave allowed now, ascending (for tests and tools).
  std::vector<int32_t> AllowedIds();
  const JsonRecognizer& recognizer() const { return state_; }
  // An accepted token was rejected by the recogniser; only end-of-sequence is allowed.
  bool broken() const { return broken_; }

 private:
  bool IsEos(int32_t id) const;

  JsonTokenMask mask_;
  std::vector<int32_t> eos_ids_;
  JsonRecognizer state_;
  bool broken_ = false;
  bool have_mask_ = false;
  JsonRecognizer mask_state_;  // the state mask_ was computed for
  int64_t mask_count_ = 0;
  std::vector<float> eos_saved_;  // scratch: end-of-sequence logits across the masking
};

class JsonConstraintFactory : public LogitConstraintFactory {
 public:
  // `eos_ids`: the tokens that end a sequence (allowed once the value is complete).
  JsonConstraintFactory(std::shared_ptr<const JsonTokenIndex> index,
                        std::vector<int32_t> eos_ids, JsonTopLevel top = JsonTopLevel::kObject);
  std::unique_ptr<LogitConstraint> Create() const override;

 private:
  std::shared_ptr<const JsonTokenIndex> index_;
  std::vector<int32_t> eos_ids_;
  JsonTopLevel top_;
};

}  // namespace moe::engine::sampling

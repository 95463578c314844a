// The TokenTrie of one tokenizer (every token's Tokenizer::TokenBytes) and its
// JsonTokenIndex, built on first use and then shared by every constrained request on that
// tokenizer: building them walks the whole vocabulary (tens of milliseconds for 150k
// tokens); a step's mask must not.
//
// Thread safety: Trie() and JsonIndex() may be called from any number of threads; the first call builds,
// the others wait for it. The tokenizer must outlive the cache.
#pragma once

#include <memory>

#include "absl/base/call_once.h"
#include "engine/sampling/json_constraint.h"
#include "engine/sampling/token_trie.h"
#include "engine/tokenizer/tokenizer.h"

namespace moe::engine::sampling {

// The trie of `tokenizer`'s token bytes (special tokens left out).
std::shared_ptr<const TokenTrie> BuildTokenTrie(const Tokenizer& tokenizer);

class TokenTrieCache {
 public:
  explicit TokenTrieCache(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  std::shared_ptr<const TokenTrie> Trie();
  std::shared_ptr<const JsonTokenIndex> JsonIndex();

 private:
  const Tokenizer* tokenizer_;
  absl::once_flag trie_once_, json_once_;
  std::shared_ptr<const TokenTrie> trie_;
  std::shared_ptr<const JsonTokenIndex> json_;
};

}  // namespace moe::engine::sampling

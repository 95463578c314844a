#include "engine/sampling/token_trie_cache.h"

#include <string>
#include <vector>

namespace moe::engine::sampling {

std::shared_ptr<const TokenTrie> BuildTokenTrie(const Tokenizer& tokenizer) {
  std::vector<std::string> bytes(static_cast<size_t>(tokenizer.vocab_size()));
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) bytes[id] = tokenizer.TokenBytes(id);
  return std::make_shared<const TokenTrie>(std::move(bytes));
}

std::shared_ptr<const TokenTrie> TokenTrieCache::Trie() {
  absl::call_once(trie_once_, [this] { trie_ = BuildTokenTrie(*tokenizer_); });
  return trie_;
}

std::shared_ptr<const JsonTokenIndex> TokenTrieCache::JsonIndex() {
  absl::call_once(json_once_, [this] { json_ = std::make_shared<const JsonTokenIndex>(Trie()); });
  return json_;
}

}  // namespace moe::engine::sampling

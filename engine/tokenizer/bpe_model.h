// The BPE model of tokenizer.json ("model": {"type": "BPE"}): vocab, merges (both the
// "a b" and the ["a", "b"] forms), unk_token, fuse_unk, byte_fallback, ignore_merges,
// continuing_subword_prefix, end_of_word_suffix. A word is merged with a priority queue
// of adjacent pairs by merge rank (O(n log n)); results for short words are cached.
// Thread safety: EncodeWord may run concurrently (the cache is behind a mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/tokenizer/json_util.h"

namespace moe::engine::tok {

class BpeModel {
 public:
  // `j` is the "model" object; errors name "model.<field>".
  static absl::StatusOr<std::unique_ptr<BpeModel>> Parse(const Json& j);

  // Appends the ids of one pre-tokenized piece (valid UTF-8) to `ids`.
  void EncodeWord(absl::string_view word, std::vector<int32_t>* ids) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  std::optional<int32_t> TokenToId(absl::string_view token) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void Tokenize(absl::string_view word, std::vector<int32_t>* ids) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::vector<int32_t> byte_ids_;  // id of "<0xXX>" per byte, -1 if absent

  static constexpr size_t kMaxCachedWordBytes = 64;
  static constexpr size_t kMaxCacheEntries = 50000;
  // std::mutex rather than absl::Mutex: the system absl is not built for ThreadSanitizer,
  // which then cannot see absl's locking.
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;  // by cache_mu_
};

}  // namespace moe::engine::tok

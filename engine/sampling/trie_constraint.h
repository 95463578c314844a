// The LogitConstraint shared by the grammar-driven modes (structured outputs,
// json_schema_constraint.h; forced tool calls, tool_call_constraint.h): at each step only
// tokens whose bytes keep a byte-level recogniser alive may be sampled, end-of-sequence
// only once it is complete. The allowed set comes from a walk of the tokenizer's byte trie
// (token_trie.h), copying the state per edge and skipping rejected subtrees; a node whose
// whole subtree is plain ASCII is accepted at once when the state takes any plain byte
// (inside an unconstrained string). The set of the last state is reused while the state is
// unchanged. When nothing fits, or an accepted token broke the document, only
// end-of-sequence is allowed, so the request ends instead of hanging.
//
// Recognizer: default-constructible (dead), constructible from `const Grammar*`, with
// Advance(uint8_t), AdvanceAll(string_view), CopyFrom(const Recognizer&), dead(),
// complete(), AcceptsAnyPlain() and operator!=.
//
// Thread safety: a TrieConstraint holds one sequence's state: one thread at a time. The
// factory is immutable and shared freely.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "engine/sampling/logit_constraint.h"
#include "engine/sampling/token_trie.h"

namespace moe::engine::sampling {

template <typename Recognizer, typename Grammar>
class TrieConstraint : public LogitConstraint {
 public:
  TrieConstraint(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie,
                 std::vector<int32_t> eos_ids)
      : grammar_(std::move(grammar)),
        trie_(std::move(trie)),
        eos_ids_(std::move(eos_ids)),
        state_(grammar_.get()),
        bits_((static_cast<size_t>(trie_->vocab_size()) + 63) / 64, 0),
        states_(static_cast<size_t>(trie_->max_depth()) + 1) {}

  void Mask(float* logits, int64_t n) override {
    constexpr float kNegInf = -std::numeric_limits<float>::infinity();
    bool eos_ok = true;  // a broken document may only end
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

  void Accept(int32_t token) override {
    if (broken_ || IsEos(token)) return;
    const std::string& bytes = trie_->bytes(token);
    if (bytes.empty() || !state_.AdvanceAll(bytes)) broken_ = true;
  }

  // The ids Mask would leave allowed now, ascending (for tests and tools).
  std::vector<int32_t> AllowedIds() {
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
  const Recognizer& recognizer() const { return state_; }
  bool broken() const { return broken_; }

 private:
  bool IsEos(int32_t id) const {
    return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
  }

  // Fills bits_ with the tokens state_ accepts; returns how many.
  int64_t Walk() {
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
      Recognizer& s = states_[node.depth];
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

  std::shared_ptr<const Grammar> grammar_;  // state_ and the walk states point into it
  std::shared_ptr<const TokenTrie> trie_;
  std::vector<int32_t> eos_ids_;
  Recognizer state_;
  bool broken_ = false;
  bool have_mask_ = false;
  Recognizer mask_state_;
  int64_t mask_count_ = 0;
  std::vector<uint64_t> bits_;
  std::vector<Recognizer> states_;  // walk scratch: states_[d] after d bytes
  std::vector<float> eos_saved_;
};

template <typename Recognizer, typename Grammar>
class TrieConstraintFactory : public LogitConstraintFactory {
 public:
  TrieConstraintFactory(std::shared_ptr<const Grammar> grammar,
                        std::shared_ptr<const TokenTrie> trie, std::vector<int32_t> eos_ids)
      : grammar_(std::move(grammar)), trie_(std::move(trie)), eos_ids_(std::move(eos_ids)) {}
  std::unique_ptr<LogitConstraint> Create() const override {
    return std::make_unique<TrieConstraint<Recognizer, Grammar>>(grammar_, trie_, eos_ids_);
  }

 private:
  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenTrie> trie_;
  std::vector<int32_t> eos_ids_;
};

}  // namespace moe::engine::sampling

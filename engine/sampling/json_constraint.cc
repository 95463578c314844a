#include "engine/sampling/json_constraint.h"

#include <algorithm>
#include <limits>

namespace moe::engine::sampling {

JsonTokenIndex::JsonTokenIndex(std::shared_ptr<const TokenTrie> trie)
    : trie_(std::move(trie)),
      in_string_((static_cast<size_t>(trie_->vocab_size()) + 63) / 64, 0) {
  JsonRecognizer in_string(JsonTopLevel::kObject);
  in_string.AdvanceAll("{\"");  // any plain string state would do
  for (int32_t id = 0; id < trie_->vocab_size(); ++id) {
    const std::string& bytes = trie_->bytes(id);
    if (bytes.empty()) continue;
    JsonRecognizer r = in_string;
    size_t k = 0;
    for (; k < bytes.size(); ++k) {
      const uint8_t b = static_cast<uint8_t>(bytes[k]);
      if (b == '"' && r.InPlainString()) break;  // closes the string
      if (!r.Advance(b)) break;
    }
    if (k == bytes.size()) {
      in_string_[id >> 6] |= uint64_t{1} << (id & 63);
    } else if (!r.dead()) {
      closing_.push_back({id, static_cast<uint32_t>(k)});
    }
  }
}

JsonTokenMask::JsonTokenMask(std::shared_ptr<const TokenTrie> trie)
    : trie_(std::move(trie)),
      bits_((static_cast<size_t>(trie_->vocab_size()) + 63) / 64, 0),
      states_(static_cast<size_t>(trie_->max_depth()) + 1) {}

JsonTokenMask::JsonTokenMask(std::shared_ptr<const JsonTokenIndex> index)
    : index_(std::move(index)),
      trie_(index_->shared_trie()),
      bits_((static_cast<size_t>(trie_->vocab_size()) + 63) / 64, 0),
      states_(static_cast<size_t>(trie_->max_depth()) + 1) {}

int64_t JsonTokenMask::Compute(const JsonRecognizer& state) {
  if (index_ != nullptr && state.InPlainString()) return InString(state);
  return Walk(state);
}

int64_t JsonTokenMask::InString(const JsonRecognizer& state) {
  bits_ = index_->in_string();
  int64_t count = 0;
  for (uint64_t w : bits_) count += __builtin_popcountll(w);
  for (const JsonTokenIndex::Closing& c : index_->closing()) {
    // Up to the closing quote the token stayed inside the string, whatever string this is.
    JsonRecognizer r = state;
    const std::string& bytes = trie_->bytes(c.id);
    if (r.AdvanceAll(absl::string_view(bytes).substr(c.at))) count += Set(c.id);
  }
  return count;
}

int64_t JsonTokenMask::Walk(const JsonRecognizer& state) {
  std::fill(bits_.begin(), bits_.end(), 0);
  if (state.dead()) return 0;
  const absl::Span<const TokenTrie::Node> nodes = trie_->nodes();
  const absl::Span<const int32_t> ids = trie_->ids();
  int64_t count = 0;
  states_[0] = state;
  size_t i = 1;
  while (i < nodes.size()) {
    const TokenTrie::Node& node = nodes[i];
    JsonRecognizer s = states_[node.depth - 1];
    if (!s.Advance(node.byte)) {
      i = node.next;  // no token with this prefix fits
      continue;
    }
    if (node.plain_below && s.InPlainString()) {
      // Plain string bytes leave the state unchanged: the whole subtree fits.
      for (uint32_t k = node.ids_begin; k < node.subtree_end; ++k) count += Set(ids[k]);
      i = node.next;
      continue;
    }
    for (uint32_t k = node.ids_begin; k < node.ids_end; ++k) count += Set(ids[k]);
    states_[node.depth] = s;
    ++i;
  }
  return count;
}

JsonConstraint::JsonConstraint(std::shared_ptr<const JsonTokenIndex> index,
                               std::vector<int32_t> eos_ids, JsonTopLevel top)
    : mask_(std::move(index)), eos_ids_(std::move(eos_ids)), state_(top), mask_state_(top) {}

bool JsonConstraint::IsEos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

void JsonConstraint::Mask(float* logits, int64_t n) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  bool eos_ok = true;  // a broken document may only end
  const std::vector<uint64_t>* bits = nullptr;
  if (!broken_) {
    if (!have_mask_ || mask_state_ != state_) {
      mask_count_ = mask_.Compute(state_);
      mask_state_ = state_;
      have_mask_ = true;
    }
    eos_ok = state_.complete() || mask_count_ == 0;
    bits = &mask_.bits();
  }
  eos_saved_.clear();
  for (int32_t id : eos_ids_) eos_saved_.push_back(id >= 0 && id < n ? logits[id] : 0.f);

  int64_t covered = 0;
  if (bits != nullptr) {
    covered = std::min<int64_t>(n, static_cast<int64_t>(bits->size()) * 64);
    for (int64_t w = 0; w * 64 < covered; ++w) {
      const uint64_t word = (*bits)[w];
      if (word == ~uint64_t{0}) continue;
      const int64_t end = std::min<int64_t>(covered, (w + 1) * 64);
      for (int64_t i = w * 64; i < end; ++i) {
        if (!((word >> (i & 63)) & 1)) logits[i] = kNegInf;
      }
    }
  }
  std::fill(logits + covered, logits + n, kNegInf);  // ids the trie does not hold
  for (size_t k = 0; k < eos_ids_.size(); ++k) {
    const int32_t id = eos_ids_[k];
    if (id >= 0 && id < n) logits[id] = eos_ok ? eos_saved_[k] : kNegInf;
  }
}

void JsonConstraint::Accept(int32_t token) {
  if (broken_ || IsEos(token)) return;
  const std::string& bytes = mask_.trie().bytes(token);
  if (bytes.empty() || !state_.AdvanceAll(bytes)) broken_ = true;
}

std::vector<int32_t> JsonConstraint::AllowedIds() {
  int64_t n = mask_.trie().vocab_size();
  for (int32_t id : eos_ids_) n = std::max<int64_t>(n, int64_t{id} + 1);
  std::vector<float> row(static_cast<size_t>(n), 0.f);
  Mask(row.data(), n);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < n; ++i) {
    if (row[i] == 0.f) out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

JsonConstraintFactory::JsonConstraintFactory(std::shared_ptr<const JsonTokenIndex> index,
                                             std::vector<int32_t> eos_ids, JsonTopLevel top)
    : index_(std::move(index)), eos_ids_(std::move(eos_ids)), top_(top) {}

std::unique_ptr<LogitConstraint> JsonConstraintFactory::Create() const {
  return std::make_unique<JsonConstraint>(index_, eos_ids_, top_);
}

}  // namespace moe::engine::sampling

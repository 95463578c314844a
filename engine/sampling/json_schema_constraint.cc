#include "engine/sampling/json_schema_constraint.h"

#include <algorithm>
#include <limits>

namespace moe::engine::sampling {

JsonSchemaConstraint::JsonSchemaConstraint(std::shared_ptr<const JsonSchema> schema,
                                           std::shared_ptr<const TokenTrie> trie,
                                           std::vector<int32_t> eos_ids)
    : schema_(std::move(schema)),
      trie_(std::move(trie)),
      eos_ids_(std::move(eos_ids)),
      state_(schema_.get()),
      bits_((static_cast<size_t>(trie_->vocab_size()) + 63) / 64, 0),
      states_(static_cast<size_t>(trie_->max_depth()) + 1) {}

bool JsonSchemaConstraint::IsEos(int32_t id) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end();
}

int64_t JsonSchemaConstraint::Walk() {
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
  states_[0] = state_;
  size_t i = 1;
  while (i < nodes.size()) {
    const TokenTrie::Node& node = nodes[i];
    JsonSchemaRecognizer& s = states_[node.depth];
    s = states_[node.depth - 1];
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

void JsonSchemaConstraint::Mask(float* logits, int64_t n) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  bool eos_ok = true;  // a broken document may only end
  bool use_bits = false;
  if (!broken_) {
    if (!have_mask_ || mask_state_ != state_) {
      mask_count_ = Walk();
      mask_state_ = state_;
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

void JsonSchemaConstraint::Accept(int32_t token) {
  if (broken_ || IsEos(token)) return;
  const std::string& bytes = trie_->bytes(token);
  if (bytes.empty() || !state_.AdvanceAll(bytes)) broken_ = true;
}

std::vector<int32_t> JsonSchemaConstraint::AllowedIds() {
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

JsonSchemaConstraintFactory::JsonSchemaConstraintFactory(
    std::shared_ptr<const JsonSchema> schema, std::shared_ptr<const TokenTrie> trie,
    std::vector<int32_t> eos_ids)
    : schema_(std::move(schema)), trie_(std::move(trie)), eos_ids_(std::move(eos_ids)) {}

std::unique_ptr<LogitConstraint> JsonSchemaConstraintFactory::Create() const {
  return std::make_unique<JsonSchemaConstraint>(schema_, trie_, eos_ids_);
}

}  // namespace moe::engine::sampling

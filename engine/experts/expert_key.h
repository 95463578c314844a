// Identity of one expert of one layer, and the dense index that the expert cache's slot
// table (and a GPU kernel reading it) uses: index = layer * num_experts + expert.
//
// Thread safety: plain data.
#pragma once

#include <cstdint>
#include <tuple>

namespace moe::engine {

struct ExpertKey {
  int32_t layer = 0;
  int32_t expert = 0;

  friend bool operator==(ExpertKey a, ExpertKey b) {
    return a.layer == b.layer && a.expert == b.expert;
  }
  friend bool operator!=(ExpertKey a, ExpertKey b) { return !(a == b); }
  friend bool operator<(ExpertKey a, ExpertKey b) {
    return std::tie(a.layer, a.expert) < std::tie(b.layer, b.expert);
  }
};

// The shape of the expert grid: every layer has the same number of expert ids (dense
// layers of Qwen models simply never use theirs).
struct ExpertGrid {
  int32_t num_layers = 0;
  int32_t num_experts = 0;

  int64_t size() const { return int64_t{num_layers} * num_experts; }
  bool Contains(ExpertKey k) const {
    return k.layer >= 0 && k.layer < num_layers && k.expert >= 0 && k.expert < num_experts;
  }
  int64_t Index(ExpertKey k) const { return int64_t{k.layer} * num_experts + k.expert; }
  ExpertKey KeyOf(int64_t index) const {
    return {static_cast<int32_t>(index / num_experts), static_cast<int32_t>(index % num_experts)};
  }
};

}  // namespace moe::engine

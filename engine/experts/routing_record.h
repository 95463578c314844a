// The routing one forward step actually used: per MoE layer and token, the experts (and
// their weights) the layer combined. Backends fill it as they run; the scheduler and
// prefetcher read it (exact foresight for pre-gated / router models), and tests check
// it against the predictors.
//
// Layout: expert_ids / weights are [moe_layers.size()][num_tokens][top_k], tokens in the
// step's flattened batch order (sequence by sequence, chunk tokens in order), each
// token's k entries in descending weight (RouterSoftmaxTopK order).
//
// Thread safety: plain data; a backend rewrites it during Forward, so read it on the
// engine thread between steps.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace moe::engine {

struct RoutingRecord {
  int64_t num_tokens = 0;
  int top_k = 0;
  std::vector<int32_t> moe_layers;  // ascending model layer indices
  std::vector<int32_t> expert_ids;  // [moe_layers][num_tokens][top_k]
  std::vector<float> weights;       // same shape: the combine weights used

  int num_moe_layers() const { return static_cast<int>(moe_layers.size()); }
  // Index of model layer `layer` among moe_layers, -1 when it is dense.
  int MoeIndex(int layer) const {
    auto it = std::lower_bound(moe_layers.begin(), moe_layers.end(), layer);
    return it != moe_layers.end() && *it == layer ? static_cast<int>(it - moe_layers.begin())
                                                  : -1;
  }
  size_t Offset(int moe_index, int64_t token) const {
    return (static_cast<size_t>(moe_index) * num_tokens + token) * top_k;
  }
  // The k experts token `token` used in the `moe_index`-th MoE layer.
  absl::Span<const int32_t> Experts(int moe_index, int64_t token) const {
    return absl::Span<const int32_t>(expert_ids.data() + Offset(moe_index, token), top_k);
  }
  absl::Span<const float> Weights(int moe_index, int64_t token) const {
    return absl::Span<const float>(weights.data() + Offset(moe_index, token), top_k);
  }
  // The distinct experts of the `moe_index`-th MoE layer over all tokens, ascending.
  std::vector<int32_t> LayerUnion(int moe_index) const {
    std::vector<int32_t> u(expert_ids.begin() + Offset(moe_index, 0),
                           expert_ids.begin() + Offset(moe_index + 1, 0));
    std::sort(u.begin(), u.end());
    u.erase(std::unique(u.begin(), u.end()), u.end());
    return u;
  }
};

}  // namespace moe::engine

// The attention half of a decoder layer on the CPU: q/k/v projections (+ biases), the
// family's q/k norm and clip_qkv, RoPE, storing k/v into the paged cache, causal paged
// attention per sequence, and the output projection.
//
// Thread safety: called by the engine thread; parallel inside on ctx.pool.
#pragma once

#include <vector>

#include "engine/cpu/step_context.h"

namespace moe::engine::cpu {

class AttentionStep {
 public:
  AttentionStep(const ModelConfig& config, int kv_block_size);

  // h: [T, hidden] normalised input; out: [T, hidden]. Writes this step's k/v into `cache`.
  void Run(const StepContext& ctx, const LayerWeights& layer, const float* h,
           LayerKvCache* cache, float* out);

 private:
  const ModelConfig& config_;
  kernels::cpu::PagedKvShape kv_shape_;
  int rotary_dim_ = 0;
  std::vector<float> inv_freq_;
  float scale_ = 1.f;
  // Scratch, grown as needed.
  std::vector<float> q_, k_, v_, attn_;
};

}  // namespace moe::engine::cpu

// The weights of one decoder-only MoE model, described per layer as views into the
// memory-mapped checkpoint (never copies). Every supported family binds its Hugging Face
// tensor names into this one description (mixtral.cc, qwen2_moe.cc, qwen3_moe.cc,
// olmoe.cc); the backends run the forward pass from it.
//
// Thread safety: immutable after binding; valid while the Checkpoint it was bound from
// lives.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/loader/model_config.h"
#include "kernels/dtype.h"

namespace moe::engine {

// A row-major [rows, cols] float weight (or a vector: rows == 1) inside the checkpoint,
// possibly a slice of a larger tensor (one expert of a fused expert tensor).
struct WeightRef {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  std::string name;  // the checkpoint tensor it comes from (+ slice), for messages

  bool present() const { return data != nullptr; }
  int64_t numel() const { return rows * cols; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype); }
};

// gate/up: [intermediate, hidden]; down: [hidden, intermediate]. FFN(x) =
// down(silu(gate(x)) * up(x)).
struct FfnWeights {
  WeightRef gate;
  WeightRef up;
  WeightRef down;
  bool present() const { return gate.present(); }
};

struct LayerWeights {
  WeightRef input_norm;           // [hidden]
  WeightRef post_attention_norm;  // [hidden]

  WeightRef q_proj, k_proj, v_proj, o_proj;  // [q_size|kv_size|hidden, hidden|q_size]
  WeightRef q_bias, k_bias, v_bias, o_bias;  // absent unless the family has them
  // Absent, [head_dim] (QkNorm::kPerHead) or [q_size] / [kv_size] (kWholeProjection).
  WeightRef q_norm, k_norm;

  bool is_moe = false;
  // MoE layers.
  // [num_experts, hidden]: the layer's own gate. Absent in pre-gated checkpoints for every
  // MoE layer but the first, and in router checkpoints (engine/experts/FORMATS.md).
  WeightRef router;
  // Pre-gated checkpoints: [num_experts, hidden], applied to this layer's gate input, it
  // selects the experts of the next MoE layer. Present on every MoE layer but the last.
  WeightRef pregate;
  std::vector<FfnWeights> experts;   // num_experts entries
  FfnWeights shared_expert;          // Qwen2-MoE; absent otherwise
  WeightRef shared_expert_gate;      // [1, hidden]
  // Dense layers (!is_moe).
  FfnWeights dense_mlp;
};

// Where MoE layers get their routing (engine/experts/FORMATS.md): their own gates, the
// previous MoE layer's pre-gate (the first keeps its own gate), or a decoupled router
// over the token embeddings that gives every MoE layer's routing before the step.
enum class RoutingVariant { kStandard, kPregated, kRouter };

// The decoupled router: logits[M * E] = out_proj · silu(up_proj · RMSNorm(embedding; norm)),
// rows i*E .. i*E+E-1 routing the i-th MoE layer (ascending layer order).
struct DecoupledRouterWeights {
  WeightRef norm;      // [hidden]
  WeightRef up_proj;   // [router_hidden, hidden]
  WeightRef out_proj;  // [num_moe_layers * num_experts, router_hidden]
};

struct DecoderWeights {
  WeightRef embed_tokens;  // [vocab, hidden]
  WeightRef final_norm;    // [hidden]
  WeightRef lm_head;       // [vocab, hidden]; == embed_tokens when tied
  std::vector<LayerWeights> layers;

  // Family behaviour the forward pass needs beyond ModelConfig.
  bool router_renormalize = false;  // renormalise the top-k weights
  QkNorm qk_norm = QkNorm::kNone;
  std::optional<float> clip_qkv;    // clamp q, k, v after projection (and q/k norm)
  bool expert_layout_fused = false;  // informational: experts were sliced from fused tensors

  RoutingVariant routing = RoutingVariant::kStandard;
  DecoupledRouterWeights decoupled_router;  // kRouter only
};

}  // namespace moe::engine

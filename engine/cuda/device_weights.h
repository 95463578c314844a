// The model's weights on the GPU in the storage type T (bf16, fp16 or fp32), uploaded once
// from the bound DecoderWeights:
// q/k/v stacked into one [q + 2 kv, hidden] projection (biases likewise), each FFN's
// gate/up stacked into one [2 * inter, hidden] matrix.
//
// Thread safety: immutable after Upload; owns its device memory (freed on destruction).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/loader/model_config.h"
#include "engine/models/decoder_weights.h"
#include "kernels/cuda/experts.h"

namespace moe::engine::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

template <typename T>
struct DeviceFfn {
  const T* gate_up = nullptr;  // [2 * inter, hidden]
  const T* down = nullptr;     // [hidden, inter]
  int64_t inter = 0;
  bool present() const { return gate_up != nullptr; }
};

template <typename T>
struct DeviceLayer {
  const T* input_norm = nullptr;
  const T* post_norm = nullptr;
  const T* qkv = nullptr;       // [q + 2 kv, hidden]
  const T* qkv_bias = nullptr;  // [q + 2 kv] or null
  const T* o_proj = nullptr;    // [hidden, q]
  const T* o_bias = nullptr;
  const T* q_norm = nullptr;
  const T* k_norm = nullptr;
  bool is_moe = false;
  const T* router = nullptr;   // [experts, hidden]; null where the layer has no own gate
  const T* pregate = nullptr;  // pre-gated checkpoints: [experts, hidden] for the next MoE layer
  std::vector<kernels::cuda::ExpertWeights<T>> experts;
  int64_t expert_inter = 0;
  DeviceFfn<T> shared;
  const T* shared_gate = nullptr;  // [1, hidden]
  DeviceFfn<T> dense;
};

// The decoupled router of RoutingVariant::kRouter checkpoints (engine/experts/FORMATS.md):
// logits [M * E] = out · silu(up · RMSNorm(embedding; norm)). Absent (null) otherwise.
template <typename T>
struct DeviceRouter {
  const T* norm = nullptr;  // [hidden]
  const T* up = nullptr;    // [hidden_size R, hidden]
  const T* out = nullptr;   // [num_moe_layers * num_experts, R]
  int64_t hidden_size = 0;  // R
  bool present() const { return up != nullptr; }
};

// Writes `ref` converted to T into dst[0 .. ref.numel()) (a memcpy when the dtypes match).
void ConvertWeight(const WeightRef& ref, bf16* dst);
void ConvertWeight(const WeightRef& ref, f16* dst);
void ConvertWeight(const WeightRef& ref, float* dst);

// Explicitly instantiated for bf16, f16 and float.
template <typename T>
class DeviceWeights {
 public:
  DeviceWeights() = default;
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  // Converts and uploads every tensor; fails naming the tensor on an allocation error.
  // With upload_experts false the routed experts stay on the host (expert offload): their
  // ExpertWeights are null and expert_inter is still set.
  absl::Status Upload(const DecoderWeights& w, const ModelConfig& config, bool upload_experts = true);

  const T* embed = nullptr;
  const T* final_norm = nullptr;
  const T* lm_head = nullptr;
  std::vector<DeviceLayer<T>> layers;
  DeviceRouter<T> router;  // decoupled-router checkpoints only
  size_t bytes = 0;

 private:
  // Uploads the row-wise concatenation of `parts` (all with the same cols).
  absl::Status Put(std::vector<const WeightRef*> parts, const T** out);
  std::vector<void*> allocations_;
};

}  // namespace moe::engine::cuda

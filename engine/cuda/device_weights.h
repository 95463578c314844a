// The model's weights on the GPU, bf16, uploaded once from the bound DecoderWeights:
// q/k/v stacked into one [q + 2 kv, hidden] projection (biases likewise), each FFN's
// gate/up stacked into one [2 * inter, hidden] matrix.
//
// Thread safety: immutable after Upload; owns its device memory (freed on destruction).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/loader/model_config.h"
#include "engine/models/decoder_weights.h"
#include "kernels/cuda/experts.h"

namespace moe::engine::cuda {

using bf16 = __nv_bfloat16;

struct DeviceFfn {
  const bf16* gate_up = nullptr;  // [2 * inter, hidden]
  const bf16* down = nullptr;     // [hidden, inter]
  int64_t inter = 0;
  bool present() const { return gate_up != nullptr; }
};

struct DeviceLayer {
  const bf16* input_norm = nullptr;
  const bf16* post_norm = nullptr;
  const bf16* qkv = nullptr;       // [q + 2 kv, hidden]
  const bf16* qkv_bias = nullptr;  // [q + 2 kv] or null
  const bf16* o_proj = nullptr;    // [hidden, q]
  const bf16* o_bias = nullptr;
  const bf16* q_norm = nullptr;
  const bf16* k_norm = nullptr;
  bool is_moe = false;
  const bf16* router = nullptr;  // [experts, hidden]
  std::vector<kernels::cuda::ExpertWeightsBf16> experts;
  int64_t expert_inter = 0;
  DeviceFfn shared;
  const bf16* shared_gate = nullptr;  // [1, hidden]
  DeviceFfn dense;
};

class DeviceWeights {
 public:
  DeviceWeights() = default;
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  // Converts and uploads every tensor; fails naming the tensor on an allocation error.
  absl::Status Upload(const DecoderWeights& w, const ModelConfig& config);

  const bf16* embed = nullptr;
  const bf16* final_norm = nullptr;
  const bf16* lm_head = nullptr;
  std::vector<DeviceLayer> layers;
  size_t bytes = 0;

 private:
  // Uploads the row-wise concatenation of `parts` (all with the same cols).
  absl::Status Put(std::vector<const WeightRef*> parts, const bf16** out);
  std::vector<void*> allocations_;
};

}  // namespace moe::engine::cuda

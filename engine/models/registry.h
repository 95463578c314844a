// Maps each supported Architecture to the binder that describes its checkpoint's tensors
// as DecoderWeights. One binder per family, one file each (mixtral.cc, qwen2_moe.cc,
// qwen3_moe.cc, olmoe.cc).
//
// Thread safety: stateless; callable from any thread.
#pragma once

#include "absl/status/statusor.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/decoder_weights.h"

namespace moe::engine {

using WeightBinder = absl::StatusOr<DecoderWeights> (*)(const Checkpoint&, const ModelConfig&);

// The per-family binders. Each fetches every tensor with the exact shape the config
// implies; a missing or wrong-shaped tensor fails naming it (and its file).
absl::StatusOr<DecoderWeights> BindMixtral(const Checkpoint& ckpt, const ModelConfig& config);
absl::StatusOr<DecoderWeights> BindQwen2Moe(const Checkpoint& ckpt, const ModelConfig& config);
absl::StatusOr<DecoderWeights> BindQwen3Moe(const Checkpoint& ckpt, const ModelConfig& config);
absl::StatusOr<DecoderWeights> BindOlmoe(const Checkpoint& ckpt, const ModelConfig& config);

// The binder of `arch` (never null for a valid Architecture).
WeightBinder FindWeightBinder(Architecture arch);

// Binds `ckpt` with the binder of config.arch.
absl::StatusOr<DecoderWeights> BindDecoderWeights(const Checkpoint& ckpt, const ModelConfig& config);

}  // namespace moe::engine

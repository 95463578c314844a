// The CUDA backend: runs every supported MoE family on one GPU. Weights are converted to
// bf16 and uploaded once at creation (q/k/v fused into one projection, each expert's
// gate/up fused); the paged KV cache is bf16 on the device; activations are fp32 with
// bf16 GEMM operands (fp32 accumulation). One CUDA stream; logits come back as fp32.
// Numerically it follows the CPU backend up to bf16 rounding of weights and GEMM inputs
// (top-5 logprobs within ~2e-2 of transformers' fp32).
//
// Thread safety: as ModelRunner: one thread drives Forward at a time.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"

namespace moe::engine {

// Binds `checkpoint`'s tensors for config.arch (failing on a missing or wrong-shaped
// tensor, naming it), uploads them to GPU 0 and allocates the KV cache:
// options.num_kv_blocks blocks, or as many bf16 blocks as fit in options.kv_cache_bytes
// when that is 0. Fails with a clear message when no GPU is usable or memory runs out.
// `checkpoint` need not outlive the runner (weights are copied to the device).
absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              const ModelConfig& config,
                                                              const RunnerOptions& options);

}  // namespace moe::engine

// The CUDA backend: runs every supported MoE family on one GPU. Weights are converted to
// the storage dtype (bf16, fp16 or fp32; default: the checkpoint's own) and uploaded once
// at creation (q/k/v fused into one projection, each expert's gate/up fused); the paged KV
// cache and every GEMM input are in that dtype; the residual stream, q, attention softmax,
// router logits/softmax and the logits are fp32, accumulation always fp32. One CUDA
// stream; logits come back as fp32.
// Numerically: fp32 follows the CPU backend (and transformers' fp32) to ~1e-5 in top-5
// logprobs; bf16 storage rounds weights, KV and GEMM inputs to 8 bits of mantissa, which
// on the tiny high-variance test models moves logprobs by ~1e-2 (median) and up to ~0.6
// (tools/gpu/rounding_probe reproduces this on the CPU; see tools/gpu/NOTES.md).
//
// Steps of <= 64 tokens run the experts through the small-batch kernels
// (kernels/cuda/small_batch_experts.h: no host sync per MoE layer; env
// MOE_CUDA_SMALL_BATCH_EXPERTS=0 turns them off), and pure-decode steps replay a CUDA graph
// per (tokens, logit rows, decode splits), captured on the second sight of that shape
// (env MOE_CUDA_GRAPHS=0 turns graphs off).
//
// Thread safety: as ModelRunner: one thread drives Forward at a time.
#pragma once

#include <memory>
#include <string_view>

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
// The storage dtype is taken from the environment variable MOE_CUDA_DTYPE (auto | bf16 |
// fp16 | fp32) when set, else kAuto.
absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              const ModelConfig& config,
                                                              const RunnerOptions& options);

// Storage dtype of weights, KV cache and GEMM inputs on the GPU. kAuto: the checkpoint's
// dtype (fp32 checkpoints run in fp32, fp16 in fp16, everything else in bf16).
enum class CudaDType { kAuto, kBF16, kF16, kF32 };
// "auto", "bf16"/"bfloat16", "fp16"/"float16"/"half", "fp32"/"float32"/"float".
absl::StatusOr<CudaDType> ParseCudaDType(std::string_view s);
const char* CudaDTypeName(CudaDType d);

absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCudaRunner(const Checkpoint& checkpoint,
                                                              const ModelConfig& config,
                                                              const RunnerOptions& options,
                                                              CudaDType dtype);

}  // namespace moe::engine

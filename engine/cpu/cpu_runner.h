// The CPU reference backend: runs every supported MoE family in fp32 on weights read
// straight from the memory-mapped checkpoint (F32/F16/BF16, converted inside the kernels),
// multithreaded over all cores, with an fp32 paged KV cache it owns. It follows Hugging
// Face transformers' fp32 math, so its logprobs match transformers to ~1e-4.
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
// tensor, naming it) and allocates the KV cache: options.num_kv_blocks blocks, or as
// many as fit in options.kv_cache_bytes when that is 0. `checkpoint` must outlive the
// runner.
absl::StatusOr<std::unique_ptr<ModelRunner>> CreateCpuRunner(const Checkpoint& checkpoint,
                                                             const ModelConfig& config,
                                                             const RunnerOptions& options);

}  // namespace moe::engine

// The device side of the expert cache, as the prefetcher sees it: copies of expert weights
// from the host offload pool into GPU cache slots, and the ordering between those copies
// and the compute work that reads the slots. The CUDA backend implements it with copy
// streams and one fill event plus one last-reader event per slot; tests use a fake whose
// copies complete when the test says so (engine/experts/fake_copy_engine.h).
//
// Ordering contract (what makes "an expert evicted while a copy into its slot is in flight
// is never read" and "a copy never overwrites data a queued kernel has yet to read" hold):
//   - IssueFill(slot) starts only after all compute work recorded by RecordReader(slot)
//     before the call has finished;
//   - compute work enqueued after ComputeWaitFill(slot) starts only after the last fill of
//     `slot` issued before the call has completed;
//   - FillDone(slot) is true once the last fill of `slot` has completed (non-blocking).
//
// Thread safety: not thread safe; driven by the engine thread only.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/experts/expert_key.h"

namespace moe::engine {

class CopyEngine {
 public:
  virtual ~CopyEngine() = default;
  // Enqueues the copy of `key`'s weights into `slot`. `demand`: a layer about to run needs
  // it (the engine may give demand copies priority over prefetches).
  virtual absl::Status IssueFill(int32_t slot, ExpertKey key, bool demand) = 0;
  virtual bool FillDone(int32_t slot) = 0;
  virtual absl::Status ComputeWaitFill(int32_t slot) = 0;
  virtual absl::Status RecordReader(int32_t slot) = 0;
};

}  // namespace moe::engine

// Expert offload for the CUDA backend: every routed expert's weights in pinned host memory
// (the offload pool), N GPU expert slots, two copy streams (demand copies at high priority,
// prefetches at low) with one fill event and one last-reader event per slot, driven by the
// backend-independent ExpertPrefetcher (engine/experts/). The runner asks for a layer's
// experts (Acquire), gets device pointers to their slots, enqueues its expert kernels on
// the compute stream, then Release()s; predictions go in through Predict.
//
// Layout: an expert is [gate (I x H); up (I x H); down (H x I)] in the storage type, in the
// pool and in a slot alike, so a slot's first 2*I*H elements are the runner's stacked
// gate_up matrix and the rest its down matrix; one cudaMemcpyAsync per fill.
//
// Stall time: an event recorded on the compute stream before the copy waits and one after
// them bracket exactly the time the compute stream waits for copies, whether or not the
// host synchronised before Acquire (it does per layer for own gates and pre-gates; a
// decoupled router's routing reaches the host once per step); EndStep (after the step's
// final synchronisation) sums them into the stall histogram.
//
// Thread safety: the engine thread drives everything except Stats(), which any thread may
// call (it returns the snapshot taken at the end of the last step, under mu_).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/experts/copy_engine.h"
#include "engine/experts/eviction_policy.h"
#include "engine/experts/expert_prefetcher.h"
#include "engine/model_runner.h"
#include "engine/models/decoder_weights.h"

namespace moe::engine::cuda {

struct ExpertOffloadConfig {
  ExpertGrid grid;                  // num_layers x num_experts
  std::vector<int32_t> moe_layers;  // ascending
  int64_t hidden = 0;
  int64_t inter = 0;                // every routed expert's intermediate size
  size_t elem_size = 2;             // storage type size
  int32_t num_slots = 0;            // >= 1
  EvictionPolicyKind policy = EvictionPolicyKind::kLru;
  // For the stats' label; "router" (whole-step exact foresight) also turns on the
  // prefetcher's step_foresight: the policy ranks only experts with no known use ahead.
  std::string prefetch = "off";
};

// Writes `ref` converted to the storage type into `dst` (ref.numel() elements).
using ConvertToStorage = std::function<void(const WeightRef& ref, void* dst)>;

// Bytes of one expert in the storage type.
inline uint64_t ExpertBytes(int64_t hidden, int64_t inter, size_t elem_size) {
  return 3ull * static_cast<uint64_t>(hidden) * static_cast<uint64_t>(inter) * elem_size;
}

class ExpertOffload {
 public:
  // Fills the pinned pool from `w` (converting with `convert`, in parallel), allocates the
  // slots on the current device and the copy streams. Fails with the sizes when pinned host
  // memory or device memory runs out.
  static absl::StatusOr<std::unique_ptr<ExpertOffload>> Create(const ExpertOffloadConfig& config,
                                                               const DecoderWeights& w,
                                                               const ConvertToStorage& convert,
                                                               cudaStream_t compute);
  ~ExpertOffload();
  ExpertOffload(const ExpertOffload&) = delete;
  ExpertOffload& operator=(const ExpertOffload&) = delete;

  void BeginStep();
  // Acquires `experts` (distinct, at most num_slots) of `layer`: `gate_up` / `down` get
  // num_experts device pointers (null for the experts not acquired). The compute stream
  // is ordered after their copies. Retries once after draining the copy streams when
  // in-flight prefetches hold the slots it needs.
  absl::Status Acquire(int32_t layer, absl::Span<const int32_t> experts,
                       std::vector<const void*>* gate_up, std::vector<const void*>* down);
  // The acquired experts' kernels are enqueued on the compute stream.
  absl::Status Release();
  // Predicted experts of a later layer (or of the next step's `layer` when it is not
  // after the current one): prefetched as slots allow.
  absl::Status Predict(int32_t layer, absl::Span<const int32_t> experts, bool exact);
  // Exact uses known ahead (a decoupled router's whole step) for the Belady oracle only:
  // see ExpertPrefetcher::AddKnownUses.
  absl::Status AddKnownUses(int32_t layer, absl::Span<const int32_t> experts);
  // Whole-step exact foresight (prefetch "router"): see ExpertPrefetcher::SetStepRouting
  // and PrefetchStepAhead. per_moe_layer follows moe_layers.
  absl::Status SetStepRouting(const std::vector<std::vector<int32_t>>& per_moe_layer);
  absl::Status PrefetchStepAhead(int moe_index);
  EvictionPolicyKind policy() const { return config_.policy; }
  // After the compute stream has been synchronised at the end of a step.
  absl::Status EndStep();

  int32_t num_slots() const { return config_.num_slots; }
  // Expert-aware batching: sets bit (moe_index * num_experts + expert) of `bits` (sized by
  // the caller to cover moe_layers x num_experts keys) for every expert that holds a slot
  // now, ready or still filling. Host bookkeeping only (the slot table); engine thread.
  void ResidentKeys(std::vector<uint64_t>* bits) const;
  // Seconds the compute stream waited for copies in the last completed step.
  double last_step_stall_s() const { return last_step_stall_s_; }
  uint64_t bytes_per_expert() const { return bytes_per_expert_; }
  uint64_t pool_bytes() const { return pool_bytes_; }
  std::optional<OffloadStats> Stats() const;

 private:
  class CudaCopyEngine;
  ExpertOffload(const ExpertOffloadConfig& config, cudaStream_t compute);

  ExpertOffloadConfig config_;
  cudaStream_t compute_;
  uint64_t bytes_per_expert_ = 0;
  uint64_t pool_bytes_ = 0;
  std::vector<void*> host_layers_;  // pinned, per grid layer (null for dense layers)
  void* slots_ = nullptr;           // num_slots * bytes_per_expert on the device
  std::unique_ptr<CudaCopyEngine> copies_;
  std::unique_ptr<ExpertPrefetcher> prefetcher_;
  // Stall brackets of the current step: pairs of events on the compute stream.
  std::vector<cudaEvent_t> stall_events_;
  size_t stall_used_ = 0;
  int64_t step_counter_ = 0;
  double last_step_stall_s_ = 0;

  mutable std::mutex mu_;
  OffloadStats snapshot_ ABSL_GUARDED_BY(mu_);
  std::vector<double> stall_bounds_;
  std::vector<int64_t> stall_counts_;  // per bound, non-cumulative; engine thread
  double stall_sum_ = 0;
  int64_t stall_n_ = 0;
};

}  // namespace moe::engine::cuda

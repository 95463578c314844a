// Iteration-level continuous batching over one ModelRunner.
//
// Threading contract:
//   - One engine thread (started by Start()) owns the running set, the KV block manager,
//     every Sequence and the runner. Each iteration it: ends cancelled / expired
//     requests (freeing their blocks), composes a batch (policies.h), runs
//     ModelRunner::Forward, samples, checks stop rules and pushes events to handles.
//     Sampling, detokenizing, stop checks and event pushes of the step's sequences run
//     on a small pool of helper threads (num_sampling_threads), each sequence on one
//     thread at a time and only while the engine thread waits for them; the results do
//     not depend on the number of threads.
//   - Frontends call Submit / Abort / GetStats / StopAccepting / WaitUntilIdle from any
//     thread. They only take `mu_` (which guards the waiting queue, the request-id map
//     and the stats snapshot) for short, non-blocking sections; the engine thread takes
//     it to admit requests and publish stats, never while running the model.
//   - The engine thread never blocks on a frontend: it pushes events into each
//     RequestHandle's own queue (request_handle.h).
//   - Shutdown() (also run by the destructor) ends every request still in flight with
//     finish_reason abort and joins the engine thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/model_runner.h"
#include "kernels/cpu/thread_pool.h"
#include "scheduler/event_delivery.h"
#include "scheduler/kv_block_manager.h"
#include "scheduler/policies.h"
#include "scheduler/request.h"
#include "scheduler/request_handle.h"
#include "scheduler/sequence.h"
#include "scheduler/text_decoder.h"

namespace moe::scheduler {

// What the scheduler reports when a request ends (for metrics): one call per request,
// whatever its end (finished, aborted, expired, failed).
struct RequestFinishedInfo {
  std::string request_id;
  // "stop" | "length" | "abort" (FinishReasonName), or "error" when it ended with an
  // error event (deadline, forward failure).
  std::string finished_reason;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  double time_to_first_token_s = 0;  // 0: no token was produced
  double e2e_latency_s = 0;          // Submit → final event
  bool was_scheduled = false;        // queue_time_s is meaningful
  double queue_time_s = 0;           // Submit → first step that included it
  int num_preemptions = 0;
};
// Called on the thread that ends the request (the engine thread, or Shutdown's caller):
// must be thread-safe and must not block.
using RequestFinishedCallback = std::function<void(const RequestFinishedInfo&)>;

struct SchedulerOptions {
  // fcfs: arrival order, GenerateRequest::priority must be 0. priority: lower priority
  // values are admitted first, preempted last, and may preempt running sequences of
  // worse priority to be admitted (policies.h; no aging, as in vLLM).
  SchedulingPolicy scheduling_policy = SchedulingPolicy::kFcfs;
  int max_num_seqs = 64;
  int max_num_batched_tokens = 512;
  // Waiting requests beyond which Submit fails with RESOURCE_EXHAUSTED.
  int max_queue = 256;
  // Blocks of the paged KV cache to manage; 0 = the runner's num_kv_blocks().
  int num_kv_blocks = 0;
  // Model context; 0 = the runner's config().max_position_embeddings.
  int max_model_len = 0;
  // End-of-sequence ids (stop unless ignore_eos); empty = the runner's config's.
  std::vector<int32_t> eos_token_ids;
  // Makes each request's text decoder; empty = no text in events.
  TextDecoderFactory make_text_decoder;
  // Optional observer of finished requests (metrics).
  RequestFinishedCallback on_request_finished;
  // Threads (the engine thread included) that sample and detokenize a step's sequences
  // in parallel; 0 = min(8, hardware threads). Outputs do not depend on it.
  int num_sampling_threads = 0;
  // Expert-aware batching (expert_aware_composer.h): where the runner reports expert
  // footprints (expert_footprint_keys() > 0) and its expert cache is bounded, decodes
  // whose experts would overflow the cache together wait a step, at most
  // expert_aware_max_skips consecutive steps. Outputs are unchanged (greedy and seeded
  // sampling give the same tokens); only the step each token is computed in changes.
  bool expert_aware_batching = false;
  int expert_aware_max_skips = 4;
  // What one expert-cache miss costs, in decode steps (t_miss / t_step: the host->GPU copy
  // of one expert over the time of a step that misses nothing). Expert-aware batching
  // defers decodes only when the misses it expects to save outweigh the extra step at this
  // price; 0 never defers (except to keep the cache's own experts). >= 0.
  double expert_aware_miss_cost_steps = 0.2;
  // > 0: the expert cache capacity in (MoE layer, expert) keys, replacing the runner's
  // expert_cache_slots() (tests, experiments).
  int expert_cache_slots_override = 0;
  // Automatic prefix caching (kv_block_manager.h, prefix_cache.h): computed full KV
  // blocks are kept, content-addressed, after their request ends, and a request whose
  // tokens start with them attaches them instead of prefilling those positions. Outputs
  // are unchanged; only prefill work (and time to first token) shrinks. On by default,
  // as in vLLM V1.
  bool enable_prefix_caching = true;
};

// Upper bounds (seconds, ascending; +Inf implicit) of SchedulerStats'
// step_host_seconds_buckets.
const std::vector<double>& StepHostSecondsBounds();

// Where the host time of the steps goes, in seconds summed over the steps (the engine
// thread's clock). Their sum is at most SchedulerStats::host_seconds_total; the rest is
// the loop's own bookkeeping (locking, stats publication).
struct SchedulerHostPhases {
  double reap_s = 0;     // ending cancelled / expired requests
  double compose_s = 0;  // BatchComposer::Compose (admission, preemption, KV reservation)
  double prepare_s = 0;  // building the ForwardBatch
  double sample_s = 0;   // Sampler::Sample over the step's logits rows
  double emit_s = 0;     // detokenizing, stop rules, pushing events to the handles
  double finish_s = 0;   // ending finished requests, removing them from the running set
};

struct SchedulerStats {
  int num_waiting = 0;
  int num_running = 0;
  int num_kv_blocks = 0;
  int num_free_kv_blocks = 0;  // free + evictable (cached prefix) blocks
  // Prefix caching: whether it is on; free blocks that still hold a matchable prefix;
  // tokens looked up and tokens found cached at first admission (vLLM's
  // prefix_cache_queries / prefix_cache_hits); cached tokens reused by re-admissions
  // after preemption (not in the two before).
  bool prefix_caching = false;
  int num_cached_kv_blocks = 0;
  int64_t prefix_cache_queries_total = 0;
  int64_t prefix_cache_hits_total = 0;
  int64_t prefix_cache_preempted_hits_total = 0;
  int64_t num_steps = 0;  // ModelRunner::Forward calls (failed steps included)
  int64_t num_preemptions = 0;
  int64_t num_finished = 0;
  int64_t num_aborted = 0;  // finished with FinishReason::kAbort
  int64_t num_batched_tokens = 0;  // summed over steps

  // Step timing on the engine thread's clock, summed over the num_steps steps.
  // forward: inside ModelRunner::Forward. host: the rest of each engine iteration that
  // ran a step (reaping, batch building, sampling, detokenizing, stream pushes, stats),
  // i.e. the host time between consecutive Forward calls while there is work; waits for
  // work while nothing runs are not counted. Overhead ratio = host / forward.
  double forward_seconds_total = 0;
  double host_seconds_total = 0;
  int last_step_num_seqs = 0;  // sequences in the last step's batch
  SchedulerHostPhases host_phases;  // breakdown of host_seconds_total
  // Host time per step: cumulative counts per StepHostSecondsBounds() entry (the
  // +Inf bucket is num_steps).
  std::vector<int64_t> step_host_seconds_buckets =
      std::vector<int64_t>(StepHostSecondsBounds().size(), 0);

  // Expert-aware batching: whether it is in effect (options, runner footprints and a
  // bounded cache), decodes it deferred (summed over steps), and the most consecutive
  // steps any sequence's decode was deferred (at most expert_aware_max_skips when
  // max_num_seqs and max_num_batched_tokens cover the running decodes).
  bool expert_aware_active = false;
  int64_t expert_aware_deferred_total = 0;
  int expert_aware_max_consecutive_skips = 0;

  // The runner's expert-offload counters (ModelRunner::offload_stats(), read by
  // GetStats); nullopt when the runner does not offload.
  std::optional<engine::OffloadStats> offload;
};

class Scheduler {
 public:
  // `runner` must outlive the scheduler.
  Scheduler(engine::ModelRunner* runner, SchedulerOptions options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts the engine thread. FAILED_PRECONDITION if already started or the options are
  // unusable (the message names the option).
  absl::Status Start();

  // Queues a request. Errors: INVALID_ARGUMENT naming the field (empty prompt,
  // max_tokens <= 0, prompt + max_tokens above the context or the KV cache, duplicate
  // request_id, a non-zero priority under the fcfs policy); RESOURCE_EXHAUSTED when the waiting queue is full; UNAVAILABLE after
  // StopAccepting()/Shutdown().
  absl::StatusOr<std::shared_ptr<RequestHandle>> Submit(GenerateRequest request);

  // Cancels the in-flight request with this id (ends with finish_reason abort).
  // NOT_FOUND if there is none.
  absl::Status Abort(const std::string& request_id);

  // New Submits fail with UNAVAILABLE; in-flight requests continue.
  void StopAccepting();
  // Waits until no request is waiting or running; false on timeout.
  bool WaitUntilIdle(absl::Duration timeout);
  // Aborts everything in flight and stops the engine thread. Idempotent.
  void Shutdown();

  // A snapshot of the counters above, with the runner's offload stats.
  SchedulerStats GetStats() const;
  int kv_block_size() const { return block_size_; }
  int max_model_len() const { return max_model_len_; }
  int max_num_seqs() const { return options_.max_num_seqs; }
  SchedulingPolicy scheduling_policy() const { return options_.scheduling_policy; }
  // Requests that may wait at once; a submission beyond it is ResourceExhausted.
  int max_queue() const { return options_.max_queue; }

 private:
  void EngineLoop();
  // Ends cancelled and expired requests (running and waiting).
  void ReapCancelled();
  // What one iteration's step did, for the timing stats.
  struct StepTiming {
    bool ran = false;  // Forward was called
    double forward_s = 0;
    int num_seqs = 0;
    int num_tokens = 0;
    SchedulerHostPhases phases;
  };
  void RunStep(StepTiming* timing);
  // One sequence's share of a step's output. Sample() and Emit() touch only that
  // sequence (and its thread-safe handle), so the step runs them for all its sequences
  // in parallel; Finish runs afterwards on the engine thread.
  struct RowWork {
    Sequence* seq = nullptr;
    size_t chunk = 0;               // index in the step's batch
    const float* logits = nullptr;  // null when the device sampled the row
    int32_t device_token = -1;      // the token sampled on the device, or -1
    bool drew = false;              // the generator already drew for this token (`draw`)
    std::optional<double> draw;
    // What EmitRow computed for the handle; the engine thread posts it (in row order).
    std::string text;
    std::vector<engine::SampledToken> logprobs;
    engine::SampledToken sampled;
    bool done = false;
    FinishReason reason = FinishReason::kStop;
    std::string stop_reason;
  };
  static void SampleRow(RowWork* w, int vocab_size);
  // Expert-aware batching: the footprint of `seq`'s next decode, from the runner's
  // TokenFootprint of the token just sampled, else the step's footprints[chunk].
  void UpdateFootprint(Sequence* seq, int32_t token, const engine::ForwardResult& out,
                       size_t chunk);
  void EmitRow(RowWork* w) const;
  void Finish(Sequence* seq, FinishReason reason, std::string stop_reason);
  void Fail(Sequence* seq, absl::Status status);
  void ReportFinished(const Sequence& seq, const std::string& reason);
  void RemoveFinished(const std::vector<Sequence*>& finished);
  // `timing`: the iteration's step (null: none ran); `iteration_s`: the iteration's
  // wall time, idle wait excluded.
  void PublishStats(const StepTiming* timing, double iteration_s);
  void Wake();

  engine::ModelRunner* const runner_;
  const SchedulerOptions options_;
  // Samples and emits a step's sequences in parallel; null: serially.
  std::unique_ptr<kernels::cpu::ThreadPool> pool_;
  const int block_size_;
  const int max_model_len_;
  // Expert-aware batching in effect: ask for footprints and keep each sequence's.
  const bool expert_aware_;
  std::vector<int32_t> eos_ids_;
  BatchComposer composer_;

  // Engine thread only.
  KvBlockManager kv_;
  std::vector<std::unique_ptr<Sequence>> running_;
  int64_t next_admit_order_ = 0;
  // Reused every step, so the runner's logits buffer is not reallocated (and faulted in)
  // each time.
  engine::ForwardResult out_;
  std::vector<RowWork> rows_;
  // Per chunk of the step being run: whether it was sent for device sampling, and the
  // request generator's draw for it (nullopt: greedy). Engine thread only.
  struct ChunkDraw {
    bool device = false;
    std::optional<double> u;
  };
  std::vector<ChunkDraw> draws_;
  // Pushes to request handles gathered during an iteration, posted to `delivery_` at its
  // end (FlushOutbox), in order. Engine thread only.
  std::vector<std::function<void()>> outbox_;
  void FlushOutbox();
  std::thread engine_thread_;
  // Runs the handle pushes off the engine thread (event_delivery.h). ~Scheduler's
  // Shutdown() joins the engine thread (which flushes it) before members are destroyed.
  EventDelivery delivery_;

  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Sequence>> waiting_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::weak_ptr<RequestHandle>> by_id_ ABSL_GUARDED_BY(mu_);
  SchedulerStats stats_ ABSL_GUARDED_BY(mu_);
  int64_t next_seq_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool idle_ ABSL_GUARDED_BY(mu_) = true;  // nothing waiting or running
};

}  // namespace moe::scheduler

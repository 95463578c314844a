// The serving metrics scraped at GET /metrics, under the names vLLM users already
// dashboard (vllm:*), every sample labelled model_name, plus this server's own moe_*.
//
// Frontends (HTTP gateway, gRPC service) call OnRequestFinished once per finished
// scheduler request; gauges and the preemption counter are read from the scheduler's
// stats snapshot when rendering.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <optional>
#include <string>

#include "scheduler/scheduler.h"
#include "server/metrics/prometheus.h"

namespace moe::server {

struct FinishedRequestStats {
  // "stop" | "length" | "abort" (scheduler::FinishReasonName), or "error" for requests
  // that ended with an error event.
  std::string finished_reason;
  int prompt_tokens = 0;
  int generation_tokens = 0;
  // Arrival → first token, as the scheduler measured it; not observed when <= 0.
  double time_to_first_token_s = 0;
  // Submit → final event.
  double e2e_latency_s = 0;
  // Arrival → first scheduled; observed only when known.
  std::optional<double> queue_time_s;
};

class Metrics {
 public:
  explicit Metrics(std::string model_name);

  void OnRequestFinished(const FinishedRequestStats& r);
  // The scheduler's finished-request observer feeding OnRequestFinished: every request,
  // whichever frontend sent it, is counted once. The Metrics must outlive the scheduler.
  scheduler::RequestFinishedCallback SchedulerHook();

  // Prometheus text. `stats` gives the gauges (running / waiting requests, KV cache usage),
  // vllm:num_preemptions_total and the moe_scheduler_* step timing; null (model still
  // loading) renders them as 0. Prefix caching (from `stats` too):
  //   vllm:prefix_cache_queries_total  counter, tokens looked up in the prefix cache when
  //                                    a request is first admitted (its prompt length)
  //   vllm:prefix_cache_hits_total     counter, of those, tokens found cached (not
  //                                    prefilled); hit rate = rate(hits) / rate(queries)
  //   moe_prefix_cache_hit_rate        gauge, hits / queries since start (0 before any)
  //   moe_prefix_cache_preempted_hits_total  counter, cached tokens reused by requests
  //                                    re-admitted after preemption (not in the above)
  //   moe_kv_blocks_cached             gauge, free KV blocks still holding a reusable
  //                                    prefix (counted free in vllm:kv_cache_usage_perc)
  // All are 0 with prefix caching off. When stats->offload is set (a runner that offloads
  // experts), the moe_expert_* / moe_prefetch_* / moe_predictor_* families follow
  // (offload_metrics.h); otherwise they are absent.
  std::string Render(const scheduler::SchedulerStats* stats) const;

  const std::string& model_name() const { return model_name_; }

 private:
  metrics::Labels Base() const { return {{"model_name", model_name_}}; }
  // moe_scheduler_* (steps, forward / host seconds, last step's sequences, host time
  // per step histogram); zeros when `stats` is null.
  void AppendSchedulerTiming(const scheduler::SchedulerStats* stats, std::string* out) const;
  // The prefix-cache families above; zeros when `stats` is null.
  void AppendPrefixCache(const scheduler::SchedulerStats* stats, std::string* out) const;

  const std::string model_name_;
  metrics::CounterFamily prompt_tokens_;
  metrics::CounterFamily generation_tokens_;
  metrics::CounterFamily request_success_;
  metrics::CounterFamily request_errors_;
  metrics::HistogramFamily ttft_;
  metrics::HistogramFamily tpot_;
  metrics::HistogramFamily e2e_;
  metrics::HistogramFamily queue_time_;
};

}  // namespace moe::server

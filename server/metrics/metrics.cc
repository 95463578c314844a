#include "server/metrics/metrics.h"

#include <algorithm>

#include "server/metrics/offload_metrics.h"

namespace moe::server {
namespace {

std::vector<double> LatencyBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,  0.75,
          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0};
}

std::vector<double> TpotBuckets() {
  return {0.001, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
          0.1,   0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1.0,  2.5,  5.0};
}

}  // namespace

Metrics::Metrics(std::string model_name)
    : model_name_(std::move(model_name)),
      prompt_tokens_("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
      generation_tokens_("vllm:generation_tokens_total", "Number of generation tokens processed."),
      request_success_("vllm:request_success_total",
                       "Count of finished requests, by finish reason."),
      request_errors_("moe_request_errors_total",
                      "Requests that ended with an error instead of a finish reason."),
      ttft_("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
            LatencyBuckets()),
      tpot_("vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.", TpotBuckets()),
      e2e_("vllm:e2e_request_latency_seconds",
           "Histogram of end to end request latency in seconds.", LatencyBuckets()),
      queue_time_("vllm:request_queue_time_seconds",
                  "Histogram of time spent waiting in the queue in seconds.", LatencyBuckets()) {}

scheduler::RequestFinishedCallback Metrics::SchedulerHook() {
  return [this](const scheduler::RequestFinishedInfo& info) {
    FinishedRequestStats s;
    s.finished_reason = info.finished_reason;
    s.prompt_tokens = info.prompt_tokens;
    s.generation_tokens = info.completion_tokens;
    s.time_to_first_token_s = info.time_to_first_token_s;
    s.e2e_latency_s = info.e2e_latency_s;
    if (info.was_scheduled) s.queue_time_s = info.queue_time_s;
    OnRequestFinished(s);
  };
}

void Metrics::OnRequestFinished(const FinishedRequestStats& r) {
  const metrics::Labels base = Base();
  prompt_tokens_.Add(base, std::max(0, r.prompt_tokens));
  generation_tokens_.Add(base, std::max(0, r.generation_tokens));
  if (r.finished_reason == "error") {
    request_errors_.Add(base, 1);
  } else {
    metrics::Labels l = base;
    l.emplace_back("finished_reason", r.finished_reason);
    request_success_.Add(l, 1);
  }
  if (r.time_to_first_token_s > 0) ttft_.Observe(base, r.time_to_first_token_s);
  if (r.e2e_latency_s > 0) e2e_.Observe(base, r.e2e_latency_s);
  if (r.generation_tokens > 1 && r.time_to_first_token_s > 0 &&
      r.e2e_latency_s >= r.time_to_first_token_s) {
    tpot_.Observe(base, (r.e2e_latency_s - r.time_to_first_token_s) / (r.generation_tokens - 1));
  }
  if (r.queue_time_s.has_value()) queue_time_.Observe(base, *r.queue_time_s);
}

std::string Metrics::Render(const scheduler::SchedulerStats* stats) const {
  const metrics::Labels base = Base();
  std::string out;
  auto gauge = [&](const char* name, const char* help, double v) {
    metrics::AppendHeader(&out, name, help, "gauge");
    metrics::AppendSample(&out, name, base, v);
  };
  gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
        stats ? stats->num_running : 0);
  gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
        stats ? stats->num_waiting : 0);
  double usage = 0;
  if (stats != nullptr && stats->num_kv_blocks > 0) {
    usage = 1.0 - static_cast<double>(stats->num_free_kv_blocks) / stats->num_kv_blocks;
  }
  gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", usage);

  metrics::AppendHeader(&out, "vllm:num_preemptions_total", "Cumulative number of preemptions.",
                        "counter");
  metrics::AppendSample(&out, "vllm:num_preemptions_total", base,
                        stats ? static_cast<double>(stats->num_preemptions) : 0);
  AppendPrefixCache(stats, &out);
  prompt_tokens_.Render(&out);
  generation_tokens_.Render(&out);
  request_success_.Render(&out);
  request_errors_.Render(&out);
  ttft_.Render(&out);
  tpot_.Render(&out);
  e2e_.Render(&out);
  queue_time_.Render(&out);

  gauge("moe_kv_blocks_total", "KV cache blocks managed by the scheduler.",
        stats ? stats->num_kv_blocks : 0);
  AppendSchedulerTiming(stats, &out);
  if (stats != nullptr && stats->offload.has_value()) {
    AppendOffloadMetrics(*stats->offload, base, &out);
  }
  return out;
}

void Metrics::AppendPrefixCache(const scheduler::SchedulerStats* stats, std::string* out) const {
  const metrics::Labels base = Base();
  auto sample = [&](const char* name, const char* help, const char* type, double v) {
    metrics::AppendHeader(out, name, help, type);
    metrics::AppendSample(out, name, base, v);
  };
  const scheduler::SchedulerStats none;
  const scheduler::SchedulerStats& s = stats != nullptr ? *stats : none;
  const double queries = static_cast<double>(s.prefix_cache_queries_total);
  const double hits = static_cast<double>(s.prefix_cache_hits_total);
  sample("vllm:prefix_cache_queries_total",
         "Prefix cache queries, in terms of number of queried tokens.", "counter", queries);
  sample("vllm:prefix_cache_hits_total",
         "Prefix cache hits, in terms of number of cached tokens.", "counter", hits);
  sample("moe_prefix_cache_hit_rate",
         "Prefix cache hits / queries (tokens) since start; 0 before any query.", "gauge",
         queries > 0 ? hits / queries : 0.0);
  sample("moe_prefix_cache_preempted_hits_total",
         "Cached tokens reused by requests re-admitted after preemption.", "counter",
         static_cast<double>(s.prefix_cache_preempted_hits_total));
  sample("moe_kv_blocks_cached",
         "Free KV blocks still holding a reusable prompt prefix (evicted only when needed).",
         "gauge", s.num_cached_kv_blocks);
}

void Metrics::AppendSchedulerTiming(const scheduler::SchedulerStats* stats,
                                    std::string* out) const {
  const metrics::Labels base = Base();
  auto sample = [&](const char* name, const char* help, const char* type, double v) {
    metrics::AppendHeader(out, name, help, type);
    metrics::AppendSample(out, name, base, v);
  };
  const scheduler::SchedulerStats none;
  const scheduler::SchedulerStats& s = stats != nullptr ? *stats : none;
  sample("moe_scheduler_steps_total", "Engine steps run (ModelRunner::Forward calls).",
         "counter", static_cast<double>(s.num_steps));
  sample("moe_scheduler_forward_seconds_total",
         "Engine-thread time inside ModelRunner::Forward, summed over steps.", "counter",
         s.forward_seconds_total);
  sample("moe_scheduler_host_seconds_total",
         "Engine-thread host time of steps outside Forward (batching, sampling, "
         "detokenizing, stream pushes), idle waits excluded. Overhead = host / forward.",
         "counter", s.host_seconds_total);
  // The host time split by phase (SchedulerHostPhases); "other" is the rest of the
  // engine loop's host time (waking, publishing stats, locking), never negative.
  metrics::AppendHeader(out, "moe_scheduler_host_phase_seconds_total",
                        "Engine-thread host time outside Forward by step phase: reap, compose "
                        "(admission, preemption, KV), prepare (the batch), sample (host "
                        "sampling), emit (detokenizing, stop rules, stream pushes), finish, other.",
                        "counter");
  const scheduler::SchedulerHostPhases& ph = s.host_phases;
  const double phased = ph.reap_s + ph.compose_s + ph.prepare_s + ph.sample_s + ph.emit_s + ph.finish_s;
  for (const auto& [phase, v] : std::vector<std::pair<const char*, double>>{
           {"reap", ph.reap_s}, {"compose", ph.compose_s}, {"prepare", ph.prepare_s},
           {"sample", ph.sample_s}, {"emit", ph.emit_s}, {"finish", ph.finish_s},
           {"other", std::max(0.0, s.host_seconds_total - phased)}}) {
    metrics::Labels l = base;
    l.emplace_back("phase", phase);
    metrics::AppendSample(out, "moe_scheduler_host_phase_seconds_total", l, v);
  }
  sample("moe_scheduler_running_seqs_at_last_step", "Sequences in the last step's batch.",
         "gauge", s.last_step_num_seqs);
  sample("moe_scheduler_expert_aware_deferred_total",
         "Decodes expert-aware batching deferred to a later step (their experts would "
         "overflow the expert cache alongside the step's others), summed over steps.",
         "counter", static_cast<double>(s.expert_aware_deferred_total));
  metrics::AppendCumulativeHistogram(out, "moe_scheduler_step_host_seconds",
                                     "Host time of one engine step outside Forward, in seconds.",
                                     base, scheduler::StepHostSecondsBounds(),
                                     s.step_host_seconds_buckets, s.num_steps,
                                     s.host_seconds_total);
}

}  // namespace moe::server

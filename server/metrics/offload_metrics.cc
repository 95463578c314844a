#include "server/metrics/offload_metrics.h"

#include <algorithm>
#include <cstdint>
#include <functional>

#include "absl/strings/str_cat.h"

namespace moe::server {
namespace {

metrics::Labels WithLayer(const metrics::Labels& base, int32_t layer) {
  metrics::Labels l = base;
  l.emplace_back("layer", absl::StrCat(layer));
  return l;
}

// One family with a sample per layer; `value` returns false to leave a layer out.
void PerLayer(const engine::OffloadStats& s, const metrics::Labels& base, const char* name,
              const char* help, const char* type,
              const std::function<bool(const engine::OffloadLayerStats&, double*)>& value,
              std::string* out) {
  metrics::AppendHeader(out, name, help, type);
  for (const engine::OffloadLayerStats& l : s.layers) {
    double v = 0;
    if (value(l, &v)) metrics::AppendSample(out, name, WithLayer(base, l.layer), v);
  }
}

void PerLayerCounter(const engine::OffloadStats& s, const metrics::Labels& base,
                     const char* name, const char* help,
                     int64_t engine::OffloadLayerStats::*field, std::string* out) {
  PerLayer(s, base, name, help, "counter",
           [field](const engine::OffloadLayerStats& l, double* v) {
             *v = static_cast<double>(l.*field);
             return true;
           },
           out);
}

}  // namespace

void AppendOffloadMetrics(const engine::OffloadStats& s, const metrics::Labels& base,
                          std::string* out) {
  using L = engine::OffloadLayerStats;
  PerLayerCounter(s, base, "moe_expert_cache_hits_total",
                  "Expert uses served from the GPU expert cache, per MoE layer.", &L::hits, out);
  PerLayerCounter(s, base, "moe_expert_cache_misses_total",
                  "Expert uses that had to copy the expert from host memory, per MoE layer.",
                  &L::misses, out);
  PerLayerCounter(s, base, "moe_prefetch_issued_total",
                  "Expert prefetches started, per MoE layer.", &L::prefetch_issued, out);
  PerLayerCounter(s, base, "moe_prefetch_used_total",
                  "Prefetched experts that were used before eviction, per MoE layer.",
                  &L::prefetch_used, out);
  PerLayerCounter(s, base, "moe_prefetch_wasted_total",
                  "Prefetched experts evicted unused, per MoE layer.", &L::prefetch_wasted, out);

  metrics::AppendHeader(out, "moe_expert_h2d_bytes_total",
                        "Expert weight bytes copied host to device.", "counter");
  metrics::AppendSample(out, "moe_expert_h2d_bytes_total", base,
                        static_cast<double>(s.h2d_bytes));

  metrics::AppendCumulativeHistogram(
      out, "moe_expert_stall_seconds",
      "Per-step wait of the compute stream for expert copies, in seconds.", base,
      s.stall_bucket_bounds, s.stall_bucket_counts, s.stall_count, s.stall_seconds_sum);

  PerLayer(s, base, "moe_predictor_precision",
           "Predicted experts that the layer then used, over experts predicted.", "gauge",
           [](const L& l, double* v) {
             if (l.predicted <= 0) return false;
             *v = static_cast<double>(l.predicted_correct) / l.predicted;
             return true;
           },
           out);
  PerLayer(s, base, "moe_predictor_recall",
           "Experts used that had been predicted, over experts used.", "gauge",
           [](const L& l, double* v) {
             if (l.predicted <= 0 || l.actual <= 0) return false;
             *v = static_cast<double>(l.predicted_correct) / l.actual;
             return true;
           },
           out);

  metrics::AppendHeader(out, "moe_expert_cache_slots", "Expert slots in the GPU expert cache.",
                        "gauge");
  metrics::AppendSample(out, "moe_expert_cache_slots", base, s.num_slots);
  metrics::AppendHeader(out, "moe_expert_cache_experts_total",
                        "Experts in the model (MoE layers x experts per layer).", "gauge");
  metrics::AppendSample(out, "moe_expert_cache_experts_total", base, s.num_experts_total);

  metrics::Labels info = base;
  info.emplace_back("prefetch", s.prefetch);
  info.emplace_back("policy", s.policy);
  metrics::AppendHeader(out, "moe_expert_offload_info",
                        "Expert offload configuration: the predictor and the eviction policy.",
                        "gauge");
  metrics::AppendSample(out, "moe_expert_offload_info", info, 1);
}

}  // namespace moe::server

// The expert-offload metrics (moe_expert_*, moe_prefetch_*, moe_predictor_*) rendered on
// GET /metrics from a runner's OffloadStats snapshot (engine/model_runner.h). Rendered
// only for runners that offload; every sample carries the caller's base labels
// (model_name), per-layer families add layer="N".
//
// Thread safety: a pure function of its arguments.
#pragma once

#include <string>

#include "engine/model_runner.h"
#include "server/metrics/prometheus.h"

namespace moe::server {

// Appends every offload family (HELP and TYPE lines included) to `out`:
//   counters  moe_expert_cache_hits_total{layer}, moe_expert_cache_misses_total{layer},
//             moe_prefetch_issued_total{layer}, moe_prefetch_used_total{layer},
//             moe_prefetch_wasted_total{layer}, moe_expert_h2d_bytes_total
//   histogram moe_expert_stall_seconds (the runner's buckets)
//   gauges    moe_predictor_precision{layer}, moe_predictor_recall{layer} (layers with
//             nothing predicted, or nothing used for recall, are left out),
//             moe_expert_cache_slots, moe_expert_cache_experts_total,
//             moe_expert_offload_info{prefetch,policy} (always 1)
void AppendOffloadMetrics(const engine::OffloadStats& stats, const metrics::Labels& base,
                          std::string* out);

}  // namespace moe::server

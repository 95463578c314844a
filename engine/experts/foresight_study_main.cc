// foresight_study: replays routing through the whole-step prefetch planning of a
// decoupled-router model (step_prefetch_sim.h) under several planning rules and eviction
// policies, and prints copies, demand misses and modelled stall per step.
//   (a) uniform random routing (--experts/--top-k/--layers, batches, cache fractions);
//   (b) with --router-model DIR: that router checkpoint's own routing (the decoupled
//       router needs only token ids: DecoupledRouterPredictor::RouteTokens) of the token
//       ids in --trace-json, sequences decoded one after another (batch 1) or
//       interleaved (batch b: a layer's set is the union over b sequences' tokens).
// Expert size and timing are OLMoE-1B-7B's on the H100 by default (12.6 MB bf16 experts,
// 54 GB/s pinned copies, per-layer compute estimated from resident decode rates).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "engine/experts/predictor.h"
#include "engine/experts/routing_format.h"
#include "engine/experts/routing_trace.h"
#include "engine/experts/step_prefetch_sim.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/registry.h"
#include <nlohmann/json.hpp>

namespace moe::engine {
namespace {

std::vector<StepPrefetchSimOptions> Rules() {
  std::vector<StepPrefetchSimOptions> out;
  auto add = [&](bool prefetch, StepPrefetchRule rule, bool foresight, bool window,
                 EvictionPolicyKind p) {
    StepPrefetchSimOptions o;
    o.prefetch = prefetch;
    o.rule = rule;
    o.step_foresight = foresight;
    o.window = window;
    o.policy = p;
    out.push_back(o);
  };
  using K = EvictionPolicyKind;
  using R = StepPrefetchRule;
  add(false, R::kSlots, false, false, K::kLfu);
  add(false, R::kSlots, false, false, K::kLru);
  add(true, R::kSlots, false, false, K::kLfu);     // before issue 6 (default policy)
  add(true, R::kSlots, false, false, K::kBelady);  // before issue 6 with --policy belady
  add(true, R::kForesight, true, false, K::kLru);
  add(true, R::kForesight, true, false, K::kLfu);
  add(true, R::kForesight, true, false, K::kBelady);
  add(true, R::kForesight, true, true, K::kLfu);
  add(true, R::kForesight, true, true, K::kBelady);
  return out;
}

struct Workload {
  std::string name;
  int batch = 1;
  RoutingTrace trace;
};

void RunTable(const std::vector<Workload>& loads, const std::vector<double>& fractions,
              uint64_t bytes, double link, const std::vector<double>& layer_ms) {
  std::printf("| routing | batch | cache (slots) | rule + policy | copies/step | demand misses/step"
              " | hit rate | stall ms/step | modelled tok/s |\n|---|---|---|---|---|---|---|---|---|\n");
  for (size_t w = 0; w < loads.size(); ++w) {
    const Workload& wl = loads[w];
    const int64_t total = wl.trace.grid.size();
    for (double f : fractions) {
      const int32_t slots = static_cast<int32_t>(f * total);
      for (StepPrefetchSimOptions o : Rules()) {
        o.num_slots = slots;
        o.bytes_per_expert = bytes;
        o.link_bytes_per_s = link;
        o.layer_compute_s = layer_ms[std::min(w, layer_ms.size() - 1)] * 1e-3;
        auto r = SimulateStepPrefetch(wl.trace, o);
        if (!r.ok()) {
          std::printf("| %s | %d | %.0f%% (%d) | %s | error: %s |\n", wl.name.c_str(), wl.batch,
                      f * 100, slots, StepPrefetchSimLabel(o).c_str(),
                      std::string(r.status().message()).c_str());
          continue;
        }
        const double step_s = r->per_step(r->total_s);
        std::printf("| %s | %d | %.0f%% (%d) | %s | %.1f | %.1f | %.3f | %.1f | %.1f |\n",
                    wl.name.c_str(), wl.batch, f * 100, slots, StepPrefetchSimLabel(o).c_str(),
                    r->per_step(r->copies), r->per_step(r->demand_misses),
                    r->uses ? 1.0 - double(r->demand_misses) / r->uses : 0.0,
                    r->per_step(r->stall_s) * 1e3, step_s > 0 ? wl.batch / step_s : 0.0);
      }
    }
  }
}

absl::StatusOr<std::vector<std::vector<int32_t>>> ReadTokenIds(const std::string& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError("--trace-json: cannot open " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::vector<std::vector<int32_t>> seqs;
  try {
    auto j = nlohmann::json::parse(ss.str());
    for (const auto& s : j.at("sequences")) seqs.push_back(s.at("token_ids").get<std::vector<int32_t>>());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(path + ": sequences[].token_ids: " + e.what());
  }
  return seqs;
}

// Per sequence, per token, per MoE layer: the experts the router picks.
absl::StatusOr<std::vector<RoutingTrace>> RouterTraces(const std::string& dir,
                                                       const std::string& trace_json,
                                                       const std::vector<int>& batches) {
  auto cfg = LoadModelConfig(dir);
  if (!cfg.ok()) return cfg.status();
  auto ck = Checkpoint::Open(dir);
  if (!ck.ok()) return ck.status();
  auto fmt = LoadRoutingFormat(dir, *cfg);
  if (!fmt.ok()) return fmt.status();
  if (fmt->mode != RoutingMode::kRouter) {
    return absl::InvalidArgumentError(dir + ": not a decoupled-router checkpoint");
  }
  auto rw = BindRoutingWeights(**ck, *cfg, *fmt);
  if (!rw.ok()) return rw.status();
  auto dw = BindDecoderWeights(**ck, *cfg);
  if (!dw.ok()) return dw.status();
  auto seqs = ReadTokenIds(trace_json);
  if (!seqs.ok()) return seqs.status();
  DecoupledRouterPredictor router(*cfg, dw->embed_tokens, *rw, nullptr);
  const int M = static_cast<int>(fmt->moe_layers.size());
  const int k = cfg->num_experts_per_tok;
  const ExpertGrid grid{cfg->num_layers, cfg->num_experts};
  std::vector<std::vector<std::vector<std::vector<int32_t>>>> routing;  // [seq][tok][layer]
  std::vector<int32_t> idx;
  std::vector<float> w;
  for (const auto& s : *seqs) {
    if (auto st = router.RouteTokens(s, &idx, &w); !st.ok()) return st;
    auto& r = routing.emplace_back(s.size(), std::vector<std::vector<int32_t>>(grid.num_layers));
    for (size_t t = 0; t < s.size(); ++t)
      for (int m = 0; m < M; ++m)
        for (int j = 0; j < k; ++j) r[t][fmt->moe_layers[m]].push_back(idx[(t * M + m) * k + j]);
  }
  std::vector<RoutingTrace> out;
  for (int b : batches) {
    RoutingTrace t;
    t.grid = grid;
    for (size_t g = 0; g < routing.size(); g += b) {
      const size_t end = std::min(routing.size(), g + b);
      size_t len = 0;
      for (size_t s = g; s < end; ++s) len = std::max(len, routing[s].size());
      for (size_t tok = 0; tok < len; ++tok) {
        std::vector<std::vector<int32_t>> step(grid.num_layers);
        for (size_t s = g; s < end; ++s) {
          if (tok >= routing[s].size()) continue;
          for (int l = 0; l < grid.num_layers; ++l) {
            step[l].insert(step[l].end(), routing[s][tok][l].begin(), routing[s][tok][l].end());
          }
        }
        for (auto& l : step) {
          std::sort(l.begin(), l.end());
          l.erase(std::unique(l.begin(), l.end()), l.end());
        }
        t.steps.push_back(std::move(step));
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace
}  // namespace moe::engine

int main(int argc, char** argv) {
  using namespace moe::engine;
  int experts = 64, top_k = 8, layers = 16, steps = 200;
  uint64_t seed = 1;
  std::vector<int> batches = {1, 8, 32};
  std::vector<double> fractions = {0.25, 0.5};
  std::vector<double> layer_ms = {0.11, 0.2, 0.33};
  uint64_t bytes = 3ull * 2048 * 1024 * 2;  // OLMoE-1B-7B expert, bf16
  double link = 54e9;
  std::string router_model, trace_json = "tests/data/models/trained/standard/routing_trace.json";
  CLI::App app{"Whole-step foresight: prefetch planning rules replayed against a timed copy link."};
  app.add_option("--experts", experts, "uniform routing: experts per layer");
  app.add_option("--top-k", top_k, "uniform routing: experts per token");
  app.add_option("--layers", layers, "uniform routing: MoE layers");
  app.add_option("--steps", steps, "uniform routing: decode steps replayed");
  app.add_option("--seed", seed, "uniform routing: seed");
  app.add_option("--batches", batches, "tokens per step (uniform) / sequences interleaved (router)");
  app.add_option("--cache-fractions", fractions, "GPU expert cache, fractions of all experts");
  app.add_option("--layer-ms", layer_ms, "compute per MoE layer, ms, one per batch (last repeats)");
  app.add_option("--bytes-per-expert", bytes, "bytes of one expert");
  app.add_option("--link-bytes-per-s", link, "host->device copy rate, bytes/s");
  app.add_option("--router-model", router_model, "also replay this router checkpoint's routing");
  app.add_option("--trace-json", trace_json, "token ids (sequences[].token_ids) for --router-model");
  CLI11_PARSE(app, argc, argv);

  std::vector<Workload> uniform;
  for (int b : batches) {
    SyntheticTraceOptions so;
    so.steps = steps;
    so.num_layers = layers;
    so.num_experts = experts;
    so.top_k = top_k;
    so.tokens_per_step = b;
    so.seed = seed;
    uniform.push_back({"uniform", b, MakeSyntheticTrace(so)});
  }
  std::printf("## (a) uniform routing: %d experts top-%d, %d layers, %d steps; %.1f MB experts, "
              "%.0f GB/s\n\n", experts, top_k, layers, steps, bytes / 1e6, link / 1e9);
  RunTable(uniform, fractions, bytes, link, layer_ms);
  if (!router_model.empty()) {
    auto traces = RouterTraces(router_model, trace_json, batches);
    if (!traces.ok()) {
      std::fprintf(stderr, "foresight_study: %s\n", traces.status().ToString().c_str());
      return 1;
    }
    std::vector<Workload> real;
    for (size_t i = 0; i < batches.size(); ++i) real.push_back({"router model", batches[i], (*traces)[i]});
    std::printf("\n## (b) %s routing of %s (%zu steps at batch %d); expert size and timing as (a)\n\n",
                router_model.c_str(), trace_json.c_str(), (*traces)[0].steps.size(), batches[0]);
    RunTable(real, fractions, bytes, link, layer_ms);
  }
  return 0;
}

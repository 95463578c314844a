#include "tools/experts/routing_study.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/cpu/cpu_runner.h"
#include "engine/experts/predictor.h"
#include "engine/experts/routing_trace.h"
#include "engine/model_loader.h"
#include "engine/models/registry.h"

namespace moe::tools {
namespace {

using engine::RoutingTrace;

struct HeldOut {
  std::vector<std::vector<int32_t>> seqs;
  // Per sequence, per layer: the recorded top-k ids per token (empty when absent).
  std::vector<std::vector<std::vector<int32_t>>> recorded;
  std::string recorded_model;
};

absl::StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(what, ": cannot open ", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

absl::StatusOr<HeldOut> ReadTraceJson(const std::string& path, int top_k) {
  auto text = ReadFile(path, "--trace-json");
  if (!text.ok()) return text.status();
  HeldOut h;
  try {
    auto j = nlohmann::json::parse(*text);
    if (j.contains("model")) h.recorded_model = j["model"].get<std::string>();
    int k = j.value("top_k", top_k);
    int si = 0;
    for (const auto& s : j.at("sequences")) {
      h.seqs.push_back(s.at("token_ids").get<std::vector<int32_t>>());
      std::vector<std::vector<int32_t>> layers;
      if (s.contains("experts") && k == top_k) {
        for (const auto& ls : s["experts"]) {
          std::string digits = ls.get<std::string>();
          if (digits.size() != h.seqs.back().size() * k) {
            return absl::InvalidArgumentError(absl::StrCat(
                path, ": sequences[", si, "].experts: ", digits.size(), " digits for ",
                h.seqs.back().size(), " tokens x top_k ", k));
          }
          std::vector<int32_t> ids;
          for (char c : digits) ids.push_back(c - '0');
          layers.push_back(std::move(ids));
        }
      }
      h.recorded.push_back(std::move(layers));
      ++si;
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  if (h.seqs.empty()) return absl::InvalidArgumentError(path + ": no sequences");
  return h;
}

std::vector<int32_t> SortedSet(absl::Span<const int32_t> v) {
  std::vector<int32_t> s(v.begin(), v.end());
  std::sort(s.begin(), s.end());
  s.erase(std::unique(s.begin(), s.end()), s.end());
  return s;
}

const char* RoutingName(engine::RoutingVariant v) {
  switch (v) {
    case engine::RoutingVariant::kPregated: return "pregated";
    case engine::RoutingVariant::kRouter: return "router";
    default: return "standard";
  }
}

// Per sequence, per token, per layer: the experts the runner used ([tokens][layers][k],
// dense layers empty).
using SeqRouting = std::vector<std::vector<std::vector<int32_t>>>;

RoutingTrace InterleavedTrace(const std::vector<SeqRouting>& routing, int batch,
                              engine::ExpertGrid grid) {
  RoutingTrace t;
  t.grid = grid;
  for (size_t g = 0; g < routing.size(); g += batch) {
    size_t end = std::min(routing.size(), g + batch);
    size_t len = 0;
    for (size_t s = g; s < end; ++s) len = std::max(len, routing[s].size());
    for (size_t tok = 0; tok < len; ++tok) {
      std::vector<std::vector<int32_t>> step(grid.num_layers);
      for (size_t s = g; s < end; ++s) {
        if (tok >= routing[s].size()) continue;
        for (int l = 0; l < grid.num_layers; ++l) {
          const auto& e = routing[s][tok][l];
          step[l].insert(step[l].end(), e.begin(), e.end());
        }
      }
      for (auto& l : step) l = SortedSet(l);
      t.steps.push_back(std::move(step));
    }
  }
  return t;
}

}  // namespace

absl::StatusOr<RoutingStudyResult> RunRoutingStudy(const RoutingStudyOptions& o) {
  engine::LoadOptions lo;
  lo.device = engine::DeviceKind::kCpu;
  lo.runner.num_threads = o.num_threads;
  auto loaded = engine::LoadModel(o.model_dir, lo);
  if (!loaded.ok()) return loaded.status();
  const engine::ModelConfig& cfg = loaded->config;
  engine::CpuRunner* cpu = engine::AsCpuRunner(loaded->runner.get());
  if (cpu == nullptr) return absl::InternalError("routing study: runner is not the CPU runner");
  if (cfg.num_experts <= 0) {
    return absl::InvalidArgumentError(o.model_dir + ": not a MoE model (num_experts 0)");
  }
  // The runner keeps its own binding private; bind the same checkpoint again (views, no
  // copies) for the predictor and the expert size.
  auto weights = engine::BindDecoderWeights(*loaded->checkpoint, cfg);
  if (!weights.ok()) return weights.status();

  RoutingStudyResult r;
  r.model_dir = o.model_dir;
  r.routing = RoutingName(weights->routing);
  r.predictor_exact = weights->routing != engine::RoutingVariant::kStandard;
  r.num_layers = cfg.num_layers;
  r.num_experts = cfg.num_experts;
  r.top_k = cfg.num_experts_per_tok;
  for (const auto& lw : weights->layers) {
    if (!lw.is_moe || lw.experts.empty()) continue;
    const auto& e = lw.experts[0];
    r.bytes_per_expert = e.gate.nbytes() + e.up.nbytes() + e.down.nbytes();
    break;
  }

  HeldOut held;
  if (!o.text_file.empty()) {
    auto text = ReadFile(o.text_file, "--text-file");
    if (!text.ok()) return text.status();
    auto ids = loaded->tokenizer->Encode(*text, false);
    if (!ids.ok()) return ids.status();
    if (o.seq_len < 1) return absl::InvalidArgumentError("--seq-len must be >= 1");
    for (size_t i = 0; i + o.seq_len <= ids->size(); i += o.seq_len) {
      held.seqs.emplace_back(ids->begin() + i, ids->begin() + i + o.seq_len);
      held.recorded.emplace_back();
    }
    if (held.seqs.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(o.text_file, ": fewer than --seq-len ",
                                                     o.seq_len, " tokens"));
    }
  } else {
    auto h = ReadTraceJson(o.trace_json, r.top_k);
    if (!h.ok()) return h.status();
    held = std::move(*h);
  }
  if (o.max_sequences > 0 && held.seqs.size() > static_cast<size_t>(o.max_sequences)) {
    held.seqs.resize(o.max_sequences);
    held.recorded.resize(o.max_sequences);
  }
  if (o.max_tokens_per_seq > 0) {
    for (auto& s : held.seqs) {
      if (s.size() > static_cast<size_t>(o.max_tokens_per_seq)) s.resize(o.max_tokens_per_seq);
    }
  }
  // Recorded routing is only comparable for the model that recorded it.
  auto same_model = [&](const std::string& rec) {
    if (rec.empty()) return false;
    std::string a = o.model_dir, b = rec;
    while (!a.empty() && a.back() == '/') a.pop_back();
    return a.size() >= b.size() && a.compare(a.size() - b.size(), b.size(), b) == 0;
  };
  const bool compare_recorded = o.text_file.empty() && same_model(held.recorded_model);

  // Observers: per token, predictions of the next max_depth MoE layers from every
  // layer's residual stream; checked against the routing when the Forward ends.
  engine::NextGatePredictor next_gate(cfg, *weights, nullptr);
  engine::PredictionAccuracy acc(o.max_depth, cfg.num_layers);
  // chunk_preds[layer][token]: predictions made at `layer` for that chunk token.
  std::vector<std::vector<std::vector<engine::LayerPrediction>>> chunk_preds(cfg.num_layers);
  absl::Status observer_status;
  SeqRouting* current = nullptr;
  int64_t agree = 0, compared = 0;

  if (!r.predictor_exact) {
    cpu->set_layer_observer([&](int layer, const float* hidden, int64_t n,
                                absl::Span<const int32_t> ids) {
      auto& per_tok = chunk_preds[layer];
      per_tok.assign(n, {});
      for (int64_t t = 0; t < n && observer_status.ok(); ++t) {
        engine::PredictorInput in;
        in.layer = layer;
        in.hidden = hidden + t * cfg.hidden_size;
        in.num_tokens = 1;
        in.token_ids = ids.subspan(t, 1);
        observer_status = next_gate.PredictNextLayers(in, o.max_depth, &per_tok[t]);
      }
    });
  }
  cpu->set_routing_observer([&](const engine::RoutingRecord& rec) {
    for (int64_t t = 0; t < rec.num_tokens; ++t) {
      std::vector<std::vector<int32_t>> tok(cfg.num_layers);
      for (int m = 0; m < rec.num_moe_layers(); ++m) {
        auto e = rec.Experts(m, t);
        tok[rec.moe_layers[m]].assign(e.begin(), e.end());
      }
      if (!r.predictor_exact) {
        for (int l = 0; l < cfg.num_layers; ++l) {
          if (chunk_preds[l].size() != static_cast<size_t>(rec.num_tokens)) continue;
          const auto& preds = chunk_preds[l][t];
          for (size_t d = 0; d < preds.size(); ++d) {
            acc.Record(preds[d].layer, static_cast<int>(d) + 1, preds[d].experts,
                       tok[preds[d].layer]);
          }
        }
      }
      current->push_back(std::move(tok));
    }
  });

  std::vector<SeqRouting> routing;
  routing.reserve(held.seqs.size());
  const int bs = loaded->runner->kv_block_size();
  auto t0 = std::chrono::steady_clock::now();
  for (size_t s = 0; s < held.seqs.size(); ++s) {
    const auto& seq = held.seqs[s];
    routing.emplace_back();
    current = &routing.back();
    int nblocks = static_cast<int>((seq.size() + bs - 1) / bs);
    if (nblocks > loaded->runner->num_kv_blocks()) {
      return absl::ResourceExhaustedError(absl::StrCat("sequence ", s, ": ", seq.size(),
                                                       " tokens exceed the KV cache"));
    }
    std::vector<int32_t> blocks(nblocks);
    for (int b = 0; b < nblocks; ++b) blocks[b] = b;
    const int chunk = std::max(1, o.prefill_chunk);
    for (size_t pos = 0; pos < seq.size(); pos += chunk) {
      engine::ForwardBatch batch;
      engine::SequenceChunk c;
      c.seq_id = static_cast<int64_t>(s);
      size_t n = std::min<size_t>(chunk, seq.size() - pos);
      c.tokens = absl::MakeConstSpan(seq.data() + pos, n);
      c.start_pos = static_cast<int32_t>(pos);
      c.block_table = blocks;
      c.logits = engine::SequenceChunk::Logits::kLast;
      batch.seqs.push_back(c);
      for (auto& p : chunk_preds) p.clear();
      engine::ForwardResult out;
      if (auto st = loaded->runner->Forward(batch, &out); !st.ok()) {
        return absl::Status(st.code(), absl::StrCat("sequence ", s, " at ", pos, ": ",
                                                    st.message()));
      }
      if (!observer_status.ok()) return observer_status;
    }
    if (compare_recorded && s < held.recorded.size() && !held.recorded[s].empty()) {
      const auto& recd = held.recorded[s];
      for (size_t t = 0; t < current->size(); ++t) {
        for (int l = 0; l < cfg.num_layers && l < static_cast<int>(recd.size()); ++l) {
          if ((*current)[t][l].empty()) continue;
          auto a = SortedSet((*current)[t][l]);
          auto b = SortedSet(absl::MakeConstSpan(recd[l].data() + t * r.top_k, r.top_k));
          agree += a == b;
          ++compared;
        }
      }
    }
    r.tokens += static_cast<int64_t>(seq.size());
  }
  r.forward_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  cpu->set_layer_observer(nullptr);
  cpu->set_routing_observer(nullptr);
  r.sequences = static_cast<int64_t>(held.seqs.size());
  if (compared > 0) r.trace_agreement = double(agree) / compared;
  if (!r.predictor_exact) {
    for (int d = 1; d <= o.max_depth; ++d) r.next_gate.push_back(acc.ByDepth(d));
  }

  // Cache replays of the actual routing.
  engine::ExpertGrid grid{cfg.num_layers, cfg.num_experts};
  struct Replay {
    std::string name;
    RoutingTrace trace;
  };
  std::vector<Replay> replays;
  replays.push_back({"single", InterleavedTrace(routing, 1, grid)});
  if (o.batch > 1) {
    replays.push_back({absl::StrCat("batch", o.batch), InterleavedTrace(routing, o.batch, grid)});
  }
  const engine::EvictionPolicyKind policies[] = {engine::EvictionPolicyKind::kLru,
                                                 engine::EvictionPolicyKind::kLfu,
                                                 engine::EvictionPolicyKind::kBelady};
  // Standard models also get a next-gate stand-in: exact prefetch with each predicted
  // expert replaced at the rate the measured depth-1 precision misses.
  const double noise = r.next_gate.empty() ? -1 : 1.0 - r.next_gate[0].precision();
  for (const auto& rp : replays) {
    if (auto st = rp.trace.Validate(); !st.ok()) return st;
    for (double frac : o.cache_fractions) {
      int32_t slots = static_cast<int32_t>(frac * grid.size() + 0.5);
      for (int depth : o.prefetch_depths) {
        std::vector<std::string> modes = {depth == 0 ? "none" : "exact"};
        // Single-sequence replay only: with a batch's union near all experts,
        // SimulateCache's kNoisy perturbation may find no wrong expert left to pick and
        // never return (engine/experts/cache_sim.cc, Perturb).
        if (depth > 0 && noise >= 0 && rp.name == "single") modes.push_back("next-gate-noisy");
        for (const auto& mode : modes) {
          for (auto pol : policies) {
            engine::CacheSimOptions so;
            so.num_slots = slots;
            so.bytes_per_expert = r.bytes_per_expert;
            so.policy = pol;
            so.prefetch_depth = depth;
            so.prefetch_across_steps = true;
            if (mode == "next-gate-noisy") {
              so.predictions = engine::SimPredictions::kNoisy;
              so.noise = noise;
            }
            auto res = engine::SimulateCache(rp.trace, so);
            if (!res.ok()) {
              return absl::Status(res.status().code(),
                                  absl::StrCat(rp.name, " replay, ", slots, " slots, ",
                                               EvictionPolicyName(pol), ": ",
                                               res.status().message()));
            }
            CacheRow row;
            row.replay = rp.name;
            row.policy = EvictionPolicyName(pol);
            row.prefetch = mode;
            row.cache_fraction = frac;
            row.slots = slots;
            row.prefetch_depth = depth;
            row.steps = res->steps;
            row.stats = res->stats;
            r.cache.push_back(row);
          }
        }
      }
    }
  }
  return r;
}

std::string FormatRoutingStudy(const RoutingStudyResult& r) {
  std::string s = absl::StrFormat(
      "model %s (%s routing): %d layers x %d experts, top-%d, %d B per expert\n"
      "held-out: %d sequences, %d tokens, forward %.1f s\n",
      r.model_dir, r.routing, r.num_layers, r.num_experts, r.top_k, r.bytes_per_expert,
      r.sequences, r.tokens, r.forward_seconds);
  if (r.trace_agreement >= 0) {
    absl::StrAppendFormat(&s, "runner routing = recorded trace routing: %.4f of (token, layer)\n",
                          r.trace_agreement);
  }
  if (r.predictor_exact) {
    absl::StrAppend(&s, "predictor: ", r.routing,
                    " routing is exact by construction (precision = recall = 1)\n");
  } else {
    absl::StrAppend(&s, "next-gate predictor (per token):\n| depth | precision | recall | predictions |\n|---|---|---|---|\n");
    for (size_t d = 0; d < r.next_gate.size(); ++d) {
      const auto& c = r.next_gate[d];
      absl::StrAppendFormat(&s, "| %d | %.4f | %.4f | %d |\n", d + 1, c.precision(), c.recall(),
                            c.events);
    }
  }
  absl::StrAppend(&s, "\n| replay | cache | slots | prefetch | policy | hit rate | misses | "
                      "prefetches | MB moved | KB/step |\n|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& c : r.cache) {
    absl::StrAppendFormat(
        &s, "| %s | %.0f%% | %d | %s%s | %s | %.4f | %d | %d | %.1f | %.1f |\n", c.replay,
        c.cache_fraction * 100, c.slots, c.prefetch,
        c.prefetch_depth > 0 ? absl::StrCat(" d", c.prefetch_depth) : "", c.policy,
        c.stats.hit_rate(), c.stats.misses, c.stats.prefetches_issued,
        c.stats.bytes_moved / 1e6, c.steps ? c.stats.bytes_moved / 1e3 / c.steps : 0.0);
  }
  return s;
}

nlohmann::json RoutingStudyJson(const RoutingStudyResult& r) {
  nlohmann::json j;
  j["model"] = r.model_dir;
  j["routing"] = r.routing;
  j["predictor_exact"] = r.predictor_exact;
  j["num_layers"] = r.num_layers;
  j["num_experts"] = r.num_experts;
  j["top_k"] = r.top_k;
  j["bytes_per_expert"] = r.bytes_per_expert;
  j["sequences"] = r.sequences;
  j["tokens"] = r.tokens;
  j["forward_seconds"] = r.forward_seconds;
  if (r.trace_agreement >= 0) j["trace_agreement"] = r.trace_agreement;
  j["next_gate"] = nlohmann::json::array();
  for (size_t d = 0; d < r.next_gate.size(); ++d) {
    const auto& c = r.next_gate[d];
    j["next_gate"].push_back({{"depth", d + 1}, {"precision", c.precision()},
                              {"recall", c.recall()}, {"events", c.events},
                              {"predicted", c.predicted}, {"actual", c.actual},
                              {"correct", c.correct}});
  }
  j["cache"] = nlohmann::json::array();
  for (const auto& c : r.cache) {
    j["cache"].push_back({{"replay", c.replay}, {"policy", c.policy}, {"prefetch", c.prefetch},
                          {"prefetch_depth", c.prefetch_depth},
                          {"cache_fraction", c.cache_fraction}, {"slots", c.slots},
                          {"steps", c.steps}, {"hit_rate", c.stats.hit_rate()},
                          {"hits", c.stats.hits}, {"misses", c.stats.misses},
                          {"prefetches_issued", c.stats.prefetches_issued},
                          {"prefetches_used", c.stats.prefetches_used},
                          {"prefetches_wasted", c.stats.prefetches_wasted},
                          {"bytes_moved", c.stats.bytes_moved}});
  }
  return j;
}

}  // namespace moe::tools

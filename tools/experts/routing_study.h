// Routing study: runs held-out text through a model on the CPU backend and measures
// (1) how well the speculative next-gate predictor (engine/experts/predictor.h) names
// the experts of the next 1..3 MoE layers, against the routing the runner actually used,
// and (2) how LRU, LFU and Belady expert caches of several sizes behave when that actual
// routing is replayed through engine/experts' cache simulator, one token per step
// (decode-like) and with `batch` sequences interleaved.
//
// Predictions are made per token (num_tokens = 1 per call), as a decode step of one
// sequence would make them; the text is teacher-forced in prefill chunks, which yields
// the same routing as decoding it token by token.
//
// Thread safety: RunRoutingStudy drives its own model; independent calls may run on
// different threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/experts/cache_sim.h"
#include "engine/experts/prediction_accuracy.h"
#include <nlohmann/json.hpp>

namespace moe::tools {

struct RoutingStudyOptions {
  std::string model_dir;
  // Token ids: the "sequences[].token_ids" of a routing_trace.json (as written by
  // tools/train), or, when text_file is set, that text tokenized with the model's
  // tokenizer and cut into sequences of seq_len tokens.
  std::string trace_json;
  std::string text_file;
  int seq_len = 256;          // text_file only
  int max_sequences = 0;      // 0: all
  int max_tokens_per_seq = 0; // 0: whole sequences
  int prefill_chunk = 64;     // tokens per Forward
  int max_depth = 3;          // next-gate depths measured
  int batch = 8;              // sequences interleaved in the batched replay
  std::vector<double> cache_fractions = {0.25, 0.5, 0.75};
  std::vector<int> prefetch_depths = {0, 1};
  int num_threads = 0;        // CPU runner threads; 0: all cores
};

struct CacheRow {
  std::string replay;     // "single" | "batch8" ...
  std::string policy;     // "lru" | "lfu" | "belady"
  std::string prefetch;   // "none" | "exact" | "next-gate-noisy"
  double cache_fraction = 0;
  int32_t slots = 0;
  int prefetch_depth = 0;
  int64_t steps = 0;
  engine::ExpertCacheStats stats;
};

struct RoutingStudyResult {
  std::string model_dir;
  std::string routing;  // "standard" | "pregated" | "router"
  bool predictor_exact = false;
  int num_layers = 0, num_experts = 0, top_k = 0;
  uint64_t bytes_per_expert = 0;
  int64_t sequences = 0, tokens = 0;
  // Standard models: next-gate accuracy by depth (1..max_depth). Empty when exact.
  std::vector<engine::PredictionCounts> next_gate;
  // When the trace JSON carries "experts" for this model: the fraction of (token, layer)
  // whose top-k set from the runner equals the recorded one; -1 when not compared.
  double trace_agreement = -1;
  std::vector<CacheRow> cache;
  double forward_seconds = 0;
};

absl::StatusOr<RoutingStudyResult> RunRoutingStudy(const RoutingStudyOptions& options);

std::string FormatRoutingStudy(const RoutingStudyResult& r);
nlohmann::json RoutingStudyJson(const RoutingStudyResult& r);

}  // namespace moe::tools

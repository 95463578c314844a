// Test helpers: a CPU runner over a freshly written random-weight model, and simple
// ways to run one sequence through it.
#pragma once

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/cpu/cpu_runner.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"
#include "engine/models/test_model.h"

namespace moe::engine::testing {

struct TestRunner {
  std::unique_ptr<Checkpoint> ckpt;
  ModelConfig config;
  TestModelTensors tensors;
  std::unique_ptr<ModelRunner> runner;
};

inline TestRunner MakeTestRunner(const TestModelSpec& spec, int block_size = 4,
                                 int num_blocks = 64, int threads = 2) {
  TestRunner r;
  std::string dir = MakeTempDir("runner");
  auto t = WriteTestModel(dir, spec);
  REQUIRE(t.ok());
  r.tensors = *std::move(t);
  auto cfg = LoadModelConfig(dir);
  INFO(cfg.status().ToString());
  REQUIRE(cfg.ok());
  r.config = *cfg;
  auto ck = Checkpoint::Open(dir);
  INFO(ck.status().ToString());
  REQUIRE(ck.ok());
  r.ckpt = *std::move(ck);
  RunnerOptions opts;
  opts.kv_block_size = block_size;
  opts.num_kv_blocks = num_blocks;
  opts.num_threads = threads;
  auto runner = CreateCpuRunner(*r.ckpt, r.config, opts);
  INFO(runner.status().ToString());
  REQUIRE(runner.ok());
  r.runner = *std::move(runner);
  return r;
}

inline std::vector<int32_t> Iota(int n, int32_t first) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

inline std::vector<int32_t> RandomTokens(int n, int vocab, uint32_t seed) {
  std::vector<int32_t> v(n);
  uint32_t x = seed * 2654435761u + 12345u;
  for (auto& t : v) {
    x = x * 1664525u + 1013904223u;
    t = static_cast<int32_t>((x >> 8) % vocab);
  }
  return v;
}

// Runs one chunk of one sequence; returns its logits rows (row-major).
inline std::vector<float> RunChunk(ModelRunner& runner, const std::vector<int32_t>& tokens,
                                   int32_t start_pos, const std::vector<int32_t>& table,
                                   SequenceChunk::Logits mode = SequenceChunk::Logits::kLast,
                                   int64_t seq_id = 0) {
  ForwardBatch batch;
  SequenceChunk c;
  c.seq_id = seq_id;
  c.tokens = tokens;
  c.start_pos = start_pos;
  c.block_table = table;
  c.logits = mode;
  batch.seqs.push_back(c);
  ForwardResult out;
  absl::Status s = runner.Forward(batch, &out);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out.logits;
}

inline float MaxAbsDiff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace moe::engine::testing

#include "engine/cpu/cpu_runner.h"

#include <algorithm>
#include <cmath>

#include <catch2/catch.hpp>

#include "engine/cpu/runner_test_util.h"

namespace moe::engine {
namespace {

using namespace ::moe::engine::testing;
using Logits = SequenceChunk::Logits;

// One spec per family variant the runner must handle.
std::vector<std::pair<std::string, TestModelSpec>> FamilySpecs() {
  std::vector<std::pair<std::string, TestModelSpec>> specs;
  TestModelSpec mixtral;
  specs.push_back({"mixtral", mixtral});
  TestModelSpec mixtral_fused = mixtral;
  mixtral_fused.fused_experts = true;
  mixtral_fused.dtype = DType::kF16;
  specs.push_back({"mixtral fused f16", mixtral_fused});
  TestModelSpec window = mixtral;
  window.sliding_window = 5;
  specs.push_back({"mixtral sliding window", window});
  TestModelSpec qwen2;
  qwen2.arch = Architecture::kQwen2Moe;
  qwen2.num_layers = 3;
  qwen2.shared_expert_intermediate_size = 20;
  qwen2.mlp_only_layers = {1};
  specs.push_back({"qwen2_moe", qwen2});
  TestModelSpec qwen3;
  qwen3.arch = Architecture::kQwen3Moe;
  qwen3.num_layers = 3;
  qwen3.decoder_sparse_step = 2;
  qwen3.norm_topk_prob = true;
  qwen3.num_experts = 8;
  qwen3.top_k = 3;
  qwen3.fused_experts = true;
  qwen3.dtype = DType::kF32;
  specs.push_back({"qwen3_moe fused f32", qwen3});
  TestModelSpec olmoe;
  olmoe.arch = Architecture::kOlmoe;
  olmoe.clip_qkv = 1.5f;
  olmoe.num_kv_heads = 4;
  olmoe.tie_word_embeddings = true;
  specs.push_back({"olmoe", olmoe});
  return specs;
}

TEST_CASE("Prefill gives the same logits as decoding one token at a time", "[cpu_runner]") {
  for (auto& [name, spec] : FamilySpecs()) {
    INFO(name);
    TestRunner r = MakeTestRunner(spec, /*block_size=*/4);
    const int V = r.config.vocab_size;
    auto tokens = RandomTokens(13, V, 7);
    std::vector<int32_t> table = {9, 3, 17, 0};  // 13 positions over 4 blocks of 4
    auto prefill = RunChunk(*r.runner, tokens, 0, table, Logits::kAll);
    REQUIRE(prefill.size() == 13u * V);
    std::vector<int32_t> table2 = {1, 2, 5, 6};
    for (int t = 0; t < 13; ++t) {
      auto step = RunChunk(*r.runner, {tokens[t]}, t, table2, Logits::kLast, 1);
      REQUIRE(step.size() == size_t(V));
      INFO("position " << t);
      REQUIRE(MaxAbsDiff(step.data(), prefill.data() + size_t(t) * V, V) < 1e-4f);
    }
    // kLast of a prefill is the last row of kAll.
    std::vector<int32_t> table3 = {7, 8, 10, 11};
    auto last = RunChunk(*r.runner, tokens, 0, table3, Logits::kLast, 2);
    REQUIRE(MaxAbsDiff(last.data(), prefill.data() + 12 * V, V) == 0.f);
  }
}

TEST_CASE("Chunked prefill across block boundaries equals one prefill", "[cpu_runner]") {
  for (auto& [name, spec] : FamilySpecs()) {
    INFO(name);
    TestRunner r = MakeTestRunner(spec, /*block_size=*/3);
    const int V = r.config.vocab_size;
    auto tokens = RandomTokens(14, V, 3);
    std::vector<int32_t> t1 = {0, 1, 2, 3, 4};
    auto full = RunChunk(*r.runner, tokens, 0, t1, Logits::kLast);
    std::vector<int32_t> t2 = {20, 11, 12, 30, 14};
    std::vector<int32_t> a(tokens.begin(), tokens.begin() + 4), b(tokens.begin() + 4, tokens.begin() + 11),
        c(tokens.begin() + 11, tokens.end());
    auto none = RunChunk(*r.runner, a, 0, t2, Logits::kNone, 1);
    REQUIRE(none.empty());
    RunChunk(*r.runner, b, 4, t2, Logits::kNone, 1);
    auto chunked = RunChunk(*r.runner, c, 11, t2, Logits::kLast, 1);
    REQUIRE(MaxAbsDiff(full.data(), chunked.data(), V) < 1e-4f);
  }
}

TEST_CASE("A batch of sequences gives each its logits as when run alone", "[cpu_runner]") {
  for (auto& [name, spec] : FamilySpecs()) {
    INFO(name);
    TestRunner r = MakeTestRunner(spec, /*block_size=*/4);
    const int V = r.config.vocab_size;
    // Sequence A: a 9-token prefill; B: 2 tokens already cached, then 5 more; C: decode
    // of the 7th token after a 6-token prefill.
    auto ta = RandomTokens(9, V, 1), tb = RandomTokens(7, V, 2), tc = RandomTokens(7, V, 3);
    std::vector<int32_t> table_a = {0, 1, 2}, table_b = {3, 4}, table_c = {5, 6};
    // Alone, on other blocks.
    auto alone_a = RunChunk(*r.runner, ta, 0, {10, 11, 12}, Logits::kAll, 100);
    RunChunk(*r.runner, {tb[0], tb[1]}, 0, {13, 14}, Logits::kNone, 101);
    auto alone_b = RunChunk(*r.runner, {tb.begin() + 2, tb.end()}, 2, {13, 14}, Logits::kLast, 101);
    RunChunk(*r.runner, {tc.begin(), tc.begin() + 6}, 0, {15, 16}, Logits::kNone, 102);
    auto alone_c = RunChunk(*r.runner, {tc[6]}, 6, {15, 16}, Logits::kLast, 102);
    // Batched: B's and C's history first (also batched), then all three together.
    RunChunk(*r.runner, {tc.begin(), tc.begin() + 6}, 0, table_c, Logits::kNone, 2);
    RunChunk(*r.runner, {tb[0], tb[1]}, 0, table_b, Logits::kNone, 1);
    std::vector<int32_t> b_rest(tb.begin() + 2, tb.end()), c_last = {tc[6]};
    ForwardBatch batch;
    batch.seqs.resize(3);
    batch.seqs[0] = {0, ta, 0, table_a, Logits::kAll};
    batch.seqs[1] = {1, b_rest, 2, table_b, Logits::kLast};
    batch.seqs[2] = {2, c_last, 6, table_c, Logits::kLast};
    ForwardResult out;
    REQUIRE(r.runner->Forward(batch, &out).ok());
    REQUIRE(out.vocab_size == V);
    REQUIRE(out.row_begin == std::vector<int32_t>{0, 9, 10, 11});
    REQUIRE(out.logits.size() == 11u * V);
    REQUIRE(MaxAbsDiff(out.row(0), alone_a.data(), 9 * V) < 1e-4f);
    REQUIRE(MaxAbsDiff(out.row(9), alone_b.data(), V) < 1e-4f);
    REQUIRE(MaxAbsDiff(out.row(10), alone_c.data(), V) < 1e-4f);
  }
}

TEST_CASE("Where a sequence's blocks lie in the cache does not change its logits", "[cpu_runner]") {
  TestModelSpec spec;
  spec.arch = Architecture::kQwen2Moe;
  spec.shared_expert_intermediate_size = 16;
  TestRunner r = MakeTestRunner(spec, /*block_size=*/2, /*num_blocks=*/32);
  auto tokens = RandomTokens(11, r.config.vocab_size, 5);
  auto contiguous = RunChunk(*r.runner, tokens, 0, Iota(6, 0), Logits::kAll);
  auto permuted = RunChunk(*r.runner, tokens, 0, {31, 7, 22, 8, 13, 6}, Logits::kAll, 1);
  REQUIRE(contiguous == permuted);
  // Decoding further on both gives identical results too.
  auto d1 = RunChunk(*r.runner, {3}, 11, Iota(6, 0), Logits::kLast);
  auto d2 = RunChunk(*r.runner, {3}, 11, {31, 7, 22, 8, 13, 6}, Logits::kLast, 1);
  REQUIRE(d1 == d2);
}

TEST_CASE("The thread count does not change the logits", "[cpu_runner]") {
  TestModelSpec spec;
  spec.arch = Architecture::kOlmoe;
  spec.hidden_size = 48;
  TestRunner r1 = MakeTestRunner(spec, 4, 16, /*threads=*/1);
  TestRunner r4 = MakeTestRunner(spec, 4, 16, /*threads=*/4);
  auto tokens = RandomTokens(10, r1.config.vocab_size, 9);
  REQUIRE(RunChunk(*r1.runner, tokens, 0, Iota(3, 0), Logits::kAll) ==
          RunChunk(*r4.runner, tokens, 0, Iota(3, 0), Logits::kAll));
}

TEST_CASE("Malformed batches fail with clear errors and leave the cache alone", "[cpu_runner]") {
  TestModelSpec spec;
  spec.max_position_embeddings = 32;
  TestRunner r = MakeTestRunner(spec, /*block_size=*/4, /*num_blocks=*/8);
  const int V = r.config.vocab_size;
  auto tokens = RandomTokens(6, V, 4);
  std::vector<int32_t> table = {2, 5};
  RunChunk(*r.runner, {tokens.begin(), tokens.begin() + 5}, 0, table, Logits::kNone);
  auto expected = RunChunk(*r.runner, {tokens[5]}, 5, table, Logits::kLast);

  auto expect_error = [&](ForwardBatch batch, const std::string& needle) {
    ForwardResult out;
    absl::Status s = r.runner->Forward(batch, &out);
    INFO(s.ToString());
    REQUIRE(s.code() == absl::StatusCode::kInvalidArgument);
    REQUIRE(std::string(s.message()).find(needle) != std::string::npos);
  };
  std::vector<int32_t> bad_token = {tokens[5], V};
  std::vector<int32_t> neg_token = {-1};
  std::vector<int32_t> ok_tokens = {tokens[5], 1, 2, 3};
  std::vector<int32_t> short_table = {2};
  std::vector<int32_t> bad_block = {2, 8};
  std::vector<int32_t> neg_block = {-3, 5};
  std::vector<int32_t> long_table = Iota(9, 0);
  std::vector<int32_t> empty;
  std::vector<int32_t> one = {1};
  expect_error({{{0, bad_token, 5, table, Logits::kLast}}}, "outside the vocabulary");
  expect_error({{{0, neg_token, 5, table, Logits::kLast}}}, "token id -1");
  expect_error({{{0, ok_tokens, 5, short_table, Logits::kLast}}}, "block_table has 1 blocks");
  expect_error({{{0, one, 5, bad_block, Logits::kLast}}}, "block_table[1] = 8");
  expect_error({{{0, one, 5, neg_block, Logits::kLast}}}, "block_table[0] = -3");
  expect_error({{{0, one, 32, long_table, Logits::kLast}}}, "max_position_embeddings");
  expect_error({{{0, empty, 5, table, Logits::kLast}}}, "tokens is empty");
  expect_error({{{0, one, -1, table, Logits::kLast}}}, "negative");
  // A bad entry after a good one: nothing runs, so the good one's blocks stay unwritten.
  std::vector<int32_t> other_table = {7, 5};
  expect_error({{{0, one, 5, table, Logits::kLast}, {0, one, 0, {6}, Logits::kLast}}},
               "seq_id appears more than once");
  expect_error({{{0, one, 5, table, Logits::kLast}, {1, one, 4, other_table, Logits::kLast}}},
               "writes KV block 5");
  // The cache still holds exactly the first 5 positions.
  auto again = RunChunk(*r.runner, {tokens[5]}, 5, table, Logits::kLast);
  REQUIRE(again == expected);
}

TEST_CASE("A checkpoint with a wrong-shaped tensor fails to load, naming it", "[cpu_runner]") {
  TestModelSpec spec;
  const std::string bad = "model.layers.1.block_sparse_moe.gate.weight";
  spec.shape_overrides[bad] = {spec.num_experts + 1, spec.hidden_size};
  std::string dir = MakeTempDir("badrunner");
  REQUIRE(WriteTestModel(dir, spec).ok());
  auto cfg = LoadModelConfig(dir);
  REQUIRE(cfg.ok());
  auto ck = Checkpoint::Open(dir);
  REQUIRE(ck.ok());
  auto runner = CreateCpuRunner(**ck, *cfg, RunnerOptions{});
  REQUIRE_FALSE(runner.ok());
  INFO(runner.status().ToString());
  REQUIRE(std::string(runner.status().message()).find(bad) != std::string::npos);
}

TEST_CASE("The KV cache size derives from kv_cache_bytes", "[cpu_runner]") {
  TestModelSpec spec;
  std::string dir = MakeTempDir("kvbytes");
  REQUIRE(WriteTestModel(dir, spec).ok());
  auto cfg = LoadModelConfig(dir);
  auto ck = Checkpoint::Open(dir);
  REQUIRE((cfg.ok() && ck.ok()));
  RunnerOptions opts;
  opts.kv_block_size = 16;
  // One block: 2 layers * (K + V) * 16 positions * 16 floats * 4 bytes = 4096 bytes.
  opts.kv_cache_bytes = 10 * 4096 + 100;
  auto runner = CreateCpuRunner(**ck, *cfg, opts);
  REQUIRE(runner.ok());
  REQUIRE((*runner)->num_kv_blocks() == 10);
  REQUIRE((*runner)->kv_block_size() == 16);
  REQUIRE((*runner)->device_name() == "cpu");
  opts.kv_cache_bytes = 100;
  REQUIRE_FALSE(CreateCpuRunner(**ck, *cfg, opts).ok());
}

}  // namespace
}  // namespace moe::engine

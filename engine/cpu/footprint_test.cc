// Expert footprints of the CPU runner (expert-aware batching, model_runner.h) on the
// trained checkpoints: Forward's per-sequence footprints and, for the decoupled-router
// checkpoint, TokenFootprint, which must name exactly the experts a decode of that token
// then uses.
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/cpu/cpu_runner.h"
#include "engine/cpu/runner_test_util.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/model_runner.h"

namespace moe::engine {
namespace {

constexpr int kBlockSize = 16;

struct Loaded {
  ModelConfig config;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<ModelRunner> runner;
};

Loaded Load(const std::string& dir) {
  Loaded l;
  auto cfg = LoadModelConfig(dir);
  INFO(cfg.status().ToString());
  REQUIRE(cfg.ok());
  l.config = *cfg;
  auto ck = Checkpoint::Open(dir);
  INFO(ck.status().ToString());
  REQUIRE(ck.ok());
  l.ckpt = *std::move(ck);
  RunnerOptions o;
  o.kv_block_size = kBlockSize;
  o.num_kv_blocks = 32;
  o.num_threads = 2;
  auto r = CreateCpuRunner(*l.ckpt, l.config, o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  l.runner = *std::move(r);
  return l;
}

// Bits set in MoE layer m's slice of `bits`.
int LayerCount(const std::vector<uint64_t>& bits, int m, int num_experts) {
  int n = 0;
  for (int e = 0; e < num_experts; ++e) {
    const int key = m * num_experts + e;
    n += (bits[key / 64] >> (key % 64)) & 1;
  }
  return n;
}

// One step over `chunks` (seq_id, tokens, start_pos); sequence i owns blocks
// [4i, 4i + 4).
ForwardResult Step(ModelRunner& runner, const std::vector<std::vector<int32_t>>& tokens,
                   const std::vector<int32_t>& start_pos, bool want_footprints) {
  std::vector<std::vector<int32_t>> tables(tokens.size());
  ForwardBatch batch;
  batch.want_footprints = want_footprints;
  for (size_t i = 0; i < tokens.size(); ++i) {
    tables[i] = testing::Iota(4, static_cast<int32_t>(4 * i));
    SequenceChunk c;
    c.seq_id = static_cast<int64_t>(i);
    c.tokens = tokens[i];
    c.start_pos = start_pos[i];
    c.block_table = tables[i];
    batch.seqs.push_back(c);
  }
  ForwardResult out;
  absl::Status s = runner.Forward(batch, &out);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

TEST_CASE("router model: TokenFootprint is the footprint a decode of that token reports") {
  Loaded m = Load("tests/data/models/trained/router");
  ModelRunner& r = *m.runner;
  const int E = m.config.num_experts, k = m.config.num_experts_per_tok;
  const int layers = m.config.num_layers;  // every layer of this model is MoE
  REQUIRE(r.expert_footprint_keys() == layers * E);
  CHECK(r.expert_cache_slots() == 0);  // the CPU runner keeps every expert resident

  int distinct = 0;
  std::vector<uint64_t> first;
  for (int32_t token : {3, 57, 401, 1234, 4095}) {
    for (int pos : {0, 5, 21}) {
      INFO("token " << token << " at position " << pos);
      // A prompt of `pos` tokens, then a one-token decode of `token` at position pos,
      // batched with another sequence's decode (footprints are per sequence).
      if (pos > 0) Step(r, {testing::RandomTokens(pos, m.config.vocab_size, token)}, {0}, false);
      ForwardResult out = Step(r, {{token}, {17}}, {pos, 0}, true);
      REQUIRE(out.footprints.size() == 2);
      const ExpertFootprint& got = out.footprints[0];
      ExpertFootprint want;
      REQUIRE(r.TokenFootprint(token, &want));
      CHECK(want.exact);
      CHECK(got.bits == want.bits);
      for (int l = 0; l < layers; ++l) CHECK(LayerCount(got.bits, l, E) == k);
      // Cached: the same answer again.
      ExpertFootprint again;
      REQUIRE(r.TokenFootprint(token, &again));
      CHECK(again.bits == want.bits);
      if (first.empty()) first = want.bits;
      distinct += want.bits != first;
    }
  }
  CHECK(distinct > 0);  // the footprint depends on the token

  ExpertFootprint none;
  CHECK_FALSE(r.TokenFootprint(-1, &none));
  CHECK_FALSE(r.TokenFootprint(m.config.vocab_size, &none));
}

TEST_CASE("standard model: no token footprint, Forward reports the experts each chunk used") {
  Loaded m = Load("tests/data/models/trained/standard");
  ModelRunner& r = *m.runner;
  const int E = m.config.num_experts, k = m.config.num_experts_per_tok;
  const int layers = m.config.num_layers;
  REQUIRE(r.expert_footprint_keys() == layers * E);
  ExpertFootprint fp;
  CHECK_FALSE(r.TokenFootprint(42, &fp));

  // A 12-token prefill of sequence 0 and a one-token chunk of sequence 1, together.
  const std::vector<int32_t> prompt = testing::RandomTokens(12, m.config.vocab_size, 7);
  ForwardResult out = Step(r, {prompt, {99}}, {0, 0}, true);
  REQUIRE(out.footprints.size() == 2);
  REQUIRE(out.footprints[1].bits.size() == static_cast<size_t>((layers * E + 63) / 64));
  CHECK_FALSE(out.footprints[1].exact);
  for (int l = 0; l < layers; ++l) {
    INFO("MoE layer " << l);
    CHECK(LayerCount(out.footprints[1].bits, l, E) == k);
    const int n = LayerCount(out.footprints[0].bits, l, E);
    CHECK(n >= k);
    CHECK(n <= E);
  }
  // The one-token footprint is that token's routing in the step.
  const RoutingRecord* rec = AsCpuRunner(&r)->last_routing();
  REQUIRE(rec != nullptr);
  for (int l = 0; l < layers; ++l) {
    for (int32_t e : rec->Experts(l, 12)) {
      const int key = l * E + e;
      CHECK(((out.footprints[1].bits[key / 64] >> (key % 64)) & 1) == 1);
    }
  }
}

TEST_CASE("without want_footprints the result carries no footprints") {
  Loaded m = Load("tests/data/models/trained/standard");
  ForwardResult out = Step(*m.runner, {{5, 6, 7}, {8}}, {0, 0}, false);
  CHECK(out.footprints.empty());
  CHECK(out.row_begin.size() == 3);
}

}  // namespace
}  // namespace moe::engine

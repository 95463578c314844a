// The in-memory synthetic model against the checkpoint WriteSyntheticModel writes for the
// same spec: identical tensors (when every expert has its own buffer), binds with the
// model registry, the CPU runner gives the same logits; expert buffers alias as documented.
#include "tools/synthetic/in_memory_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/cpu/cpu_runner.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/registry.h"
#include "tools/synthetic/synthetic_model.h"
#include "tools/synthetic/tensor_plan.h"
#include "tools/synthetic/test_dir.h"

namespace moe::tools {
namespace {

using Catch::Matchers::Contains;
using engine::Checkpoint;
using engine::TensorView;

SyntheticSpec Tiny(Family f, Routing r) {
  auto spec = SpecFromProfileJson(*BuiltinProfileJson("tiny"), "tiny", f);
  REQUIRE(spec.ok());
  spec->routing = r;
  spec->seed = 7;
  return *spec;
}

SyntheticSpec Builtin(const char* name) {
  auto spec = SpecFromProfileJson(*BuiltinProfileJson(name), name, std::nullopt);
  REQUIRE(spec.ok());
  return *spec;
}

std::string ExpertTensorName(const SyntheticSpec& s, int layer, int expert) {
  return s.family == Family::kMixtral
             ? "model.layers." + std::to_string(layer) + ".block_sparse_moe.experts." +
                   std::to_string(expert) + ".w1.weight"
             : "model.layers." + std::to_string(layer) + ".mlp.experts." +
                   std::to_string(expert) + ".gate_proj.weight";
}

bool SameBytes(const TensorView& a, const TensorView& b) {
  return a.nbytes == b.nbytes && std::memcmp(a.data, b.data, a.nbytes) == 0;
}

TEST_CASE("with a buffer per expert, every tensor equals the written checkpoint's") {
  for (Family f : {Family::kMixtral, Family::kQwen2Moe, Family::kQwen3Moe, Family::kOlmoe}) {
    for (Routing r : {Routing::kStandard, Routing::kPregated, Routing::kRouter}) {
      INFO(FamilyName(f) << " " << RoutingName(r));
      const SyntheticSpec spec = Tiny(f, r);
      testing::TestDir dir;
      REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
      auto disk = Checkpoint::Open(dir.path());
      REQUIRE(disk.ok());

      auto mem = BuildInMemoryModel(spec, /*distinct_experts=*/1000, /*threads=*/3);
      INFO(mem.status().ToString());
      REQUIRE(mem.ok());
      const Checkpoint& ck = (*mem)->checkpoint();
      REQUIRE(ck.TensorNames() == (*disk)->TensorNames());
      for (const std::string& name : ck.TensorNames()) {
        INFO(name);
        const TensorView* a = ck.Find(name);
        const TensorView* b = (*disk)->Find(name);
        CHECK(a->shape == b->shape);
        CHECK(a->dtype == b->dtype);
        CHECK(SameBytes(*a, *b));
      }
      CHECK((*mem)->virtual_bytes() == (*disk)->TotalBytes());
      CHECK(ck.TotalBytes() == (*disk)->TotalBytes());
      CHECK((*mem)->distinct_experts() == (*mem)->num_experts_total());
      CHECK((*mem)->num_experts_total() == spec.num_layers * spec.num_experts);

      auto disk_config = engine::LoadModelConfig(dir.path());
      REQUIRE(disk_config.ok());
      CHECK((*mem)->config().arch == disk_config->arch);
      CHECK((*mem)->config().num_layers == disk_config->num_layers);
      CHECK((*mem)->config().num_experts == disk_config->num_experts);
      CHECK((*mem)->config().eos_token_ids == disk_config->eos_token_ids);

      auto bound = engine::BindDecoderWeights(ck, (*mem)->config());
      INFO(bound.status().ToString());
      CHECK(bound.ok());
    }
  }
}

TEST_CASE("with fewer distinct experts, expert tensors share buffers and memory shrinks") {
  for (Family f : {Family::kMixtral, Family::kQwen3Moe}) {
    INFO(FamilyName(f));
    const SyntheticSpec spec = Tiny(f, Routing::kStandard);
    auto full = BuildInMemoryModel(spec, 1000, 2);
    auto two = BuildInMemoryModel(spec, 2, 2);
    REQUIRE(full.ok());
    REQUIRE(two.ok());
    CHECK((*two)->distinct_experts() == 2);
    CHECK((*two)->virtual_bytes() == (*full)->virtual_bytes());
    CHECK((*two)->resident_bytes() < (*full)->resident_bytes());
    const uint64_t expert = 3ull * spec.hidden_size * spec.moe_intermediate_size * 2;  // bf16
    CHECK((*full)->resident_bytes() - (*two)->resident_bytes() ==
          expert * (spec.num_layers * spec.num_experts - 2));

    const Checkpoint& ck = (*two)->checkpoint();
    auto data = [&](int layer, int e) {
      const TensorView* t = ck.Find(ExpertTensorName(spec, layer, e));
      REQUIRE(t != nullptr);
      return t->data;
    };
    CHECK(data(0, 0) == data(0, 2));
    CHECK(data(0, 1) == data(0, 3));
    CHECK(data(0, 0) != data(0, 1));
    // Numbering runs across layers: expert 8 of the model is layer 1's expert 0.
    CHECK(data(1, 0) == data(0, 0));
    // Buffer 1 holds expert 1's own values; dense tensors are untouched by the sharing.
    const Checkpoint& fck = (*full)->checkpoint();
    CHECK(SameBytes(*ck.Find(ExpertTensorName(spec, 0, 1)), *fck.Find(ExpertTensorName(spec, 0, 1))));
    CHECK_FALSE(SameBytes(*ck.Find(ExpertTensorName(spec, 0, 3)), *fck.Find(ExpertTensorName(spec, 0, 3))));
    for (const char* dense : {"model.embed_tokens.weight", "lm_head.weight",
                              "model.layers.1.self_attn.q_proj.weight"}) {
      INFO(dense);
      CHECK(SameBytes(*ck.Find(dense), *fck.Find(dense)));
    }
    // Still binds: only values repeat.
    CHECK(engine::BindDecoderWeights(ck, (*two)->config()).ok());
  }
}

TEST_CASE("the CPU runner gives the in-memory model the on-disk model's logits") {
  for (Routing r : {Routing::kStandard, Routing::kRouter}) {
    INFO(RoutingName(r));
    const SyntheticSpec spec = Tiny(Family::kQwen3Moe, r);
    testing::TestDir dir;
    REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
    auto disk = Checkpoint::Open(dir.path());
    auto disk_config = engine::LoadModelConfig(dir.path());
    REQUIRE(disk.ok());
    REQUIRE(disk_config.ok());
    auto mem = BuildInMemoryModel(spec, 1000, 2);
    REQUIRE(mem.ok());

    engine::RunnerOptions opts;
    opts.kv_block_size = 4;
    opts.num_kv_blocks = 8;
    opts.num_threads = 1;
    auto logits = [&](const Checkpoint& ck, const engine::ModelConfig& config) {
      auto runner = engine::CreateCpuRunner(ck, config, opts);
      INFO(runner.status().ToString());
      REQUIRE(runner.ok());
      const std::vector<int32_t> tokens = {5, 17, 300, 42, 9, 111};
      const std::vector<int32_t> table = {0, 1};
      engine::ForwardBatch batch;
      engine::SequenceChunk c;
      c.tokens = tokens;
      c.block_table = table;
      c.logits = engine::SequenceChunk::Logits::kLast;
      batch.seqs.push_back(c);
      engine::ForwardResult out;
      auto st = (*runner)->Forward(batch, &out);
      INFO(st.ToString());
      REQUIRE(st.ok());
      REQUIRE(out.logits.size() == static_cast<size_t>(spec.vocab_size));
      return out.logits;
    };
    const std::vector<float> a = logits((*mem)->checkpoint(), (*mem)->config());
    const std::vector<float> b = logits(**disk, *disk_config);
    CHECK(a == b);
    // Not trivially equal: the logits vary across the vocabulary.
    CHECK(*std::max_element(a.begin(), a.end()) > *std::min_element(a.begin(), a.end()));
  }
}

TEST_CASE("footprints of the offload benchmark's shapes: dense weights + distinct experts") {
  struct Case {
    const char* profile;
    int distinct;
  };
  for (const Case& c : {Case{"mixtral-8x7b", 16}, Case{"mixtral-8x7b", 8},
                        Case{"qwen3-30b-a3b", 16}}) {
    const SyntheticSpec spec = Builtin(c.profile);
    const InMemoryFootprint fp = PlanInMemoryFootprint(spec, c.distinct);
    const uint64_t expert = 3ull * spec.hidden_size * spec.moe_intermediate_size * 2;
    int moe_layers = 0;
    for (int l = 0; l < spec.num_layers; ++l) moe_layers += spec.IsMoeLayer(l);
    CHECK(fp.num_experts_total == moe_layers * spec.num_experts);
    CHECK(fp.virtual_bytes == static_cast<uint64_t>(ParameterCount(spec)) * 2);
    const uint64_t dense = fp.virtual_bytes - expert * fp.num_experts_total;
    // Each dense tensor is 256-byte aligned: at most 255 bytes of padding per tensor.
    CHECK(fp.resident_bytes >= dense + expert * c.distinct);
    CHECK(fp.resident_bytes <= dense + expert * c.distinct + 255 * PlanTensors(spec).size());
    std::printf("%s, %d distinct experts: resident %.2f GiB (dense %.2f GiB + %d x %.1f MiB), "
                "virtual %.2f GiB\n",
                c.profile, c.distinct, fp.resident_bytes / double(1 << 30),
                dense / double(1 << 30), c.distinct, expert / double(1 << 20),
                fp.virtual_bytes / double(1 << 30));
  }
  // Mixtral-8x7B at 8 distinct experts stays well under 8 GB resident.
  CHECK(PlanInMemoryFootprint(Builtin("mixtral-8x7b"), 8).resident_bytes < 7e9);
}

TEST_CASE("bad arguments are refused, naming them") {
  const SyntheticSpec spec = Tiny(Family::kOlmoe, Routing::kStandard);
  auto zero = BuildInMemoryModel(spec, 0, 1);
  REQUIRE_FALSE(zero.ok());
  CHECK_THAT(std::string(zero.status().message()), Contains("distinct_experts"));
  SyntheticSpec bad = spec;
  bad.num_heads = 0;
  CHECK_FALSE(BuildInMemoryModel(bad, 4, 1).ok());
}

TEST_CASE("the metadata directory holds config.json while the model lives") {
  std::string meta;
  {
    auto mem = BuildInMemoryModel(Tiny(Family::kOlmoe, Routing::kPregated), 3, 1);
    REQUIRE(mem.ok());
    meta = (*mem)->meta_dir();
    CHECK((*mem)->checkpoint().dir() == meta);
    CHECK_THAT(testing::ReadFileBytes(meta + "/config.json"), Contains("moe_serve_routing"));
    CHECK_FALSE(testing::ReadFileBytes(meta + "/tokenizer.json").empty());
  }
  CHECK(testing::ReadFileBytes(meta + "/config.json").empty());  // removed with the model
}

}  // namespace
}  // namespace moe::tools

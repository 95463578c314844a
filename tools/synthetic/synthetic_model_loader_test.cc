// Round trip: synthetic checkpoints written by WriteSyntheticModel, read back by the
// engine's loader (//engine/loader:checkpoint and :model_config).
#include <string>

#include <catch2/catch.hpp>

#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "tools/synthetic/synthetic_model.h"
#include "tools/synthetic/tensor_plan.h"
#include "tools/synthetic/test_dir.h"

namespace moe::tools {
namespace {

using engine::Architecture;
using engine::Checkpoint;

SyntheticSpec Tiny(Family f) {
  auto spec = SpecFromProfileJson(*BuiltinProfileJson("tiny"), "tiny", f);
  REQUIRE(spec.ok());
  return *spec;
}

Architecture ArchOf(Family f) {
  switch (f) {
    case Family::kMixtral: return Architecture::kMixtral;
    case Family::kQwen2Moe: return Architecture::kQwen2Moe;
    case Family::kQwen3Moe: return Architecture::kQwen3Moe;
    case Family::kOlmoe: return Architecture::kOlmoe;
  }
  return Architecture::kMixtral;
}

void CheckAllTensorsLoad(const SyntheticSpec& spec, const std::string& dir) {
  auto ckpt = Checkpoint::Open(dir);
  INFO(ckpt.status().message());
  REQUIRE(ckpt.ok());
  const auto plan = PlanTensors(spec);
  CHECK((*ckpt)->TensorNames().size() == plan.size());
  size_t total = 0;
  for (const auto& t : plan) {
    auto view = (*ckpt)->Get(t.name, t.shape);
    INFO(t.name << ": " << view.status().message());
    REQUIRE(view.ok());
    CHECK((*view)->dtype == spec.dtype);
    total += (*view)->nbytes;
  }
  CHECK((*ckpt)->TotalBytes() == total);
}

TEST_CASE("every family's tiny model opens with the loader, all tensors as planned") {
  for (Family f : {Family::kMixtral, Family::kQwen2Moe, Family::kQwen3Moe, Family::kOlmoe}) {
    for (ConfigStyle style : {ConfigStyle::kHf5, ConfigStyle::kHf4}) {
      INFO(FamilyName(f) << (style == ConfigStyle::kHf5 ? " hf5" : " hf4"));
      testing::TestDir dir;
      SyntheticSpec spec = Tiny(f);
      spec.config_style = style;
      REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
      CheckAllTensorsLoad(spec, dir.path());

      auto cfg = engine::LoadModelConfig(dir.path());
      INFO(cfg.status().message());
      REQUIRE(cfg.ok());
      CHECK(cfg->arch == ArchOf(f));
      CHECK(cfg->vocab_size == spec.vocab_size);
      CHECK(cfg->hidden_size == spec.hidden_size);
      CHECK(cfg->num_layers == spec.num_layers);
      CHECK(cfg->num_heads == spec.num_heads);
      CHECK(cfg->num_kv_heads == spec.num_kv_heads);
      CHECK(cfg->head_dim == spec.head_dim);
      CHECK(cfg->num_experts == spec.num_experts);
      CHECK(cfg->num_experts_per_tok == spec.num_experts_per_tok);
      CHECK(cfg->moe_intermediate_size == spec.moe_intermediate_size);
      CHECK(cfg->rope_theta == spec.rope_theta);
      CHECK(cfg->rms_norm_eps == Approx(spec.rms_norm_eps));
      CHECK(cfg->max_position_embeddings == spec.max_position_embeddings);
      CHECK_FALSE(cfg->tie_word_embeddings);
      REQUIRE_FALSE(cfg->eos_token_ids.empty());
      CHECK(cfg->eos_token_ids[0] < spec.vocab_size);
      for (int l = 0; l < spec.num_layers; ++l) CHECK(cfg->IsMoeLayer(l));
      CHECK(cfg->attention_bias == (f == Family::kQwen2Moe));
      CHECK(cfg->shared_expert_intermediate_size ==
            (f == Family::kQwen2Moe ? spec.shared_expert_intermediate_size : 0));
      CHECK(cfg->qk_norm == (f == Family::kQwen3Moe ? engine::QkNorm::kPerHead
                             : f == Family::kOlmoe  ? engine::QkNorm::kWholeProjection
                                                    : engine::QkNorm::kNone));
      if (f != Family::kMixtral) CHECK(cfg->norm_topk_prob == spec.norm_topk_prob);
    }
  }
}

TEST_CASE("a sharded synthetic checkpoint opens with the loader") {
  testing::TestDir dir;
  SyntheticSpec spec = Tiny(Family::kQwen3Moe);
  spec.shard_size_bytes = 128 * 1024;
  spec.dtype = DType::kF32;
  REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
  REQUIRE(PlanShards(spec).size() > 4);
  CheckAllTensorsLoad(spec, dir.path());
}

TEST_CASE("Qwen dense layers (mlp_only_layers) load as dense") {
  testing::TestDir dir;
  SyntheticSpec spec = Tiny(Family::kQwen2Moe);
  spec.num_layers = 3;
  spec.mlp_only_layers = {1};
  REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
  CheckAllTensorsLoad(spec, dir.path());
  auto ckpt = Checkpoint::Open(dir.path());
  REQUIRE(ckpt.ok());
  CHECK((*ckpt)->Get("model.layers.1.mlp.gate_proj.weight", {256, 64}).ok());
  CHECK((*ckpt)->Find("model.layers.1.mlp.gate.weight") == nullptr);
  auto cfg = engine::LoadModelConfig(dir.path());
  REQUIRE(cfg.ok());
  CHECK(cfg->IsMoeLayer(0));
  CHECK_FALSE(cfg->IsMoeLayer(1));
  CHECK(cfg->IsMoeLayer(2));
  CHECK(cfg->intermediate_size == 256);
}

}  // namespace
}  // namespace moe::tools

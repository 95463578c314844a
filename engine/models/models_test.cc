#include <string>

#include <catch2/catch.hpp>

#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "engine/models/registry.h"
#include "engine/models/test_model.h"

namespace moe::engine {
namespace {

using testing::TestModelSpec;

struct Bound {
  std::unique_ptr<Checkpoint> ckpt;
  ModelConfig config;
  testing::TestModelTensors tensors;
  absl::StatusOr<DecoderWeights> weights = absl::UnknownError("unset");
};

Bound WriteAndBind(const TestModelSpec& spec, const std::string& name) {
  Bound b;
  std::string dir = testing::MakeTempDir(name);
  auto t = testing::WriteTestModel(dir, spec);
  REQUIRE(t.ok());
  b.tensors = *std::move(t);
  auto cfg = LoadModelConfig(dir);
  INFO(cfg.status().ToString());
  REQUIRE(cfg.ok());
  b.config = *cfg;
  auto ck = Checkpoint::Open(dir);
  INFO(ck.status().ToString());
  REQUIRE(ck.ok());
  b.ckpt = *std::move(ck);
  b.weights = BindDecoderWeights(*b.ckpt, b.config);
  return b;
}

// The fp32 values a WeightRef points at.
std::vector<float> Read(const WeightRef& w) {
  std::vector<float> v(w.numel());
  for (int64_t i = 0; i < w.numel(); ++i) v[i] = LoadAsF32(w.data, w.dtype, i);
  return v;
}

std::vector<float> Rows(const std::vector<float>& all, int64_t row0, int64_t rows, int64_t cols) {
  return std::vector<float>(all.begin() + row0 * cols, all.begin() + (row0 + rows) * cols);
}

TEST_CASE("Every family binds its Hugging Face tensor names", "[models]") {
  for (Architecture arch : {Architecture::kMixtral, Architecture::kQwen2Moe, Architecture::kQwen3Moe,
                            Architecture::kOlmoe}) {
    TestModelSpec spec;
    spec.arch = arch;
    spec.num_layers = 3;
    if (arch == Architecture::kQwen2Moe) {
      spec.shared_expert_intermediate_size = 16;
      spec.mlp_only_layers = {1};
    }
    if (arch == Architecture::kQwen3Moe) spec.decoder_sparse_step = 2;  // layers 1 sparse only
    if (arch == Architecture::kOlmoe) spec.clip_qkv = 4.0f;
    Bound b = WriteAndBind(spec, "bind");
    INFO(ArchitectureName(arch) << ": " << b.weights.status().ToString());
    REQUIRE(b.weights.ok());
    const DecoderWeights& w = *b.weights;
    REQUIRE(w.layers.size() == 3);
    REQUIRE(w.lm_head.data != w.embed_tokens.data);
    REQUIRE(Read(w.lm_head) == b.tensors.values.at("lm_head.weight"));
    for (int l = 0; l < 3; ++l) {
      const LayerWeights& layer = w.layers[l];
      REQUIRE(layer.is_moe == b.config.IsMoeLayer(l));
      REQUIRE(layer.q_bias.present() == (arch == Architecture::kQwen2Moe));
      if (layer.is_moe) {
        REQUIRE(layer.experts.size() == 4);
        REQUIRE(layer.router.rows == 4);
        REQUIRE(layer.shared_expert.present() == (arch == Architecture::kQwen2Moe));
      } else {
        REQUIRE(layer.dense_mlp.gate.rows == spec.intermediate_size);
      }
    }
    if (arch == Architecture::kQwen2Moe) REQUIRE_FALSE(w.layers[1].is_moe);
    if (arch == Architecture::kQwen3Moe) {
      REQUIRE_FALSE(w.layers[0].is_moe);
      REQUIRE(w.layers[1].is_moe);
    }
    REQUIRE(w.router_renormalize == (arch == Architecture::kMixtral));
    REQUIRE(w.qk_norm == (arch == Architecture::kQwen3Moe ? QkNorm::kPerHead
                          : arch == Architecture::kOlmoe  ? QkNorm::kWholeProjection
                                                          : QkNorm::kNone));
    REQUIRE(w.clip_qkv.has_value() == (arch == Architecture::kOlmoe));
    REQUIRE_FALSE(w.expert_layout_fused);
  }
}

TEST_CASE("Mixtral's w1/w3/w2 are gate/up/down", "[models]") {
  TestModelSpec spec;
  Bound b = WriteAndBind(spec, "mixtral");
  REQUIRE(b.weights.ok());
  const FfnWeights& e = b.weights->layers[1].experts[3];
  const std::string p = "model.layers.1.block_sparse_moe.experts.3.";
  REQUIRE(Read(e.gate) == b.tensors.values.at(p + "w1.weight"));
  REQUIRE(Read(e.up) == b.tensors.values.at(p + "w3.weight"));
  REQUIRE(Read(e.down) == b.tensors.values.at(p + "w2.weight"));
}

TEST_CASE("Fused expert tensors are sliced per expert: gate rows first, then up", "[models]") {
  for (Architecture arch : {Architecture::kMixtral, Architecture::kQwen3Moe, Architecture::kOlmoe}) {
    TestModelSpec spec;
    spec.arch = arch;
    spec.fused_experts = true;
    Bound b = WriteAndBind(spec, "fused");
    INFO(b.weights.status().ToString());
    REQUIRE(b.weights.ok());
    REQUIRE(b.weights->expert_layout_fused);
    const int64_t I = spec.moe_intermediate_size, H = spec.hidden_size;
    const std::string p = arch == Architecture::kMixtral ? "model.layers.0.block_sparse_moe.experts."
                                                         : "model.layers.0.mlp.experts.";
    const auto& gate_up = b.tensors.values.at(p + "gate_up_proj");
    const auto& down = b.tensors.values.at(p + "down_proj");
    for (int j = 0; j < spec.num_experts; ++j) {
      const FfnWeights& e = b.weights->layers[0].experts[j];
      REQUIRE(e.gate.rows == I);
      REQUIRE(e.down.rows == H);
      REQUIRE(e.down.cols == I);
      REQUIRE(Read(e.gate) == Rows(gate_up, j * 2 * I, I, H));
      REQUIRE(Read(e.up) == Rows(gate_up, j * 2 * I + I, I, H));
      REQUIRE(Read(e.down) == Rows(down, j * H, H, I));
    }
  }
}

TEST_CASE("Tied embeddings reuse embed_tokens as lm_head", "[models]") {
  TestModelSpec spec;
  spec.arch = Architecture::kQwen3Moe;
  spec.tie_word_embeddings = true;
  Bound b = WriteAndBind(spec, "tied");
  REQUIRE(b.weights.ok());
  REQUIRE(b.weights->lm_head.data == b.weights->embed_tokens.data);
}

TEST_CASE("A wrong-shaped tensor fails binding, naming it and both shapes", "[models]") {
  TestModelSpec spec;
  spec.arch = Architecture::kOlmoe;
  const std::string bad = "model.layers.1.self_attn.k_norm.weight";
  spec.shape_overrides[bad] = {spec.num_heads * spec.head_dim};  // q's size, not k's
  Bound b = WriteAndBind(spec, "badshape");
  REQUIRE_FALSE(b.weights.ok());
  const std::string msg(b.weights.status().message());
  INFO(msg);
  REQUIRE(msg.find(bad) != std::string::npos);
  REQUIRE(msg.find("32") != std::string::npos);  // actual
  REQUIRE(msg.find("16") != std::string::npos);  // expected

  TestModelSpec spec2;
  spec2.arch = Architecture::kQwen2Moe;
  spec2.shared_expert_intermediate_size = 16;
  const std::string bad2 = "model.layers.0.mlp.experts.2.down_proj.weight";
  spec2.shape_overrides[bad2] = {spec2.moe_intermediate_size, spec2.hidden_size};  // transposed
  Bound b2 = WriteAndBind(spec2, "badshape2");
  REQUIRE_FALSE(b2.weights.ok());
  INFO(b2.weights.status().ToString());
  REQUIRE(std::string(b2.weights.status().message()).find(bad2) != std::string::npos);
}

TEST_CASE("A missing tensor fails binding, naming it", "[models]") {
  TestModelSpec spec;
  spec.arch = Architecture::kQwen3Moe;
  spec.tie_word_embeddings = true;
  Bound b = WriteAndBind(spec, "missing");
  REQUIRE(b.weights.ok());
  // Bind against a config with more layers than the checkpoint holds.
  ModelConfig bigger = b.config;
  bigger.num_layers = 3;
  auto w = BindDecoderWeights(*b.ckpt, bigger);
  REQUIRE_FALSE(w.ok());
  INFO(w.status().ToString());
  REQUIRE(std::string(w.status().message()).find("model.layers.2.") != std::string::npos);
}

}  // namespace
}  // namespace moe::engine

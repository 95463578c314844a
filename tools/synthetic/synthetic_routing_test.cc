// --routing standard|pregated|router: what the writer emits round-trips through the
// engine's routing-format parser and binder (//engine/experts:routing_format), and a
// router checkpoint drives the decoupled-router predictor.
#include <string>

#include <catch2/catch.hpp>

#include "engine/experts/predictor.h"
#include "engine/experts/routing_format.h"
#include "engine/loader/checkpoint.h"
#include "engine/loader/model_config.h"
#include "tools/synthetic/synthetic_model.h"
#include "tools/synthetic/tensor_plan.h"
#include "tools/synthetic/test_dir.h"

namespace moe::tools {
namespace {

using engine::RoutingMode;

SyntheticSpec Tiny(Family f, Routing r) {
  auto spec = SpecFromProfileJson(*BuiltinProfileJson("tiny"), "tiny", f);
  REQUIRE(spec.ok());
  spec->routing = r;
  return *spec;
}

RoutingMode ModeOf(Routing r) {
  switch (r) {
    case Routing::kStandard: return RoutingMode::kStandard;
    case Routing::kPregated: return RoutingMode::kPregated;
    case Routing::kRouter: return RoutingMode::kRouter;
  }
  return RoutingMode::kStandard;
}

struct Loaded {
  std::unique_ptr<engine::Checkpoint> ckpt;
  engine::ModelConfig config;
  engine::RoutingFormat format;
};

Loaded Load(const std::string& dir) {
  Loaded l;
  auto cfg = engine::LoadModelConfig(dir);
  INFO(cfg.status().message());
  REQUIRE(cfg.ok());
  l.config = *cfg;
  auto fmt = engine::LoadRoutingFormat(dir, l.config);
  INFO(fmt.status().message());
  REQUIRE(fmt.ok());
  l.format = *fmt;
  auto ckpt = engine::Checkpoint::Open(dir);
  REQUIRE(ckpt.ok());
  l.ckpt = std::move(*ckpt);
  return l;
}

TEST_CASE("every family and routing variant round-trips through the routing parser") {
  for (Family f : {Family::kMixtral, Family::kQwen2Moe, Family::kQwen3Moe, Family::kOlmoe}) {
    for (Routing r : {Routing::kStandard, Routing::kPregated, Routing::kRouter}) {
      INFO(FamilyName(f) << " " << RoutingName(r));
      testing::TestDir dir;
      SyntheticSpec spec = Tiny(f, r);
      REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
      Loaded l = Load(dir.path());
      CHECK(l.format.mode == ModeOf(r));
      auto w = engine::BindRoutingWeights(*l.ckpt, l.config, l.format);
      INFO(w.status().message());
      REQUIRE(w.ok());
      CHECK(l.ckpt->TensorNames().size() == PlanTensors(spec).size());
      const int n = l.config.num_layers;
      int pregates = 0;
      for (const auto& p : w->pregate) pregates += p.present();
      CHECK(pregates == (r == Routing::kPregated ? n - 1 : 0));
      if (r == Routing::kRouter) {
        CHECK(w->router_out.rows == int64_t{n} * l.config.num_experts);
        CHECK(w->router_up.rows == spec.RouterHiddenSize());
      }
      // The first layer keeps its own gate only in standard and pregated checkpoints.
      const bool gate0 = l.ckpt->Find(engine::OwnGateTensorName(l.config, 0)) != nullptr;
      const bool gate1 = l.ckpt->Find(engine::OwnGateTensorName(l.config, 1)) != nullptr;
      CHECK(gate0 == (r != Routing::kRouter));
      CHECK(gate1 == (r == Routing::kStandard));
    }
  }
}

TEST_CASE("pregated with dense layers between: the pre-gate skips to the next MoE layer") {
  testing::TestDir dir;
  SyntheticSpec spec = Tiny(Family::kQwen3Moe, Routing::kPregated);
  spec.num_layers = 4;
  spec.mlp_only_layers = {1};
  if (spec.intermediate_size <= 0) spec.intermediate_size = 64;
  REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
  Loaded l = Load(dir.path());
  auto w = engine::BindRoutingWeights(*l.ckpt, l.config, l.format);
  INFO(w.status().message());
  REQUIRE(w.ok());
  CHECK(w->pregate[0].present());   // selects layer 2's experts
  CHECK(!w->pregate[1].present());  // dense
  CHECK(w->pregate[2].present());
  CHECK(!w->pregate[3].present());  // last MoE layer
  CHECK(l.format.NextMoeLayer(0) == 2);
}

TEST_CASE("a checkpoint whose config lost its routing block is refused, naming the tensor") {
  for (Routing r : {Routing::kPregated, Routing::kRouter}) {
    testing::TestDir dir;
    REQUIRE(WriteSyntheticModel(Tiny(Family::kOlmoe, r), dir.path()).ok());
    Loaded l = Load(dir.path());
    l.format.mode = RoutingMode::kStandard;  // as if config.json had no moe_serve_routing
    auto w = engine::BindRoutingWeights(*l.ckpt, l.config, l.format);
    REQUIRE(!w.ok());
    const std::string msg(w.status().message());
    CHECK(msg.find(r == Routing::kPregated ? "pregate.weight" : "model.router") !=
          std::string::npos);
    CHECK(msg.find("moe_serve_routing") != std::string::npos);
  }
  // And the other way: a standard checkpoint read as pregated has gates it must not.
  testing::TestDir dir;
  REQUIRE(WriteSyntheticModel(Tiny(Family::kMixtral, Routing::kStandard), dir.path()).ok());
  Loaded l = Load(dir.path());
  l.format.mode = RoutingMode::kPregated;
  auto w = engine::BindRoutingWeights(*l.ckpt, l.config, l.format);
  REQUIRE(!w.ok());
  CHECK(std::string(w.status().message()).find("block_sparse_moe.gate.weight") !=
        std::string::npos);
}

TEST_CASE("a synthetic router checkpoint routes every layer before the step") {
  testing::TestDir dir;
  SyntheticSpec spec = Tiny(Family::kQwen3Moe, Routing::kRouter);
  REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
  Loaded l = Load(dir.path());
  auto w = engine::BindRoutingWeights(*l.ckpt, l.config, l.format);
  REQUIRE(w.ok());
  auto* embed = l.ckpt->Find("model.embed_tokens.weight");
  REQUIRE(embed != nullptr);
  engine::WeightRef e;
  e.data = embed->data;
  e.dtype = embed->dtype;
  e.rows = embed->shape[0];
  e.cols = embed->shape[1];
  engine::DecoupledRouterPredictor p(l.config, e, *w, nullptr);
  const std::vector<int32_t> tokens = {3, 17, 3};
  std::vector<engine::LayerPrediction> out;
  engine::PredictorInput in;
  in.layer = -1;
  in.num_tokens = 3;
  in.token_ids = tokens;
  REQUIRE(p.PredictNextLayers(in, l.config.num_layers, &out).ok());
  REQUIRE(static_cast<int>(out.size()) == l.config.num_layers);
  const int k = l.config.num_experts_per_tok;
  std::vector<int32_t> idx;
  std::vector<float> wts;
  REQUIRE(p.RouteTokens(tokens, &idx, &wts).ok());
  for (const auto& pred : out) {
    // Two distinct tokens: between k and 2k experts, matching the per-token routing.
    CHECK(static_cast<int>(pred.experts.size()) >= k);
    CHECK(static_cast<int>(pred.experts.size()) <= 2 * k);
    for (int j = 0; j < k; ++j) {
      // Token 0 and token 2 are the same id: the same routing.
      const size_t a = (0 * l.config.num_layers + pred.layer) * k + j;
      const size_t b = (2 * l.config.num_layers + pred.layer) * k + j;
      CHECK(idx[a] == idx[b]);
      CHECK(std::binary_search(pred.experts.begin(), pred.experts.end(), idx[a]));
    }
  }
}

}  // namespace
}  // namespace moe::tools

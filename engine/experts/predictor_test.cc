// Predictors on hand-made weights whose routing is known by construction.
#include "engine/experts/predictor.h"

#include <vector>

#include <catch2/catch.hpp>

#include "engine/experts/prediction_accuracy.h"

namespace moe::engine {
namespace {

constexpr int kH = 4, kE = 4;

ModelConfig Config() {
  ModelConfig c;
  c.hidden_size = kH;
  c.num_layers = 3;
  c.num_experts = kE;
  c.num_experts_per_tok = 1;
  c.norm_topk_prob = true;
  c.rms_norm_eps = 1e-6f;
  return c;
}

WeightRef Ref(const std::vector<float>& v, int64_t rows, int64_t cols) {
  WeightRef w;
  w.data = v.data();
  w.dtype = DType::kF32;
  w.rows = rows;
  w.cols = cols;
  return w;
}

// Row e selects input channel perm[e]: logits[e] = x[perm[e]].
std::vector<float> Selector(std::vector<int> perm, int cols = kH) {
  std::vector<float> w(perm.size() * cols, 0.f);
  for (size_t e = 0; e < perm.size(); ++e) w[e * cols + perm[e]] = 1.f;
  return w;
}

const std::vector<float> kHidden = {5, 0, 0, 0,   // token 0: channel 0
                                    0, 0, 3, 0};  // token 1: channel 2

TEST_CASE("next-gate applies the following layers' gates to this layer's hidden state") {
  const ModelConfig cfg = Config();
  const auto identity = Selector({0, 1, 2, 3}), reversed = Selector({3, 2, 1, 0});
  DecoderWeights w;
  w.layers.resize(3);
  for (auto& l : w.layers) l.is_moe = true;
  w.layers[0].router = Ref(identity, kE, kH);
  w.layers[1].router = Ref(identity, kE, kH);
  w.layers[2].router = Ref(reversed, kE, kH);
  NextGatePredictor p(cfg, w, nullptr);
  CHECK(!p.exact());
  std::vector<LayerPrediction> out;
  PredictorInput in;
  in.layer = 0;
  in.hidden = kHidden.data();
  in.num_tokens = 2;
  REQUIRE(p.PredictNextLayers(in, 5, &out).ok());
  REQUIRE(out.size() == 2);  // layers 1 and 2; nothing past the last
  CHECK(out[0].layer == 1);
  CHECK(out[0].experts == std::vector<int32_t>{0, 2});
  CHECK(out[1].layer == 2);
  CHECK(out[1].experts == std::vector<int32_t>{1, 3});
  const auto two_ahead = out[1].experts;
  REQUIRE(p.PredictNextLayers(in, 1, &out).ok());
  CHECK(out.size() == 1);
  // Dense layers are skipped: depth counts MoE layers.
  w.layers[1].is_moe = false;
  REQUIRE(p.PredictNextLayers(in, 1, &out).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].layer == 2);
  in.hidden = nullptr;
  CHECK(!p.PredictNextLayers(in, 1, &out).ok());

  // Scored against what layer 2 then used: one of two right.
  PredictionAccuracy acc(2, 3);
  acc.Record(2, 2, two_ahead, {3, 0});
  CHECK(acc.ByDepth(2).precision() == Approx(0.5));
  CHECK(acc.ByDepth(2).recall() == Approx(0.5));
}

TEST_CASE("pregate: layer l's pre-gate gives exactly the next MoE layer's experts") {
  const ModelConfig cfg = Config();
  const auto reversed = Selector({3, 2, 1, 0}), identity = Selector({0, 1, 2, 3});
  RoutingWeights rw;
  rw.format.mode = RoutingMode::kPregated;
  rw.format.moe_layers = {0, 1, 2};
  rw.pregate.resize(3);
  rw.pregate[0] = Ref(reversed, kE, kH);
  rw.pregate[1] = Ref(identity, kE, kH);
  const std::vector<float> norm(kH, 1.f);
  PregatedPredictor p(cfg, {Ref(norm, 1, kH), Ref(norm, 1, kH), Ref(norm, 1, kH)}, rw, nullptr);
  CHECK(p.exact());
  std::vector<LayerPrediction> out;
  PredictorInput in;
  in.layer = 0;
  in.hidden = kHidden.data();
  in.num_tokens = 2;
  REQUIRE(p.PredictNextLayers(in, 3, &out).ok());
  REQUIRE(out.size() == 1);  // only one layer ahead is known
  CHECK(out[0].layer == 1);
  CHECK(out[0].experts == std::vector<int32_t>{1, 3});
  in.layer = 1;
  REQUIRE(p.PredictNextLayers(in, 1, &out).ok());
  CHECK(out[0].experts == std::vector<int32_t>{0, 2});
  in.layer = 2;  // the last MoE layer has no pre-gate
  REQUIRE(p.PredictNextLayers(in, 1, &out).ok());
  CHECK(out.empty());
}

TEST_CASE("router: every layer's routing from token embeddings, before the step") {
  const ModelConfig cfg = Config();
  // Token t's embedding is channel t; layer m sends channel c to expert (c + m) % 4.
  const std::vector<float> embed = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  const std::vector<float> norm(kH, 1.f);
  const auto up = Selector({0, 1, 2, 3});
  std::vector<float> out_w(3 * kE * kH, 0.f);
  for (int m = 0; m < 3; ++m)
    for (int c = 0; c < kH; ++c) out_w[(m * kE + (c + m) % kE) * kH + c] = 1.f;
  RoutingWeights rw;
  rw.format.mode = RoutingMode::kRouter;
  rw.format.router_hidden_size = kH;
  rw.format.moe_layers = {0, 1, 2};
  rw.router_norm = Ref(norm, 1, kH);
  rw.router_up = Ref(up, kH, kH);
  rw.router_out = Ref(out_w, 3 * kE, kH);
  DecoupledRouterPredictor p(cfg, Ref(embed, 3, kH), rw, nullptr);
  CHECK(p.exact());

  const std::vector<int32_t> tokens = {2, 0};
  std::vector<int32_t> idx;
  std::vector<float> wts;
  REQUIRE(p.RouteTokens(tokens, &idx, &wts).ok());
  CHECK(idx == std::vector<int32_t>{2, 3, 0, 0, 1, 2});  // [token][layer][k]
  for (float v : wts) CHECK(v == Approx(1.f));

  std::vector<LayerPrediction> out;
  PredictorInput in;
  in.layer = -1;
  in.num_tokens = 2;
  in.token_ids = tokens;
  REQUIRE(p.PredictNextLayers(in, 3, &out).ok());
  REQUIRE(out.size() == 3);
  CHECK(out[0].experts == std::vector<int32_t>{0, 2});
  CHECK(out[1].experts == std::vector<int32_t>{1, 3});
  CHECK(out[2].experts == std::vector<int32_t>{0, 2});
  in.layer = 1;
  REQUIRE(p.PredictNextLayers(in, 3, &out).ok());
  REQUIRE(out.size() == 1);
  CHECK(out[0].layer == 2);
  const std::vector<int32_t> bad = {7};
  in.token_ids = bad;
  in.num_tokens = 1;
  auto st = p.PredictNextLayers(in, 1, &out);
  REQUIRE(!st.ok());
  CHECK(std::string(st.message()).find("token id 7") != std::string::npos);
}

}  // namespace
}  // namespace moe::engine

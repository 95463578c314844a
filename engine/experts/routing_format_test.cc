// The routing block of config.json. (Round trips through real checkpoint files are
// tested with the synthetic writer: //tools/synthetic:synthetic_routing_test.)
#include "engine/experts/routing_format.h"

#include <catch2/catch.hpp>

namespace moe::engine {
namespace {

ModelConfig Qwen(std::vector<int> mlp_only) {
  ModelConfig c;
  c.arch = Architecture::kQwen3Moe;
  c.num_layers = 4;
  c.num_experts = 8;
  c.mlp_only_layers = std::move(mlp_only);
  return c;
}

std::string Message(const absl::StatusOr<RoutingFormat>& f) {
  return std::string(f.status().message());
}

TEST_CASE("no routing block means standard; MoE layers are listed") {
  auto f = ParseRoutingFormat(R"({"model_type": "qwen3_moe"})", Qwen({1}));
  REQUIRE(f.ok());
  CHECK(f->mode == RoutingMode::kStandard);
  CHECK(f->moe_layers == std::vector<int>{0, 2, 3});
  CHECK(f->NextMoeLayer(0) == 2);
  CHECK(f->NextMoeLayer(3) == -1);
  CHECK(f->MoeIndex(1) == -1);
  CHECK(f->MoeIndex(2) == 1);
}

TEST_CASE("pregated and router blocks parse") {
  auto p = ParseRoutingFormat(R"({"moe_serve_routing": {"mode": "pregated"}})", Qwen({}));
  REQUIRE(p.ok());
  CHECK(p->mode == RoutingMode::kPregated);
  auto r = ParseRoutingFormat(
      R"({"moe_serve_routing": {"mode": "router", "router_hidden_size": 64}})", Qwen({}));
  REQUIRE(r.ok());
  CHECK(r->mode == RoutingMode::kRouter);
  CHECK(r->router_hidden_size == 64);
}

TEST_CASE("bad routing blocks name the key") {
  auto a = ParseRoutingFormat(R"({"moe_serve_routing": {"mode": "oracle"}})", Qwen({}));
  CHECK(Message(a).find("moe_serve_routing.mode") != std::string::npos);
  CHECK(Message(a).find("pregated") != std::string::npos);
  auto b = ParseRoutingFormat(R"({"moe_serve_routing": {"mode": "router"}})", Qwen({}));
  CHECK(Message(b).find("router_hidden_size") != std::string::npos);
  auto c = ParseRoutingFormat(R"({"moe_serve_routing": "pregated"})", Qwen({}));
  CHECK(Message(c).find("must be an object") != std::string::npos);
  ModelConfig dense = Qwen({0, 1, 2, 3});
  auto d = ParseRoutingFormat(R"({"moe_serve_routing": {"mode": "pregated"}})", dense);
  CHECK(Message(d).find("no MoE layers") != std::string::npos);
  CHECK(!ParseRoutingFormat("{not json", Qwen({})).ok());
}

TEST_CASE("tensor names") {
  CHECK(PregateTensorName(3) == "model.layers.3.pregate.weight");
  ModelConfig m;
  m.arch = Architecture::kMixtral;
  CHECK(OwnGateTensorName(m, 2) == "model.layers.2.block_sparse_moe.gate.weight");
  CHECK(OwnGateTensorName(Qwen({}), 2) == "model.layers.2.mlp.gate.weight");
}

}  // namespace
}  // namespace moe::engine

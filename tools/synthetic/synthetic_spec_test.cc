#include "tools/synthetic/synthetic_spec.h"

#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "nlohmann/json.hpp"
#include "tools/synthetic/tensor_plan.h"
#include "tools/synthetic/test_dir.h"

namespace moe::tools {
namespace {

SyntheticSpec Builtin(const std::string& name, std::optional<Family> arch = std::nullopt) {
  auto json = BuiltinProfileJson(name);
  REQUIRE(json.ok());
  auto spec = SpecFromProfileJson(*json, name, arch);
  INFO(spec.status().message());
  REQUIRE(spec.ok());
  return *spec;
}

TEST_CASE("the embedded profiles are exactly configs/profiles/*.json") {
  std::vector<std::string> on_disk;
  for (const auto& e : std::filesystem::directory_iterator("configs/profiles")) {
    if (e.path().extension() != ".json") continue;
    const std::string name = e.path().stem().string();
    on_disk.push_back(name);
    auto embedded = BuiltinProfileJson(name);
    INFO(name);
    REQUIRE(embedded.ok());
    CHECK(nlohmann::json::parse(*embedded) ==
          nlohmann::json::parse(testing::ReadFileBytes(e.path().string())));
    // The profile's "name" is its file name, so --profile and the file agree.
    CHECK(nlohmann::json::parse(*embedded)["name"] == name);
  }
  std::sort(on_disk.begin(), on_disk.end());
  CHECK(on_disk == BuiltinProfileNames());
  CHECK(on_disk == std::vector<std::string>{"mixtral-8x7b", "olmoe-1b-7b", "qwen3-30b-a3b",
                                            "tiny"});
}

TEST_CASE("an unknown profile's error lists the known ones") {
  auto r = BuiltinProfileJson("llama-70b");
  REQUIRE_FALSE(r.ok());
  const std::string msg(r.status().message());
  CHECK(msg.find("llama-70b") != std::string::npos);
  CHECK(msg.find("tiny") != std::string::npos);
  CHECK(msg.find("qwen3-30b-a3b") != std::string::npos);
}

TEST_CASE("real-model profiles have the published parameter counts") {
  // Mixtral-8x7B: 46,702,792,704 parameters.
  CHECK(ParameterCount(Builtin("mixtral-8x7b")) == 46702792704LL);
  // OLMoE-1B-7B: 6.92B; Qwen3-30B-A3B: 30.5B.
  CHECK(ParameterCount(Builtin("olmoe-1b-7b")) / 1e9 == Approx(6.92).margin(0.01));
  CHECK(ParameterCount(Builtin("qwen3-30b-a3b")) / 1e9 == Approx(30.53).margin(0.02));
  for (const auto& name : BuiltinProfileNames()) {
    INFO(name);
    CHECK(ValidateSpec(Builtin(name)).ok());
  }
}

TEST_CASE("tiny takes any family; real shapes refuse another") {
  for (Family f : {Family::kMixtral, Family::kQwen2Moe, Family::kQwen3Moe, Family::kOlmoe}) {
    SyntheticSpec s = Builtin("tiny", f);
    CHECK(s.family == f);
    CHECK(s.hidden_size == 64);
    CHECK(s.num_layers == 2);
    CHECK(s.num_experts == 8);
    CHECK(s.num_experts_per_tok == 2);
    CHECK(s.vocab_size == 512);
    CHECK(ValidateSpec(s).ok());
  }
  CHECK(Builtin("tiny").family == Family::kOlmoe);
  CHECK(Builtin("tiny", Family::kQwen3Moe).norm_topk_prob);
  CHECK_FALSE(Builtin("tiny", Family::kQwen2Moe).norm_topk_prob);

  auto json = BuiltinProfileJson("mixtral-8x7b");
  auto r = SpecFromProfileJson(*json, "mixtral-8x7b", Family::kOlmoe);
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).find("--arch") != std::string::npos);
  CHECK(SpecFromProfileJson(*json, "mixtral-8x7b", Family::kMixtral).ok());
}

TEST_CASE("profile and spec errors name the field") {
  auto msg = [](const std::string& json) {
    auto r = SpecFromProfileJson(json, "p.json", std::nullopt);
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  CHECK(msg("{").find("p.json") != std::string::npos);
  CHECK(msg(R"({"arch": "gpt2"})").find("arch") != std::string::npos);
  CHECK(msg(R"({"arch": "olmoe", "hidden_size": 64})").find("vocab_size") != std::string::npos);
  CHECK(msg(R"({"arch": "olmoe", "vocab_size": "many"})").find("vocab_size") !=
        std::string::npos);

  SyntheticSpec s = Builtin("tiny", Family::kQwen3Moe);
  s.num_kv_heads = 3;
  CHECK(std::string(ValidateSpec(s).message()).find("num_kv_heads") != std::string::npos);
  s = Builtin("tiny");
  s.num_experts_per_tok = 9;
  CHECK(std::string(ValidateSpec(s).message()).find("num_experts_per_tok") != std::string::npos);
  s = Builtin("tiny", Family::kOlmoe);
  s.head_dim = 32;  // OLMoE's config cannot express head_dim != hidden / heads
  CHECK(std::string(ValidateSpec(s).message()).find("head_dim") != std::string::npos);
  s = Builtin("tiny", Family::kQwen3Moe);
  s.head_dim = 32;  // Qwen3 can
  CHECK(ValidateSpec(s).ok());
  s.mlp_only_layers = {0};
  s.intermediate_size = 0;
  CHECK(std::string(ValidateSpec(s).message()).find("intermediate_size") != std::string::npos);
  CHECK(ParseFamily("qwen3_moe").ok());
  CHECK(std::string(ParseFamily("llama").status().message()).find("mixtral") !=
        std::string::npos);
}

}  // namespace
}  // namespace moe::tools

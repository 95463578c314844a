#include "engine/loader/model_config.h"

#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/loader/test_util.h"

namespace moe::engine {
namespace {

using Catch::Matchers::Contains;
using testing::TempDir;
using testing::WriteFile;

// config.json texts as the Hub checkpoints carry them (transformers 4.x spelling).
constexpr char kMixtral8x7B[] = R"({
  "architectures": ["MixtralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mixtral",
  "num_attention_heads": 32,
  "num_experts_per_tok": 2,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "num_local_experts": 8,
  "output_router_logits": false,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.02,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

constexpr char kQwen15MoeA27B[] = R"({
  "architectures": ["Qwen2MoeForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151643,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 8192,
  "max_window_layers": 21,
  "model_type": "qwen2_moe",
  "num_attention_heads": 16,
  "num_hidden_layers": 24,
  "num_key_value_heads": 16,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.39.0.dev0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936,
  "decoder_sparse_step": 1,
  "moe_intermediate_size": 1408,
  "shared_expert_intermediate_size": 5632,
  "num_experts_per_tok": 4,
  "num_experts": 60,
  "norm_topk_prob": false,
  "output_router_logits": false,
  "router_aux_loss_coef": 0.001
})";

constexpr char kQwen3_30B_A3B[] = R"({
  "architectures": ["Qwen3MoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "decoder_sparse_step": 1,
  "eos_token_id": 151645,
  "head_dim": 128,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 6144,
  "max_position_embeddings": 40960,
  "max_window_layers": 48,
  "mlp_only_layers": [],
  "model_type": "qwen3_moe",
  "moe_intermediate_size": 768,
  "norm_topk_prob": true,
  "num_attention_heads": 32,
  "num_experts": 128,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 48,
  "num_key_value_heads": 4,
  "output_router_logits": false,
  "rms_norm_eps": 1e-06,
  "rope_scaling": null,
  "rope_theta": 1000000.0,
  "router_aux_loss_coef": 0.001,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.51.0",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

constexpr char kQwen3GenerationConfig[] = R"({
  "bos_token_id": 151643,
  "do_sample": true,
  "eos_token_id": [151645, 151643],
  "pad_token_id": 151643,
  "temperature": 0.6,
  "top_k": 20,
  "top_p": 0.95,
  "transformers_version": "4.51.0"
})";

constexpr char kOlmoe1B7B[] = R"({
  "architectures": ["OlmoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": null,
  "clip_qkv": null,
  "eos_token_id": 50279,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 1024,
  "max_position_embeddings": 4096,
  "model_type": "olmoe",
  "norm_topk_prob": false,
  "num_attention_heads": 16,
  "num_experts": 64,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 16,
  "num_key_value_heads": 16,
  "output_router_logits": false,
  "pad_token_id": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "router_aux_loss_coef": 0.01,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 50304
})";

// Qwen3-MoE as transformers 5.17's save_pretrained writes it: rope_parameters,
// num_local_experts, "dtype", and no head_dim.
constexpr char kQwen3MoeTransformers5[] = R"({
  "architectures": ["Qwen3MoeForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": null,
  "decoder_sparse_step": 1,
  "dtype": "bfloat16",
  "eos_token_id": null,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "intermediate_size": 6144,
  "max_position_embeddings": 32768,
  "mlp_only_layers": [],
  "model_type": "qwen3_moe",
  "moe_intermediate_size": 768,
  "norm_topk_prob": false,
  "num_attention_heads": 32,
  "num_experts_per_tok": 8,
  "num_hidden_layers": 24,
  "num_key_value_heads": 4,
  "num_local_experts": 128,
  "pad_token_id": null,
  "rms_norm_eps": 1e-06,
  "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
  "sliding_window": null,
  "tie_word_embeddings": false,
  "transformers_version": "5.17.0",
  "use_sliding_window": false,
  "vocab_size": 151936
})";

// `base` with `patch` merged in (RFC 7386: a null value removes the key).
std::string Patched(const char* base, const char* patch) {
  nlohmann::json j = nlohmann::json::parse(base);
  j.merge_patch(nlohmann::json::parse(patch));
  return j.dump(2);
}

std::string ErrorOf(const std::string& config, const std::string& gen = "") {
  auto c = ParseModelConfig(config, gen);
  REQUIRE_FALSE(c.ok());
  return std::string(c.status().message());
}

TEST_CASE("Mixtral-8x7B config", "[model_config]") {
  auto c = ParseModelConfig(kMixtral8x7B);
  REQUIRE(c.ok());
  CHECK(c->arch == Architecture::kMixtral);
  CHECK(c->architecture_name == "MixtralForCausalLM");
  CHECK(c->model_type == "mixtral");
  CHECK(c->vocab_size == 32000);
  CHECK(c->hidden_size == 4096);
  CHECK(c->num_layers == 32);
  CHECK(c->num_heads == 32);
  CHECK(c->num_kv_heads == 8);
  CHECK(c->head_dim == 128);
  CHECK(c->q_size() == 4096);
  CHECK(c->kv_size() == 1024);
  CHECK(c->num_experts == 8);
  CHECK(c->num_experts_per_tok == 2);
  CHECK(c->moe_intermediate_size == 14336);
  CHECK(c->intermediate_size == 0);
  CHECK(c->norm_topk_prob);
  CHECK(c->shared_expert_intermediate_size == 0);
  CHECK_FALSE(c->attention_bias);
  CHECK(c->qk_norm == QkNorm::kNone);
  CHECK_FALSE(c->clip_qkv.has_value());
  CHECK(c->sliding_window == 0);
  CHECK(c->rope_theta == 1e6);
  CHECK(c->rope_type == "default");
  CHECK(c->rms_norm_eps == 1e-5f);
  CHECK(c->max_position_embeddings == 32768);
  CHECK_FALSE(c->tie_word_embeddings);
  CHECK(c->bos_token_id == 1);
  CHECK(c->eos_token_ids == std::vector<int>{2});
  CHECK(c->torch_dtype == "bfloat16");
  for (int l = 0; l < 32; ++l) CHECK(c->IsMoeLayer(l));

  // Mistral's later configs set a window; head_dim: null (transformers 5) means derived.
  auto w = ParseModelConfig(Patched(kMixtral8x7B, R"({"sliding_window": 4096, "head_dim": null})"));
  REQUIRE(w.ok());
  CHECK(w->sliding_window == 4096);
  CHECK(w->head_dim == 128);
  // Mixtral always renormalises, whatever a stray key says.
  auto n = ParseModelConfig(Patched(kMixtral8x7B, R"({"norm_topk_prob": false})"));
  REQUIRE(n.ok());
  CHECK(n->norm_topk_prob);
}

TEST_CASE("Qwen1.5-MoE-A2.7B config", "[model_config]") {
  auto c = ParseModelConfig(kQwen15MoeA27B);
  REQUIRE(c.ok());
  CHECK(c->arch == Architecture::kQwen2Moe);
  CHECK(c->head_dim == 128);
  CHECK(c->num_kv_heads == 16);
  CHECK(c->num_experts == 60);
  CHECK(c->num_experts_per_tok == 4);
  CHECK(c->moe_intermediate_size == 1408);
  CHECK(c->intermediate_size == 5632);
  CHECK(c->shared_expert_intermediate_size == 5632);
  CHECK_FALSE(c->norm_topk_prob);
  CHECK(c->attention_bias);  // Qwen2 q/k/v always carry biases
  CHECK_FALSE(c->o_proj_bias);
  CHECK(c->qk_norm == QkNorm::kNone);
  CHECK(c->sliding_window == 0);  // use_sliding_window is false
  CHECK(c->rope_theta == 1e6);
  CHECK(c->rms_norm_eps == 1e-6f);
  CHECK(c->max_position_embeddings == 8192);
  CHECK(c->bos_token_id == 151643);
  CHECK(c->eos_token_ids == std::vector<int>{151643});
  CHECK(c->decoder_sparse_step == 1);
  CHECK(c->mlp_only_layers.empty());
  for (int l = 0; l < 24; ++l) CHECK(c->IsMoeLayer(l));

  // transformers 5 writes qkv_bias explicitly.
  auto nobias = ParseModelConfig(Patched(kQwen15MoeA27B, R"({"qkv_bias": false})"));
  REQUIRE(nobias.ok());
  CHECK_FALSE(nobias->attention_bias);
}

TEST_CASE("Qwen3-30B-A3B config with its generation_config", "[model_config]") {
  auto c = ParseModelConfig(kQwen3_30B_A3B, kQwen3GenerationConfig);
  REQUIRE(c.ok());
  CHECK(c->arch == Architecture::kQwen3Moe);
  CHECK(c->hidden_size == 2048);
  CHECK(c->head_dim == 128);  // explicit, not 2048 / 32
  CHECK(c->q_size() == 4096);
  CHECK(c->kv_size() == 512);
  CHECK(c->num_layers == 48);
  CHECK(c->num_experts == 128);
  CHECK(c->num_experts_per_tok == 8);
  CHECK(c->moe_intermediate_size == 768);
  CHECK(c->intermediate_size == 6144);
  CHECK(c->shared_expert_intermediate_size == 0);
  CHECK(c->norm_topk_prob);
  CHECK_FALSE(c->attention_bias);
  CHECK(c->qk_norm == QkNorm::kPerHead);
  CHECK(c->rope_theta == 1e6);
  CHECK(c->max_position_embeddings == 40960);
  // config.json's 151645 first, then generation_config's, without repeating 151645.
  CHECK(c->eos_token_ids == std::vector<int>{151645, 151643});
}

TEST_CASE("Qwen3-MoE as transformers 5 writes it", "[model_config]") {
  auto c = ParseModelConfig(kQwen3MoeTransformers5);
  REQUIRE(c.ok());
  CHECK(c->num_experts == 128);  // from num_local_experts
  CHECK(c->head_dim == 64);      // no head_dim: hidden / heads
  CHECK(c->rope_theta == 1e4);
  CHECK(c->rope_type == "default");
  CHECK(c->torch_dtype == "bfloat16");
  CHECK(c->bos_token_id == -1);
  CHECK(c->eos_token_ids.empty());
}

TEST_CASE("OLMoE-1B-7B config", "[model_config]") {
  auto c = ParseModelConfig(kOlmoe1B7B);
  REQUIRE(c.ok());
  CHECK(c->arch == Architecture::kOlmoe);
  CHECK(c->head_dim == 128);
  CHECK(c->num_experts == 64);
  CHECK(c->num_experts_per_tok == 8);
  CHECK(c->moe_intermediate_size == 1024);
  CHECK(c->intermediate_size == 0);
  CHECK_FALSE(c->norm_topk_prob);
  CHECK(c->qk_norm == QkNorm::kWholeProjection);
  CHECK_FALSE(c->clip_qkv.has_value());
  CHECK_FALSE(c->attention_bias);
  CHECK(c->rope_theta == 1e4);
  CHECK(c->rms_norm_eps == 1e-5f);
  CHECK(c->bos_token_id == -1);
  CHECK(c->eos_token_ids == std::vector<int>{50279});

  auto clipped = ParseModelConfig(Patched(kOlmoe1B7B, R"({"clip_qkv": 8.0})"));
  REQUIRE(clipped.ok());
  REQUIRE(clipped->clip_qkv.has_value());
  CHECK(*clipped->clip_qkv == 8.f);
}

TEST_CASE("Linear RoPE scaling in both spellings gives the same config", "[model_config]") {
  // transformers 4.x: rope_theta and rope_scaling at top level ("type" or "rope_type").
  auto v4 = ParseModelConfig(Patched(
      kOlmoe1B7B, R"({"rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 4.0}})"));
  REQUIRE(v4.ok());
  auto v4b = ParseModelConfig(Patched(
      kOlmoe1B7B, R"({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "linear", "factor": 4.0}})"));
  REQUIRE(v4b.ok());
  // transformers 5.x: everything inside rope_parameters, as 5.17 writes it.
  auto v5 = ParseModelConfig(Patched(kOlmoe1B7B, R"({"rope_theta": null, "rope_scaling": null,
      "rope_parameters": {"factor": 4.0, "rope_theta": 500000.0, "rope_type": "linear"}})"));
  REQUIRE(v5.ok());
  for (const auto* c : {&*v4, &*v4b, &*v5}) {
    CHECK(c->rope_type == "linear");
    CHECK(c->rope_scaling_factor == 4.0);
    CHECK(c->rope_theta == 5e5);
  }
  // rope_parameters default for Mixtral, and partial_rotary_factor inside it.
  auto m = ParseModelConfig(Patched(kMixtral8x7B, R"({"rope_theta": null, "rope_parameters":
      {"rope_theta": 250000.0, "rope_type": "default", "partial_rotary_factor": 0.5}})"));
  REQUIRE(m.ok());
  CHECK(m->rope_theta == 2.5e5);
  CHECK(m->rope_type == "default");
  CHECK(m->partial_rotary_factor == 0.5);
  CHECK(m->rope_scaling_factor == 1.0);
  // Without any rope_theta, the family default applies (Mixtral: 1e6).
  auto d = ParseModelConfig(Patched(kMixtral8x7B, R"({"rope_theta": null})"));
  REQUIRE(d.ok());
  CHECK(d->rope_theta == 1e6);
}

TEST_CASE("IsMoeLayer follows decoder_sparse_step and mlp_only_layers", "[model_config]") {
  auto c = ParseModelConfig(
      Patched(kQwen15MoeA27B, R"({"num_hidden_layers": 8, "decoder_sparse_step": 2,
                                  "mlp_only_layers": [5]})"));
  REQUIRE(c.ok());
  std::vector<bool> moe;
  for (int l = 0; l < 8; ++l) moe.push_back(c->IsMoeLayer(l));
  // (l + 1) % 2 == 0 -> 1, 3, 5, 7; layer 5 forced dense.
  CHECK(moe == std::vector<bool>{false, true, false, true, false, false, false, true});

  auto q3 = ParseModelConfig(Patched(kQwen3_30B_A3B, R"({"mlp_only_layers": [0, 47]})"));
  REQUIRE(q3.ok());
  CHECK_FALSE(q3->IsMoeLayer(0));
  CHECK(q3->IsMoeLayer(1));
  CHECK_FALSE(q3->IsMoeLayer(47));

  // Dense layers need a dense width.
  CHECK_THAT(ErrorOf(Patched(kQwen3_30B_A3B, R"({"mlp_only_layers": [0], "intermediate_size": null})")),
             Contains("intermediate_size"));
  CHECK_THAT(ErrorOf(Patched(kQwen3_30B_A3B, R"({"mlp_only_layers": [48]})")),
             Contains("mlp_only_layers") && Contains("48"));
}

TEST_CASE("rms_norm_eps must survive conversion to float (found by fuzzing)", "[model_config]") {
  CHECK_THAT(ErrorOf(Patched(kQwen3_30B_A3B, R"({"rms_norm_eps": 1e-86})")), Contains("rms_norm_eps"));
  CHECK_THAT(ErrorOf(Patched(kQwen3_30B_A3B, R"({"rms_norm_eps": 1e300})")), Contains("rms_norm_eps"));
  CHECK(ParseModelConfig(Patched(kQwen3_30B_A3B, R"({"rms_norm_eps": 1e-30})")).ok());
}

TEST_CASE("eos ids from generation_config are merged in order without duplicates", "[model_config]") {
  auto c = ParseModelConfig(Patched(kMixtral8x7B, R"({"eos_token_id": [2, 7, 2]})"),
                            R"({"eos_token_id": [9, 7, 2, 11]})");
  REQUIRE(c.ok());
  CHECK(c->eos_token_ids == std::vector<int>{2, 7, 9, 11});
  auto single = ParseModelConfig(kMixtral8x7B, R"({"eos_token_id": 5})");
  REQUIRE(single.ok());
  CHECK(single->eos_token_ids == std::vector<int>{2, 5});
  CHECK_THAT(ErrorOf(kMixtral8x7B, R"({"eos_token_id": "x"})"),
             Contains("generation_config.json") && Contains("eos_token_id"));
  CHECK_THAT(ErrorOf(kMixtral8x7B, "{not json"), Contains("generation_config.json"));
}

TEST_CASE("Validation errors name the field", "[model_config]") {
  CHECK_THAT(ErrorOf("{\"architectures\": "), Contains("config.json") && Contains("malformed JSON"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"hidden_size": null})")),
             Contains("'hidden_size'") && Contains("missing"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"vocab_size": "32000"})")),
             Contains("'vocab_size'") && Contains("integer"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"num_hidden_layers": 2.5})")),
             Contains("'num_hidden_layers'"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"num_local_experts": null})")),
             Contains("'num_local_experts'") && Contains("missing"));
  CHECK_THAT(ErrorOf(Patched(kQwen15MoeA27B, R"({"moe_intermediate_size": null})")),
             Contains("'moe_intermediate_size'"));
  CHECK_THAT(ErrorOf(Patched(kQwen15MoeA27B, R"({"shared_expert_intermediate_size": null})")),
             Contains("'shared_expert_intermediate_size'"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"num_key_value_heads": 5})")),
             Contains("'num_key_value_heads'") && Contains("'num_attention_heads'"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"num_attention_heads": 24, "num_key_value_heads": 8})")),
             Contains("'hidden_size'") && Contains("head_dim"));
  CHECK_THAT(ErrorOf(Patched(kOlmoe1B7B, R"({"num_experts_per_tok": 65})")),
             Contains("'num_experts_per_tok'") && Contains("65") && Contains("64"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})")),
             Contains("LlamaForCausalLM") && Contains("MixtralForCausalLM") &&
                 Contains("Qwen2MoeForCausalLM") && Contains("Qwen3MoeForCausalLM") &&
                 Contains("OlmoeForCausalLM"));
  CHECK_THAT(ErrorOf(Patched(kQwen3_30B_A3B, R"({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})")),
             Contains("rope_type") && Contains("yarn"));
  CHECK_THAT(ErrorOf(Patched(kQwen3_30B_A3B, R"({"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e6}})")),
             Contains("rope_type") && Contains("dynamic"));
  CHECK_THAT(ErrorOf(Patched(kQwen3_30B_A3B, R"({"rope_scaling": {"type": "linear"}})")),
             Contains("factor"));
  CHECK_THAT(ErrorOf(Patched(kQwen15MoeA27B, R"({"use_sliding_window": true})")),
             Contains("use_sliding_window") && Contains("unsupported"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"eos_token_id": [2, "x"]})")),
             Contains("'eos_token_id'"));
  CHECK_THAT(ErrorOf(Patched(kOlmoe1B7B, R"({"clip_qkv": -1})")), Contains("'clip_qkv'"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"model_type": "olmoe"})")),
             Contains("model_type") && Contains("mixtral"));
  CHECK_THAT(ErrorOf(Patched(kMixtral8x7B, R"({"tie_word_embeddings": "no"})")),
             Contains("'tie_word_embeddings'"));
}

TEST_CASE("The architecture may come from model_type alone", "[model_config]") {
  // A config saved from a bare XConfig() has no "architectures".
  auto c = ParseModelConfig(Patched(kOlmoe1B7B, R"({"architectures": null})"));
  REQUIRE(c.ok());
  CHECK(c->arch == Architecture::kOlmoe);
  CHECK(c->architecture_name == "OlmoeForCausalLM");
  CHECK(std::string(ArchitectureName(Architecture::kQwen2Moe)) == "Qwen2MoeForCausalLM");
  CHECK(std::string(ArchitectureName(Architecture::kMixtral)) == "MixtralForCausalLM");
}

TEST_CASE("LoadModelConfig reads config.json and generation_config.json", "[model_config]") {
  TempDir dir;
  auto missing = LoadModelConfig(dir.path());
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(std::string(missing.status().message()), Contains(dir.File("config.json")));

  WriteFile(dir.File("config.json"), kQwen3_30B_A3B);
  auto without_gen = LoadModelConfig(dir.path());
  REQUIRE(without_gen.ok());
  CHECK(without_gen->eos_token_ids == std::vector<int>{151645});

  WriteFile(dir.File("generation_config.json"), kQwen3GenerationConfig);
  auto with_gen = LoadModelConfig(dir.path());
  REQUIRE(with_gen.ok());
  CHECK(with_gen->eos_token_ids == std::vector<int>{151645, 151643});

  WriteFile(dir.File("config.json"), Patched(kQwen3_30B_A3B, R"({"hidden_size": true})"));
  auto bad = LoadModelConfig(dir.path());
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()),
             Contains(dir.File("config.json")) && Contains("'hidden_size'"));
}

}  // namespace
}  // namespace moe::engine

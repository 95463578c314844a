// The CPU runner alone (no tokenizer, no sampler) against Hugging Face transformers'
// fp32 outputs for the four test models: greedy decoding step by step reproduces
// transformers' ids, and every top-5 logprob — stepwise and teacher-forced in one
// prefill — is within 1e-4.
#include <cmath>
#include <fstream>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "engine/cpu/cpu_runner.h"
#include "engine/cpu/runner_test_util.h"

namespace moe::engine {
namespace {

using nlohmann::json;
using Logits = SequenceChunk::Logits;

constexpr double kTolerance = 1e-4;

std::vector<double> LogSoftmax(const float* x, int n) {
  double mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, double(x[i]));
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  std::vector<double> out(n);
  for (int i = 0; i < n; ++i) out[i] = x[i] - mx - std::log(sum);
  return out;
}

double Top5Error(const json& ref_top5, const float* logits, int vocab) {
  auto lp = LogSoftmax(logits, vocab);
  double worst = 0;
  for (const auto& pair : ref_top5) {
    worst = std::max(worst, std::fabs(lp[pair[0].get<int>()] - pair[1].get<double>()));
  }
  return worst;
}

int Argmax(const float* x, int n) { return static_cast<int>(std::max_element(x, x + n) - x); }

void CheckFamily(const std::string& family) {
  std::ifstream in("tests/data/reference/" + family + ".json");
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  const json ref = json::parse(ss.str());
  const std::string dir = ref["model_dir"].get<std::string>();
  auto config = LoadModelConfig(dir);
  INFO(family << ": " << config.status().ToString());
  REQUIRE(config.ok());
  auto ckpt = Checkpoint::Open(dir);
  INFO(ckpt.status().ToString());
  REQUIRE(ckpt.ok());
  RunnerOptions opts;
  opts.kv_block_size = 16;
  opts.num_kv_blocks = 64;
  auto runner = CreateCpuRunner(**ckpt, *config, opts);
  INFO(runner.status().ToString());
  REQUIRE(runner.ok());
  const int V = config->vocab_size;
  double worst_step = 0, worst_tf = 0;
  for (const auto& c : ref["cases"]) {
    INFO(family << " case " << c["name"].get<std::string>());
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto greedy = c["greedy_ids"].get<std::vector<int32_t>>();
    const int n = static_cast<int>(prompt.size());
    const std::vector<int32_t> table = testing::Iota((n + 17 + 15) / 16, 0);
    // Stepwise: prefill the prompt, then decode greedily.
    auto logits = testing::RunChunk(**runner, prompt, 0, table, Logits::kLast);
    for (size_t i = 0; i < greedy.size(); ++i) {
      worst_step = std::max(worst_step, Top5Error(c["top5"][i], logits.data(), V));
      const int next = Argmax(logits.data(), V);
      REQUIRE(next == greedy[i]);
      logits = testing::RunChunk(**runner, {next}, n + static_cast<int32_t>(i), table, Logits::kLast);
    }
    // Teacher-forced: one prefill over prompt + greedy, every row's logits.
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), greedy.begin(), greedy.end());
    auto rows = testing::RunChunk(**runner, all, 0, table, Logits::kAll, 1);
    for (size_t i = 0; i < greedy.size(); ++i) {
      const float* row = rows.data() + size_t(n - 1 + i) * V;
      REQUIRE(Argmax(row, V) == greedy[i]);
      worst_tf = std::max(worst_tf, Top5Error(c["teacher_forced_top5"][i], row, V));
    }
  }
  WARN(family << ": max |logprob - transformers| stepwise " << worst_step << ", teacher-forced "
              << worst_tf);
  REQUIRE(worst_step < kTolerance);
  REQUIRE(worst_tf < kTolerance);
}

TEST_CASE("Mixtral matches transformers", "[hf_reference]") { CheckFamily("mixtral"); }
TEST_CASE("Qwen2-MoE matches transformers", "[hf_reference]") { CheckFamily("qwen2_moe"); }
TEST_CASE("Qwen3-MoE matches transformers", "[hf_reference]") { CheckFamily("qwen3_moe"); }
TEST_CASE("OLMoE matches transformers", "[hf_reference]") { CheckFamily("olmoe"); }

}  // namespace
}  // namespace moe::engine

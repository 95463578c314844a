// moe_generate: runs one prompt through a model directory and prints the continuation.
//
//   moe_generate --model DIR [--device auto|cpu|cuda] (--prompt TEXT | --prompt-ids 1,2,3)
//                [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S]
//                [--presence-penalty P] [--frequency-penalty F] [--repetition-penalty R]
//                [--min-p M] [--logit-bias ID:BIAS,...] [--logprobs K] [--ignore-eos] [--json]
//
// Text mode streams the text as it is generated. With --json it prints one object:
//   {"prompt_ids": [...], "token_ids": [...], "text": "...",
//    "logprobs": [[[id, logprob], ...] one list per generated token]}
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/generate.h"
#include "engine/model_loader.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "moe_generate: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Generate a continuation of one prompt with a MoE model directory."};
  std::string model_dir, device = "auto", prompt, prompt_ids_arg;
  int max_tokens = 16, top_k = 0, logprobs = 0;
  float temperature = 0.f, top_p = 1.f;
  float presence_penalty = 0.f, frequency_penalty = 0.f, repetition_penalty = 1.f, min_p = 0.f;
  std::string logit_bias_arg;
  int64_t seed = -1;
  bool json = false, ignore_eos = false;
  app.add_option("--model", model_dir, "Hugging Face model directory")->required();
  app.add_option("--device", device, "auto | cpu | cuda");
  std::string dtype = "auto";
  app.add_option("--dtype", dtype, "CUDA storage dtype: auto | bf16 | fp16 | fp32 (the CPU computes in fp32)");
  auto* p1 = app.add_option("--prompt", prompt, "prompt text");
  auto* p2 = app.add_option("--prompt-ids", prompt_ids_arg, "prompt token ids, comma separated");
  p1->excludes(p2);
  app.add_option("--max-tokens", max_tokens, "tokens to generate");
  app.add_option("--temperature", temperature, "0 = greedy");
  app.add_option("--top-k", top_k, "0 = disabled");
  app.add_option("--top-p", top_p, "nucleus sampling mass, 1 = disabled");
  app.add_option("--presence-penalty", presence_penalty, "subtracted once from tokens already generated, [-2, 2]");
  app.add_option("--frequency-penalty", frequency_penalty, "subtracted per occurrence in the output, [-2, 2]");
  app.add_option("--repetition-penalty", repetition_penalty, "> 0; 1 = off; divides positive logits of prompt/output tokens");
  app.add_option("--min-p", min_p, "drop tokens below min_p x the top token's probability, [0, 1]");
  app.add_option("--logit-bias", logit_bias_arg, "ID:BIAS pairs, comma separated, bias in [-100, 100]");
  app.add_option("--seed", seed, "sampling seed (default: random)");
  app.add_option("--logprobs", logprobs, "top-n logprobs per generated token");
  app.add_flag("--ignore-eos", ignore_eos, "do not stop at the model's eos tokens");
  app.add_flag("--json", json, "print one JSON object");
  CLI11_PARSE(app, argc, argv);
  if (prompt.empty() && prompt_ids_arg.empty()) return Fail("one of --prompt or --prompt-ids is required");

  auto kind = moe::engine::ParseDeviceKind(device);
  if (!kind.ok()) return Fail(std::string(kind.status().message()));
  moe::engine::LoadOptions load_options;
  load_options.device = *kind;
  load_options.runner.dtype = dtype;
  auto model = moe::engine::LoadModel(model_dir, load_options);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  if (!json) std::fprintf(stderr, "device: %s (%s)\n", model->runner->device_name().c_str(),
                          model->device_reason.c_str());

  std::vector<int32_t> prompt_ids;
  if (!prompt_ids_arg.empty()) {
    for (absl::string_view piece : absl::StrSplit(prompt_ids_arg, ',', absl::SkipWhitespace())) {
      int32_t id;
      if (!absl::SimpleAtoi(piece, &id) || id < 0 || id >= model->config.vocab_size) {
        return Fail("prompt-ids: '" + std::string(piece) + "' is not a token id of this model");
      }
      prompt_ids.push_back(id);
    }
  } else {
    auto ids = model->tokenizer->Encode(prompt, /*add_special_tokens=*/true);
    if (!ids.ok()) return Fail(std::string(ids.status().message()));
    prompt_ids = *std::move(ids);
  }

  moe::engine::GenerateOptions options;
  options.max_tokens = max_tokens;
  options.sampling.temperature = temperature;
  options.sampling.top_k = top_k;
  options.sampling.top_p = top_p;
  options.sampling.logprobs = logprobs;
  options.sampling.presence_penalty = presence_penalty;
  options.sampling.frequency_penalty = frequency_penalty;
  options.sampling.repetition_penalty = repetition_penalty;
  options.sampling.min_p = min_p;
  for (absl::string_view pair : absl::StrSplit(logit_bias_arg, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts = absl::StrSplit(pair, ':');
    int32_t id;
    float bias;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &id) || !absl::SimpleAtof(parts[1], &bias)) {
      return Fail("logit-bias: '" + std::string(pair) + "' is not ID:BIAS");
    }
    options.sampling.logit_bias.emplace_back(id, bias);
  }
  if (seed >= 0) {
    options.sampling.has_seed = true;
    options.sampling.seed = static_cast<uint64_t>(seed);
  }
  options.fallback_seed = std::random_device{}();
  if (!ignore_eos) {
    for (int id : model->config.eos_token_ids) options.stop_token_ids.push_back(id);
  }
  moe::engine::IncrementalDetokenizer detok(*model->tokenizer, prompt_ids);
  if (!json) {
    options.on_token = [&detok](const moe::engine::SampledToken& t) {
      std::string piece = detok.Add(t.token);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
      return true;
    };
  }
  auto result = moe::engine::GenerateOne(*model->runner, prompt_ids, options);
  if (!result.ok()) return Fail(std::string(result.status().message()));

  if (!json) {
    std::string rest = detok.Flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  auto text = model->tokenizer->Decode(result->token_ids, /*skip_special_tokens=*/true);
  if (!text.ok()) return Fail(std::string(text.status().message()));
  nlohmann::json out;
  out["prompt_ids"] = prompt_ids;
  out["token_ids"] = result->token_ids;
  out["text"] = *text;
  nlohmann::json lps = nlohmann::json::array();
  for (const auto& t : result->tokens) {
    nlohmann::json step = nlohmann::json::array();
    for (const auto& [id, lp] : t.top_logprobs) step.push_back({id, lp});
    lps.push_back(step);
  }
  out["logprobs"] = lps;
  // Invalid UTF-8 cannot appear in decoded text, but be safe: replace rather than throw.
  std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return 0;
}

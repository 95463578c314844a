#include "server/http/generation.h"

#include <algorithm>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/sampling/json_constraint.h"
#include "engine/sampling/json_schema.h"
#include "engine/sampling/json_schema_constraint.h"
#include "engine/sampling/tool_call_constraint.h"

namespace moe::server::http {

uint64_t RandomU64() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  return rng();
}

absl::StatusOr<std::unique_ptr<Generation>> Generation::Submit(
    scheduler::Scheduler* scheduler, const OpenAiRequest& req,
    const std::vector<std::vector<int32_t>>& prompts, const std::string& id_prefix,
    int max_buffered_tokens, std::shared_ptr<const engine::LogitConstraintFactory> constraint) {
  // Each (prompt, choice) pair is one queued sequence: a request with more of them than
  // the queue holds could never be admitted, so it is a client error, not a 429 to retry.
  const int64_t sequences = static_cast<int64_t>(prompts.size()) * req.n;
  if (sequences > scheduler->max_queue()) {
    return absl::InvalidArgumentError(absl::StrCat(
        req.n > 1 ? "n" : "prompt", ": the request makes ", sequences,
        " sequences (prompts x n) but the server queues at most ", scheduler->max_queue(),
        " (--max-queue)"));
  }
  std::unique_ptr<Generation> g(new Generation());
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (int i = 0; i < req.n; ++i) {
      const int index = static_cast<int>(p) * req.n + i;
      scheduler::GenerateRequest r;
      r.request_id = absl::StrCat(id_prefix, "-", index);
      r.prompt = prompts[p];
      r.sampling.temperature = req.temperature;
      r.sampling.top_p = req.top_p;
      r.sampling.top_k = req.top_k;
      r.sampling.presence_penalty = req.presence_penalty;
      r.sampling.frequency_penalty = req.frequency_penalty;
      r.sampling.repetition_penalty = req.repetition_penalty;
      r.sampling.min_p = req.min_p;
      r.sampling.logit_bias = req.logit_bias;
      if (req.seed.has_value()) {
        r.sampling.has_seed = true;
        r.sampling.seed = static_cast<uint64_t>(*req.seed) + static_cast<uint64_t>(index);
      }
      r.fallback_seed = RandomU64();
      // The sampled token's logprob needs at least one entry; extra ones are trimmed.
      r.sampling.logprobs = req.logprobs ? std::max(1, req.top_logprobs) : 0;
      if (req.max_tokens.has_value()) {
        r.max_tokens = *req.max_tokens;
      } else if (req.kind == ApiKind::kChat) {
        r.max_tokens = std::max(1, scheduler->max_model_len() -
                                       static_cast<int>(prompts[p].size()));
      } else {
        // OpenAI's default of 16, within the room the context leaves (as vLLM clamps it).
        r.max_tokens = std::max(
            1, std::min(16, scheduler->max_model_len() - static_cast<int>(prompts[p].size())));
      }
      r.stop_strings = req.stop;
      r.stop_token_ids = req.stop_token_ids;
      r.ignore_eos = req.ignore_eos;
      r.constraint = constraint;
      r.priority = req.priority;
      Choice c;
      c.submitted = absl::Now();
      absl::StatusOr<std::shared_ptr<scheduler::RequestHandle>> h =
          scheduler->Submit(std::move(r));
      if (!h.ok()) return h.status();  // the destructor cancels what was submitted
      c.handle = *std::move(h);
      c.handle->set_max_buffered_tokens(max_buffered_tokens);
      g->choices_.push_back(std::move(c));
    }
  }
  return g;
}

absl::StatusOr<std::shared_ptr<const engine::LogitConstraintFactory>> ResponseFormatConstraint(
    const OpenAiRequest& req, engine::sampling::TokenTrieCache* tries,
    std::vector<int32_t> eos_ids) {
  if (!req.json_schema.is_null()) {
    absl::StatusOr<std::shared_ptr<const engine::sampling::JsonSchema>> schema =
        engine::sampling::JsonSchema::Compile(req.json_schema, req.json_schema_strict);
    if (!schema.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("response_format: ", schema.status().message()));
    }
    if (tries == nullptr) return nullptr;
    return std::shared_ptr<const engine::LogitConstraintFactory>(
        std::make_shared<engine::sampling::JsonSchemaConstraintFactory>(
            *std::move(schema), tries->Trie(), std::move(eos_ids)));
  }
  if (!req.json_object || tries == nullptr) return nullptr;
  return std::shared_ptr<const engine::LogitConstraintFactory>(
      std::make_shared<engine::sampling::JsonConstraintFactory>(
          tries->JsonIndex(), std::move(eos_ids), engine::sampling::JsonTopLevel::kObject));
}

absl::StatusOr<std::shared_ptr<const engine::LogitConstraintFactory>> ToolChoiceConstraint(
    const OpenAiRequest& req, engine::sampling::TokenTrieCache* tries,
    std::vector<int32_t> eos_ids) {
  if (!req.forced_tool_call() || !req.tools.is_array()) return nullptr;
  std::vector<engine::sampling::ToolCallSpec> specs;
  for (size_t i = 0; i < req.tools.size(); ++i) {
    // Shapes were checked when the request was parsed (openai_request.h).
    const nlohmann::ordered_json& fn = req.tools[i]["function"];
    engine::sampling::ToolCallSpec t;
    t.name = fn["name"].get<std::string>();
    if (req.tool_choice == "function" && t.name != req.tool_choice_name) continue;
    if (auto p = fn.find("parameters"); p != fn.end()) t.parameters = *p;
    if (auto st = fn.find("strict"); st != fn.end() && st->is_boolean()) t.strict = st->get<bool>();
    t.field = absl::StrCat("tools[", i, "].function.parameters");
    specs.push_back(std::move(t));
    if (req.tool_choice == "function") break;  // the first tool of that name
  }
  absl::StatusOr<std::shared_ptr<const engine::sampling::ToolCallGrammar>> grammar =
      engine::sampling::ToolCallGrammar::Compile(specs);
  if (!grammar.ok()) return grammar.status();
  if (tries == nullptr) return nullptr;
  return std::shared_ptr<const engine::LogitConstraintFactory>(
      std::make_shared<engine::sampling::ToolCallConstraintFactory>(
          *std::move(grammar), tries->Trie(), std::move(eos_ids)));
}

Generation::~Generation() {
  CancelAll();
  // The engine ends cancelled requests within one step; collect those final events so
  // they reach the metrics. Bounded, in case the engine is stuck in a long step.
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  scheduler::StreamEvent ev;
  int choice = 0;
  while (!all_finished() && absl::Now() < deadline) {
    Next(&choice, &ev, absl::Milliseconds(20));
  }
}

void Generation::CancelAll() {
  for (Choice& c : choices_) {
    if (!c.finished && c.handle != nullptr) c.handle->Cancel();
  }
}

bool Generation::Next(int* choice, scheduler::StreamEvent* event, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const size_t n = choices_.size();
  while (!all_finished()) {
    // One pass without waiting, starting after the last choice served.
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (cursor_ + k) % n;
      Choice& c = choices_[i];
      if (c.finished || !c.handle->Next(event, absl::ZeroDuration())) continue;
      cursor_ = i + 1;
      if (event->kind != scheduler::StreamEvent::Kind::kTokens) {
        c.finished = true;
        ++num_finished_;
      }
      *choice = static_cast<int>(i);
      return true;
    }
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    // Sleep on one unfinished handle for a short slice, then poll all again.
    for (size_t k = 0; k < n; ++k) {
      Choice& c = choices_[(cursor_ + k) % n];
      if (c.finished) continue;
      if (c.handle->Next(event, std::min(deadline - now, absl::Milliseconds(5)))) {
        const size_t i = (cursor_ + k) % n;
        cursor_ = i + 1;
        if (event->kind != scheduler::StreamEvent::Kind::kTokens) {
          c.finished = true;
          ++num_finished_;
        }
        *choice = static_cast<int>(i);
        return true;
      }
      break;
    }
  }
  return false;
}

}  // namespace moe::server::http

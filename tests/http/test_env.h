// A real serving stack for HTTP tests: a tiny checkpoint from tests/data/models loaded on
// the CPU backend, a started Scheduler, Metrics and an HttpGateway on 127.0.0.1 with an
// OS-chosen port.
//
// Thread safety: build and destroy on one thread; the members are thread-safe as their
// own headers say.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model_loader.h"
#include "scheduler/scheduler.h"
#include "server/http/http_gateway.h"
#include "server/metrics/metrics.h"

namespace moe::testing {

struct HttpTestEnvOptions {
  std::string model_dir = "tests/data/models/qwen3_moe";
  std::string model_name = "tiny-qwen3-moe";
  std::string chat_template_file;  // "" = none (qwen3_moe's tokenizer has no template)
  std::string api_key;
  std::string allowed_origins;  // HttpGatewayOptions::allowed_origins
  size_t max_body_bytes = 1 << 20;
  bool set_ready = true;  // false: the gateway stays "loading"
  // As --enable-auto-tool-choice --tool-call-parser hermes.
  bool enable_auto_tool_choice = false;
  // Non-empty: every sequence's text is this script instead of the model's detokenized
  // output (its k-th generated token, whatever the id, shows as scripted_text[k]; "" past
  // the end), so tests can drive exact model output (tool-call blocks, stop strings)
  // through the scheduler and the gateway.
  std::vector<std::string> scripted_text;
};

struct HttpTestEnv {
  engine::LoadedModel model;
  std::vector<std::string> scripted_text;  // HttpTestEnvOptions::scripted_text
  std::unique_ptr<server::Metrics> metrics;  // outlives the scheduler that feeds it
  std::unique_ptr<scheduler::Scheduler> scheduler;
  std::unique_ptr<server::http::HttpGateway> gateway;

  ~HttpTestEnv();  // gateway first, then the scheduler
  void SetReady();
};

absl::StatusOr<std::unique_ptr<HttpTestEnv>> StartHttpTestEnv(const HttpTestEnvOptions& options);

}  // namespace moe::testing

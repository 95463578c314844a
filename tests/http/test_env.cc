#include "tests/http/test_env.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace moe::testing {
namespace {

class DetokenizerDecoder : public scheduler::TextDecoder {
 public:
  DetokenizerDecoder(const engine::Tokenizer& tok, absl::Span<const int32_t> prompt)
      : detok_(tok, prompt, /*skip_special_tokens=*/true) {}
  std::string Add(int32_t id) override { return detok_.Add(id); }
  std::string Flush() override { return detok_.Flush(); }

 private:
  engine::IncrementalDetokenizer detok_;
};

class ScriptedDecoder : public scheduler::TextDecoder {
 public:
  explicit ScriptedDecoder(const std::vector<std::string>* script) : script_(*script) {}
  std::string Add(int32_t /*id*/) override {
    return next_ < script_.size() ? script_[next_++] : std::string();
  }
  std::string Flush() override { return ""; }

 private:
  const std::vector<std::string>& script_;
  size_t next_ = 0;
};

}  // namespace

HttpTestEnv::~HttpTestEnv() {
  if (gateway) gateway->Stop();
  gateway.reset();
  if (scheduler) scheduler->Shutdown();
}

void HttpTestEnv::SetReady() {
  server::http::HttpServingContext ctx;
  ctx.scheduler = scheduler.get();
  ctx.tokenizer = model.tokenizer.get();
  ctx.config = &model.config;
  absl::Status s = gateway->SetReady(ctx);
  if (!s.ok()) std::abort();
}

absl::StatusOr<std::unique_ptr<HttpTestEnv>> StartHttpTestEnv(const HttpTestEnvOptions& o) {
  auto env = std::make_unique<HttpTestEnv>();
  engine::LoadOptions lo;
  lo.device = engine::DeviceKind::kCpu;
  lo.runner.num_kv_blocks = 256;
  lo.runner.num_threads = 1;
  absl::StatusOr<engine::LoadedModel> m = engine::LoadModel(o.model_dir, lo);
  if (!m.ok()) return m.status();
  env->model = *std::move(m);

  env->metrics = std::make_unique<server::Metrics>(o.model_name);
  scheduler::SchedulerOptions so;
  so.on_request_finished = env->metrics->SchedulerHook();
  so.max_num_seqs = 16;
  so.max_num_batched_tokens = 256;
  const engine::Tokenizer* tok = env->model.tokenizer.get();
  env->scripted_text = o.scripted_text;
  if (!env->scripted_text.empty()) {
    so.make_text_decoder = [script = &env->scripted_text](absl::Span<const int32_t>) {
      return std::unique_ptr<scheduler::TextDecoder>(new ScriptedDecoder(script));
    };
  } else {
    so.make_text_decoder = [tok](absl::Span<const int32_t> prompt) {
      return std::unique_ptr<scheduler::TextDecoder>(new DetokenizerDecoder(*tok, prompt));
    };
  }
  env->scheduler = std::make_unique<scheduler::Scheduler>(env->model.runner.get(), so);
  if (absl::Status s = env->scheduler->Start(); !s.ok()) return s;

  server::http::HttpGatewayOptions go;
  go.host = "127.0.0.1";
  go.port = 0;
  go.model_name = o.model_name;
  go.api_key = o.api_key;
  go.allowed_origins = o.allowed_origins;
  go.max_body_bytes = o.max_body_bytes;
  go.num_threads = 8;
  if (o.enable_auto_tool_choice) {
    go.enable_auto_tool_choice = true;
    go.tool_call_parser = "hermes";
  }
  if (!o.chat_template_file.empty()) {
    std::ifstream in(o.chat_template_file);
    if (!in) return absl::NotFoundError(absl::StrCat("chat template: ", o.chat_template_file));
    std::stringstream ss;
    ss << in.rdbuf();
    go.chat_template = ss.str();
  }
  absl::StatusOr<std::unique_ptr<server::http::HttpGateway>> g =
      server::http::HttpGateway::Start(go, env->metrics.get());
  if (!g.ok()) return g.status();
  env->gateway = *std::move(g);
  if (o.set_ready) env->SetReady();
  return env;
}

}  // namespace moe::testing

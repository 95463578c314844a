// Fuzzes the OpenAI/vLLM request parsers (server/http/openai_request.h): every input goes
// to all four. The header promises they accept any bytes, never throw, and report
// errors as "<field>: <message>". Accepted requests are checked against the documented
// ranges (n, top_logprobs).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/http/openai_request.h"
#include "tests/fuzz/fuzz_data.h"

namespace {

namespace http = moe::server::http;

void CheckError(const absl::Status& s) {
  if (s.ok()) return;
  if (s.code() != absl::StatusCode::kInvalidArgument) moe::fuzz::Fail("error not INVALID_ARGUMENT");
  if (s.message().find(": ") == absl::string_view::npos) moe::fuzz::Fail("error names no field");
}

void CheckRequest(const absl::StatusOr<http::OpenAiRequest>& r) {
  CheckError(r.status());
  if (!r.ok()) return;
  if (r->n < 1 || r->n > http::kMaxN) moe::fuzz::Fail("n out of range accepted");
  if (r->top_logprobs < 0 || r->top_logprobs > http::kMaxTopLogprobs) {
    moe::fuzz::Fail("top_logprobs out of range accepted");
  }
  for (const std::string& s : r->stop) {
    if (s.empty()) moe::fuzz::Fail("empty stop string kept");
  }
  if (r->max_tokens && *r->max_tokens < 1) moe::fuzz::Fail("max_tokens < 1 accepted");
  if (!(r->temperature >= 0)) moe::fuzz::Fail("negative or NaN temperature accepted");
  if (!(r->top_p > 0 && r->top_p <= 1)) moe::fuzz::Fail("top_p outside (0, 1] accepted");
  for (const auto& p : r->prompt_ids) {
    for (int32_t id : p) {
      if (id < 0) moe::fuzz::Fail("negative prompt token id accepted");
    }
  }
  // What the gateway does next with a chat request: serialise the messages.
  if (r->kind == http::ApiKind::kChat) (void)r->messages.dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view body(reinterpret_cast<const char*>(data), size);
  CheckRequest(http::ParseCompletionRequest(body));
  CheckRequest(http::ParseChatRequest(body));
  auto tok = http::ParseTokenizeRequest(body);
  CheckError(tok.status());
  auto detok = http::ParseDetokenizeRequest(body);
  CheckError(detok.status());
  return 0;
}

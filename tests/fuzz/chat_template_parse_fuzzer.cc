// Fuzzes moe::server::ChatTemplate::Parse with arbitrary template source, then renders a
// fixed conversation with it (with and without the generation prompt). The header
// promises templates are untrusted input: Parse and Render return errors, never crash
// or hang. Limits are tighter than the defaults so each input stays fast; the limit
// paths themselves are what is being exercised.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "server/chat_template/chat_template.h"
#include "tests/fuzz/fuzz_data.h"

namespace {

const nlohmann::ordered_json* g_messages = nullptr;
const nlohmann::ordered_json* g_extra = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_messages = new nlohmann::ordered_json(nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi <b> & \"x\" \u00e9\u20ac"},
    {"role": "assistant", "content": "<think>hmm</think>Hello", "reasoning_content": "r",
     "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
    {"role": "tool", "content": "{\"ok\": true}"},
    {"role": "user", "content": [{"type": "text", "text": "part"}]}
  ])"));
  g_extra = new nlohmann::ordered_json(nlohmann::ordered_json::parse(R"({
    "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false,
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
               "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}}]
  })"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view source(reinterpret_cast<const char*>(data), size);
  moe::server::chat_template::RenderLimits limits;
  limits.max_steps = 100'000;
  limits.max_output_bytes = 1u << 20;
  limits.max_call_depth = 32;
  auto tmpl = moe::server::ChatTemplate::Parse(source, limits);
  if (!tmpl.ok()) {
    if (tmpl.status().message().empty()) moe::fuzz::Fail("parse error without a message");
    return 0;
  }
  for (bool gen : {false, true}) {
    auto out = tmpl->Render(*g_messages, gen, *g_extra);
    if (out.ok() && out->size() > limits.max_output_bytes) moe::fuzz::Fail("output over limit");
  }
  return 0;
}

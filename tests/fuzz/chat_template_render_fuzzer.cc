// Fuzzes ChatTemplate::Render of the real model templates (tests/data/chat_templates/
// *.jinja, parsed once at start-up) with fuzzed conversations. Input: byte 0 picks the
// template, byte 1 bit 0 is add_generation_prompt, the rest is JSON: either a messages
// array, or an object {"messages": [...], ...extra context...}. Any JSON value is
// passed through (Render must reject non-arrays with an error, not crash).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "server/chat_template/chat_template.h"
#include "tests/fuzz/fuzz_data.h"

namespace {

std::vector<moe::server::ChatTemplate>* g_templates = nullptr;

constexpr const char* kTemplates[] = {"mixtral_8x7b_instruct", "olmoe_1b_7b_0924_instruct",
                                      "qwen1_5_moe_a2_7b_chat", "qwen2_5_instruct", "qwen3"};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const char* argv0 = (*argc > 0) ? (*argv)[0] : nullptr;
  g_templates = new std::vector<moe::server::ChatTemplate>();
  for (const char* name : kTemplates) {
    std::string src = moe::fuzz::ReadDataFile(
        std::string("tests/data/chat_templates/") + name + ".jinja", argv0);
    auto t = moe::server::ChatTemplate::Parse(src);
    if (!t.ok()) {
      std::fprintf(stderr, "template %s: %s\n", name, t.status().ToString().c_str());
      std::exit(2);
    }
    g_templates->push_back(*std::move(t));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const moe::server::ChatTemplate& tmpl = (*g_templates)[data[0] % g_templates->size()];
  const bool gen = data[1] & 1;
  absl::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  // The gateway refuses JSON nested deeper than 64 before parsing; mirror that bound so
  // the fuzzer explores rendering rather than nlohmann's recursion.
  int depth = 0, max_depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{') max_depth = std::max(max_depth, ++depth);
    if (c == ']' || c == '}') --depth;
  }
  if (max_depth > 64) return 0;
  nlohmann::ordered_json j =
      nlohmann::ordered_json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  nlohmann::ordered_json messages = j, extra = nullptr;
  if (j.is_object() && j.contains("messages")) {
    messages = j["messages"];
    extra = j;
    extra.erase("messages");
  }
  auto out = tmpl.Render(messages, gen, extra);
  if (out.ok() && !messages.is_array()) moe::fuzz::Fail("Render accepted non-array messages");
  return 0;
}

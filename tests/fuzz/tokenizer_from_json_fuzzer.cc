// Fuzzes moe::engine::Tokenizer::FromJson(tokenizer_json, tokenizer_config_json): the
// input is split at its first NUL byte (before: tokenizer.json, after:
// tokenizer_config.json). A tokenizer it accepts is exercised briefly: encode a short
// mixed text, decode the result and a sweep of ids (checked to be valid UTF-8).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view all(reinterpret_cast<const char*>(data), size);
  absl::string_view tok_json = all, cfg_json;
  size_t nul = all.find('\0');
  if (nul != absl::string_view::npos) {
    tok_json = all.substr(0, nul);
    cfg_json = all.substr(nul + 1);
  }
  auto tok = moe::engine::Tokenizer::FromJson(tok_json, cfg_json);
  if (!tok.ok()) {
    if (tok.status().message().empty()) moe::fuzz::Fail("error without a message");
    return 0;
  }
  const moe::engine::Tokenizer& t = **tok;
  static const char* kTexts[] = {"Hello world", " <s>a\n\n b\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
                                 "\xff\xfe x", ""};
  for (const char* text : kTexts) {
    for (bool special : {false, true}) {
      auto ids = t.Encode(text, special);
      if (!ids.ok()) continue;
      for (int32_t id : *ids) {
        if (id < 0 || id >= t.vocab_size()) moe::fuzz::Fail("Encode id outside the vocabulary");
      }
      auto s = t.Decode(*ids, !special);
      if (s.ok() && !moe::fuzz::IsValidUtf8(*s)) moe::fuzz::Fail("Decode gave invalid UTF-8");
    }
  }
  std::vector<int32_t> sweep;
  for (int32_t id = 0; id < t.vocab_size() && id < 512; ++id) sweep.push_back(id);
  auto s = t.Decode(sweep, false);
  if (s.ok() && !moe::fuzz::IsValidUtf8(*s)) moe::fuzz::Fail("Decode gave invalid UTF-8");
  for (int32_t id : {-1, 0, t.vocab_size() - 1, t.vocab_size()}) {
    (void)t.IdToToken(id);
    (void)t.IsSpecial(id);
  }
  (void)t.bos_id();
  (void)t.eos_id();
  return 0;
}

// Fuzzes the tokenizer's Encode, Decode and IncrementalDetokenizer with the committed
// test tokenizers (tests/data/tokenizers/<style>/tokenizer.json, read once at start-up).
// Input layout: byte 0 picks the tokenizer, byte 1 holds flags, the rest is both the text
// to encode and (read as little-endian 16-bit values) ids to decode, some of them outside
// the vocabulary. Checks the header's promises: Decode's text is valid UTF-8, an
// out-of-range id is an error, and no IncrementalDetokenizer chunk breaks UTF-8.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_data.h"

namespace {

std::vector<std::unique_ptr<moe::engine::Tokenizer>>* g_tokenizers = nullptr;

constexpr const char* kStyles[] = {"gpt2", "llama3", "llama_legacy", "metaspace", "misc", "qwen2"};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const char* argv0 = (*argc > 0) ? (*argv)[0] : nullptr;
  g_tokenizers = new std::vector<std::unique_ptr<moe::engine::Tokenizer>>();
  for (const char* style : kStyles) {
    std::string dir = std::string("tests/data/tokenizers/") + style;
    std::string tok = moe::fuzz::ReadDataFile(dir + "/tokenizer.json", argv0);
    std::string cfg = moe::fuzz::ReadDataFile(dir + "/tokenizer_config.json", argv0);
    auto t = moe::engine::Tokenizer::FromJson(tok, cfg);
    if (!t.ok()) {
      std::fprintf(stderr, "tokenizer %s: %s\n", style, t.status().ToString().c_str());
      std::exit(2);
    }
    g_tokenizers->push_back(*std::move(t));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using moe::fuzz::Fail;
  using moe::fuzz::IsValidUtf8;
  if (size < 2) return 0;
  const moe::engine::Tokenizer& tok = *(*g_tokenizers)[data[0] % g_tokenizers->size()];
  const uint8_t flags = data[1];
  const bool add_special = flags & 1;
  const bool skip_special = flags & 2;
  absl::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);

  // Encode: every id it returns must be in the vocabulary and decodable.
  auto ids = tok.Encode(text, add_special);
  if (ids.ok()) {
    for (int32_t id : *ids) {
      if (id < 0 || id >= tok.vocab_size()) Fail("Encode returned an id outside the vocabulary");
    }
    auto round = tok.Decode(*ids, skip_special);
    if (!round.ok()) Fail("Decode failed on Encode's own ids");
    if (!IsValidUtf8(*round)) Fail("Decode returned invalid UTF-8 (encoded ids)");
  }

  // Decode arbitrary ids: values in [-4, vocab + 4).
  const int32_t vocab = tok.vocab_size();
  std::vector<int32_t> fuzz_ids;
  bool any_out_of_range = false;
  for (size_t i = 2; i + 1 < size; i += 2) {
    uint32_t v = data[i] | (static_cast<uint32_t>(data[i + 1]) << 8);
    int32_t id = static_cast<int32_t>(v % static_cast<uint32_t>(vocab + 8)) - 4;
    any_out_of_range |= (id < 0 || id >= vocab);
    fuzz_ids.push_back(id);
  }
  auto decoded = tok.Decode(fuzz_ids, skip_special);
  if (decoded.ok()) {
    if (any_out_of_range) Fail("Decode accepted an id outside the vocabulary");
    if (!IsValidUtf8(*decoded)) Fail("Decode returned invalid UTF-8 (fuzzed ids)");
  } else if (!any_out_of_range) {
    Fail("Decode failed on in-range ids");
  }

  // Stream the ids after a prompt made of the first few of them.
  size_t prompt_len = fuzz_ids.empty() ? 0 : (flags >> 2) % (fuzz_ids.size() + 1);
  std::vector<int32_t> prompt;
  for (size_t i = 0; i < prompt_len; ++i) {
    if (fuzz_ids[i] >= 0 && fuzz_ids[i] < vocab) prompt.push_back(fuzz_ids[i]);
  }
  moe::engine::IncrementalDetokenizer detok(tok, prompt, skip_special);
  std::string streamed;
  for (size_t i = prompt_len; i < fuzz_ids.size(); ++i) {
    std::string piece = detok.Add(fuzz_ids[i]);
    if (!IsValidUtf8(piece)) Fail("IncrementalDetokenizer::Add broke UTF-8");
    streamed += piece;
  }
  std::string rest = detok.Flush();
  if (!IsValidUtf8(rest)) Fail("IncrementalDetokenizer::Flush broke UTF-8");
  return 0;
}

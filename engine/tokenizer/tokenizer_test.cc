// Checks the tokenizer against vectors from Hugging Face `tokenizers`
// (tests/data/tokenizers/*/cases.json, made by tools/gen_tokenizer_cases.py), the
// incremental detokenizer's streaming contract, and bad-input handling.
#include "engine/tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>
#include <atomic>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"

namespace moe::engine {
namespace {

using Json = nlohmann::json;
const char* const kStyles[] = {"gpt2", "qwen2", "llama3", "llama_legacy", "metaspace", "misc"};

std::string DataDir(const std::string& style) { return "tests/data/tokenizers/" + style; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Independent of the library's helpers on purpose.
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && c < 0xC2)) return false;
    uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const unsigned char d = s[i + k];
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n;
  }
  return true;
}

std::unique_ptr<Tokenizer> Load(const std::string& style) {
  auto t = Tokenizer::FromDirectory(DataDir(style));
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(*t);
}

Json Cases(const std::string& style) {
  Json j = Json::parse(ReadFile(DataDir(style) + "/cases.json"));
  REQUIRE(j["cases"].size() >= 40);
  return j["cases"];
}

std::vector<int32_t> Ids(const Json& j) { return j.get<std::vector<int32_t>>(); }

TEST_CASE("Encode, Decode and tokens match Hugging Face tokenizers", "[tokenizer]") {
  for (const char* style : kStyles) {
    auto tok = Load(style);
    for (const Json& c : Cases(style)) {
      const std::string text = c["text"];
      INFO(style << " text: " << text.substr(0, 80));
      auto with = tok->Encode(text, true);
      auto without = tok->Encode(text, false);
      REQUIRE(with.ok());
      REQUIRE(without.ok());
      CHECK(*with == Ids(c["ids"]));
      CHECK(*without == Ids(c["ids_no_special"]));
      const auto expected_tokens = c["tokens"].get<std::vector<std::string>>();
      REQUIRE(expected_tokens.size() == without->size());
      for (size_t i = 0; i < without->size(); ++i) {
        // HF reports an added token by the text it matched (with lstrip/rstrip spaces).
        const std::string& want = expected_tokens[i];
        const std::string got = tok->IdToToken((*without)[i]);
        CHECK((got == want || (tok->TokenToId(got) == (*without)[i] &&
                               std::string(absl::StripAsciiWhitespace(want)) == got)));
      }
      auto decoded = tok->Decode(Ids(c["ids"]), false);
      auto skipped = tok->Decode(Ids(c["ids"]), true);
      REQUIRE(decoded.ok());
      REQUIRE(skipped.ok());
      CHECK(*decoded == c["decoded"].get<std::string>());
      CHECK(*skipped == c["decoded_skip_special"].get<std::string>());
    }
  }
}

std::string Stream(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                   const std::vector<int32_t>& ids, bool skip) {
  IncrementalDetokenizer detok(tok, prompt, skip);
  std::string all;
  for (int32_t id : ids) {
    const std::string piece = detok.Add(id);
    INFO("piece after id " << id << ": " << piece);
    CHECK(ValidUtf8(piece));
    all += piece;
  }
  const std::string rest = detok.Flush();
  CHECK(ValidUtf8(rest));
  return all + rest;
}

TEST_CASE("Incremental detokenization streams exactly the full decode", "[tokenizer]") {
  for (const char* style : kStyles) {
    auto tok = Load(style);
    int with_prompt = 0;  // cases where the prompt's decode is a clean prefix
    for (const Json& c : Cases(style)) {
      const std::vector<int32_t> ids = Ids(c["ids"]);
      INFO(style << " text: " << c["text"].get<std::string>().substr(0, 80));
      for (bool skip : {true, false}) {
        CHECK(Stream(*tok, {}, ids, skip) == *tok->Decode(ids, skip));
        // With the first half as prompt: the stream is the rest of the full decode.
        const size_t half = ids.size() / 2;
        const std::vector<int32_t> prompt(ids.begin(), ids.begin() + half);
        const std::vector<int32_t> gen(ids.begin() + half, ids.end());
        const std::string full = *tok->Decode(ids, skip);
        const std::string head = *tok->Decode(prompt, skip);
        if (full.compare(0, head.size(), head) == 0 &&
            head.find("\xEF\xBF\xBD") == std::string::npos) {
          CHECK(Stream(*tok, prompt, gen, skip) == full.substr(head.size()));
          ++with_prompt;
        }
      }
    }
    INFO(style);
    CHECK(with_prompt >= 60);  // of 2 x 45 cases
  }
}

TEST_CASE("Incremental detokenizer holds back partial characters", "[tokenizer]") {
  auto tok = Load("llama_legacy");
  // "中" is three byte-fallback tokens in this small vocabulary.
  auto ids = tok->Encode("中", false);
  REQUIRE(ids.ok());
  REQUIRE(ids->size() >= 3);
  IncrementalDetokenizer detok(*tok, {});
  std::string out;
  for (size_t i = 0; i + 1 < ids->size(); ++i) out += detok.Add((*ids)[i]);
  CHECK(out.find("\xEF\xBF\xBD") == std::string::npos);
  out += detok.Add(ids->back());
  out += detok.Flush();
  CHECK(out == "中");
}

TEST_CASE("Special token ids, chat template and vocab size", "[tokenizer]") {
  auto qwen = Load("qwen2");
  CHECK(qwen->vocab_size() == 1003);
  REQUIRE(qwen->TokenToId("<|im_end|>").has_value());
  CHECK(qwen->eos_id() == qwen->TokenToId("<|im_end|>"));
  CHECK_FALSE(qwen->bos_id().has_value());
  CHECK(qwen->IsSpecial(*qwen->TokenToId("<|im_start|>")));
  CHECK_FALSE(qwen->IsSpecial(*qwen->TokenToId("the")));
  CHECK(qwen->chat_template().find("<|im_start|>") != std::string::npos);
  CHECK(qwen->IdToToken(qwen->vocab_size()) == "");

  auto llama3 = Load("llama3");  // chat_template given as a list: "default" is used
  CHECK(llama3->chat_template().find("add_generation_prompt") != std::string::npos);
  CHECK(llama3->bos_id() == llama3->TokenToId("<|begin_of_text|>"));

  auto meta = Load("metaspace");  // bos_token given as an AddedToken object
  CHECK(meta->bos_id() == meta->TokenToId("<s>"));
  CHECK(meta->eos_id() == meta->TokenToId("</s>"));
  CHECK(meta->chat_template().empty());
}

TEST_CASE("Long text encodes fast and round-trips", "[tokenizer]") {
  for (const char* style : kStyles) {
    auto tok = Load(style);
    const std::string paragraph = Cases(style).back()["text"];
    std::string text;
    while (text.size() < 200000) text += paragraph + "\n";
    const auto start = std::chrono::steady_clock::now();
    auto ids = tok->Encode(text, false);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    REQUIRE(ids.ok());
    INFO(style << ": " << ids->size() << " ids in " << seconds << " s");
    // A guard against quadratic behaviour (it takes ~30 ms), not a benchmark.
    CHECK(seconds < 20.0);
    auto back = tok->Decode(*ids, true);
    REQUIRE(back.ok());
    // "misc" lowercases and drops whitespace, so only the others round-trip.
    if (std::string(style) != "misc") CHECK(*back == text);
  }
}

TEST_CASE("Malformed or unsupported tokenizer.json is rejected with the field named",
          "[tokenizer]") {
  const std::string good = ReadFile(DataDir("qwen2") + "/tokenizer.json");
  auto error_of = [](const std::string& json) {
    auto t = Tokenizer::FromJson(json, "");
    REQUIRE_FALSE(t.ok());
    return std::string(t.status().message());
  };
  CHECK(error_of("{not json").find("malformed JSON") != std::string::npos);
  CHECK(error_of(good.substr(0, good.size() / 2)).find("malformed") != std::string::npos);

  Json j = Json::parse(good);
  Json bad = j;
  bad["pre_tokenizer"] = {{"type", "Foo"}};
  CHECK(error_of(bad.dump()) == "tokenizer.json: pre_tokenizer.type 'Foo' is not supported");
  bad = j;
  bad["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
  CHECK(error_of(bad.dump()).find("pre_tokenizer.pretokenizers[0].behavior") !=
        std::string::npos);
  bad = j;
  bad["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(unclosed"}};
  CHECK(error_of(bad.dump()).find("pre_tokenizer.pretokenizers[0].pattern") !=
        std::string::npos);
  bad = j;
  bad["model"]["type"] = "Unigram";
  CHECK(error_of(bad.dump()).find("model.type 'Unigram' is not supported") != std::string::npos);
  bad = j;
  bad["model"]["merges"][3] = "onlyonetoken";
  CHECK(error_of(bad.dump()).find("model.merges[3]") != std::string::npos);
  bad = j;
  bad["model"]["merges"][4] = Json::array({"zzzq", "xyzzy"});
  CHECK(error_of(bad.dump()).find("model.merges[4]") != std::string::npos);
  // Ids index tables: a huge id is refused instead of allocating gigabytes (fuzzing).
  bad = j;
  bad["model"]["vocab"]["zzhuge"] = 2000000000;
  CHECK(error_of(bad.dump()).find("model.vocab") != std::string::npos);
  bad = j;
  bad["added_tokens"][0]["id"] = 2000000000;
  CHECK(error_of(bad.dump()).find("added_tokens[0].id") != std::string::npos);
  bad = j;
  bad["model"]["vocab"] = "nope";
  CHECK(error_of(bad.dump()).find("model.vocab") != std::string::npos);
  bad = j;
  bad["normalizer"] = {{"type", "BertNormalizer"}};
  CHECK(error_of(bad.dump()).find("normalizer.type 'BertNormalizer'") != std::string::npos);
  bad = j;
  bad["decoder"] = {{"type", "WordPiece"}};
  CHECK(error_of(bad.dump()).find("decoder.type 'WordPiece'") != std::string::npos);
  bad = j;
  bad["added_tokens"][0]["content"] = 7;
  CHECK(error_of(bad.dump()).find("added_tokens[0].content") != std::string::npos);
  bad = j;
  bad["model"]["unk_token"] = "<not-there>";
  CHECK(error_of(bad.dump()).find("model.unk_token") != std::string::npos);

  auto t = Tokenizer::FromJson(good, "{\"chat_template\": 5}");
  REQUIRE_FALSE(t.ok());
  CHECK(std::string(t.status().message()).find("tokenizer_config.json: chat_template") !=
        std::string::npos);
  CHECK_FALSE(Tokenizer::FromDirectory("/nonexistent/dir").ok());
}

TEST_CASE("Decode of an out-of-range id names it", "[tokenizer]") {
  auto tok = Load("gpt2");
  auto d = tok->Decode({5, tok->vocab_size() + 7}, false);
  REQUIRE_FALSE(d.ok());
  CHECK(std::string(d.status().message()).find(std::to_string(tok->vocab_size() + 7)) !=
        std::string::npos);
  CHECK_FALSE(tok->Decode({-1}, true).ok());
}

TEST_CASE("Invalid UTF-8 input does not crash and decodes to valid UTF-8", "[tokenizer]") {
  const std::vector<std::string> inputs = {
      std::string("\xff\xfe abc"), std::string("ok \xe4\xb8 cut"), std::string("\xc0\x80"),
      std::string("tail \xf0\x9f\x98"), std::string("\xed\xa0\x80 surrogate"),
      std::string("a\0b", 3), std::string("<|im_start|>\x80<|im_end|>")};
  for (const char* style : kStyles) {
    auto tok = Load(style);
    for (const std::string& in : inputs) {
      INFO(style);
      auto ids = tok->Encode(in, true);
      REQUIRE(ids.ok());
      auto back = tok->Decode(*ids, true);
      REQUIRE(back.ok());
      CHECK(ValidUtf8(*back));
      CHECK(Stream(*tok, {}, *ids, true) == *back);
    }
  }
  // Byte-level: the ill-formed bytes are encoded as themselves (shown as U+FFFD).
  auto gpt2 = Load("gpt2");
  auto ids = gpt2->Encode("ok \xe4\xb8 cut", false);
  REQUIRE(ids.ok());
  CHECK(*gpt2->Decode(*ids, false) == "ok \xEF\xBF\xBD cut");
}

}  // namespace
}  // namespace moe::engine

namespace moe::engine {
namespace {

TEST_CASE("Random bytes and random ids never break Encode, Decode or streaming",
          "[tokenizer]") {
  std::mt19937 rng(1234);
  for (const char* style : kStyles) {
    auto tok = Load(style);
    for (int iter = 0; iter < 200; ++iter) {
      std::string text(rng() % 48, '\0');
      // Mix ASCII, UTF-8 lead/continuation bytes and pieces of special tokens.
      for (char& ch : text) {
        const uint32_t r = rng() % 4;
        ch = static_cast<char>(r == 0 ? 0x80 + rng() % 0x80 : r == 1 ? 0xC0 + rng() % 0x40
                               : r == 2 ? "<|>s/ \n\t_"[rng() % 10] : 0x20 + rng() % 0x60);
      }
      INFO(style << " iteration " << iter);
      auto ids = tok->Encode(text, true);
      REQUIRE(ids.ok());
      auto back = tok->Decode(*ids, false);
      REQUIRE(back.ok());
      CHECK(ValidUtf8(*back));
      std::vector<int32_t> random_ids(rng() % 16);
      for (int32_t& id : random_ids) id = static_cast<int32_t>(rng() % tok->vocab_size());
      auto d = tok->Decode(random_ids, iter % 2 == 0);
      REQUIRE(d.ok());
      CHECK(ValidUtf8(*d));
      CHECK(Stream(*tok, {}, random_ids, iter % 2 == 0) == *d);
    }
  }
}

}  // namespace
}  // namespace moe::engine

namespace moe::engine {
namespace {

TEST_CASE("Concurrent Encode calls agree with the single-threaded result", "[tokenizer]") {
  auto tok = Load("qwen2");
  const Json cases = Cases("qwen2");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 5; ++rep) {
        for (const Json& c : cases) {
          auto ids = tok->Encode(c["text"].get<std::string>(), true);
          if (!ids.ok() || *ids != Ids(c["ids"])) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches.load() == 0);
}

}  // namespace
}  // namespace moe::engine

namespace moe::engine {
namespace {

// TokenBytes is what constrained decoding (engine/sampling/json_constraint.h) sees of a
// token: the bytes it adds mid-sequence. Concatenated over an encoded text without
// special tokens, they give the text back; only a sequence-start space may differ
// (metaspace's prepended "▁", which Decode strips).
TEST_CASE("TokenBytes of encoded text concatenate to the text's bytes", "[tokenizer]") {
  for (const char* style : kStyles) {
    auto tok = Load(style);
    int exact = 0;
    for (const Json& c : Cases(style)) {
      const std::vector<int32_t> ids = Ids(c["ids_no_special"]);
      std::string bytes;
      bool any_special = false;
      for (int32_t id : ids) {
        bytes += tok->TokenBytes(id);
        any_special = any_special || tok->IsSpecial(id);
      }
      if (any_special) continue;
      const std::string decoded = *tok->Decode(ids, true);
      INFO(style << " text: " << c["text"].get<std::string>().substr(0, 80));
      if (decoded.find("\xEF\xBF\xBD") != std::string::npos) continue;  // repaired bytes
      const bool same = bytes == decoded;
      const bool start_space = bytes.size() == decoded.size() + 1 && bytes[0] == ' ' &&
                               bytes.compare(1, std::string::npos, decoded) == 0;
      CHECK((same || start_space));
      exact += same ? 1 : 0;
    }
    CHECK(exact > 0);
  }
}

TEST_CASE("TokenBytes maps byte-level, metaspace and byte-fallback tokens to bytes",
          "[tokenizer]") {
  auto gpt2 = Load("gpt2");
  const auto g_space = gpt2->TokenToId("\xC4\xA0");  // "Ġ" stands for ' '
  REQUIRE(g_space.has_value());
  CHECK(gpt2->TokenBytes(*g_space) == " ");
  const auto g_nl = gpt2->TokenToId("\xC4\x8A");  // "Ċ" stands for '\n'
  REQUIRE(g_nl.has_value());
  CHECK(gpt2->TokenBytes(*g_nl) == "\n");
  CHECK(gpt2->TokenBytes(-1).empty());
  CHECK(gpt2->TokenBytes(gpt2->vocab_size()).empty());
  for (int32_t id = 0; id < gpt2->vocab_size(); ++id) {
    if (gpt2->IsSpecial(id)) CHECK(gpt2->TokenBytes(id).empty());
  }

  for (const char* style : {"metaspace", "llama_legacy"}) {
    INFO(style);
    auto ms = Load(style);
    const auto b41 = ms->TokenToId("<0x41>");
    REQUIRE(b41.has_value());
    CHECK(ms->TokenBytes(*b41) == "A");
    const auto bff = ms->TokenToId("<0xE4>");  // the first byte of a 3-byte character
    REQUIRE(bff.has_value());
    CHECK(ms->TokenBytes(*bff) == "\xE4");
    const auto the = ms->TokenToId("\xE2\x96\x81the");  // "▁the": mid-sequence " the"
    REQUIRE(the.has_value());
    CHECK(ms->TokenBytes(*the) == " the");
    REQUIRE(ms->eos_id().has_value());
    CHECK(ms->TokenBytes(*ms->eos_id()).empty());
  }
}

}  // namespace
}  // namespace moe::engine

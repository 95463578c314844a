// JSON mode's token mask: exact allowed sets on a hand-made vocabulary, the sampler
// integration (only valid prefixes are ever produced; logprobs stay raw), real test
// tokenizers (their own tokenization of a JSON document is always allowed), and the
// per-step mask time on a synthetic 150k-token vocabulary and the test tokenizers
// (printed, not asserted).
#include "engine/sampling/json_constraint.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampling/sampler.h"
#include "engine/sampling/token_trie_cache.h"
#include "engine/tokenizer/tokenizer.h"

namespace moe::engine::sampling {
namespace {

constexpr int32_t kEos = 19;

// Ids 18 (a special token) and 19 (end of sequence) have no bytes.
std::vector<std::string> TinyVocab() {
  return {"{",    "}",      "\"",   "a",  ":",    ",",      " ",        "{\"",
          "\":",  "1",      "-",    "true", "[",  "]",      "\\",       "n",
          "\"}",  "  ",     "",     "",   "\xC3\xA9", "\xC3", "\xA9",     "}\n",
          "ab",   "ull"};
}

std::shared_ptr<const JsonTokenIndex> TinyTrie() {
  return std::make_shared<JsonTokenIndex>(std::make_shared<TokenTrie>(TinyVocab()));
}

std::set<int32_t> Allowed(JsonConstraint& c) {
  const std::vector<int32_t> ids = c.AllowedIds();
  return std::set<int32_t>(ids.begin(), ids.end());
}

// Accepts the tokens whose bytes spell `text`, one token per byte where possible.
void Feed(JsonConstraint& c, const std::vector<int32_t>& tokens) {
  for (int32_t t : tokens) c.Accept(t);
}

TEST_CASE("The trie holds every non-empty token once, subtrees contiguous", "[json_mask]") {
  TokenTrie trie(TinyVocab());
  std::multiset<int32_t> seen(trie.ids().begin(), trie.ids().end());
  CHECK(seen.size() == TinyVocab().size() - 2);
  CHECK(seen.count(18) == 0);
  CHECK(seen.count(kEos) == 0);
  CHECK(trie.max_depth() == 4);
  CHECK(trie.bytes(7) == "{\"");
  CHECK(trie.bytes(-1).empty());
  CHECK(trie.bytes(1000).empty());
}

TEST_CASE("Exact allowed sets at several states of a tiny vocabulary", "[json_mask]") {
  JsonConstraint c(TinyTrie(), {kEos}, JsonTopLevel::kObject);
  // Start: only an object may open (whitespace before it is fine).
  CHECK(Allowed(c) == std::set<int32_t>{0, 6, 7, 17});

  c.Accept(0);  // {
  // A key or '}'; '":' and '"}' open a key that holds the next byte.
  CHECK(Allowed(c) == std::set<int32_t>{1, 2, 6, 8, 16, 17, 23});

  c.Accept(2);  // {"
  // Inside a key every token fits except '"}' (closes the key, then '}' is not ':'),
  // a stray continuation byte, and a raw newline.
  std::set<int32_t> in_key;
  for (int32_t id = 0; id < 26; ++id) {
    if (id != 16 && id != 18 && id != kEos && id != 22 && id != 23) in_key.insert(id);
  }
  CHECK(Allowed(c) == in_key);

  c.Accept(21);  // the first byte of 'é': only its continuation fits
  CHECK(Allowed(c) == std::set<int32_t>{22});
  c.Accept(22);
  Feed(c, {3, 8, 9});  // a":1
  CHECK(Allowed(c) == std::set<int32_t>{1, 5, 6, 9, 17, 23});  // digits, ',', '}', space

  c.Accept(1);  // }: complete; whitespace or end of sequence only
  CHECK(c.recognizer().complete());
  CHECK(Allowed(c) == std::set<int32_t>{6, 17, kEos});
  for (int i = 0; i < JsonRecognizer::kMaxWhitespaceRun - 1; ++i) c.Accept(6);
  CHECK(Allowed(c) == std::set<int32_t>{6, kEos});  // one space left of the limit
  c.Accept(6);
  CHECK(Allowed(c) == std::set<int32_t>{kEos});
}

TEST_CASE("Strings, escapes and literals in the tiny vocabulary", "[json_mask]") {
  JsonConstraint c(TinyTrie(), {kEos}, JsonTopLevel::kObject);
  Feed(c, {7, 3, 8});  // {"a":
  // A value: a string ('":' and '"}' open one), number, literal ("n" starts null,
  // "true") or container ('{"' opens a nested object).
  CHECK(Allowed(c) == std::set<int32_t>{0, 2, 6, 7, 8, 9, 10, 11, 12, 15, 16, 17});
  Feed(c, {2, 14});  // "\  : only a valid escape may follow ("true" is \t then "rue")
  CHECK(Allowed(c) == std::set<int32_t>{2, 8, 11, 14, 15, 16});
  Feed(c, {15, 2});  // n"
  CHECK(Allowed(c) == std::set<int32_t>{1, 5, 6, 17, 23});
  Feed(c, {5, 2, 3, 8, 10});  // ,"a":-
  CHECK(Allowed(c) == std::set<int32_t>{9});
}

TEST_CASE("A forbidden token or an impossible vocabulary leaves only end of sequence",
          "[json_mask]") {
  JsonConstraint broken(TinyTrie(), {kEos}, JsonTopLevel::kObject);
  broken.Accept(3);  // 'a' cannot start an object
  CHECK(broken.broken());
  CHECK(Allowed(broken) == std::set<int32_t>{kEos});

  // No token can open an object: rather than hang, the request may end.
  auto no_brace = std::make_shared<JsonTokenIndex>(
      std::make_shared<TokenTrie>(std::vector<std::string>{"a", "b", ""}));
  JsonConstraint stuck(no_brace, {2}, JsonTopLevel::kObject);
  CHECK(Allowed(stuck) == std::set<int32_t>{2});

  // Ids past the trie's vocabulary (a model's padded rows) are never allowed.
  JsonConstraint c(TinyTrie(), {kEos}, JsonTopLevel::kObject);
  std::vector<float> row(32, 1.f);
  c.Mask(row.data(), static_cast<int64_t>(row.size()));
  for (int i = 26; i < 32; ++i) CHECK(std::isinf(row[i]));
  CHECK(row[0] == 1.f);
}

TEST_CASE("A constrained sampler only ever produces valid prefixes, and parseable objects "
          "when it ends", "[json_mask]") {
  const std::vector<std::string> vocab = TinyVocab();
  JsonConstraintFactory factory(TinyTrie(), {kEos});
  int ended = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SamplingParams p;
    p.temperature = 1.f;
    p.has_seed = true;
    p.seed = seed;
    p.logprobs = 1;
    Sampler sampler(p, 0, factory.Create());
    CHECK_FALSE(sampler.DeviceEligible());
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::normal_distribution<float> logit(0.f, 2.f);
    std::string text;
    JsonRecognizer check;
    bool done = false;
    for (int step = 0; step < 3000 && !done; ++step) {
      std::vector<float> row(vocab.size());
      for (float& x : row) x = logit(rng);
      if (step == 0) row[3] = 50.f;  // the raw favourite is not allowed at the start...
      const SampledToken t = sampler.Sample(row);
      REQUIRE(t.token >= 0);
      // ...and the reported logprob is that of the raw row, not of the masked one.
      const float m = *std::max_element(row.begin(), row.end());
      double z = 0;
      for (float x : row) z += std::exp(static_cast<double>(x) - m);
      CHECK(t.logprob == Approx(row[t.token] - m - std::log(z)).margin(1e-3));
      if (step == 0) CHECK(t.token != 3);
      if (t.token == kEos) {
        done = true;
        break;
      }
      text += vocab[t.token];
      INFO(text);
      REQUIRE(check.AdvanceAll(vocab[t.token]));
    }
    if (done) {
      ++ended;
      INFO(text);
      REQUIRE(nlohmann::json::accept(text));
      CHECK(nlohmann::json::parse(text).is_object());
    }
  }
  CHECK(ended >= 20);
}

TEST_CASE("Greedy picks the best allowed token", "[json_mask]") {
  JsonConstraintFactory factory(TinyTrie(), {kEos});
  SamplingParams p;
  p.temperature = 0.f;
  Sampler sampler(p, 0, factory.Create());
  std::vector<float> row(26, 0.f);
  row[3] = 9.f;  // 'a': not allowed first
  row[7] = 5.f;  // '{"'
  row[0] = 4.f;  // '{'
  CHECK(sampler.Sample(row).token == 7);
  // Every allowed logit is -inf: the allowed tokens are taken as equally likely (greedy:
  // the lowest id), never the forbidden one with a finite logit.
  std::vector<float> dead(26, -std::numeric_limits<float>::infinity());
  dead[22] = 3.f;  // a stray UTF-8 continuation byte cannot follow '{"'
  CHECK(sampler.Sample(dead).token == 0);
}

// The ids of the tokens whose bytes encode `json`, checked to be allowed one by one.
void CheckTokenizationAllowed(const Tokenizer& tok, const std::string& json) {
  auto trie = std::make_shared<JsonTokenIndex>(BuildTokenTrie(tok));
  std::vector<int32_t> eos;
  if (tok.eos_id().has_value()) eos.push_back(*tok.eos_id());
  JsonConstraint c(trie, eos, JsonTopLevel::kObject);
  auto ids = tok.Encode(json, /*add_special_tokens=*/false);
  REQUIRE(ids.ok());
  std::vector<float> row(static_cast<size_t>(tok.vocab_size()));
  for (int32_t id : *ids) {
    INFO("token " << id << " '" << tok.IdToToken(id) << "'");
    std::fill(row.begin(), row.end(), 0.f);
    c.Mask(row.data(), static_cast<int64_t>(row.size()));
    CHECK(row[id] == 0.f);
    c.Accept(id);
  }
  CHECK(c.recognizer().complete());
  if (!eos.empty()) {
    std::fill(row.begin(), row.end(), 0.f);
    c.Mask(row.data(), static_cast<int64_t>(row.size()));
    CHECK(row[eos[0]] == 0.f);
  }
}

// States after each prefix, for timing and for comparing the two ways to compute a mask.
const std::pair<const char*, const char*> kStates[] = {
    {"start", ""},
    {"after '{'", "{"},
    {"in a key", "{\"na"},
    {"in a value string", "{\"name\": \"Jo"},
    {"in a nested string", "{\"a\": [{\"b\": [\"x"},
    {"after an escape", "{\"a\": \"\\"},
    {"after a value", "{\"a\": [1, 2"},
    {"in a number", "{\"a\": -12.5"},
    {"complete", "{\"a\": 1}"},
};

// Mean microseconds of JsonTokenMask::Compute from each state; also checks that the
// index's shortcut inside strings gives exactly the plain walk's set.
void PrintMaskTimes(const char* name, const std::shared_ptr<const JsonTokenIndex>& index) {
  JsonTokenMask mask(index);
  JsonTokenMask plain(index->shared_trie());
  std::printf("JSON mask time, %s (%d tokens, %zu trie nodes):\n", name,
              index->trie().vocab_size(), index->trie().nodes().size());
  for (const auto& [label, prefix] : kStates) {
    INFO(label);
    JsonRecognizer r;
    REQUIRE(r.AdvanceAll(prefix));
    int64_t allowed = 0;
    const int reps = 20;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) allowed = mask.Compute(r);
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
        reps;
    CHECK(plain.Compute(r) == allowed);
    CHECK(plain.bits() == mask.bits());
    std::printf("  %-18s %9.1f us/step, %7lld tokens allowed\n", label, us,
                static_cast<long long>(allowed));
  }
}

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& dir) {
  auto t = Tokenizer::FromDirectory(dir);
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(*t);
}

const char* const kTokenizerDirs[] = {
    "tests/data/tokenizers/gpt2",         "tests/data/tokenizers/qwen2",
    "tests/data/tokenizers/llama3",       "tests/data/tokenizers/llama_legacy",
    "tests/data/tokenizers/metaspace",    "tests/data/tokenizers/misc",
    "tests/data/models/mixtral",          "tests/data/models/olmoe",
    "tests/data/models/qwen2_moe",        "tests/data/models/qwen3_moe",
    "tests/data/models/trained/standard",
};

TEST_CASE("Real tokenizers: their own tokenization of a JSON object is always allowed",
          "[json_mask]") {
  const std::string docs[] = {
      "{\"name\": \"J\xC3\xBCrgen \xE2\x82\xAC\", \"n\": [1, -0.5e+10, true, null], "
      "\"nested\": {\"k\": \"a\\\"b\\\\c\\u00e9\"}}",
      "{\n  \"a\": [],\n  \"b\": {}\n}",
  };
  for (const char* dir : kTokenizerDirs) {
    INFO(dir);
    auto tok = LoadTokenizer(dir);
    // misc's whitespace-splitting pre-tokenizer drops spaces and has no '{': its text
    // does not round-trip, so only its timing is taken.
    if (std::string(dir).find("misc") == std::string::npos) {
      for (const std::string& doc : docs) CheckTokenizationAllowed(*tok, doc);
    }
    TokenTrieCache cache(tok.get());
    PrintMaskTimes(dir, cache.JsonIndex());
    CHECK(cache.JsonIndex() == cache.JsonIndex());  // built once
  }
}

TEST_CASE("Mask time on a synthetic 150k-token byte-level vocabulary", "[json_mask]") {
  // Every byte, then 150k random tokens: mostly letters (often after a space), with
  // punctuation, digits and multi-byte characters mixed in, as in a BPE vocabulary.
  std::mt19937 rng(42);
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.emplace_back(1, static_cast<char>(b));
  const std::string punct = "{}[]\":,.-_0123456789 \n\\'()";
  const char* const multi[] = {"\xC3\xA9", "\xE4\xB8\xAD", "\xE2\x80\x99", "\xF0\x9F\x98\x80"};
  while (vocab.size() < 150000) {
    std::string t;
    const int len = 1 + static_cast<int>(rng() % 10);
    if (rng() % 2 == 0) t += ' ';
    while (static_cast<int>(t.size()) < len) {
      const uint32_t r = rng() % 100;
      if (r < 80) {
        t += static_cast<char>('a' + rng() % 26);
      } else if (r < 95) {
        t += punct[rng() % punct.size()];
      } else {
        t += multi[rng() % 4];
      }
    }
    vocab.push_back(t);
  }
  vocab.emplace_back();  // an end-of-sequence token with no bytes
  const int32_t eos = static_cast<int32_t>(vocab.size()) - 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto trie = std::make_shared<const JsonTokenIndex>(std::make_shared<const TokenTrie>(vocab));
  std::printf("synthetic vocabulary: trie and index built in %.1f ms\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                  .count());
  PrintMaskTimes("synthetic 150k", trie);

  // The whole Mask (walk + applying it to a row) in a steady string state, where the
  // constraint reuses the last set.
  JsonConstraint c(trie, {eos}, JsonTopLevel::kObject);
  JsonRecognizer r;
  std::vector<float> row(vocab.size());
  const int reps = 50;
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) {
    std::fill(row.begin(), row.end(), 0.f);
    c.Mask(row.data(), static_cast<int64_t>(row.size()));
  }
  std::printf("  Mask on a 150k row at the start (set reused): %.1f us/step\n",
              std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t1)
                      .count() / reps);
  CHECK(row[static_cast<unsigned char>('{')] == 0.f);
  CHECK(std::isinf(row[static_cast<unsigned char>('a')]));
  CHECK(std::isinf(row[eos]));
}

}  // namespace
}  // namespace moe::engine::sampling

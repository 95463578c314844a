// The JSON recogniser byte by byte: valid documents stay alive at every prefix and are
// complete exactly at their end; invalid ones die at the first impossible byte; the depth
// and whitespace limits; and agreement with nlohmann::json's parser on random and mutated
// documents.
#include "engine/sampling/json_recognizer.h"

#include <catch2/catch.hpp>

#include <random>
#include <regex>
#include <string>

#include <nlohmann/json.hpp>

namespace moe::engine::sampling {
namespace {

// The index of the first rejected byte, or -1 when every byte is accepted.
int DeathIndex(const std::string& doc, JsonTopLevel top = JsonTopLevel::kObject) {
  JsonRecognizer r(top);
  for (size_t i = 0; i < doc.size(); ++i) {
    if (!r.Advance(static_cast<uint8_t>(doc[i]))) return static_cast<int>(i);
  }
  return -1;
}

TEST_CASE("Valid objects are alive at every prefix and complete only at the end",
          "[json_recognizer]") {
  const std::string docs[] = {
      "{}",
      " {\"a\": 1}",
      "{\"a\": [1, -0.5e+10, 2E-3, 0, -0, 10.25, 3e7, true, false, null, [], {}]}",
      "{\"s\": \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00 \\u0000\"}",
      "{\"k\": \"h\xC3\xA9llo \xE2\x82\xAC \xF0\x9D\x84\x9E \xED\x9F\xBF \xF4\x8F\xBF\xBF\"}",
      "{\"a\":{\"b\":{\"c\":[[{\"d\":\"e\"}]]}},\"f\":-1}",
      "{\n\t\"x\" :\r\n [ 1 , 2 ] \n}\n  ",
  };
  for (const std::string& doc : docs) {
    INFO(doc);
    REQUIRE(nlohmann::json::parse(doc).is_object());  // the test's own premise
    JsonRecognizer r;
    size_t last_non_ws = doc.find_last_not_of(" \t\r\n");
    for (size_t i = 0; i < doc.size(); ++i) {
      INFO("byte " << i);
      REQUIRE(r.Advance(static_cast<uint8_t>(doc[i])));
      CHECK(r.complete() == (i >= last_non_ws));
    }
    CHECK(r.depth() == 0);
  }
}

TEST_CASE("Invalid documents die at the first impossible byte", "[json_recognizer]") {
  const std::pair<std::string, int> cases[] = {
      {"[1]", 0},                        // json_object: the top level must be an object
      {"\"s\"", 0},
      {"x", 0},
      {"{\"a\" 1}", 5},                  // missing ':'
      {"{\"a\":01}", 6},                 // leading zero
      {"{\"a\":-}", 6},
      {"{\"a\":-a}", 6},
      {"{\"a\":1.}", 7},
      {"{\"a\":1.e5}", 7},
      {"{\"a\":1e}", 7},
      {"{\"a\":1e+}", 8},
      {"{\"a\":.5}", 5},
      {"{\"a\":+1}", 5},
      {"{\"a\":tru}", 8},
      {"{\"a\":nul1}", 8},
      {"{\"a\":\"\\x\"}", 7},            // unknown escape
      {"{\"a\":\"\\u12G4\"}", 10},
      {"{\"a\":\"\\udc00\"}", 9},         // a low surrogate alone
      {"{\"a\":\"\\ud800x\"}", 12},       // a high surrogate without its low half
      {"{\"a\":\"\\ud800\\u0041\"}", 14},
      {"{\"a\":\"\\ud800\\ud800\"}", 15},  // high then high
      {"{\"a\":\"x\ty\"}", 7},            // raw control character
      {"{\"a\":\"\xC0\x80\"}", 6},        // overlong
      {"{\"a\":\"\xED\xA0\x80\"}", 7},    // an encoded surrogate
      {"{\"a\":\"\xF4\x90\x80\x80\"}", 7},  // above U+10FFFF
      {"{\"a\":\"\xC3(\"}", 7},           // truncated character
      {"{\"a\":\"\x80\"}", 6},            // stray continuation byte
      {"{\"a\":1,}", 7},
      {"{,}", 1},
      {"{1:2}", 1},
      {"{\"a\":1]", 6},
      {"{\"a\":[1}", 7},
      {"{}}", 2},
      {"{} x", 3},
      {"{}{}", 2},
      {"{\"a\":[,1]}", 6},
      {"{\"a\":[1,]}", 8},
      {"{\"a\":1 2}", 7},
  };
  for (const auto& [doc, at] : cases) {
    INFO(doc);
    CHECK(DeathIndex(doc) == at);
    CHECK_FALSE((nlohmann::json::accept(doc) && nlohmann::json::parse(doc).is_object()));
  }
  JsonRecognizer r;
  CHECK_FALSE(r.AdvanceAll("{]"));
  CHECK(r.dead());
  CHECK_FALSE(r.Advance('}'));  // dead stays dead
  CHECK_FALSE(r.complete());
}

TEST_CASE("Nesting beyond the depth limit is rejected", "[json_recognizer]") {
  // The object is level 1; 63 arrays inside it reach the limit of 64.
  std::string doc = "{\"a\":" + std::string(JsonRecognizer::kMaxDepth - 1, '[');
  JsonRecognizer r;
  REQUIRE(r.AdvanceAll(doc));
  CHECK(r.depth() == JsonRecognizer::kMaxDepth);
  JsonRecognizer deeper = r;
  CHECK_FALSE(deeper.Advance('['));
  CHECK_FALSE(JsonRecognizer(r).Advance('{'));
  // Closing them all completes the document.
  REQUIRE(r.AdvanceAll(std::string(JsonRecognizer::kMaxDepth - 1, ']') + "}"));
  CHECK(r.complete());
}

TEST_CASE("Numbers past the length and exponent limits are rejected", "[json_recognizer]") {
  // Valid JSON, but refused so that every number parses to a finite double.
  CHECK(DeathIndex("{\"a\":1e99}") == -1);
  CHECK(DeathIndex("{\"a\":1e100}") == 9);
  CHECK(DeathIndex("{\"a\":-2.5E-07}") == -1);
  const std::string longest(JsonRecognizer::kMaxNumberBytes, '1');
  CHECK(DeathIndex("{\"a\":" + longest + "}") == -1);
  CHECK(DeathIndex("{\"a\":" + longest + "1}") == 5 + JsonRecognizer::kMaxNumberBytes);
  // The count restarts with every number.
  CHECK(DeathIndex("{\"a\":[" + longest + "," + longest + "]}") == -1);
}

TEST_CASE("Whitespace runs outside strings are limited; inside strings they are not",
          "[json_recognizer]") {
  const std::string limit(JsonRecognizer::kMaxWhitespaceRun, ' ');
  for (const std::string& prefix : {std::string(), std::string("{"), std::string("{\"a\""),
                                    std::string("{\"a\":"), std::string("{\"a\":1"),
                                    std::string("{\"a\":1}")}) {
    INFO("after '" << prefix << "'");
    JsonRecognizer r;
    REQUIRE(r.AdvanceAll(prefix));
    REQUIRE(r.AdvanceAll(limit));
    CHECK_FALSE(JsonRecognizer(r).Advance(' '));
    CHECK_FALSE(JsonRecognizer(r).Advance('\n'));
  }
  // A non-whitespace byte resets the run.
  JsonRecognizer r;
  REQUIRE(r.AdvanceAll(limit + "{" + limit + "\"k\"" + limit + ":" + limit + "\"" +
                       std::string(100, ' ') + "\"" + limit + "}" + limit));
  CHECK(r.complete());
}

TEST_CASE("Equal states compare equal whatever path led to them", "[json_recognizer]") {
  JsonRecognizer a, b;
  REQUIRE(a.AdvanceAll("{\"a\":[1,{\"b\":2}],\"c\":\"x"));
  REQUIRE(b.AdvanceAll("{\"z\":\"y"));
  CHECK(a == b);  // both inside a string value of a depth-1 object
  REQUIRE(b.AdvanceAll("\\n"));
  CHECK(a == b);
  REQUIRE(b.Advance(0xC3));
  CHECK(a != b);
}

// A random JSON value, as nlohmann would print it (compact or indented).
nlohmann::json RandomValue(std::mt19937& rng, int depth) {
  const int kind = static_cast<int>(rng() % (depth > 4 ? 6 : 8));
  switch (kind) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng()) - (1LL << 31);
    case 3: return std::ldexp(static_cast<double>(rng() % 100000) - 50000, -(int)(rng() % 40));
    case 4:
    case 5: {
      std::string s;
      const char* const pieces[] = {"a", " ", "\"", "\\", "\n", "\x01", "\xC3\xA9",
                                    "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "/", "}"};
      for (int i = static_cast<int>(rng() % 6); i > 0; --i) s += pieces[rng() % 11];
      return s;
    }
    case 6: {
      nlohmann::json a = nlohmann::json::array();
      for (int i = static_cast<int>(rng() % 4); i > 0; --i) a.push_back(RandomValue(rng, depth + 1));
      return a;
    }
    default: {
      nlohmann::json o = nlohmann::json::object();
      for (int i = static_cast<int>(rng() % 4); i > 0; --i) {
        o[std::string(1, static_cast<char>('a' + rng() % 26))] = RandomValue(rng, depth + 1);
      }
      return o;
    }
  }
}

TEST_CASE("Agrees with nlohmann::json on random and mutated documents", "[json_recognizer]") {
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\":,0123456789-+.eEtrufalsn\\u \n\x01\xC3\xA9\xFF";
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    nlohmann::json v = RandomValue(rng, 0);
    std::string doc = rng() % 2 == 0 ? v.dump() : v.dump(static_cast<int>(rng() % 3));
    if (iter % 2 == 1 && !doc.empty()) {
      // Mutate: replace, insert or delete one byte.
      const size_t at = rng() % doc.size();
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 3) {
        case 0: doc[at] = c; break;
        case 1: doc.insert(doc.begin() + at, c); break;
        default: doc.erase(at, 1);
      }
    }
    INFO(doc);
    // Numbers past the recogniser's limits (which nlohmann may still accept) are left out.
    static const std::regex kBigExponent("[eE][-+]?[0-9]{3}");
    if (std::regex_search(doc, kBigExponent)) continue;
    JsonRecognizer r(JsonTopLevel::kAnyValue);
    const bool alive = r.AdvanceAll(doc);
    const bool ours = alive && r.complete();
    const bool theirs = nlohmann::json::accept(doc);
    REQUIRE(ours == theirs);
    // Object mode accepts exactly the objects.
    JsonRecognizer o(JsonTopLevel::kObject);
    const bool ours_obj = o.AdvanceAll(doc) && o.complete();
    REQUIRE(ours_obj == (theirs && nlohmann::json::parse(doc).is_object()));
    (ours ? accepted : rejected) += 1;
  }
  CHECK(accepted > 5000);
  CHECK(rejected > 3000);
}

TEST_CASE("Top-level scalars in any-value mode", "[json_recognizer]") {
  for (const char* doc : {"-0.5e+10", "0", "12", "true", "null", "\"x\"", "[1]", " 1.5 "}) {
    INFO(doc);
    JsonRecognizer r(JsonTopLevel::kAnyValue);
    REQUIRE(r.AdvanceAll(doc));
    CHECK(r.complete());
  }
  for (const char* doc : {"-", "1.", "1e", "tru", "\"x", "[1"}) {
    INFO(doc);
    JsonRecognizer r(JsonTopLevel::kAnyValue);
    REQUIRE(r.AdvanceAll(doc));
    CHECK_FALSE(r.complete());
  }
}

}  // namespace
}  // namespace moe::engine::sampling

// Structured outputs: schema compilation (supported keywords, refusals naming the
// keyword), the byte-level recogniser (required keys, unknown keys, enum, integer,
// nested objects / arrays, $ref, string lengths) and the token mask on a hand-made
// vocabulary, including a greedy run whose output must validate.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampling/json_schema.h"
#include "engine/sampling/json_schema_constraint.h"
#include "engine/sampling/json_schema_recognizer.h"

namespace moe::engine::sampling {
namespace {

using Json = nlohmann::ordered_json;

std::shared_ptr<const JsonSchema> Compile(const std::string& schema, bool strict = false) {
  auto s = JsonSchema::Compile(Json::parse(schema), strict);
  INFO(schema);
  REQUIRE(s.ok());
  return *s;
}

std::string CompileError(const std::string& schema) {
  auto s = JsonSchema::Compile(Json::parse(schema), false);
  REQUIRE_FALSE(s.ok());
  return std::string(s.status().message());
}

// Whether `text` is accepted as a whole document (prefix accepted and complete).
bool Accepts(const JsonSchema& schema, const std::string& text) {
  JsonSchemaRecognizer r(&schema);
  return r.AdvanceAll(text) && r.complete();
}
// Whether `text` is a prefix of some valid document.
bool Prefix(const JsonSchema& schema, const std::string& text) {
  JsonSchemaRecognizer r(&schema);
  return r.AdvanceAll(text);
}

const char kPerson[] = R"({"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
    "required": ["name", "age"], "additionalProperties": false})";

TEST_CASE("required keys must all appear before '}'") {
  auto s = Compile(kPerson);
  CHECK_FALSE(Prefix(*s, "{}"));
  CHECK_FALSE(Prefix(*s, R"({"name": "ab"})"));
  CHECK(Prefix(*s, R"({"name": "ab")"));
  CHECK(Accepts(*s, R"({"name": "ab", "age": 3})"));
  CHECK(Accepts(*s, R"({"age": -30, "name": ""})"));  // any order
  CHECK(Accepts(*s, "{\n  \"name\":\"x\" ,\"age\":0}  "));
  // Once both keys are given no ',' may follow (no key could come after it).
  CHECK_FALSE(Prefix(*s, R"({"name": "ab", "age": 3,)"));
}

TEST_CASE("unknown and repeated keys are refused; additional keys when allowed") {
  auto s = Compile(kPerson);
  CHECK(Prefix(*s, "{\"nam"));  // a prefix of "name"
  CHECK_FALSE(Prefix(*s, R"({"nameX")"));
  CHECK_FALSE(Prefix(*s, R"({"x")"));
  CHECK_FALSE(Prefix(*s, "{\"nam\""));  // "nam" is not a key
  CHECK_FALSE(Prefix(*s, R"({"name": "a", "name")"));
  auto open = Compile(R"({"type": "object", "properties": {"a": {"type": "integer"}},
                          "required": ["a"]})");
  CHECK(Accepts(*open, R"({"zz": [1, {"q": null}], "a": 1})"));
  CHECK(Accepts(*open, R"({"ab": "x", "a": 2})"));  // a key that extends a listed one
  CHECK_FALSE(Prefix(*open, R"({"a": "x")"));  // listed keys keep their schema
  CHECK_FALSE(Prefix(*open, R"({"a": 1, "a")"));  // repeated
  CHECK(Prefix(*open, R"({"a": 1, "ab")"));
  // strict: an absent additionalProperties means false.
  auto strict = Compile(R"({"type": "object", "properties": {"a": {"type": "integer"}}})", true);
  CHECK_FALSE(Prefix(*strict, R"({"b")"));
  CHECK(Accepts(*strict, R"({})"));
}

TEST_CASE("enum and const restrict values exactly") {
  auto s = Compile(R"({"type": "object", "properties": {
      "c": {"enum": ["red", "green", 7, 70, true, null]}, "k": {"const": "x"}},
      "additionalProperties": false})");
  for (const char* v : {"\"red\"", "\"green\"", "7", "70", "true", "null"}) {
    INFO(v);
    CHECK(Accepts(*s, std::string(R"({"c": )") + v + "}"));
  }
  for (const char* v : {"\"Red\"", "\"gree\"", "\"redd\"", "8", "700", "7.0", "false", "\"7\""}) {
    INFO(v);
    CHECK_FALSE(Accepts(*s, std::string(R"({"c": )") + v + "}"));
  }
  CHECK(Accepts(*s, R"({"k": "x"})"));
  CHECK_FALSE(Prefix(*s, R"({"k": "y)"));
  // A top-level number enum is complete as soon as it matches.
  auto top = Compile(R"({"enum": [1, 12]})");
  JsonSchemaRecognizer r(top.get());
  REQUIRE(r.AdvanceAll("1"));
  CHECK(r.complete());
  CHECK(r.Advance('2'));
  CHECK(r.complete());
  CHECK_FALSE(r.Advance('3'));
}

TEST_CASE("integers refuse '.' and exponents; numbers allow them") {
  auto i = Compile(R"({"type": "integer"})");
  CHECK(Accepts(*i, "-120"));
  CHECK_FALSE(Prefix(*i, "1."));
  CHECK_FALSE(Prefix(*i, "1e"));
  CHECK_FALSE(Prefix(*i, "\"1\""));
  CHECK_FALSE(Prefix(*i, "01"));
  auto n = Compile(R"({"type": "number"})");
  CHECK(Accepts(*n, "-1.5e3"));
  CHECK_FALSE(Accepts(*n, "1."));
  auto both = Compile(R"({"type": ["integer", "null"]})");
  CHECK(Accepts(*both, "null"));
  CHECK(Accepts(*both, "4"));
  CHECK_FALSE(Prefix(*both, "t"));
}

TEST_CASE("nested objects and arrays, item counts") {
  auto s = Compile(R"({"type": "object", "properties": {
      "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
      "pos": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"],
              "additionalProperties": false}},
      "required": ["tags", "pos"], "additionalProperties": false})");
  CHECK(Accepts(*s, R"({"tags": ["a"], "pos": {"x": 1.5}})"));
  CHECK(Accepts(*s, R"({"pos": {"x": 0}, "tags": ["a", "b"]})"));
  CHECK_FALSE(Prefix(*s, R"({"tags": [])"));             // minItems 1
  CHECK_FALSE(Prefix(*s, R"({"tags": ["a", "b",)"));     // maxItems 2
  CHECK_FALSE(Prefix(*s, R"({"tags": [1)"));             // items are strings
  CHECK_FALSE(Prefix(*s, R"({"tags": ["a"], "pos": {})")); // x required
  CHECK_FALSE(Prefix(*s, R"({"tags": ["a"], "pos": {"y")"));
  auto any = Compile(R"({"type": "array"})");
  CHECK(Accepts(*any, R"([1, "a", {"b": [null, true]}, []])"));
  CHECK_FALSE(Prefix(*any, "{"));
}

TEST_CASE("$ref to $defs and definitions") {
  auto s = Compile(R"({"$defs": {"point": {"type": "object", "properties": {
        "x": {"type": "integer"}}, "required": ["x"], "additionalProperties": false}},
      "definitions": {"name": {"type": "string", "maxLength": 3}},
      "type": "object", "properties": {"a": {"$ref": "#/$defs/point"},
      "b": {"$ref": "#/$defs/point"}, "n": {"$ref": "#/definitions/name"}},
      "additionalProperties": false})");
  CHECK(Accepts(*s, R"({"a": {"x": 1}, "b": {"x": 2}, "n": "abc"})"));
  CHECK_FALSE(Prefix(*s, R"({"a": {"y")"));
  CHECK_FALSE(Prefix(*s, R"({"n": "abcd)"));
  CHECK(CompileError(R"({"$defs": {"t": {"type": "object", "properties": {
        "c": {"$ref": "#/$defs/t"}}}}, "$ref": "#/$defs/t"})")
            .find("recursive") != std::string::npos);
  CHECK(CompileError(R"({"$ref": "#/$defs/missing"})").find("not defined") != std::string::npos);
  CHECK(CompileError(R"({"$ref": "http://x/y"})").find("$ref") != std::string::npos);
}

TEST_CASE("string lengths count code points") {
  auto s = Compile(R"({"type": "string", "minLength": 2, "maxLength": 3})");
  CHECK(Accepts(*s, "\"ab\""));
  CHECK(Accepts(*s, "\"\xC3\xA9\\n\\u00e9\""));  // three characters
  CHECK(Accepts(*s, "\"\\ud83d\\ude00x\""));       // a surrogate pair is one
  CHECK_FALSE(Prefix(*s, "\"a\""));
  CHECK_FALSE(Prefix(*s, "\"abcd"));
}

TEST_CASE("unsupported keywords are refused by name; annotations are ignored") {
  CHECK(CompileError(R"({"type": "string", "pattern": "^a"})") ==
        "json_schema keyword 'pattern' is not supported (at #)");
  CHECK(CompileError(R"({"type": "object", "properties": {"d": {"type": "string",
        "format": "date"}}})") ==
        "json_schema keyword 'format' is not supported (at #/properties/d)");
  CHECK(CompileError(R"({"anyOf": [{"type": "string"}]})").find("'anyOf'") != std::string::npos);
  CHECK(CompileError(R"({"type": "strin"})").find("#/type") != std::string::npos);
  CHECK(CompileError(R"({"type": "object", "required": ["x"]})").find("'x'") != std::string::npos);
  CHECK(CompileError(R"({"minItems": 3, "maxItems": 2})").find("minItems") != std::string::npos);
  CHECK(CompileError(R"({"enum": [[1]]})").find("enum") != std::string::npos);
  auto s = Compile(R"({"title": "T", "description": "d", "$schema": "x", "default": 1,
                       "examples": [1], "type": "integer"})");
  CHECK(Accepts(*s, "5"));
}

// Ids 10 and 11 have no bytes (11 ends a sequence).
constexpr int32_t kEos = 11;
std::vector<std::string> Vocab() {
  return {"{", "}", "\"", "name", "age", ":", ",", "1", ".", "x",
          "",  "",  "{\"name\":\"", "\",\"age\":", " ", "abcdefghij", "\"}", "n"};
}

TEST_CASE("the token mask follows the schema on a hand-made vocabulary") {
  auto schema = Compile(kPerson);
  auto trie = std::make_shared<TokenTrie>(Vocab());
  JsonSchemaConstraint c(schema, trie, {kEos});
  CHECK(c.AllowedIds() == std::vector<int32_t>{0, 12, 14});
  c.Accept(0);                                               // {
  CHECK(c.AllowedIds() == std::vector<int32_t>{2, 14});      // no '}' yet
  c.Accept(2);                                               // {"
  CHECK(c.AllowedIds() == std::vector<int32_t>{3, 4, 17});   // name, age, n
  c.Accept(3);                                               // {"name
  c.Accept(2);
  c.Accept(5);
  c.Accept(2);                                               // {"name":"
  // At most 8 characters: the 10-byte token does not fit.
  std::vector<int32_t> in_string = c.AllowedIds();
  CHECK(std::find(in_string.begin(), in_string.end(), 15) == in_string.end());
  CHECK(std::find(in_string.begin(), in_string.end(), 13) != in_string.end());
  c.Accept(13);                                              // {"name":"","age":
  CHECK(c.AllowedIds() == std::vector<int32_t>{7, 14});      // digits only
  c.Accept(7);
  CHECK(c.AllowedIds() == std::vector<int32_t>{1, 7, 14});   // no '.', no ',', no EOS
  c.Accept(1);
  CHECK(c.recognizer().complete());
  CHECK(c.AllowedIds() == std::vector<int32_t>{kEos, 14});
  c.Accept(9);  // a forbidden token breaks the document: only EOS is left
  CHECK(c.broken());
  CHECK(c.AllowedIds() == std::vector<int32_t>{kEos});
}

TEST_CASE("greedy decoding under the mask yields a valid document") {
  auto schema = Compile(kPerson);
  auto trie = std::make_shared<TokenTrie>(Vocab());
  JsonSchemaConstraintFactory factory(schema, trie, {kEos});
  // Logits that prefer, in order, the long string token, 'x', ',', '}' and '1': the mask
  // must steer them into a document.
  std::string out;
  auto c = factory.Create();
  for (int step = 0; step < 40; ++step) {
    std::vector<float> logits(18, 0.f);
    logits[15] = 5, logits[9] = 4, logits[6] = 3, logits[1] = 2.5, logits[7] = 2;
    logits[kEos] = 1;
    c->Mask(logits.data(), 18);
    const int32_t best =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (best == kEos) break;
    out += Vocab()[best];
    c->Accept(best);
  }
  INFO(out);
  REQUIRE(nlohmann::json::accept(out));
  const nlohmann::json j = nlohmann::json::parse(out);
  CHECK(j.size() == 2);
  CHECK(j["name"].is_string());
  CHECK(j["name"].get<std::string>().size() <= 8);
  CHECK(j["age"].is_number_integer());
}

}  // namespace
}  // namespace moe::engine::sampling

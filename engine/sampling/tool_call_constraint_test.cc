// Forced tool calls: the opening tag is enforced, only the allowed functions' names may
// be written, the arguments must validate against the chosen function's schema (with
// several tools, the one named), end-of-sequence comes only after the closing tag, and
// unsupported parameters are refused naming the request field.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampling/tool_call_constraint.h"

namespace moe::engine::sampling {
namespace {

using Json = nlohmann::ordered_json;

ToolCallSpec Weather() {
  return {"get_weather",
          Json::parse(R"({"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": false})"),
          false, "tools[0].function.parameters"};
}
ToolCallSpec Add() {
  return {"add",
          Json::parse(R"({"type": "object", "properties": {"a": {"type": "integer"},
                          "b": {"type": "integer"}}, "required": ["a", "b"],
                          "additionalProperties": false})"),
          false, "tools[1].function.parameters"};
}

std::shared_ptr<const ToolCallGrammar> Grammar(std::vector<ToolCallSpec> tools) {
  auto g = ToolCallGrammar::Compile(tools);
  REQUIRE(g.ok());
  return *g;
}

bool Prefix(const ToolCallGrammar& g, const std::string& text) {
  ToolCallRecognizer r(&g);
  return r.AdvanceAll(text);
}
bool Accepts(const ToolCallGrammar& g, const std::string& text) {
  ToolCallRecognizer r(&g);
  return r.AdvanceAll(text) && r.complete();
}

TEST_CASE("the opening tag comes first, the closing tag right after the object") {
  auto g = Grammar({Weather()});
  CHECK_FALSE(Prefix(*g, "Sure"));
  CHECK_FALSE(Prefix(*g, "{\"name\""));
  CHECK_FALSE(Prefix(*g, "<tool_call>{"));  // the newline is part of the tag
  CHECK(Prefix(*g, "<tool_call>\n{"));
  const std::string call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";
  CHECK(Prefix(*g, call));
  CHECK_FALSE(Accepts(*g, call));  // no closing tag yet
  CHECK(Accepts(*g, call + "\n</tool_call>"));
  CHECK_FALSE(Prefix(*g, call + " "));
  CHECK_FALSE(Prefix(*g, call + "\n</tool_call>\n"));  // nothing after the block
}

TEST_CASE("only an allowed function's name, and arguments valid for it") {
  auto g = Grammar({Weather()});
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"get_time\""));
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"get_weatherx"));
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"town\""));
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": 3"));
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}"));
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"get_weather\"}"));  // arguments required
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"get_weather\", \"extra\""));
  // Key order is free.
  CHECK(Accepts(*g, "<tool_call>\n{\"arguments\": {\"city\": \"\"}, \"name\": \"get_weather\"}"
                    "\n</tool_call>"));
}

TEST_CASE("several tools: the name chosen selects the schema the arguments obey") {
  auto g = Grammar({Weather(), Add()});
  ToolCallRecognizer r(g.get());
  REQUIRE(r.AdvanceAll("<tool_call>\n{\"name\": \""));
  CHECK(r.LiveTools() == std::vector<int>{0, 1});
  REQUIRE(r.AdvanceAll("add\""));
  CHECK(r.LiveTools() == std::vector<int>{1});
  const std::string head_add = "<tool_call>\n{\"name\": \"add\", \"arguments\": ";
  const std::string head_weather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ";
  CHECK(Accepts(*g, head_add + "{\"a\": 1, \"b\": -2}}\n</tool_call>"));
  CHECK_FALSE(Prefix(*g, head_add + "{\"city\""));          // the other tool's argument
  CHECK_FALSE(Prefix(*g, head_add + "{\"a\": 1.5"));        // integer
  CHECK(Accepts(*g, head_weather + "{\"city\": \"Oslo\"}}\n</tool_call>"));
  CHECK_FALSE(Prefix(*g, head_weather + "{\"a\""));
  // Arguments first: both stay possible until the name decides.
  ToolCallRecognizer late(g.get());
  REQUIRE(late.AdvanceAll("<tool_call>\n{\"arguments\": {"));
  CHECK(late.LiveTools() == std::vector<int>{0, 1});
  REQUIRE(late.AdvanceAll("\"a\": 1, \"b\": 2}, \"name\": \""));
  CHECK(late.LiveTools() == std::vector<int>{1});
  CHECK_FALSE(ToolCallRecognizer(late).AdvanceAll("get_weather"));
}

TEST_CASE("absent parameters mean any object; unsupported ones name the field") {
  auto g = Grammar({{"ping", nullptr, false, "tools[0].function.parameters"}});
  CHECK(Accepts(*g, "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>"));
  CHECK(Accepts(*g, "<tool_call>\n{\"name\": \"ping\", \"arguments\": {\"x\": [1]}}\n</tool_call>"));
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"ping\", \"arguments\": ["));

  auto bad = ToolCallGrammar::Compile(
      {Weather(), {"f", Json::parse(R"({"type": "object", "properties": {"s": {"type":
        "string", "pattern": "^a"}}})"), false, "tools[1].function.parameters"}});
  REQUIRE_FALSE(bad.ok());
  const std::string msg(bad.status().message());
  INFO(msg);
  CHECK(msg.rfind("tools[1].function.parameters: ", 0) == 0);
  CHECK(msg.find("pattern") != std::string::npos);
  CHECK_FALSE(ToolCallGrammar::Compile({}).ok());
}

TEST_CASE("$defs of the parameters stay reachable") {
  auto g = Grammar({{"f", Json::parse(R"({"type": "object", "properties": {"p": {"$ref":
      "#/$defs/P"}}, "required": ["p"], "$defs": {"P": {"type": "integer"}}})"), false,
      "tools[0].function.parameters"}});
  CHECK(Accepts(*g, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"p\": 7}}\n</tool_call>"));
  CHECK_FALSE(Prefix(*g, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"p\": \""));
}

// A vocabulary of pieces; id 12 is end-of-sequence (no bytes).
constexpr int32_t kEos = 12;
std::vector<std::string> Vocab() {
  return {"<tool_call>\n", "<", "{\"name\": \"", "add", "get_weather", "\", \"arguments\": ",
          "{\"a\": 1, \"b\": 2}", "}", "\n</tool_call>", "Hello", "\"", "{\"city\": \"x\"}", ""};
}

TEST_CASE("the token mask: tag first, named function only, EOS only after the tag") {
  auto trie = std::make_shared<TokenTrie>(Vocab());
  ToolCallConstraint c(Grammar({Add()}), trie, {kEos});
  CHECK(c.AllowedIds() == std::vector<int32_t>{0, 1});  // no text, no EOS
  c.Accept(0);
  CHECK(c.AllowedIds() == std::vector<int32_t>{2});  // not the arguments objects
  c.Accept(2);
  CHECK(c.AllowedIds() == std::vector<int32_t>{3});  // "add" only, not get_weather
  c.Accept(3);
  c.Accept(5);
  CHECK(c.AllowedIds() == std::vector<int32_t>{6});  // add's arguments, not the city
  c.Accept(6);
  CHECK(c.AllowedIds() == std::vector<int32_t>{7});
  c.Accept(7);
  CHECK(c.AllowedIds() == std::vector<int32_t>{8});  // the closing tag; no EOS yet
  c.Accept(8);
  CHECK(c.recognizer().complete());
  CHECK(c.AllowedIds() == std::vector<int32_t>{kEos});
}

TEST_CASE("greedy decoding under the mask yields one parseable call") {
  auto trie = std::make_shared<TokenTrie>(Vocab());
  ToolCallConstraintFactory factory(Grammar({Weather(), Add()}), trie, {kEos});
  auto c = factory.Create();
  std::string out;
  for (int step = 0; step < 40; ++step) {
    std::vector<float> logits(13, 0.f);
    // Prefers text, EOS and the wrong arguments: the mask must still give a valid call.
    logits[9] = 6, logits[kEos] = 5, logits[4] = 4, logits[6] = 3;
    c->Mask(logits.data(), 13);
    const int32_t best =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (best == kEos) break;
    out += Vocab()[best];
    c->Accept(best);
  }
  INFO(out);
  const std::string open = "<tool_call>\n", close = "\n</tool_call>";
  REQUIRE(out.rfind(open, 0) == 0);
  REQUIRE(out.size() > open.size() + close.size());
  REQUIRE(out.compare(out.size() - close.size(), close.size(), close) == 0);
  const Json j = Json::parse(out.substr(open.size(), out.size() - open.size() - close.size()));
  CHECK(j["name"] == "get_weather");
  CHECK(j["arguments"] == Json{{"city", "x"}});
}

}  // namespace
}  // namespace moe::engine::sampling

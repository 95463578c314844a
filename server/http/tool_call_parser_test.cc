#include "server/http/tool_call_parser.h"

#include <random>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace moe::server::http {
namespace {

using Json = nlohmann::ordered_json;

// Whole-text parse with a fixed id seed.
ParsedToolCalls Parse(const std::string& text, uint64_t seed = 1) {
  ToolCallIdGenerator ids(seed);
  return ParseToolCalls(text, &ids);
}

struct Streamed {
  std::string content;
  std::vector<ToolCall> calls;
  std::vector<int> indexes;
};

void Collect(const std::vector<ToolCallStreamParser::Item>& items, Streamed* s) {
  for (const auto& item : items) {
    if (item.call.has_value()) {
      CHECK(item.content.empty());
      s->calls.push_back(*item.call);
      s->indexes.push_back(item.index);
    } else {
      CHECK_FALSE(item.content.empty());
      s->content += item.content;
    }
  }
}

// Streams `text` cut at `cuts` (sorted byte offsets).
Streamed Stream(const std::string& text, const std::vector<size_t>& cuts, uint64_t seed = 1) {
  ToolCallStreamParser p{ToolCallIdGenerator(seed)};
  Streamed s;
  size_t prev = 0;
  for (size_t c : cuts) {
    Collect(p.Feed(text.substr(prev, c - prev)), &s);
    prev = c;
  }
  Collect(p.Feed(text.substr(prev)), &s);
  Collect(p.Finish(), &s);
  return s;
}

const std::vector<std::string>& Fixtures() {
  static const std::vector<std::string> f = {
      "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\", \"unit\": \"c\"}}\n</tool_call>",
      "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>\n"
      "{\"name\": \"b\", \"arguments\": {\"y\": [true, null, 2.5]}}\n</tool_call>",
      "Before <tool_call>\n{not json}\n</tool_call> after",
      "<tool_call>{\"arguments\": {}}</tool_call>",
      "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>",
      "Sure.<tool_call>\n{\"name\": \"f\", \"arguments\": {}}",
      "x <tool_call>\n{\"name\": \"f\", \"argu",
      "a < b and <tool_ is not a tag; <tool_cal",
      "M\xC3\xA9t\xC3\xA9o: <tool_call>{\"name\": \"m\xC3\xA9t\xC3\xA9o\", \"arguments\": "
      "{\"ville\": \"Z\xC3\xBCrich\"}}</tool_call>",
      "\n\n<tool_call>{\"name\":\"f\"}</tool_call>\n",
      "Just an answer, no tools at all.",
      "<tool_call> oops <tool_call>{\"name\":\"f\"}</tool_call>",
      "A<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>B<tool_call>{\"name\":\"g\","
      "\"arguments\":{\"k\":[1,2]}}</tool_call>C",
      "<tool_call>{\"name\": \"f\"}</tool_call></tool_call><<tool_call>{\"name\": 3}</tool_call>",
      "",
      "   ",
  };
  return f;
}

TEST_CASE("whole text: content outside blocks, calls with JSON-string arguments") {
  ParsedToolCalls r = Parse(Fixtures()[0]);
  REQUIRE(r.content.has_value());
  CHECK(*r.content == "Let me check.\n");
  REQUIRE(r.calls.size() == 1);
  CHECK(r.calls[0].name == "get_weather");
  CHECK(r.calls[0].arguments == R"({"city": "Paris", "unit": "c"})");
  CHECK(Json::parse(r.calls[0].arguments) == Json{{"city", "Paris"}, {"unit", "c"}});
}

TEST_CASE("whole text: several calls, content null when only whitespace is left") {
  ParsedToolCalls r = Parse(Fixtures()[1]);
  CHECK_FALSE(r.content.has_value());
  REQUIRE(r.calls.size() == 2);
  CHECK(r.calls[0].name == "a");
  CHECK(r.calls[0].arguments == R"({"x": 1})");
  CHECK(r.calls[1].name == "b");
  CHECK(r.calls[1].arguments == R"({"y": [true, null, 2.5]})");
  CHECK(r.calls[0].id != r.calls[1].id);

  ParsedToolCalls ws = Parse(Fixtures()[9]);
  CHECK_FALSE(ws.content.has_value());
  REQUIRE(ws.calls.size() == 1);
  CHECK(ws.calls[0].arguments == "{}");  // "arguments" absent

  ParsedToolCalls mixed = Parse(Fixtures()[12]);
  REQUIRE(mixed.content.has_value());
  CHECK(*mixed.content == "ABC");
  REQUIRE(mixed.calls.size() == 2);
  CHECK(mixed.calls[1].arguments == R"({"k": [1, 2]})");
}

TEST_CASE("whole text: blocks that are not calls stay in the content verbatim") {
  for (int i : {2, 3, 6, 7, 11}) {
    INFO(Fixtures()[i]);
    ParsedToolCalls r = Parse(Fixtures()[i]);
    CHECK(r.calls.empty());
    REQUIRE(r.content.has_value());
    CHECK(*r.content == Fixtures()[i]);
  }
  // A valid call, a stray close tag, a "<" and a block whose name is not a string.
  ParsedToolCalls r = Parse(Fixtures()[13]);
  REQUIRE(r.calls.size() == 1);
  REQUIRE(r.content.has_value());
  CHECK(*r.content == "</tool_call><<tool_call>{\"name\": 3}</tool_call>");
}

TEST_CASE("whole text: string arguments, an unclosed but complete block, UTF-8") {
  ParsedToolCalls s = Parse(Fixtures()[4]);
  REQUIRE(s.calls.size() == 1);
  CHECK(s.calls[0].arguments == R"({"x": 1})");
  CHECK_FALSE(s.content.has_value());

  ParsedToolCalls open = Parse(Fixtures()[5]);
  REQUIRE(open.calls.size() == 1);
  CHECK(open.calls[0].name == "f");
  CHECK(*open.content == "Sure.");

  ParsedToolCalls u = Parse(Fixtures()[8]);
  REQUIRE(u.calls.size() == 1);
  CHECK(u.calls[0].name == "m\xC3\xA9t\xC3\xA9o");
  CHECK(u.calls[0].arguments == "{\"ville\": \"Z\xC3\xBCrich\"}");  // not \u-escaped

  // Without calls the content is the text as it was, whitespace included.
  CHECK(*Parse("").content == "");
  CHECK(*Parse(" \n\t").content == " \n\t");
  CHECK(*Parse(Fixtures()[10]).content == Fixtures()[10]);
}

TEST_CASE("ids: call_ and 24 alphanumerics, unique, reproducible from a seed") {
  ToolCallIdGenerator random_ids;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = random_ids.Next();
    REQUIRE(id.size() == 29);
    CHECK(id.rfind("call_", 0) == 0);
    for (char c : id.substr(5)) CHECK(std::isalnum(static_cast<unsigned char>(c)));
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
  ToolCallIdGenerator a(42), b(42), c(43);
  const std::string first = a.Next();
  CHECK(first == b.Next());
  CHECK(first != c.Next());
  CHECK(ToolCallIdGenerator().Next() != ToolCallIdGenerator().Next());
}

TEST_CASE("streaming: text is released at once except a possible tag prefix") {
  ToolCallStreamParser p{ToolCallIdGenerator(7)};
  auto items = p.Feed("Hello");
  REQUIRE(items.size() == 1);
  CHECK(items[0].content == "Hello");
  items = p.Feed(" <tool");  // "<tool" may begin a tag: held
  REQUIRE(items.size() == 1);
  CHECK(items[0].content == " ");
  items = p.Feed("_call>{\"name\": \"f\", ");
  CHECK(items.empty());
  items = p.Feed("\"arguments\": {\"a\": 1}}</tool_");
  CHECK(items.empty());  // the close tag is not complete yet
  items = p.Feed("call> bye <b>");
  REQUIRE(items.size() == 2);
  REQUIRE(items[0].call.has_value());
  CHECK(items[0].index == 0);
  CHECK(items[0].call->name == "f");
  CHECK(items[0].call->arguments == R"({"a": 1})");
  CHECK(items[0].call->id == ToolCallIdGenerator(7).Next());
  CHECK(items[1].content == " bye <b>");  // "<b" cannot begin "<tool_call>"
  items = p.Feed("<tool_cal");
  CHECK(items.empty());
  items = p.Feed("culator");  // not a tag after all
  REQUIRE(items.size() == 1);
  CHECK(items[0].content == "<tool_calculator");
  CHECK(p.Finish().empty());
  CHECK(p.num_calls() == 1);
}

TEST_CASE("streaming: whitespace-only content is held, then released or dropped") {
  ToolCallStreamParser p;
  CHECK(p.Feed("\n").empty());
  auto items = p.Feed("<tool_call>{\"name\": \"f\"}</tool_call>\n");
  REQUIRE(items.size() == 1);
  CHECK(items[0].call.has_value());
  CHECK(p.Feed("<tool_call>{\"name\": \"g\"}</tool_call>")[0].index == 1);
  CHECK(p.Finish().empty());  // content null

  ToolCallStreamParser q;
  CHECK(q.Feed("\n ").empty());
  items = q.Feed("Hi");
  REQUIRE(items.size() == 1);
  CHECK(items[0].content == "\n Hi");

  ToolCallStreamParser only_space;  // no calls: whitespace is content after all
  CHECK(only_space.Feed(" \n").empty());
  items = only_space.Finish();
  REQUIRE(items.size() == 1);
  CHECK(items[0].content == " \n");
}

TEST_CASE("streaming: at the end, open blocks become calls only when complete") {
  ToolCallStreamParser p;
  CHECK(p.Feed("<tool_call>{\"name\": \"f\", \"arguments\": {}}").empty());
  auto items = p.Finish();
  REQUIRE(items.size() == 1);
  CHECK(items[0].call.has_value());

  ToolCallStreamParser q;
  CHECK(q.Feed("ok <tool_call>{\"name\": \"f\", \"argu").size() == 1);
  items = q.Finish();
  REQUIRE(items.size() == 1);
  CHECK(items[0].content == "<tool_call>{\"name\": \"f\", \"argu");

  ToolCallStreamParser r;
  CHECK(r.Feed("x <tool_").size() == 1);
  items = r.Finish();
  REQUIRE(items.size() == 1);
  CHECK(items[0].content == "<tool_");
}

TEST_CASE("property: any split of the text streams to the whole-text result") {
  std::mt19937 rng(12345);
  for (const std::string& text : Fixtures()) {
    const ParsedToolCalls whole = Parse(text, 99);
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<size_t> cuts;
      if (!text.empty()) {
        // Trial 0: every byte its own delta; then random cuts, denser or sparser.
        const int n = trial == 0 ? static_cast<int>(text.size()) - 1
                                 : std::uniform_int_distribution<int>(0, 12)(rng);
        for (int k = 0; k < n; ++k) {
          cuts.push_back(trial == 0 ? k + 1
                                    : std::uniform_int_distribution<size_t>(0, text.size())(rng));
        }
        std::sort(cuts.begin(), cuts.end());
      }
      const Streamed s = Stream(text, cuts, 99);
      INFO("text: " << text << " trial " << trial);
      REQUIRE(s.content == whole.content.value_or(""));
      REQUIRE(s.calls.size() == whole.calls.size());
      for (size_t i = 0; i < s.calls.size(); ++i) {
        CHECK(s.indexes[i] == static_cast<int>(i));
        CHECK(s.calls[i].id == whole.calls[i].id);
        CHECK(s.calls[i].name == whole.calls[i].name);
        CHECK(s.calls[i].arguments == whole.calls[i].arguments);
      }
    }
  }
}

}  // namespace
}  // namespace moe::server::http

// Tests for the chat-template renderer. The reference cases
// (tests/data/chat_templates/cases.json) were rendered by transformers itself
// (tools/gen_chat_template_cases.py); every one must match byte for byte.
#include "server/chat_template/chat_template.h"

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace moe::server {
namespace {

using ojson = nlohmann::ordered_json;

const char* kDataDir = "tests/data/chat_templates/";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Renders `src` with `ctx` as extra context and no messages.
absl::StatusOr<std::string> R(const std::string& src, const ojson& ctx = ojson::object()) {
  auto t = ChatTemplate::Parse(src);
  if (!t.ok()) return t.status();
  return t->Render(ojson::array(), false, ctx);
}

std::string Ok(const std::string& src, const ojson& ctx = ojson::object()) {
  auto r = R(src, ctx);
  INFO(src);
  REQUIRE(r.ok());
  return *r;
}

TEST_CASE("every transformers reference rendering is reproduced exactly") {
  ojson doc = ojson::parse(ReadFile(std::string(kDataDir) + "cases.json"));
  REQUIRE(doc["cases"].size() >= 100);
  std::map<std::string, ChatTemplate> templates;
  int errors = 0;
  for (const auto& c : doc["cases"]) {
    std::string name = c["template"].get<std::string>();
    if (!templates.count(name)) {
      auto t = ChatTemplate::Parse(ReadFile(std::string(kDataDir) + name + ".jinja"));
      INFO(name << ": " << t.status());
      REQUIRE(t.ok());
      templates.emplace(name, *t);
    }
    INFO(c["name"].get<std::string>());
    auto out = templates.at(name).Render(c["messages"], c["add_generation_prompt"].get<bool>(),
                                         c["extra"]);
    if (c.contains("error")) {
      ++errors;
      REQUIRE_FALSE(out.ok());
      CHECK(std::string(out.status().message()) == c["error"].get<std::string>());
    } else {
      INFO(out.status());
      REQUIRE(out.ok());
      CHECK(*out == c["expected"].get<std::string>());
    }
  }
  CHECK(errors > 0);  // Mixtral's alternation check is exercised
  CHECK(templates.size() == 5);
}

TEST_CASE("output, literals and arithmetic follow Python") {
  CHECK(Ok("{{ 'a' ~ 1 ~ none ~ true }}") == "a1NoneTrue");
  CHECK(Ok("{{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }}") ==
        "0.5 2.0 3 -4 2 1024");
  CHECK(Ok("{{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1.5e-7 }} {{ 3.0 }}") ==
        "1e+20 0.30000000000000004 1.5e-07 3.0");
  CHECK(Ok("{{ [1, 'a', none, True, {'k': 1.0}] }}") == "[1, 'a', None, True, {'k': 1.0}]");
  CHECK(Ok("{{ \"it's\" }} {{ ['it\\'s'] }}") == "it's [\"it's\"]");
  CHECK(Ok("{{ 'x' * 3 }} {{ [1] * 2 }} {{ 'a' + 'b' }} {{ [1] + [2] }}") == "xxx [1, 1] ab [1, 2]");
  CHECK(Ok("{{ 'tab\\there\\u00e9\\x41' }}") == "tab\thereéA");
  CHECK(Ok("{{ (1, 2) }} {{ {'a': 1}.items() | list }}") == "(1, 2) [('a', 1)]");
}

TEST_CASE("comparisons, logic, membership and the ternary") {
  CHECK(Ok("{{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ 1 < 2 < 3 }} {{ 3 < 2 < 5 }}") ==
        "True True True True False");
  CHECK(Ok("{{ 3 in [1, 3] }} {{ 'k' in {'k': 1} }} {{ 'ell' in 'hello' }} {{ 2 not in [2] }}") ==
        "True True True False");
  CHECK(Ok("{{ 0 or 'x' }} {{ 1 and 2 }} {{ not [] }}") == "x 2 True");
  CHECK(Ok("{{ 'y' if 1 > 2 else 'n' }}{{ 'z' if false }}") == "n");
}

TEST_CASE("variables, attributes, items and slices") {
  ojson ctx = {{"m", {{"role", "user"}, {"content", "héllo"}}}, {"xs", {1, 2, 3, 4}}};
  CHECK(Ok("{{ m.role }} {{ m['content'] }} {{ m.missing }}|{{ m.get('x', 7) }} {{ m.get('x') }}",
           ctx) == "user héllo |7 None");
  CHECK(Ok("{{ xs[1:] }} {{ xs[::-1] }} {{ xs[-1] }} {{ xs[:-2] }} {{ m.content[1:3] }}", ctx) ==
        "[2, 3, 4] [4, 3, 2, 1] 4 [1, 2] él");
  CHECK(Ok("{{ m.content | length }} {{ xs | length }} {{ m | length }}", ctx) == "5 4 2");
  CHECK(Ok("{{ m.keys() | list }} {{ m.values() | list }}", ctx) == "['role', 'content'] ['user', 'héllo']");
}

TEST_CASE("undefined behaves as Jinja's default Undefined") {
  CHECK(Ok("[{{ nope }}]{% if nope %}x{% endif %}{{ nope is defined }} {{ nope is not defined }}") ==
        "[]False True");
  CHECK(Ok("{% for x in nope %}x{% else %}empty{% endfor %}{{ nope | length }}") == "empty0");
  CHECK(Ok("{{ nope | default('d') }} {{ '' | default('d', true) }} {{ none | default('d') }}") ==
        "d d None");
  auto attr = R("{{ nope.attr }}");
  REQUIRE_FALSE(attr.ok());
  CHECK(std::string(attr.status().message()).find("undefined") != std::string::npos);
  CHECK_FALSE(R("{{ nope + 'a' }}").ok());
}

TEST_CASE("if / elif / else and for loops with loop variables") {
  CHECK(Ok("{% if 0 %}a{% elif 1 %}b{% else %}c{% endif %}") == "b");
  CHECK(Ok("{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}"
           "{{ loop.length }}{{ x }}{% if loop.first %}F{% endif %}{% if loop.last %}L{% endif %};"
           "{% endfor %}") == "1033aF;2123b;3213cL;");
  CHECK(Ok("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}") == "a=1,b=2,");
  CHECK(Ok("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}") == "2242");
  CHECK(Ok("{% for x in [1,2,3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}") == "13");
  CHECK(Ok("{% for x in [1,2,3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}") == "1");
  CHECK(Ok("{% for x in [1,2] %}{{ loop.previtem }}|{% endfor %}") == "|1|");
}

TEST_CASE("set, scoping and namespaces") {
  CHECK(Ok("{% set x = 5 %}{% for i in [1] %}{% set x = 7 %}{% endfor %}{{ x }}") == "5");
  CHECK(Ok("{% set ns = namespace(n=0) %}{% for i in [1,2,3] %}{% set ns.n = ns.n + i %}{% endfor %}"
           "{{ ns.n }}") == "6");
  CHECK(Ok("{% set a, b = 1, 2 %}{{ a }}{{ b }}") == "12");
  CHECK(Ok("{% set block %}in {{ 1 + 1 }}{% endset %}[{{ block }}]") == "[in 2]");
}

TEST_CASE("macros") {
  CHECK(Ok("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
           "{{ greet('Ann') }} {{ greet('Bo', punct='?') }}") == "Hi Ann! Hi Bo?");
}

TEST_CASE("whitespace control, trim_blocks and lstrip_blocks") {
  CHECK(Ok("{% if true %}\n  x\n{% endif %}\n  {# c #}\n y\n") == "  x\n y");
  CHECK(Ok("a  {{- ' b ' -}}  c") == "a b c");
  CHECK(Ok("a\n  {%- if true %} b {% endif -%}\n  c") == "a b c");
  CHECK(Ok("  {%+ if true %}x{% endif %}") == "  x");
  CHECK(Ok("{% raw %}{{ not evaluated }}{% endraw %}") == "{{ not evaluated }}");
}

TEST_CASE("filters") {
  ojson ctx = {{"d", {{"b", {1, 2.5, "é\n\"", nullptr, true}}, {"a", ojson::object()}}}};
  CHECK(Ok("{{ d | tojson }}", ctx) == "{\"b\": [1, 2.5, \"é\\n\\\"\", null, true], \"a\": {}}");
  CHECK(Ok("{{ d | tojson(indent=2) }}", ctx) ==
        "{\n  \"b\": [\n    1,\n    2.5,\n    \"é\\n\\\"\",\n    null,\n    true\n  ],\n  \"a\": {}\n}");
  CHECK(Ok("{{ '  x  ' | trim }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ 'hELLO wORLD' | capitalize }}"
           "|{{ 'hello world' | title }}") == "x|ABab|Hello world|Hello World");
  CHECK(Ok("{{ [1,2,3] | join(', ') }} {{ [3,1] | first }} {{ [3,1] | last }} {{ 'ab' | list }}") ==
        "1, 2, 3 3 1 ['a', 'b']");
  CHECK(Ok("{{ 3.7 | int }} {{ '12' | int }} {{ 'x' | int }} {{ 5 | string }}{{ 'a-b' | replace('-', '+') }}") ==
        "3 12 0 5a+b");
  CHECK(Ok("{{ [{'r':'u','c':1},{'r':'a','c':2}] | selectattr('r', 'equalto', 'a') | map(attribute='c') | list }}"
           " {{ [{'r':'u'},{'r':'a'}] | rejectattr('r', 'eq', 'a') | list }}") == "[2] [{'r': 'u'}]");
  CHECK(Ok("{{ {'x': 1} | items | list }}") == "[('x', 1)]");
}

TEST_CASE("tests") {
  ojson ctx = {{"s", "x"}, {"m", {{"k", 1}}}, {"l", {1}}, {"n", nullptr}};
  CHECK(Ok("{{ s is string }}{{ m is mapping }}{{ l is iterable }}{{ l is sequence }}{{ n is none }}"
           "{{ s is mapping }}{{ 3 is divisibleby 3 }}{{ 1 is odd }}", ctx) ==
        "TrueTrueTrueTrueTrueFalseTrueTrue");
  CHECK(Ok("{{ false is false }}{{ 0 is false }}{{ 1 is number }}{{ 'a' is lower }}", ctx) ==
        "TrueFalseTrueTrue");
}

TEST_CASE("string methods") {
  CHECK(Ok("{{ '  a b  '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.split(' ', 1) }}") ==
        "['a', 'b'] ['a', 'b', '', 'c'] ['a', 'b c']");
  CHECK(Ok("[{{ '\\n x \\n'.strip() }}][{{ 'xxaxx'.lstrip('x') }}][{{ 'xxaxx'.rstrip('x') }}]") ==
        "[x][axx][xxa]");
  CHECK(Ok("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'hello world'.title() }}"
           "{{ 'aXb'.upper() }}{{ 'aXb'.lower() }}{{ 'aaa'.replace('a', 'b', 2) }}") ==
        "TrueTrueHello WorldAXBaxbbba");
  CHECK(Ok("{{ '<think>r</think>\\n\\nans'.split('</think>')[-1].lstrip('\\n') }}") == "ans");
  CHECK(Ok("{{ '\u3000wide\u00a0'.strip() }}") == "wide");  // Unicode whitespace, like Python
}

TEST_CASE("context defaults mirror transformers") {
  auto t = ChatTemplate::Parse("{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }}"
                               "{{ messages | length }}{{ messages[0].thinking }}");
  REQUIRE(t.ok());
  ojson msgs = {{{"role", "assistant"}, {"content", "c"}, {"reasoning_content", "why"}}};
  auto out = t->Render(msgs, true);
  REQUIRE(out.ok());
  CHECK(*out == "TrueTrueTrue1why");
  nlohmann::json plain = nlohmann::json::array();
  auto t2 = ChatTemplate::Parse("{{ tools is none }}{{ documents is none }}{{ add_generation_prompt }}");
  REQUIRE(t2.ok());
  CHECK(t2->Render(plain, false, nlohmann::json{{"tools", {1}}}).value() == "FalseTrueFalse");
}

TEST_CASE("errors name what went wrong") {
  auto unknown_filter = R("{{ 'x' | frobnicate }}");
  REQUIRE_FALSE(unknown_filter.ok());
  CHECK(std::string(unknown_filter.status().message()).find("frobnicate") != std::string::npos);

  auto syntax = ChatTemplate::Parse("line one\n{% if x %}\n{{ x + }}\n{% endif %}");
  REQUIRE_FALSE(syntax.ok());
  CHECK(std::string(syntax.status().message()).find("line 3") != std::string::npos);

  auto unclosed = ChatTemplate::Parse("{% for x in y %}\nbody");
  REQUIRE_FALSE(unclosed.ok());
  CHECK(std::string(unclosed.status().message()).find("endfor") != std::string::npos);
  CHECK_FALSE(ChatTemplate::Parse("{% frobnicate %}").ok());
  CHECK_FALSE(ChatTemplate::Parse("{{ 'unterminated }}").ok());

  auto raised = R("{{ raise_exception('Conversation roles must alternate') }}");
  REQUIRE_FALSE(raised.ok());
  CHECK(raised.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(raised.status().message()) == "Conversation roles must alternate");

  auto bad_messages = ChatTemplate::Parse("x")->Render(ojson("not a list"), false);
  CHECK_FALSE(bad_messages.ok());
}

TEST_CASE("runaway templates stop quickly with an error") {
  auto start = std::chrono::steady_clock::now();
  auto huge_range = R("{% for i in range(1000000000) %}x{% endfor %}");
  CHECK_FALSE(huge_range.ok());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  auto nested = R("{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}"
                  "{% endfor %}{% endfor %}{% endfor %}");
  REQUIRE_FALSE(nested.ok());
  CHECK(std::string(nested.status().message()).find("limit") != std::string::npos);
  auto doubling = R("{% set ns = namespace(s='ab') %}{% for i in range(100) %}"
                    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}");
  CHECK_FALSE(doubling.ok());
  CHECK_FALSE(R("{{ 'x' * 1000000000000 }}").ok());
  auto recursion = R("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  CHECK_FALSE(recursion.ok());
  CHECK_FALSE(ChatTemplate::Parse("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").ok());
  CHECK_FALSE(ChatTemplate::Parse("{{ " + std::string(5000, '[') + " }}").ok());
  std::string deep_ifs;
  for (int i = 0; i < 1000; ++i) deep_ifs += "{% if x %}";
  CHECK_FALSE(ChatTemplate::Parse(deep_ifs).ok());
  auto elapsed = std::chrono::steady_clock::now() - start;
  // About 1.5 s in an optimized build; generous for sanitizer builds.
  CHECK(elapsed < std::chrono::seconds(120));  // a hang guard, not a benchmark
}

}  // namespace
}  // namespace moe::server

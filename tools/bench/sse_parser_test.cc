#include "tools/bench/sse_parser.h"

#include <catch2/catch.hpp>

namespace moe::bench {
namespace {

TEST_CASE("SSE events are split on blank lines, whatever the chunking", "[sse]") {
  const std::string stream =
      ": keep-alive comment\n\n"
      "data: {\"a\":1}\n\n"
      "event: message\r\ndata: {\"b\":2}\r\n\r\n"
      "data: line one\ndata: line two\n\n"
      "data:[DONE]\n\n";
  const std::vector<std::string> expected = {"{\"a\":1}", "{\"b\":2}", "line one\nline two",
                                             "[DONE]"};
  for (size_t piece : {size_t{1}, size_t{3}, size_t{7}, stream.size()}) {
    SseParser parser;
    std::vector<std::string> got;
    for (size_t i = 0; i < stream.size(); i += piece) {
      for (std::string& e : parser.Feed(absl::string_view(stream).substr(i, piece))) {
        got.push_back(e);
      }
    }
    CHECK(got == expected);
  }
}

TEST_CASE("An event is not dispatched before its blank line", "[sse]") {
  SseParser parser;
  CHECK(parser.Feed("data: partial\n").empty());
  CHECK(parser.Feed("\n") == std::vector<std::string>{"partial"});
}

}  // namespace
}  // namespace moe::bench

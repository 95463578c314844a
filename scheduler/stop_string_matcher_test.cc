#include "scheduler/stop_string_matcher.h"

#include <catch2/catch.hpp>

namespace moe::scheduler {
namespace {

TEST_CASE("StopStringMatcher without stops passes text through") {
  StopStringMatcher m({});
  REQUIRE(m.Feed("hello").emit == "hello");
  REQUIRE(m.Flush().empty());
}

TEST_CASE("StopStringMatcher finds a stop string split across deltas and drops it") {
  StopStringMatcher m({"STOP"});
  std::string out;
  for (const char* d : {"ab", "cS", "T", "O", "Pxyz"}) {
    auto r = m.Feed(d);
    out += r.emit;
    if (r.stopped) {
      REQUIRE(r.matched == "STOP");
      break;
    }
  }
  REQUIRE(out == "abc");
  REQUIRE(m.Feed("more").emit.empty());
  REQUIRE(m.Flush().empty());
}

TEST_CASE("StopStringMatcher releases held-back text at the end") {
  StopStringMatcher m({"xyz"});
  std::string out = m.Feed("hello x").emit;
  REQUIRE(out == "hello");  // "x" and one more byte could start "xyz"
  out += m.Feed("y").emit;
  out += m.Flush();
  REQUIRE(out == "hello xy");
}

TEST_CASE("StopStringMatcher picks the earliest of several stops") {
  StopStringMatcher m({"world", "lo"});
  auto r = m.Feed("hello world");
  REQUIRE(r.stopped);
  REQUIRE(r.matched == "lo");
  REQUIRE(r.emit == "hel");
}

TEST_CASE("StopStringMatcher never splits a UTF-8 character when holding back") {
  StopStringMatcher m({"abc"});
  // "é" is 2 bytes; holdback is 2 bytes, so the cut would fall inside "é".
  std::string all;
  auto r = m.Feed("x\xC3\xA9");
  all += r.emit;
  REQUIRE((r.emit.empty() || r.emit == "x"));
  all += m.Feed("yz").emit;
  all += m.Flush();
  REQUIRE(all == "x\xC3\xA9yz");
}

}  // namespace
}  // namespace moe::scheduler

#include "scheduler/request_handle.h"

#include <atomic>
#include <thread>

#include <catch2/catch.hpp>

namespace moe::scheduler {
namespace {

TEST_CASE("RequestHandle delivers tokens then one final event") {
  RequestHandle h("r1");
  h.PushTokens({1}, "a", {});
  StreamEvent ev;
  REQUIRE(h.Next(&ev, absl::Seconds(1)));
  REQUIRE(ev.kind == StreamEvent::Kind::kTokens);
  REQUIRE(ev.token_ids == std::vector<int32_t>{1});
  StreamEvent done;
  done.finish_reason = FinishReason::kLength;
  h.PushComplete(done);
  h.PushTokens({2}, "b", {});  // ignored after the final event
  REQUIRE(h.finished());
  REQUIRE(h.Next(&ev, absl::Seconds(1)));
  REQUIRE(ev.kind == StreamEvent::Kind::kComplete);
  REQUIRE(ev.finish_reason == FinishReason::kLength);
  REQUIRE_FALSE(h.Next(&ev, absl::Milliseconds(10)));
}

TEST_CASE("RequestHandle merges token events a slow consumer has not taken") {
  RequestHandle h("r");
  for (int i = 0; i < 100; ++i) h.PushTokens({i}, "x", {});
  StreamEvent ev;
  REQUIRE(h.Next(&ev, absl::Seconds(1)));
  REQUIRE(ev.token_ids.size() == 100);
  REQUIRE(ev.text.size() == 100);
  REQUIRE_FALSE(h.Next(&ev, absl::Milliseconds(5)));  // timeout, nothing queued
}

TEST_CASE("RequestHandle wakes a consumer blocked in Next and reports Cancel once") {
  RequestHandle h("r");
  std::atomic<int> wakes{0};
  h.set_on_cancel([&] { ++wakes; });
  std::thread producer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    h.PushError(absl::InternalError("boom"));
  });
  StreamEvent ev;
  REQUIRE(h.Next(&ev, absl::Seconds(5)));
  REQUIRE(ev.kind == StreamEvent::Kind::kError);
  REQUIRE(ev.error.code() == absl::StatusCode::kInternal);
  producer.join();
  h.Cancel();  // already finished: no effect
  REQUIRE(wakes == 0);

  RequestHandle h2("r2");
  h2.set_on_cancel([&] { ++wakes; });
  h2.Cancel();
  h2.Cancel();
  REQUIRE(h2.cancelled());
  REQUIRE(wakes == 1);
}

TEST_CASE("RequestHandle ends a stream whose consumer falls too far behind") {
  RequestHandle h("slow");
  h.set_max_buffered_tokens(8);
  int wakes = 0;
  h.set_on_cancel([&wakes] { ++wakes; });
  for (int i = 0; i < 8; ++i) h.PushTokens({i}, "x", {});
  REQUIRE(h.buffered_tokens() == 8);
  REQUIRE_FALSE(h.finished());
  h.PushTokens({8}, "x", {});  // the ninth untaken token overflows
  REQUIRE(h.finished());
  REQUIRE(h.overflowed());
  REQUIRE(h.cancelled());
  REQUIRE(wakes == 1);
  REQUIRE(h.buffered_tokens() == 0);  // the buffered tokens were dropped
  h.PushTokens({9}, "x", {});         // later pushes are ignored
  StreamEvent ev;
  REQUIRE(h.Next(&ev, absl::Seconds(1)));
  REQUIRE(ev.kind == StreamEvent::Kind::kError);
  REQUIRE(ev.error.code() == absl::StatusCode::kResourceExhausted);
  REQUIRE_THAT(std::string(ev.error.message()),
               Catch::Contains("client reading too slowly: 9 tokens buffered"));
  REQUIRE_FALSE(h.Next(&ev, absl::Milliseconds(1)));
}

TEST_CASE("RequestHandle never overflows a consumer that keeps up") {
  RequestHandle h("fast");
  h.set_max_buffered_tokens(4);
  StreamEvent ev;
  for (int i = 0; i < 100; ++i) {
    h.PushTokens({i, i}, "xy", {});
    REQUIRE(h.Next(&ev, absl::Seconds(1)));
    REQUIRE(ev.token_ids.size() == 2);
  }
  REQUIRE_FALSE(h.overflowed());
  h.set_max_buffered_tokens(0);  // unbounded
  for (int i = 0; i < 10000; ++i) h.PushTokens({i}, "", {});
  REQUIRE(h.buffered_tokens() == 10000);
  REQUIRE_FALSE(h.finished());
}

}  // namespace
}  // namespace moe::scheduler

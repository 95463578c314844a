// A client that disconnects mid-stream (gRPC cancel, or an HTTP client closing its
// connection) has its request aborted and its KV blocks freed within a few engine steps.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/reliability/reliability_util.h"

namespace moe::reliability {
namespace {

// Steps the engine ran between `steps_at_disconnect` and all blocks being free.
int64_t StepsUntilFree(server::Server& server, int64_t steps_at_disconnect) {
  REQUIRE(WaitForAllBlocksFree(server, absl::Seconds(10)));
  return server.scheduler()->GetStats().num_steps - steps_at_disconnect;
}

TEST_CASE("gRPC: a client cancelling mid-stream frees its KV blocks within a few steps") {
  TestServer t = StartServer(TinyModelOptions(), SlowModelSource(absl::Milliseconds(10)));
  int64_t steps_at_cancel = 0;
  StreamResult r = Stream(*t.stub, GreedyIds(40, 1, 900), absl::Seconds(60),
                          [&](int n, grpc::ClientContext& ctx) {
                            if (n == 5) {
                              steps_at_cancel = t.server->scheduler()->GetStats().num_steps;
                              REQUIRE(t.server->scheduler()->GetStats().num_free_kv_blocks <
                                      t.server->scheduler()->GetStats().num_kv_blocks);
                              ctx.TryCancel();
                            }
                          });
  REQUIRE(r.status.error_code() == grpc::StatusCode::CANCELLED);
  const int64_t steps = StepsUntilFree(*t.server, steps_at_cancel);
  WARN(absl::StrCat("gRPC cancel: blocks free after ", steps, " engine steps"));
  CHECK(steps <= 5);
  CHECK(t.server->scheduler()->GetStats().num_aborted == 1);
}

TEST_CASE("HTTP: a client closing its SSE stream frees its KV blocks within a few steps") {
  TestServer t = StartServer(TinyModelOptions(), SlowModelSource(absl::Milliseconds(10)));
  httplib::Client cli("127.0.0.1", t.server->http_port());
  nlohmann::json body = {{"model", kTinyModel}, {"prompt", "hello hello hello"},
                         {"max_tokens", 900},   {"ignore_eos", true},
                         {"stream", true},      {"temperature", 0}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  int events = 0;
  int64_t steps_at_close = 0;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    for (size_t i = 0; i + 5 < len; ++i) events += std::string(data + i, 5) == "data:";
    if (events >= 5) {
      steps_at_close = t.server->scheduler()->GetStats().num_steps;
      return false;  // httplib closes the connection
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  cli.send(req, res, err);
  REQUIRE(events >= 5);
  REQUIRE(steps_at_close > 0);
  const int64_t steps = StepsUntilFree(*t.server, steps_at_close);
  WARN(absl::StrCat("HTTP close: blocks free after ", steps, " engine steps"));
  CHECK(steps <= 5);
  CHECK(t.server->scheduler()->GetStats().num_aborted == 1);
}

}  // namespace
}  // namespace moe::reliability

#include "tests/server/server_test_util.h"

#include <catch2/catch.hpp>

namespace moe::server::testing {

ServerOptions TinyModelOptions() {
  ServerOptions o;
  o.model = kTinyModel;
  o.device = "cpu";
  o.host = "127.0.0.1";
  o.grpc_port = 0;
  o.http_port = 0;  // never the default 8080: tests run in parallel
  o.num_kv_blocks = 512;
  o.num_threads = 1;
  o.log_level = "warn";
  return o;
}

ModelSource SlowModelSource(absl::Duration delay) {
  return [delay](const engine::LoadOptions& lo) -> absl::StatusOr<engine::LoadedModel> {
    auto m = engine::LoadModel(kTinyModel, lo);
    if (!m.ok()) return m.status();
    m->runner = std::make_unique<SlowRunner>(std::move(m->runner), delay);
    return m;
  };
}

TestServer StartServer(const ServerOptions& options, ModelSource source, bool wait_ready) {
  TestServer t;
  auto s = Server::BuildAndStart(options, std::move(source));
  REQUIRE(s.ok());
  t.server = *std::move(s);
  REQUIRE(t.server->port() > 0);
  if (wait_ready) REQUIRE(t.server->WaitUntilReady(absl::Seconds(60)).ok());
  t.channel = grpc::CreateChannel(t.server->address(), grpc::InsecureChannelCredentials());
  t.stub = moe::v1::Inference::NewStub(t.channel);
  return t;
}

StreamResult Stream(moe::v1::Inference::Stub& stub, const moe::v1::GenerateRequest& req,
                    const std::function<void(int, grpc::ClientContext&)>& on_chunk) {
  StreamResult r;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  auto reader = stub.Generate(&ctx, req);
  moe::v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    if (resp.has_chunk()) {
      ++r.chunks;
      r.tokens.insert(r.tokens.end(), resp.chunk().token_ids().begin(),
                      resp.chunk().token_ids().end());
      r.text += resp.chunk().text();
      r.logprobs.insert(r.logprobs.end(), resp.chunk().logprobs().begin(),
                        resp.chunk().logprobs().end());
      if (on_chunk) on_chunk(r.chunks, ctx);
    } else if (resp.has_complete()) {
      r.has_complete = true;
      r.complete = resp.complete();
    }
  }
  r.status = reader->Finish();
  return r;
}

moe::v1::GenerateRequest GreedyIds(const std::vector<int32_t>& prompt, int max_tokens) {
  moe::v1::GenerateRequest req;
  req.mutable_token_ids();  // set the oneof even for an empty prompt
  for (int32_t t : prompt) req.mutable_token_ids()->add_ids(t);
  req.mutable_sampling()->set_max_tokens(max_tokens);
  req.mutable_sampling()->set_temperature(0.f);
  req.mutable_sampling()->set_ignore_eos(true);
  return req;
}

std::vector<int32_t> TestPrompt(int len, int salt) {
  std::vector<int32_t> p;
  for (int i = 0; i < len; ++i) p.push_back(1 + (i * 37 + salt * 101) % 997);
  return p;
}

bool WaitForAllBlocksFree(Server& server, absl::Duration timeout) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    scheduler::Scheduler* sched = server.scheduler();  // null while loading
    if (sched != nullptr) {
      scheduler::SchedulerStats s = sched->GetStats();
      if (s.num_running == 0 && s.num_waiting == 0 && s.num_free_kv_blocks == s.num_kv_blocks) {
        return true;
      }
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

}  // namespace moe::server::testing

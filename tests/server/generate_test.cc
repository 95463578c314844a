// Continuous batching through the whole stack (gRPC → scheduler → CPU runner): batched
// greedy outputs equal solo outputs, also when KV pressure forces preemption.
#include <cctype>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/server/server_test_util.h"

namespace moe::server::testing {
namespace {

TEST_CASE("32 concurrent streams give exactly the tokens each gives alone") {
  ServerOptions o = TinyModelOptions();
  o.max_num_seqs = 16;
  o.max_num_batched_tokens = 96;  // long prompts are prefilled in chunks
  TestServer t = StartServer(o);

  std::vector<moe::v1::GenerateRequest> reqs;
  for (int i = 0; i < 32; ++i) {
    reqs.push_back(GreedyIds(TestPrompt(2 + (i * 29) % 150, i), 4 + (i * 7) % 37));
  }
  std::vector<StreamResult> solo;
  for (const auto& r : reqs) {
    solo.push_back(Stream(*t.stub, r));
    REQUIRE(solo.back().status.ok());
    REQUIRE(solo.back().tokens.size() == static_cast<size_t>(r.sampling().max_tokens()));
  }

  std::vector<StreamResult> together(32);
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] { together[i] = Stream(*t.stub, reqs[i]); });
  }
  for (auto& th : threads) th.join();
  for (int i = 0; i < 32; ++i) {
    INFO("request " << i << " prompt " << reqs[i].token_ids().ids_size() << " tokens");
    REQUIRE(together[i].status.ok());
    REQUIRE(together[i].has_complete);
    REQUIRE(together[i].complete.finish_reason() == moe::v1::FINISH_REASON_LENGTH);
    REQUIRE(together[i].complete.prompt_tokens() == reqs[i].token_ids().ids_size());
    REQUIRE(together[i].tokens == solo[i].tokens);
    REQUIRE(together[i].text == solo[i].text);
  }
  REQUIRE(WaitForAllBlocksFree(*t.server, absl::Seconds(5)));
  auto stats = t.server->scheduler()->GetStats();
  REQUIRE(stats.num_finished == 64);
  // Batching really happened: fewer steps than the requests' tokens run one at a time.
  REQUIRE(stats.num_steps > 0);
}

TEST_CASE("KV pressure forces preemption and outputs stay identical") {
  ServerOptions o = TinyModelOptions();
  o.num_kv_blocks = 24;  // 384 token slots; 8 requests need up to 8 * 6 blocks
  o.max_num_seqs = 8;
  TestServer t = StartServer(o);

  std::vector<moe::v1::GenerateRequest> reqs;
  for (int i = 0; i < 8; ++i) reqs.push_back(GreedyIds(TestPrompt(30 + 5 * i, 50 + i), 48));
  std::vector<StreamResult> solo;
  for (const auto& r : reqs) solo.push_back(Stream(*t.stub, r));
  REQUIRE(t.server->scheduler()->GetStats().num_preemptions == 0);

  std::vector<StreamResult> together(reqs.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < reqs.size(); ++i) {
    threads.emplace_back([&, i] { together[i] = Stream(*t.stub, reqs[i]); });
  }
  for (auto& th : threads) th.join();
  REQUIRE(t.server->scheduler()->GetStats().num_preemptions > 0);
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i);
    REQUIRE(together[i].status.ok());
    REQUIRE(together[i].tokens == solo[i].tokens);
  }
  REQUIRE(WaitForAllBlocksFree(*t.server, absl::Seconds(5)));
}

TEST_CASE("Every tiny model family batches without changing its greedy output") {
  for (const char* family : {"mixtral", "olmoe", "qwen2_moe", "qwen3_moe"}) {
    INFO("family " << family);
    ServerOptions o = TinyModelOptions();
    o.model = std::string("tests/data/models/") + family;
    o.max_num_batched_tokens = 64;
    TestServer t = StartServer(o);
    std::vector<moe::v1::GenerateRequest> reqs;
    for (int i = 0; i < 8; ++i) reqs.push_back(GreedyIds(TestPrompt(3 + 17 * i, i), 6 + 3 * i));
    std::vector<StreamResult> solo, together(reqs.size());
    for (const auto& r : reqs) solo.push_back(Stream(*t.stub, r));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < reqs.size(); ++i) {
      threads.emplace_back([&, i] { together[i] = Stream(*t.stub, reqs[i]); });
    }
    for (auto& th : threads) th.join();
    for (size_t i = 0; i < reqs.size(); ++i) {
      INFO("request " << i);
      REQUIRE(solo[i].status.ok());
      REQUIRE(together[i].status.ok());
      REQUIRE(together[i].tokens == solo[i].tokens);
    }
  }
}

TEST_CASE("A stop string ends generation and is cut from the streamed text") {
  TestServer t = StartServer(TinyModelOptions());
  moe::v1::GenerateRequest req;
  req.set_text("Once upon a time");
  req.mutable_sampling()->set_max_tokens(40);
  req.mutable_sampling()->set_ignore_eos(true);
  StreamResult full = Stream(*t.stub, req);
  REQUIRE(full.status.ok());
  REQUIRE(full.text.size() > 20);
  // Three ASCII letters from the second half (the random model also emits bytes that
  // decode to U+FFFD; a stop string must be valid UTF-8).
  size_t at = std::string::npos;
  for (size_t i = full.text.size() / 2; i + 3 <= full.text.size() && at == std::string::npos; ++i) {
    if (std::isalpha(static_cast<unsigned char>(full.text[i])) &&
        std::isalpha(static_cast<unsigned char>(full.text[i + 1])) &&
        std::isalpha(static_cast<unsigned char>(full.text[i + 2]))) {
      at = i;
    }
  }
  REQUIRE(at != std::string::npos);
  const std::string stop = full.text.substr(at, 3);
  const std::string expected = full.text.substr(0, full.text.find(stop));
  req.mutable_sampling()->add_stop(stop);
  StreamResult cut = Stream(*t.stub, req);
  INFO("stop \"" << stop << "\" in \"" << full.text << "\"");
  REQUIRE(cut.status.ok());
  REQUIRE(cut.complete.finish_reason() == moe::v1::FINISH_REASON_STOP);
  REQUIRE(cut.complete.stop_reason() == stop);
  REQUIRE(cut.text == expected);
  REQUIRE(cut.tokens.size() < full.tokens.size());
}

TEST_CASE("Text prompts stream text, and seeded sampling is reproducible") {
  TestServer t = StartServer(TinyModelOptions());
  moe::v1::GenerateRequest req;
  req.set_text("Hello world, this is a test");
  req.mutable_sampling()->set_max_tokens(20);
  req.mutable_sampling()->set_temperature(0.8f);
  req.mutable_sampling()->set_seed(42);
  req.mutable_sampling()->set_ignore_eos(true);
  req.mutable_sampling()->set_logprobs(3);
  StreamResult a = Stream(*t.stub, req);
  StreamResult b = Stream(*t.stub, req);
  REQUIRE(a.status.ok());
  REQUIRE(a.tokens.size() == 20);
  REQUIRE(a.tokens == b.tokens);
  REQUIRE(a.text == b.text);
  REQUIRE(a.complete.completion_tokens() == 20);
  // logprobs: one entry per token, the chosen token first, then the top 3 in order.
  REQUIRE(a.logprobs.size() == 20);
  for (size_t i = 0; i < a.logprobs.size(); ++i) {
    const auto& lp = a.logprobs[i];
    REQUIRE(lp.chosen().token_id() == a.tokens[i]);
    REQUIRE(lp.chosen().logprob() <= 0.f);
    REQUIRE(lp.top_size() == 3);
    REQUIRE(lp.top(0).logprob() >= lp.top(1).logprob());
    REQUIRE(lp.top(1).logprob() >= lp.top(2).logprob());
    REQUIRE(lp.chosen().logprob() <= lp.top(0).logprob());
  }
  // The streamed text is the detokenized completion.
  moe::v1::DetokenizeRequest dreq;
  for (int32_t id : a.tokens) dreq.add_token_ids(id);
  dreq.set_skip_special_tokens(true);
  moe::v1::DetokenizeResponse dresp;
  grpc::ClientContext ctx;
  REQUIRE(t.stub->Detokenize(&ctx, dreq, &dresp).ok());
  REQUIRE(a.text == dresp.text());
}

}  // namespace
}  // namespace moe::server::testing

// Scheduler behaviour against FakeModelRunner, whose greedy output is known in advance
// (ReferenceGreedy) and which fails a step whose KV block tables are inconsistent.
#include "scheduler/scheduler.h"

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "scheduler/testing/fake_model_runner.h"
#include "scheduler/testing/fake_text_decoder.h"

namespace moe::scheduler {
namespace {

using testing::FakeModelRunner;
using testing::FakeRunnerOptions;

struct Outcome {
  std::vector<int32_t> tokens;
  std::string text;
  bool completed = false;
  StreamEvent complete;
  absl::Status error;
};

Outcome Drain(RequestHandle& h, absl::Duration timeout = absl::Seconds(30)) {
  Outcome o;
  const absl::Time end = absl::Now() + timeout;
  StreamEvent ev;
  while (absl::Now() < end) {
    if (!h.Next(&ev, absl::Milliseconds(100))) continue;
    if (ev.kind == StreamEvent::Kind::kTokens) {
      o.tokens.insert(o.tokens.end(), ev.token_ids.begin(), ev.token_ids.end());
      o.text += ev.text;
    } else if (ev.kind == StreamEvent::Kind::kComplete) {
      o.completed = true;
      o.complete = ev;
      return o;
    } else {
      o.error = ev.error;
      return o;
    }
  }
  o.error = absl::DeadlineExceededError("test timed out waiting for the stream");
  return o;
}

std::vector<int32_t> MakePrompt(int len, int salt, int vocab) {
  std::vector<int32_t> p;
  for (int i = 0; i < len; ++i) p.push_back((i * 7 + salt * 13 + 1) % vocab);
  return p;
}

GenerateRequest Greedy(std::vector<int32_t> prompt, int max_tokens) {
  GenerateRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.f;
  return r;
}

// Waits for the engine to publish its final accounting after the last Complete.
SchedulerStats IdleStats(Scheduler& s) {
  REQUIRE(s.WaitUntilIdle(absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(30));
  return s.GetStats();
}

TEST_CASE("A single greedy request yields exactly the reference tokens") {
  FakeModelRunner runner(FakeRunnerOptions{});
  SchedulerOptions opts;
  opts.make_text_decoder = testing::FakeTextDecoderFactory();
  Scheduler sched(&runner, opts);
  REQUIRE(sched.Start().ok());
  auto prompt = MakePrompt(37, 1, 64);
  auto h = sched.Submit(Greedy(prompt, 20));
  REQUIRE(h.ok());
  Outcome o = Drain(**h);
  REQUIRE(o.error.ok());
  REQUIRE(o.completed);
  const auto ref = FakeModelRunner::ReferenceGreedy(prompt, 20, 64);
  REQUIRE(o.tokens == ref);
  REQUIRE(o.text == testing::FakeText(ref));
  REQUIRE(o.complete.finish_reason == FinishReason::kLength);
  REQUIRE(o.complete.prompt_tokens == 37);
  REQUIRE(o.complete.completion_tokens == 20);
  REQUIRE(o.complete.time_to_first_token_s > 0);
  auto st = IdleStats(sched);
  REQUIRE(st.num_free_kv_blocks == st.num_kv_blocks);
}

TEST_CASE("32 concurrent requests of different lengths each get their solo output, "
          "within the token budget and max_num_seqs") {
  FakeRunnerOptions ro;
  ro.num_kv_blocks = 256;
  FakeModelRunner runner(ro);
  SchedulerOptions opts;
  opts.max_num_seqs = 8;
  opts.max_num_batched_tokens = 48;
  Scheduler sched(&runner, opts);
  REQUIRE(sched.Start().ok());

  std::vector<std::vector<int32_t>> prompts;
  std::vector<int> lens;
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 32; ++i) {
    prompts.push_back(MakePrompt(1 + (i * 11) % 90, i, 64));
    lens.push_back(1 + (i * 5) % 30);
    auto h = sched.Submit(Greedy(prompts.back(), lens.back()));
    REQUIRE(h.ok());
    handles.push_back(*h);
  }
  // Consume concurrently, as 32 frontends would.
  std::vector<Outcome> outcomes(32);
  std::vector<std::thread> threads;
  for (int i = 0; i < 32; ++i) {
    threads.emplace_back([&, i] { outcomes[i] = Drain(*handles[i]); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 32; ++i) {
    INFO("request " << i);
    REQUIRE(outcomes[i].error.ok());
    REQUIRE(outcomes[i].tokens == FakeModelRunner::ReferenceGreedy(prompts[i], lens[i], 64));
  }
  bool saw_partial_chunk = false;
  for (const auto& step : runner.steps()) {
    REQUIRE(step.num_tokens <= opts.max_num_batched_tokens);
    REQUIRE(step.num_seqs <= opts.max_num_seqs);
    for (int n : step.chunk_tokens) saw_partial_chunk |= (n > 1 && n < 48);
  }
  REQUIRE(saw_partial_chunk);
  auto st = IdleStats(sched);
  REQUIRE(st.num_free_kv_blocks == st.num_kv_blocks);
  REQUIRE(st.num_finished == 32);
}

TEST_CASE("Chunked prefill splits a long prompt under the token budget") {
  FakeModelRunner runner(FakeRunnerOptions{});
  SchedulerOptions opts;
  opts.max_num_batched_tokens = 16;
  Scheduler sched(&runner, opts);
  REQUIRE(sched.Start().ok());
  auto prompt = MakePrompt(100, 3, 64);
  auto h = sched.Submit(Greedy(prompt, 5));
  REQUIRE(h.ok());
  Outcome o = Drain(**h);
  REQUIRE(o.tokens == FakeModelRunner::ReferenceGreedy(prompt, 5, 64));
  auto steps = runner.steps();
  // ceil(100 / 16) = 7 prefill steps, then 4 decode steps.
  REQUIRE(steps.size() == 11);
  for (int i = 0; i < 6; ++i) REQUIRE(steps[i].chunk_tokens[0] == 16);
  REQUIRE(steps[6].chunk_tokens[0] == 4);
}

TEST_CASE("KV pressure forces preemption and greedy and seeded outputs are unchanged") {
  // 8 requests of up to 80 tokens (5 blocks) share 14 blocks: they cannot all run.
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 8; ++i) prompts.push_back(MakePrompt(10 + 3 * i, 100 + i, 64));
  auto run = [&](int num_blocks, bool seeded, SchedulerStats* stats) {
    FakeRunnerOptions ro;
    ro.num_kv_blocks = num_blocks;
    FakeModelRunner runner(ro);
    SchedulerOptions opts;
    opts.max_num_seqs = 8;
    Scheduler sched(&runner, opts);
    REQUIRE(sched.Start().ok());
    std::vector<std::shared_ptr<RequestHandle>> hs;
    for (int i = 0; i < 8; ++i) {
      GenerateRequest r = Greedy(prompts[i], 40);
      if (seeded) {
        r.sampling.temperature = 1.0f;
        r.sampling.has_seed = true;
        r.sampling.seed = 1234 + i;
      }
      auto h = sched.Submit(std::move(r));
      REQUIRE(h.ok());
      hs.push_back(*h);
    }
    std::vector<std::vector<int32_t>> out;
    for (auto& h : hs) {
      Outcome o = Drain(*h);
      REQUIRE(o.error.ok());
      REQUIRE(o.complete.finish_reason == FinishReason::kLength);
      out.push_back(o.tokens);
    }
    *stats = IdleStats(sched);
    REQUIRE(stats->num_free_kv_blocks == num_blocks);
    return out;
  };
  SchedulerStats roomy, tight;
  auto greedy_tight = run(14, false, &tight);
  REQUIRE(tight.num_preemptions > 0);
  for (int i = 0; i < 8; ++i) {
    REQUIRE(greedy_tight[i] == FakeModelRunner::ReferenceGreedy(prompts[i], 40, 64));
  }
  auto seeded_roomy = run(256, true, &roomy);
  REQUIRE(roomy.num_preemptions == 0);
  auto seeded_tight = run(14, true, &tight);
  REQUIRE(tight.num_preemptions > 0);
  REQUIRE(seeded_tight == seeded_roomy);
}

FakeRunnerOptions BigCache() {
  FakeRunnerOptions ro;
  ro.num_kv_blocks = 256;  // room for one 4096-token sequence
  return ro;
}

TEST_CASE("Cancel and Abort end a stream with abort and return its blocks") {
  FakeModelRunner runner(BigCache());
  runner.set_step_delay(absl::Milliseconds(2));
  Scheduler sched(&runner, SchedulerOptions{});
  REQUIRE(sched.Start().ok());
  for (bool use_abort : {false, true}) {
    GenerateRequest r = Greedy(MakePrompt(40, 7, 64), 2000);
    r.request_id = use_abort ? "by-abort" : "by-cancel";
    auto h = sched.Submit(r);
    REQUIRE(h.ok());
    StreamEvent ev;
    int got = 0;
    while (got < 3 && (*h)->Next(&ev, absl::Seconds(5))) got += ev.token_ids.size();
    REQUIRE(got >= 3);
    REQUIRE(sched.GetStats().num_free_kv_blocks < sched.GetStats().num_kv_blocks);
    if (use_abort) {
      REQUIRE(sched.Abort("by-abort").ok());
    } else {
      (*h)->Cancel();
    }
    Outcome o = Drain(**h, absl::Seconds(5));
    REQUIRE(o.completed);
    REQUIRE(o.complete.finish_reason == FinishReason::kAbort);
    REQUIRE(o.complete.completion_tokens < 2000);
    auto st = IdleStats(sched);
    REQUIRE(st.num_free_kv_blocks == st.num_kv_blocks);
    REQUIRE(st.num_aborted == (use_abort ? 2 : 1));
  }
  REQUIRE(sched.Abort("no-such-request").code() == absl::StatusCode::kNotFound);
}

TEST_CASE("A full waiting queue rejects with RESOURCE_EXHAUSTED") {
  FakeModelRunner runner(FakeRunnerOptions{});
  SchedulerOptions opts;
  opts.max_queue = 2;
  Scheduler sched(&runner, opts);  // not started: nothing leaves the queue yet
  auto a = sched.Submit(Greedy({1, 2, 3}, 4));
  auto b = sched.Submit(Greedy({4, 5, 6}, 4));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto c = sched.Submit(Greedy({7}, 4));
  REQUIRE(c.status().code() == absl::StatusCode::kResourceExhausted);
  REQUIRE(sched.Start().ok());
  REQUIRE(Drain(**a).tokens == FakeModelRunner::ReferenceGreedy({1, 2, 3}, 4, 64));
  REQUIRE(Drain(**b).completed);
}

TEST_CASE("An expired deadline ends the request with DEADLINE_EXCEEDED and frees blocks") {
  FakeModelRunner runner(BigCache());
  runner.set_step_delay(absl::Milliseconds(2));
  Scheduler sched(&runner, SchedulerOptions{});
  REQUIRE(sched.Start().ok());
  GenerateRequest r = Greedy(MakePrompt(20, 9, 64), 3000);
  r.deadline = absl::Now() + absl::Milliseconds(60);
  auto h = sched.Submit(r);
  REQUIRE(h.ok());
  Outcome o = Drain(**h, absl::Seconds(10));
  REQUIRE(o.error.code() == absl::StatusCode::kDeadlineExceeded);
  REQUIRE(o.tokens.size() > 0);
  REQUIRE(o.tokens.size() < 3000);
  auto st = IdleStats(sched);
  REQUIRE(st.num_free_kv_blocks == st.num_kv_blocks);
}

TEST_CASE("Submit rejects invalid requests naming the field") {
  FakeRunnerOptions ro;
  ro.max_position_embeddings = 128;
  ro.num_kv_blocks = 4;  // 64 tokens of KV
  FakeModelRunner runner(ro);
  Scheduler sched(&runner, SchedulerOptions{});
  auto expect = [&](GenerateRequest r, const std::string& field) {
    auto h = sched.Submit(std::move(r));
    REQUIRE(h.status().code() == absl::StatusCode::kInvalidArgument);
    INFO(h.status().message());
    REQUIRE(std::string(h.status().message()).rfind(field, 0) == 0);
  };
  expect(Greedy({}, 4), "prompt");
  expect(Greedy({1, 2}, 0), "max_tokens");
  expect(Greedy({1, 2}, -3), "max_tokens");
  expect(Greedy({1, 2}, 127), "max_tokens");  // 129 > context 128
  expect(Greedy({1, 2}, 70), "max_tokens");   // 72 tokens > 64 of KV
  expect(Greedy({1, 64}, 4), "prompt");       // vocab is 64
  expect(Greedy({-1}, 4), "prompt");
  GenerateRequest bad_t = Greedy({1}, 4);
  bad_t.sampling.temperature = -1.f;
  expect(bad_t, "temperature");
  GenerateRequest bad_p = Greedy({1}, 4);
  bad_p.sampling.top_p = 1.5f;
  expect(bad_p, "top_p");
  GenerateRequest dup = Greedy({1}, 4);
  dup.request_id = "same";
  REQUIRE(sched.Submit(dup).ok());
  expect(dup, "request_id");
}

TEST_CASE("Stop rules: eos, stop token ids and stop strings") {
  FakeRunnerOptions ro;
  FakeModelRunner runner(ro);
  const auto prompt = MakePrompt(12, 5, 64);
  const auto ref = FakeModelRunner::ReferenceGreedy(prompt, 30, 64);
  const std::string ref_text = testing::FakeText(ref);
  // Stop at the reference's 10th token (first occurrence).
  const int32_t stop_tok = ref[9];
  size_t first = 0;
  while (ref[first] != stop_tok) ++first;

  SchedulerOptions opts;
  opts.eos_token_ids = {stop_tok};
  opts.make_text_decoder = testing::FakeTextDecoderFactory();
  Scheduler sched(&runner, opts);
  REQUIRE(sched.Start().ok());

  SECTION("eos stops generation, ignore_eos does not") {
    Outcome o = Drain(**sched.Submit(Greedy(prompt, 30)));
    REQUIRE(o.complete.finish_reason == FinishReason::kStop);
    REQUIRE(o.tokens == std::vector<int32_t>(ref.begin(), ref.begin() + first + 1));
    REQUIRE(o.text == ref_text.substr(0, first));  // the eos token has no text
    GenerateRequest r = Greedy(prompt, 30);
    r.ignore_eos = true;
    Outcome o2 = Drain(**sched.Submit(r));
    REQUIRE(o2.complete.finish_reason == FinishReason::kLength);
    REQUIRE(o2.tokens == ref);
  }
  SECTION("stop_token_ids") {
    GenerateRequest r = Greedy(prompt, 30);
    r.ignore_eos = true;
    r.stop_token_ids = {ref[4]};
    size_t at = 0;
    while (ref[at] != ref[4]) ++at;
    Outcome o = Drain(**sched.Submit(r));
    REQUIRE(o.complete.finish_reason == FinishReason::kStop);
    REQUIRE(o.tokens.size() == at + 1);
  }
  SECTION("a stop string is cut from the text") {
    GenerateRequest r = Greedy(prompt, 30);
    r.ignore_eos = true;
    const std::string stop = ref_text.substr(15, 3);
    r.stop_strings = {stop};
    Outcome o = Drain(**sched.Submit(r));
    REQUIRE(o.complete.finish_reason == FinishReason::kStop);
    REQUIRE(o.complete.stop_reason == stop);
    REQUIRE(o.text == ref_text.substr(0, ref_text.find(stop)));
  }
}

TEST_CASE("Shutdown aborts requests in flight and later submits are UNAVAILABLE") {
  FakeModelRunner runner(BigCache());
  runner.set_step_delay(absl::Milliseconds(2));
  auto sched = std::make_unique<Scheduler>(&runner, SchedulerOptions{});
  REQUIRE(sched->Start().ok());
  auto h = sched->Submit(Greedy({1, 2, 3}, 3000));
  REQUIRE(h.ok());
  absl::SleepFor(absl::Milliseconds(20));
  sched->StopAccepting();
  REQUIRE(sched->Submit(Greedy({1}, 2)).status().code() == absl::StatusCode::kUnavailable);
  sched->Shutdown();
  Outcome o = Drain(**h, absl::Seconds(5));
  REQUIRE(o.completed);
  REQUIRE(o.complete.finish_reason == FinishReason::kAbort);
}

TEST_CASE("Step timing: forward time covers the runner's work, every step is counted, "
          "and idle waits are not host overhead") {
  FakeModelRunner runner(FakeRunnerOptions{});
  const absl::Duration delay = absl::Milliseconds(10);
  runner.set_step_delay(delay);
  Scheduler sched(&runner, SchedulerOptions{});
  // Queued before Start: all four are prefilled in the first step, then decode together.
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < 4; ++i) {
    auto h = sched.Submit(Greedy(MakePrompt(8, i, 64), 6));
    REQUIRE(h.ok());
    handles.push_back(*h);
  }
  REQUIRE(sched.Start().ok());
  for (auto& h : handles) REQUIRE(Drain(*h).completed);
  SchedulerStats st = IdleStats(sched);
  REQUIRE(st.num_steps == 6);  // one prefill step (first token) + 5 decode steps
  REQUIRE(st.num_steps == static_cast<int64_t>(runner.steps().size()));
  REQUIRE(st.last_step_num_seqs == 4);
  // The sleep alone is 10 ms per step (less a clock tick of slack).
  REQUIRE(st.forward_seconds_total >= 6 * 0.0099);
  REQUIRE(st.host_seconds_total > 0);
  const double host_before_idle = st.host_seconds_total;

  // 300 ms with nothing to run, then one more one-step request.
  absl::SleepFor(absl::Milliseconds(300));
  auto h = sched.Submit(Greedy(MakePrompt(5, 9, 64), 1));
  REQUIRE(h.ok());
  REQUIRE(Drain(**h).completed);
  st = IdleStats(sched);
  REQUIRE(st.num_steps == 7);
  REQUIRE(st.last_step_num_seqs == 1);
  REQUIRE(st.forward_seconds_total >= 7 * 0.0099);
  // Had the idle wait been counted, host time would have grown by >= 0.3 s.
  REQUIRE(st.host_seconds_total - host_before_idle < 0.2);
  // Histogram: cumulative, never above the step count.
  const auto& b = st.step_host_seconds_buckets;
  REQUIRE(b.size() == StepHostSecondsBounds().size());
  for (size_t i = 1; i < b.size(); ++i) REQUIRE(b[i] >= b[i - 1]);
  REQUIRE(b.back() <= st.num_steps);
  REQUIRE(b.back() >= 1);  // a step's host work takes well under a second
}

TEST_CASE("GetStats carries the runner's offload counters when it has them") {
  FakeModelRunner runner(FakeRunnerOptions{});
  Scheduler sched(&runner, SchedulerOptions{});
  REQUIRE_FALSE(sched.GetStats().offload.has_value());
  engine::OffloadStats os;
  os.h2d_bytes = 12345;
  os.policy = "lfu";
  os.layers.push_back(engine::OffloadLayerStats{});
  os.layers[0].hits = 7;
  runner.set_offload_stats(os);
  const SchedulerStats st = sched.GetStats();
  REQUIRE(st.offload.has_value());
  REQUIRE(st.offload->h2d_bytes == 12345);
  REQUIRE(st.offload->policy == "lfu");
  REQUIRE(st.offload->layers.size() == 1);
  REQUIRE(st.offload->layers[0].hits == 7);
}

// Starts a scheduler over `runner`, submits make(0) .. make(n - 1) at once and drains
// every stream, in submission order.
std::vector<Outcome> SubmitAll(FakeModelRunner& runner, SchedulerOptions opts, int n,
                               const std::function<GenerateRequest(int)>& make) {
  opts.make_text_decoder = testing::FakeTextDecoderFactory();
  Scheduler sched(&runner, opts);
  REQUIRE(sched.Start().ok());
  std::vector<std::shared_ptr<RequestHandle>> handles;
  for (int i = 0; i < n; ++i) {
    auto h = sched.Submit(make(i));
    REQUIRE(h.ok());
    handles.push_back(*h);
  }
  std::vector<Outcome> out;
  for (auto& h : handles) out.push_back(Drain(*h));
  return out;
}

TEST_CASE("Parallel sampling: seeded outputs do not depend on the number of threads") {
  auto run = [](int threads) {
    FakeModelRunner runner(FakeRunnerOptions{});
    SchedulerOptions opts;
    opts.num_sampling_threads = threads;
    return SubmitAll(runner, opts, 24, [](int i) {
      GenerateRequest r;
      r.prompt = MakePrompt(5 + i % 7, i, 64);
      r.max_tokens = 12;
      r.sampling.temperature = 1.5f;  // flat enough that the draws matter
      r.sampling.top_p = 0.95f;
      r.sampling.has_seed = true;
      r.sampling.seed = 500 + i;
      r.sampling.logprobs = i % 3;
      return r;
    });
  };
  const std::vector<Outcome> serial = run(1);
  const std::vector<Outcome> parallel = run(4);
  REQUIRE(serial.size() == parallel.size());
  bool any_non_greedy = false;
  for (size_t i = 0; i < serial.size(); ++i) {
    REQUIRE(serial[i].completed);
    REQUIRE(parallel[i].completed);
    CHECK(serial[i].tokens == parallel[i].tokens);
    CHECK(serial[i].text == parallel[i].text);
    CHECK(serial[i].tokens.size() == 12);
    // The fake's greedy token is not always drawn: sampling is really exercised.
    auto prompt = MakePrompt(5 + i % 7, static_cast<int>(i), 64);
    if (serial[i].tokens != FakeModelRunner::ReferenceGreedy(prompt, 12, 64)) any_non_greedy = true;
  }
  CHECK(any_non_greedy);
}

TEST_CASE("Device sampling: a runner that samples on the device gives the host's tokens, "
          "declined rows included") {
  // The same 30 seeded requests (greedy, temperature, top-k, top-p, with and without
  // logprobs) against a host-sampling runner and a device-sampling one that declines every
  // third row it is asked to sample (as a device declines non-finite rows).
  auto run = [](bool device, int64_t* sampled, int64_t* declined) {
    FakeRunnerOptions ro;
    ro.device_sampling = device;
    ro.decline_every = 3;
    FakeModelRunner runner(ro);
    std::vector<Outcome> out = SubmitAll(runner, SchedulerOptions{}, 30, [](int i) {
      GenerateRequest r;
      r.prompt = MakePrompt(4 + i % 5, i, 64);
      r.max_tokens = 10;
      r.sampling.temperature = i % 5 == 0 ? 0.f : 1.3f;
      r.sampling.top_k = i % 5 == 1 ? 8 : 0;
      r.sampling.top_p = i % 5 == 2 ? 0.9f : 1.f;
      r.sampling.has_seed = true;
      r.sampling.seed = 900 + i;
      r.sampling.logprobs = i % 5 == 3 ? 2 : 0;
      return r;
    });
    *sampled = runner.num_device_sampled();
    *declined = runner.num_device_declined();
    return out;
  };
  int64_t host_sampled = 0, host_declined = 0, dev_sampled = 0, dev_declined = 0;
  const std::vector<Outcome> host = run(false, &host_sampled, &host_declined);
  const std::vector<Outcome> dev = run(true, &dev_sampled, &dev_declined);
  CHECK(host_sampled == 0);
  // Every token of the 24 requests without logprobs went to the device; a third declined.
  CHECK(dev_sampled == 24 * 10);
  CHECK(dev_declined == dev_sampled / 3);
  REQUIRE(host.size() == dev.size());
  bool any_non_greedy = false;
  for (size_t i = 0; i < host.size(); ++i) {
    REQUIRE(host[i].completed);
    REQUIRE(dev[i].completed);
    CHECK(host[i].tokens == dev[i].tokens);
    CHECK(host[i].text == dev[i].text);
    auto prompt = MakePrompt(4 + static_cast<int>(i) % 5, static_cast<int>(i), 64);
    if (host[i].tokens != FakeModelRunner::ReferenceGreedy(prompt, 10, 64)) any_non_greedy = true;
  }
  CHECK(any_non_greedy);
}

}  // namespace
}  // namespace moe::scheduler

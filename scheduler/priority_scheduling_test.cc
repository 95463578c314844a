// Priority scheduling (SchedulingPolicy::kPriority, vLLM's --scheduling-policy priority):
// BatchComposer's decisions step by step, then the Scheduler end to end against
// FakeModelRunner, whose greedy output is known in advance (ReferenceGreedy), so
// preemption must leave every output unchanged.
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/synchronization/mutex.h"
#include "scheduler/kv_block_manager.h"
#include "scheduler/policies.h"
#include "scheduler/scheduler.h"
#include "scheduler/testing/fake_model_runner.h"

namespace moe::scheduler {
namespace {

using testing::FakeModelRunner;
using testing::FakeRunnerOptions;

std::vector<int32_t> MakePrompt(int len, int salt, int vocab = 64) {
  std::vector<int32_t> p;
  for (int i = 0; i < len; ++i) p.push_back((i * 7 + salt * 13 + 1) % vocab);
  return p;
}

// ---------------------------------------------------------------------------------------
// BatchComposer, one step at a time (no engine thread).

struct Bench {
  explicit Bench(int num_blocks, SchedulingPolicy policy, int max_num_seqs = 64,
                 bool prefix_caching = false)
      : kv(num_blocks, 16, prefix_caching), composer(Limits(policy, max_num_seqs)) {}

  static BatchLimits Limits(SchedulingPolicy policy, int max_num_seqs) {
    BatchLimits l;
    l.policy = policy;
    l.max_num_seqs = max_num_seqs;
    return l;
  }

  // Queues a sequence (ids in arrival order, as Scheduler::Submit assigns them).
  Sequence* Arrive(std::vector<int32_t> prompt, int priority) {
    auto s = std::make_unique<Sequence>();
    s->id = next_id++;
    s->request.priority = priority;
    s->prompt_len = static_cast<int>(prompt.size());
    s->tokens = std::move(prompt);
    waiting.push_back(std::move(s));
    return waiting.back().get();
  }

  // Composes one step and "runs" it: the chunks' tokens become computed (and their full
  // blocks registered, for prefix caching), and a chunk reaching the end gets a token.
  StepPlan Step() {
    StepPlan plan = composer.Compose(&running, &waiting, &kv, &next_admit_order);
    for (const ScheduledChunk& c : plan.chunks) {
      c.seq->num_computed += c.num_tokens;
      kv.RegisterComputed(c.seq->id, c.seq->tokens, c.seq->num_computed);
      if (c.wants_logits) c.seq->tokens.push_back(7);
    }
    REQUIRE(kv.CheckInvariants().ok());
    return plan;
  }

  bool IsRunning(const Sequence* s) const {
    for (const auto& r : running) {
      if (r.get() == s) return true;
    }
    return false;
  }
  std::vector<int64_t> WaitingIds() const {
    std::vector<int64_t> ids;
    for (const auto& w : waiting) ids.push_back(w->id);
    return ids;
  }
  static bool Scheduled(const StepPlan& plan, const Sequence* s) {
    for (const auto& c : plan.chunks) {
      if (c.seq == s) return true;
    }
    return false;
  }

  KvBlockManager kv;
  BatchComposer composer;
  std::vector<std::unique_ptr<Sequence>> running;
  std::deque<std::unique_ptr<Sequence>> waiting;
  int64_t next_admit_order = 0;
  int64_t next_id = 1;
};

TEST_CASE("Priority policy: admission follows (priority, arrival); fcfs keeps arrival order") {
  // 2 blocks: one 20-token prompt at a time.
  for (SchedulingPolicy policy : {SchedulingPolicy::kFcfs, SchedulingPolicy::kPriority}) {
    Bench b(2, policy);
    const int priorities[] = {3, 1, 3, 0, 1};
    for (int i = 0; i < 5; ++i) {
      b.Arrive(MakePrompt(20, i), policy == SchedulingPolicy::kFcfs ? 0 : priorities[i]);
    }
    b.Step();
    REQUIRE(b.running.size() == 1);
    if (policy == SchedulingPolicy::kFcfs) {
      REQUIRE(b.running[0]->id == 1);
      REQUIRE(b.WaitingIds() == std::vector<int64_t>{2, 3, 4, 5});
    } else {
      REQUIRE(b.running[0]->id == 4);  // priority 0
      // Then priority 1 (ids 2, 5: arrival order), then priority 3 (ids 1, 3).
      REQUIRE(b.WaitingIds() == std::vector<int64_t>{2, 5, 1, 3});
    }
  }
}

TEST_CASE("Priority policy: KV pressure preempts the worst priority, latest arrival among "
          "equals, not the newest admission") {
  // Three 15-token prompts take a block each; their next decodes need a second block
  // each, and only 2 are left: one must give its blocks back.
  SECTION("different priorities: the worst, though admitted first") {
    Bench b(5, SchedulingPolicy::kPriority);
    Sequence* worst = b.Arrive(MakePrompt(14, 1), 2);
    b.Step();  // prefill 14: 15 tokens
    Sequence* best = b.Arrive(MakePrompt(15, 2), 0);
    Sequence* mid = b.Arrive(MakePrompt(15, 3), 1);
    b.Step();  // worst decodes, best and mid prefill: 16 tokens each, one block each
    REQUIRE(b.running.size() == 3);
    b.Step();  // decode position 15: still one block each
    b.Step();  // decode position 16: a second block each, and two are left
    REQUIRE(b.IsRunning(best));
    REQUIRE(b.IsRunning(mid));
    REQUIRE_FALSE(b.IsRunning(worst));
    REQUIRE(worst->num_preemptions == 1);
    REQUIRE(best->num_preemptions == 0);
    REQUIRE(mid->num_preemptions == 0);
  }
  SECTION("equal priorities: the latest arrival") {
    Bench b(5, SchedulingPolicy::kPriority);
    Sequence* first = b.Arrive(MakePrompt(15, 1), 4);
    Sequence* second = b.Arrive(MakePrompt(15, 2), 4);
    Sequence* third = b.Arrive(MakePrompt(15, 3), 4);
    b.Step();
    b.Step();
    b.Step();
    REQUIRE(b.IsRunning(first));
    REQUIRE(b.IsRunning(second));
    REQUIRE_FALSE(b.IsRunning(third));
    REQUIRE(third->num_preemptions == 1);
  }
}

TEST_CASE("Priority policy: a better-priority arrival takes the worst running sequence's "
          "place in the same step") {
  Bench b(6, SchedulingPolicy::kPriority);
  Sequence* low1 = b.Arrive(MakePrompt(33, 1), 1);  // 3 blocks each
  Sequence* low3 = b.Arrive(MakePrompt(33, 2), 3);
  b.Step();
  b.Step();
  REQUIRE(b.kv.num_free_blocks() == 0);
  Sequence* high = b.Arrive(MakePrompt(20, 3), 0);  // 2 blocks
  StepPlan plan = b.Step();
  REQUIRE(plan.num_preempted == 1);
  REQUIRE(b.IsRunning(high));
  REQUIRE(Bench::Scheduled(plan, high));
  REQUIRE(b.IsRunning(low1));
  REQUIRE(Bench::Scheduled(plan, low1));
  // The victim's decode was taken out of the step and it waits, not readmitted at once.
  REQUIRE_FALSE(b.IsRunning(low3));
  REQUIRE_FALSE(Bench::Scheduled(plan, low3));
  REQUIRE(low3->num_computed == 0);
  REQUIRE(b.WaitingIds() == std::vector<int64_t>{low3->id});
}

TEST_CASE("Priority policy: never preempts equal or better priority, nor for nothing") {
  SECTION("equal priority waits") {
    Bench b(6, SchedulingPolicy::kPriority);
    b.Arrive(MakePrompt(33, 1), 2);
    b.Arrive(MakePrompt(33, 2), 2);
    b.Step();
    b.Step();
    b.Arrive(MakePrompt(20, 3), 2);
    StepPlan plan = b.Step();
    REQUIRE(plan.num_preempted == 0);
    REQUIRE(b.running.size() == 2);
    REQUIRE(b.waiting.size() == 1);
  }
  SECTION("releasing every worse sequence would not make room") {
    // 8 blocks: two priority-0 sequences of 3 blocks, one priority-5 of 1 block, 1 free.
    // A priority-1 arrival needing 3 blocks would get only 2 by preempting the
    // priority-5 one, so it waits and nothing is preempted.
    Bench b(8, SchedulingPolicy::kPriority);
    b.Arrive(MakePrompt(33, 1), 0);
    b.Arrive(MakePrompt(33, 2), 0);
    Sequence* low = b.Arrive(MakePrompt(5, 3), 5);
    b.Step();
    b.Step();
    REQUIRE(b.kv.num_free_blocks() == 1);
    b.Arrive(MakePrompt(40, 4), 1);
    StepPlan plan = b.Step();
    REQUIRE(plan.num_preempted == 0);
    REQUIRE(b.IsRunning(low));
    REQUIRE(b.waiting.size() == 1);
  }
}

TEST_CASE("Priority policy: blocks a victim shares with a running prefix are not counted "
          "as freed") {
  // Prefix caching: `low` attaches `high_running`'s two prompt blocks. Preempting `low`
  // frees only its private block (3 available), short of the 4 the arrival needs.
  Bench b(6, SchedulingPolicy::kPriority, 64, /*prefix_caching=*/true);
  std::vector<int32_t> shared = MakePrompt(32, 9);
  std::vector<int32_t> a = shared;
  a.push_back(1);
  Sequence* high_running = b.Arrive(a, 0);
  b.Step();  // prefill 33 tokens (3 blocks), the first two registered
  std::vector<int32_t> l = shared;
  l.insert(l.end(), {2, 3, 4});
  Sequence* low = b.Arrive(l, 5);
  b.Step();
  REQUIRE(b.IsRunning(low));
  REQUIRE(b.kv.BlockTable(low->id).size() == 3);
  REQUIRE(b.kv.num_free_blocks() == 2);  // 3 + 1 private, 2 shared
  b.Arrive(MakePrompt(60, 5), 1);        // 4 blocks
  StepPlan plan = b.Step();
  REQUIRE(plan.num_preempted == 0);
  REQUIRE(b.IsRunning(low));
  REQUIRE(b.IsRunning(high_running));
  REQUIRE(b.waiting.size() == 1);
  // One block fewer needed: now preempting `low` is enough.
  b.waiting.front()->tokens.resize(47);  // 3 blocks
  b.waiting.front()->prompt_len = 47;
  plan = b.Step();
  REQUIRE(plan.num_preempted == 1);
  REQUIRE_FALSE(b.IsRunning(low));
  REQUIRE(b.running.size() == 2);
}

TEST_CASE("Priority policy: a better-priority arrival may take a max_num_seqs slot") {
  Bench b(64, SchedulingPolicy::kPriority, /*max_num_seqs=*/2);
  b.Arrive(MakePrompt(10, 1), 1);
  Sequence* worst = b.Arrive(MakePrompt(10, 2), 2);
  b.Step();
  Sequence* high = b.Arrive(MakePrompt(10, 3), 0);
  Sequence* equal = b.Arrive(MakePrompt(10, 4), 2);
  StepPlan plan = b.Step();
  REQUIRE(plan.num_preempted == 1);
  REQUIRE(b.IsRunning(high));
  REQUIRE_FALSE(b.IsRunning(worst));
  REQUIRE_FALSE(b.IsRunning(equal));
  // The victim (earlier arrival) is ahead of the equal-priority newcomer.
  REQUIRE(b.WaitingIds() == std::vector<int64_t>{worst->id, equal->id});
}

// ---------------------------------------------------------------------------------------
// The Scheduler end to end.

struct Finished {
  std::string request_id;
  int num_preemptions = 0;
};

// Records the order requests finish in (the engine thread's order).
class FinishLog {
 public:
  RequestFinishedCallback Callback() {
    return [this](const RequestFinishedInfo& info) {
      absl::MutexLock lock(&mu_);
      log_.push_back({info.request_id, info.num_preemptions});
    };
  }
  std::vector<Finished> Get() const {
    absl::MutexLock lock(&mu_);
    return log_;
  }
  std::vector<std::string> Order() const {
    std::vector<std::string> ids;
    for (const Finished& f : Get()) ids.push_back(f.request_id);
    return ids;
  }
  int Preemptions(const std::string& id) const {
    for (const Finished& f : Get()) {
      if (f.request_id == id) return f.num_preemptions;
    }
    return -1;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Finished> log_;
};

GenerateRequest Greedy(std::string id, std::vector<int32_t> prompt, int max_tokens,
                       int priority) {
  GenerateRequest r;
  r.request_id = std::move(id);
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.f;
  r.priority = priority;
  return r;
}

// The generated tokens of a stream, or an empty vector if it did not complete.
std::vector<int32_t> Drain(RequestHandle& h) {
  std::vector<int32_t> tokens;
  const absl::Time end = absl::Now() + absl::Seconds(30);
  StreamEvent ev;
  while (absl::Now() < end) {
    if (!h.Next(&ev, absl::Milliseconds(100))) continue;
    if (ev.kind == StreamEvent::Kind::kTokens) {
      tokens.insert(tokens.end(), ev.token_ids.begin(), ev.token_ids.end());
    } else {
      return ev.kind == StreamEvent::Kind::kComplete ? tokens : std::vector<int32_t>{};
    }
  }
  return {};
}

TEST_CASE("Scheduler: with room for one sequence, requests run in priority order, equal "
          "priorities first come first served, outputs unchanged") {
  FakeRunnerOptions ro;
  ro.num_kv_blocks = 2;  // one 20-token prompt + 12 tokens at a time
  FakeModelRunner runner(ro);
  FinishLog log;
  SchedulerOptions opts;
  opts.scheduling_policy = SchedulingPolicy::kPriority;
  opts.on_request_finished = log.Callback();
  Scheduler sched(&runner, opts);
  // Queued before the engine starts, so all compete for the first admission.
  const int priorities[] = {2, 0, 1, 0, 2, -1};
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(MakePrompt(20, 40 + i));
    auto h = sched.Submit(Greedy("r" + std::to_string(i), prompts.back(), 12, priorities[i]));
    REQUIRE(h.ok());
    hs.push_back(*h);
  }
  REQUIRE(sched.Start().ok());
  for (int i = 0; i < 6; ++i) {
    REQUIRE(Drain(*hs[i]) == FakeModelRunner::ReferenceGreedy(prompts[i], 12, 64));
  }
  REQUIRE(sched.WaitUntilIdle(absl::Seconds(10)));
  REQUIRE(log.Order() == std::vector<std::string>{"r5", "r1", "r3", "r2", "r0", "r4"});
}

TEST_CASE("Scheduler: a high-priority arrival preempts the worst-priority running sequence "
          "and finishes first; greedy outputs are unchanged") {
  FakeRunnerOptions ro;
  ro.num_kv_blocks = 9;  // three sequences of 3 blocks
  FakeModelRunner runner(ro);
  runner.set_step_delay(absl::Milliseconds(10));
  FinishLog log;
  SchedulerOptions opts;
  opts.scheduling_policy = SchedulingPolicy::kPriority;
  opts.on_request_finished = log.Callback();
  Scheduler sched(&runner, opts);
  // 33 + 15 = 48 tokens: 3 blocks each, all the cache. Queued before the engine starts,
  // so they are admitted together.
  const int low_priorities[] = {1, 3, 2};
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(MakePrompt(33, 60 + i));
    auto h = sched.Submit(Greedy("low" + std::to_string(low_priorities[i]), prompts.back(), 15,
                                 low_priorities[i]));
    REQUIRE(h.ok());
    hs.push_back(*h);
  }
  REQUIRE(sched.Start().ok());
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (sched.GetStats().num_running < 3 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  REQUIRE(sched.GetStats().num_running == 3);
  prompts.push_back(MakePrompt(5, 70));
  auto high = sched.Submit(Greedy("high", prompts.back(), 4, 0));
  REQUIRE(high.ok());
  hs.push_back(*high);

  REQUIRE(Drain(*hs[3]) == FakeModelRunner::ReferenceGreedy(prompts[3], 4, 64));
  for (int i = 0; i < 3; ++i) {
    REQUIRE(Drain(*hs[i]) == FakeModelRunner::ReferenceGreedy(prompts[i], 15, 64));
  }
  REQUIRE(sched.WaitUntilIdle(absl::Seconds(10)));
  REQUIRE(log.Order().front() == "high");
  REQUIRE(log.Preemptions("low3") == 1);
  REQUIRE(log.Preemptions("low1") == 0);
  REQUIRE(log.Preemptions("low2") == 0);
  REQUIRE(log.Preemptions("high") == 0);
  absl::SleepFor(absl::Milliseconds(30));  // the final stats publication
  const SchedulerStats st = sched.GetStats();
  REQUIRE(st.num_preemptions == 1);
  REQUIRE(st.num_free_kv_blocks == 9);
}

TEST_CASE("Scheduler: an equal-priority arrival waits its turn instead of preempting") {
  FakeRunnerOptions ro;
  ro.num_kv_blocks = 9;
  FakeModelRunner runner(ro);
  runner.set_step_delay(absl::Milliseconds(5));
  FinishLog log;
  SchedulerOptions opts;
  opts.scheduling_policy = SchedulingPolicy::kPriority;
  opts.on_request_finished = log.Callback();
  Scheduler sched(&runner, opts);
  std::vector<std::shared_ptr<RequestHandle>> hs;
  for (int i = 0; i < 3; ++i) {
    auto h = sched.Submit(Greedy("run" + std::to_string(i), MakePrompt(33, 80 + i), 15, 1));
    REQUIRE(h.ok());
    hs.push_back(*h);
  }
  REQUIRE(sched.Start().ok());
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (sched.GetStats().num_running < 3 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  auto late = sched.Submit(Greedy("late", MakePrompt(5, 90), 4, 1));
  REQUIRE(late.ok());
  hs.push_back(*late);
  for (auto& h : hs) REQUIRE_FALSE(Drain(*h).empty());
  REQUIRE(sched.WaitUntilIdle(absl::Seconds(10)));
  REQUIRE(log.Order().back() == "late");
  for (const Finished& f : log.Get()) REQUIRE(f.num_preemptions == 0);
}

TEST_CASE("Submit: a non-zero priority needs the priority policy, and names the field") {
  FakeModelRunner runner(FakeRunnerOptions{});
  Scheduler fcfs(&runner, SchedulerOptions{});
  auto refused = fcfs.Submit(Greedy("", MakePrompt(5, 1), 2, 3));
  REQUIRE(refused.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(refused.status().message()).rfind("priority: ", 0) == 0);
  REQUIRE(std::string(refused.status().message()).find("--scheduling-policy priority") !=
          std::string::npos);
  REQUIRE(fcfs.Submit(Greedy("", MakePrompt(5, 1), 2, 0)).ok());

  SchedulerOptions opts;
  opts.scheduling_policy = SchedulingPolicy::kPriority;
  Scheduler prio(&runner, opts);
  REQUIRE(prio.Submit(Greedy("", MakePrompt(5, 1), 2, -7)).ok());
  REQUIRE(prio.Submit(Greedy("", MakePrompt(5, 2), 2, 1000)).ok());
}

TEST_CASE("ParseSchedulingPolicy names the option on an unknown value") {
  REQUIRE(*ParseSchedulingPolicy("fcfs") == SchedulingPolicy::kFcfs);
  REQUIRE(*ParseSchedulingPolicy("priority") == SchedulingPolicy::kPriority);
  auto bad = ParseSchedulingPolicy("lifo");
  REQUIRE(bad.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(std::string(bad.status().message()).rfind("scheduling_policy: ", 0) == 0);
  REQUIRE(std::string(SchedulingPolicyName(SchedulingPolicy::kPriority)) == "priority");
}

}  // namespace
}  // namespace moe::scheduler

#include "scheduler/scheduler.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace moe::scheduler {
namespace {

// The expert cache capacity expert-aware batching works with, or 0 when it is off (not
// asked for, no footprints from the runner, or every expert resident).
int ExpertAwareCapacity(const SchedulerOptions& o, const engine::ModelRunner& runner) {
  if (!o.expert_aware_batching || runner.expert_footprint_keys() <= 0) return 0;
  return std::max(0, o.expert_cache_slots_override > 0 ? o.expert_cache_slots_override
                                                       : runner.expert_cache_slots());
}

BatchLimits LimitsFrom(const SchedulerOptions& o, const engine::ModelRunner& runner) {
  BatchLimits l;
  l.policy = o.scheduling_policy;
  l.max_num_seqs = o.max_num_seqs;
  l.max_num_batched_tokens = o.max_num_batched_tokens;
  l.expert_cache_keys = ExpertAwareCapacity(o, runner);
  l.expert_aware_max_skips = std::max(0, o.expert_aware_max_skips);
  l.expert_aware_miss_cost_steps = std::max(0.0, o.expert_aware_miss_cost_steps);
  return l;
}

using Clock = std::chrono::steady_clock;

// num_sampling_threads = 0: this many at most (sampling a row takes tens of
// microseconds, so more threads gain little for a few hundred sequences).
constexpr int kMaxAutoSamplingThreads = 8;
// Rows per parallel chunk at least: below this, dispatch costs more than it saves.
constexpr int64_t kMinRowsPerChunk = 4;

// Seconds from `start` to now; moves `start` to now, so consecutive phases chain.
double Lap(Clock::time_point* start) {
  const Clock::time_point now = Clock::now();
  const double s = std::chrono::duration<double>(now - *start).count();
  *start = now;
  return s;
}

}  // namespace

const std::vector<double>& StepHostSecondsBounds() {
  static const std::vector<double>* const bounds = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0};
  return *bounds;
}

Scheduler::Scheduler(engine::ModelRunner* runner, SchedulerOptions options)
    : runner_(runner),
      options_(std::move(options)),
      block_size_(runner->kv_block_size()),
      max_model_len_(options_.max_model_len > 0 ? options_.max_model_len
                                                : runner->config().max_position_embeddings),
      expert_aware_(ExpertAwareCapacity(options_, *runner) > 0),
      composer_(LimitsFrom(options_, *runner)),
      kv_(options_.num_kv_blocks > 0 ? options_.num_kv_blocks : runner->num_kv_blocks(),
          runner->kv_block_size(), options_.enable_prefix_caching) {
  if (!options_.eos_token_ids.empty()) {
    eos_ids_ = options_.eos_token_ids;
  } else {
    for (int id : runner->config().eos_token_ids) eos_ids_.push_back(id);
  }
  stats_.expert_aware_active = expert_aware_;
  stats_.num_kv_blocks = kv_.num_blocks();
  stats_.num_free_kv_blocks = kv_.num_free_blocks();
  stats_.prefix_caching = kv_.prefix_caching();
  int threads = options_.num_sampling_threads;
  if (threads <= 0) {
    threads = std::min(kMaxAutoSamplingThreads,
                       static_cast<int>(std::thread::hardware_concurrency()));
  }
  if (threads > 1) pool_ = std::make_unique<kernels::cpu::ThreadPool>(threads);
}

Scheduler::~Scheduler() { Shutdown(); }

absl::Status Scheduler::Start() {
  if (options_.max_num_seqs < 1) {
    return absl::FailedPreconditionError("max_num_seqs: must be >= 1");
  }
  if (options_.max_num_batched_tokens < 1) {
    return absl::FailedPreconditionError("max_num_batched_tokens: must be >= 1");
  }
  if (options_.num_kv_blocks > runner_->num_kv_blocks()) {
    return absl::FailedPreconditionError(
        absl::StrCat("num_kv_blocks: ", options_.num_kv_blocks, " exceeds the runner's ",
                     runner_->num_kv_blocks(), " blocks"));
  }
  if (options_.expert_aware_max_skips < 0) {
    return absl::FailedPreconditionError("expert_aware_max_skips: must be >= 0");
  }
  if (!(options_.expert_aware_miss_cost_steps >= 0)) {
    return absl::FailedPreconditionError("expert_aware_miss_cost_steps: must be >= 0");
  }
  if (options_.expert_cache_slots_override < 0) {
    return absl::FailedPreconditionError("expert_cache_slots_override: must be >= 0");
  }
  if (kv_.num_blocks() < 1) return absl::FailedPreconditionError("num_kv_blocks: must be >= 1");
  if (max_model_len_ < 1) {
    return absl::FailedPreconditionError("max_model_len: must be >= 1");
  }
  absl::MutexLock lock(&mu_);
  if (started_) return absl::FailedPreconditionError("scheduler already started");
  started_ = true;
  engine_thread_ = std::thread([this] { EngineLoop(); });
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<RequestHandle>> Scheduler::Submit(GenerateRequest request) {
  const int prompt_len = static_cast<int>(request.prompt.size());
  if (prompt_len == 0) return absl::InvalidArgumentError("prompt: must not be empty");
  if (request.max_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_tokens: must be > 0, got ", request.max_tokens));
  }
  if (request.priority != 0 && options_.scheduling_policy != SchedulingPolicy::kPriority) {
    return absl::InvalidArgumentError(absl::StrCat(
        "priority: requires --scheduling-policy priority (got ", request.priority,
        " under fcfs)"));
  }
  const int64_t total = static_cast<int64_t>(prompt_len) + request.max_tokens;
  if (total > max_model_len_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: prompt (", prompt_len, " tokens) + max_tokens (", request.max_tokens,
        ") exceeds the model's context of ", max_model_len_, " tokens"));
  }
  if (kv_.BlocksFor(static_cast<int>(total)) > kv_.num_blocks()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_tokens: prompt + max_tokens = ", total, " tokens needs ",
        kv_.BlocksFor(static_cast<int>(total)), " KV blocks; the cache has ", kv_.num_blocks()));
  }
  const int vocab = runner_->config().vocab_size;
  for (int i = 0; i < prompt_len; ++i) {
    const int32_t t = request.prompt[i];
    if (t < 0 || (vocab > 0 && t >= vocab)) {
      return absl::InvalidArgumentError(absl::StrCat("prompt: token id ", t, " at position ", i,
                                                     " is outside the vocabulary (size ",
                                                     vocab, ")"));
    }
  }
  if (absl::Status s = engine::ValidateSamplingParams(request.sampling, vocab); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }

  auto seq = std::make_unique<Sequence>();
  seq->arrival = absl::Now();
  seq->sampler = std::make_unique<engine::Sampler>(
      request.sampling, request.fallback_seed,
      request.constraint != nullptr ? request.constraint->Create() : nullptr);
  seq->sampler->SetPromptTokens(request.prompt);  // for repetition_penalty
  if (options_.make_text_decoder) seq->decoder = options_.make_text_decoder(request.prompt);
  seq->stop_matcher = std::make_unique<StopStringMatcher>(request.stop_strings);
  seq->prompt_len = prompt_len;
  seq->tokens = std::move(request.prompt);
  request.prompt.clear();

  absl::MutexLock lock(&mu_);
  if (!accepting_ || stop_) return absl::UnavailableError("server is shutting down");
  if (static_cast<int>(waiting_.size()) >= options_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue: ", waiting_.size(), " requests are waiting (max_queue = ", options_.max_queue,
        "); retry later"));
  }
  seq->id = next_seq_id_++;
  if (request.request_id.empty()) request.request_id = absl::StrCat("req-", seq->id);
  auto it = by_id_.find(request.request_id);
  if (it != by_id_.end() && !it->second.expired()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id: \"", request.request_id, "\" is already in flight"));
  }
  auto handle = std::make_shared<RequestHandle>(request.request_id);
  handle->set_on_cancel([this] { Wake(); });
  by_id_[request.request_id] = handle;
  seq->handle = handle;
  seq->request = std::move(request);
  waiting_.push_back(std::move(seq));
  idle_ = false;
  return handle;
}

absl::Status Scheduler::Abort(const std::string& request_id) {
  std::shared_ptr<RequestHandle> handle;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_id_.find(request_id);
    if (it != by_id_.end()) handle = it->second.lock();
  }
  if (handle == nullptr || handle->finished()) {
    return absl::NotFoundError(absl::StrCat("request_id: no request \"", request_id,
                                            "\" is in flight"));
  }
  handle->Cancel();
  return absl::OkStatus();
}

void Scheduler::StopAccepting() {
  absl::MutexLock lock(&mu_);
  accepting_ = false;
}

bool Scheduler::WaitUntilIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&idle_), timeout);
}

void Scheduler::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    accepting_ = false;
    stop_ = true;
  }
  if (engine_thread_.joinable()) engine_thread_.join();
}

SchedulerStats Scheduler::GetStats() const {
  // Outside mu_: the runner takes its own lock (offload_stats is safe from any thread).
  std::optional<engine::OffloadStats> offload = runner_->offload_stats();
  absl::MutexLock lock(&mu_);
  SchedulerStats s = stats_;
  s.num_waiting = static_cast<int>(waiting_.size());
  s.offload = std::move(offload);
  return s;
}

void Scheduler::Wake() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void Scheduler::EngineLoop() {
  while (true) {
    absl::Time iteration_start = absl::Now();
    {
      absl::MutexLock lock(&mu_);
      if (running_.empty()) {
        auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || wake_ || !waiting_.empty();
        };
        // Bounded wait so queued deadlines are noticed even without a wake-up.
        mu_.AwaitWithTimeout(absl::Condition(&has_work), absl::Milliseconds(20));
        iteration_start = absl::Now();  // idle time is not host overhead
      }
      wake_ = false;
      if (stop_) break;
    }
    Clock::time_point t = Clock::now();
    ReapCancelled();
    StepTiming timing;
    timing.phases.reap_s = Lap(&t);
    RunStep(&timing);
    FlushOutbox();
    // Going idle: every event reaches its handle before the scheduler reports idle.
    if (running_.empty()) delivery_.Flush();
    PublishStats(timing.ran ? &timing : nullptr,
                 absl::ToDoubleSeconds(absl::Now() - iteration_start));
  }
  // Shutdown: everything still in flight ends with abort.
  for (auto& s : running_) Finish(s.get(), FinishReason::kAbort, "shutdown");
  running_.clear();
  std::deque<std::unique_ptr<Sequence>> waiting;
  {
    absl::MutexLock lock(&mu_);
    waiting.swap(waiting_);
  }
  for (auto& s : waiting) Finish(s.get(), FinishReason::kAbort, "shutdown");
  FlushOutbox();
  delivery_.Flush();
  PublishStats(nullptr, 0);
}

void Scheduler::ReapCancelled() {
  const absl::Time now = absl::Now();
  auto expired = [now](const Sequence& s) { return now >= s.request.deadline; };
  std::vector<Sequence*> finished;
  for (auto& s : running_) {
    if (s->handle->cancelled()) {
      Finish(s.get(), FinishReason::kAbort, "cancelled");
      finished.push_back(s.get());
    } else if (expired(*s)) {
      Fail(s.get(), absl::DeadlineExceededError("request deadline expired"));
      finished.push_back(s.get());
    }
  }
  RemoveFinished(finished);

  std::vector<std::unique_ptr<Sequence>> dropped;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if ((*it)->handle->cancelled() || expired(**it)) {
        dropped.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& s : dropped) {
    if (s->handle->cancelled()) {
      Finish(s.get(), FinishReason::kAbort, "cancelled");
    } else {
      Fail(s.get(), absl::DeadlineExceededError("request deadline expired while queued"));
    }
  }
}

void Scheduler::RunStep(StepTiming* timing) {
  SchedulerHostPhases& phases = timing->phases;
  Clock::time_point t = Clock::now();
  StepPlan plan;
  // Expert-aware batching prefers decodes whose experts the cache already holds.
  std::vector<uint64_t> resident;
  if (expert_aware_ && !runner_->ResidentExpertKeys(&resident)) resident.clear();
  {
    absl::MutexLock lock(&mu_);
    plan = composer_.Compose(&running_, &waiting_, &kv_, &next_admit_order_, resident);
    stats_.num_preemptions += plan.num_preempted;
    stats_.prefix_cache_queries_total += plan.prefix_cache_queries;
    stats_.prefix_cache_hits_total += plan.prefix_cache_hits;
    stats_.prefix_cache_preempted_hits_total += plan.prefix_cache_preempted_hits;
    stats_.expert_aware_deferred_total += plan.num_expert_deferred;
    stats_.expert_aware_max_consecutive_skips =
        std::max(stats_.expert_aware_max_consecutive_skips, plan.max_expert_skips);
  }
  phases.compose_s = Lap(&t);
  if (plan.empty()) return;

  engine::ForwardBatch batch;
  batch.seqs.reserve(plan.chunks.size());
  batch.want_footprints = expert_aware_;
  const bool device_sampling = runner_->samples_on_device();
  draws_.clear();
  const absl::Time step_start = absl::Now();
  for (const ScheduledChunk& c : plan.chunks) {
    if (!c.seq->scheduled) {
      c.seq->scheduled = true;
      c.seq->first_scheduled = step_start;
    }
    engine::SequenceChunk chunk;
    chunk.seq_id = c.seq->id;
    chunk.tokens = absl::MakeConstSpan(c.seq->tokens.data() + c.seq->num_computed,
                                       static_cast<size_t>(c.num_tokens));
    chunk.start_pos = c.seq->num_computed;
    chunk.block_table = kv_.BlockTable(c.seq->id);
    chunk.logits = c.wants_logits ? engine::SequenceChunk::Logits::kLast
                                  : engine::SequenceChunk::Logits::kNone;
    // Sampled on the device where the runner can and the request wants no logprobs: the
    // request's generator draws here, so the tokens are those host sampling would give.
    ChunkDraw d;
    if (c.wants_logits && device_sampling && c.seq->sampler->DeviceEligible()) {
      const engine::SamplingParams& sp = c.seq->sampler->params();
      const std::optional<double> draw = c.seq->sampler->NextUniform();
      d.device = true;
      d.u = draw;
      chunk.sampling.enabled = true;
      chunk.sampling.temperature = draw.has_value() ? sp.temperature : 0.f;
      chunk.sampling.top_k = sp.top_k;
      chunk.sampling.top_p = sp.top_p;
      chunk.sampling.u = draw.value_or(0.0);
    }
    draws_.push_back(d);
    batch.seqs.push_back(chunk);
  }
  engine::ForwardResult& out = out_;
  phases.prepare_s = Lap(&t);
  absl::Status status = runner_->Forward(batch, &out);
  timing->ran = true;
  timing->forward_s = Lap(&t);
  timing->num_seqs = static_cast<int>(batch.seqs.size());
  timing->num_tokens = plan.num_tokens;
  if (status.ok() && out.row_begin.size() != plan.chunks.size() + 1) {
    status = absl::InternalError("model runner returned a malformed result (row_begin)");
  }
  std::vector<Sequence*> finished;
  if (!status.ok()) {
    for (const ScheduledChunk& c : plan.chunks) {
      Fail(c.seq, absl::Status(status.code(), absl::StrCat("forward step failed: ",
                                                           status.message())));
      finished.push_back(c.seq);
    }
    RemoveFinished(finished);
    phases.finish_s += Lap(&t);
    return;
  }
  rows_.clear();
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const ScheduledChunk& c = plan.chunks[i];
    c.seq->num_computed += c.num_tokens;
    // Blocks this step completed become reusable by later requests (prefix caching).
    kv_.RegisterComputed(c.seq->id, c.seq->tokens, c.seq->num_computed);
    if (!c.wants_logits) continue;
    if (out.row_begin[i + 1] - out.row_begin[i] != 1) {
      Fail(c.seq, absl::InternalError("model runner returned no logits row"));
      finished.push_back(c.seq);
      continue;
    }
    RowWork w;
    w.seq = c.seq;
    w.chunk = i;
    const int32_t row = out.row_begin[i];
    w.device_token = static_cast<size_t>(row) < out.tokens.size() ? out.tokens[row] : -1;
    w.drew = draws_[i].device;
    w.draw = draws_[i].u;
    if (w.device_token < 0) w.logits = out.row(row);
    rows_.push_back(std::move(w));
  }
  phases.prepare_s += Lap(&t);

  // Each row touches only its own sequence: sample all rows, then detokenize / check
  // stop rules / push events for all rows, in parallel.
  const int64_t num_rows = static_cast<int64_t>(rows_.size());
  const int vocab_size = out.vocab_size;
  kernels::cpu::ParallelFor(pool_.get(), num_rows, kMinRowsPerChunk,
                            [this, vocab_size](int64_t begin, int64_t end) {
                              for (int64_t r = begin; r < end; ++r) SampleRow(&rows_[r], vocab_size);
                            });
  phases.sample_s += Lap(&t);
  kernels::cpu::ParallelFor(pool_.get(), num_rows, kMinRowsPerChunk,
                            [this](int64_t begin, int64_t end) {
                              for (int64_t r = begin; r < end; ++r) EmitRow(&rows_[r]);
                            });
  for (RowWork& w : rows_) {
    outbox_.push_back([h = w.seq->handle, t = w.sampled.token, text = std::move(w.text),
                       lps = std::move(w.logprobs)]() mutable {
      h->PushTokens({t}, std::move(text), std::move(lps));
    });
    if (expert_aware_ && !w.done) UpdateFootprint(w.seq, w.sampled.token, out, w.chunk);
  }
  phases.emit_s += Lap(&t);

  for (RowWork& w : rows_) {
    if (!w.done) continue;
    Finish(w.seq, w.reason, std::move(w.stop_reason));
    finished.push_back(w.seq);
  }
  rows_.clear();
  RemoveFinished(finished);
  phases.finish_s += Lap(&t);
}

void Scheduler::Finish(Sequence* seq, FinishReason reason, std::string stop_reason) {
  kv_.Free(seq->id);
  StreamEvent ev;
  ev.finish_reason = reason;
  ev.stop_reason = std::move(stop_reason);
  ev.prompt_tokens = seq->prompt_len;
  ev.completion_tokens = seq->num_generated();
  ev.time_to_first_token_s =
      seq->has_first_token ? absl::ToDoubleSeconds(seq->first_token_time - seq->arrival) : 0.0;
  {
    absl::MutexLock lock(&mu_);
    by_id_.erase(seq->request.request_id);
    ++stats_.num_finished;
    if (reason == FinishReason::kAbort) ++stats_.num_aborted;
  }
  ReportFinished(*seq, FinishReasonName(reason));
  outbox_.push_back([h = seq->handle, ev = std::move(ev)]() mutable { h->PushComplete(std::move(ev)); });
}

void Scheduler::ReportFinished(const Sequence& seq, const std::string& reason) {
  if (!options_.on_request_finished) return;
  RequestFinishedInfo info;
  info.request_id = seq.request.request_id;
  info.finished_reason = reason;
  info.prompt_tokens = seq.prompt_len;
  info.completion_tokens = seq.num_generated();
  info.time_to_first_token_s =
      seq.has_first_token ? absl::ToDoubleSeconds(seq.first_token_time - seq.arrival) : 0.0;
  info.e2e_latency_s = absl::ToDoubleSeconds(absl::Now() - seq.arrival);
  info.was_scheduled = seq.scheduled;
  if (seq.scheduled) info.queue_time_s = absl::ToDoubleSeconds(seq.first_scheduled - seq.arrival);
  info.num_preemptions = seq.num_preemptions;
  options_.on_request_finished(info);
}

void Scheduler::Fail(Sequence* seq, absl::Status status) {
  kv_.Free(seq->id);
  {
    absl::MutexLock lock(&mu_);
    by_id_.erase(seq->request.request_id);
    ++stats_.num_finished;
  }
  ReportFinished(*seq, "error");
  outbox_.push_back([h = seq->handle, status = std::move(status)]() mutable { h->PushError(std::move(status)); });
}

void Scheduler::FlushOutbox() {
  if (outbox_.empty()) return;
  delivery_.Post(std::move(outbox_));
  outbox_.clear();
}

void Scheduler::RemoveFinished(const std::vector<Sequence*>& finished) {
  if (finished.empty()) return;
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [&finished](const std::unique_ptr<Sequence>& s) {
                                  return std::find(finished.begin(), finished.end(),
                                                   s.get()) != finished.end();
                                }),
                 running_.end());
}

void Scheduler::PublishStats(const StepTiming* timing, double iteration_s) {
  absl::MutexLock lock(&mu_);
  if (timing != nullptr) {
    ++stats_.num_steps;
    stats_.num_batched_tokens += timing->num_tokens;
    stats_.last_step_num_seqs = timing->num_seqs;
    stats_.forward_seconds_total += timing->forward_s;
    const double host_s = std::max(0.0, iteration_s - timing->forward_s);
    stats_.host_seconds_total += host_s;
    SchedulerHostPhases& p = stats_.host_phases;
    p.reap_s += timing->phases.reap_s;
    p.compose_s += timing->phases.compose_s;
    p.prepare_s += timing->phases.prepare_s;
    p.sample_s += timing->phases.sample_s;
    p.emit_s += timing->phases.emit_s;
    p.finish_s += timing->phases.finish_s;
    const std::vector<double>& bounds = StepHostSecondsBounds();
    for (size_t b = 0; b < bounds.size(); ++b) {
      if (host_s <= bounds[b]) ++stats_.step_host_seconds_buckets[b];
    }
  }
  stats_.num_running = static_cast<int>(running_.size());
  stats_.num_free_kv_blocks = kv_.num_free_blocks();
  stats_.num_cached_kv_blocks = kv_.num_evictable_blocks();
  idle_ = running_.empty() && waiting_.empty();
}

}  // namespace moe::scheduler

#include "scheduler/request_handle.h"

#include <utility>

namespace moe::scheduler {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kAbort:
      return "abort";
  }
  return "unknown";
}

RequestHandle::RequestHandle(std::string request_id) : request_id_(std::move(request_id)) {}

bool RequestHandle::Next(StreamEvent* event, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (final_taken_) return false;
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty(); };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  if (event->kind != StreamEvent::Kind::kTokens) final_taken_ = true;
  return true;
}

bool RequestHandle::finished() const {
  absl::MutexLock lock(&mu_);
  return final_pushed_;
}

void RequestHandle::Cancel() {
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_ || final_pushed_) return;
    cancelled_ = true;
  }
  if (on_cancel_) on_cancel_();
}

bool RequestHandle::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

void RequestHandle::PushTokens(std::vector<int32_t> ids, std::string text,
                               std::vector<engine::SampledToken> logprobs) {
  absl::MutexLock lock(&mu_);
  if (final_pushed_) return;
  if (!events_.empty() && events_.back().kind == StreamEvent::Kind::kTokens) {
    // The consumer is behind: merge instead of queueing one event per token.
    StreamEvent& last = events_.back();
    last.token_ids.insert(last.token_ids.end(), ids.begin(), ids.end());
    last.text += text;
    for (auto& lp : logprobs) last.logprobs.push_back(std::move(lp));
    return;
  }
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::kTokens;
  ev.token_ids = std::move(ids);
  ev.text = std::move(text);
  ev.logprobs = std::move(logprobs);
  events_.push_back(std::move(ev));
}

void RequestHandle::PushFinal(StreamEvent event) {
  absl::MutexLock lock(&mu_);
  if (final_pushed_) return;
  final_pushed_ = true;
  events_.push_back(std::move(event));
}

void RequestHandle::PushComplete(StreamEvent complete) {
  complete.kind = StreamEvent::Kind::kComplete;
  PushFinal(std::move(complete));
}

void RequestHandle::PushError(absl::Status error) {
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::kError;
  ev.error = std::move(error);
  PushFinal(std::move(ev));
}

}  // namespace moe::scheduler

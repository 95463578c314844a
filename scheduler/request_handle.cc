#include "scheduler/request_handle.h"

#include <utility>

#include "absl/strings/str_cat.h"

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
  if (event->kind == StreamEvent::Kind::kTokens) {
    buffered_tokens_ -= static_cast<int>(event->token_ids.size());
    if (buffered_tokens_ < 0) buffered_tokens_ = 0;
  }
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

void RequestHandle::set_max_buffered_tokens(int n) {
  absl::MutexLock lock(&mu_);
  max_buffered_tokens_ = n;
}

int RequestHandle::max_buffered_tokens() const {
  absl::MutexLock lock(&mu_);
  return max_buffered_tokens_;
}

int RequestHandle::buffered_tokens() const {
  absl::MutexLock lock(&mu_);
  return buffered_tokens_;
}

bool RequestHandle::overflowed() const {
  absl::MutexLock lock(&mu_);
  return overflowed_;
}

void RequestHandle::PushTokens(std::vector<int32_t> ids, std::string text,
                               std::vector<engine::SampledToken> logprobs) {
  bool wake = false;
  {
    absl::MutexLock lock(&mu_);
    if (final_pushed_) return;
    const int total = buffered_tokens_ + static_cast<int>(ids.size());
    if (max_buffered_tokens_ <= 0 || total <= max_buffered_tokens_) {
      AppendTokens(std::move(ids), std::move(text), std::move(logprobs));
      buffered_tokens_ = total;
      return;
    }
    // The consumer is too far behind: drop what it has not taken (the memory goes now),
    // end the stream with the reason, and cancel so the engine frees the KV blocks.
    events_.clear();
    buffered_tokens_ = 0;
    overflowed_ = true;
    final_pushed_ = true;
    StreamEvent ev;
    ev.kind = StreamEvent::Kind::kError;
    ev.error = absl::ResourceExhaustedError(
        absl::StrCat("client reading too slowly: ", total, " tokens buffered (limit ",
                     max_buffered_tokens_, "); request cancelled"));
    events_.push_back(std::move(ev));
    if (!cancelled_) {
      cancelled_ = true;
      wake = true;
    }
  }
  if (wake && on_cancel_) on_cancel_();
}

void RequestHandle::AppendTokens(std::vector<int32_t> ids, std::string text,
                                 std::vector<engine::SampledToken> logprobs) {
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

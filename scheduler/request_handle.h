// The frontend's view of one submitted request: a stream of events (tokens, then one
// Complete or Error) and Cancel().
//
// Thread safety: every method may be called from any thread. The engine thread only
// produces (Push*) and never blocks: events go into a mutex-protected queue and waiting
// consumers are signalled. Consecutive token events that the consumer has not taken yet
// are merged into one, so a slow consumer costs memory proportional to the tokens it is
// behind, never a stall of the engine. That buffer is bounded: once more than
// max_buffered_tokens() tokens wait untaken, the buffered tokens are dropped, the stream
// ends with Error RESOURCE_EXHAUSTED ("client reading too slowly: N tokens buffered") and
// the handle cancels itself, so the engine frees its KV blocks in the next step. One
// consumer per handle.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/sampling/sampler.h"

namespace moe::scheduler {

enum class FinishReason { kStop, kLength, kAbort };
const char* FinishReasonName(FinishReason r);  // "stop" | "length" | "abort"

struct StreamEvent {
  enum class Kind { kTokens, kComplete, kError };
  Kind kind = Kind::kTokens;

  // kTokens: new token ids, their text delta (may be empty while held back) and, when
  // logprobs were requested, one entry per token.
  std::vector<int32_t> token_ids;
  std::string text;
  std::vector<engine::SampledToken> logprobs;

  // kComplete.
  FinishReason finish_reason = FinishReason::kStop;
  std::string stop_reason;  // the stop string, or the stop/eos token id, if any
  int prompt_tokens = 0;
  int completion_tokens = 0;
  double time_to_first_token_s = 0;  // arrival → first token; 0 if none

  // kError.
  absl::Status error;
};

// Default bound on tokens waiting untaken in one handle (see above).
inline constexpr int kDefaultMaxBufferedTokens = 4096;

class RequestHandle {
 public:
  explicit RequestHandle(std::string request_id);

  // Tokens that may wait untaken before the stream is ended as too slow; <= 0 means
  // unbounded. May be changed at any time (the frontend sets it right after Submit);
  // applies to the next PushTokens.
  void set_max_buffered_tokens(int n);
  int max_buffered_tokens() const;
  // Tokens pushed but not yet taken by the consumer.
  int buffered_tokens() const;
  // True when the stream was ended because the consumer fell too far behind.
  bool overflowed() const;

  const std::string& request_id() const { return request_id_; }

  // Consumer side. Waits up to `timeout` for the next event; false on timeout. After
  // the final event (Complete or Error) has been taken, returns false at once.
  bool Next(StreamEvent* event, absl::Duration timeout);
  // True once the final event has been pushed (whether or not it was taken).
  bool finished() const;

  // Asks the engine to stop this request; it ends with finish_reason abort within one
  // engine step (its KV blocks are freed then). Idempotent; no effect once finished.
  void Cancel();
  bool cancelled() const;

  // Producer side (the engine thread).
  void PushTokens(std::vector<int32_t> ids, std::string text,
                  std::vector<engine::SampledToken> logprobs);
  void PushComplete(StreamEvent complete);  // kind is set to kComplete
  void PushError(absl::Status error);
  // Called (outside the handle's lock) when Cancel() is first requested, so the engine
  // thread can wake up. Set by the scheduler before the handle is shared.
  void set_on_cancel(std::function<void()> f) { on_cancel_ = std::move(f); }

 private:
  void PushFinal(StreamEvent event);
  void AppendTokens(std::vector<int32_t> ids, std::string text,
                    std::vector<engine::SampledToken> logprobs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string request_id_;
  std::function<void()> on_cancel_;
  mutable absl::Mutex mu_;
  std::deque<StreamEvent> events_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool final_pushed_ ABSL_GUARDED_BY(mu_) = false;
  bool final_taken_ ABSL_GUARDED_BY(mu_) = false;
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  int max_buffered_tokens_ ABSL_GUARDED_BY(mu_) = kDefaultMaxBufferedTokens;
  int buffered_tokens_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace moe::scheduler

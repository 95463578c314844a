// The interface between the benchmark runner and a server protocol.
//
// A Backend sends one request and reports its stream as it arrives to a StreamListener:
// every chunk that carries tokens, then the server's usage. It returns OK when the
// stream ended normally, and an error whose message is the failure reason otherwise
// (HTTP status, gRPC status, server error event, timeout, abort). Timing is the
// listener's job, so every backend is measured the same way.
//
// Thread safety: Generate may be called from many threads at once; each call blocks
// until its stream ends. The listener is called only from the calling thread.
#ifndef MOE_TOOLS_BENCH_BACKEND_H_
#define MOE_TOOLS_BENCH_BACKEND_H_

#include <string>

#include "absl/status/status.h"
#include "tools/bench/dataset.h"

namespace moe::bench {

struct GenerateOptions {
  std::string model;         // OpenAI "model"; ignored by gRPC
  bool ignore_eos = false;
  double timeout_s = 600.0;  // whole-request deadline; exceeded -> DeadlineExceeded
};

class StreamListener {
 public:
  virtual ~StreamListener() = default;
  // A chunk with `tokens` >= 1 new tokens arrived (empty chunks are not reported).
  virtual void OnTokens(int tokens) = 0;
  // The server's token counts for the request.
  virtual void OnUsage(int prompt_tokens, int completion_tokens) = 0;
  // The stream ended without usage (some OpenAI-compatible servers omit it):
  // `completion_tokens` is the backend's own count of token-carrying chunks.
  virtual void OnUsageMissing(int completion_tokens) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual absl::Status Generate(const BenchRequest& request, const GenerateOptions& options,
                                StreamListener& listener) = 0;
};

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_BACKEND_H_

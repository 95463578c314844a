// Backend for moe-serve's gRPC API: moe.v1.Inference/Generate, server streaming.
//
// Token-id prompts are sent as token_ids (the server's tokenizer is bypassed), text
// prompts as text. Every Chunk with token ids is a token event carrying that many
// tokens; counts come from the final Complete. Failures, each with its reason: a gRPC
// status other than OK (code name and message; DEADLINE_EXCEEDED for the per-request
// timeout), an Error message in the stream, a Complete with finish_reason ABORT, and a
// stream that ends without a Complete.
//
// Thread safety: Generate may be called concurrently; all calls share one channel.
#ifndef MOE_TOOLS_BENCH_GRPC_BACKEND_H_
#define MOE_TOOLS_BENCH_GRPC_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tools/bench/backend.h"

namespace moe::bench {

class GrpcBackend : public Backend {
 public:
  // `endpoint` is "host:port". The channel connects lazily.
  static std::unique_ptr<GrpcBackend> Create(const std::string& endpoint);
  ~GrpcBackend() override;

  absl::Status Generate(const BenchRequest& request, const GenerateOptions& options,
                        StreamListener& listener) override;

  // The model's vocabulary size from ModelInfo, for drawing random token ids.
  absl::StatusOr<int> VocabSize(double timeout_s);

 private:
  struct Impl;
  explicit GrpcBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_GRPC_BACKEND_H_

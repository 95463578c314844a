// Backend for OpenAI-compatible servers (this server's HTTP gateway, vLLM, llama.cpp
// server, ...): POST /v1/completions with "stream": true and
// "stream_options": {"include_usage": true}, reading `data: {...}` SSE events until
// `data: [DONE]`.
//
// Token-id prompts are sent as a JSON array of ids (the OpenAI API accepts them), text
// prompts as a string. A chunk counts as carrying a token when choices[0].text is
// non-empty. Token counts come from the final `usage` object; a server that sends none
// gets the prompt's intended length and the number of non-empty chunks, and the record
// is marked as estimated.
//
// Failures, each with its reason: connection errors, HTTP status != 200 (with the
// start of the body), an `error` object in the stream, a stream that ends without
// [DONE], and the per-request timeout (enforced by closing the socket).
//
// Thread safety: Generate may be called concurrently; each call uses its own connection.
#ifndef MOE_TOOLS_BENCH_OPENAI_BACKEND_H_
#define MOE_TOOLS_BENCH_OPENAI_BACKEND_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tools/bench/backend.h"

namespace moe::bench {

class OpenAiBackend : public Backend {
 public:
  // `endpoint` is "host:port" or "http://host:port"; `path` the completions path.
  // InvalidArgument when the endpoint cannot be parsed.
  static absl::StatusOr<std::unique_ptr<OpenAiBackend>> Create(
      const std::string& endpoint, const std::string& path = "/v1/completions");

  absl::Status Generate(const BenchRequest& request, const GenerateOptions& options,
                        StreamListener& listener) override;

 private:
  OpenAiBackend(std::string host, int port, std::string path)
      : host_(std::move(host)), port_(port), path_(std::move(path)) {}

  std::string host_;
  int port_;
  std::string path_;
};

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_OPENAI_BACKEND_H_

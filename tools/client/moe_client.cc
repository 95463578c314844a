// moe_client: streams one generation from a moe_server over gRPC, printing the text as
// it arrives, then a summary line on stderr.
//
//   moe_client --endpoint 127.0.0.1:50051 --prompt "Hello" --max-tokens 32
//
// A server started with --api-key (or $MOE_API_KEY) needs the same key here: --api-key,
// default $MOE_API_KEY. --timeout sets the call's deadline (the server then aborts it).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "moe/v1/inference.grpc.pb.h"

int main(int argc, char** argv) {
  std::string endpoint = "127.0.0.1:50051";
  std::string prompt;
  int max_tokens = 64;
  float temperature = 0.f;
  long long seed = -1;
  bool ids = false;
  const char* env_key = std::getenv("MOE_API_KEY");
  std::string api_key = env_key != nullptr ? env_key : "";
  double timeout_s = 0;
  CLI::App app{"moe_client: stream a generation from moe_server"};
  app.add_option("--endpoint", endpoint, "host:port of the server");
  app.add_option("--prompt", prompt, "prompt text")->required();
  app.add_option("--max-tokens", max_tokens, "tokens to generate at most");
  app.add_option("--temperature", temperature, "0 = greedy");
  app.add_option("--seed", seed, "sampling seed (-1 = random)");
  app.add_flag("--print-ids", ids, "also print the token ids");
  app.add_option("--api-key", api_key, "the server's API key (default: $MOE_API_KEY)");
  app.add_option("--timeout", timeout_s, "seconds before the call is abandoned (0 = none)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto stub = moe::v1::Inference::NewStub(channel);
  moe::v1::GenerateRequest req;
  req.set_text(prompt);
  req.mutable_sampling()->set_max_tokens(max_tokens);
  req.mutable_sampling()->set_temperature(temperature);
  if (seed >= 0) req.mutable_sampling()->set_seed(static_cast<uint64_t>(seed));

  grpc::ClientContext ctx;
  if (!api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + api_key);
  if (timeout_s > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
  }
  auto reader = stub->Generate(&ctx, req);
  moe::v1::GenerateResponse resp;
  std::string token_ids;
  while (reader->Read(&resp)) {
    if (resp.has_chunk()) {
      std::fwrite(resp.chunk().text().data(), 1, resp.chunk().text().size(), stdout);
      std::fflush(stdout);
      for (int32_t t : resp.chunk().token_ids()) token_ids += " " + std::to_string(t);
    } else if (resp.has_complete()) {
      const auto& c = resp.complete();
      std::fprintf(stdout, "\n");
      if (ids) std::fprintf(stderr, "token ids:%s\n", token_ids.c_str());
      std::fprintf(stderr, "[%s] prompt %d tokens, completion %d tokens, first token %.3fs\n",
                   moe::v1::FinishReason_Name(c.finish_reason()).c_str(), c.prompt_tokens(),
                   c.completion_tokens(), c.time_to_first_token());
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "moe_client: %s (%d): %s\n", endpoint.c_str(),
                 static_cast<int>(status.error_code()), status.error_message().c_str());
    return 1;
  }
  return 0;
}

// The moe_bench command: builds the dataset and backend from options, runs one rate or a
// sweep of rates, prints the vLLM-style summary to stdout and writes --json-out and the
// sweep table and plot. main.cc only parses flags into BenchOptions.
//
// Call from one thread; the run itself is multi-threaded (runner.h).
#ifndef MOE_TOOLS_BENCH_BENCH_H_
#define MOE_TOOLS_BENCH_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace moe::bench {

struct BenchOptions {
  std::string backend = "grpc";  // grpc | openai
  std::string endpoint = "127.0.0.1:50051";
  std::string model;             // OpenAI "model" field
  std::string dataset = "random";  // random | sharegpt
  std::string dataset_path;
  int input_len = 1024;
  int output_len = 128;
  double range_ratio = 0.0;
  int prefix_len = 0;
  int sharegpt_output_len = 0;   // > 0 overrides ShareGPT reply lengths
  int vocab_size = 0;            // 0: gRPC asks the server (ModelInfo), OpenAI uses text
  int num_prompts = 1000;
  std::string request_rate = "inf";
  double burstiness = 1.0;
  int max_concurrency = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::vector<std::string> goodput;    // "ttft:MS" ...
  std::string metric_percentiles = "99";
  std::string json_out;
  std::string sweep;                   // "1,2,4,inf"; empty = one run at request_rate
  std::string sweep_out = "bench_sweep";
  double timeout_s = 600.0;
  bool progress = false;               // force the progress bar even without a tty
};

// Runs the benchmark. Errors (bad options, unreachable ModelInfo, unwritable files)
// name the option or file at fault. Failed requests are not errors: they are reported.
absl::Status RunBench(const BenchOptions& options);

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_BENCH_H_

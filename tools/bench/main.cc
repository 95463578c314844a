// moe_bench: a serving benchmark for moe-serve (gRPC) or any OpenAI-compatible server.
//
//   moe_bench --backend grpc --endpoint 127.0.0.1:50051 --dataset random
//       --input-len 512 --output-len 128 --num-prompts 500 --request-rate 8
//   moe_bench --backend openai --endpoint 127.0.0.1:8000 --model my-model
//       --sweep 1,2,4,8,inf --sweep-out results/
#include <cstdio>

#include <CLI/CLI.hpp>

#include "tools/bench/bench.h"

int main(int argc, char** argv) {
  moe::bench::BenchOptions o;
  CLI::App app{"moe_bench: serving benchmark (TTFT, TPOT, ITL, E2EL, throughput, goodput)"};
  app.add_option("--backend", o.backend, "grpc (moe.v1.Inference) or openai (/v1/completions)")
      ->check(CLI::IsMember({"grpc", "openai"}));
  app.add_option("--endpoint", o.endpoint, "host:port of the server");
  app.add_option("--model", o.model, "model name sent to OpenAI-compatible servers");
  app.add_option("--dataset", o.dataset, "random or sharegpt")
      ->check(CLI::IsMember({"random", "sharegpt"}));
  app.add_option("--dataset-path", o.dataset_path, "ShareGPT-format JSON file");
  app.add_option("--input-len", o.input_len, "random: prompt tokens");
  app.add_option("--output-len", o.output_len, "random: output tokens (max_tokens)");
  app.add_option("--range-ratio", o.range_ratio, "random: lengths uniform in len*(1-r)..len*(1+r)");
  app.add_option("--prefix-len", o.prefix_len, "random: shared prefix tokens before each prompt");
  app.add_option("--sharegpt-output-len", o.sharegpt_output_len,
                 "sharegpt: output length for every request (default: the reply's)");
  app.add_option("--vocab-size", o.vocab_size,
                 "random token ids below this (grpc default: ask the server; openai default: "
                 "text prompts of random words)");
  app.add_option("--num-prompts", o.num_prompts, "requests to send");
  app.add_option("--request-rate", o.request_rate, "requests per second, or inf (all at once)");
  app.add_option("--burstiness", o.burstiness, "gamma shape of arrival gaps; 1 = Poisson");
  app.add_option("--max-concurrency", o.max_concurrency, "requests in flight at most (0 = no limit)");
  app.add_option("--seed", o.seed, "seed for the dataset and the arrivals");
  app.add_flag("--ignore-eos", o.ignore_eos, "generate max_tokens even past end-of-sequence");
  app.add_option("--goodput", o.goodput, "SLOs as ttft:MS tpot:MS e2el:MS")->expected(1, 3);
  app.add_option("--metric-percentiles", o.metric_percentiles, "e.g. 50,90,99");
  app.add_option("--json-out", o.json_out, "write every figure and per-request record here");
  app.add_option("--sweep", o.sweep, "rates to run one after another, e.g. 1,2,4,inf");
  app.add_option("--sweep-out", o.sweep_out, "directory for sweep.md and sweep.svg");
  app.add_option("--timeout", o.timeout_s, "per-request timeout in seconds");
  app.add_flag("--progress", o.progress, "progress bar on stderr even when it is not a terminal");
  CLI11_PARSE(app, argc, argv);

  absl::Status status = moe::bench::RunBench(o);
  if (!status.ok()) {
    std::fprintf(stderr, "moe_bench: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

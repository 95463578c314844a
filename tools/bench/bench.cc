#include "tools/bench/bench.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/bench/dataset.h"
#include "tools/bench/grpc_backend.h"
#include "tools/bench/metrics.h"
#include "tools/bench/openai_backend.h"
#include "tools/bench/progress_bar.h"
#include "tools/bench/report.h"
#include "tools/bench/runner.h"
#include "tools/bench/sweep.h"

namespace moe::bench {
namespace {

constexpr int kDefaultVocabSize = 32000;

absl::StatusOr<double> ParseRate(const std::string& text) {
  if (text == "inf") return std::numeric_limits<double>::infinity();
  double r;
  if (!absl::SimpleAtod(text, &r) || !(r > 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("request-rate: '", text, "' is not a rate > 0 or 'inf'"));
  }
  return r;
}

absl::StatusOr<std::vector<BenchRequest>> MakeDataset(const BenchOptions& o, GrpcBackend* grpc) {
  if (o.dataset == "sharegpt") {
    if (o.dataset_path.empty()) {
      return absl::InvalidArgumentError("dataset-path: required with --dataset sharegpt");
    }
    ShareGptOptions s;
    s.path = o.dataset_path;
    s.num_prompts = o.num_prompts;
    s.fixed_output_len = o.sharegpt_output_len;
    s.seed = o.seed;
    return LoadShareGptDataset(s);
  }
  if (o.dataset != "random") {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset: '", o.dataset, "' (expected random or sharegpt)"));
  }
  RandomDatasetOptions r;
  r.num_prompts = o.num_prompts;
  r.input_len = o.input_len;
  r.output_len = o.output_len;
  r.range_ratio = o.range_ratio;
  r.prefix_len = o.prefix_len;
  r.seed = o.seed;
  if (grpc != nullptr) {
    r.form = PromptForm::kTokenIds;
    r.vocab_size = o.vocab_size;
    if (r.vocab_size <= 0) {
      absl::StatusOr<int> vocab = grpc->VocabSize(std::min(o.timeout_s, 30.0));
      if (!vocab.ok()) {
        return absl::UnavailableError(absl::StrCat(
            o.endpoint, ": ", vocab.status().message(), " (pass --vocab-size to skip ModelInfo)"));
      }
      r.vocab_size = *vocab;
    }
  } else if (o.vocab_size > 0) {
    r.form = PromptForm::kTokenIds;  // OpenAI servers accept token-id prompts too
    r.vocab_size = o.vocab_size;
  } else {
    r.form = PromptForm::kText;
    r.vocab_size = kDefaultVocabSize;
  }
  return MakeRandomDataset(r);
}

}  // namespace

absl::Status RunBench(const BenchOptions& o) {
  absl::StatusOr<std::vector<double>> percentiles = ParsePercentiles(o.metric_percentiles);
  if (!percentiles.ok()) return percentiles.status();
  absl::StatusOr<SloTargets> slo = ParseGoodput(o.goodput);
  if (!slo.ok()) return slo.status();
  std::vector<double> rates;
  if (!o.sweep.empty()) {
    absl::StatusOr<std::vector<double>> r = ParseSweepRates(o.sweep);
    if (!r.ok()) return r.status();
    rates = *r;
  } else {
    absl::StatusOr<double> r = ParseRate(o.request_rate);
    if (!r.ok()) return r.status();
    rates = {*r};
  }

  std::unique_ptr<Backend> backend;
  GrpcBackend* grpc = nullptr;
  if (o.backend == "grpc") {
    auto b = GrpcBackend::Create(o.endpoint);
    grpc = b.get();
    backend = std::move(b);
  } else if (o.backend == "openai") {
    absl::StatusOr<std::unique_ptr<OpenAiBackend>> b = OpenAiBackend::Create(o.endpoint);
    if (!b.ok()) return b.status();
    backend = std::move(*b);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("backend: '", o.backend, "' (expected grpc or openai)"));
  }

  absl::StatusOr<std::vector<BenchRequest>> requests = MakeDataset(o, grpc);
  if (!requests.ok()) return requests.status();

  RunConfig config;
  config.backend = o.backend;
  config.endpoint = o.endpoint;
  config.model = o.model;
  config.dataset = o.dataset == "sharegpt" ? absl::StrCat("sharegpt:", o.dataset_path)
                                           : absl::StrCat("random:", o.input_len, "/", o.output_len);
  config.num_prompts = static_cast<int>(requests->size());
  config.burstiness = o.burstiness;
  config.max_concurrency = o.max_concurrency;
  config.seed = o.seed;

  RunOptions run;
  run.arrivals.burstiness = o.burstiness;
  run.arrivals.seed = o.seed;
  run.max_concurrency = o.max_concurrency;
  run.generate.model = o.model;
  run.generate.ignore_eos = o.ignore_eos;
  run.generate.timeout_s = o.timeout_s;
  run.progress = o.progress || ProgressBar::StderrIsTty();

  std::vector<SweepPoint> points;
  nlohmann::json runs = nlohmann::json::array();
  for (double rate : rates) {
    run.arrivals.request_rate = rate;
    config.request_rate = rate;
    if (rates.size() > 1) std::fprintf(stderr, "moe_bench: rate %s req/s\n", RateLabel(rate).c_str());
    absl::StatusOr<RunResult> result = RunBenchmark(*backend, *requests, run);
    if (!result.ok()) return result.status();
    Summary summary = Summarize(result->records, result->duration_s, *percentiles, *slo);
    std::string text = FormatSummary(summary, config) + FormatFailures(result->records);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    runs.push_back(RunToJson(config, summary, result->records));
    points.push_back({rate, std::move(summary)});
  }

  if (!o.json_out.empty()) {
    absl::Status s = WriteJson(o.json_out, rates.size() == 1 ? runs[0] : nlohmann::json{{"runs", runs}});
    if (!s.ok()) return s;
  }
  if (!o.sweep.empty()) {
    absl::Status s = WriteSweep(o.sweep_out, points);
    if (!s.ok()) return s;
    std::fprintf(stderr, "moe_bench: wrote %s/sweep.md and %s/sweep.svg\n", o.sweep_out.c_str(),
                 o.sweep_out.c_str());
    std::string table = SweepTable(points);
    std::fwrite(table.data(), 1, table.size(), stdout);
  }
  return absl::OkStatus();
}

}  // namespace moe::bench

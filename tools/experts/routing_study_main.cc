// routing_study: next-gate prediction accuracy and expert-cache replays on a model's
// real routing (see routing_study.h). Prints a table; --json-out writes the numbers.
#include <cstdio>
#include <fstream>
#include <string>

#include "CLI/CLI.hpp"
#include "tools/experts/routing_study.h"

int main(int argc, char** argv) {
  moe::tools::RoutingStudyOptions o;
  o.trace_json = "tests/data/models/trained/standard/routing_trace.json";
  std::string json_out;
  CLI::App app{"Next-gate accuracy and LRU/LFU/Belady cache replays on real MoE routing."};
  app.add_option("--model", o.model_dir, "model directory (run on the CPU backend)")->required();
  app.add_option("--trace-json", o.trace_json,
                 "routing_trace.json whose sequences[].token_ids are the held-out text");
  app.add_option("--text-file", o.text_file, "held-out text instead (model's tokenizer)");
  app.add_option("--seq-len", o.seq_len, "tokens per sequence with --text-file");
  app.add_option("--max-sequences", o.max_sequences, "0: all");
  app.add_option("--max-tokens-per-seq", o.max_tokens_per_seq, "0: whole sequences");
  app.add_option("--prefill-chunk", o.prefill_chunk, "tokens per forward step");
  app.add_option("--max-depth", o.max_depth, "next-gate depths measured (1..d)");
  app.add_option("--batch", o.batch, "sequences interleaved in the batched replay");
  app.add_option("--cache-fractions", o.cache_fractions, "cache sizes, fractions of all experts");
  app.add_option("--prefetch-depths", o.prefetch_depths, "prefetch depths replayed");
  app.add_option("--threads", o.num_threads, "CPU threads; 0: all cores");
  app.add_option("--json-out", json_out, "write the results as JSON here");
  CLI11_PARSE(app, argc, argv);

  auto r = moe::tools::RunRoutingStudy(o);
  if (!r.ok()) {
    std::fprintf(stderr, "routing_study: %s\n", r.status().ToString().c_str());
    return 1;
  }
  std::fputs(moe::tools::FormatRoutingStudy(*r).c_str(), stdout);
  if (!json_out.empty()) {
    std::ofstream f(json_out);
    f << moe::tools::RoutingStudyJson(*r).dump(2) << "\n";
    if (!f) {
      std::fprintf(stderr, "routing_study: cannot write %s\n", json_out.c_str());
      return 1;
    }
  }
  return 0;
}

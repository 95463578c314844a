// Benchmark prompts: a synthetic `random` dataset and a ShareGPT-format JSON file.
//
// How lengths map to what is sent:
//  - Token-id prompts (gRPC backend, the server's tokenizer is bypassed): the prompt is
//    exactly `prompt_len` ids, so the server's usage should report that many.
//  - Text prompts (OpenAI backend, the server's tokenizer is unknown): the prompt is
//    `prompt_len` words drawn from a list of short, common English words, each preceded
//    by a space. Byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, OLMo) encode each such
//    word as one token, so the count is close to `prompt_len` (plus any BOS token the
//    server adds). The benchmark's token totals always come from the server's usage.
//  - ShareGPT: lengths are not known without the model's tokenizer, so they are estimated
//    as ceil(bytes / 4) (the usual rule of thumb for English BPE). The estimate is used for
//    filtering and for max_tokens only; reported counts come from the server.
//
// All functions are pure and thread-safe; the same options and seed give the same prompts.
#ifndef MOE_TOOLS_BENCH_DATASET_H_
#define MOE_TOOLS_BENCH_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moe::bench {

// One request to send.
struct BenchRequest {
  int index = 0;                    // position in the dataset, 0-based
  std::vector<int32_t> prompt_ids;  // non-empty for token-id prompts
  std::string prompt_text;          // non-empty for text prompts
  int prompt_len = 0;               // intended (random) or estimated (ShareGPT) tokens
  int output_len = 0;               // max_tokens to ask for
};

enum class PromptForm { kTokenIds, kText };

struct RandomDatasetOptions {
  int num_prompts = 1000;
  int input_len = 1024;
  int output_len = 128;
  // Lengths are uniform integers in [len * (1 - r), len * (1 + r)], r in [0, 1).
  double range_ratio = 0.0;
  // A prefix of this many tokens (or words) shared by every prompt, before the random part.
  int prefix_len = 0;
  // Token ids are drawn uniformly from [kFirstRandomId, vocab_size) so that the low ids,
  // where tokenizers keep their special tokens, are avoided.
  int vocab_size = 32000;
  PromptForm form = PromptForm::kTokenIds;
  uint64_t seed = 0;
};

inline constexpr int kFirstRandomId = 100;

// Fails with InvalidArgument naming the option at fault (e.g. "range_ratio: must be in
// [0, 1)"). Each prompt is prefix_len + uniform input length, output lengths uniform too.
absl::StatusOr<std::vector<BenchRequest>> MakeRandomDataset(const RandomDatasetOptions& options);

struct ShareGptOptions {
  std::string path;
  int num_prompts = 1000;
  // > 0: use this output length for every request instead of the reply's length.
  int fixed_output_len = 0;
  uint64_t seed = 0;
  // Filters on the estimated lengths, as vLLM applies them to tokenized lengths.
  int min_len = 4;              // prompt and output must each be at least this
  int max_prompt_len = 1024;    // prompt longer than this is skipped
  int max_total_len = 2048;     // prompt + output longer than this is skipped
};

// Reads a JSON array of {"conversations": [{"from": "human", "value": ...},
// {"from": "gpt", "value": ...}, ...]} entries (ShareGPT format). Entries with fewer than
// two turns are skipped; the first turn is the prompt, the second's estimated length the
// output length. Entries are shuffled with the seed, filtered, and the first num_prompts
// kept. Fails with NotFound / InvalidArgument naming the file and entry at fault, or
// when no entry survives the filters.
absl::StatusOr<std::vector<BenchRequest>> LoadShareGptDataset(const ShareGptOptions& options);

// ceil(bytes / 4), at least 1 for non-empty text.
int EstimateTokens(const std::string& text);

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_DATASET_H_

#include "tools/bench/dataset.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moe::bench {
namespace {

// Short, frequent English words: one token each (with their leading space) in the usual
// byte-level BPE vocabularies.
constexpr const char* kWords[] = {
    "the",   "of",    "and",   "to",    "in",    "is",    "you",   "that",  "it",
    "he",    "was",   "for",   "on",    "are",   "as",    "with",  "his",   "they",
    "at",    "be",    "this",  "have",  "from",  "or",    "one",   "had",   "by",
    "word",  "but",   "not",   "what",  "all",   "were",  "we",    "when",  "your",
    "can",   "said",  "there", "use",   "an",    "each",  "which", "she",   "do",
    "how",   "their", "if",    "will",  "up",    "other", "about", "out",   "many",
    "then",  "them",  "these", "so",    "some",  "her",   "would", "make",  "like",
    "him",   "into",  "time",  "has",   "look",  "two",   "more",  "write", "go",
    "see",   "number", "no",   "way",   "could", "people", "my",   "than",  "first",
    "water", "been",  "call",  "who",   "oil",   "its",   "now",   "find",  "long",
    "down",  "day",   "did",   "get",   "come",  "made",  "may",   "part",  "over",
    "new",   "sound", "take",  "only",  "little", "work", "know",  "place", "year",
    "live",  "me",    "back",  "give",  "most",  "very",  "after", "thing", "our",
    "just",  "name",  "good",  "man",   "think", "say",   "great", "where", "help",
};
constexpr int kNumWords = sizeof(kWords) / sizeof(kWords[0]);

// Uniform integer in [len * (1 - r), len * (1 + r)], never below 0.
std::uniform_int_distribution<int> LengthDistribution(int len, double r) {
  int lo = static_cast<int>(std::floor(len * (1.0 - r)));
  int hi = static_cast<int>(std::ceil(len * (1.0 + r)));
  if (r == 0.0) lo = hi = len;
  return std::uniform_int_distribution<int>(std::max(lo, 0), std::max(hi, 0));
}

}  // namespace

int EstimateTokens(const std::string& text) {
  return static_cast<int>((text.size() + 3) / 4);
}

absl::StatusOr<std::vector<BenchRequest>> MakeRandomDataset(const RandomDatasetOptions& o) {
  if (o.num_prompts <= 0) return absl::InvalidArgumentError("num_prompts: must be > 0");
  if (o.input_len < 0) return absl::InvalidArgumentError("input_len: must be >= 0");
  if (o.output_len <= 0) return absl::InvalidArgumentError("output_len: must be > 0");
  if (!(o.range_ratio >= 0.0 && o.range_ratio < 1.0)) {
    return absl::InvalidArgumentError("range_ratio: must be in [0, 1)");
  }
  if (o.prefix_len < 0) return absl::InvalidArgumentError("prefix_len: must be >= 0");
  if (o.form == PromptForm::kTokenIds && o.vocab_size <= kFirstRandomId) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocab_size: must be > ", kFirstRandomId, " (got ", o.vocab_size, ")"));
  }
  if (o.input_len + o.prefix_len == 0) {
    return absl::InvalidArgumentError("input_len: prompts would be empty (input_len + prefix_len == 0)");
  }

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> id_dist(kFirstRandomId, std::max(o.vocab_size - 1, kFirstRandomId));
  std::uniform_int_distribution<int> word_dist(0, kNumWords - 1);
  auto in_dist = LengthDistribution(o.input_len, o.range_ratio);
  auto out_dist = LengthDistribution(o.output_len, o.range_ratio);

  // The shared prefix, drawn first so it does not depend on num_prompts.
  std::vector<int32_t> prefix_ids;
  std::string prefix_text;
  for (int i = 0; i < o.prefix_len; ++i) {
    if (o.form == PromptForm::kTokenIds) {
      prefix_ids.push_back(id_dist(rng));
    } else {
      absl::StrAppend(&prefix_text, " ", kWords[word_dist(rng)]);
    }
  }

  std::vector<BenchRequest> out;
  out.reserve(o.num_prompts);
  for (int i = 0; i < o.num_prompts; ++i) {
    BenchRequest r;
    r.index = i;
    int in_len = in_dist(rng);
    r.output_len = std::max(1, out_dist(rng));
    if (in_len + o.prefix_len == 0) in_len = 1;  // never send an empty prompt
    r.prompt_len = o.prefix_len + in_len;
    if (o.form == PromptForm::kTokenIds) {
      r.prompt_ids = prefix_ids;
      r.prompt_ids.reserve(r.prompt_len);
      for (int k = 0; k < in_len; ++k) r.prompt_ids.push_back(id_dist(rng));
    } else {
      r.prompt_text = prefix_text;
      for (int k = 0; k < in_len; ++k) absl::StrAppend(&r.prompt_text, " ", kWords[word_dist(rng)]);
    }
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<BenchRequest>> LoadShareGptDataset(const ShareGptOptions& o) {
  if (o.num_prompts <= 0) return absl::InvalidArgumentError("num_prompts: must be > 0");
  std::ifstream in(o.path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(o.path, ": cannot open ShareGPT dataset"));
  std::stringstream buf;
  buf << in.rdbuf();

  struct Pair {
    std::string prompt;
    std::string reply;
  };
  std::vector<Pair> pairs;
  try {
    nlohmann::json doc = nlohmann::json::parse(buf.str());
    if (!doc.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(o.path, ": top level must be a JSON array"));
    }
    for (size_t i = 0; i < doc.size(); ++i) {
      const auto& entry = doc[i];
      if (!entry.is_object() || !entry.contains("conversations")) continue;
      const auto& conv = entry["conversations"];
      if (!conv.is_array() || conv.size() < 2) continue;
      if (!conv[0].contains("value") || !conv[1].contains("value") ||
          !conv[0]["value"].is_string() || !conv[1]["value"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            o.path, ": entry ", i, ": conversations[0..1] need a string \"value\""));
      }
      pairs.push_back({conv[0]["value"].get<std::string>(), conv[1]["value"].get<std::string>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(o.path, ": invalid JSON: ", e.what()));
  }

  std::mt19937_64 rng(o.seed);
  std::shuffle(pairs.begin(), pairs.end(), rng);

  std::vector<BenchRequest> out;
  for (const Pair& p : pairs) {
    if (static_cast<int>(out.size()) == o.num_prompts) break;
    int prompt_len = EstimateTokens(p.prompt);
    int output_len = o.fixed_output_len > 0 ? o.fixed_output_len : EstimateTokens(p.reply);
    if (prompt_len < o.min_len || (o.fixed_output_len <= 0 && output_len < o.min_len)) continue;
    if (prompt_len > o.max_prompt_len || prompt_len + output_len > o.max_total_len) continue;
    BenchRequest r;
    r.index = static_cast<int>(out.size());
    r.prompt_text = p.prompt;
    r.prompt_len = prompt_len;
    r.output_len = output_len;
    out.push_back(std::move(r));
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(o.path, ": no conversation passed the length filters (", pairs.size(),
                     " two-turn conversations read)"));
  }
  return out;
}

}  // namespace moe::bench

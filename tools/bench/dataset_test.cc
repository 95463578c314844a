#include "tools/bench/dataset.h"

#include <cstdlib>
#include <fstream>
#include <set>

#include <catch2/catch.hpp>

#include "absl/strings/str_split.h"

namespace moe::bench {
namespace {

int Words(const std::string& text) {
  return static_cast<int>(
      std::vector<std::string>(absl::StrSplit(text, ' ', absl::SkipEmpty())).size());
}

TEST_CASE("Random token-id prompts have lengths within the range ratio", "[dataset]") {
  RandomDatasetOptions o;
  o.num_prompts = 500;
  o.input_len = 100;
  o.output_len = 20;
  o.range_ratio = 0.5;
  o.prefix_len = 10;
  o.vocab_size = 1000;
  o.seed = 3;
  auto ds = MakeRandomDataset(o);
  REQUIRE(ds.ok());
  REQUIRE(ds->size() == 500);
  std::set<int> in_lens;
  for (const BenchRequest& r : *ds) {
    REQUIRE(static_cast<int>(r.prompt_ids.size()) == r.prompt_len);
    REQUIRE(r.prompt_len >= 10 + 50);
    REQUIRE(r.prompt_len <= 10 + 150);
    REQUIRE(r.output_len >= 10);
    REQUIRE(r.output_len <= 30);
    for (int32_t id : r.prompt_ids) REQUIRE((id >= kFirstRandomId && id < 1000));
    // The shared prefix is the same for every prompt.
    REQUIRE(std::equal(r.prompt_ids.begin(), r.prompt_ids.begin() + 10,
                       (*ds)[0].prompt_ids.begin()));
    in_lens.insert(r.prompt_len);
  }
  CHECK(in_lens.size() > 50);  // lengths really vary
  CHECK((*ds)[0].prompt_ids[10] != (*ds)[1].prompt_ids[10]);
}

TEST_CASE("Random prompts are reproducible from the seed", "[dataset]") {
  RandomDatasetOptions o;
  o.num_prompts = 20;
  o.input_len = 30;
  o.range_ratio = 0.2;
  o.seed = 9;
  auto a = MakeRandomDataset(o), b = MakeRandomDataset(o);
  o.seed = 10;
  auto c = MakeRandomDataset(o);
  REQUIRE((a.ok() && b.ok() && c.ok()));
  for (int i = 0; i < 20; ++i) {
    CHECK((*a)[i].prompt_ids == (*b)[i].prompt_ids);
    CHECK((*a)[i].output_len == (*b)[i].output_len);
  }
  CHECK((*a)[0].prompt_ids != (*c)[0].prompt_ids);
}

TEST_CASE("Random text prompts have one word per intended token", "[dataset]") {
  RandomDatasetOptions o;
  o.num_prompts = 50;
  o.input_len = 64;
  o.range_ratio = 0.25;
  o.prefix_len = 4;
  o.form = PromptForm::kText;
  auto ds = MakeRandomDataset(o);
  REQUIRE(ds.ok());
  for (const BenchRequest& r : *ds) {
    CHECK(r.prompt_ids.empty());
    CHECK(Words(r.prompt_text) == r.prompt_len);
    CHECK(r.prompt_len >= 4 + 48);
    CHECK(r.prompt_len <= 4 + 80);
  }
}

TEST_CASE("Random dataset options are validated with the option named", "[dataset]") {
  RandomDatasetOptions o;
  o.range_ratio = 1.0;
  auto bad = MakeRandomDataset(o);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("range_ratio") != std::string::npos);
  o.range_ratio = 0.0;
  o.vocab_size = 50;
  CHECK_FALSE(MakeRandomDataset(o).ok());
}

TEST_CASE("ShareGPT file: first two turns, filtered on estimated lengths", "[dataset]") {
  ShareGptOptions o;
  o.path = "tools/bench/testdata/sharegpt_small.json";
  o.num_prompts = 10;
  o.max_prompt_len = 30;
  auto ds = LoadShareGptDataset(o);
  REQUIRE(ds.ok());
  // keep-1 and keep-2 survive; single-turn, short-prompt, short-reply, long-prompt and
  // the entry without conversations are skipped.
  REQUIRE(ds->size() == 2);
  std::set<std::string> prompts;
  for (const BenchRequest& r : *ds) {
    prompts.insert(r.prompt_text);
    CHECK(r.prompt_len == EstimateTokens(r.prompt_text));
    CHECK(r.output_len >= 4);
  }
  CHECK(prompts.count("What is a mixture of experts model, in two sentences?") == 1);
  CHECK(prompts.count("Write a haiku about GPUs waiting for memory.") == 1);

  o.num_prompts = 1;
  o.fixed_output_len = 77;
  auto one = LoadShareGptDataset(o);
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].output_len == 77);
}

TEST_CASE("ShareGPT errors name the file", "[dataset]") {
  ShareGptOptions o;
  o.path = "tools/bench/testdata/does_not_exist.json";
  auto missing = LoadShareGptDataset(o);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("does_not_exist.json") != std::string::npos);
  const char* tmp = std::getenv("TEST_TMPDIR");
  o.path = std::string(tmp ? tmp : "/tmp") + "/not_json.json";
  std::ofstream(o.path) << "[{\"conversations\": [";
  auto bad = LoadShareGptDataset(o);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("invalid JSON") != std::string::npos);
}

}  // namespace
}  // namespace moe::bench

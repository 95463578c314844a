#include "engine/loader/checkpoint.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/loader/test_util.h"

namespace moe::engine {
namespace {

using Catch::Matchers::Contains;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

TensorToWrite F32Tensor(const std::string& name, std::vector<int64_t> shape, float fill) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n), fill);
  return {name, DType::kF32, std::move(shape),
          std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float))};
}

constexpr char kIndex[] = R"({
  "metadata": {"total_size": 144},
  "weight_map": {
    "lm_head.weight": "model-00002-of-00002.safetensors",
    "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
    "model.layers.0.mlp.experts.0.w1.weight": "model-00001-of-00002.safetensors",
    "model.norm.weight": "model-00002-of-00002.safetensors"
  }
})";

// Writes a two-shard checkpoint as save_pretrained lays one out.
void WriteShardedCheckpoint(const TempDir& dir) {
  WriteFile(dir.File("config.json"), "{}");
  WriteFile(dir.File("model.safetensors.index.json"), kIndex);
  REQUIRE(WriteSafetensors(dir.File("model-00001-of-00002.safetensors"),
                           {F32Tensor("model.embed_tokens.weight", {4, 3}, 1.f),
                            F32Tensor("model.layers.0.mlp.experts.0.w1.weight", {2, 3}, 2.f)},
                           {{"format", "pt"}})
              .ok());
  REQUIRE(WriteSafetensors(dir.File("model-00002-of-00002.safetensors"),
                           {F32Tensor("lm_head.weight", {4, 3}, 3.f),
                            F32Tensor("model.norm.weight", {3}, 4.f)},
                           {{"format", "pt"}})
              .ok());
}

std::string OpenError(const std::string& dir) {
  auto c = Checkpoint::Open(dir);
  REQUIRE_FALSE(c.ok());
  return std::string(c.status().message());
}

TEST_CASE("A single-file checkpoint opens and Get checks shapes", "[checkpoint]") {
  TempDir dir;
  WriteFile(dir.File("config.json"), "{}");
  REQUIRE(WriteSafetensors(dir.File("model.safetensors"),
                           {F32Tensor("model.embed_tokens.weight", {8, 4}, 0.5f),
                            F32Tensor("model.norm.weight", {4}, 1.f),
                            {"ids", DType::kI32, {2}, std::string(8, '\0')}})
              .ok());
  auto c = Checkpoint::Open(dir.path());
  REQUIRE(c.ok());
  const Checkpoint& ckpt = **c;
  CHECK(ckpt.dir() == dir.path());
  CHECK(ckpt.files().size() == 1);
  CHECK(ckpt.TensorNames() ==
        std::vector<std::string>{"ids", "model.embed_tokens.weight", "model.norm.weight"});
  CHECK(ckpt.TotalBytes() == 8 * 4 * 4 + 4 * 4 + 8);

  auto t = ckpt.Get("model.embed_tokens.weight", {8, 4});
  REQUIRE(t.ok());
  CHECK(LoadAsF32((*t)->data, (*t)->dtype, 31) == 0.5f);

  auto wrong = ckpt.Get("model.embed_tokens.weight", {4, 8});
  REQUIRE_FALSE(wrong.ok());
  std::string msg(wrong.status().message());
  CHECK_THAT(msg, Contains("model.embed_tokens.weight") && Contains(dir.File("model.safetensors")) &&
                      Contains("expected shape [4, 8]") && Contains("got [8, 4]"));

  auto missing = ckpt.Get("model.layers.0.self_attn.q_proj.weight", {4, 4});
  REQUIRE_FALSE(missing.ok());
  CHECK(absl::IsNotFound(missing.status()));
  CHECK_THAT(std::string(missing.status().message()),
             Contains("model.layers.0.self_attn.q_proj.weight") && Contains("[4, 4]"));

  auto ints = ckpt.Get("ids", {2});
  REQUIRE_FALSE(ints.ok());
  CHECK_THAT(std::string(ints.status().message()), Contains("'ids'") && Contains("I32"));
}

TEST_CASE("A sharded checkpoint is read through its index", "[checkpoint]") {
  TempDir dir;
  WriteShardedCheckpoint(dir);
  auto c = Checkpoint::Open(dir.path());
  REQUIRE(c.ok());
  const Checkpoint& ckpt = **c;
  CHECK(ckpt.files().size() == 2);
  CHECK(ckpt.TensorNames().size() == 4);
  CHECK(ckpt.TotalBytes() == 4 * (12 + 6 + 12 + 3));
  const TensorView* head = ckpt.Find("lm_head.weight");
  REQUIRE(head != nullptr);
  CHECK(head->file == dir.File("model-00002-of-00002.safetensors"));
  CHECK(LoadAsF32(head->data, head->dtype, 11) == 3.f);
  auto w1 = ckpt.Get("model.layers.0.mlp.experts.0.w1.weight", {2, 3});
  REQUIRE(w1.ok());
  CHECK((*w1)->file == dir.File("model-00001-of-00002.safetensors"));
  CHECK(LoadAsF32((*w1)->data, (*w1)->dtype, 5) == 2.f);
  CHECK(ckpt.Find("nothing") == nullptr);
}

TEST_CASE("Checkpoint::Open errors name the file and tensor at fault", "[checkpoint]") {
  TempDir dir;
  SECTION("config.json missing") {
    REQUIRE(WriteSafetensors(dir.File("model.safetensors"), {F32Tensor("w", {1}, 0.f)}).ok());
    CHECK_THAT(OpenError(dir.path()), Contains("config.json"));
  }
  SECTION("no weights at all") {
    WriteFile(dir.File("config.json"), "{}");
    CHECK_THAT(OpenError(dir.path()),
               Contains("model.safetensors") && Contains("model.safetensors.index.json"));
  }
  SECTION("a shard named by the index is missing") {
    WriteShardedCheckpoint(dir);
    std::remove(dir.File("model-00002-of-00002.safetensors").c_str());
    CHECK_THAT(OpenError(dir.path()),
               Contains("model-00002-of-00002.safetensors") && Contains("missing") &&
                   Contains("lm_head.weight"));
  }
  SECTION("a shard is truncated") {
    WriteShardedCheckpoint(dir);
    std::string shard = dir.File("model-00001-of-00002.safetensors");
    std::string bytes = ReadFile(shard);
    WriteFile(shard, bytes.substr(0, bytes.size() - 4));
    CHECK_THAT(OpenError(dir.path()),
               Contains(shard) && Contains("model.layers.0.mlp.experts.0.w1.weight"));
  }
  SECTION("a tensor in the index is absent from its shard") {
    WriteShardedCheckpoint(dir);
    REQUIRE(WriteSafetensors(dir.File("model-00002-of-00002.safetensors"),
                             {F32Tensor("lm_head.weight", {4, 3}, 3.f)})
                .ok());
    CHECK_THAT(OpenError(dir.path()),
               Contains("model.norm.weight") && Contains("model-00002-of-00002.safetensors") &&
                   Contains("does not hold it"));
  }
  SECTION("a tensor found in the wrong shard") {
    WriteShardedCheckpoint(dir);
    REQUIRE(WriteSafetensors(dir.File("model-00002-of-00002.safetensors"),
                             {F32Tensor("lm_head.weight", {4, 3}, 3.f)})
                .ok());
    REQUIRE(WriteSafetensors(dir.File("model-00001-of-00002.safetensors"),
                             {F32Tensor("model.embed_tokens.weight", {4, 3}, 1.f),
                              F32Tensor("model.layers.0.mlp.experts.0.w1.weight", {2, 3}, 2.f),
                              F32Tensor("model.norm.weight", {3}, 4.f)})
                .ok());
    CHECK_THAT(OpenError(dir.path()),
               Contains("model.norm.weight") && Contains("model-00001-of-00002.safetensors"));
  }
  SECTION("two shards hold the same tensor") {
    WriteShardedCheckpoint(dir);
    REQUIRE(WriteSafetensors(dir.File("model-00002-of-00002.safetensors"),
                             {F32Tensor("lm_head.weight", {4, 3}, 3.f),
                              F32Tensor("model.norm.weight", {3}, 4.f),
                              F32Tensor("model.embed_tokens.weight", {4, 3}, 9.f)})
                .ok());
    CHECK_THAT(OpenError(dir.path()),
               Contains("model.embed_tokens.weight") && Contains("both") &&
                   Contains("model-00001-of-00002.safetensors") &&
                   Contains("model-00002-of-00002.safetensors"));
  }
  SECTION("malformed index") {
    WriteFile(dir.File("config.json"), "{}");
    WriteFile(dir.File("model.safetensors.index.json"), R"({"weight_map": [1, 2]})");
    CHECK_THAT(OpenError(dir.path()),
               Contains("model.safetensors.index.json") && Contains("weight_map"));
  }
  SECTION("an index naming a shard outside the directory") {
    WriteFile(dir.File("config.json"), "{}");
    WriteFile(dir.File("model.safetensors.index.json"),
              R"({"weight_map": {"w": "../elsewhere.safetensors"}})");
    CHECK_THAT(OpenError(dir.path()), Contains("'w'") && Contains("../elsewhere.safetensors"));
  }
}

TEST_CASE("A checkpoint over caller-owned memory finds and checks tensors", "[checkpoint]") {
  std::vector<float> embed(8 * 4, 0.25f), norm(4, 1.5f);
  embed[31] = -2.f;
  std::vector<TensorView> views(3);
  views[0].name = "model.embed_tokens.weight";
  views[0].shape = {8, 4};
  views[0].data = embed.data();
  views[0].nbytes = embed.size() * sizeof(float);
  views[1].name = "model.norm.weight";
  views[1].shape = {4};
  views[1].data = norm.data();
  views[1].nbytes = norm.size() * sizeof(float);
  // A second name over the same bytes: memory checkpoints may alias.
  views[2] = views[1];
  views[2].name = "model.layers.0.input_layernorm.weight";
  auto ckpt = Checkpoint::FromMemory("synthetic:tiny:standard", views);
  REQUIRE(ckpt != nullptr);
  CHECK(ckpt->dir() == "synthetic:tiny:standard");
  CHECK(ckpt->files().empty());
  CHECK(ckpt->TensorNames() == std::vector<std::string>{"model.embed_tokens.weight",
                                                         "model.layers.0.input_layernorm.weight",
                                                         "model.norm.weight"});
  CHECK(ckpt->TotalBytes() == 8 * 4 * 4 + 2 * 4 * 4);

  auto t = ckpt->Get("model.embed_tokens.weight", {8, 4});
  REQUIRE(t.ok());
  CHECK((*t)->data == embed.data());  // a view, not a copy
  CHECK(LoadAsF32((*t)->data, (*t)->dtype, 31) == -2.f);
  CHECK(ckpt->Find("model.layers.0.input_layernorm.weight")->data == norm.data());

  auto wrong = ckpt->Get("model.embed_tokens.weight", {4, 8});
  REQUIRE_FALSE(wrong.ok());
  CHECK_THAT(std::string(wrong.status().message()),
             Contains("model.embed_tokens.weight") && Contains("synthetic:tiny:standard") &&
                 Contains("expected shape [4, 8]") && Contains("got [8, 4]"));

  auto missing = ckpt->Get("lm_head.weight", {8, 4});
  REQUIRE_FALSE(missing.ok());
  CHECK(absl::IsNotFound(missing.status()));
  CHECK_THAT(std::string(missing.status().message()),
             Contains("'lm_head.weight'") && Contains("synthetic:tiny:standard") &&
                 Contains("[8, 4]"));
  CHECK(ckpt->Find("lm_head.weight") == nullptr);
}

TEST_CASE("ReadTextFile reads whole files and names missing ones", "[checkpoint]") {
  TempDir dir;
  WriteFile(dir.File("a.json"), std::string("{\"x\": 1}\n\0tail", 15));
  auto text = ReadTextFile(dir.File("a.json"));
  REQUIRE(text.ok());
  CHECK(text->size() == 15);
  auto missing = ReadTextFile(dir.File("b.json"));
  REQUIRE_FALSE(missing.ok());
  CHECK(absl::IsNotFound(missing.status()));
  CHECK_THAT(std::string(missing.status().message()), Contains(dir.File("b.json")));
  auto directory = ReadTextFile(dir.path());
  CHECK_FALSE(directory.ok());
}

}  // namespace
}  // namespace moe::engine

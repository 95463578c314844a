#include "tools/synthetic/synthetic_model.h"

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "tools/synthetic/synthetic_tokenizer.h"
#include "tools/synthetic/tensor_plan.h"
#include "tools/synthetic/test_dir.h"

namespace moe::tools {
namespace {

using nlohmann::json;
using testing::ReadFileBytes;
using testing::TestDir;

SyntheticSpec Tiny(Family f, uint64_t seed = 1) {
  auto spec = SpecFromProfileJson(*BuiltinProfileJson("tiny"), "tiny", f);
  REQUIRE(spec.ok());
  spec->seed = seed;
  return *spec;
}

struct StoredTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// An independent reader of the safetensors layout: header length, JSON, contiguous
// 8-byte-aligned data.
std::map<std::string, StoredTensor> ReadSafetensors(const std::string& path) {
  const std::string file = ReadFileBytes(path);
  REQUIRE(file.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[i]);
  REQUIRE(n % 8 == 0);
  REQUIRE(8 + n <= file.size());
  json header = json::parse(file.substr(8, n));
  const std::string data = file.substr(8 + n);
  std::map<std::string, StoredTensor> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      CHECK(v["format"] == "pt");
      continue;
    }
    const uint64_t b = v["data_offsets"][0], e = v["data_offsets"][1];
    REQUIRE(e <= data.size());
    ranges.emplace_back(b, e);
    out[name] = {v["dtype"], v["shape"].get<std::vector<int64_t>>(), data.substr(b, e - b)};
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t expect = 0;
  for (auto [b, e] : ranges) {
    CHECK(b == expect);  // contiguous, no gaps or overlaps
    expect = e;
  }
  CHECK(expect == data.size());
  return out;
}

std::map<std::string, StoredTensor> ReadAllWeights(const std::string& dir) {
  std::map<std::string, StoredTensor> all;
  if (std::filesystem::exists(dir + "/model.safetensors")) return ReadSafetensors(dir + "/model.safetensors");
  json index = json::parse(ReadFileBytes(dir + "/model.safetensors.index.json"));
  std::set<std::string> files;
  for (auto& [name, file] : index["weight_map"].items()) files.insert(file.get<std::string>());
  for (const auto& f : files) {
    for (auto& [name, t] : ReadSafetensors(dir + "/" + f)) {
      CHECK(index["weight_map"][name] == f);
      CHECK(all.count(name) == 0);
      all[name] = t;
    }
  }
  CHECK(all.size() == index["weight_map"].size());
  return all;
}

float Bf16At(const std::string& bytes, size_t i) {
  uint16_t v;
  std::memcpy(&v, bytes.data() + 2 * i, 2);
  return Bf16ToF32(v);
}

TEST_CASE("a tiny model of each family has the Hugging Face tensor names and shapes") {
  for (Family f : {Family::kMixtral, Family::kQwen2Moe, Family::kQwen3Moe, Family::kOlmoe}) {
    INFO(FamilyName(f));
    TestDir dir;
    SyntheticSpec spec = Tiny(f);
    REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
    for (const char* name : {"config.json", "generation_config.json", "tokenizer.json",
                             "tokenizer_config.json", "model.safetensors"}) {
      CHECK(std::filesystem::exists(dir.File(name)));
    }
    CHECK_FALSE(std::filesystem::exists(dir.File("model.safetensors.index.json")));
    auto weights = ReadSafetensors(dir.File("model.safetensors"));
    const auto plan = PlanTensors(spec);
    CHECK(weights.size() == plan.size());
    for (const auto& t : plan) {
      INFO(t.name);
      REQUIRE(weights.count(t.name) == 1);
      CHECK(weights[t.name].shape == t.shape);
      CHECK(weights[t.name].dtype == "BF16");
    }
    // Spot checks of the published naming, per family.
    const std::string l1 = "model.layers.1.";
    CHECK(weights.count("model.embed_tokens.weight"));
    CHECK(weights.count("model.norm.weight"));
    CHECK(weights.count("lm_head.weight"));
    CHECK(weights.count(l1 + "self_attn.o_proj.weight"));
    CHECK(weights.count(l1 + "input_layernorm.weight"));
    CHECK(weights.count(l1 + "post_attention_layernorm.weight"));
    switch (f) {
      case Family::kMixtral:
        CHECK(weights[l1 + "block_sparse_moe.gate.weight"].shape == std::vector<int64_t>{8, 64});
        CHECK(weights[l1 + "block_sparse_moe.experts.7.w1.weight"].shape ==
              std::vector<int64_t>{128, 64});
        CHECK(weights[l1 + "block_sparse_moe.experts.7.w2.weight"].shape ==
              std::vector<int64_t>{64, 128});
        CHECK(weights.count(l1 + "block_sparse_moe.experts.7.w3.weight"));
        break;
      case Family::kQwen2Moe:
        CHECK(weights[l1 + "self_attn.q_proj.bias"].shape == std::vector<int64_t>{64});
        CHECK(weights[l1 + "self_attn.k_proj.bias"].shape == std::vector<int64_t>{32});
        CHECK(weights[l1 + "mlp.shared_expert_gate.weight"].shape == std::vector<int64_t>{1, 64});
        CHECK(weights[l1 + "mlp.shared_expert.down_proj.weight"].shape ==
              std::vector<int64_t>{64, 256});
        CHECK(weights[l1 + "mlp.experts.3.up_proj.weight"].shape ==
              std::vector<int64_t>{128, 64});
        break;
      case Family::kQwen3Moe:
        CHECK(weights[l1 + "self_attn.q_norm.weight"].shape == std::vector<int64_t>{16});
        CHECK(weights[l1 + "self_attn.k_norm.weight"].shape == std::vector<int64_t>{16});
        CHECK(weights.count(l1 + "self_attn.q_proj.bias") == 0);
        CHECK(weights[l1 + "mlp.gate.weight"].shape == std::vector<int64_t>{8, 64});
        break;
      case Family::kOlmoe:
        CHECK(weights[l1 + "self_attn.q_norm.weight"].shape == std::vector<int64_t>{64});
        CHECK(weights[l1 + "self_attn.k_norm.weight"].shape == std::vector<int64_t>{32});
        CHECK(weights[l1 + "mlp.experts.0.down_proj.weight"].shape ==
              std::vector<int64_t>{64, 128});
        break;
    }

    json cfg = json::parse(ReadFileBytes(dir.File("config.json")));
    CHECK(cfg["model_type"] == FamilyName(f));
    CHECK(cfg["hidden_size"] == 64);
    CHECK(cfg["num_hidden_layers"] == 2);
    CHECK(cfg["vocab_size"] == 512);
    CHECK(cfg["rope_parameters"]["rope_theta"] == 10000.0);
    CHECK(cfg["rope_parameters"]["rope_type"] == "default");
    CHECK_FALSE(cfg.contains("rope_theta"));
    CHECK(cfg["dtype"] == "bfloat16");
    CHECK(cfg["num_experts_per_tok"] == 2);
    CHECK(cfg[f == Family::kMixtral ? "num_local_experts" : "num_experts"] == 8);
  }
}

TEST_CASE("hf4 config spelling puts rope_theta at top level") {
  TestDir dir;
  SyntheticSpec spec = Tiny(Family::kQwen3Moe);
  spec.config_style = ConfigStyle::kHf4;
  REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
  json cfg = json::parse(ReadFileBytes(dir.File("config.json")));
  CHECK(cfg["rope_theta"] == 10000.0);
  CHECK(cfg["rope_scaling"].is_null());
  CHECK(cfg["torch_dtype"] == "bfloat16");
  CHECK_FALSE(cfg.contains("rope_parameters"));
}

TEST_CASE("same seed gives identical bytes, another seed different weights") {
  TestDir a, b, c;
  REQUIRE(WriteSyntheticModel(Tiny(Family::kQwen2Moe, 7), a.path()).ok());
  REQUIRE(WriteSyntheticModel(Tiny(Family::kQwen2Moe, 7), b.path()).ok());
  REQUIRE(WriteSyntheticModel(Tiny(Family::kQwen2Moe, 8), c.path()).ok());
  for (const char* name : {"config.json", "generation_config.json", "tokenizer.json",
                           "tokenizer_config.json", "model.safetensors"}) {
    INFO(name);
    CHECK(ReadFileBytes(a.File(name)) == ReadFileBytes(b.File(name)));
  }
  CHECK(ReadFileBytes(a.File("model.safetensors")) != ReadFileBytes(c.File("model.safetensors")));
  auto wa = ReadSafetensors(a.File("model.safetensors"));
  auto wc = ReadSafetensors(c.File("model.safetensors"));
  for (const auto& [name, t] : wa) {
    INFO(name);
    CHECK(t.bytes != wc[name].bytes);  // every tensor changes, not just one
  }
}

TEST_CASE("sharding splits the weights and writes a valid index with the same tensors") {
  TestDir whole, sharded;
  SyntheticSpec spec = Tiny(Family::kMixtral, 3);
  REQUIRE(WriteSyntheticModel(spec, whole.path()).ok());
  spec.shard_size_bytes = 200 * 1024;
  std::vector<WrittenFile> written;
  uint64_t last_done = 0, calls = 0;
  WriteOptions opts;
  opts.on_progress = [&](const WriteProgress& p) {
    CHECK(p.bytes_done >= last_done);
    last_done = p.bytes_done;
    ++calls;
  };
  REQUIRE(WriteSyntheticModel(spec, sharded.path(), opts, &written).ok());
  CHECK_FALSE(std::filesystem::exists(sharded.File("model.safetensors")));

  json index = json::parse(ReadFileBytes(sharded.File("model.safetensors.index.json")));
  std::set<std::string> files;
  for (auto& [name, file] : index["weight_map"].items()) files.insert(file.get<std::string>());
  const auto shards = PlanShards(spec);
  REQUIRE(shards.size() > 2);
  CHECK(files.size() == shards.size());
  CHECK(*files.begin() == absl::StrFormat("model-00001-of-%05d.safetensors", shards.size()));
  uint64_t total = 0, shard_bytes_seen = 0;
  auto all = ReadAllWeights(sharded.path());
  for (auto& [name, t] : all) total += t.bytes.size();
  CHECK(index["metadata"]["total_size"] == total);
  CHECK(last_done == total);
  CHECK(calls >= shards.size());
  for (const auto& s : shards) {
    const auto size = std::filesystem::file_size(sharded.File(s.file));
    CHECK(size <= spec.shard_size_bytes + 64 * 1024);  // + header
    shard_bytes_seen += size;
  }
  uint64_t reported = 0;
  for (const auto& w : written) reported += w.bytes;
  CHECK(reported > shard_bytes_seen);  // also counts the JSON files

  // The same tensors, byte for byte, as the unsharded checkpoint.
  auto one = ReadSafetensors(whole.File("model.safetensors"));
  CHECK(one.size() == all.size());
  for (const auto& [name, t] : one) {
    INFO(name);
    CHECK(all[name].bytes == t.bytes);
  }

  // Rewriting unsharded into the same directory leaves no stale shards behind.
  spec.shard_size_bytes = uint64_t{4} << 30;
  REQUIRE(WriteSyntheticModel(spec, sharded.path()).ok());
  CHECK_FALSE(std::filesystem::exists(sharded.File("model.safetensors.index.json")));
  CHECK_FALSE(std::filesystem::exists(sharded.File(shards[0].file)));
  CHECK(std::filesystem::exists(sharded.File("model.safetensors")));
}

TEST_CASE("weights have the documented scale so a random model is not degenerate") {
  TestDir dir;
  SyntheticSpec spec = Tiny(Family::kOlmoe, 5);
  REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
  auto w = ReadSafetensors(dir.File("model.safetensors"));
  auto stats = [&](const std::string& name) {
    const auto& b = w.at(name).bytes;
    const size_t n = b.size() / 2;
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; ++i) {
      s += Bf16At(b, i);
      s2 += double(Bf16At(b, i)) * Bf16At(b, i);
    }
    const double mean = s / n;
    return std::pair{mean, std::sqrt(s2 / n - mean * mean)};
  };
  auto [m1, sd1] = stats("lm_head.weight");  // fan-in 64: std 1/8
  CHECK(std::abs(m1) < 0.01);
  CHECK(sd1 == Approx(0.125).epsilon(0.05));
  auto [m2, sd2] = stats("model.layers.0.mlp.experts.2.down_proj.weight");  // fan-in 128
  CHECK(sd2 == Approx(1 / std::sqrt(128.0)).epsilon(0.05));
  auto [m3, sd3] = stats("model.layers.0.input_layernorm.weight");
  CHECK(m3 == Approx(1.0).margin(0.03));
  CHECK(sd3 > 0.0);
  CHECK(sd3 < 0.1);
}

TEST_CASE("fp32 and fp16 hold the same values as bf16, at their precision") {
  TestDir b, h, f;
  SyntheticSpec spec = Tiny(Family::kQwen3Moe, 9);
  REQUIRE(WriteSyntheticModel(spec, b.path()).ok());
  spec.dtype = DType::kF16;
  REQUIRE(WriteSyntheticModel(spec, h.path()).ok());
  spec.dtype = DType::kF32;
  REQUIRE(WriteSyntheticModel(spec, f.path()).ok());
  const std::string name = "model.layers.1.self_attn.q_proj.weight";
  auto wb = ReadSafetensors(b.File("model.safetensors"))[name];
  auto wh = ReadSafetensors(h.File("model.safetensors"))[name];
  auto wf = ReadSafetensors(f.File("model.safetensors"))[name];
  CHECK(wh.dtype == "F16");
  CHECK(wf.dtype == "F32");
  REQUIRE(wf.bytes.size() == 2 * wb.bytes.size());
  for (size_t i = 0; i < 1000; ++i) {
    float v32;
    std::memcpy(&v32, wf.bytes.data() + 4 * i, 4);
    uint16_t v16;
    std::memcpy(&v16, wh.bytes.data() + 2 * i, 2);
    CHECK(Bf16At(wb.bytes, i) == Bf16ToF32(F32ToBf16(v32)));
    CHECK(F16ToF32(v16) == Approx(v32).margin(1e-3));
  }
  json cfg = json::parse(ReadFileBytes(f.File("config.json")));
  CHECK(cfg["dtype"] == "float32");
}

TEST_CASE("tokenizer.json is byte-level BPE with 256 byte tokens and consistent merges") {
  TestDir dir;
  SyntheticSpec spec = Tiny(Family::kOlmoe);
  REQUIRE(WriteSyntheticModel(spec, dir.path()).ok());
  json tok = json::parse(ReadFileBytes(dir.File("tokenizer.json")));
  json tcfg = json::parse(ReadFileBytes(dir.File("tokenizer_config.json")));
  json cfg = json::parse(ReadFileBytes(dir.File("config.json")));
  const json& model = tok["model"];
  CHECK(model["type"] == "BPE");
  const json& vocab = model["vocab"];
  // The 256 byte tokens: ids 0..255, one per byte of GPT-2's alphabet.
  const auto& alphabet = ByteLevelAlphabet();
  std::set<int> byte_ids;
  for (int b = 0; b < 256; ++b) {
    REQUIRE(vocab.contains(alphabet[b]));
    byte_ids.insert(vocab[alphabet[b]].get<int>());
  }
  CHECK(byte_ids.size() == 256);
  CHECK(*byte_ids.rbegin() == 255);
  CHECK(vocab["!"] == 0);
  CHECK(alphabet[' '] == "\xC4\xA0");
  // Each merge joins two known tokens into a known token.
  const json& merges = model["merges"];
  CHECK(merges.size() >= 200);
  std::set<int> ids;
  for (auto& [k, v] : vocab.items()) ids.insert(v.get<int>());
  CHECK(ids.size() == vocab.size());
  for (const auto& m : merges) {
    const std::string s = m.get<std::string>();
    const size_t sp = s.find(' ');
    REQUIRE(sp != std::string::npos);
    const std::string a = s.substr(0, sp), b = s.substr(sp + 1);
    INFO(s);
    CHECK(vocab.contains(a));
    CHECK(vocab.contains(b));
    CHECK(vocab.contains(a + b));
    CHECK(vocab[a + b].get<int>() > std::max(vocab[a].get<int>(), vocab[b].get<int>()));
  }
  CHECK(vocab.contains("\xC4\xA0the"));  // " the" learned from the built-in English
  // Special tokens follow the vocabulary; <|endoftext|> is the config's eos.
  const json& added = tok["added_tokens"];
  REQUIRE(added.size() == 3);
  CHECK(added[0]["content"] == "<|endoftext|>");
  CHECK(added[0]["id"] == vocab.size());
  CHECK(added[0]["special"] == true);
  CHECK(cfg["eos_token_id"] == added[0]["id"]);
  CHECK(tcfg["eos_token"] == "<|endoftext|>");
  CHECK(tcfg["added_tokens_decoder"][std::to_string(added[0]["id"].get<int>())]["content"] ==
        "<|endoftext|>");
  // The model's embedding covers the tokenizer (it may be larger).
  CHECK(added.back()["id"].get<int>() < spec.vocab_size);
  CHECK(tok["pre_tokenizer"]["pretokenizers"][1]["type"] == "ByteLevel");
  CHECK(tok["decoder"]["type"] == "ByteLevel");
}

TEST_CASE("errors: bad spec fields and a vocabulary too small for the tokenizer") {
  TestDir dir;
  SyntheticSpec spec = Tiny(Family::kOlmoe);
  spec.vocab_size = 300;
  spec.tokenizer_merges = 100;
  auto st = WriteSyntheticModel(spec, dir.path());
  CHECK_FALSE(st.ok());
  CHECK(std::string(st.message()).find("vocab_size") != std::string::npos);
  spec.tokenizer_merges = 0;  // the default fits what room there is
  CHECK(WriteSyntheticModel(spec, dir.path()).ok());
  spec.num_heads = 0;
  CHECK(std::string(WriteSyntheticModel(spec, dir.path()).message()).find("num_heads") !=
        std::string::npos);
}

}  // namespace
}  // namespace moe::tools

// Test-only: writes a small random-weight Hugging Face model directory (config.json +
// model.safetensors) of any supported family, with the family's own tensor names, so that
// binders and runners can be tested without downloading anything.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/loader/model_config.h"
#include "kernels/dtype.h"

namespace moe::engine::testing {

struct TestModelSpec {
  Architecture arch = Architecture::kMixtral;
  DType dtype = DType::kBF16;
  bool fused_experts = false;  // transformers-5 style experts.gate_up_proj / down_proj
  int vocab_size = 97;
  int hidden_size = 32;
  int num_layers = 2;
  int num_heads = 4;
  int num_kv_heads = 2;
  int head_dim = 8;
  int num_experts = 4;
  int top_k = 2;
  int moe_intermediate_size = 24;
  int intermediate_size = 40;                // dense layers (Qwen2/3-MoE)
  int shared_expert_intermediate_size = 0;   // Qwen2-MoE
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;
  bool norm_topk_prob = false;
  std::optional<float> clip_qkv;
  bool tie_word_embeddings = false;
  int sliding_window = 0;
  double rope_theta = 10000.0;
  double partial_rotary_factor = 1.0;
  int max_position_embeddings = 256;
  uint32_t seed = 1;
  // Tensors written with a different shape than the family expects (for error tests).
  std::map<std::string, std::vector<int64_t>> shape_overrides;
};

// Every tensor written, by name, as the exact fp32 values the file holds.
struct TestModelTensors {
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, std::vector<int64_t>> shapes;
};

absl::StatusOr<TestModelTensors> WriteTestModel(const std::string& dir, const TestModelSpec& spec);

// A fresh empty directory under TEST_TMPDIR (or /tmp).
std::string MakeTempDir(const std::string& name);

}  // namespace moe::engine::testing

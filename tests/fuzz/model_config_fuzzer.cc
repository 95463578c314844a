// Fuzzes moe::engine::ParseModelConfig(config_json, generation_config_json). The input is
// split at its first NUL byte (which valid JSON never holds): before it config.json, after
// it generation_config.json (absent: ""). An accepted config must satisfy the checks the
// header promises (positive sizes, consistent head counts, top-k within the experts).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "absl/strings/string_view.h"
#include "engine/loader/model_config.h"
#include "tests/fuzz/fuzz_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view all(reinterpret_cast<const char*>(data), size);
  absl::string_view config = all, generation;
  size_t nul = all.find('\0');
  if (nul != absl::string_view::npos) {
    config = all.substr(0, nul);
    generation = all.substr(nul + 1);
  }
  auto c = moe::engine::ParseModelConfig(config, generation);
  if (!c.ok()) {
    if (c.status().message().empty()) moe::fuzz::Fail("error without a message");
    return 0;
  }
  using moe::fuzz::Fail;
  if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->num_layers <= 0) Fail("non-positive size");
  if (c->num_heads <= 0 || c->num_kv_heads <= 0 || c->head_dim <= 0) Fail("non-positive heads");
  if (c->num_heads % c->num_kv_heads != 0) Fail("num_heads not a multiple of num_kv_heads");
  if (c->num_experts <= 0 || c->num_experts_per_tok <= 0 ||
      c->num_experts_per_tok > c->num_experts) {
    Fail("bad expert counts");
  }
  if (!(c->rope_theta > 0) || !(c->rms_norm_eps > 0)) Fail("non-positive rope_theta/eps");
  if (!(c->partial_rotary_factor > 0) || c->partial_rotary_factor > 1) Fail("bad rotary factor");
  // Touch the per-layer predicate the runner uses (bounded: layer counts may be huge).
  for (int l = 0; l < c->num_layers && l < 4096; ++l) (void)c->IsMoeLayer(l);
  (void)moe::engine::ArchitectureName(c->arch);
  return 0;
}

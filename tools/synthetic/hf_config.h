// config.json and generation_config.json for a synthetic model, in the spelling each
// family's Hugging Face config class uses (transformers 5 or 4.x, per spec.config_style).
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include "tools/synthetic/synthetic_spec.h"

namespace moe::tools {

// `bos_id` / `eos_id` are the tokenizer's ids (the real models' ids may not exist in
// the synthetic tokenizer).
std::string HfConfigJson(const SyntheticSpec& spec, int bos_id, int eos_id);
std::string GenerationConfigJson(const SyntheticSpec& spec, int bos_id, int eos_id);

}  // namespace moe::tools

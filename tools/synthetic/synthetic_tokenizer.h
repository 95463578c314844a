// A small byte-level BPE tokenizer in the Qwen2 / GPT-2 style, for synthetic models:
// the 256 byte tokens (GPT-2's byte-to-unicode alphabet, ids 0..255 in its order), merges
// learned from a short built-in English text, and special tokens appended after them.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

namespace moe::tools {

struct SyntheticTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  int vocab_size = 0;      // byte tokens + merges + special tokens
  int num_merges = 0;
  int eos_id = -1;         // <|endoftext|>
  std::vector<std::string> special_tokens;  // in id order, starting at vocab_size - n
};

// The number of merges BuildSyntheticTokenizer uses for a model of `model_vocab_size`
// when none is asked for: min(400, model_vocab_size - 256 - special tokens).
int DefaultMergeCount(int model_vocab_size);
int NumSpecialTokens();

// `num_merges` merges (fewer if the built-in text runs out of pairs); the tokenizer's
// vocabulary is then 256 + merges + special tokens. `model_max_length` goes to
// tokenizer_config.json.
SyntheticTokenizer BuildSyntheticTokenizer(int num_merges, int model_max_length);

// GPT-2's byte → printable unicode code point mapping, as UTF-8 strings; index = byte.
const std::vector<std::string>& ByteLevelAlphabet();

}  // namespace moe::tools

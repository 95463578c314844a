#include "tools/synthetic/synthetic_tokenizer.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <utility>

#include "nlohmann/json.hpp"

namespace moe::tools {
namespace {

constexpr int kDefaultMerges = 400;
const char* const kSpecialTokens[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

// Training text for the merges. Any English does; this one was written for the purpose.
constexpr const char kTrainingText[] = R"(
The server keeps every expert of the model in host memory and moves the ones it will need
into the graphics card before they are needed. When the guess is right, the copy finishes
while the previous layer is still computing, and nobody waits. When the guess is wrong,
the layer asks for the missing expert at once and waits for it; the answer is the same,
only a little later. This is the whole idea, and the rest of the system is there to make
the guesses good and the waits short.
A request arrives as text. The tokenizer turns the text into numbers, the scheduler puts
the request in a queue, and at the next step the request joins the running batch. Each
step the model reads the tokens of every sequence in the batch, layer after layer, and
writes one new token for each of them. The new tokens go back to the clients as they are
made, so a person reading the answer sees it grow word by word.
Memory is the hard part. The attention cache grows with every token of every sequence,
the experts are large, and the card has room for only some of them. The scheduler counts
the blocks it has, and when there are not enough it pauses the newest request and gives
its blocks to the others. Later, when there is room again, the paused request starts over
from its prompt and the tokens it had already produced.
There are three ways to know in advance which experts a layer will use. The first is to
apply the next router to the current hidden state, which is often right but not always.
The second is a model trained so that each router chooses the experts of the following
layer, which is always right. The third is a model whose routers look only at the input
tokens, so that the routing of every layer is known before the step begins.
Numbers in the text are split into single digits, such as 2024, 1000 and 3.14, and the
punctuation stays apart from the words: commas, periods, questions? answers! (and notes).
We tested the system with models of many sizes, from a tiny one with two layers to large
ones with forty eight layers and one hundred and twenty eight experts in each layer. For
each of them we measured how many tokens per second the server could produce, how long
the first token took, and how often the prefetcher guessed right. The results were good
enough that we kept the design, and simple enough that we could explain it to others.
)";

std::vector<std::string> MakeAlphabet() {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<int> cs = bs;
  int extra = 0;
  for (int b = 0; b < 256; ++b) {
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + extra++);
    }
  }
  std::vector<std::string> out(256);
  for (size_t i = 0; i < bs.size(); ++i) {
    const int cp = cs[i];
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {  // all code points here are < 0x800
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    out[bs[i]] = s;
  }
  return out;
}

// Byte order of GPT-2's alphabet: printable ranges first, then the rest.
std::vector<int> AlphabetOrder() {
  std::vector<int> order;
  for (int b = '!'; b <= '~'; ++b) order.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) order.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) order.push_back(b);
  for (int b = 0; b < 256; ++b) {
    if (std::find(order.begin(), order.end(), b) == order.end()) order.push_back(b);
  }
  return order;
}

// Splits like the pre-tokenizer roughly does: an optional space followed by letters, or
// single digits, or an optional space followed by punctuation, or whitespace runs.
std::map<std::string, int> WordCounts(const std::string& text) {
  std::map<std::string, int> counts;
  size_t i = 0;
  auto is_alpha = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; };
  auto is_digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (i < text.size()) {
    size_t start = i;
    if (text[i] == ' ' && i + 1 < text.size() && !is_space(text[i + 1]) && !is_digit(text[i + 1]))
      ++i;
    if (i < text.size() && is_alpha(text[i])) {
      while (i < text.size() && is_alpha(text[i])) ++i;
    } else if (i < text.size() && is_digit(text[i])) {
      ++i;
    } else if (i < text.size() && !is_space(text[i])) {
      while (i < text.size() && !is_space(text[i]) && !is_alpha(text[i]) && !is_digit(text[i]))
        ++i;
    } else {
      while (i < text.size() && is_space(text[i])) ++i;
    }
    if (i == start) ++i;
    counts[text.substr(start, i - start)]++;
  }
  return counts;
}

}  // namespace

const std::vector<std::string>& ByteLevelAlphabet() {
  static const std::vector<std::string>* alphabet = new std::vector<std::string>(MakeAlphabet());
  return *alphabet;
}

int NumSpecialTokens() { return static_cast<int>(std::size(kSpecialTokens)); }

int DefaultMergeCount(int model_vocab_size) {
  return std::max(0, std::min(kDefaultMerges, model_vocab_size - 256 - NumSpecialTokens()));
}

SyntheticTokenizer BuildSyntheticTokenizer(int num_merges, int model_max_length) {
  const auto& alphabet = ByteLevelAlphabet();
  using ordered_json = nlohmann::ordered_json;

  ordered_json vocab = ordered_json::object();
  int next_id = 0;
  for (int b : AlphabetOrder()) vocab[alphabet[b]] = next_id++;

  // BPE training: words as symbol sequences, weighted by frequency. Ties between equally
  // frequent pairs go to the lexicographically smallest, so the result is deterministic.
  std::vector<std::pair<std::vector<std::string>, int>> words;
  for (const auto& [w, c] : WordCounts(kTrainingText)) {
    std::vector<std::string> symbols;
    for (unsigned char ch : w) symbols.push_back(alphabet[ch]);
    words.emplace_back(std::move(symbols), c);
  }
  ordered_json merges = ordered_json::array();
  int learned = 0;
  while (learned < num_merges) {
    std::map<std::pair<std::string, std::string>, int> pairs;
    for (const auto& [symbols, c] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += c;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    const auto [a, b] = best->first;
    const std::string merged = a + b;
    merges.push_back(a + " " + b);
    if (!vocab.contains(merged)) vocab[merged] = next_id++;
    ++learned;
    for (auto& [symbols, c] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == a && symbols[i + 1] == b) {
          out.push_back(merged);
          ++i;
        } else {
          out.push_back(symbols[i]);
        }
      }
      symbols = std::move(out);
    }
  }

  SyntheticTokenizer tok;
  tok.num_merges = learned;
  ordered_json added = ordered_json::array();
  ordered_json added_decoder = ordered_json::object();
  for (const char* s : kSpecialTokens) {
    const int id = next_id++;
    tok.special_tokens.push_back(s);
    added.push_back({{"id", id},
                     {"content", s},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
    added_decoder[std::to_string(id)] = {{"content", s},       {"lstrip", false},
                                         {"normalized", false}, {"rstrip", false},
                                         {"single_word", false}, {"special", true}};
  }
  tok.vocab_size = next_id;
  tok.eos_id = next_id - NumSpecialTokens();  // <|endoftext|> comes first

  const ordered_json byte_level = {{"type", "ByteLevel"},
                                   {"add_prefix_space", false},
                                   {"trim_offsets", false},
                                   {"use_regex", false}};
  // Qwen2's pre-tokenizer split: contractions, letters with one leading non-letter,
  // single digits, punctuation runs, newlines, other whitespace.
  const char* kSplitPattern =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  ordered_json tj = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", kSplitPattern}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          byte_level}}}},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};
  tok.tokenizer_json = tj.dump(2);

  const char* kChatTemplate =
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
      "{{ '<|im_start|>assistant\\n' }}{% endif %}";
  ordered_json cfg = {{"add_bos_token", false},
                      {"add_eos_token", false},
                      {"add_prefix_space", false},
                      {"added_tokens_decoder", added_decoder},
                      {"bos_token", nullptr},
                      {"chat_template", kChatTemplate},
                      {"clean_up_tokenization_spaces", false},
                      {"eos_token", kSpecialTokens[0]},
                      {"errors", "replace"},
                      {"model_max_length", model_max_length},
                      {"pad_token", kSpecialTokens[0]},
                      {"split_special_tokens", false},
                      {"tokenizer_class", "PreTrainedTokenizerFast"},
                      {"unk_token", nullptr}};
  tok.tokenizer_config_json = cfg.dump(2);
  return tok;
}

}  // namespace moe::tools

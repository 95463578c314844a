// Tokenizer built from a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`):
// byte-level BPE (GPT-2 / Qwen / OLMoE style, pre-tokenizer regex run by PCRE2) and
// metaspace BPE with byte fallback (Llama / Mistral style), added and special tokens,
// normalizers (NFC, Prepend, Replace), and the post-processor's BOS/EOS template.
//
// Thread safety: immutable after construction; Encode/Decode may run on any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace moe::engine {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Reads `dir`/tokenizer.json and, when present, `dir`/tokenizer_config.json.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromDirectory(const std::string& dir);
  // From the files' contents; `tokenizer_config_json` may be empty. Errors name the
  // field at fault (unsupported model type, pre-tokenizer, malformed merges...).
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(
      absl::string_view tokenizer_json, absl::string_view tokenizer_config_json);

  // Text → ids, as Hugging Face's `tokenizer(text, add_special_tokens=...)` gives them.
  // Special tokens written in the text are recognised. Text that is not valid UTF-8 is
  // accepted: byte-level tokenizers encode its ill-formed bytes as themselves; others
  // see each ill-formed subpart as U+FFFD.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text,
                                                      bool add_special_tokens) const = 0;
  // Ids → text, as `tokenizer.decode(ids, skip_special_tokens=...)`. An id outside the
  // vocabulary is an error naming it. The result is always valid UTF-8 (bytes that do
  // not form characters become U+FFFD).
  virtual absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                             bool skip_special_tokens) const = 0;

  virtual int32_t vocab_size() const = 0;  // largest id + 1, added tokens included
  virtual std::optional<int32_t> TokenToId(absl::string_view token) const = 0;
  virtual std::string IdToToken(int32_t id) const = 0;  // "" if out of range
  virtual bool IsSpecial(int32_t id) const = 0;
  // The raw bytes token `id` contributes when decoded in the middle of a sequence
  // (byte-level characters mapped back to bytes, metaspace's U+2581 as ' ', <0xNN>
  // byte-fallback tokens as that byte), for constrained decoding. Not necessarily valid
  // UTF-8 (a token may hold part of a character). "" for special tokens, ids outside the
  // vocabulary and holes in the id space.
  virtual std::string TokenBytes(int32_t id) const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  // tokenizer_config.json's chat_template ("" if none), for the HTTP gateway.
  virtual const std::string& chat_template() const = 0;
};

// Streams text for a growing sequence of ids. Each Add() returns the newly final text:
// never a broken UTF-8 sequence, and never text that a later id could still change
// (metaspace's leading space, byte-fallback pieces). Flush() returns what is left.
// The concatenation of everything returned equals Decode() of the generated ids in the
// context of the prompt. An id outside the vocabulary is dropped (Add returns "").
// Thread safety: one instance per sequence, not shared between threads.
class IncrementalDetokenizer {
 public:
  // `prompt_ids` gives context (so the first generated token decodes as it would after
  // the prompt, e.g. its leading space); it is not emitted.
  IncrementalDetokenizer(const Tokenizer& tokenizer, absl::Span<const int32_t> prompt_ids,
                         bool skip_special_tokens = true);
  std::string Add(int32_t id);
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  size_t prefix_offset_ = 0;  // ids_[prefix_offset_, read_offset_) already emitted context
  size_t read_offset_ = 0;
};

}  // namespace moe::engine

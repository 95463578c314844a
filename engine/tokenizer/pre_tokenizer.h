// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): ByteLevel, Split, Metaspace,
// Digits, Whitespace, WhitespaceSplit, Sequence. They cut a normalized segment into
// pieces that the model encodes one by one.
// Thread safety: immutable after parsing; Apply may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_util.h"

namespace moe::engine::tok {

struct Piece {
  std::string text;
  bool at_start = false;  // begins at offset 0 of the original text (Metaspace "first")
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` with their finer split. Piece texts are valid UTF-8 on entry;
  // empty pieces are dropped.
  virtual void Apply(std::vector<Piece>* pieces) const = 0;
  // True if this maps bytes to the GPT-2 byte-level alphabet (then the model sees
  // byte-level characters, and raw bytes can bypass the other steps).
  virtual bool IsByteLevel() const { return false; }
};

absl::StatusOr<std::unique_ptr<PreTokenizer>> ParsePreTokenizer(const Json& j,
                                                                const std::string& path);

}  // namespace moe::engine::tok

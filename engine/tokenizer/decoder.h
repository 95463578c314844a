// Decoders of tokenizer.json ("decoder"): ByteLevel, Metaspace, Replace, ByteFallback,
// Fuse, Strip, Sequence. Each turns the list of token strings into a new list, as
// tokenizers' decode_chain; the result is concatenated.
// Thread safety: immutable after parsing.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/json_util.h"

namespace moe::engine::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Token strings are valid UTF-8 on entry and stay so.
  virtual void DecodeChain(std::vector<std::string>* tokens) const = 0;
  // Rewrites one token's string into the raw bytes it contributes in the middle of a
  // sequence: as DecodeChain on that token alone, but with no sequence-start handling
  // (Metaspace's first-token strip, Strip) and no UTF-8 repair (byte-level pieces and
  // <0xNN> byte-fallback tokens give their bytes, even when not a whole character).
  virtual void TokenBytes(std::string* token) const = 0;
};

absl::StatusOr<std::unique_ptr<Decoder>> ParseDecoder(const Json& j, const std::string& path);

}  // namespace moe::engine::tok

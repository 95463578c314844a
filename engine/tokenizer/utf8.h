// UTF-8 helpers and the GPT-2 byte-level alphabet, internal to the tokenizer.
// Thread safety: free functions; the byte-level tables are immutable statics.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace moe::engine::tok {

// Length of the well-formed UTF-8 character at s[i], or 0 if s[i] does not start one.
size_t Utf8CharLen(absl::string_view s, size_t i);
bool IsValidUtf8(absl::string_view s);
// Decodes the character at s[i] (which must be well formed); sets *len.
uint32_t DecodeUtf8(absl::string_view s, size_t i, size_t* len);
void AppendUtf8(uint32_t cp, std::string* out);
// Like Rust's String::from_utf8_lossy: each maximal ill-formed subpart becomes U+FFFD.
std::string Utf8Lossy(absl::string_view bytes);
bool EndsWithReplacementChar(absl::string_view s);
// Unicode White_Space (Rust's char::is_whitespace).
bool IsUnicodeWhitespace(uint32_t cp);

// GPT-2 byte-level alphabet: byte -> UTF-8 of its printable stand-in character.
const std::string& ByteToUnicode(uint8_t b);
// Inverse: code point -> byte; returns false if `cp` is not in the alphabet.
bool UnicodeToByte(uint32_t cp, uint8_t* b);
// Maps every byte of `s` to its stand-in character.
std::string ByteLevelEncode(absl::string_view s);

}  // namespace moe::engine::tok

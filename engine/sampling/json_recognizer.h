// A byte-level recogniser of JSON text (RFC 8259): objects, arrays, strings (escapes,
// \uXXXX with surrogate pairs, well-formed UTF-8 only), numbers, true / false / null and
// whitespace. It reads one byte at a time and knows, after each, whether the bytes so far
// are a prefix of some valid document ("dead" once they are not) and whether a whole
// top-level value has been read ("complete"), for constrained decoding (json_constraint.h).
//
// Limits a model could otherwise exploit to never finish, both rejected as dead bytes:
// nesting deeper than kMaxDepth containers, and more than kMaxWhitespaceRun consecutive
// whitespace bytes outside strings (before, between or after values). After the top-level
// value only whitespace may follow (within the same limit). Numbers are limited to
// kMaxNumberBytes bytes and exponents to kMaxExponentDigits digits, so every accepted
// number is a finite double (parsers such as nlohmann::json reject ones that overflow).
//
// The state is 16 bytes (a bit stack of container kinds plus a small lexer state), so
// copying it per byte while walking a token trie is cheap. Equal states accept exactly
// the same continuations (operator==, AbslHashValue: usable as a cache key).
//
// Thread safety: a value type; one thread at a time per instance.
#pragma once

#include <cstdint>
#include <utility>

#include "absl/strings/string_view.h"

namespace moe::engine::sampling {

// What the top-level value may be: an object (OpenAI's json_object), or any JSON value.
enum class JsonTopLevel : uint8_t { kObject, kAnyValue };

class JsonRecognizer {
 public:
  static constexpr int kMaxDepth = 64;
  static constexpr int kMaxWhitespaceRun = 16;
  static constexpr int kMaxNumberBytes = 64;
  static constexpr int kMaxExponentDigits = 2;

  explicit JsonRecognizer(JsonTopLevel top = JsonTopLevel::kObject);

  // Reads one byte. Returns false, and the recogniser stays dead, when the bytes read so
  // far can no longer begin a valid document.
  bool Advance(uint8_t byte);
  // Advance over every byte; false as soon as one is rejected.
  bool AdvanceAll(absl::string_view bytes);

  bool dead() const { return state_ == kDead; }
  // A whole top-level value has been read (a top-level number counts once it has a
  // digit in every part it started: "-1", "0.5", "1e3").
  bool complete() const;
  // Inside a string with nothing pending (no escape, no partial UTF-8 character): every
  // byte in 0x20..0x7F other than '"' and '\\' leaves the state exactly as it is.
  bool InPlainString() const { return state_ == kString; }
  int depth() const { return depth_; }

  friend bool operator==(const JsonRecognizer& a, const JsonRecognizer& b) {
    return a.stack_ == b.stack_ && a.depth_ == b.depth_ && a.state_ == b.state_ &&
           a.aux_ == b.aux_ && a.aux2_ == b.aux2_ && a.ws_run_ == b.ws_run_ &&
           a.flags_ == b.flags_;
  }
  friend bool operator!=(const JsonRecognizer& a, const JsonRecognizer& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const JsonRecognizer& r) {
    return H::combine(std::move(h), r.stack_, r.depth_, r.state_, r.aux_, r.aux2_, r.ws_run_,
                      r.flags_);
  }

 private:
  enum State : uint8_t {
    kDead,
    kTopStart,     // before the top-level value
    kValue,        // a value (after ':' or after ',' in an array)
    kArrayFirst,   // after '[': a value or ']'
    kObjectFirst,  // after '{': a key or '}'
    kKey,          // after ',' in an object: a key
    kColon,        // after a key: ':'
    kAfterValue,   // inside a container after a value: ',' or its closer
    kDone,         // the top-level value is complete
    kString,       // inside a string (flags_ & kKeyFlag: an object key)
    kEscape,       // after '\'
    kUnicode,      // inside \uXXXX: aux_ hex digits read, aux2_ surrogate bits
    kLowBackslash, // after a high surrogate's \uXXXX: '\' of the low one
    kLowU,         // 'u' of the low surrogate
    kUtf8,         // inside a multi-byte character: aux_ bytes left, aux2_ next-byte range
    // Numbers: aux_ bytes so far, aux2_ exponent digits.
    kNumMinus,     // "-"
    kNumZero,      // "0" or "-0"
    kNumInt,       // integer digits (not starting with 0)
    kNumDot,       // "."
    kNumFrac,      // fraction digits
    kNumExp,       // "e"
    kNumExpSign,   // "e+" / "e-"
    kNumExpDigits, // exponent digits
    kLiteral,      // inside true / false / null: aux2_ which, aux_ bytes matched
  };
  static constexpr uint8_t kKeyFlag = 1;
  static constexpr uint8_t kAnyTopFlag = 2;

  bool StartValue(uint8_t b);
  bool EndValue();  // a value just ended: kDone at top level, else kAfterValue
  bool NumberByte();  // counts one byte of a number; false past kMaxNumberBytes
  bool Push(bool object);
  bool Pop(bool object);  // the closer must match the innermost container
  bool Whitespace();      // counts one whitespace byte; false past the limit
  bool Kill() {
    state_ = kDead;
    return false;
  }
  bool TopIsObject() const { return (stack_ >> (depth_ - 1)) & 1; }

  uint64_t stack_ = 0;  // bit d: level d (0 = outermost) is an object, else an array
  uint8_t depth_ = 0;
  uint8_t state_ = kTopStart;
  uint8_t aux_ = 0;
  uint8_t aux2_ = 0;
  uint8_t ws_run_ = 0;
  uint8_t flags_ = 0;
};

}  // namespace moe::engine::sampling

#include "engine/sampling/json_recognizer.h"

namespace moe::engine::sampling {
namespace {

bool IsWhitespace(uint8_t b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r'; }
bool IsDigit(uint8_t b) { return b >= '0' && b <= '9'; }
bool IsHex(uint8_t b) {
  return IsDigit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
}

constexpr const char* kLiterals[] = {"true", "false", "null"};
constexpr uint8_t kLiteralLength[] = {4, 5, 4};

// The range a UTF-8 continuation byte must fall in (aux2_ of kUtf8): anything else is
// malformed, overlong, a surrogate or above U+10FFFF.
constexpr uint8_t kRangeLo[] = {0x80, 0xA0, 0x80, 0x90, 0x80};
constexpr uint8_t kRangeHi[] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};

// Bits of aux2_ inside \uXXXX.
constexpr uint8_t kWantLow = 1;   // this escape must be a low surrogate (DC00..DFFF)
constexpr uint8_t kFirstD = 2;    // its first hex digit was d / D
constexpr uint8_t kIsHigh = 4;    // it is a high surrogate (D800..DBFF)

}  // namespace

JsonRecognizer::JsonRecognizer(JsonTopLevel top)
    : flags_(top == JsonTopLevel::kAnyValue ? kAnyTopFlag : 0) {}

bool JsonRecognizer::complete() const {
  if (state_ == kDone) return true;
  if (depth_ != 0) return false;
  // A top-level number is a whole value once every part it started has a digit.
  return state_ == kNumZero || state_ == kNumInt || state_ == kNumFrac ||
         state_ == kNumExpDigits;
}

bool JsonRecognizer::AdvanceAll(absl::string_view bytes) {
  for (char c : bytes) {
    if (!Advance(static_cast<uint8_t>(c))) return false;
  }
  return true;
}

bool JsonRecognizer::Whitespace() {
  if (ws_run_ >= kMaxWhitespaceRun) return Kill();
  ++ws_run_;
  return true;
}

bool JsonRecognizer::Push(bool object) {
  if (depth_ >= kMaxDepth) return Kill();
  const uint64_t bit = uint64_t{1} << depth_;
  stack_ = object ? (stack_ | bit) : (stack_ & ~bit);
  ++depth_;
  state_ = object ? kObjectFirst : kArrayFirst;
  return true;
}

bool JsonRecognizer::Pop(bool object) {
  if (depth_ == 0 || TopIsObject() != object) return Kill();
  --depth_;
  stack_ &= ~(uint64_t{1} << depth_);  // equal states compare equal
  return EndValue();
}

bool JsonRecognizer::EndValue() {
  state_ = depth_ == 0 ? kDone : kAfterValue;
  aux_ = aux2_ = 0;
  return true;
}

bool JsonRecognizer::NumberByte() {
  if (aux_ >= kMaxNumberBytes) return Kill();
  ++aux_;
  return true;
}

bool JsonRecognizer::StartValue(uint8_t b) {
  if (state_ == kTopStart && !(flags_ & kAnyTopFlag) && b != '{') return Kill();
  switch (b) {
    case '{':
      return Push(true);
    case '[':
      return Push(false);
    case '"':
      state_ = kString;
      flags_ &= ~kKeyFlag;
      return true;
    case '-':
      state_ = kNumMinus;
      aux_ = 1, aux2_ = 0;
      return true;
    case '0':
      state_ = kNumZero;
      aux_ = 1, aux2_ = 0;
      return true;
    case 't':
    case 'f':
    case 'n':
      state_ = kLiteral;
      aux2_ = b == 't' ? 0 : b == 'f' ? 1 : 2;
      aux_ = 1;
      return true;
    default:
      if (b >= '1' && b <= '9') {
        state_ = kNumInt;
        aux_ = 1, aux2_ = 0;
        return true;
      }
      return Kill();
  }
}

bool JsonRecognizer::Advance(uint8_t b) {
  switch (state_) {
    case kDead:
      return false;

    // Structural states: whitespace counts against the run limit; anything else resets it.
    case kTopStart:
    case kValue:
    case kArrayFirst:
    case kObjectFirst:
    case kKey:
    case kColon:
    case kAfterValue:
    case kDone:
      if (IsWhitespace(b)) return Whitespace();
      ws_run_ = 0;
      switch (state_) {
        case kTopStart:
        case kValue:
          return StartValue(b);
        case kArrayFirst:
          return b == ']' ? Pop(false) : StartValue(b);
        case kObjectFirst:
          if (b == '}') return Pop(true);
          [[fallthrough]];
        case kKey:
          if (b != '"') return Kill();
          state_ = kString;
          flags_ |= kKeyFlag;
          return true;
        case kColon:
          if (b != ':') return Kill();
          state_ = kValue;
          return true;
        case kAfterValue:
          if (b == ',') {
            state_ = TopIsObject() ? kKey : kValue;
            return true;
          }
          if (b == '}') return Pop(true);
          if (b == ']') return Pop(false);
          return Kill();
        default:  // kDone: only whitespace may follow
          return Kill();
      }

    case kString:
      if (b == '"') {
        if (flags_ & kKeyFlag) {
          flags_ &= ~kKeyFlag;
          state_ = kColon;
          return true;
        }
        return EndValue();
      }
      if (b == '\\') {
        state_ = kEscape;
        return true;
      }
      if (b < 0x20) return Kill();  // control characters must be escaped
      if (b < 0x80) return true;
      // The lead byte of a multi-byte character fixes its length and the range of the
      // byte after it.
      if (b >= 0xC2 && b <= 0xDF) {
        aux_ = 1, aux2_ = 0;
      } else if (b == 0xE0) {
        aux_ = 2, aux2_ = 1;
      } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
        aux_ = 2, aux2_ = 0;
      } else if (b == 0xED) {
        aux_ = 2, aux2_ = 2;
      } else if (b == 0xF0) {
        aux_ = 3, aux2_ = 3;
      } else if (b >= 0xF1 && b <= 0xF3) {
        aux_ = 3, aux2_ = 0;
      } else if (b == 0xF4) {
        aux_ = 3, aux2_ = 4;
      } else {
        return Kill();
      }
      state_ = kUtf8;
      return true;

    case kUtf8:
      if (b < kRangeLo[aux2_] || b > kRangeHi[aux2_]) return Kill();
      aux2_ = 0;
      if (--aux_ == 0) state_ = kString;
      return true;

    case kEscape:
      switch (b) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          state_ = kString;
          return true;
        case 'u':
          state_ = kUnicode;
          aux_ = 0, aux2_ = 0;
          return true;
        default:
          return Kill();
      }

    case kUnicode: {
      if (!IsHex(b)) return Kill();
      const bool is_d = b == 'd' || b == 'D';
      if (aux_ == 0) {
        if (aux2_ & kWantLow) {
          if (!is_d) return Kill();
        }
        if (is_d) aux2_ |= kFirstD;
      } else if (aux_ == 1 && (aux2_ & kFirstD)) {
        const bool hi = (b >= '8' && b <= '9') || (b >= 'a' && b <= 'b') || (b >= 'A' && b <= 'B');
        const bool lo = (b >= 'c' && b <= 'f') || (b >= 'C' && b <= 'F');
        if (aux2_ & kWantLow) {
          if (!lo) return Kill();
        } else if (lo) {
          return Kill();  // a low surrogate with no high one before it
        } else if (hi) {
          aux2_ |= kIsHigh;
        }
      }
      if (++aux_ < 4) return true;
      const bool high = aux2_ & kIsHigh;
      aux_ = aux2_ = 0;
      state_ = high ? kLowBackslash : kString;
      return true;
    }
    case kLowBackslash:
      if (b != '\\') return Kill();
      state_ = kLowU;
      return true;
    case kLowU:
      if (b != 'u') return Kill();
      state_ = kUnicode;
      aux_ = 0, aux2_ = kWantLow;
      return true;

    case kNumMinus:
      if (b != '0' && !(b >= '1' && b <= '9')) return Kill();
      state_ = b == '0' ? kNumZero : kNumInt;
      return NumberByte();
    case kNumZero:
    case kNumInt:
    case kNumFrac:
    case kNumExpDigits:
      if (IsDigit(b) && state_ != kNumZero) {
        if (state_ == kNumExpDigits && ++aux2_ > kMaxExponentDigits) return Kill();
        return NumberByte();
      }
      if (b == '.' && (state_ == kNumZero || state_ == kNumInt)) {
        state_ = kNumDot;
        return NumberByte();
      }
      if ((b == 'e' || b == 'E') && state_ != kNumExpDigits) {
        state_ = kNumExp;
        return NumberByte();
      }
      // The number ended; the byte belongs to what follows it.
      EndValue();
      return Advance(b);
    case kNumDot:
      if (!IsDigit(b)) return Kill();
      state_ = kNumFrac;
      return NumberByte();
    case kNumExp:
      if (b == '+' || b == '-') {
        state_ = kNumExpSign;
        return NumberByte();
      }
      [[fallthrough]];
    case kNumExpSign:
      if (!IsDigit(b)) return Kill();
      state_ = kNumExpDigits;
      aux2_ = 1;
      return NumberByte();

    case kLiteral:
      if (b != static_cast<uint8_t>(kLiterals[aux2_][aux_])) return Kill();
      if (++aux_ == kLiteralLength[aux2_]) return EndValue();
      return true;
  }
  return Kill();
}

}  // namespace moe::engine::sampling

#include "server/chat_template/lexer.h"

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "server/chat_template/utf8.h"

namespace moe::server::chat_template {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Jinja normalizes \r\n and \r to \n and drops one trailing newline.
std::string NormalizeNewlines(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      out += '\n';
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      out += in[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  absl::StatusOr<std::vector<Token>> Run() {
    size_t pos = 0;
    const size_t n = src_.size();
    while (pos < n) {
      size_t p = FindTagStart(pos);
      std::string data = src_.substr(pos, (p == std::string::npos ? n : p) - pos);
      if (p == std::string::npos) {
        Emit(TokenType::kData, data, pos);
        break;
      }
      char kind = src_[p + 1];
      char modifier = p + 2 < n ? src_[p + 2] : '\0';
      if (modifier == '-') {
        while (!data.empty() && IsSpace(data.back())) data.pop_back();
      } else if (kind != '{' && modifier != '+') {
        // lstrip_blocks: drop spaces/tabs between line start and the tag.
        size_t nl = data.rfind('\n');
        size_t line_begin = nl == std::string::npos ? 0 : nl + 1;
        bool at_line_start = nl != std::string::npos || pos == 0 || src_[pos - 1] == '\n';
        if (at_line_start &&
            data.find_first_not_of(" \t", line_begin) == std::string::npos) {
          data.resize(line_begin);
        }
      }
      Emit(TokenType::kData, data, pos);
      size_t body = p + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
      bool strip_after = false;
      bool plus_after = false;
      if (kind == '#') {
        size_t end = src_.find("#}", body);
        if (end == std::string::npos) return Error(p, "unterminated comment");
        strip_after = end > body && src_[end - 1] == '-';
        plus_after = end > body && src_[end - 1] == '+';
        pos = end + 2;
      } else {
        bool is_block = kind == '%';
        Emit(is_block ? TokenType::kBlockBegin : TokenType::kVarBegin, "", p);
        size_t start_tokens = tokens_.size();
        auto end_or = LexTag(body, is_block, &strip_after, &plus_after);
        if (!end_or.ok()) return end_or.status();
        pos = *end_or;
        if (is_block && tokens_.size() == start_tokens + 2 &&
            tokens_[start_tokens].type == TokenType::kName &&
            tokens_[start_tokens].text == "raw") {
          tokens_.resize(start_tokens - 1);
          auto raw_end = LexRaw(pos, p, strip_after, plus_after);
          if (!raw_end.ok()) return raw_end.status();
          pos = *raw_end;
          continue;
        }
        if (!is_block) {
          if (strip_after) SkipSpace(&pos);
          continue;
        }
      }
      if (strip_after) {
        SkipSpace(&pos);
      } else if (!plus_after && pos < n && src_[pos] == '\n') {
        ++pos;  // trim_blocks
      }
    }
    Emit(TokenType::kEof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  size_t FindTagStart(size_t from) const {
    size_t p = from;
    while ((p = src_.find('{', p)) != std::string::npos) {
      if (p + 1 < src_.size() &&
          (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) {
        return p;
      }
      ++p;
    }
    return std::string::npos;
  }

  void SkipSpace(size_t* pos) const {
    while (*pos < src_.size() && IsSpace(src_[*pos])) ++*pos;
  }

  void Emit(TokenType type, std::string text, size_t offset) {
    if (type == TokenType::kData && text.empty()) return;
    Token t;
    t.type = type;
    t.text = std::move(text);
    LineCol(offset, &t.line, &t.column);
    tokens_.push_back(std::move(t));
  }

  void LineCol(size_t offset, int* line, int* col) const {
    size_t lo = 0, hi = line_starts_.size();
    while (hi - lo > 1) {
      size_t mid = (lo + hi) / 2;
      if (line_starts_[mid] <= offset) lo = mid; else hi = mid;
    }
    *line = static_cast<int>(lo) + 1;
    *col = static_cast<int>(offset - line_starts_[lo]) + 1;
  }

  absl::Status Error(size_t offset, absl::string_view what) const {
    int line, col;
    LineCol(offset, &line, &col);
    return absl::InvalidArgumentError(
        absl::StrCat("template syntax error at line ", line, ", column ", col, ": ", what));
  }

  // Tokenizes an expression tag body; returns the offset just past its end.
  absl::StatusOr<size_t> LexTag(size_t pos, bool is_block, bool* strip_after,
                                bool* plus_after) {
    const char close = is_block ? '%' : '}';
    int depth = 0;
    const size_t n = src_.size();
    while (true) {
      SkipSpace(&pos);
      if (pos >= n) return Error(pos, is_block ? "unterminated '{%' tag" : "unterminated '{{' tag");
      char c = src_[pos];
      if (depth == 0) {
        if ((c == '-' || (c == '+' && is_block)) && pos + 2 < n &&
            src_[pos + 1] == close && src_[pos + 2] == '}') {
          *strip_after = c == '-';
          *plus_after = c == '+';
          Emit(is_block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", pos);
          return pos + 3;
        }
        if (c == close && pos + 1 < n && src_[pos + 1] == '}') {
          Emit(is_block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", pos);
          return pos + 2;
        }
      }
      if (IsNameStart(c)) {
        size_t s = pos;
        while (pos < n && (IsNameStart(src_[pos]) || IsDigit(src_[pos]))) ++pos;
        Emit(TokenType::kName, src_.substr(s, pos - s), s);
      } else if (IsDigit(c)) {
        auto st = LexNumber(&pos);
        if (!st.ok()) return st;
      } else if (c == '\'' || c == '"') {
        size_t s = pos++;
        while (pos < n && src_[pos] != c) {
          if (src_[pos] == '\\') ++pos;
          ++pos;
        }
        if (pos >= n) return Error(s, "unterminated string literal");
        Token t;
        t.type = TokenType::kString;
        t.text = UnescapeStringLiteral(absl::string_view(src_).substr(s + 1, pos - s - 1));
        LineCol(s, &t.line, &t.column);
        tokens_.push_back(std::move(t));
        ++pos;
      } else {
        static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* two : kTwo) {
          if (src_.compare(pos, 2, two) == 0) op = two;
        }
        if (op.empty()) {
          if (std::string("+-*/%~<>=()[]{},.:|").find(c) == std::string::npos) {
            return Error(pos, absl::StrCat("unexpected character '", std::string(1, c), "'"));
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") --depth;
        if (depth < 0) return Error(pos, absl::StrCat("unexpected '", op, "'"));
        Emit(TokenType::kOp, op, pos);
        pos += op.size();
      }
    }
  }

  absl::Status LexNumber(size_t* pos) {
    const size_t n = src_.size();
    size_t s = *pos;
    std::string digits;
    bool is_float = false;
    auto take_digits = [&]() {
      while (*pos < n && (IsDigit(src_[*pos]) || src_[*pos] == '_')) {
        if (src_[*pos] != '_') digits += src_[*pos];
        ++*pos;
      }
    };
    take_digits();
    if (*pos + 1 < n && src_[*pos] == '.' && IsDigit(src_[*pos + 1])) {
      is_float = true;
      digits += '.';
      ++*pos;
      take_digits();
    }
    if (*pos < n && (src_[*pos] == 'e' || src_[*pos] == 'E')) {
      size_t q = *pos + 1;
      if (q < n && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < n && IsDigit(src_[q])) {
        is_float = true;
        digits += 'e';
        digits.append(src_, *pos + 1, q - *pos - 1);
        *pos = q;
        take_digits();
      }
    }
    Token t;
    LineCol(s, &t.line, &t.column);
    errno = 0;
    if (is_float) {
      t.type = TokenType::kFloat;
      t.float_value = std::strtod(digits.c_str(), nullptr);
    } else {
      t.type = TokenType::kInt;
      t.int_value = std::strtoll(digits.c_str(), nullptr, 10);
      if (errno == ERANGE) return Error(s, "integer literal out of range");
    }
    t.text = digits;
    tokens_.push_back(std::move(t));
    return absl::OkStatus();
  }

  // Copies text verbatim up to {% endraw %}; returns the offset past it.
  absl::StatusOr<size_t> LexRaw(size_t pos, size_t tag_offset, bool strip_after,
                                bool plus_after) {
    if (strip_after) SkipSpace(&pos);
    else if (!plus_after && pos < src_.size() && src_[pos] == '\n') ++pos;
    size_t search = pos;
    while (true) {
      size_t p = src_.find("{%", search);
      if (p == std::string::npos) return Error(tag_offset, "missing {% endraw %}");
      size_t q = p + 2;
      bool strip_before = q < src_.size() && src_[q] == '-';
      if (strip_before || (q < src_.size() && src_[q] == '+')) ++q;
      SkipSpace(&q);
      if (src_.compare(q, 6, "endraw") != 0) { search = p + 2; continue; }
      q += 6;
      SkipSpace(&q);
      bool strip_end = q < src_.size() && src_[q] == '-';
      if (strip_end) ++q;
      if (src_.compare(q, 2, "%}") != 0) { search = p + 2; continue; }
      std::string data = src_.substr(pos, p - pos);
      if (strip_before) {
        while (!data.empty() && IsSpace(data.back())) data.pop_back();
      }
      Emit(TokenType::kData, data, pos);
      q += 2;
      if (strip_end) SkipSpace(&q);
      else if (q < src_.size() && src_[q] == '\n') ++q;
      return q;
    }
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::string UnescapeStringLiteral(absl::string_view body) {
  std::string out;
  out.reserve(body.size());
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x': case 'u': case 'U': {
        size_t len = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
        uint32_t cp = 0;
        bool ok = true;
        for (size_t k = 1; ok && k <= len; ++k) {
          if (i + k >= body.size() || HexVal(body[i + k]) < 0) { ok = false; break; }
          cp = cp * 16 + HexVal(body[i + k]);
        }
        if (!ok || cp > 0x10FFFF) {
          out += '\\';
          out += e;
        } else {
          AppendUtf8(cp, &out);
          i += len;
        }
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          uint32_t cp = e - '0';
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
            cp = cp * 8 + (body[++i] - '0');
          }
          AppendUtf8(cp, &out);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

absl::StatusOr<std::vector<Token>> Lex(absl::string_view source) {
  Lexer lexer(NormalizeNewlines(source));
  return lexer.Run();
}

}  // namespace moe::server::chat_template

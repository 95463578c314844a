// Tokenizer for the Jinja2 subset used by Hugging Face chat templates, with the
// environment transformers uses: trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False, and `-`/`+` whitespace control on tags.
//
// Stateless and thread-safe.
#ifndef MOE_SERVER_CHAT_TEMPLATE_LEXER_H_
#define MOE_SERVER_CHAT_TEMPLATE_LEXER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe::server::chat_template {

enum class TokenType {
  kData,        // literal template text (whitespace control already applied)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // text holds the unescaped value
  kInt,
  kFloat,
  kOp,          // text holds the operator, e.g. "==", "(", "|"
  kEof,
};

struct Token {
  TokenType type = TokenType::kEof;
  std::string text;
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1;    // 1-based, in the template source
  int column = 1;  // 1-based
};

// Splits `source` into tokens. Errors (unterminated string/tag, stray
// character, integer overflow) name line and column.
absl::StatusOr<std::vector<Token>> Lex(absl::string_view source);

// Python's unicode-escape decoding of a string literal body.
std::string UnescapeStringLiteral(absl::string_view body);

}  // namespace moe::server::chat_template

#endif  // MOE_SERVER_CHAT_TEMPLATE_LEXER_H_

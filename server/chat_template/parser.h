// Parser for the chat-template Jinja subset: statements (if/elif/else, for
// with else/filter/tuple targets, set, set-block, macro, break, continue,
// generation) and Jinja's expression grammar with its operator precedence.
// Stateless and thread-safe.
#ifndef MOE_SERVER_CHAT_TEMPLATE_PARSER_H_
#define MOE_SERVER_CHAT_TEMPLATE_PARSER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/chat_template/ast.h"

namespace moe::server::chat_template {

// Nesting deeper than this (brackets, blocks) is a syntax error rather than a
// risk to the stack.
inline constexpr int kMaxParseDepth = 200;

// Errors are InvalidArgument and name line and column.
absl::StatusOr<StmtList> ParseTemplate(absl::string_view source);

}  // namespace moe::server::chat_template

#endif  // MOE_SERVER_CHAT_TEMPLATE_PARSER_H_

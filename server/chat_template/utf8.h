// UTF-8 helpers giving Python str semantics (code-point indexing, Unicode
// whitespace, case mapping) to the template interpreter. Thread-safe.
#ifndef MOE_SERVER_CHAT_TEMPLATE_UTF8_H_
#define MOE_SERVER_CHAT_TEMPLATE_UTF8_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moe::server::chat_template {

void AppendUtf8(uint32_t cp, std::string* out);
// Decodes to code points; invalid bytes map to U+FFFD one byte at a time.
std::vector<uint32_t> DecodeUtf8(absl::string_view s);
std::string EncodeUtf8(const std::vector<uint32_t>& cps, size_t begin, size_t end);
// Python str.isspace() for one code point.
bool IsPySpace(uint32_t cp);
uint32_t ToUpper(uint32_t cp);
uint32_t ToLower(uint32_t cp);
bool IsCased(uint32_t cp);  // has an upper/lower case form (Python "cased")

}  // namespace moe::server::chat_template

#endif  // MOE_SERVER_CHAT_TEMPLATE_UTF8_H_

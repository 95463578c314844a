// Incremental parser for a text/event-stream body (Server-Sent Events), as OpenAI's
// streaming endpoints send it: events separated by a blank line, payload in `data:`
// lines (several data lines of one event are joined with '\n'), comments (":") and
// other fields ignored, LF or CRLF line ends. Bytes may arrive split anywhere.
//
// Not thread-safe: one parser per stream.
#ifndef MOE_TOOLS_BENCH_SSE_PARSER_H_
#define MOE_TOOLS_BENCH_SSE_PARSER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moe::bench {

class SseParser {
 public:
  // Consumes `bytes` and returns the data of every event completed by them, in order.
  std::vector<std::string> Feed(absl::string_view bytes);

 private:
  std::string line_;         // the incomplete current line
  std::string data_;         // data of the event being read
  bool has_data_ = false;
};

}  // namespace moe::bench

#endif  // MOE_TOOLS_BENCH_SSE_PARSER_H_

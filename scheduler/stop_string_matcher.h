// Finds stop strings in streamed text. Text is held back just long enough that a stop
// string split across deltas is never partly emitted: the last (longest stop - 1) bytes
// stay buffered, cut back to a UTF-8 character boundary. When a stop string appears, the
// text before its earliest occurrence is released and the rest (the stop string
// included) is dropped.
//
// Thread safety: not thread-safe; one per sequence, used by the engine thread.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace moe::scheduler {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  struct Result {
    std::string emit;     // text safe to send now
    bool stopped = false;
    std::string matched;  // the stop string found, when stopped
  };
  // Adds a delta. After a stop, further calls return nothing.
  Result Feed(absl::string_view delta);
  // Releases the held-back text (end of generation without a stop string).
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  size_t holdback_ = 0;
  std::string buffer_;
  bool stopped_ = false;
};

}  // namespace moe::scheduler

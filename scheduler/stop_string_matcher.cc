#include "scheduler/stop_string_matcher.h"

#include <algorithm>
#include <utility>

namespace moe::scheduler {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (auto& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
  for (const auto& s : stops_) holdback_ = std::max(holdback_, s.size() - 1);
}

StopStringMatcher::Result StopStringMatcher::Feed(absl::string_view delta) {
  Result r;
  if (stopped_) return r;
  buffer_.append(delta.data(), delta.size());
  if (stops_.empty()) {
    r.emit = std::move(buffer_);
    buffer_.clear();
    return r;
  }
  // Earliest occurrence of any stop string; every earlier occurrence would already have
  // been found, because the buffer always keeps the last (longest - 1) bytes.
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const auto& s : stops_) {
    size_t pos = buffer_.find(s);
    if (pos != std::string::npos && (best == std::string::npos || pos < best)) {
      best = pos;
      best_stop = &s;
    }
  }
  if (best_stop != nullptr) {
    stopped_ = true;
    r.stopped = true;
    r.matched = *best_stop;
    r.emit = buffer_.substr(0, best);
    buffer_.clear();
    return r;
  }
  if (buffer_.size() <= holdback_) return r;
  size_t cut = buffer_.size() - holdback_;
  // Do not split a UTF-8 character: back up over continuation bytes.
  while (cut > 0 && cut < buffer_.size() &&
         (static_cast<unsigned char>(buffer_[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  r.emit = buffer_.substr(0, cut);
  buffer_.erase(0, cut);
  return r;
}

std::string StopStringMatcher::Flush() {
  if (stopped_) return "";
  std::string out = std::move(buffer_);
  buffer_.clear();
  return out;
}

}  // namespace moe::scheduler

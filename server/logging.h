// Process-wide logging setup: spdlog to stderr, as human text or as JSON lines (one
// object per line: time, level, msg), for log collectors.
//
// Thread safety: call SetupLogging once at startup, before other threads log.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace moe::server {

// format: "text" | "json"; level: "trace" | "debug" | "info" | "warn" | "error".
absl::Status SetupLogging(const std::string& format, const std::string& level);

}  // namespace moe::server

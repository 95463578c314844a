#include "server/http/api_error.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"

namespace moe::server::http {
namespace {

// The leading field name of "field: message", or "" when the message does not start
// with one (a field name has no spaces).
std::string LeadingField(const std::string& msg) {
  const size_t colon = msg.find(": ");
  if (colon == std::string::npos || colon == 0) return "";
  for (size_t i = 0; i < colon; ++i) {
    const char c = msg[i];
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '[' || c == ']')) return "";
  }
  return msg.substr(0, colon);
}

}  // namespace

ApiError MakeApiError(int http_status, std::string type, std::string message,
                      std::string param) {
  ApiError e;
  e.http_status = http_status;
  e.type = std::move(type);
  e.message = std::move(message);
  e.param = std::move(param);
  return e;
}

ApiError ApiErrorFromStatus(const absl::Status& status) {
  const std::string msg(status.message());
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return MakeApiError(400, "invalid_request_error", msg, LeadingField(msg));
    case absl::StatusCode::kNotFound:
      return MakeApiError(404, "not_found_error", msg, LeadingField(msg));
    case absl::StatusCode::kResourceExhausted:
      return MakeApiError(429, "rate_limit_error", msg);
    case absl::StatusCode::kUnavailable:
      return MakeApiError(503, "service_unavailable", msg);
    case absl::StatusCode::kUnauthenticated:
      return MakeApiError(401, "authentication_error", msg);
    case absl::StatusCode::kDeadlineExceeded:
      return MakeApiError(504, "timeout_error", msg);
    default:
      return MakeApiError(500, "internal_server_error", msg);
  }
}

std::string ApiErrorJson(const ApiError& e) {
  nlohmann::ordered_json err;
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.param);
  err["code"] = e.code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.code);
  nlohmann::ordered_json body;
  body["error"] = std::move(err);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace moe::server::http

// Errors in OpenAI's JSON shape:
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens",
//              "code": null}}
// and the HTTP status each absl::Status code maps to.
//
// Thread safety: pure functions.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace moe::server::http {

struct ApiError {
  int http_status = 500;
  std::string message;
  std::string type = "internal_server_error";
  std::string param;  // "" → null
  std::string code;   // "" → null
};

// INVALID_ARGUMENT → 400 invalid_request_error, NOT_FOUND → 404 not_found_error,
// RESOURCE_EXHAUSTED → 429 rate_limit_error, UNAVAILABLE → 503 service_unavailable,
// UNAUTHENTICATED → 401 authentication_error, others → 500. For 400 the param is the
// field name that starts the message ("max_tokens: ..." → "max_tokens"; a list index
// is kept: "messages[1].role").
ApiError ApiErrorFromStatus(const absl::Status& status);
ApiError MakeApiError(int http_status, std::string type, std::string message,
                      std::string param = "");

// The response body.
std::string ApiErrorJson(const ApiError& e);

}  // namespace moe::server::http

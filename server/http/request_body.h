// Reading a POST body with a hard size limit that holds whatever its transfer encoding.
// cpp-httplib 0.11 enforces set_payload_max_length only on Content-Length bodies: a
// chunked body, or a gzip / brotli one (which it decodes), is read whole into memory
// however large, so a 64 KiB gzip body could make the server hold gigabytes. Routes that
// take a body therefore read it through a ContentReader and this function.
//
// Thread safety: a pure function of its arguments; runs on the HTTP worker serving the
// request.
#pragma once

#include <cstddef>
#include <string>

#include <httplib.h>

#include "absl/status/status.h"

namespace moe::server::http {

// Reads the decoded body into `*body`, at most `limit` bytes. Errors, each naming
// "body": RESOURCE_EXHAUSTED when it is larger (the gateway answers 413),
// INVALID_ARGUMENT when it cannot be read (a malformed chunk or compressed stream) or is
// multipart/form-data (never an OpenAI request); UNIMPLEMENTED for a Content-Encoding
// other than gzip, deflate or br (the gateway answers 415).
absl::Status ReadLimitedBody(const httplib::Request& req, const httplib::ContentReader& reader,
                             size_t limit, std::string* body);

}  // namespace moe::server::http

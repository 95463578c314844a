#include "server/http/request_body.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace moe::server::http {

absl::Status ReadLimitedBody(const httplib::Request& req, const httplib::ContentReader& reader,
                             size_t limit, std::string* body) {
  body->clear();
  if (req.is_multipart_form_data()) {
    // httplib's multipart path would call receivers we do not give it.
    return absl::InvalidArgumentError("body: multipart/form-data is not accepted; send JSON");
  }
  // httplib decodes these; any other encoding would reach the JSON parser as is.
  const std::string encoding = absl::AsciiStrToLower(req.get_header_value("Content-Encoding"));
  if (!encoding.empty() && encoding != "identity" && encoding != "gzip" &&
      encoding != "deflate" && encoding != "br") {
    return absl::UnimplementedError(absl::StrCat(
        "body: Content-Encoding \"", encoding, "\" is not supported (gzip, deflate or br)"));
  }
  auto too_large = [limit] {
    return absl::ResourceExhaustedError(
        absl::StrCat("body: request body exceeds the server's size limit of ", limit, " bytes"));
  };
  bool exceeded = false;
  const bool ok = reader([&](const char* data, size_t n) {
    if (n > limit - body->size()) {
      exceeded = true;
      return false;
    }
    body->append(data, n);
    return true;
  });
  // A Content-Length over the limit is skipped by httplib without calling the receiver.
  uint64_t declared = 0;
  if (!ok && !req.has_header("Transfer-Encoding") &&
      absl::SimpleAtoi(req.get_header_value("Content-Length"), &declared) && declared > limit) {
    exceeded = true;
  }
  if (exceeded) return too_large();
  if (!ok) {
    return absl::InvalidArgumentError(
        "body: could not be read (a malformed chunked or compressed body, or the client "
        "stopped sending)");
  }
  return absl::OkStatus();
}

}  // namespace moe::server::http

// Small HTTP helpers for the gateway tests: one-shot requests through cpp-httplib's
// client, raw requests over a plain socket (for what httplib's client cannot send:
// several requests on one connection, chunked or gzip bodies), and SSE parsing.
//
// Thread safety: free functions with no shared state; Catch2 assertions inside them
// must run on the test's thread.
#pragma once

#include <string>
#include <vector>

#include <httplib.h>

#include <nlohmann/json.hpp>

namespace moe::testing {

struct Reply {
  int status = 0;
  std::string body;
  nlohmann::ordered_json json;  // discarded when the body is not JSON
  httplib::Headers headers;
};

Reply Post(int port, const std::string& path, const std::string& body,
           const httplib::Headers& headers = {});
Reply Get(int port, const std::string& path);

// The JSON payloads of an SSE body; checks the framing and the final [DONE].
std::vector<nlohmann::ordered_json> SseChunks(const std::string& body);

// A loopback TCP connection for hand-written HTTP/1.1 exchanges.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool Send(const std::string& bytes);
  // Reads one response with a Content-Length body; status 0 when the connection
  // closed or `timeout_s` passed first.
  Reply ReadResponse(int timeout_s = 30);

 private:
  int fd_ = -1;
  std::string buffered_;
};

// "POST <path> HTTP/1.1" with a Content-Length body and `extra_headers` ("Name: v\r\n"...).
std::string PostRequest(const std::string& path, const std::string& body,
                        const std::string& extra_headers = "");

}  // namespace moe::testing

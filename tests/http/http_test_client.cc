#include "tests/http/http_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace moe::testing {

using Json = nlohmann::ordered_json;

Reply Post(int port, const std::string& path, const std::string& body,
           const httplib::Headers& headers) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(60, 0);
  auto r = cli.Post(path.c_str(), headers, body, "application/json");
  REQUIRE(r);
  Reply out{r->status, r->body, Json(), r->headers};
  out.json = Json::parse(r->body, nullptr, false);
  return out;
}

Reply Get(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Get(path.c_str());
  REQUIRE(r);
  Reply out{r->status, r->body, Json(), r->headers};
  out.json = Json::parse(r->body, nullptr, false);
  return out;
}

std::vector<Json> SseChunks(const std::string& body) {
  std::vector<Json> chunks;
  bool done = false;
  for (absl::string_view ev : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    if (absl::StartsWith(ev, ":")) continue;  // keep-alive comment
    REQUIRE(absl::StartsWith(ev, "data: "));
    CHECK_FALSE(done);
    ev.remove_prefix(6);
    if (ev == "[DONE]") {
      done = true;
      continue;
    }
    Json j = Json::parse(ev.begin(), ev.end(), nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    chunks.push_back(std::move(j));
  }
  CHECK(done);
  CHECK(absl::EndsWith(body, "data: [DONE]\n\n"));
  return chunks;
}

RawConnection::RawConnection(int port) {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd_ >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) close(fd_);
}

bool RawConnection::Send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

Reply RawConnection::ReadResponse(int timeout_s) {
  Reply out;
  size_t header_end = std::string::npos;
  size_t content_length = 0;
  char buf[65536];
  const auto deadline_ms = static_cast<long>(timeout_s) * 1000;
  long waited_ms = 0;
  while (true) {
    if (header_end == std::string::npos) {
      header_end = buffered_.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::vector<std::string> lines =
            absl::StrSplit(buffered_.substr(0, header_end), "\r\n");
        std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
        if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &out.status)) {
          out.status = 0;
          return out;
        }
        for (size_t i = 1; i < lines.size(); ++i) {
          const size_t colon = lines[i].find(':');
          if (colon == std::string::npos) continue;
          std::string name = lines[i].substr(0, colon);
          std::string value(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
          if (absl::EqualsIgnoreCase(name, "Content-Length")) {
            (void)absl::SimpleAtoi(value, &content_length);
          }
          out.headers.emplace(std::move(name), std::move(value));
        }
      }
    }
    if (header_end != std::string::npos && buffered_.size() >= header_end + 4 + content_length) {
      out.body = buffered_.substr(header_end + 4, content_length);
      buffered_.erase(0, header_end + 4 + content_length);
      out.json = Json::parse(out.body, nullptr, false);
      return out;
    }
    pollfd p{fd_, POLLIN, 0};
    if (waited_ms >= deadline_ms || poll(&p, 1, 100) < 0) break;
    if (!(p.revents & (POLLIN | POLLHUP))) {
      waited_ms += 100;
      continue;
    }
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) break;
    buffered_.append(buf, static_cast<size_t>(n));
  }
  out.status = 0;
  return out;
}

std::string PostRequest(const std::string& path, const std::string& body,
                        const std::string& extra_headers) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace moe::testing

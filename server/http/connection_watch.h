// Noticing that the client of a non-streaming request has gone. cpp-httplib 0.11 hands
// handlers no socket and writes nothing until the handler returns, so a client that
// disconnects while a long completion runs would otherwise keep its sequences running to
// the end (vLLM aborts them). ConnectionWatch finds the connection's socket by its
// addresses (Request::local_port / remote_addr / remote_port) among this process's
// descriptors, then polls it for the peer's hang-up.
//
// Thread safety: one watch belongs to the handler thread serving its request; the
// socket stays open (httplib closes it only after the handler returns).
#pragma once

#include <httplib.h>

namespace moe::server::http {

class ConnectionWatch {
 public:
  // Finds the request's socket; when none is found (e.g. an in-process transport),
  // ClientGone() is always false.
  explicit ConnectionWatch(const httplib::Request& req);
  // True once the client closed or reset its side of the connection. Never blocks.
  bool ClientGone() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace moe::server::http

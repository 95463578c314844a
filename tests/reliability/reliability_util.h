// Helpers for the reliability tests: an in-process Server (the moe_server minus main)
// or the real moe_server binary as a child process, on OS-chosen loopback ports, serving
// the tiny OLMoE checkpoint on CPU; greedy gRPC streams; a self-signed certificate.
//
// Thread safety: a TestServer / ServerProcess is driven by the test thread; Stream() may
// run on many threads at once (each call has its own ClientContext).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/model_loader.h"
#include "moe/v1/inference.grpc.pb.h"
#include "server/server.h"
#include "tests/server/server_test_util.h"

namespace moe::reliability {

// Relative to the runfiles root (Bazel's test working directory).
inline constexpr char kServerBinary[] = "server/moe_server";

// The in-process server helpers are the server tests' own (tests/server).
using server::testing::kTinyModel;  // context 1024, vocab 1000
using server::testing::SlowModelSource;
using server::testing::StartServer;
using server::testing::TestServer;
using server::testing::TinyModelOptions;
using server::testing::WaitForAllBlocksFree;

moe::v1::GenerateRequest GreedyIds(int prompt_len, int salt, int max_tokens);

struct StreamResult {
  std::vector<int32_t> tokens;
  bool has_complete = false;
  moe::v1::Complete complete;
  bool has_error_event = false;
  grpc::Status status;
  double seconds = 0;
};
// One Generate to its end (hard deadline `timeout`). `on_chunk(n, ctx)` runs after the
// n-th chunk and may cancel.
StreamResult Stream(moe::v1::Inference::Stub& stub, const moe::v1::GenerateRequest& req,
                    absl::Duration timeout = absl::Seconds(120),
                    const std::function<void(int, grpc::ClientContext&)>& on_chunk = {},
                    const std::string& api_key = "");


// The moe_server binary as a child process; stdout/stderr go to files in a temp dir.
class ServerProcess {
 public:
  // Starts `server/moe_server args...` (plus --grpc-port 0 --http-port 0 unless given).
  explicit ServerProcess(std::vector<std::string> args);
  ~ServerProcess();  // SIGKILLs a process still running
  // Waits until both "listening" lines appear; false if it exited first or on timeout.
  bool WaitListening(absl::Duration timeout);
  // Waits until gRPC health-equivalent readiness: ModelInfo answers OK (with `api_key`).
  bool WaitServing(absl::Duration timeout, const std::string& api_key = "",
                   std::shared_ptr<grpc::ChannelCredentials> creds = nullptr);
  // Exit status (WEXITSTATUS, or 128+signal), or -1 on timeout.
  int WaitExit(absl::Duration timeout);
  void Signal(int sig);
  pid_t pid() const { return pid_; }
  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  std::string Stdout() const;
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int exit_code_ = -1;
  std::string dir_;
  int grpc_port_ = 0;
  int http_port_ = 0;
};

// A fresh empty directory under $TEST_TMPDIR.
std::string MakeTempDir(const std::string& name);
std::string ReadFileOrEmpty(const std::string& path);
// Self-signed certificate (CN localhost, SAN DNS:localhost + IP:127.0.0.1) made with the
// openssl CLI; returns {cert path, key path}.
absl::StatusOr<std::pair<std::string, std::string>> MakeSelfSignedCert(const std::string& dir);
// Copies the tiny model's files into a new temp dir and returns it.
std::string CopyTinyModel(const std::string& name);

}  // namespace moe::reliability

// moe_server: parse options, start the server, wait for SIGTERM/SIGINT, drain, exit 0.
#include <csignal>
#include <cstdio>
#include <ctime>

#include <spdlog/spdlog.h>

#include "absl/time/time.h"
#include "server/logging.h"
#include "server/server.h"
#include "server/server_options.h"

int main(int argc, char** argv) {
  auto options = moe::server::ParseServerFlags(argc, argv);
  if (!options.ok()) {
    if (options.status().code() == absl::StatusCode::kCancelled) {  // --help
      std::printf("%s", std::string(options.status().message()).c_str());
      return 0;
    }
    std::fprintf(stderr, "moe_server: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  if (auto s = moe::server::SetupLogging(options->log_format, options->log_level); !s.ok()) {
    std::fprintf(stderr, "moe_server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  // Block the stop signals in every thread; the main thread collects them below. A shell
  // starts background jobs with SIGINT ignored, and an ignored signal is discarded rather
  // than queued, so restore the default disposition first.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = moe::server::Server::BuildAndStart(*options);
  if (!server.ok()) {
    spdlog::error("{}", server.status().ToString());
    return 1;
  }
  std::printf("moe_server listening on %s (gRPC)\n", (*server)->address().c_str());
  if ((*server)->http_port() >= 0) {
    std::printf("moe_server listening on http://%s:%d (OpenAI-compatible HTTP)\n",
                options->host.c_str(), (*server)->http_port());
  }
  std::fflush(stdout);

  int exit_code = 0;
  while (true) {
    timespec tick{0, 200 * 1000 * 1000};
    const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("{} received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if ((*server)->load_done()) {
      absl::Status s = (*server)->WaitUntilReady(absl::ZeroDuration());
      if (!s.ok()) {
        exit_code = 1;
        break;
      }
    }
  }
  (*server)->Shutdown(absl::Seconds(options->drain_timeout_s));
  return exit_code;
}

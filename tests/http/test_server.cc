// A standalone HTTP test server (independent of server/main.cc): loads a model on the
// CPU backend, starts Scheduler + HttpGateway on 127.0.0.1 and an OS-chosen port, prints
// "listening on port N" and serves until SIGTERM or SIGINT.
//
// Usage: test_server [model_dir] [chat_template_file] [--enable-auto-tool-choice]
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "tests/http/test_env.h"

int main(int argc, char** argv) {
  // Block the stop signals before any thread starts, so sigwait below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  moe::testing::HttpTestEnvOptions o;
  if (argc > 1) o.model_dir = argv[1];
  if (argc > 2) o.chat_template_file = argv[2];
  if (argc > 3 && std::string(argv[3]) == "--enable-auto-tool-choice") {
    o.enable_auto_tool_choice = true;
  }
  auto env = moe::testing::StartHttpTestEnv(o);
  if (!env.ok()) {
    std::fprintf(stderr, "test_server: %s\n", env.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on port %d\n", (*env)->gateway->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}

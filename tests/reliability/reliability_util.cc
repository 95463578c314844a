#include "tests/reliability/reliability_util.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace moe::reliability {
namespace fs = std::filesystem;

moe::v1::GenerateRequest GreedyIds(int prompt_len, int salt, int max_tokens) {
  moe::v1::GenerateRequest req;
  for (int i = 0; i < prompt_len; ++i) {
    req.mutable_token_ids()->add_ids(1 + (i * 37 + salt * 101) % 997);
  }
  req.mutable_sampling()->set_max_tokens(max_tokens);
  req.mutable_sampling()->set_temperature(0.f);
  req.mutable_sampling()->set_ignore_eos(true);
  return req;
}

StreamResult Stream(moe::v1::Inference::Stub& stub, const moe::v1::GenerateRequest& req,
                    absl::Duration timeout,
                    const std::function<void(int, grpc::ClientContext&)>& on_chunk,
                    const std::string& api_key) {
  StreamResult r;
  const absl::Time t0 = absl::Now();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(t0 + timeout));
  if (!api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + api_key);
  auto reader = stub.Generate(&ctx, req);
  moe::v1::GenerateResponse resp;
  int chunks = 0;
  while (reader->Read(&resp)) {
    if (resp.has_chunk()) {
      r.tokens.insert(r.tokens.end(), resp.chunk().token_ids().begin(),
                      resp.chunk().token_ids().end());
      if (on_chunk) on_chunk(++chunks, ctx);
    } else if (resp.has_complete()) {
      r.has_complete = true;
      r.complete = resp.complete();
    } else if (resp.has_error()) {
      r.has_error_event = true;
    }
  }
  r.status = reader->Finish();
  r.seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  return r;
}

std::string MakeTempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  fs::path dir = fs::path(base ? base : "/tmp") / absl::StrCat(name, "-", getpid(), "-",
                                                               absl::ToUnixNanos(absl::Now()));
  fs::create_directories(dir);
  return dir.string();
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ServerProcess::ServerProcess(std::vector<std::string> args) {
  dir_ = MakeTempDir("server");
  bool has_grpc = false, has_http = false;
  for (const auto& a : args) {
    has_grpc |= a == "--grpc-port";
    has_http |= a == "--http-port";
  }
  std::vector<std::string> argv = {kServerBinary};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!has_grpc) argv.insert(argv.end(), {"--grpc-port", "0"});
  if (!has_http) argv.insert(argv.end(), {"--http-port", "0"});
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string out = dir_ + "/stdout", err = dir_ + "/stderr";
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = posix_spawn(&pid_, kServerBinary, &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
}

ServerProcess::~ServerProcess() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    int st;
    waitpid(pid_, &st, 0);
  }
}

std::string ServerProcess::Stdout() const { return ReadFileOrEmpty(dir_ + "/stdout"); }
std::string ServerProcess::Stderr() const { return ReadFileOrEmpty(dir_ + "/stderr"); }

bool ServerProcess::WaitListening(absl::Duration timeout) {
  const std::regex grpc_re(R"(listening on [0-9.]+:(\d+) \(gRPC\))");
  const std::regex http_re(R"(listening on https?://[0-9.]+:(\d+))");
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    const std::string out = Stdout();
    std::smatch m;
    if (std::regex_search(out, m, grpc_re)) grpc_port_ = std::stoi(m[1]);
    if (std::regex_search(out, m, http_re)) http_port_ = std::stoi(m[1]);
    if (grpc_port_ > 0 && http_port_ > 0) return true;
    if (WaitExit(absl::ZeroDuration()) != -1) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

bool ServerProcess::WaitServing(absl::Duration timeout, const std::string& api_key,
                                std::shared_ptr<grpc::ChannelCredentials> creds) {
  if (grpc_port_ == 0 && !WaitListening(timeout)) return false;
  if (creds == nullptr) creds = grpc::InsecureChannelCredentials();
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port_), creds);
  auto stub = moe::v1::Inference::NewStub(channel);
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (!api_key.empty()) ctx.AddMetadata("authorization", "Bearer " + api_key);
    moe::v1::ModelInfoResponse info;
    if (stub->ModelInfo(&ctx, moe::v1::ModelInfoRequest(), &info).ok()) return true;
    if (WaitExit(absl::ZeroDuration()) != -1) return false;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

int ServerProcess::WaitExit(absl::Duration timeout) {
  if (exited_) return exit_code_;
  const absl::Time end = absl::Now() + timeout;
  while (true) {
    int st = 0;
    const pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      exit_code_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return exit_code_;
    }
    if (absl::Now() >= end) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

void ServerProcess::Signal(int sig) {
  if (!exited_) kill(pid_, sig);
}

absl::StatusOr<std::pair<std::string, std::string>> MakeSelfSignedCert(const std::string& dir) {
  const std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  const std::string cmd = absl::StrCat(
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout ", key,
      " -out ", cert, " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >", dir,
      "/openssl.log 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("openssl failed: ", ReadFileOrEmpty(dir + "/openssl.log")));
  }
  return std::make_pair(cert, key);
}

std::string CopyTinyModel(const std::string& name) {
  const std::string dir = MakeTempDir(name);
  for (const auto& e : fs::directory_iterator(kTinyModel)) {
    fs::copy_file(e.path(), fs::path(dir) / e.path().filename(),
                  fs::copy_options::overwrite_existing);
    fs::permissions(fs::path(dir) / e.path().filename(), fs::perms::owner_read | fs::perms::owner_write,
                    fs::perm_options::add);
  }
  return dir;
}

}  // namespace moe::reliability

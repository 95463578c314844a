// moe_soak: starts moe_server on loopback (OS-chosen ports) and runs N concurrent
// streaming clients against it for a duration, gRPC and HTTP mixed. Some clients cancel
// mid-stream, some (gRPC) use short deadlines. Checks, and exits non-zero unless all hold:
//   - every request completes or fails with the reason its client asked for (its own
//     cancel or deadline); a stream past the hard client-side timeout counts as hung;
//   - the server's VmRSS after the load grows < --max-rss-growth over the warm-up value;
//   - the server's open fds return to their pre-load count after the load.
// Bounded in count (--clients) and time (--duration-s); loopback only.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "moe/v1/inference.grpc.pb.h"

extern char** environ;

namespace {

struct Options {
  std::string server = "server/moe_server";
  std::string model = "tests/data/models/olmoe";
  int clients = 64;
  double duration_s = 60;
  double warmup_s = 10;
  double http_fraction = 0.5;
  double cancel_fraction = 0.15;
  double deadline_fraction = 0.1;  // of gRPC clients
  int max_tokens = 48;
  double hang_timeout_s = 60;
  double max_rss_growth = 0.05;
  int server_threads = 0;
  std::string report;  // JSON summary file
};

long ReadStatusKb(pid_t pid, const char* key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key)));
  }
  return -1;
}

int CountFds(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

enum class Role { kNormal, kCancel, kDeadline };

struct Tally {
  std::mutex mu;
  std::map<std::string, long> outcomes;  // "ok", "cancelled (asked)", ... "UNEXPECTED: ..."
  long unexpected = 0, hung = 0, total = 0, tokens = 0;
  void Add(const std::string& what, bool expected, bool is_hung, int toks) {
    std::lock_guard<std::mutex> l(mu);
    ++outcomes[what];
    ++total;
    tokens += toks;
    if (!expected) ++unexpected;
    if (is_hung) ++hung;
  }
};

void GrpcRequest(moe::v1::Inference::Stub& stub, Role role, std::mt19937& rng, const Options& o,
                 Tally& tally) {
  moe::v1::GenerateRequest req;
  const int len = 4 + rng() % 28;
  for (int i = 0; i < len; ++i) req.mutable_token_ids()->add_ids(2 + rng() % 990);
  req.mutable_sampling()->set_max_tokens(o.max_tokens);
  req.mutable_sampling()->set_ignore_eos(true);
  req.mutable_sampling()->set_temperature(0.7f);
  grpc::ClientContext ctx;
  const bool short_deadline = role == Role::kDeadline;
  const auto limit = short_deadline ? std::chrono::milliseconds(20 + rng() % 200)
                                    : std::chrono::milliseconds(int(o.hang_timeout_s * 1000));
  ctx.set_deadline(std::chrono::system_clock::now() + limit);
  const int cancel_after = 1 + rng() % std::max(1, o.max_tokens / 2);
  auto reader = stub.Generate(&ctx, req);
  moe::v1::GenerateResponse resp;
  int tokens = 0, chunks = 0;
  bool complete = false, cancelled = false;
  while (reader->Read(&resp)) {
    if (resp.has_chunk()) {
      tokens += resp.chunk().token_ids_size();
      if (role == Role::kCancel && ++chunks == cancel_after && !cancelled) {
        ctx.TryCancel();
        cancelled = true;
      }
    }
    if (resp.has_complete()) complete = true;
  }
  const grpc::Status st = reader->Finish();
  if (st.ok() && complete && tokens == o.max_tokens) {
    tally.Add("grpc ok", true, false, tokens);
  } else if (cancelled && st.error_code() == grpc::StatusCode::CANCELLED) {
    tally.Add("grpc cancelled (asked)", true, false, tokens);
  } else if (short_deadline && st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    tally.Add("grpc deadline (asked)", true, false, tokens);
  } else if (!short_deadline && st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    tally.Add("grpc HUNG (hard timeout)", false, true, tokens);
  } else {
    tally.Add(absl::StrCat("grpc UNEXPECTED: ", st.error_code(), " ", st.error_message(),
                           " complete=", complete, " tokens=", tokens),
              false, false, tokens);
  }
}

void HttpRequest(int port, Role role, std::mt19937& rng, const Options& o, Tally& tally) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_keep_alive(false);
  cli.set_read_timeout(static_cast<time_t>(o.hang_timeout_s), 0);
  cli.set_connection_timeout(10, 0);
  nlohmann::json prompt = nlohmann::json::array();
  const int len = 4 + rng() % 28;
  for (int i = 0; i < len; ++i) prompt.push_back(2 + rng() % 990);
  nlohmann::json body = {{"prompt", prompt},   {"max_tokens", o.max_tokens},
                         {"ignore_eos", true}, {"stream", true},
                         {"temperature", 0.7}, {"stream_options", {{"include_usage", true}}}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  const int cancel_after = 1 + rng() % std::max(1, o.max_tokens / 2);
  int events = 0;
  bool done = false, cancelled = false, error_event = false;
  std::string pending;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    pending.append(data, n);
    size_t pos;
    while ((pos = pending.find("\n\n")) != std::string::npos) {
      const std::string ev = pending.substr(0, pos);
      pending.erase(0, pos + 2);
      if (ev.rfind("data: [DONE]", 0) == 0) done = true;
      else if (ev.find("\"error\"") != std::string::npos) error_event = true;
      else if (ev.rfind("data:", 0) == 0) ++events;
    }
    if (role == Role::kCancel && events >= cancel_after) {
      cancelled = true;
      return false;  // closes the connection mid-stream
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const absl::Time t0 = absl::Now();
  const bool sent = cli.send(req, res, err);
  const double took_s = absl::ToDoubleSeconds(absl::Now() - t0);
  if (sent && res.status == 200 && done && !error_event) {
    tally.Add("http ok", true, false, events);
  } else if (cancelled && err == httplib::Error::Canceled) {
    tally.Add("http cancelled (asked)", true, false, events);
  } else if (err == httplib::Error::Read && took_s >= o.hang_timeout_s) {
    tally.Add("http HUNG (read timeout)", false, true, events);
  } else {
    tally.Add(absl::StrCat("http UNEXPECTED: status ", res.status, " error ",
                           httplib::to_string(err), " done=", done, " events=", events, " after ", static_cast<int>(took_s), " s"),
              false, false, events);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"moe_soak: bounded loopback soak test of moe_server"};
  app.add_option("--server", o.server, "moe_server binary");
  app.add_option("--model", o.model, "model directory");
  app.add_option("--clients", o.clients, "concurrent streaming clients");
  app.add_option("--duration-s", o.duration_s, "load duration (seconds, after warm-up)");
  app.add_option("--warmup-s", o.warmup_s, "warm-up load before the RSS baseline");
  app.add_option("--http-fraction", o.http_fraction, "share of clients using HTTP/SSE");
  app.add_option("--cancel-fraction", o.cancel_fraction, "share of clients cancelling mid-stream");
  app.add_option("--deadline-fraction", o.deadline_fraction, "share of gRPC clients with short deadlines");
  app.add_option("--max-tokens", o.max_tokens, "tokens per request");
  app.add_option("--hang-timeout-s", o.hang_timeout_s, "hard per-stream client timeout (counts as hung)");
  app.add_option("--max-rss-growth", o.max_rss_growth, "allowed VmRSS growth after warm-up (fraction)");
  app.add_option("--server-threads", o.server_threads, "moe_server --num-threads (0 = all cores)");
  app.add_option("--report", o.report, "write a JSON summary here");
  CLI11_PARSE(app, argc, argv);

  const std::string dir = std::filesystem::temp_directory_path() /
                          absl::StrCat("moe_soak_", getpid());
  std::filesystem::create_directories(dir);
  std::vector<std::string> sargs = {
      o.server, "--model", o.model, "--device", "cpu", "--host", "127.0.0.1", "--grpc-port", "0",
      "--http-port", "0", "--num-kv-blocks", "1024", "--max-num-seqs", "64",
      "--max-queue", std::to_string(o.clients * 2 + 16), "--num-threads",
      std::to_string(o.server_threads), "--log-level", "warn", "--drain-timeout", "30"};
  std::vector<char*> cargv;
  for (auto& a : sargs) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, (dir + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, (dir + "/stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  const int spawned = posix_spawn(&pid, o.server.c_str(), &fa, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);  // the actions hold copies of both paths
  if (spawned != 0) {
    std::fprintf(stderr, "moe_soak: cannot start %s\n", o.server.c_str());
    return 2;
  }
  int grpc_port = 0, http_port = 0;
  const std::regex grpc_re(R"(listening on [0-9.]+:(\d+) \(gRPC\))");
  const std::regex http_re(R"(listening on http://[0-9.]+:(\d+))");
  for (int i = 0; i < 3000 && (grpc_port == 0 || http_port == 0); ++i) {
    const std::string out = Slurp(dir + "/stdout");
    std::smatch m;
    if (std::regex_search(out, m, grpc_re)) grpc_port = std::stoi(m[1]);
    if (std::regex_search(out, m, http_re)) http_port = std::stoi(m[1]);
    absl::SleepFor(absl::Milliseconds(20));
  }
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "moe_soak: %s\n%s", why.c_str(), Slurp(dir + "/stderr").c_str());
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return 1;
  };
  if (grpc_port == 0 || http_port == 0) return fail("server did not start");
  {
    auto probe = grpc::CreateChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                     grpc::InsecureChannelCredentials());
    auto stub = moe::v1::Inference::NewStub(probe);
    bool ready = false;
    for (int i = 0; i < 600 && !ready; ++i) {
      grpc::ClientContext ctx;
      moe::v1::ModelInfoResponse info;
      ready = stub->ModelInfo(&ctx, {}, &info).ok();
      if (!ready) absl::SleepFor(absl::Milliseconds(100));
    }
    if (!ready) return fail("model did not load");
  }
  // Baseline fds once the probe's connection is gone (the count settles).
  int fds_before = CountFds(pid);
  for (int i = 0; i < 50; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    const int n = CountFds(pid);
    if (n == fds_before) break;
    fds_before = n;
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 8; ++i) {
    grpc::ChannelArguments ca;
    ca.SetInt("soak.channel", i);  // distinct channels, not one shared subchannel
    channels.push_back(grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", grpc_port),
                                                 grpc::InsecureChannelCredentials(), ca));
  }
  const long rss_start_kb = ReadStatusKb(pid, "VmRSS:");

  Tally warm, load;
  std::atomic<int> phase{0};  // 0 warm-up, 1 measured load, 2 stop
  std::vector<std::thread> threads;
  const int n_http = static_cast<int>(o.clients * o.http_fraction);
  for (int c = 0; c < o.clients; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(c * 7919 + 1);
      const bool http = c < n_http;
      const double u = (c * 0.6180339887) - static_cast<int>(c * 0.6180339887);
      Role role = u < o.cancel_fraction ? Role::kCancel
                  : (!http && u < o.cancel_fraction + o.deadline_fraction) ? Role::kDeadline
                                                                           : Role::kNormal;
      auto stub = moe::v1::Inference::NewStub(channels[c % channels.size()]);
      while (phase.load() < 2) {
        Tally& t = phase.load() == 0 ? warm : load;
        if (http) HttpRequest(http_port, role, rng, o, t);
        else GrpcRequest(*stub, role, rng, o, t);
      }
    });
  }
  absl::SleepFor(absl::Seconds(o.warmup_s));
  const long rss_warm_kb = ReadStatusKb(pid, "VmRSS:");
  phase = 1;
  long rss_max_kb = rss_warm_kb;
  const absl::Time t0 = absl::Now();
  while (absl::Now() - t0 < absl::Seconds(o.duration_s)) {
    absl::SleepFor(absl::Seconds(1));
    rss_max_kb = std::max(rss_max_kb, ReadStatusKb(pid, "VmRSS:"));
  }
  phase = 2;
  for (auto& t : threads) t.join();
  const double load_s = absl::ToDoubleSeconds(absl::Now() - t0);
  const long rss_end_kb = ReadStatusKb(pid, "VmRSS:");
  channels.clear();  // closes the gRPC connections
  int fds_after = CountFds(pid);
  for (int i = 0; i < 100 && fds_after != fds_before; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    fds_after = CountFds(pid);
  }
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  const int exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);

  const double growth = rss_warm_kb > 0 ? double(rss_end_kb - rss_warm_kb) / rss_warm_kb : 0;
  const double growth_max = rss_warm_kb > 0 ? double(rss_max_kb - rss_warm_kb) / rss_warm_kb : 0;
  const long unexpected = warm.unexpected + load.unexpected;
  const long hung = warm.hung + load.hung;
  nlohmann::json r;
  r["clients"] = o.clients;
  r["http_clients"] = n_http;
  r["duration_s"] = load_s;
  r["warmup_s"] = o.warmup_s;
  r["max_tokens"] = o.max_tokens;
  r["requests_warmup"] = warm.total;
  r["requests_load"] = load.total;
  r["tokens_load"] = load.tokens;
  r["tokens_per_s"] = load.tokens / load_s;
  std::map<std::string, long> outcomes;
  for (auto* t : {&warm, &load}) {
    for (auto& [k, v] : t->outcomes) outcomes[k] += v;
  }
  r["outcomes"] = outcomes;
  r["unexpected"] = unexpected;
  r["hung"] = hung;
  r["rss_kb"] = {{"start", rss_start_kb}, {"after_warmup", rss_warm_kb}, {"max", rss_max_kb},
                 {"end", rss_end_kb}};
  r["rss_growth_end"] = growth;
  r["rss_growth_max"] = growth_max;
  r["fds"] = {{"before", fds_before}, {"after", fds_after}};
  r["server_exit_code"] = exit_code;
  const bool pass = unexpected == 0 && hung == 0 && growth_max < o.max_rss_growth &&
                    fds_after == fds_before && exit_code == 0 && load.total > 0;
  r["pass"] = pass;
  std::printf("%s\n", r.dump(2).c_str());
  if (!o.report.empty()) std::ofstream(o.report) << r.dump(2) << "\n";
  std::filesystem::remove_all(dir);
  return pass ? 0 : 1;
}

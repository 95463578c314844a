// Security through the real moe_server: API key on both frontends, TLS on both from
// certificate files (a self-signed certificate made here), request limits, and no
// request field used as a file path.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/reliability/reliability_util.h"

namespace moe::reliability {
namespace {

std::vector<std::string> BaseArgs() {
  return {"--model", kTinyModel, "--device", "cpu", "--num-threads", "1", "--num-kv-blocks",
          "128", "--log-level", "warn"};
}

std::unique_ptr<moe::v1::Inference::Stub> Stub(int port) {
  return moe::v1::Inference::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                         grpc::InsecureChannelCredentials()));
}

TEST_CASE("API key: gRPC UNAUTHENTICATED and HTTP 401 without it, served with it") {
  auto args = BaseArgs();
  args.insert(args.end(), {"--api-key", "s3cret"});
  ServerProcess p(args);
  REQUIRE(p.WaitServing(absl::Seconds(60), "s3cret"));
  auto stub = Stub(p.grpc_port());
  REQUIRE(Stream(*stub, GreedyIds(4, 1, 2)).status.error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(Stream(*stub, GreedyIds(4, 1, 2), absl::Seconds(30), {}, "wrong").status.error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);
  StreamResult ok = Stream(*stub, GreedyIds(4, 1, 2), absl::Seconds(30), {}, "s3cret");
  REQUIRE(ok.status.ok());
  REQUIRE(ok.tokens.size() == 2);

  httplib::Client cli("127.0.0.1", p.http_port());
  const std::string body = R"({"prompt": "hi", "max_tokens": 2})";
  auto no_key = cli.Post("/v1/completions", body, "application/json");
  REQUIRE(no_key);
  REQUIRE(no_key->status == 401);
  auto bad_key = cli.Post("/v1/completions", {{"Authorization", "Bearer wrong"}}, body,
                          "application/json");
  REQUIRE(bad_key);
  REQUIRE(bad_key->status == 401);
  auto good = cli.Post("/v1/completions", {{"Authorization", "Bearer s3cret"}}, body,
                       "application/json");
  REQUIRE(good);
  REQUIRE(good->status == 200);
}

TEST_CASE("TLS from certificate files on gRPC and HTTP; plaintext clients are refused") {
  auto cert = MakeSelfSignedCert(MakeTempDir("tls"));
  REQUIRE(cert.ok());
  const std::string pem = ReadFileOrEmpty(cert->first);
  auto args = BaseArgs();
  args.insert(args.end(), {"--tls-cert", cert->first, "--tls-key", cert->second});
  ServerProcess p(args);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = pem;
  auto creds = grpc::SslCredentials(ssl);
  REQUIRE(p.WaitServing(absl::Seconds(60), "", creds));

  auto tls_stub = moe::v1::Inference::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", p.grpc_port()), creds));
  StreamResult r = Stream(*tls_stub, GreedyIds(4, 2, 3));
  REQUIRE(r.status.ok());
  REQUIRE(r.tokens.size() == 3);
  StreamResult plain = Stream(*Stub(p.grpc_port()), GreedyIds(4, 2, 3), absl::Seconds(5));
  REQUIRE_FALSE(plain.status.ok());
  // A client that does not trust the certificate is refused too.
  auto untrusting = moe::v1::Inference::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", p.grpc_port()), grpc::SslCredentials({})));
  REQUIRE_FALSE(Stream(*untrusting, GreedyIds(4, 2, 3), absl::Seconds(5)).status.ok());

  httplib::SSLClient https("127.0.0.1", p.http_port());
  https.set_ca_cert_path(cert->first.c_str());
  https.enable_server_certificate_verification(true);
  auto res = https.Post("/v1/completions", R"({"prompt": "hi", "max_tokens": 2})",
                        "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  httplib::Client http("127.0.0.1", p.http_port());
  http.set_connection_timeout(5);
  http.set_read_timeout(5);
  auto plain_res = http.Get("/health");
  REQUIRE((!plain_res || plain_res->status != 200));
}

TEST_CASE("Limits: body size, prompt length, max_tokens; no field names a file") {
  auto args = BaseArgs();
  args.insert(args.end(), {"--max-body-mb", "1", "--max-prompt-tokens", "64", "--chat-template",
                           "tests/data/chat_templates/olmoe_1b_7b_0924_instruct.jinja"});
  ServerProcess p(args);
  REQUIRE(p.WaitServing(absl::Seconds(60)));
  auto stub = Stub(p.grpc_port());
  httplib::Client cli("127.0.0.1", p.http_port());

  // Body: 2 MiB against a 1 MiB limit.
  std::string big = R"({"prompt": ")" + std::string(2 << 20, 'a') + R"(", "max_tokens": 1})";
  auto too_big = cli.Post("/v1/completions", big, "application/json");
  REQUIRE(too_big);
  REQUIRE(too_big->status == 413);

  // Prompt: 65 tokens against --max-prompt-tokens 64 (64 passes).
  StreamResult long_prompt = Stream(*stub, GreedyIds(65, 3, 1));
  REQUIRE(long_prompt.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE_THAT(long_prompt.status.error_message(), Catch::Contains("max_prompt_tokens"));
  REQUIRE(Stream(*stub, GreedyIds(64, 3, 1)).status.ok());
  nlohmann::json ids = nlohmann::json::array();
  for (int i = 0; i < 65; ++i) ids.push_back(5 + i);
  auto http_long = cli.Post("/v1/completions",
                            nlohmann::json({{"prompt", ids}, {"max_tokens", 1}}).dump(),
                            "application/json");
  REQUIRE(http_long);
  REQUIRE(http_long->status == 413);
  REQUIRE_THAT(http_long->body, Catch::Contains("max_prompt_tokens"));

  // max_tokens: prompt + max_tokens above the context (1024).
  StreamResult too_many = Stream(*stub, GreedyIds(10, 4, 1015));
  REQUIRE(too_many.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE_THAT(too_many.status.error_message(), Catch::Contains("max_tokens"));
  REQUIRE(Stream(*stub, GreedyIds(10, 4, 1014)).status.ok());
  auto http_many = cli.Post("/v1/completions",
                            R"({"prompt": [5, 6, 7], "max_tokens": 1022})", "application/json");
  REQUIRE(http_many);
  REQUIRE(http_many->status == 400);

  // File paths: chat_template (and other path-like fields) in a request body are not
  // read: the prompt is exactly the one the server's --chat-template renders without them.
  auto chat = [&](const nlohmann::json& extra) {
    nlohmann::json b = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                        {"max_tokens", 1}};
    b.update(extra);
    auto res = cli.Post("/v1/chat/completions", b.dump(), "application/json");
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 200);
    return nlohmann::json::parse(res->body)["usage"]["prompt_tokens"].get<int>();
  };
  const int plain_tokens = chat(nlohmann::json::object());
  CHECK(chat({{"chat_template", "/etc/passwd"}}) == plain_tokens);
  CHECK(chat({{"chat_template", "{% include '/etc/passwd' %}"}}) == plain_tokens);
  CHECK(chat({{"model_path", "/etc/passwd"}, {"tokenizer", "/etc"}}) == plain_tokens);
}

}  // namespace
}  // namespace moe::reliability

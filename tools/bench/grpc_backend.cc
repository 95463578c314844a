#include "tools/bench/grpc_backend.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "moe/v1/inference.grpc.pb.h"

namespace moe::bench {
namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN_CODE";
  }
}

std::chrono::system_clock::time_point Deadline(double timeout_s) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(timeout_s));
}

}  // namespace

struct GrpcBackend::Impl {
  std::unique_ptr<moe::v1::Inference::Stub> stub;
  std::atomic<uint64_t> next_id{0};
};

GrpcBackend::GrpcBackend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcBackend::~GrpcBackend() = default;

std::unique_ptr<GrpcBackend> GrpcBackend::Create(const std::string& endpoint) {
  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto impl = std::make_unique<Impl>();
  impl->stub = moe::v1::Inference::NewStub(channel);
  return std::unique_ptr<GrpcBackend>(new GrpcBackend(std::move(impl)));
}

absl::Status GrpcBackend::Generate(const BenchRequest& request, const GenerateOptions& options,
                                   StreamListener& listener) {
  moe::v1::GenerateRequest req;
  req.set_request_id(absl::StrCat("bench-", request.index, "-", impl_->next_id.fetch_add(1)));
  if (!request.prompt_ids.empty()) {
    req.mutable_token_ids()->mutable_ids()->Add(request.prompt_ids.begin(), request.prompt_ids.end());
  } else {
    req.set_text(request.prompt_text);
  }
  auto* sampling = req.mutable_sampling();
  sampling->set_max_tokens(request.output_len);
  sampling->set_temperature(0.f);
  sampling->set_ignore_eos(options.ignore_eos);

  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(options.timeout_s));
  auto reader = impl_->stub->Generate(&ctx, req);
  moe::v1::GenerateResponse resp;
  bool complete = false;
  absl::Status failure;
  while (reader->Read(&resp)) {
    if (resp.has_chunk()) {
      if (resp.chunk().token_ids_size() > 0) listener.OnTokens(resp.chunk().token_ids_size());
    } else if (resp.has_complete()) {
      const auto& c = resp.complete();
      complete = true;
      listener.OnUsage(c.prompt_tokens(), c.completion_tokens());
      if (c.finish_reason() == moe::v1::FINISH_REASON_ABORT) {
        failure = absl::AbortedError("finish_reason ABORT (aborted by the server)");
      }
    } else if (resp.has_error()) {
      failure = absl::InternalError(absl::StrCat("server error (code ", resp.error().code(),
                                                 "): ", resp.error().message()));
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return absl::DeadlineExceededError(absl::StrCat("timeout after ", options.timeout_s,
                                                      " s (DEADLINE_EXCEEDED)"));
    }
    return absl::UnavailableError(
        absl::StrCat("gRPC ", CodeName(status.error_code()), ": ", status.error_message()));
  }
  if (!failure.ok()) return failure;
  if (!complete) return absl::DataLossError("stream ended without Complete");
  return absl::OkStatus();
}

absl::StatusOr<int> GrpcBackend::VocabSize(double timeout_s) {
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(timeout_s));
  moe::v1::ModelInfoRequest req;
  moe::v1::ModelInfoResponse resp;
  grpc::Status status = impl_->stub->ModelInfo(&ctx, req, &resp);
  if (!status.ok()) {
    return absl::UnavailableError(absl::StrCat("ModelInfo: gRPC ", CodeName(status.error_code()),
                                               ": ", status.error_message()));
  }
  if (resp.vocab_size() <= 0) return absl::FailedPreconditionError("ModelInfo: vocab_size is 0");
  return resp.vocab_size();
}

}  // namespace moe::bench

#include "server/grpc_service.h"

#include <chrono>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace moe::server {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(20);

absl::Time DeadlineOf(const grpc::ServerContext& ctx) {
  const auto d = ctx.deadline();
  if (d == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(d);
}

moe::v1::FinishReason ToProto(scheduler::FinishReason r) {
  switch (r) {
    case scheduler::FinishReason::kStop:
      return moe::v1::FINISH_REASON_STOP;
    case scheduler::FinishReason::kLength:
      return moe::v1::FINISH_REASON_LENGTH;
    case scheduler::FinishReason::kAbort:
      return moe::v1::FINISH_REASON_ABORT;
  }
  return moe::v1::FINISH_REASON_UNSPECIFIED;
}

void FillChunk(const scheduler::StreamEvent& ev, moe::v1::Chunk* chunk) {
  for (int32_t t : ev.token_ids) chunk->add_token_ids(t);
  chunk->set_text(ev.text);
  for (const auto& st : ev.logprobs) {
    auto* lp = chunk->add_logprobs();
    lp->mutable_chosen()->set_token_id(st.token);
    lp->mutable_chosen()->set_logprob(st.logprob);
    for (const auto& [id, logprob] : st.top_logprobs) {
      auto* top = lp->add_top();
      top->set_token_id(id);
      top->set_logprob(logprob);
    }
  }
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

void InferenceService::SetReady(ServingContext ctx) {
  ctx_ = std::move(ctx);
  ready_.store(true, std::memory_order_release);
}

const ServingContext* InferenceService::Ready() const {
  return ready_.load(std::memory_order_acquire) ? &ctx_ : nullptr;
}

bool InferenceService::Authorized(const grpc::ServerContext& context) const {
  if (api_key_.empty()) return true;
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return false;
  const std::string value(it->second.data(), it->second.size());
  return value == "Bearer " + api_key_;
}

uint64_t InferenceService::NextSeed() {
  absl::MutexLock lock(&seed_mu_);
  return seed_rng_();
}

grpc::Status InferenceService::Generate(grpc::ServerContext* context,
                                        const moe::v1::GenerateRequest* request,
                                        grpc::ServerWriter<moe::v1::GenerateResponse>* writer) {
  if (!Authorized(*context)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "api_key: missing or wrong (send metadata authorization: Bearer <key>)");
  }
  const ServingContext* ctx = Ready();
  if (ctx == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "model is loading");
  if (!accepting_.load()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down");
  }
  auto req = ToSchedulerRequest(*request, ctx->tokenizer, ctx->limits, DeadlineOf(*context),
                                NextSeed());
  if (!req.ok()) return ToGrpcStatus(req.status());
  auto handle_or = ctx->scheduler->Submit(*std::move(req));
  if (!handle_or.ok()) return ToGrpcStatus(handle_or.status());
  std::shared_ptr<scheduler::RequestHandle> handle = *std::move(handle_or);
  handle->set_max_buffered_tokens(ctx->max_stream_buffer_tokens);
  SPDLOG_DEBUG("generate {} started", handle->request_id());

  bool client_gone = false;
  scheduler::StreamEvent ev;
  while (true) {
    if (!client_gone && context->IsCancelled()) {
      client_gone = true;
      handle->Cancel();
    }
    if (!handle->Next(&ev, kPollInterval)) continue;
    moe::v1::GenerateResponse resp;
    resp.set_request_id(handle->request_id());
    switch (ev.kind) {
      case scheduler::StreamEvent::Kind::kTokens:
        FillChunk(ev, resp.mutable_chunk());
        if (!client_gone && !writer->Write(resp)) {
          client_gone = true;
          handle->Cancel();
        }
        break;
      case scheduler::StreamEvent::Kind::kComplete: {
        auto* c = resp.mutable_complete();
        c->set_finish_reason(ToProto(ev.finish_reason));
        c->set_prompt_tokens(ev.prompt_tokens);
        c->set_completion_tokens(ev.completion_tokens);
        c->set_time_to_first_token(ev.time_to_first_token_s);
        c->set_stop_reason(ev.stop_reason);
        SPDLOG_DEBUG("generate {} finished: {} ({} tokens)", handle->request_id(),
                     scheduler::FinishReasonName(ev.finish_reason), ev.completion_tokens);
        if (client_gone) return grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled");
        writer->Write(resp);
        return grpc::Status::OK;
      }
      case scheduler::StreamEvent::Kind::kError: {
        SPDLOG_WARN("generate {} failed: {}", handle->request_id(), ev.error.ToString());
        resp.mutable_error()->set_code(static_cast<int>(ev.error.code()));
        resp.mutable_error()->set_message(std::string(ev.error.message()));
        if (!client_gone) writer->Write(resp);
        return ToGrpcStatus(ev.error);
      }
    }
  }
}

grpc::Status InferenceService::Abort(grpc::ServerContext* context, const moe::v1::AbortRequest* request,
                                     moe::v1::AbortResponse*) {
  if (!Authorized(*context)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "api_key: missing or wrong (send metadata authorization: Bearer <key>)");
  }
  const ServingContext* ctx = Ready();
  if (ctx == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "model is loading");
  if (request->request_id().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "request_id: must not be empty");
  }
  return ToGrpcStatus(ctx->scheduler->Abort(request->request_id()));
}

grpc::Status InferenceService::ModelInfo(grpc::ServerContext* context, const moe::v1::ModelInfoRequest*,
                                         moe::v1::ModelInfoResponse* r) {
  if (!Authorized(*context)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "api_key: missing or wrong (send metadata authorization: Bearer <key>)");
  }
  const ServingContext* ctx = Ready();
  if (ctx == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "model is loading");
  const engine::ModelConfig& c = *ctx->config;
  r->set_architecture(c.architecture_name);
  r->set_model_type(c.model_type);
  r->set_num_layers(c.num_layers);
  r->set_num_experts(c.num_experts);
  r->set_num_experts_per_tok(c.num_experts_per_tok);
  r->set_context_length(ctx->limits.context_length);
  r->set_vocab_size(ctx->limits.vocab_size);
  for (int id : c.eos_token_ids) r->add_eos_token_ids(id);
  r->set_device(ctx->device);
  r->set_hidden_size(c.hidden_size);
  r->set_kv_block_size(ctx->scheduler->kv_block_size());
  r->set_num_kv_blocks(ctx->num_kv_blocks);
  return grpc::Status::OK;
}

grpc::Status InferenceService::Tokenize(grpc::ServerContext* context, const moe::v1::TokenizeRequest* req,
                                        moe::v1::TokenizeResponse* resp) {
  if (!Authorized(*context)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "api_key: missing or wrong (send metadata authorization: Bearer <key>)");
  }
  const ServingContext* ctx = Ready();
  if (ctx == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "model is loading");
  if (ctx->tokenizer == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this model has no tokenizer");
  }
  auto ids = ctx->tokenizer->Encode(req->text(), req->add_special_tokens());
  if (!ids.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("text: ", ids.status().message()));
  }
  for (int32_t id : *ids) resp->add_token_ids(id);
  return grpc::Status::OK;
}

grpc::Status InferenceService::Detokenize(grpc::ServerContext* context,
                                          const moe::v1::DetokenizeRequest* req,
                                          moe::v1::DetokenizeResponse* resp) {
  if (!Authorized(*context)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "api_key: missing or wrong (send metadata authorization: Bearer <key>)");
  }
  const ServingContext* ctx = Ready();
  if (ctx == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "model is loading");
  if (ctx->tokenizer == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this model has no tokenizer");
  }
  for (int i = 0; i < req->token_ids_size(); ++i) {
    const int32_t id = req->token_ids(i);
    if (id < 0 || id >= ctx->limits.vocab_size) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("token_ids: token id ", id, " at index ", i,
                                       " is outside the vocabulary"));
    }
  }
  std::vector<int32_t> ids(req->token_ids().begin(), req->token_ids().end());
  auto text = ctx->tokenizer->Decode(ids, req->skip_special_tokens());
  if (!text.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("token_ids: ", text.status().message()));
  }
  resp->set_text(*text);
  return grpc::Status::OK;
}

}  // namespace moe::server

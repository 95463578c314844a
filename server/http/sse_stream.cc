#include "server/http/sse_stream.h"

#include <string>

#include "server/http/api_error.h"

namespace moe::server::http {
namespace {

constexpr absl::Duration kPoll = absl::Milliseconds(50);
constexpr absl::Duration kKeepAlive = absl::Seconds(5);

Json IdsJson(const std::vector<int32_t>& ids) {
  Json a = Json::array();
  for (int32_t id : ids) a.push_back(id);
  return a;
}

class SseStream {
 public:
  SseStream(std::unique_ptr<Generation> gen, OpenAiRequest req, ResponseMeta meta,
            std::vector<std::vector<int32_t>> prompts, const engine::Tokenizer* tok)
      : gen_(std::move(gen)),
        req_(std::move(req)),
        meta_(std::move(meta)),
        prompts_(std::move(prompts)),
        tok_(*tok),
        choices_(gen_->num_choices()) {
    for (const auto& p : prompts_) prompt_tokens_ += static_cast<int>(p.size());
    if (req_.kind == ApiKind::kChat && req_.parse_tool_calls) {
      for (ChoiceState& st : choices_) st.tools = std::make_unique<ToolCallStreamParser>();
    }
  }

  // One call of httplib's chunked content provider: writes what is ready. False ends
  // the response as failed (the client is gone).
  bool Provide(httplib::DataSink& sink) {
    if (!started_) {
      started_ = true;
      last_write_ = absl::Now();
      if (req_.kind == ApiKind::kChat && !SendRoleChunks(sink)) return Abandon();
      if (req_.kind == ApiKind::kCompletion && req_.echo && !SendEchoChunks(sink)) {
        return Abandon();
      }
    }
    int index = 0;
    scheduler::StreamEvent ev;
    if (gen_->Next(&index, &ev, kPoll)) {
      if (!Handle(sink, index, ev)) return Abandon();
    } else if (!gen_->all_finished() && absl::Now() - last_write_ > kKeepAlive) {
      if (!Write(sink, ": keep-alive\n\n")) return Abandon();
    }
    if (gen_->all_finished()) {
      if (req_.include_usage &&
          !Send(sink, UsageChunk(meta_, req_.kind, prompt_tokens_, completion_tokens_))) {
        return Abandon();
      }
      if (!Write(sink, "data: [DONE]\n\n")) return Abandon();
      sink.done();
    }
    return true;
  }

 private:
  struct ChoiceState {
    size_t text_offset = 0;
    bool sent_first = false;
    std::unique_ptr<ToolCallStreamParser> tools;  // chat with tool parsing only
  };

  bool Abandon() {
    gen_->CancelAll();
    return false;
  }

  bool Write(httplib::DataSink& sink, const std::string& s) {
    last_write_ = absl::Now();
    return sink.write(s.data(), s.size());
  }
  bool Send(httplib::DataSink& sink, const Json& chunk) {
    return Write(sink, "data: " + Dump(chunk) + "\n\n");
  }

  bool SendRoleChunks(httplib::DataSink& sink) {
    for (int i = 0; i < gen_->num_choices(); ++i) {
      Json choice;
      choice["index"] = i;
      Json delta;
      delta["role"] = "assistant";
      delta["content"] = "";
      choice["delta"] = std::move(delta);
      choice["logprobs"] = nullptr;
      choice["finish_reason"] = nullptr;
      Json chunk = ChatChunk(meta_, req_, std::move(choice));
      if (req_.return_token_ids && i == 0) chunk["prompt_token_ids"] = IdsJson(prompts_[0]);
      if (!Send(sink, chunk)) return false;
    }
    return true;
  }

  // Completions with echo: each choice's first chunk is its prompt's text.
  bool SendEchoChunks(httplib::DataSink& sink) {
    for (int i = 0; i < gen_->num_choices(); ++i) {
      scheduler::StreamEvent echo;
      echo.kind = scheduler::StreamEvent::Kind::kTokens;
      echo.text = EchoText(req_, tok_, prompts_, static_cast<size_t>(i / req_.n));
      if (!Send(sink, Chunk(Choice(i, &echo, nullptr, nullptr)))) return false;
    }
    return true;
  }

  // A choice object carrying `text`, the tokens' logprobs / ids, and a finish reason
  // (null while running).
  Json Choice(int index, const scheduler::StreamEvent* tokens, Json finish_reason,
              Json stop_reason) {
    ChoiceState& st = choices_[index];
    Json choice;
    choice["index"] = index;
    const std::string text = tokens ? tokens->text : "";
    if (req_.kind == ApiKind::kChat) {
      Json delta = Json::object();
      if (tokens != nullptr) delta["content"] = text;
      choice["delta"] = std::move(delta);
    } else {
      choice["text"] = text;
    }
    if (req_.logprobs && tokens != nullptr && !tokens->logprobs.empty()) {
      if (req_.kind == ApiKind::kChat) {
        Json lp;
        lp["content"] = ChatLogprobsContent(tok_, tokens->logprobs, req_.top_logprobs);
        choice["logprobs"] = std::move(lp);
      } else {
        choice["logprobs"] =
            CompletionLogprobsJson(tok_, tokens->logprobs, req_.top_logprobs, &st.text_offset);
      }
    } else {
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = std::move(finish_reason);
    choice["stop_reason"] = std::move(stop_reason);
    if (req_.return_token_ids) {
      if (req_.kind == ApiKind::kCompletion && !st.sent_first) {
        choice["prompt_token_ids"] = IdsJson(prompts_[index / req_.n]);
      }
      choice["token_ids"] = IdsJson(tokens ? tokens->token_ids : std::vector<int32_t>{});
    }
    st.sent_first = true;
    return choice;
  }

  Json Chunk(Json choice) {
    return req_.kind == ApiKind::kChat ? ChatChunk(meta_, req_, std::move(choice))
                                       : CompletionChunk(meta_, req_, std::move(choice));
  }

  // Tool parsing: the parser's content and calls, in order. The event's per-token data
  // (logprobs, token ids) rides on the first content chunk, or on a chunk of its own.
  bool SendToolItems(httplib::DataSink& sink, int index, const scheduler::StreamEvent& ev,
                     const std::vector<ToolCallStreamParser::Item>& items) {
    const bool has_token_data = req_.logprobs || req_.return_token_ids;
    bool token_data_sent = false;
    for (const ToolCallStreamParser::Item& item : items) {
      if (item.call.has_value()) {
        Json choice = Choice(index, nullptr, nullptr, nullptr);
        choice["delta"] = ToolCallDeltaJson(*item.call, item.index);
        if (!Send(sink, Chunk(std::move(choice)))) return false;
        continue;
      }
      scheduler::StreamEvent part;
      if (!token_data_sent) part = ev;
      part.text = item.content;
      token_data_sent = true;
      if (!Send(sink, Chunk(Choice(index, &part, nullptr, nullptr)))) return false;
    }
    if (!token_data_sent && has_token_data && !ev.token_ids.empty()) {
      scheduler::StreamEvent part = ev;
      part.text.clear();
      return Send(sink, Chunk(Choice(index, &part, nullptr, nullptr)));
    }
    return true;
  }

  bool Handle(httplib::DataSink& sink, int index, const scheduler::StreamEvent& ev) {
    ToolCallStreamParser* tools = choices_[index].tools.get();
    switch (ev.kind) {
      case scheduler::StreamEvent::Kind::kTokens:
        if (tools != nullptr) return SendToolItems(sink, index, ev, tools->Feed(ev.text));
        // A delta whose text is still held back carries nothing to show unless the
        // client asked for per-token data.
        if (ev.text.empty() && !req_.logprobs && !req_.return_token_ids) return true;
        return Send(sink, Chunk(Choice(index, &ev, nullptr, nullptr)));
      case scheduler::StreamEvent::Kind::kComplete: {
        completion_tokens_ += ev.completion_tokens;
        bool made_calls = false;
        if (tools != nullptr) {
          if (!SendToolItems(sink, index, scheduler::StreamEvent(), tools->Finish())) {
            return false;
          }
          made_calls = tools->num_calls() > 0;
        }
        return Send(sink, Chunk(Choice(index, nullptr,
                                       ChatFinishReason(ev.finish_reason, made_calls),
                                       StopReasonJson(req_, ev.finish_reason,
                                                      ev.stop_reason))));
      }
      case scheduler::StreamEvent::Kind::kError: {
        // Mid-stream errors cannot change the HTTP status: report in-band, end the rest.
        gen_->CancelAll();
        const ApiError e = ApiErrorFromStatus(ev.error);
        return Write(sink, "data: " + ApiErrorJson(e) + "\n\n");
      }
    }
    return true;
  }

  std::unique_ptr<Generation> gen_;
  const OpenAiRequest req_;
  const ResponseMeta meta_;
  const std::vector<std::vector<int32_t>> prompts_;
  const engine::Tokenizer& tok_;
  std::vector<ChoiceState> choices_;
  bool started_ = false;
  absl::Time last_write_;
  int prompt_tokens_ = 0;
  int completion_tokens_ = 0;
};

}  // namespace

void StreamResponse(httplib::Response& res, std::unique_ptr<Generation> gen, OpenAiRequest req,
                    ResponseMeta meta, std::vector<std::vector<int32_t>> prompts,
                    const engine::Tokenizer* tokenizer) {
  auto stream = std::make_shared<SseStream>(std::move(gen), std::move(req), std::move(meta),
                                            std::move(prompts), tokenizer);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [stream](size_t /*offset*/, httplib::DataSink& sink) { return stream->Provide(sink); });
}

}  // namespace moe::server::http

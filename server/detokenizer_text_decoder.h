// Adapts engine::IncrementalDetokenizer to the scheduler's TextDecoder interface.
//
// Thread safety: one per sequence; the tokenizer is shared read-only and must outlive
// every decoder made from it.
#pragma once

#include <memory>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "scheduler/text_decoder.h"

namespace moe::server {

class DetokenizerTextDecoder : public scheduler::TextDecoder {
 public:
  DetokenizerTextDecoder(const engine::Tokenizer& tokenizer, absl::Span<const int32_t> prompt)
      : detok_(tokenizer, prompt, /*skip_special_tokens=*/true) {}
  std::string Add(int32_t id) override { return detok_.Add(id); }
  std::string Flush() override { return detok_.Flush(); }

 private:
  engine::IncrementalDetokenizer detok_;
};

inline scheduler::TextDecoderFactory MakeDetokenizerFactory(const engine::Tokenizer* tokenizer) {
  if (tokenizer == nullptr) return {};
  return [tokenizer](absl::Span<const int32_t> prompt) -> std::unique_ptr<scheduler::TextDecoder> {
    return std::make_unique<DetokenizerTextDecoder>(*tokenizer, prompt);
  };
}

}  // namespace moe::server

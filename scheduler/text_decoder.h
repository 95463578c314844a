// How the scheduler turns generated ids into streamed text, without depending on a
// particular tokenizer: the server adapts engine::IncrementalDetokenizer to this
// interface, tests use a fake.
//
// Thread safety: a TextDecoder belongs to one sequence and is used by the engine thread
// only. A TextDecoderFactory may be called from the engine thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/types/span.h"

namespace moe::scheduler {

class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  // Text made final by `id` (complete UTF-8 only; may be empty).
  virtual std::string Add(int32_t id) = 0;
  // Whatever is still held back, at the end of the generation.
  virtual std::string Flush() = 0;
};

// Makes a decoder for a sequence whose prompt is `prompt` (context, not emitted).
using TextDecoderFactory =
    std::function<std::unique_ptr<TextDecoder>(absl::Span<const int32_t> prompt)>;

}  // namespace moe::scheduler

// A TextDecoder for scheduler tests: token id t decodes to the single letter
// 'a' + t % 26, emitted at once. FakeText() gives the same mapping for expectations.
//
// Thread safety: as TextDecoder (one sequence, one thread).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "scheduler/text_decoder.h"

namespace moe::scheduler::testing {

inline std::string FakeText(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t t : ids) s.push_back(static_cast<char>('a' + t % 26));
  return s;
}

class FakeTextDecoder : public TextDecoder {
 public:
  std::string Add(int32_t id) override { return FakeText({id}); }
  std::string Flush() override { return ""; }
};

inline TextDecoderFactory FakeTextDecoderFactory() {
  return [](absl::Span<const int32_t>) { return std::make_unique<FakeTextDecoder>(); };
}

}  // namespace moe::scheduler::testing

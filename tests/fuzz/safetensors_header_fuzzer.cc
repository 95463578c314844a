// Fuzzes moe::engine::ParseSafetensorsHeader with whole-file images (8-byte length, JSON
// header, data). Beyond not crashing, a header it accepts must describe tensors that lie
// inside the data section, since SafetensorsFile::Open turns them into pointers.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/loader/safetensors.h"
#include "tests/fuzz/fuzz_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto header = moe::engine::ParseSafetensorsHeader(bytes, "fuzz.safetensors");
  if (!header.ok()) {
    if (header.status().message().empty()) moe::fuzz::Fail("error without a message");
    return 0;
  }
  if (size < 8 || header->header_size > size - 8) moe::fuzz::Fail("header past the file");
  const uint64_t data_size = size - 8 - header->header_size;
  for (const auto& e : header->entries) {
    if (e.begin > e.end) moe::fuzz::Fail("entry begin > end");
    if (e.end > data_size) moe::fuzz::Fail("entry runs past the data section");
    uint64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d < 0) moe::fuzz::Fail("negative dimension accepted");
      if (d != 0 && numel > UINT64_MAX / static_cast<uint64_t>(d)) {
        moe::fuzz::Fail("element count overflows");
      }
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t elem = moe::DTypeSize(e.dtype);
    if (elem != 0 && numel > UINT64_MAX / elem) moe::fuzz::Fail("byte count overflows");
    if (numel * elem != e.end - e.begin) moe::fuzz::Fail("shape disagrees with byte range");
  }
  return 0;
}

#include "tools/synthetic/random_fill.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

namespace moe::tools {
namespace {

inline uint64_t Mix64(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void FillRange(const PlannedTensor& t, uint64_t key, DType dtype, int64_t begin, int64_t count,
               char* out) {
  const bool norm = t.init == InitKind::kNorm;
  for (int64_t k = 0; k < count; ++k) {
    float v = t.std * NormalAt(key, static_cast<uint64_t>(begin + k));
    if (norm) v += 1.f;
    switch (dtype) {
      case DType::kBF16: {
        uint16_t b = F32ToBf16(v);
        std::memcpy(out + 2 * k, &b, 2);
        break;
      }
      case DType::kF16: {
        uint16_t b = F32ToF16(v);
        std::memcpy(out + 2 * k, &b, 2);
        break;
      }
      default:
        std::memcpy(out + 4 * k, &v, 4);
        break;
    }
  }
}

}  // namespace

uint64_t TensorKey(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a over the name
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return Mix64(Mix64(seed + 0x9e3779b97f4a7c15ULL) ^ h);
}

float NormalAt(uint64_t key, uint64_t i) {
  const uint64_t r = Mix64(key + (i + 1) * 0x9e3779b97f4a7c15ULL);
  const float sum = static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) +
                                       ((r >> 32) & 0xffff) + (r >> 48)) +
                    2.f;  // each term + 0.5, in units of 1/65536
  // Irwin–Hall(4): mean 2, variance 1/3.
  return (sum * (1.f / 65536.f) - 2.f) * 1.7320508f;
}

void FillTensorChunk(const PlannedTensor& t, uint64_t key, DType dtype, int64_t begin,
                     int64_t count, char* out, int threads) {
  const size_t esize = DTypeSize(dtype);
  threads = std::max(1, std::min<int>(threads, static_cast<int>(count / (1 << 18))));
  if (threads <= 1) {
    FillRange(t, key, dtype, begin, count, out);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t per = (count + threads - 1) / threads;
  for (int w = 0; w < threads; ++w) {
    const int64_t b = w * per;
    const int64_t n = std::min(per, count - b);
    if (n <= 0) break;
    pool.emplace_back(FillRange, std::cref(t), key, dtype, begin + b, n, out + b * esize);
  }
  for (auto& th : pool) th.join();
}

}  // namespace moe::tools

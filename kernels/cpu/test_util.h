// Helpers for the CPU kernel tests: random data and weight buffers in any float dtype.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/dtype.h"

namespace moe::kernels::cpu::testing {

inline std::vector<float> RandomVector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A weight buffer of `dtype` holding `values` rounded to that type; `rounded` receives
// the exact fp32 values the buffer represents (what a naive reference must use).
struct Weights {
  std::string bytes;
  std::vector<float> rounded;
  DType dtype = DType::kF32;
  const void* data() const { return bytes.data(); }
};

inline Weights MakeWeights(const std::vector<float>& values, DType dtype) {
  Weights w;
  w.dtype = dtype;
  w.bytes.resize(values.size() * DTypeSize(dtype));
  w.rounded.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      std::memcpy(&w.bytes[i * 4], &values[i], 4);
      w.rounded[i] = values[i];
    } else {
      uint16_t h = dtype == DType::kBF16 ? F32ToBf16(values[i]) : F32ToF16(values[i]);
      std::memcpy(&w.bytes[i * 2], &h, 2);
      w.rounded[i] = dtype == DType::kBF16 ? Bf16ToF32(h) : F16ToF32(h);
    }
  }
  return w;
}

inline const DType kWeightTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

}  // namespace moe::kernels::cpu::testing

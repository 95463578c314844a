// Tests for kernels/dtype.h: sizes, names and the fp16 / bf16 conversions, against
// bit patterns worked out from the IEEE-754 and bfloat16 formats.
#include "kernels/dtype.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include <catch2/catch.hpp>

namespace moe {
namespace {

float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TEST_CASE("DType sizes and safetensors names", "[dtype]") {
  CHECK(DTypeSize(DType::kF32) == 4);
  CHECK(DTypeSize(DType::kF16) == 2);
  CHECK(DTypeSize(DType::kBF16) == 2);
  CHECK(DTypeSize(DType::kF64) == 8);
  CHECK(DTypeSize(DType::kI64) == 8);
  CHECK(DTypeSize(DType::kI32) == 4);
  CHECK(DTypeSize(DType::kI16) == 2);
  CHECK(DTypeSize(DType::kI8) == 1);
  CHECK(DTypeSize(DType::kU8) == 1);
  CHECK(DTypeSize(DType::kBool) == 1);
  CHECK(std::string(DTypeName(DType::kBF16)) == "BF16");
  CHECK(std::string(DTypeName(DType::kBool)) == "BOOL");
  CHECK(IsFloatWeightType(DType::kF32));
  CHECK(IsFloatWeightType(DType::kF16));
  CHECK(IsFloatWeightType(DType::kBF16));
  CHECK_FALSE(IsFloatWeightType(DType::kF64));
  CHECK_FALSE(IsFloatWeightType(DType::kI32));
}

TEST_CASE("bfloat16 known bit patterns", "[dtype]") {
  CHECK(F32ToBf16(1.0f) == 0x3F80);
  CHECK(F32ToBf16(-2.5f) == 0xC020);
  CHECK(F32ToBf16(0.0f) == 0x0000);
  CHECK(F32ToBf16(-0.0f) == 0x8000);
  CHECK(Bf16ToF32(0x3F80) == 1.0f);
  CHECK(Bf16ToF32(0xC020) == -2.5f);
  // 65504 (0x477FE000) is not representable: it rounds up to 65536.
  CHECK(F32ToBf16(65504.0f) == 0x4780);
  CHECK(Bf16ToF32(0x4780) == 65536.0f);
  // Smallest subnormal, 2^-133.
  CHECK(Bf16ToF32(0x0001) == std::ldexp(1.0f, -133));
  CHECK(F32ToBf16(std::ldexp(1.0f, -133)) == 0x0001);
  CHECK(F32ToBf16(-std::ldexp(1.0f, -133)) == 0x8001);

  // Ties go to the even neighbour; anything past the midpoint rounds up.
  CHECK(F32ToBf16(FromBits(0x3F808000)) == 0x3F80);  // halfway 0x3F80..0x3F81 -> even
  CHECK(F32ToBf16(FromBits(0x3F818000)) == 0x3F82);  // halfway 0x3F81..0x3F82 -> even
  CHECK(F32ToBf16(FromBits(0x3F808001)) == 0x3F81);
  CHECK(F32ToBf16(FromBits(0x3F807FFF)) == 0x3F80);
  CHECK(F32ToBf16(FromBits(0xBF818000)) == 0xBF82);  // same for negatives

  // Inf and NaN.
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(F32ToBf16(inf) == 0x7F80);
  CHECK(F32ToBf16(-inf) == 0xFF80);
  CHECK(std::isinf(Bf16ToF32(0x7F80)));
  CHECK(F32ToBf16(std::numeric_limits<float>::max()) == 0x7F80);  // overflows to inf, as torch
  CHECK(F32ToBf16(std::nanf("")) == 0x7FC0);
  // A NaN whose payload lives only in the low 16 bits must not turn into Inf.
  uint16_t snan = F32ToBf16(FromBits(0x7F800001));
  CHECK((snan & 0x7F80) == 0x7F80);
  CHECK((snan & 0x007F) != 0);
  CHECK(std::isnan(Bf16ToF32(snan)));
  CHECK(std::isnan(Bf16ToF32(0xFFC1)));
}

TEST_CASE("float16 known bit patterns", "[dtype]") {
  CHECK(F32ToF16(1.0f) == 0x3C00);
  CHECK(F32ToF16(-2.5f) == 0xC100);
  CHECK(F32ToF16(0.0f) == 0x0000);
  CHECK(F32ToF16(-0.0f) == 0x8000);
  CHECK(F16ToF32(0x3C00) == 1.0f);
  CHECK(F16ToF32(0xC100) == -2.5f);
  CHECK(F32ToF16(65504.0f) == 0x7BFF);  // largest finite half
  CHECK(F16ToF32(0x7BFF) == 65504.0f);
  CHECK(F32ToF16(65519.0f) == 0x7BFF);
  CHECK(F32ToF16(65520.0f) == 0x7C00);  // the midpoint to 65536 rounds to even: Inf
  CHECK(F32ToF16(1e6f) == 0x7C00);
  CHECK(F32ToF16(-1e6f) == 0xFC00);

  // Subnormals: the smallest is 2^-24.
  CHECK(F16ToF32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(F32ToF16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(F16ToF32(0x8001) == -std::ldexp(1.0f, -24));
  CHECK(F16ToF32(0x03FF) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(F32ToF16(std::ldexp(1023.0f, -24)) == 0x03FF);
  CHECK(F16ToF32(0x0400) == std::ldexp(1.0f, -14));     // smallest normal
  CHECK(F32ToF16(std::ldexp(1.0f, -14)) == 0x0400);
  CHECK(F32ToF16(std::ldexp(1.0f, -25)) == 0x0000);     // half of the smallest: tie -> 0
  CHECK(F32ToF16(std::ldexp(1.5f, -25)) == 0x0001);     // past the midpoint
  CHECK(F32ToF16(std::ldexp(3.0f, -25)) == 0x0002);     // 1.5 ulp: tie -> even (2)
  CHECK(F32ToF16(std::ldexp(5.0f, -25)) == 0x0002);     // 2.5 ulp: tie -> even (2)
  CHECK(F32ToF16(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(F32ToF16(-std::ldexp(1.0f, -26)) == 0x8000);

  // Ties to even among normals: ulp at 1.0 is 2^-10.
  CHECK(F32ToF16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);
  CHECK(F32ToF16(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);
  CHECK(F32ToF16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);

  const float inf = std::numeric_limits<float>::infinity();
  CHECK(F32ToF16(inf) == 0x7C00);
  CHECK(F32ToF16(-inf) == 0xFC00);
  CHECK(std::isinf(F16ToF32(0x7C00)));
  CHECK(F16ToF32(0xFC00) == -inf);
  uint16_t nan = F32ToF16(std::nanf(""));
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);
  CHECK(std::isnan(F16ToF32(nan)));
  CHECK(std::isnan(F16ToF32(0x7C01)));
  CHECK(std::isnan(F16ToF32(0xFE00)));
  CHECK(F32ToF16(FromBits(0x7F800001)) != 0x7C00);  // a NaN never becomes Inf
}

TEST_CASE("Every finite half and bfloat16 value survives a round trip through f32", "[dtype]") {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t v = static_cast<uint16_t>(h);
    bool is_nan_f16 = (v & 0x7C00) == 0x7C00 && (v & 0x03FF) != 0;
    if (!is_nan_f16 && F32ToF16(F16ToF32(v)) != v) FAIL("f16 round trip broke at 0x" << std::hex << h);
    bool is_nan_bf16 = (v & 0x7F80) == 0x7F80 && (v & 0x007F) != 0;
    if (!is_nan_bf16 && F32ToBf16(Bf16ToF32(v)) != v) FAIL("bf16 round trip broke at 0x" << std::hex << h);
  }
  SUCCEED();
}

// For a finite x inside the target's range, the chosen code c must be at least as near
// to x as both neighbours, and even when it ties with one.
template <typename Encode, typename Decode>
void CheckNearestEven(float x, Encode encode, Decode decode, const char* what) {
  uint16_t c = encode(x);
  double dx = x, dc = decode(c);
  if ((c & 0x7FFF) == 0) {  // zero: the only neighbour is the smallest subnormal
    uint16_t up = static_cast<uint16_t>(c + 1);
    double err = std::abs(dx - dc), err_up = std::abs(dx - decode(up));
    if (err > err_up) FAIL(what << " not nearest for " << x);
    return;
  }
  for (int step : {-1, 1}) {
    uint16_t n = static_cast<uint16_t>(c + step);
    double dn = decode(n);
    if (std::isinf(dn) || std::isnan(dn)) continue;
    double err = std::abs(dx - dc), err_n = std::abs(dx - dn);
    if (err > err_n || (err == err_n && (c & 1))) {
      FAIL(what << " rounded " << x << " (0x" << std::hex << Bits(x) << ") to 0x" << c
                << " but 0x" << n << " is nearer or even");
    }
  }
}

TEST_CASE("Random floats round to the nearest value, ties to even", "[dtype]") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> any_bits;
  for (int i = 0; i < 200000; ++i) {
    float x = FromBits(any_bits(rng));
    if (!std::isfinite(x)) continue;
    if (std::abs(x) < 65504.f) CheckNearestEven(x, F32ToF16, F16ToF32, "f16");
    if (std::abs(x) < FromBits(0x7F7F0000)) CheckNearestEven(x, F32ToBf16, Bf16ToF32, "bf16");
  }
  // Values in the f16 subnormal and near-1 ranges get dense coverage too.
  std::uniform_real_distribution<float> small(-1e-4f, 1e-4f), unit(-4.f, 4.f);
  for (int i = 0; i < 100000; ++i) {
    CheckNearestEven(small(rng), F32ToF16, F16ToF32, "f16");
    CheckNearestEven(unit(rng), F32ToF16, F16ToF32, "f16");
    CheckNearestEven(unit(rng), F32ToBf16, Bf16ToF32, "bf16");
  }
  SUCCEED();
}

TEST_CASE("LoadAsF32 reads each float weight type", "[dtype]") {
  float f[] = {1.5f, -3.f};
  uint16_t h[] = {F32ToF16(0.25f), F32ToF16(-8.f)};
  uint16_t b[] = {F32ToBf16(2.f), F32ToBf16(-0.5f)};
  CHECK(LoadAsF32(f, DType::kF32, 1) == -3.f);
  CHECK(LoadAsF32(h, DType::kF16, 0) == 0.25f);
  CHECK(LoadAsF32(h, DType::kF16, 1) == -8.f);
  CHECK(LoadAsF32(b, DType::kBF16, 0) == 2.f);
  CHECK(LoadAsF32(b, DType::kBF16, 1) == -0.5f);
}

}  // namespace
}  // namespace moe

// Shared by the files of the GPU kernel suite (binary kernel_test, main in
// kernel_test_main.cc): error bounds, the case-label helper and one entry point per
// kernel family. Each Test* runs its family's cases in a fixed order, drawing all inputs
// from `rng`, and records one Report::Check per case (a failed CUDA call exits the
// process, see gpu_check.h). main calls them in a fixed order, so a seed reproduces a run.
//
// Thread safety: single-threaded use only.
#pragma once

#include <cublas_v2.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "tools/gpu/gpu_check.h"

namespace moe::gpu_test {

constexpr double kF32Bound = 1e-3;   // fp32 arithmetic on both sides
constexpr double kBf16Bound = 1e-2;  // a bf16 operand or output on the GPU side

// "name=value" pairs joined by spaces: the shape column of a case.
inline std::string Shape(std::initializer_list<std::pair<const char*, int64_t>> dims) {
  std::string s;
  for (auto& d : dims) s += std::string(s.empty() ? "" : " ") + d.first + "=" + std::to_string(d.second);
  return s;
}

// kernel_test_norm_rope.cc: rms_norm (plain, fused residual add, q/k groups), rope and
// rope fused with the KV-cache write.
void TestNorms(Rng& rng, Report& rep);
void TestRope(Rng& rng, Report& rep);
// kernel_test_elementwise.cc: clamp, silu_mul, sigmoid_gated_add, embedding; the cuBLAS
// linear and add_bias.
void TestElementwise(Rng& rng, Report& rep);
void TestLinear(Rng& rng, Report& rep, cublasHandle_t cublas);
// kernel_test_moe.cc: router top-k, moe_permute, the expert FFN paths and combine.
void TestRouter(Rng& rng, Report& rep);
void TestPermute(Rng& rng, Report& rep);
void TestExperts(Rng& rng, Report& rep, cublasHandle_t cublas);
// Also kernel_test_moe.cc, the batch-1 fusions against the launches they replace (exact):
// router top-k + tiny permute in one launch; the combine fused into the next AddRmsNorm.
void TestRouterPermuteFused(Rng& rng, Report& rep);
void TestCombineNormFused(Rng& rng, Report& rep);
// kernel_test_attention.cc: the KV-cache write and paged attention, prefill and decode
// (including the decode merge in-kernel against the merge kernel, exact).
void TestAttention(Rng& rng, Report& rep);

}  // namespace moe::gpu_test

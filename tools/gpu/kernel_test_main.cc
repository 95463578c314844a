// GPU kernel suite: every CUDA kernel in kernels/cuda against its CPU reference in
// kernels/cpu on fresh random (bf16-rounded) inputs, several shapes including odd sizes,
// outputs poisoned with NaN before each run. Prints one line per case and a table; exits
// non-zero on any failure. Needs a GPU: built as a cc_binary, never run by CI.
//
// The cases live in kernel_test_{norm_rope,elementwise,moe,attention}.cc, one file per
// kernel family; this file only runs them in a fixed order and prints the summary.
//
// Usage: kernel_test [--seed N]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "tools/gpu/gpu_check.h"
#include "tools/gpu/kernel_test_cases.h"

int main(int argc, char** argv) {
  using namespace moe::gpu_test;
  uint64_t seed = 0;
  if (!StartSuite(argc, argv, &seed)) return 2;
  Rng rng(seed);
  Report rep;
  cublasHandle_t cublas;
  CUBLAS_OK(cublasCreate(&cublas));
  TestNorms(rng, rep);
  TestElementwise(rng, rep);
  TestRope(rng, rep);
  TestRouter(rng, rep);
  TestPermute(rng, rep);
  TestRouterPermuteFused(rng, rep);
  TestCombineNormFused(rng, rep);
  TestLinear(rng, rep, cublas);
  TestExperts(rng, rep, cublas);
  TestAttention(rng, rep);
  cublasDestroy(cublas);
  return rep.Summary();
}

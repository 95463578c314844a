// GPU kernel suite (see kernel_test_cases.h): elementwise kernels, the embedding lookup
// and the dense (cuBLAS) linear.
#include <algorithm>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/linear.h"
#include "tools/gpu/kernel_test_cases.h"

namespace moe::gpu_test {

namespace kc = ::moe::kernels::cpu;
namespace kg = ::moe::kernels::cuda;

void TestElementwise(Rng& rng, Report& rep) {
  for (int64_t n : {1, 1000, 123457}) {
    std::vector<float> x = rng.Normal(n, 10.f), ref = x;
    kc::Clamp(ref.data(), n, 8.f, nullptr);
    DevBuf<float> d(x);
    LAUNCH_OK(kg::LaunchClamp(d.get(), n, 8.f, nullptr));
    rep.Check("clamp", Shape({{"n", n}}), RelErr(d.Download(), ref), 0.0);
  }
  for (auto [rows, width] : std::vector<std::pair<int64_t, int64_t>>{{1, 1024}, {13, 768}, {37, 1407}}) {
    std::vector<float> gu = rng.Normal(rows * 2 * width, 2.f);
    std::vector<float> gate(rows * width), up(rows * width), ref(rows * width);
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(gu.begin() + r * 2 * width, width, gate.begin() + r * width);
      std::copy_n(gu.begin() + r * 2 * width + width, width, up.begin() + r * width);
    }
    kc::SiluMul(gate.data(), up.data(), rows * width, ref.data(), nullptr);
    DevBuf<float> dgu(gu), dout(rows * width);
    DevBuf<Bf16> dob(rows * width);
    dout.Poison();
    dob.Poison();
    LAUNCH_OK(kg::LaunchSiluMul(dgu.get(), rows, width, dout.get(), nullptr));
    LAUNCH_OK(kg::LaunchSiluMul(dgu.get(), rows, width, dob.get(), nullptr));
    rep.Check("silu_mul f32", Shape({{"rows", rows}, {"width", width}}), RelErr(dout.Download(), ref), kF32Bound);
    rep.Check("silu_mul bf16", Shape({{"rows", rows}, {"width", width}}), RelErr(ToF32(dob.Download()), ref), kBf16Bound);
  }
  for (auto [rows, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 2048}, {19, 2047}}) {
    std::vector<float> out = rng.Normal(rows * n), logit = rng.Normal(rows, 3.f), shared = rng.Normal(rows * n);
    std::vector<float> ref = out;
    kc::SigmoidGatedAdd(ref.data(), logit.data(), shared.data(), rows, n, nullptr);
    DevBuf<float> dout(out), dl(logit), ds(shared);
    LAUNCH_OK(kg::LaunchSigmoidGatedAdd(dout.get(), dl.get(), ds.get(), rows, n, nullptr));
    rep.Check("sigmoid_gated_add", Shape({{"rows", rows}, {"n", n}}), RelErr(dout.Download(), ref), kF32Bound);
  }
  for (auto [T, vocab, hidden] : std::vector<std::tuple<int64_t, int, int64_t>>{{1, 100, 64}, {29, 5000, 2048}, {7, 311, 1001}}) {
    std::vector<float> table = rng.Normal(vocab * hidden);
    auto tb = RoundBf16(table);
    std::vector<int32_t> ids(T);
    for (auto& id : ids) id = rng.Int(0, vocab - 1);
    std::vector<float> ref(T * hidden);
    const auto bits = Bits(tb);
    kc::EmbeddingLookup(ids.data(), T, bits.data(), DType::kBF16, hidden, ref.data(), nullptr);
    DevBuf<Bf16> dt(tb);
    DevBuf<int32_t> di(ids);
    DevBuf<float> dout(T * hidden);
    dout.Poison();
    LAUNCH_OK(kg::LaunchEmbedding(di.get(), T, dt.get(), hidden, dout.get(), nullptr));
    rep.Check("embedding", Shape({{"T", T}, {"vocab", vocab}, {"hidden", hidden}}), RelErr(dout.Download(), ref), 0.0);
  }
}

void TestLinear(Rng& rng, Report& rep, cublasHandle_t cublas) {
  for (auto [M, K, N] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 2048, 1024}, {5, 64, 37}, {37, 1000, 513}, {256, 2048, 64}, {3, 4096, 15000}}) {
    std::vector<float> x = rng.Normal(M * K), w = rng.Normal(N * K, 0.05f);
    auto xb = RoundBf16(x);
    auto wb = RoundBf16(w);
    std::vector<float> ref(M * N);
    const auto wbits = Bits(wb);
    kc::Linear(x.data(), M, K, wbits.data(), DType::kBF16, N, nullptr, DType::kF32, ref.data(), nullptr);
    DevBuf<Bf16> dx(xb), dw(wb), dyb(M * N);
    DevBuf<float> dy(M * N);
    dy.Poison();
    dyb.Poison();
    CUBLAS_OK(kg::LinearBf16(cublas, dx.get(), M, K, K, dw.get(), N, dy.get(), N));
    CUBLAS_OK(kg::LinearBf16(cublas, dx.get(), M, K, K, dw.get(), N, dyb.get(), N));
    CUDA_OK(cudaDeviceSynchronize());
    rep.Check("linear bf16->f32 (cuBLAS)", Shape({{"M", M}, {"K", K}, {"N", N}}), RelErr(dy.Download(), ref), kBf16Bound);
    rep.Check("linear bf16->bf16 (cuBLAS)", Shape({{"M", M}, {"K", K}, {"N", N}}), RelErr(ToF32(dyb.Download()), ref), kBf16Bound);
  }
  // Bias add on a strided buffer.
  {
    const int64_t rows = 7, n = 100, stride = 130;
    std::vector<float> y = rng.Normal(rows * stride), b = rng.Normal(n);
    auto bb = RoundBf16(b);
    std::vector<float> ref = y;
    for (int64_t r = 0; r < rows; ++r) for (int64_t c = 0; c < n; ++c) ref[r * stride + c] += b[c];
    DevBuf<float> dy(y);
    DevBuf<Bf16> db(bb);
    LAUNCH_OK(kg::LaunchAddBias(dy.get(), rows, n, stride, db.get(), nullptr));
    rep.Check("add_bias", Shape({{"rows", rows}, {"n", n}, {"stride", stride}}), RelErr(dy.Download(), ref), kF32Bound);
  }
}

}  // namespace moe::gpu_test

// Microbenchmark of the small-batch expert kernels (kernels/cuda/small_batch_experts.h)
// at the OLMoE-1B-7B expert shape (hidden 2048, inter 1024, 64 experts, top-8, bf16).
//
// For each batch (tokens) it routes every token to 8 distinct uniformly random experts,
// builds the device assignment with LaunchMoePermute, then times each kernel variant
// (fma = CUDA cores, mma = tensor cores) per stage (gate_up, down, both) with CUDA events
// around every launch; before every launch a 256 MB memset evicts the 50 MB L2, so the
// weights come from HBM as they do in a decode step. Prints microseconds (mean and min
// over the reps) and the GB/s of the expert weights the stage must read (active experts
// x bytes per expert), plus the max difference between the variants' outputs.
//
//   experts_bench [--batches 1,16,64] [--reps 50] [--hidden 2048] [--inter 1024]
//                 [--experts 64] [--topk 8]
//
// Needs a GPU; a benchmark, never run as a test.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/moe_permute.h"
#include "kernels/cuda/small_batch_experts.h"
#include "tools/gpu/gpu_check.h"

namespace {

namespace kg = moe::kernels::cuda;
using moe::gpu_test::DevBuf;
using Bf16 = __nv_bfloat16;

struct Options {
  std::vector<int64_t> batches = {1, 16, 64};
  int reps = 50;
  int64_t hidden = 2048, inter = 1024;
  int experts = 64, topk = 8;
};

std::vector<int64_t> ParseList(const char* s) {
  std::vector<int64_t> v;
  const char* p = s;
  while (*p != '\0') {
    char* end = nullptr;
    const long long x = std::strtoll(p, &end, 10);
    if (end == p) return {};  // not a number: rejected by the caller
    v.push_back(x);
    p = *end == ',' ? end + 1 : end;
  }
  return v;
}

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const char* v = argv[i + 1];
    if (a == "--batches") o.batches = ParseList(v);
    else if (a == "--reps") o.reps = std::atoi(v);
    else if (a == "--hidden") o.hidden = std::atoll(v);
    else if (a == "--inter") o.inter = std::atoll(v);
    else if (a == "--experts") o.experts = std::atoi(v);
    else if (a == "--topk") o.topk = std::atoi(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return false;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "flag %s has no value\n", argv[argc - 1]);
    return false;
  }
  return o.reps > 0 && o.topk > 0 && o.topk <= o.experts && !o.batches.empty();
}

struct Timing {
  double mean_us = 0, min_us = 1e30;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) return 2;
  const int64_t H = o.hidden, I = o.inter;
  const int E = o.experts;
  if (!kg::SmallBatchExpertsSupported(H, I, sizeof(Bf16))) {
    std::fprintf(stderr, "shape hidden=%lld inter=%lld unsupported\n", static_cast<long long>(H),
                 static_cast<long long>(I));
    return 2;
  }
  cudaDeviceProp prop{};
  CUDA_OK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device %s, %d SMs, L2 %d MB; hidden %lld inter %lld experts %d top-%d, bf16, %d reps\n",
              prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20, static_cast<long long>(H),
              static_cast<long long>(I), E, o.topk, o.reps);

  // Weights: one random bf16 pattern per matrix kind, copied into every expert (the
  // values do not matter for timing; distinct buffers do).
  std::mt19937_64 rng(12345);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto random_bf16 = [&](int64_t n, float scale) {
    std::vector<Bf16> v(n);
    for (auto& x : v) x = __float2bfloat16(nd(rng) * scale);
    return v;
  };
  const auto gu_host = random_bf16(2 * I * H, 1.f / std::sqrt(float(H)));
  const auto down_host = random_bf16(H * I, 1.f / std::sqrt(float(I)));
  std::vector<DevBuf<Bf16>*> weights;
  std::vector<uintptr_t> ptrs(2 * E);
  for (int e = 0; e < E; ++e) {
    weights.push_back(new DevBuf<Bf16>(gu_host));
    ptrs[e] = reinterpret_cast<uintptr_t>(weights.back()->get());
  }
  for (int e = 0; e < E; ++e) {
    weights.push_back(new DevBuf<Bf16>(down_host));
    ptrs[E + e] = reinterpret_cast<uintptr_t>(weights.back()->get());
  }
  DevBuf<uintptr_t> dptrs(ptrs);
  const auto* gu_ptrs = reinterpret_cast<const Bf16* const*>(dptrs.get());
  const size_t kFlushBytes = size_t{256} << 20;
  DevBuf<uint8_t> flush(kFlushBytes);
  cudaEvent_t ev0, ev1;
  CUDA_OK(cudaEventCreate(&ev0));
  CUDA_OK(cudaEventCreate(&ev1));

  for (const int64_t B : o.batches) {
    if (B <= 0 || B > kg::kSmallBatchExpertsMaxTokens) {
      std::fprintf(stderr, "batch %lld outside 1..%lld, skipped\n", static_cast<long long>(B),
                   static_cast<long long>(kg::kSmallBatchExpertsMaxTokens));
      continue;
    }
    const int64_t S = B * o.topk;
    std::vector<int32_t> idx(S);
    std::vector<int32_t> perm(E);
    for (int64_t t = 0; t < B; ++t) {
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      std::sort(perm.begin(), perm.begin() + o.topk);
      std::copy(perm.begin(), perm.begin() + o.topk, idx.begin() + t * o.topk);
    }
    std::vector<int> count(E, 0);
    for (int32_t e : idx) count[e]++;
    const int active = static_cast<int>(std::count_if(count.begin(), count.end(), [](int c) { return c > 0; }));
    const int max_count = *std::max_element(count.begin(), count.end());

    std::vector<float> xh(B * H);
    for (auto& v : xh) v = nd(rng);
    std::vector<Bf16> xb(xh.size());
    for (size_t i = 0; i < xh.size(); ++i) xb[i] = __float2bfloat16(xh[i]);
    DevBuf<Bf16> dx(xb), dact(S * I);
    DevBuf<int32_t> didx(idx), dcounts(E), doffsets(E + 1), drow_token(S), dslot_row(S), dactive(E + 1);
    DevBuf<float> dout(S * H);
    LAUNCH_OK(kg::LaunchMoePermute(didx.get(), S, o.topk, E, dcounts.get(), doffsets.get(), drow_token.get(),
                                   dslot_row.get(), nullptr, dactive.get()));
    const int max_active = static_cast<int>(std::min<int64_t>(E, S));
    const double gu_bytes = double(active) * 2 * I * H * sizeof(Bf16);
    const double down_bytes = double(active) * H * I * sizeof(Bf16);
    std::printf("\nbatch %lld: %d active experts, rows per expert max %d (mean %.1f); weight bytes gate_up %.1f MB, "
                "down %.1f MB\n",
                static_cast<long long>(B), active, max_count, double(S) / active, gu_bytes / 1e6, down_bytes / 1e6);
    std::printf("  %-4s %-8s %10s %10s %10s %14s\n", "var", "stage", "mean_us", "min_us", "GB/s", "ideal_us@3TB/s");

    std::vector<float> out_of[2];
    const std::pair<kg::SmallBatchExpertsKernel, const char*> variants[] = {
        {kg::SmallBatchExpertsKernel::kFma, "fma"}, {kg::SmallBatchExpertsKernel::kMma, "mma"}};
    for (int vi = 0; vi < 2; ++vi) {
      const auto [variant, vname] = variants[vi];
      // gate_up first (leaves act_buf for a down-only launch), then down, then both.
      const std::pair<int, const char*> stages[] = {{kg::kSmallBatchExpertsGateUp, "gate_up"},
                                                    {kg::kSmallBatchExpertsDown, "down"},
                                                    {kg::kSmallBatchExpertsGateUp | kg::kSmallBatchExpertsDown, "both"}};
      for (const auto& [mask, sname] : stages) {
        auto launch = [&] {
          return kg::LaunchSmallBatchExpertsVariant(dx.get(), drow_token.get(), dcounts.get(), doffsets.get(),
                                                    dactive.get(), max_active, B, gu_ptrs, gu_ptrs + E, H, I,
                                                    dact.get(), dout.get(), variant, mask, nullptr);
        };
        LAUNCH_OK(launch());  // warm-up
        Timing tm;
        double total = 0;
        for (int r = 0; r < o.reps; ++r) {
          CUDA_OK(cudaMemsetAsync(flush.get(), r & 0xff, kFlushBytes, nullptr));
          CUDA_OK(cudaEventRecord(ev0, nullptr));
          CUDA_OK(launch());
          CUDA_OK(cudaEventRecord(ev1, nullptr));
          CUDA_OK(cudaEventSynchronize(ev1));
          float ms = 0;
          CUDA_OK(cudaEventElapsedTime(&ms, ev0, ev1));
          total += ms * 1e3;
          tm.min_us = std::min(tm.min_us, double(ms) * 1e3);
        }
        CUDA_OK(cudaGetLastError());
        tm.mean_us = total / o.reps;
        const double bytes = (mask == kg::kSmallBatchExpertsGateUp ? gu_bytes
                              : mask == kg::kSmallBatchExpertsDown ? down_bytes
                                                                   : gu_bytes + down_bytes);
        std::printf("  %-4s %-8s %10.1f %10.1f %10.0f %14.1f\n", vname, sname, tm.mean_us, tm.min_us,
                    bytes / (tm.mean_us * 1e-6) / 1e9, bytes / 3.0e12 * 1e6);
      }
      out_of[vi] = dout.Download();
    }
    // The variants compute the same function (fp32 sums in different orders).
    double max_diff = 0, max_ref = 0;
    for (size_t i = 0; i < out_of[0].size(); ++i) {
      max_diff = std::max(max_diff, double(std::fabs(out_of[0][i] - out_of[1][i])));
      max_ref = std::max(max_ref, double(std::fabs(out_of[0][i])));
    }
    std::printf("  fma vs mma: max |diff| %.3g, max |out| %.3g (relative %.2g)%s\n", max_diff, max_ref,
                max_ref > 0 ? max_diff / max_ref : 0.0,
                std::isfinite(max_diff) && max_diff <= 1e-2 * max_ref ? "" : "  MISMATCH");
  }
  for (auto* w : weights) delete w;
  CUDA_OK(cudaEventDestroy(ev0));
  CUDA_OK(cudaEventDestroy(ev1));
  return 0;
}

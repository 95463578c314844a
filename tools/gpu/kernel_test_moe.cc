// GPU kernel suite (see kernel_test_cases.h): the MoE kernels (router, permute, experts).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/router.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/experts.h"
#include "kernels/cuda/moe_permute.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/router.h"
#include "kernels/cuda/router_permute.h"
#include "kernels/cuda/small_batch_experts.h"
#include "tools/gpu/kernel_test_cases.h"

namespace moe::gpu_test {

namespace kc = ::moe::kernels::cpu;
namespace kg = ::moe::kernels::cuda;

// LaunchMoePermute against a CPU stable counting sort, exactly: counts, offsets, every
// row_token / slot_row entry and the active list. Sizes cover the one-warp path (up to 32
// slots), the one-block path (up to 2048 slots) and the multi-block path (full chunks of 1024 with and without a tail).
void TestPermute(Rng& rng, Report& rep) {
  struct Case { int64_t T; int E, k; bool skew; };
  for (const Case& c : std::vector<Case>{{1, 64, 8, false}, {64, 64, 8, false}, {64, 64, 8, true}, {256, 64, 8, false},
                                         {257, 64, 8, false}, {512, 64, 8, false}, {5000, 64, 8, false},
                                         {3000, 128, 8, true}, {700, 1024, 8, false}, {4096, 8, 2, false},
                                         {333, 512, 40, false}, {1, 8, 2, false}, {0, 64, 8, false},
                                         // the one-warp path (<= 32 slots), experts past 32 and 1024
                                         {4, 64, 8, false}, {4, 64, 8, true}, {3, 1024, 8, false}, {16, 2, 2, true},
                                         {1, 1024, 1, false}}) {
    const int64_t S = c.T * c.k;
    std::vector<int32_t> idx(S);
    for (int64_t t = 0; t < c.T; ++t) {
      // k distinct experts per token (as a router picks); skew: mostly a few experts.
      std::vector<int32_t> pick;
      while (static_cast<int>(pick.size()) < c.k) {
        const int e = c.skew && rng.Int(0, 3) > 0 ? rng.Int(0, std::min(c.E, c.k + 2) - 1) : rng.Int(0, c.E - 1);
        if (std::find(pick.begin(), pick.end(), e) == pick.end()) pick.push_back(e);
      }
      std::copy(pick.begin(), pick.end(), idx.begin() + t * c.k);
    }
    std::vector<int32_t> want_counts(c.E, 0), want_off(c.E + 1, 0), want_rt(S), want_sr(S), want_active(c.E + 1, 0);
    for (int32_t e : idx) want_counts[e]++;
    for (int e = 0; e < c.E; ++e) want_off[e + 1] = want_off[e] + want_counts[e];
    std::vector<int32_t> next(want_off.begin(), want_off.end() - 1);
    for (int64_t s = 0; s < S; ++s) {
      const int32_t r = next[idx[s]]++;
      want_sr[s] = r;
      want_rt[r] = static_cast<int32_t>(s / c.k);
    }
    for (int e = 0; e < c.E; ++e)
      if (want_counts[e] > 0) want_active[1 + want_active[0]++] = e;
    DevBuf<int32_t> didx(idx), dcounts(c.E), doff(c.E + 1), drt(S), dsr(S), dactive(c.E + 1);
    dcounts.Poison();
    doff.Poison();
    drt.Poison();
    dsr.Poison();
    dactive.Poison();
    LAUNCH_OK(kg::LaunchMoePermute(didx.get(), S, c.k, c.E, dcounts.get(), doff.get(), drt.get(), dsr.get(), nullptr,
                                   dactive.get()));
    auto active = dactive.Download();
    active.resize(1 + want_active[0]);
    want_active.resize(1 + want_active[0]);
    const bool ok = dcounts.Download() == want_counts && doff.Download() == want_off && (S == 0 || drt.Download() == want_rt) &&
                    (S == 0 || dsr.Download() == want_sr) && active == want_active;
    rep.Check("moe_permute standalone (exact)", Shape({{"T", c.T}, {"E", c.E}, {"k", c.k}, {"skew", c.skew}}),
              ok ? 0.0 : INFINITY, 0.0);
  }
}

void TestRouter(Rng& rng, Report& rep) {
  struct Case { int64_t T; int E, k; bool renorm; bool ties; };
  for (const Case& c : std::vector<Case>{{1, 64, 8, false, false}, {333, 64, 8, false, false}, {97, 128, 8, true, false},
                                          {50, 8, 2, true, false}, {41, 60, 4, false, false}, {64, 64, 8, true, true},
                                          {9, 512, 40, true, false}, {17, 256, 8, false, false}, {5, 32, 4, true, false}, {64, 64, 8, false, true}}) {
    std::vector<float> logits = rng.Normal(c.T * c.E, 2.f);
    if (c.ties) for (auto& l : logits) l = static_cast<float>(rng.Int(-2, 2));  // many exact ties
    std::vector<int32_t> ref_idx(c.T * c.k);
    std::vector<float> ref_w(c.T * c.k);
    kc::RouterSoftmaxTopK(logits.data(), c.T, c.E, c.k, c.renorm, ref_idx.data(), ref_w.data(), nullptr);
    DevBuf<float> dl(logits), dw(c.T * c.k);
    DevBuf<int32_t> di(c.T * c.k);
    dw.Poison();
    di.Poison();
    LAUNCH_OK(kg::LaunchRouterSoftmaxTopK(dl.get(), c.T, c.E, c.k, c.renorm, di.get(), dw.get(), nullptr));
    const auto idx = di.Download();
    const bool same = idx == ref_idx;
    const std::string shape = Shape({{"T", c.T}, {"E", c.E}, {"k", c.k}, {"renorm", c.renorm}, {"ties", c.ties}});
    rep.Check("router top-k indices", shape, same ? 0.0 : INFINITY, 0.0);
    rep.Check("router weights", shape, RelErr(dw.Download(), ref_w), kF32Bound);
  }
}

// LaunchSiluMul with gate_up in bf16 (what the grouped expert GEMM writes): the vectorised
// kernel (width % 8 == 0, aligned) and the scalar one (odd width, or a buffer offset by
// one element), against silu(g) * u in fp32 on the same bf16 inputs.
void CheckSiluMulBf16In(Rng& rng, Report& rep) {
  struct Case { int64_t rows, width, offset; };
  for (const Case& c : std::vector<Case>{{7, 1024, 0}, {33, 200, 0}, {5, 100, 0}, {9, 37, 0}, {4, 64, 1}}) {
    std::vector<float> gu = rng.Normal(c.rows * 2 * c.width + c.offset, 2.f);
    const auto gub = RoundBf16(gu);
    std::vector<float> ref(c.rows * c.width);
    for (int64_t r = 0; r < c.rows; ++r)
      kc::SiluMul(gu.data() + c.offset + r * 2 * c.width, gu.data() + c.offset + r * 2 * c.width + c.width, c.width,
                  ref.data() + r * c.width, nullptr);
    DevBuf<Bf16> dgu(gub), dout(c.rows * c.width + c.offset);
    dout.Poison();
    LAUNCH_OK(kg::LaunchSiluMul(dgu.get() + c.offset, c.rows, c.width, dout.get() + c.offset, nullptr));
    auto out = ToF32(dout.Download());
    out.erase(out.begin(), out.begin() + c.offset);
    rep.Check("silu_mul bf16 in", Shape({{"rows", c.rows}, {"width", c.width}, {"offset", c.offset}}),
              RelErr(out, ref), kBf16Bound);
  }
}

// LaunchMoeCombine over 2-byte expert rows (what RunExpertsOutT writes), bf16 and fp16,
// against the weighted sum in fp32 of the same rounded rows, slots in order: the
// vectorised kernel (hidden % 4 == 0, aligned) and the scalar one (odd hidden, or rows
// offset by one element), slot_row a random permutation, fresh poisoned output.
void CheckCombineTyped(Rng& rng, Report& rep) {
  struct Case { int64_t T; int k; int64_t H, offset; };
  for (const Case& c : std::vector<Case>{{7, 8, 2048, 0}, {33, 2, 264, 0}, {5, 4, 37, 0}, {9, 4, 64, 1}, {1, 1, 4, 0}}) {
    const int64_t S = c.T * c.k;
    std::vector<float> x = rng.Normal(S * c.H + c.offset, 2.f), wts = rng.Normal(S);
    std::vector<int32_t> slot_row(S);
    for (int64_t s = 0; s < S; ++s) slot_row[s] = static_cast<int32_t>(s);
    std::shuffle(slot_row.begin(), slot_row.end(), rng.gen());
    const std::string shape = Shape({{"T", c.T}, {"k", c.k}, {"H", c.H}, {"offset", c.offset}});
    DevBuf<int32_t> dsr(slot_row);
    DevBuf<float> dw(wts), dout(c.T * c.H);
    // ref over the rows as the GPU holds them (xr: x rounded to the tested type).
    auto reference = [&](const std::vector<float>& xr) {
      std::vector<float> ref(c.T * c.H, 0.f);
      for (int64_t t = 0; t < c.T; ++t)
        for (int i = 0; i < c.k; ++i)
          for (int64_t h = 0; h < c.H; ++h)
            ref[t * c.H + h] += wts[t * c.k + i] * xr[c.offset + slot_row[t * c.k + i] * c.H + h];
      return ref;
    };
    {
      std::vector<float> xr = x;
      const auto xb = RoundBf16(xr);
      DevBuf<Bf16> dx(xb);
      dout.Poison();
      LAUNCH_OK(kg::LaunchMoeCombine(dx.get() + c.offset, dsr.get(), dw.get(), c.T, c.k, c.H, dout.get(), nullptr));
      rep.Check("moe_combine bf16 in", shape, RelErr(dout.Download(), reference(xr)), kF32Bound);
    }
    {
      std::vector<float> xr(x.size());
      std::vector<__half> xh(x.size());
      for (size_t i = 0; i < x.size(); ++i) {
        const uint16_t b = F32ToF16(x[i]);
        std::memcpy(static_cast<void*>(&xh[i]), &b, 2);
        xr[i] = F16ToF32(b);
      }
      DevBuf<__half> dx(xh);
      dout.Poison();
      LAUNCH_OK(kg::LaunchMoeCombine(dx.get() + c.offset, dsr.get(), dw.get(), c.T, c.k, c.H, dout.get(), nullptr));
      rep.Check("moe_combine fp16 in", shape, RelErr(dout.Download(), reference(xr)), kF32Bound);
    }
  }
}

namespace {

template <typename V>
bool SameBytes(const std::vector<V>& a, const std::vector<V>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(V)) == 0;
}

// Host values of a 16-bit type from fp32 (bf16 or fp16), for the fused combine cases.
template <typename V>
std::vector<V> HostVals(const std::vector<float>& f) {
  std::vector<V> r(f.size());
  for (size_t i = 0; i < f.size(); ++i) {
    if constexpr (sizeof(V) == 4) {
      r[i] = f[i];
    } else {
      const uint16_t b = std::is_same_v<V, Bf16> ? F32ToBf16(f[i]) : F32ToF16(f[i]);
      std::memcpy(static_cast<void*>(&r[i]), &b, 2);
    }
  }
  return r;
}

// LaunchMoeCombineAddRmsNorm (rows R, weight / out T) against LaunchMoeCombine +
// LaunchAddRmsNorm on the same inputs: residual and output bit-identical. offset: the
// expert rows start one element in (the unaligned, scalar-load path).
template <typename R, typename T>
void CheckCombineNorm(Rng& rng, Report& rep, const char* what, int64_t rows, int k, int n, int offset) {
  const int64_t S = rows * k;
  std::vector<float> ex = rng.Normal(S * n + offset, 2.f), x = rng.Normal(rows * n, 3.f), w = rng.Normal(n, 0.5f);
  std::vector<float> wts = rng.Normal(S);
  std::vector<int32_t> slot_row(S);
  for (int64_t i = 0; i < S; ++i) slot_row[i] = static_cast<int32_t>(i);
  std::shuffle(slot_row.begin(), slot_row.end(), rng.gen());
  DevBuf<R> dex(HostVals<R>(ex));
  DevBuf<T> dw(HostVals<T>(w)), dout1(rows * n), dout2(rows * n);
  DevBuf<int32_t> dsr(slot_row);
  DevBuf<float> dwts(wts), dres1(x), dres2(x), ddelta(rows * n);
  dout1.Poison();
  dout2.Poison();
  ddelta.Poison();
  const float eps = 1e-6f;
  LAUNCH_OK(kg::LaunchMoeCombine(dex.get() + offset, dsr.get(), dwts.get(), rows, k, n, ddelta.get(), nullptr));
  LAUNCH_OK(kg::LaunchAddRmsNorm(dres1.get(), ddelta.get(), rows, n, dw.get(), eps, dout1.get(), nullptr));
  LAUNCH_OK(kg::LaunchMoeCombineAddRmsNorm(dex.get() + offset, dsr.get(), dwts.get(), k, dres2.get(), rows, n, dw.get(),
                                           eps, dout2.get(), nullptr));
  const bool same = SameBytes(dres1.Download(), dres2.Download()) && SameBytes(dout1.Download(), dout2.Download());
  rep.Check(std::string("combine+add_rms_norm ") + what + " (exact)",
            Shape({{"rows", rows}, {"k", k}, {"n", n}, {"offset", offset}}), same ? 0.0 : INFINITY, 0.0);
}

}  // namespace

// The fused tiny-step routing (LaunchRouterTopKPermuteTiny, LaunchCopyRoutesPermuteTiny)
// against LaunchRouterSoftmaxTopK + LaunchMoePermute on the same logits: indices, weights
// (bitwise), counts, offsets, row_token, slot_row and the active list identical, outputs
// poisoned alike. The model shapes at n = 1..4 (OLMoE E=64 k=8, Qwen3 E=128 k=8, Mixtral
// E=8 k=2, Qwen2 E=60 k=4), the 32-slot edge and heavy ties.
void TestRouterPermuteFused(Rng& rng, Report& rep) {
  struct Case { int64_t n; int E, k; bool renorm, ties; };
  std::vector<Case> cases;
  for (int64_t n = 1; n <= 4; ++n) {
    cases.push_back({n, 64, 8, false, false});
    cases.push_back({n, 128, 8, true, false});
    cases.push_back({n, 8, 2, true, false});
    cases.push_back({n, 60, 4, false, false});
  }
  for (const Case& c : {Case{4, 64, 8, false, true}, Case{32, 8, 1, false, false}, Case{2, 512, 16, true, false},
                        Case{3, 33, 5, true, true}, Case{16, 2, 2, false, false}})
    cases.push_back(c);
  for (const Case& c : cases) {
    const int64_t S = c.n * c.k;
    std::vector<float> logits = rng.Normal(c.n * c.E, 2.f);
    if (c.ties) for (auto& l : logits) l = static_cast<float>(rng.Int(-2, 2));
    DevBuf<float> dl(logits);
    struct Out {
      DevBuf<int32_t> idx, counts, offsets, rt, sr, active;
      DevBuf<float> w;
      Out(int64_t S, int E) : idx(S), counts(E), offsets(E + 1), rt(S), sr(S), active(E + 1), w(S) {
        idx.Poison(), counts.Poison(), offsets.Poison(), rt.Poison(), sr.Poison(), active.Poison(), w.Poison();
      }
      bool Same(const Out& o) const {
        return idx.Download() == o.idx.Download() && SameBytes(w.Download(), o.w.Download()) &&
               counts.Download() == o.counts.Download() && offsets.Download() == o.offsets.Download() &&
               rt.Download() == o.rt.Download() && sr.Download() == o.sr.Download() &&
               active.Download() == o.active.Download();
      }
    } two(S, c.E), fused(S, c.E), copied(S, c.E);
    LAUNCH_OK(kg::LaunchRouterSoftmaxTopK(dl.get(), c.n, c.E, c.k, c.renorm, two.idx.get(), two.w.get(), nullptr));
    LAUNCH_OK(kg::LaunchMoePermute(two.idx.get(), S, c.k, c.E, two.counts.get(), two.offsets.get(), two.rt.get(),
                                   two.sr.get(), nullptr, two.active.get()));
    LAUNCH_OK(kg::LaunchRouterTopKPermuteTiny(dl.get(), c.n, c.E, c.k, c.renorm, fused.idx.get(), fused.w.get(),
                                              fused.counts.get(), fused.offsets.get(), fused.rt.get(), fused.sr.get(),
                                              fused.active.get(), nullptr));
    LAUNCH_OK(kg::LaunchCopyRoutesPermuteTiny(two.idx.get(), two.w.get(), c.n, c.E, c.k, copied.idx.get(), copied.w.get(),
                                              copied.counts.get(), copied.offsets.get(), copied.rt.get(), copied.sr.get(),
                                              copied.active.get(), nullptr));
    const std::string shape = Shape({{"n", c.n}, {"E", c.E}, {"k", c.k}, {"renorm", c.renorm}, {"ties", c.ties}});
    rep.Check("router+permute fused (exact)", shape, fused.Same(two) ? 0.0 : INFINITY, 0.0);
    rep.Check("copy routes+permute (exact)", shape, copied.Same(two) ? 0.0 : INFINITY, 0.0);
  }
  // Past the tiny limit the launchers refuse (the caller keeps the two launches).
  {
    DevBuf<float> dl(64 * 5);
    DevBuf<int32_t> di(40), dc(64), doff(65), drt(40), dsr(40);
    DevBuf<float> dw(40);
    const cudaError_t e = kg::LaunchRouterTopKPermuteTiny(dl.get(), 5, 64, 8, false, di.get(), dw.get(), dc.get(),
                                                          doff.get(), drt.get(), dsr.get(), nullptr, nullptr);
    rep.Check("router+permute fused refuses n*k>32", "n=5 E=64 k=8", e == cudaErrorInvalidValue ? 0.0 : INFINITY, 0.0);
  }
}

// The combine fused into the next AddRmsNorm: every rows / model type pair the runner
// uses, the vector norm kernel (n % 4 == 0) and the scalar one (odd n, or n past the
// vector kernel's reach), aligned and unaligned expert rows, k of the model shapes.
void TestCombineNormFused(Rng& rng, Report& rep) {
  struct Case { int64_t rows; int k, n, offset; };
  for (const Case& c : std::vector<Case>{{1, 8, 2048, 0}, {2, 8, 2048, 0}, {4, 4, 3584, 0}, {3, 2, 4096, 0},
                                         {1, 8, 2048, 1}, {33, 8, 1024, 0}, {5, 4, 4095, 0}, {2, 8, 16388, 0},
                                         {1, 1, 64, 0}}) {
    CheckCombineNorm<float, Bf16>(rng, rep, "f32 rows bf16", c.rows, c.k, c.n, c.offset);
    CheckCombineNorm<Bf16, Bf16>(rng, rep, "bf16 rows bf16", c.rows, c.k, c.n, c.offset);
    CheckCombineNorm<float, __half>(rng, rep, "f32 rows fp16", c.rows, c.k, c.n, c.offset);
    CheckCombineNorm<__half, __half>(rng, rep, "fp16 rows fp16", c.rows, c.k, c.n, c.offset);
    CheckCombineNorm<float, float>(rng, rep, "f32 rows f32", c.rows, c.k, c.n, c.offset);
  }
}

namespace {

const char* StateName(kg::GroupedGemmState s) {
  switch (s) {
    case kg::GroupedGemmState::kUntried: return "untried";
    case kg::GroupedGemmState::kAccepted: return "grouped";
    case kg::GroupedGemmState::kRefused: return "refused, loop";
  }
  return "?";
}

// "gate_up grouped, down refused, loop (CUBLAS_STATUS_NOT_SUPPORTED), down bf16 grouped":
// what kGrouped ran (down: fp32 out, RunExperts; down bf16: RunExpertsOutT).
std::string GroupedSupportText() {
  const auto s = kg::ExpertsGroupedGemmSupport<Bf16>();
  std::string t = std::string("gate_up ") + StateName(s.gate_up);
  if (s.gate_up == kg::GroupedGemmState::kRefused) t += std::string(" (") + cublasGetStatusName(s.gate_up_status) + ")";
  t += std::string(", down ") + StateName(s.down);
  if (s.down == kg::GroupedGemmState::kRefused) t += std::string(" (") + cublasGetStatusName(s.down_status) + ")";
  t += std::string(", down bf16 ") + StateName(s.down_t);
  if (s.down_t == kg::GroupedGemmState::kRefused) t += std::string(" (") + cublasGetStatusName(s.down_t_status) + ")";
  return t;
}

// CPU reference of the routed expert FFN: ref[t] = sum_i w_i * down_e(silu(gate_e h_t) *
// up_e h_t), e = idx[t, i], in fp32 on the bf16 weights; the rows of one expert go through
// kc::Linear together (per-row arithmetic is the same as one row at a time).
std::vector<float> ExpertsReference(const std::vector<float>& h, const std::vector<int32_t>& idx,
                                    const std::vector<float>& wts, const std::vector<std::vector<Bf16>>& gu_b,
                                    const std::vector<std::vector<Bf16>>& down_b, int64_t T, int E, int k, int64_t H,
                                    int64_t I, kc::ThreadPool* pool) {
  std::vector<std::vector<int64_t>> slots(E);
  for (int64_t s = 0; s < T * k; ++s) slots[idx[s]].push_back(s);
  std::vector<float> ref(T * H, 0.f);
  for (int e = 0; e < E; ++e) {
    const int64_t n = static_cast<int64_t>(slots[e].size());
    if (n == 0) continue;
    std::vector<float> x(n * H), g(n * 2 * I), act(n * I), y(n * H);
    for (int64_t r = 0; r < n; ++r) std::copy_n(h.data() + (slots[e][r] / k) * H, H, x.data() + r * H);
    const auto gbits = Bits(gu_b[e]), dbits = Bits(down_b[e]);
    kc::Linear(x.data(), n, H, gbits.data(), DType::kBF16, 2 * I, nullptr, DType::kF32, g.data(), pool);
    for (int64_t r = 0; r < n; ++r) kc::SiluMul(g.data() + r * 2 * I, g.data() + r * 2 * I + I, I, act.data() + r * I, nullptr);
    kc::Linear(act.data(), n, I, dbits.data(), DType::kBF16, H, nullptr, DType::kF32, y.data(), pool);
    for (int64_t r = 0; r < n; ++r) kc::ScaledAdd(ref.data() + (slots[e][r] / k) * H, y.data() + r * H, wts[slots[e][r]], H);
  }
  return ref;
}

}  // namespace

// The whole expert path: permute by the CPU router's picks, gather, expert FFN through
// cuBLAS (the default grouped GEMMs and the per-expert loop, fresh poisoned buffers each)
// with fused SwiGLU, weighted combine; against a CPU reference. Each path twice: down to
// fp32 (RunExperts, fp32 combine) and down to bf16 (RunExpertsOutT, bf16-input combine,
// what the runner's grouped prefill path runs). For steps of at most
// kSmallBatchExpertsMaxTokens tokens also the small-batch path (device-side assignment, no
// gather). At the OLMoE prefill shape it prints (does not assert) loop vs grouped times.
void TestExperts(Rng& rng, Report& rep, cublasHandle_t cublas) {
  CheckSiluMulBf16In(rng, rep);
  CheckCombineTyped(rng, rep);
  kc::ThreadPool pool(0);
  struct Case { int64_t T; int E, k; int64_t H, I; };
  for (const Case& c : std::vector<Case>{{1, 64, 8, 256, 128}, {37, 16, 4, 512, 384}, {200, 8, 2, 320, 200}, {5, 128, 8, 192, 96},
                                               {64, 64, 8, 1024, 512}, {3, 64, 8, 2048, 1024}, {61, 4, 2, 264, 136},
                                               // small-batch rows per expert exactly 8, 16 and 64 (N / K tails: 200, 136)
                                               {8, 2, 2, 384, 200}, {16, 2, 2, 512, 200}, {64, 2, 2, 256, 136},
                                               // up to kSmallBatchExpertsMaxTokens: 16-token passes, up to 256 rows on one expert
                                               {256, 64, 8, 1024, 512}, {129, 8, 2, 320, 200}, {256, 2, 2, 256, 136},
                                               // prefill: many rows per expert (OLMoE-1B-7B shape; an odd count on 8 experts);
                                               // inter 100: act rows not 16-byte aligned, so grouped falls back to the loop
                                               {2048, 64, 8, 2048, 1024}, {513, 8, 2, 768, 512}, {300, 8, 2, 264, 100}}) {
    std::vector<float> h = rng.Normal(c.T * c.H);
    auto hb = RoundBf16(h);
    std::vector<float> logits = rng.Normal(c.T * c.E);
    std::vector<int32_t> idx(c.T * c.k);
    std::vector<float> wts(c.T * c.k);
    kc::RouterSoftmaxTopK(logits.data(), c.T, c.E, c.k, true, idx.data(), wts.data(), nullptr);
    std::vector<std::vector<Bf16>> gu_b(c.E), down_b(c.E);
    std::vector<DevBuf<Bf16>*> dev;
    std::vector<kg::ExpertWeightsBf16> ew(c.E);
    for (int e = 0; e < c.E; ++e) {
      std::vector<float> gu = rng.Normal(2 * c.I * c.H, 1.f / std::sqrt(float(c.H)));
      std::vector<float> down = rng.Normal(c.H * c.I, 1.f / std::sqrt(float(c.I)));
      gu_b[e] = RoundBf16(gu);
      down_b[e] = RoundBf16(down);
      dev.push_back(new DevBuf<Bf16>(gu_b[e]));
      ew[e].gate_up = dev.back()->get();
      dev.push_back(new DevBuf<Bf16>(down_b[e]));
      ew[e].down = dev.back()->get();
    }
    const std::vector<float> ref = ExpertsReference(h, idx, wts, gu_b, down_b, c.T, c.E, c.k, c.H, c.I, &pool);
    const int64_t S = c.T * c.k;
    DevBuf<int32_t> didx(idx), dcounts(c.E), doffsets(c.E + 1), drow_token(S), dslot_row(S);
    DevBuf<float> dw(wts), dgu(S * 2 * c.I), dexp_out(S * c.H), dout(c.T * c.H);
    DevBuf<Bf16> dh(hb), dperm(S * c.H), dact(S * c.I), dexp_out_t(S * c.H);
    drow_token.Poison();
    dslot_row.Poison();
    dperm.Poison();
    LAUNCH_OK(kg::LaunchMoePermute(didx.get(), S, c.k, c.E, dcounts.get(), doffsets.get(), drow_token.get(), dslot_row.get(), nullptr));
    const auto counts = dcounts.Download(), offsets = doffsets.Download();
    const auto row_token = drow_token.Download(), slot_row = dslot_row.Download();
    // Permutation invariants: counts match, rows of each expert in ascending token order,
    // slot_row and row_token consistent.
    bool perm_ok = offsets[c.E] == S;
    std::vector<int32_t> want_counts(c.E, 0);
    for (int32_t e : idx) want_counts[e]++;
    perm_ok &= counts == want_counts;
    for (int64_t s = 0; s < S && perm_ok; ++s) {
      const int32_t r = slot_row[s];
      const int e = idx[s];
      perm_ok &= r >= offsets[e] && r < offsets[e] + counts[e] && row_token[r] == s / c.k;
    }
    for (int e = 0; e < c.E && perm_ok; ++e)
      for (int32_t r = offsets[e] + 1; r < offsets[e] + counts[e]; ++r) perm_ok &= row_token[r] > row_token[r - 1];
    const std::string shape = Shape({{"T", c.T}, {"E", c.E}, {"k", c.k}, {"H", c.H}, {"I", c.I}});
    rep.Check("moe_permute (exact)", shape, perm_ok ? 0.0 : INFINITY, 0.0);
    LAUNCH_OK(kg::LaunchGatherRows(dh.get(), drow_token.get(), S, c.H, dperm.get(), nullptr));
    // out_t: down written in bf16 (RunExpertsOutT into dexp_out_t), else fp32 (dexp_out).
    auto run = [&](kg::ExpertsGemm path, bool out_t = false) {
      const char* err =
          out_t ? kg::RunExpertsOutT(cublas, nullptr, dperm.get(), counts.data(), offsets.data(), c.E, ew.data(), c.H,
                                     c.I, dgu.get(), dact.get(), dexp_out_t.get(), path)
                : kg::RunExperts(cublas, nullptr, dperm.get(), counts.data(), offsets.data(), c.E, ew.data(), c.H, c.I,
                                 dgu.get(), dact.get(), dexp_out.get(), path);
      if (err != nullptr) {
        std::fprintf(stderr, "RunExperts: %s\n", err);
        std::exit(2);
      }
    };
    // Grouped (the default; the loop where cuBLAS refuses it), then the per-expert loop.
    for (const auto& [path, label] : {std::pair{kg::ExpertsGemm::kGrouped, "experts ffn+combine"},
                                      std::pair{kg::ExpertsGemm::kLoop, "experts ffn+combine loop"}}) {
      dgu.Poison();
      dact.Poison();
      dexp_out.Poison();
      dout.Poison();
      run(path);
      CUDA_OK(cudaDeviceSynchronize());
      LAUNCH_OK(kg::LaunchMoeCombine(dexp_out.get(), dslot_row.get(), dw.get(), c.T, c.k, c.H, dout.get(), nullptr));
      rep.Check(label, shape, RelErr(dout.Download(), ref), kBf16Bound);
    }
    // The same with down in bf16 and the bf16-input combine (expert outputs rounded to bf16).
    for (const auto& [path, label] : {std::pair{kg::ExpertsGemm::kGrouped, "experts ffn+combine bf16 out"},
                                      std::pair{kg::ExpertsGemm::kLoop, "experts ffn+combine bf16 out loop"}}) {
      dgu.Poison();
      dact.Poison();
      dexp_out_t.Poison();
      dout.Poison();
      run(path, true);
      CUDA_OK(cudaDeviceSynchronize());
      LAUNCH_OK(kg::LaunchMoeCombine(dexp_out_t.get(), dslot_row.get(), dw.get(), c.T, c.k, c.H, dout.get(), nullptr));
      rep.Check(label, shape, RelErr(dout.Download(), ref), kBf16Bound);
    }
    if (c.T == 2048 && c.E == 64 && c.k == 8 && c.H == 2048 && c.I == 1024) {
      // Timing (printed, not asserted): the whole RunExperts on the device, counts known.
      const double flop = 6.0 * S * c.H * c.I;  // gate_up 2*S*H*2I + down 2*S*I*H
      cudaEvent_t t0, t1;
      CUDA_OK(cudaEventCreate(&t0));
      CUDA_OK(cudaEventCreate(&t1));
      auto time_us = [&](kg::ExpertsGemm path, bool out_t) {
        constexpr int kWarm = 3, kReps = 20;
        for (int i = 0; i < kWarm; ++i) run(path, out_t);
        CUDA_OK(cudaEventRecord(t0, nullptr));
        for (int i = 0; i < kReps; ++i) run(path, out_t);
        CUDA_OK(cudaEventRecord(t1, nullptr));
        CUDA_OK(cudaEventSynchronize(t1));
        float ms = 0.f;
        CUDA_OK(cudaEventElapsedTime(&ms, t0, t1));
        return 1e3 * ms / kReps;
      };
      // loop: fp32 down (RunExperts); grouped: RunExperts (fp32 down); grouped bf16 out:
      // RunExpertsOutT, what the runner's prefill runs. Speedups are over the loop.
      const double loop_us = time_us(kg::ExpertsGemm::kLoop, false);
      const double grouped_us = time_us(kg::ExpertsGemm::kGrouped, false);
      const double grouped_t_us = time_us(kg::ExpertsGemm::kGrouped, true);
      std::printf("time experts %s: loop %.1f us (%.1f TFLOP/s), grouped %.1f us (%.1f TFLOP/s), %.2fx, "
                  "grouped bf16 out %.1f us (%.1f TFLOP/s), %.2fx [%s]\n",
                  shape.c_str(), loop_us, flop / loop_us * 1e-6, grouped_us, flop / grouped_us * 1e-6,
                  loop_us / grouped_us, grouped_t_us, flop / grouped_t_us * 1e-6, loop_us / grouped_t_us,
                  GroupedSupportText().c_str());
      std::fflush(stdout);
      CUDA_OK(cudaEventDestroy(t0));
      CUDA_OK(cudaEventDestroy(t1));
    }
    if (c.T <= kg::kSmallBatchExpertsMaxTokens && kg::SmallBatchExpertsSupported(c.H, c.I, sizeof(Bf16))) {
      std::vector<uintptr_t> ptrs;
      for (int e = 0; e < c.E; ++e) ptrs.push_back(reinterpret_cast<uintptr_t>(ew[e].gate_up));
      for (int e = 0; e < c.E; ++e) ptrs.push_back(reinterpret_cast<uintptr_t>(ew[e].down));
      DevBuf<uintptr_t> dptrs(ptrs);
      DevBuf<int32_t> dactive(c.E + 1);
      dactive.Poison();
      dcounts.Poison();
      doffsets.Poison();
      drow_token.Poison();
      dslot_row.Poison();
      dact.Poison();
      dexp_out.Poison();
      dout.Poison();
      LAUNCH_OK(kg::LaunchMoePermute(didx.get(), S, c.k, c.E, dcounts.get(), doffsets.get(), drow_token.get(),
                                     dslot_row.get(), nullptr, dactive.get()));
      const auto active = dactive.Download();
      bool active_ok = active[0] >= 1 && active[0] <= c.E;
      for (int i = 0, e = 0; active_ok && e < c.E; ++e) {
        if (want_counts[e] > 0) active_ok = active[1 + i++] == e;
        if (e == c.E - 1) active_ok = active_ok && i == active[0];
      }
      rep.Check("moe_permute active list (exact)", shape, active_ok ? 0.0 : INFINITY, 0.0);
      const auto* gu_ptrs = reinterpret_cast<const Bf16* const*>(dptrs.get());
      // Both kernel variants (tensor-core default and the CUDA-core one), fresh outputs each.
      for (const auto& [variant, vname] : {std::pair{kg::SmallBatchExpertsKernel::kMma, "mma"},
                                           std::pair{kg::SmallBatchExpertsKernel::kFma, "fma"}}) {
        dact.Poison();
        dexp_out.Poison();
        dout.Poison();
        LAUNCH_OK(kg::LaunchSmallBatchExpertsVariant(
            dh.get(), drow_token.get(), dcounts.get(), doffsets.get(), dactive.get(),
            static_cast<int>(std::min<int64_t>(c.E, S)), c.T, gu_ptrs, gu_ptrs + c.E, c.H, c.I, dact.get(),
            dexp_out.get(), variant, kg::kSmallBatchExpertsGateUp | kg::kSmallBatchExpertsDown, nullptr));
        LAUNCH_OK(kg::LaunchMoeCombine(dexp_out.get(), dslot_row.get(), dw.get(), c.T, c.k, c.H, dout.get(), nullptr));
        rep.Check(std::string("experts small-batch+combine ") + vname, shape, RelErr(dout.Download(), ref), kBf16Bound);
      }
    }
    for (auto* d : dev) delete d;
  }
  std::printf("experts grouped GEMM (bf16, %s default): %s\n",
              kg::ExpertsDefaultGemm() == kg::ExpertsGemm::kLoop ? "loop" : "grouped", GroupedSupportText().c_str());
  std::fflush(stdout);
}

}  // namespace moe::gpu_test

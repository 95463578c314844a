// GPU kernel suite: every CUDA kernel in kernels/cuda against its CPU reference in
// kernels/cpu on fresh random (bf16-rounded) inputs, several shapes including odd sizes,
// outputs poisoned with NaN before each run. Prints one line per case and a table; exits
// non-zero on any failure. Needs a GPU: built as a cc_binary, never run by CI.
//
// Usage: kernel_test [--seed N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/linear.h"
#include "kernels/cpu/paged_attention.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cpu/router.h"
#include "kernels/cuda/device_query.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/experts.h"
#include "kernels/cuda/linear.h"
#include "kernels/cuda/moe_permute.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/paged_attention.h"
#include "kernels/cuda/rope.h"
#include "kernels/cuda/router.h"
#include "kernels/cuda/small_batch_experts.h"
#include "tools/gpu/gpu_check.h"

namespace moe::gpu_test {
namespace {

namespace kc = ::moe::kernels::cpu;
namespace kg = ::moe::kernels::cuda;

constexpr double kF32Bound = 1e-3;   // fp32 arithmetic on both sides
constexpr double kBf16Bound = 1e-2;  // a bf16 operand or output on the GPU side

std::string Shape(std::initializer_list<std::pair<const char*, int64_t>> dims) {
  std::string s;
  for (auto& d : dims) s += std::string(s.empty() ? "" : " ") + d.first + "=" + std::to_string(d.second);
  return s;
}

std::vector<float> Weight(Rng& rng, size_t n, std::vector<Bf16>* bf) {
  std::vector<float> w = rng.Normal(n, 0.2f);
  for (auto& x : w) x += 1.f;
  *bf = RoundBf16(w);
  return w;
}

void TestNorms(Rng& rng, Report& rep) {
  const float eps = 1e-6f;
  for (auto [rows, n] : std::vector<std::pair<int64_t, int>>{{1, 64}, {7, 2048}, {33, 4095}, {5, 5120}, {1, 2048}, {2, 16384}, {3, 16388}, {4, 36}}) {
    std::vector<Bf16> wb;
    Weight(rng, n, &wb);
    const auto wbits = Bits(wb);
    std::vector<float> x = rng.Normal(rows * n, 3.f), delta = rng.Normal(rows * n);
    std::vector<float> ref(rows * n);
    kc::RmsNorm(x.data(), rows, n, wbits.data(), DType::kBF16, eps, ref.data(), nullptr);
    DevBuf<float> dx(x), dout(rows * n);
    DevBuf<Bf16> dw(wb), dob(rows * n);
    dout.Poison();
    dob.Poison();
    LAUNCH_OK(kg::LaunchRmsNorm(dx.get(), rows, n, dw.get(), eps, dout.get(), nullptr));
    LAUNCH_OK(kg::LaunchRmsNorm(dx.get(), rows, n, dw.get(), eps, dob.get(), nullptr));
    rep.Check("rms_norm f32->f32", Shape({{"rows", rows}, {"n", n}}), RelErr(dout.Download(), ref), kF32Bound);
    rep.Check("rms_norm f32->bf16", Shape({{"rows", rows}, {"n", n}}), RelErr(ToF32(dob.Download()), ref), kBf16Bound);

    // Fused residual add.
    std::vector<float> res = x;
    std::vector<float> ref_out(rows * n);
    kc::AddRmsNorm(res.data(), delta.data(), rows, n, wbits.data(), DType::kBF16, eps, ref_out.data(), nullptr);
    DevBuf<float> dres(x), ddelta(delta);
    dout.Poison();
    LAUNCH_OK(kg::LaunchAddRmsNorm(dres.get(), ddelta.get(), rows, n, dw.get(), eps, dout.get(), nullptr));
    rep.Check("add_rms_norm residual", Shape({{"rows", rows}, {"n", n}}), RelErr(dres.Download(), res), kF32Bound);
    rep.Check("add_rms_norm out f32", Shape({{"rows", rows}, {"n", n}}), RelErr(dout.Download(), ref_out), kF32Bound);
    DevBuf<float> dres2(x);
    dob.Poison();
    LAUNCH_OK(kg::LaunchAddRmsNorm(dres2.get(), ddelta.get(), rows, n, dw.get(), eps, dob.get(), nullptr));
    rep.Check("add_rms_norm out bf16", Shape({{"rows", rows}, {"n", n}}), RelErr(ToF32(dob.Download()), ref_out), kBf16Bound);
  }

  // q/k norms inside a strided qkv buffer [T, Q + 2 KV].
  struct QkCase { int64_t T; int heads, kv_heads, hd; bool per_head; };
  for (const QkCase& c : std::vector<QkCase>{{5, 16, 4, 128, true}, {17, 8, 8, 64, true}, {3, 12, 2, 96, false}, {9, 16, 4, 128, false}}) {
    const int64_t Q = int64_t{c.heads} * c.hd, KV = int64_t{c.kv_heads} * c.hd, S = Q + 2 * KV;
    std::vector<float> qkv = rng.Normal(c.T * S, 2.f);
    const int n_q = c.per_head ? c.hd : static_cast<int>(Q);
    const int n_k = c.per_head ? c.hd : static_cast<int>(KV);
    std::vector<Bf16> qw, kw;
    Weight(rng, n_q, &qw);
    Weight(rng, n_k, &kw);
    std::vector<float> q(c.T * Q), k(c.T * KV);
    for (int64_t t = 0; t < c.T; ++t) {
      std::copy_n(qkv.begin() + t * S, Q, q.begin() + t * Q);
      std::copy_n(qkv.begin() + t * S + Q, KV, k.begin() + t * KV);
    }
    const auto qbits = Bits(qw), kbits = Bits(kw);
    kc::RmsNorm(q.data(), c.per_head ? c.T * c.heads : c.T, n_q, qbits.data(), DType::kBF16, 1e-6f, q.data(), nullptr);
    kc::RmsNorm(k.data(), c.per_head ? c.T * c.kv_heads : c.T, n_k, kbits.data(), DType::kBF16, 1e-6f, k.data(), nullptr);
    std::vector<float> ref = qkv;
    for (int64_t t = 0; t < c.T; ++t) {
      std::copy_n(q.begin() + t * Q, Q, ref.begin() + t * S);
      std::copy_n(k.begin() + t * KV, KV, ref.begin() + t * S + Q);
    }
    DevBuf<float> d(qkv);
    DevBuf<Bf16> dqw(qw), dkw(kw);
    LAUNCH_OK(kg::LaunchRmsNormGroups(d.get(), c.T, S, c.per_head ? c.heads : 1, n_q, dqw.get(), 1e-6f, nullptr));
    LAUNCH_OK(kg::LaunchRmsNormGroups(d.get() + Q, c.T, S, c.per_head ? c.kv_heads : 1, n_k, dkw.get(), 1e-6f, nullptr));
    auto got = d.Download();
    // v must be untouched, bit for bit.
    bool v_same = true;
    for (int64_t t = 0; t < c.T; ++t)
      for (int64_t i = Q + KV; i < S; ++i) v_same &= got[t * S + i] == qkv[t * S + i];
    rep.Check(c.per_head ? "qk_norm per-head" : "qk_norm whole-proj",
              Shape({{"T", c.T}, {"heads", c.heads}, {"kv", c.kv_heads}, {"hd", c.hd}}),
              v_same ? RelErr(got, ref) : INFINITY, kF32Bound);
  }
}

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

void TestRope(Rng& rng, Report& rep) {
  struct Case { int64_t T; int heads, kv_heads, hd; double partial; double theta; };
  for (const Case& c : std::vector<Case>{{1, 32, 8, 128, 1.0, 1e6}, {37, 16, 16, 64, 1.0, 1e4}, {5, 12, 4, 96, 0.5, 1e4}, {11, 4, 2, 80, 1.0, 5e5}}) {
    const int64_t Q = int64_t{c.heads} * c.hd, KV = int64_t{c.kv_heads} * c.hd, S = Q + 2 * KV;
    const int rotary = static_cast<int>(c.hd * c.partial) / 2 * 2;
    const auto inv = kc::RopeInvFreq(rotary, c.theta);
    std::vector<float> qkv = rng.Normal(c.T * S);
    std::vector<int32_t> pos(c.T);
    for (auto& p : pos) p = rng.Int(0, 32767);
    std::vector<float> ref = qkv;
    kc::ApplyRope(ref.data(), c.T, S, c.heads, c.hd, rotary, pos.data(), inv.data(), nullptr);
    kc::ApplyRope(ref.data() + Q, c.T, S, c.kv_heads, c.hd, rotary, pos.data(), inv.data(), nullptr);
    DevBuf<float> d(qkv), dinv(inv);
    DevBuf<int32_t> dpos(pos);
    LAUNCH_OK(kg::LaunchRopeQk(d.get(), S, c.heads, d.get() + Q, S, c.kv_heads, c.T, c.hd, rotary, dpos.get(), dinv.get(), nullptr));
    rep.Check("rope q+k", Shape({{"T", c.T}, {"heads", c.heads}, {"kv", c.kv_heads}, {"hd", c.hd}, {"rot", rotary}}),
              RelErr(d.Download(), ref), kF32Bound);
  }
  // Fused rope + KV-cache write: q/k rotated in place as above, the cache rows at
  // `slots` equal to bf16(rotated k) / bf16(v) bit for bit, every other cache row
  // untouched (still the NaN poison). rot=0: no rotation, only the write.
  struct KvCase { int64_t T; int heads, kv_heads, hd; double partial; };
  for (const KvCase& c : std::vector<KvCase>{{1, 16, 16, 128, 1.0}, {1, 32, 8, 128, 1.0}, {29, 12, 4, 96, 0.5},
                                             {64, 16, 16, 128, 1.0}, {3, 4, 2, 80, 0.0}}) {
    const int64_t Q = int64_t{c.heads} * c.hd, KV = int64_t{c.kv_heads} * c.hd, S = Q + 2 * KV;
    const int rotary = static_cast<int>(c.hd * c.partial) / 2 * 2;
    const auto inv = kc::RopeInvFreq(rotary > 0 ? rotary : 2, 1e4);
    std::vector<float> qkv = rng.Normal(c.T * S);
    std::vector<int32_t> pos(c.T);
    for (auto& p : pos) p = rng.Int(0, 32767);
    std::vector<float> ref = qkv;
    if (rotary > 0) {
      kc::ApplyRope(ref.data(), c.T, S, c.heads, c.hd, rotary, pos.data(), inv.data(), nullptr);
      kc::ApplyRope(ref.data() + Q, c.T, S, c.kv_heads, c.hd, rotary, pos.data(), inv.data(), nullptr);
    }
    const int64_t cache_rows = c.T * 2 + 5;
    std::vector<int32_t> rows(cache_rows);
    std::iota(rows.begin(), rows.end(), 0);
    std::shuffle(rows.begin(), rows.end(), rng.gen());
    std::vector<int32_t> slots(rows.begin(), rows.begin() + c.T);
    DevBuf<float> d(qkv), dinv(inv);
    DevBuf<int32_t> dpos(pos), dslots(slots);
    DevBuf<Bf16> dk(cache_rows * KV), dv(cache_rows * KV);
    dk.Poison();
    dv.Poison();
    LAUNCH_OK(kg::LaunchRopeQkWriteKv(d.get(), S, c.heads, d.get() + Q, d.get() + Q + KV, S, c.kv_heads, c.T, c.hd,
                                      rotary, dpos.get(), dinv.get(), dslots.get(), dk.get(), dv.get(), nullptr));
    const std::string sh = Shape({{"T", c.T}, {"heads", c.heads}, {"kv", c.kv_heads}, {"hd", c.hd}, {"rot", rotary}});
    const auto got = d.Download();
    rep.Check("rope+write_kv q/k", sh, RelErr(got, ref), kF32Bound);
    // The cache holds exactly bf16 of what the kernel left in k (and of v).
    const auto kcache = dk.Download(), vcache = dv.Download();
    std::vector<bool> written(cache_rows, false);
    bool exact = true;
    for (int64_t t = 0; t < c.T; ++t) {
      written[slots[t]] = true;
      for (int64_t i = 0; i < KV; ++i) {
        exact &= Bits({kcache[slots[t] * KV + i]})[0] == F32ToBf16(got[t * S + Q + i]);
        exact &= Bits({vcache[slots[t] * KV + i]})[0] == F32ToBf16(qkv[t * S + Q + KV + i]);
      }
    }
    for (int64_t r = 0; r < cache_rows; ++r)
      if (!written[r])
        for (int64_t i = 0; i < KV; ++i) exact &= !std::isfinite(FromBf16(kcache[r * KV + i])) && !std::isfinite(FromBf16(vcache[r * KV + i]));
    rep.Check("rope+write_kv cache (exact)", sh, exact ? 0.0 : INFINITY, 0.0);
  }
}

// LaunchMoePermute against a CPU stable counting sort, exactly: counts, offsets, every
// row_token / slot_row entry and the active list. Sizes cover the one-block path (up to
// 2048 slots) and the multi-block path (full chunks of 1024 with and without a tail).
void TestPermute(Rng& rng, Report& rep) {
  struct Case { int64_t T; int E, k; bool skew; };
  for (const Case& c : std::vector<Case>{{1, 64, 8, false}, {64, 64, 8, false}, {64, 64, 8, true}, {256, 64, 8, false},
                                         {257, 64, 8, false}, {512, 64, 8, false}, {5000, 64, 8, false},
                                         {3000, 128, 8, true}, {700, 1024, 8, false}, {4096, 8, 2, false},
                                         {333, 512, 40, false}, {1, 8, 2, false}, {0, 64, 8, false}}) {
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

// The whole expert path: permute by the CPU router's picks, gather, grouped expert FFN
// through cuBLAS with fused SwiGLU, weighted combine; against a per-token CPU reference.
// For steps of at most kSmallBatchExpertsMaxTokens tokens also the small-batch path
// (device-side assignment, no gather), with freshly poisoned buffers.
void TestExperts(Rng& rng, Report& rep, cublasHandle_t cublas) {
  struct Case { int64_t T; int E, k; int64_t H, I; };
  for (const Case& c : std::vector<Case>{{1, 64, 8, 256, 128}, {37, 16, 4, 512, 384}, {200, 8, 2, 320, 200}, {5, 128, 8, 192, 96},
                                               {64, 64, 8, 1024, 512}, {3, 64, 8, 2048, 1024}, {61, 4, 2, 264, 136},
                                               // small-batch rows per expert exactly 8, 16 and 64 (N / K tails: 200, 136)
                                               {8, 2, 2, 384, 200}, {16, 2, 2, 512, 200}, {64, 2, 2, 256, 136}}) {
    std::vector<float> h = rng.Normal(c.T * c.H);
    auto hb = RoundBf16(h);
    std::vector<float> logits = rng.Normal(c.T * c.E);
    std::vector<int32_t> idx(c.T * c.k);
    std::vector<float> wts(c.T * c.k);
    kc::RouterSoftmaxTopK(logits.data(), c.T, c.E, c.k, true, idx.data(), wts.data(), nullptr);
    std::vector<std::vector<Bf16>> gu_b(c.E), down_b(c.E);
    std::vector<std::vector<float>> gu(c.E), down(c.E);
    std::vector<DevBuf<Bf16>*> dev;
    std::vector<kg::ExpertWeightsBf16> ew(c.E);
    for (int e = 0; e < c.E; ++e) {
      gu[e] = rng.Normal(2 * c.I * c.H, 1.f / std::sqrt(float(c.H)));
      down[e] = rng.Normal(c.H * c.I, 1.f / std::sqrt(float(c.I)));
      gu_b[e] = RoundBf16(gu[e]);
      down_b[e] = RoundBf16(down[e]);
      dev.push_back(new DevBuf<Bf16>(gu_b[e]));
      ew[e].gate_up = dev.back()->get();
      dev.push_back(new DevBuf<Bf16>(down_b[e]));
      ew[e].down = dev.back()->get();
    }
    // CPU reference: sum_i w_i * down(silu(gate x) * up x).
    std::vector<float> ref(c.T * c.H, 0.f), g(2 * c.I), act(c.I), y(c.H);
    for (int64_t t = 0; t < c.T; ++t) {
      for (int i = 0; i < c.k; ++i) {
        const int e = idx[t * c.k + i];
        const auto gbits = Bits(gu_b[e]), dbits = Bits(down_b[e]);
        kc::Linear(h.data() + t * c.H, 1, c.H, gbits.data(), DType::kBF16, 2 * c.I, nullptr, DType::kF32, g.data(), nullptr);
        kc::SiluMul(g.data(), g.data() + c.I, c.I, act.data(), nullptr);
        kc::Linear(act.data(), 1, c.I, dbits.data(), DType::kBF16, c.H, nullptr, DType::kF32, y.data(), nullptr);
        kc::ScaledAdd(ref.data() + t * c.H, y.data(), wts[t * c.k + i], c.H);
      }
    }
    const int64_t S = c.T * c.k;
    DevBuf<int32_t> didx(idx), dcounts(c.E), doffsets(c.E + 1), drow_token(S), dslot_row(S);
    DevBuf<float> dw(wts), dgu(S * 2 * c.I), dexp_out(S * c.H), dout(c.T * c.H);
    DevBuf<Bf16> dh(hb), dperm(S * c.H), dact(S * c.I);
    drow_token.Poison();
    dslot_row.Poison();
    dperm.Poison();
    dgu.Poison();
    dact.Poison();
    dexp_out.Poison();
    dout.Poison();
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
    const char* err = kg::RunExperts(cublas, nullptr, dperm.get(), counts.data(), offsets.data(), c.E, ew.data(), c.H, c.I,
                                     dgu.get(), dact.get(), dexp_out.get());
    if (err != nullptr) {
      std::fprintf(stderr, "RunExperts: %s\n", err);
      std::exit(2);
    }
    CUDA_OK(cudaDeviceSynchronize());
    LAUNCH_OK(kg::LaunchMoeCombine(dexp_out.get(), dslot_row.get(), dw.get(), c.T, c.k, c.H, dout.get(), nullptr));
    rep.Check("experts ffn+combine", shape, RelErr(dout.Download(), ref), kBf16Bound);
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
}

// Paged attention over a bf16 cache, both paths, against the CPU kernel over an fp32
// cache holding the same (bf16-exact) values. The GPU cache starts as NaN, so a read of
// any slot that was not written shows.
void TestAttention(Rng& rng, Report& rep) {
  struct SeqSpec { int start_pos, num_tokens; };
  struct Case { int heads, kv_heads, hd, window; std::vector<SeqSpec> seqs; };
  const std::vector<Case> cases = {
      {16, 16, 64, 0, {{0, 37}, {1, 1}, {100, 1}}},
      {32, 8, 128, 0, {{0, 70}, {50, 20}, {3000, 1}, {17, 1}, {0, 1}}},
      {12, 4, 96, 0, {{5, 33}, {700, 1}, {0, 16}}},
      {8, 2, 80, 0, {{0, 19}, {1234, 1}}},
      {4, 2, 256, 0, {{0, 21}, {300, 1}}},
      {16, 4, 128, 64, {{0, 150}, {200, 9}, {2500, 1}, {40, 1}}},
      {28, 4, 128, 0, {{8191, 1}, {4000, 1}, {31, 1}, {1000, 3}}},
      {16, 16, 128, 0, {{129, 1}}},
      {16, 16, 128, 0, {{0, 1}, {5, 1}, {130, 1}, {600, 1}, {33, 1}, {64, 1}}},
      {16, 16, 64, 32, {{129, 1}, {70, 1}}},
      {8, 8, 32, 0, {{77, 1}, {3, 5}}},
      {4, 1, 256, 0, {{513, 1}}},
  };
  const int bs = 16;
  for (const Case& c : cases) {
    const int ns = static_cast<int>(c.seqs.size());
    const int kv_row = c.kv_heads * c.hd;
    const int64_t Q = int64_t{c.heads} * c.hd;
    // Block tables: a random permutation of the physical blocks.
    int total_blocks = 0;
    std::vector<int> nblocks(ns);
    for (int i = 0; i < ns; ++i) {
      nblocks[i] = (c.seqs[i].start_pos + c.seqs[i].num_tokens + bs - 1) / bs;
      total_blocks += nblocks[i];
    }
    const int num_blocks = total_blocks + 3;
    std::vector<int32_t> perm(num_blocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng.gen());
    std::vector<int32_t> tables;
    std::vector<kg::CudaAttnSeq> gseqs(ns);
    std::vector<kc::AttentionSeq> cseqs(ns);
    int64_t T = 0;
    for (int i = 0; i < ns; ++i) {
      gseqs[i] = {static_cast<int32_t>(T), c.seqs[i].num_tokens, c.seqs[i].start_pos, static_cast<int32_t>(tables.size())};
      for (int b = 0; b < nblocks[i]; ++b) tables.push_back(perm[tables.size()]);
      T += c.seqs[i].num_tokens;
    }
    for (int i = 0; i < ns; ++i) {
      cseqs[i] = {gseqs[i].token_begin, gseqs[i].num_tokens, gseqs[i].start_pos, tables.data() + gseqs[i].block_table_offset};
    }
    // Cache contents before the step (bf16-exact), on both sides.
    const size_t cache_elems = static_cast<size_t>(num_blocks) * bs * kv_row;
    std::vector<float> kc_cache(cache_elems, 0.f), vc_cache(cache_elems, 0.f);
    std::vector<Bf16> kg_cache(cache_elems), vg_cache(cache_elems);
    const Bf16 nan = ToBf16(NAN);
    std::fill(kg_cache.begin(), kg_cache.end(), nan);
    std::fill(vg_cache.begin(), vg_cache.end(), nan);
    for (int i = 0; i < ns; ++i) {
      for (int p = 0; p < c.seqs[i].start_pos; ++p) {
        const int64_t slot = int64_t{tables[gseqs[i].block_table_offset + p / bs]} * bs + p % bs;
        std::vector<float> kr = rng.Normal(kv_row), vr = rng.Normal(kv_row);
        auto kb = RoundBf16(kr);
        auto vb = RoundBf16(vr);
        std::copy(kr.begin(), kr.end(), kc_cache.begin() + slot * kv_row);
        std::copy(vr.begin(), vr.end(), vc_cache.begin() + slot * kv_row);
        std::copy(kb.begin(), kb.end(), kg_cache.begin() + slot * kv_row);
        std::copy(vb.begin(), vb.end(), vg_cache.begin() + slot * kv_row);
      }
    }
    // This step's q and k/v (k/v bf16-exact fp32, as the write kernel rounds them).
    std::vector<float> q = rng.Normal(T * Q), k = rng.Normal(T * kv_row), v = rng.Normal(T * kv_row);
    RoundBf16(k);
    RoundBf16(v);
    std::vector<int32_t> slots(T);
    for (int i = 0; i < ns; ++i)
      for (int t = 0; t < c.seqs[i].num_tokens; ++t) {
        const int p = c.seqs[i].start_pos + t;
        slots[gseqs[i].token_begin + t] = tables[gseqs[i].block_table_offset + p / bs] * bs + p % bs;
      }
    kc::PagedKvShape shape{bs, c.kv_heads, c.hd};
    kc::WriteKvCache(cseqs.data(), ns, k.data(), v.data(), kv_row, shape, kc_cache.data(), vc_cache.data(), nullptr);
    const float scale = 1.f / std::sqrt(float(c.hd));
    std::vector<float> ref(T * Q);
    kc::PagedAttention(cseqs.data(), ns, q.data(), Q, c.heads, shape, kc_cache.data(), vc_cache.data(), scale, c.window,
                       ref.data(), Q, nullptr);

    DevBuf<Bf16> dk(kg_cache), dv(vg_cache), dout(T * Q);
    DevBuf<float> dq(q), dknew(k), dvnew(v);
    DevBuf<int32_t> dslots(slots), dtables(tables);
    DevBuf<kg::CudaAttnSeq> dseqs(gseqs);
    LAUNCH_OK(kg::LaunchWriteKvCache(dknew.get(), dvnew.get(), kv_row, T, dslots.get(), kv_row, dk.get(), dv.get(), nullptr));
    {
      // The write kernel must leave the cache equal to the CPU's (bit-exact values).
      const auto kd = ToF32(dk.Download());
      double bad = 0;
      for (size_t i = 0; i < cache_elems; ++i)
        if (std::isfinite(kd[i]) && kd[i] != kc_cache[i]) bad = INFINITY;
      rep.Check("write_kv_cache", Shape({{"T", T}, {"kv_row", kv_row}}), bad, 0.0);
    }
    kg::PagedAttentionParams p;
    p.q = dq.get();
    p.q_stride = Q;
    p.num_heads = c.heads;
    p.num_kv_heads = c.kv_heads;
    p.head_dim = c.hd;
    p.block_size = bs;
    p.k_cache = dk.get();
    p.v_cache = dv.get();
    p.seqs = dseqs.get();
    p.block_tables = dtables.get();
    p.scale = scale;
    p.sliding_window = c.window;
    p.out = dout.get();
    p.out_stride = Q;
    const std::string sh = Shape({{"heads", c.heads}, {"kv", c.kv_heads}, {"hd", c.hd}, {"win", c.window}, {"seqs", ns}, {"T", T}});
    // (a) every sequence through the prefill path.
    {
      std::vector<int32_t> all(ns);
      std::iota(all.begin(), all.end(), 0);
      const auto tiles = kg::BuildPrefillTiles(gseqs.data(), all.data(), ns);
      DevBuf<int32_t> dtiles(tiles);
      dout.Poison();
      LAUNCH_OK(kg::LaunchPrefillAttention(p, dtiles.get(), static_cast<int>(tiles.size() / 2), nullptr));
      rep.Check("attention prefill path", sh, RelErr(ToF32(dout.Download()), ref), kBf16Bound);
    }
    // (b) mixed: single-token sequences through split-K decode, the rest prefill.
    {
      std::vector<int32_t> pre, dec;
      int max_ctx = 1;
      for (int i = 0; i < ns; ++i) {
        if (c.seqs[i].num_tokens == 1) {
          dec.push_back(i);
          max_ctx = std::max(max_ctx, c.seqs[i].start_pos + 1);
        } else {
          pre.push_back(i);
        }
      }
      const auto tiles = kg::BuildPrefillTiles(gseqs.data(), pre.data(), static_cast<int>(pre.size()));
      DevBuf<int32_t> dtiles(tiles), ddec(dec);
      const int policy_splits = kg::DecodeNumSplits(max_ctx, c.heads, static_cast<int>(dec.size()));
      for (int splits : {kg::DecodeNumSplits(max_ctx), 7, 1, policy_splits, 33}) {
        DevBuf<float> ws(kg::DecodeWorkspaceFloats(static_cast<int>(dec.size()), c.heads, c.hd, splits));
        ws.Poison();
        dout.Poison();
        LAUNCH_OK(kg::LaunchPrefillAttention(p, dtiles.get(), static_cast<int>(tiles.size() / 2), nullptr));
        LAUNCH_OK(kg::LaunchDecodeAttention(p, ddec.get(), static_cast<int>(dec.size()), splits, ws.get(), nullptr));
        rep.Check("attention mixed decode+prefill", sh + " splits=" + std::to_string(splits), RelErr(ToF32(dout.Download()), ref), kBf16Bound);
      }
    }
  }
}

}  // namespace
}  // namespace moe::gpu_test

int main(int argc, char** argv) {
  using namespace moe::gpu_test;
  uint64_t seed = std::chrono::steady_clock::now().time_since_epoch().count();
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--seed") seed = std::stoull(argv[i + 1]);
  const auto info = moe::kernels::cuda::QueryDevices();
  if (info.count == 0) {
    std::fprintf(stderr, "no CUDA device: %s\n", info.error.c_str());
    return 2;
  }
  std::printf("device: %s (sm_%d%d, %d SMs), seed %llu\n", info.name.c_str(), info.sm_major, info.sm_minor,
              info.multiprocessors, static_cast<unsigned long long>(seed));
  Rng rng(seed);
  Report rep;
  cublasHandle_t cublas;
  CUBLAS_OK(cublasCreate(&cublas));
  TestNorms(rng, rep);
  TestElementwise(rng, rep);
  TestRope(rng, rep);
  TestRouter(rng, rep);
  TestPermute(rng, rep);
  TestLinear(rng, rep, cublas);
  TestExperts(rng, rep, cublas);
  TestAttention(rng, rep);
  cublasDestroy(cublas);
  return rep.Summary();
}

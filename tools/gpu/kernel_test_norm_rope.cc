// GPU kernel suite (see kernel_test_cases.h): RMS norms and rotary embeddings.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/cpu/rms_norm.h"
#include "kernels/cpu/rope.h"
#include "kernels/cuda/norm.h"
#include "kernels/cuda/rope.h"
#include "tools/gpu/kernel_test_cases.h"

namespace moe::gpu_test {

namespace kc = ::moe::kernels::cpu;
namespace kg = ::moe::kernels::cuda;

namespace {

// A norm weight near 1 (N(1, 0.2)), rounded to bf16: *bf gets the bf16 copy, the return
// value the same values in fp32.
std::vector<float> Weight(Rng& rng, size_t n, std::vector<Bf16>* bf) {
  std::vector<float> w = rng.Normal(n, 0.2f);
  for (auto& x : w) x += 1.f;
  *bf = RoundBf16(w);
  return w;
}

}  // namespace

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

}  // namespace moe::gpu_test

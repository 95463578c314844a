// GPU kernel suite (see kernel_test_cases.h): the KV-cache write and paged attention.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/cpu/paged_attention.h"
#include "kernels/cuda/paged_attention.h"
#include "tools/gpu/kernel_test_cases.h"

namespace moe::gpu_test {

namespace kc = ::moe::kernels::cpu;
namespace kg = ::moe::kernels::cuda;

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

}  // namespace moe::gpu_test

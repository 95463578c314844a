// GPU kernel suite (see kernel_test_cases.h): the KV-cache write and paged attention.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
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

namespace {

// Attention over a paged cache of heads x hd queries: q and out rows heads * hd wide, the
// softmax scale 1 / sqrt(hd).
template <typename T>
kg::PagedAttentionParamsT<T> CacheAttnParams(const float* q, int heads, int kv_heads, int hd, int bs, const T* k,
                                             const T* v, const kg::CudaAttnSeq* seqs, const int32_t* tables,
                                             int window, T* out) {
  kg::PagedAttentionParamsT<T> p;
  p.q = q;
  p.q_stride = int64_t{heads} * hd;
  p.num_heads = heads;
  p.num_kv_heads = kv_heads;
  p.head_dim = hd;
  p.block_size = bs;
  p.k_cache = k;
  p.v_cache = v;
  p.seqs = seqs;
  p.block_tables = tables;
  p.scale = 1.f / std::sqrt(float(hd));
  p.sliding_window = window;
  p.out = out;
  p.out_stride = int64_t{heads} * hd;
  return p;
}

// Selects the prefill kernel for its lifetime through MOE_ATTN_PREFILL (simt: the
// CUDA-core kernel; otherwise unset: the tensor-core kernel where it applies), then
// restores the variable.
class PrefillPathScope {
 public:
  explicit PrefillPathScope(bool simt) {
    const char* old = std::getenv("MOE_ATTN_PREFILL");
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (simt) {
      setenv("MOE_ATTN_PREFILL", "simt", 1);
    } else {
      unsetenv("MOE_ATTN_PREFILL");
    }
  }
  ~PrefillPathScope() {
    if (had_) {
      setenv("MOE_ATTN_PREFILL", old_.c_str(), 1);
    } else {
      unsetenv("MOE_ATTN_PREFILL");
    }
  }
  PrefillPathScope(const PrefillPathScope&) = delete;
  PrefillPathScope& operator=(const PrefillPathScope&) = delete;

 private:
  bool had_ = false;
  std::string old_;
};

// Host conversions to the 16-bit cache types.
template <typename T>
T HostFrom(float f);
template <>
Bf16 HostFrom<Bf16>(float f) { return ToBf16(f); }
template <>
__half HostFrom<__half>(float f) {
  const uint16_t b = F32ToF16(f);
  __half h;
  std::memcpy(static_cast<void*>(&h), &b, 2);
  return h;
}
float HostToF32(Bf16 v) { return FromBf16(v); }
float HostToF32(__half v) {
  uint16_t b;
  std::memcpy(&b, static_cast<const void*>(&v), 2);
  return F16ToF32(b);
}

struct PrefillSeq { int start_pos, num_tokens; };

// One batch of prefill chunks over a paged cache of T (block_size bs, shuffled blocks,
// unused slots NaN), every position [0, start_pos + num_tokens) already written, as the
// runner writes the step's K/V before attention. Q is fp32 and not rounded: the kernels
// round it. Host side of PrefillBatch.
template <typename T>
struct PrefillHost {
  int heads, kv_heads, hd, window, bs;
  std::vector<kg::CudaAttnSeq> gseqs;
  std::vector<int32_t> tables, tiles;
  std::vector<T> k, v;                 // the caches
  std::vector<float> q, k_f32, v_f32;  // k/v: the caches' values in fp32
  int64_t rows = 0;
};

template <typename T>
PrefillHost<T> MakePrefillHost(Rng& rng, int heads, int kv_heads, int hd, int window, int bs,
                               const std::vector<PrefillSeq>& seqs) {
  PrefillHost<T> h{heads, kv_heads, hd, window, bs};
  const int ns = static_cast<int>(seqs.size());
  const int kv_row = kv_heads * hd;
  int total_blocks = 0;
  for (const auto& s : seqs) total_blocks += (s.start_pos + s.num_tokens + bs - 1) / bs;
  const int num_blocks = total_blocks + 2;
  std::vector<int32_t> perm(num_blocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng.gen());
  h.gseqs.resize(ns);
  for (int i = 0; i < ns; ++i) {
    h.gseqs[i] = {static_cast<int32_t>(h.rows), seqs[i].num_tokens, seqs[i].start_pos,
                  static_cast<int32_t>(h.tables.size())};
    const int nb = (seqs[i].start_pos + seqs[i].num_tokens + bs - 1) / bs;
    for (int b = 0; b < nb; ++b) h.tables.push_back(perm[h.tables.size()]);
    h.rows += seqs[i].num_tokens;
  }
  const size_t cache_elems = static_cast<size_t>(num_blocks) * bs * kv_row;
  h.k_f32.assign(cache_elems, 0.f);
  h.v_f32.assign(cache_elems, 0.f);
  h.k.assign(cache_elems, HostFrom<T>(NAN));
  h.v.assign(cache_elems, HostFrom<T>(NAN));
  for (int i = 0; i < ns; ++i) {
    for (int p = 0; p < seqs[i].start_pos + seqs[i].num_tokens; ++p) {
      const int64_t slot = int64_t{h.tables[h.gseqs[i].block_table_offset + p / bs]} * bs + p % bs;
      const std::vector<float> kr = rng.Normal(kv_row), vr = rng.Normal(kv_row);
      for (int e = 0; e < kv_row; ++e) {
        const int64_t at = slot * kv_row + e;
        h.k[at] = HostFrom<T>(kr[e]);
        h.v[at] = HostFrom<T>(vr[e]);
        h.k_f32[at] = HostToF32(h.k[at]);
        h.v_f32[at] = HostToF32(h.v[at]);
      }
    }
  }
  h.q = rng.Normal(h.rows * heads * hd);
  std::vector<int32_t> all(ns);
  std::iota(all.begin(), all.end(), 0);
  h.tiles = kg::BuildPrefillTiles(h.gseqs.data(), all.data(), ns);
  return h;
}

// PrefillHost and its device copies.
template <typename T>
struct PrefillBatch {
  PrefillHost<T> h;
  DevBuf<T> dk, dv, dout;
  DevBuf<float> dq;
  DevBuf<int32_t> dtables, dtiles;
  DevBuf<kg::CudaAttnSeq> dseqs;
  int num_tiles;

  PrefillBatch(Rng& rng, int heads, int kv_heads, int hd, int window, int bs,
               const std::vector<PrefillSeq>& seqs)
      : h(MakePrefillHost<T>(rng, heads, kv_heads, hd, window, bs, seqs)),
        dk(h.k),
        dv(h.v),
        dout(h.rows * heads * hd),
        dq(h.q),
        dtables(h.tables),
        dtiles(h.tiles),
        dseqs(h.gseqs),
        num_tiles(static_cast<int>(h.tiles.size() / 2)) {}

  kg::PagedAttentionParamsT<T> Params() const {
    return CacheAttnParams<T>(dq.get(), h.heads, h.kv_heads, h.hd, h.bs, dk.get(), dv.get(), dseqs.get(),
                              dtables.get(), h.window, dout.get());
  }
  std::vector<float> Run(bool simt) {
    PrefillPathScope path(simt);
    dout.Poison();
    LAUNCH_OK(kg::LaunchPrefillAttention(Params(), dtiles.get(), num_tiles, nullptr));
    std::vector<T> o = dout.Download();
    std::vector<float> r(o.size());
    for (size_t i = 0; i < o.size(); ++i) r[i] = HostToF32(o[i]);
    return r;
  }
  std::vector<float> Reference() const {
    const int ns = static_cast<int>(h.gseqs.size());
    std::vector<kc::AttentionSeq> cseqs(ns);
    for (int i = 0; i < ns; ++i)
      cseqs[i] = {h.gseqs[i].token_begin, h.gseqs[i].num_tokens, h.gseqs[i].start_pos, h.tables.data() + h.gseqs[i].block_table_offset};
    const int64_t Q = int64_t{h.heads} * h.hd;
    std::vector<float> ref(h.rows * Q);
    kc::PagedAttention(cseqs.data(), ns, h.q.data(), Q, h.heads, kc::PagedKvShape{h.bs, h.kv_heads, h.hd}, h.k_f32.data(),
                       h.v_f32.data(), 1.f / std::sqrt(float(h.hd)), h.window, ref.data(), Q, nullptr);
    return ref;
  }
};

// The prefill kernels on the edges of the tensor-core kernel's tiles (64 query rows a
// block, 64 keys a K/V tile): row counts around multiples of 16 and 64, contexts not a
// multiple of 64, chunks starting mid-sequence and mid-tile, windows crossing tiles,
// GQA 1..7, block sizes 8/16/32, each head_dim it serves (and 32/256, which fall back).
// Both kernels against the CPU reference, for a cache of T.
template <typename T>
void TestPrefillTileEdges(Rng& rng, Report& rep, const char* type) {
  struct Case { int heads, kv_heads, hd, window, bs; std::vector<PrefillSeq> seqs; };
  const std::vector<Case> cases = {
      {8, 2, 128, 0, 16, {{0, 100}, {0, 64}, {0, 65}, {0, 63}, {0, 1}, {0, 17}}},
      {14, 2, 128, 0, 16, {{70, 130}, {5, 129}, {64, 64}, {63, 2}}},
      {4, 4, 64, 0, 32, {{1000, 77}, {0, 200}, {127, 16}}},
      {6, 2, 96, 64, 16, {{0, 200}, {37, 90}, {500, 48}}},
      {4, 2, 80, 100, 8, {{50, 170}, {0, 129}}},
      {6, 6, 128, 1, 16, {{0, 70}, {30, 33}}},
      {5, 1, 64, 0, 16, {{2000, 66}}},
      {4, 2, 32, 0, 16, {{10, 70}}},
      {2, 1, 256, 40, 16, {{0, 90}}},
  };
  for (const Case& c : cases) {
    PrefillBatch<T> b(rng, c.heads, c.kv_heads, c.hd, c.window, c.bs, c.seqs);
    const std::vector<float> ref = b.Reference();
    const std::string sh = std::string(type) + " " +
                           Shape({{"heads", c.heads}, {"kv", c.kv_heads}, {"hd", c.hd}, {"win", c.window},
                                  {"bs", c.bs}, {"T", b.h.rows}});
    rep.Check("attention prefill tile edges", sh, RelErr(b.Run(false), ref), kBf16Bound);
    rep.Check("attention prefill edges simt", sh, RelErr(b.Run(true), ref), kBf16Bound);
  }
}

// Timing print (not a check beyond the two kernels agreeing): the tensor-core and the
// CUDA-core prefill kernels on a bf16 cache, 16 heads, head_dim 128, causal.
void TimePrefill(Rng& rng, Report& rep, const char* what, const std::vector<PrefillSeq>& seqs) {
  PrefillBatch<Bf16> b(rng, 16, 16, 128, 0, 16, seqs);
  double visible = 0;  // (query, key) pairs
  for (const auto& s : seqs)
    for (int i = 0; i < s.num_tokens; ++i) visible += s.start_pos + i + 1;
  const double flops = 4.0 * visible * b.h.hd * b.h.heads;
  const auto time_ms = [&](bool simt) {
    PrefillPathScope path(simt);
    const auto p = b.Params();
    for (int i = 0; i < 2; ++i) LAUNCH_OK(kg::LaunchPrefillAttention(p, b.dtiles.get(), b.num_tiles, nullptr));
    cudaEvent_t e0, e1;
    CUDA_OK(cudaEventCreate(&e0));
    CUDA_OK(cudaEventCreate(&e1));
    const int reps = simt ? 3 : 20;
    CUDA_OK(cudaEventRecord(e0, nullptr));
    for (int i = 0; i < reps; ++i) CUDA_OK(kg::LaunchPrefillAttention(p, b.dtiles.get(), b.num_tiles, nullptr));
    CUDA_OK(cudaEventRecord(e1, nullptr));
    CUDA_OK(cudaEventSynchronize(e1));
    float ms = 0;
    CUDA_OK(cudaEventElapsedTime(&ms, e0, e1));
    CUDA_OK(cudaEventDestroy(e0));
    CUDA_OK(cudaEventDestroy(e1));
    return static_cast<double>(ms) / reps;
  };
  const double ms_mma = time_ms(false), ms_simt = time_ms(true);
  rep.Check("attention prefill mma = simt", what, RelErr(b.Run(false), b.Run(true)), kBf16Bound);
  std::printf("time prefill attention, %s, 16 heads, hd 128, bf16: tensor-core %.3f ms (%.1f TFLOP/s), "
              "simt %.3f ms (%.1f TFLOP/s), %.1fx\n",
              what, ms_mma, flops / ms_mma * 1e-9, ms_simt, flops / ms_simt * 1e-9, ms_simt / ms_mma);
  std::fflush(stdout);
}


// The decode path's two merges of split partials (in-kernel, last block of each (sequence,
// head); and the merge kernel) on the same inputs: outputs must be bit-identical, the
// in-kernel merge's counters back at zero after each launch (so a second launch on the
// same workspace, as a graph replay, gives the same bits), and the result within the
// bf16 bound of the unsplit kernel. Decode-only batches of 1..4 sequences at contexts 1,
// 100 and 2000; head_dim 64 and 128 (vector kernel) and 100 (scalar kernel); splits 1, 8,
// the policy's, 33 and 70 (past the in-kernel merge's 64: the merge kernel serves it).
void TestDecodeMerge(Rng& rng, Report& rep) {
  struct Case { int heads, kv_heads, hd; std::vector<int> ctx; };
  const std::vector<Case> cases = {
      {16, 16, 64, {128}}, {16, 16, 64, {1}}, {16, 4, 128, {100, 2000}}, {32, 8, 128, {2000, 1, 100, 37}},
      {16, 16, 128, {100, 100, 100}}, {8, 2, 100, {2000, 5}}, {4, 4, 64, {1, 2, 3, 4}},
  };
  const int bs = 16;
  for (const Case& c : cases) {
    const int nd = static_cast<int>(c.ctx.size());
    const int kv_row = c.kv_heads * c.hd;
    const int64_t Q = int64_t{c.heads} * c.hd;
    std::vector<kg::CudaAttnSeq> seqs(nd);
    std::vector<int32_t> tables, dec(nd);
    int max_ctx = 1;
    for (int i = 0; i < nd; ++i) {
      const int blocks = (c.ctx[i] + bs - 1) / bs;
      seqs[i] = {i, 1, c.ctx[i] - 1, static_cast<int32_t>(tables.size())};
      for (int b = 0; b < blocks; ++b) tables.push_back(static_cast<int32_t>(tables.size()));
      dec[i] = i;
      max_ctx = std::max(max_ctx, c.ctx[i]);
    }
    std::shuffle(tables.begin(), tables.end(), rng.gen());  // a permutation of the blocks
    const size_t cache_elems = tables.size() * bs * kv_row;
    std::vector<float> kf = rng.Normal(cache_elems), vf = rng.Normal(cache_elems);
    DevBuf<Bf16> dk(RoundBf16(kf)), dv(RoundBf16(vf)), dout(nd * Q), dref(nd * Q);
    DevBuf<float> dq(rng.Normal(nd * Q));
    DevBuf<int32_t> dtables(tables), ddec(dec);
    DevBuf<kg::CudaAttnSeq> dseqs(seqs);
    kg::PagedAttentionParams p = CacheAttnParams<Bf16>(dq.get(), c.heads, c.kv_heads, c.hd, bs, dk.get(), dv.get(),
                                                       dseqs.get(), dtables.get(), 0, dout.get());
    auto bits = [](const std::vector<Bf16>& v) { return Bits(v); };
    // Unsplit reference (the vector kernel writes out directly; the scalar one merges 1 split).
    std::vector<float> ref;
    {
      DevBuf<float> ws(kg::DecodeWorkspaceFloats(nd, c.heads, c.hd, 1));
      LAUNCH_OK(kg::LaunchClearDecodeCounters(ws.get(), nullptr));
      dout.Poison();
      LAUNCH_OK(kg::LaunchDecodeAttention(p, ddec.get(), nd, 1, ws.get(), nullptr, kg::DecodeMerge::kKernel));
      ref = ToF32(dout.Download());
    }
    const int policy = kg::DecodeNumSplits(max_ctx, c.heads, nd);
    for (int splits : {1, 8, policy, 33, 70}) {
      const std::string sh = Shape({{"heads", c.heads}, {"kv", c.kv_heads}, {"hd", c.hd}, {"seqs", nd},
                                    {"max_ctx", max_ctx}, {"splits", splits}});
      const size_t wsf = kg::DecodeWorkspaceFloats(nd, c.heads, c.hd, splits);
      DevBuf<float> ws(wsf);
      ws.Poison();
      LAUNCH_OK(kg::LaunchClearDecodeCounters(ws.get(), nullptr));
      dout.Poison();
      LAUNCH_OK(kg::LaunchDecodeAttention(p, ddec.get(), nd, splits, ws.get(), nullptr, kg::DecodeMerge::kKernel));
      const auto two = dout.Download();
      bool same = true;
      for (int launch = 0; launch < 2; ++launch) {  // the second reuses the counters
        dout.Poison();
        LAUNCH_OK(kg::LaunchDecodeAttention(p, ddec.get(), nd, splits, ws.get(), nullptr, kg::DecodeMerge::kInKernel));
        same = same && bits(dout.Download()) == bits(two);
      }
      std::vector<float> words = ws.Download();
      bool zero = true;
      for (int i = 0; i < kg::kDecodeMergeCounters; ++i) {
        uint32_t u;
        std::memcpy(&u, &words[i], 4);
        zero = zero && u == 0;
      }
      rep.Check("decode merge in-kernel = kernel (exact)", sh, same ? 0.0 : INFINITY, 0.0);
      rep.Check("decode merge counters reset", sh, zero ? 0.0 : INFINITY, 0.0);
      rep.Check("decode split vs unsplit", sh, RelErr(ToF32(two), ref), kBf16Bound);
    }
  }
}

}  // namespace

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
    kg::PagedAttentionParams p = CacheAttnParams<Bf16>(dq.get(), c.heads, c.kv_heads, c.hd, bs, dk.get(), dv.get(),
                                                       dseqs.get(), dtables.get(), c.window, dout.get());
    const std::string sh = Shape({{"heads", c.heads}, {"kv", c.kv_heads}, {"hd", c.hd}, {"win", c.window}, {"seqs", ns}, {"T", T}});
    // (a) every sequence through the prefill path.
    {
      std::vector<int32_t> all(ns);
      std::iota(all.begin(), all.end(), 0);
      const auto tiles = kg::BuildPrefillTiles(gseqs.data(), all.data(), ns);
      DevBuf<int32_t> dtiles(tiles);
      for (bool simt : {false, true}) {
        PrefillPathScope path(simt);
        dout.Poison();
        LAUNCH_OK(kg::LaunchPrefillAttention(p, dtiles.get(), static_cast<int>(tiles.size() / 2), nullptr));
        rep.Check(simt ? "attention prefill path simt" : "attention prefill path", sh, RelErr(ToF32(dout.Download()), ref),
                  kBf16Bound);
      }
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
        ws.Poison();  // partials NaN; the merge counters must start at zero (paged_attention.h)
        LAUNCH_OK(kg::LaunchClearDecodeCounters(ws.get(), nullptr));
        dout.Poison();
        LAUNCH_OK(kg::LaunchPrefillAttention(p, dtiles.get(), static_cast<int>(tiles.size() / 2), nullptr));
        LAUNCH_OK(kg::LaunchDecodeAttention(p, ddec.get(), static_cast<int>(dec.size()), splits, ws.get(), nullptr));
        rep.Check("attention mixed decode+prefill", sh + " splits=" + std::to_string(splits), RelErr(ToF32(dout.Download()), ref), kBf16Bound);
      }
    }
  }  TestPrefillTileEdges<Bf16>(rng, rep, "bf16");
  TestPrefillTileEdges<__half>(rng, rep, "f16");
  TimePrefill(rng, rep, "2048-token prompt", {{0, 2048}});
  TimePrefill(rng, rep, "64 seqs x 128 tokens", std::vector<PrefillSeq>(64, PrefillSeq{0, 128}));
  TestDecodeMerge(rng, rep);
}

}  // namespace moe::gpu_test

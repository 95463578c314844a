// Sampling kernel: see sampling.h for the contract. One block per row:
//   1. max, NaN flag and first argmax in one pass (greedy rows stop here), which also
//      copies the first kCacheTokens logits of the row into dynamic shared memory;
//   2. those logits are turned into weight bits in place, once;
//   3. top-k: radix selection by count of the k-th weight (w desc, id asc);
//   4. top-p: radix selection by mass of the nucleus boundary inside the top-k set;
//   5. a walk in id order, tile by tile, with a block prefix scan of the kept weights,
//      stopping at the tile that holds u · (kept mass).
// Passes 3-5 read the cached weights from shared memory; only tokens past the cache
// (vocabularies over kCacheTokens) are re-read from the logits and their weights
// recomputed, after one compare skips the logits whose weight cannot reach the current
// lower bound (LogitFloor). Histogram bins hold a count and the significand sum split in
// two 12-bit halves, each a 32-bit counter: shared-memory 32-bit atomics are native,
// 64-bit adds would be compare-and-swap loops that serialise on crowded bins.
#include "kernels/cuda/sampling.h"

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

namespace moe::kernels::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kWalkItems = 4;  // consecutive tokens per thread per walk tile
constexpr int kLevels = 4;      // radix levels: exponent, then 8, 8 and 7 mantissa bits
constexpr int kMaxBins = 256;
// A bin's significand sum is kept as two sums of 12-bit halves: a row has < 2^19 tokens,
// so each half-sum stays below 2^31 and the count below 2^19 (32-bit counters).
constexpr int kHalfBits = 12;
constexpr uint32_t kHalfMask = (1u << kHalfBits) - 1u;
// Tokens per row whose weights live in shared memory (216 KiB of dynamic shared memory,
// with the ~4 KiB static Shared under the H100's 227 KiB per block).
constexpr int64_t kCacheTokens = 55296;

// engine::sampling::ExpNonPositive with every operation rounded on its own, as the host
// (x86-64-v2, no FMA) does: nvcc would otherwise contract a * b + c into an FMA.
__device__ __forceinline__ float ExpNonPositive(float x) {
  const float xc = x < -87.f ? -87.f : x;
  const float k = __fsub_rn(__fadd_rn(__fmul_rn(xc, 1.44269504f), 12582912.f), 12582912.f);
  const float r =
      __fsub_rn(__fsub_rn(xc, __fmul_rn(k, 0.693145752f)), __fmul_rn(k, 1.42860677e-6f));
  float p = 1.f / 720.f;
  p = __fadd_rn(__fmul_rn(p, r), 1.f / 120.f);
  p = __fadd_rn(__fmul_rn(p, r), 1.f / 24.f);
  p = __fadd_rn(__fmul_rn(p, r), 1.f / 6.f);
  p = __fadd_rn(__fmul_rn(p, r), 0.5f);
  p = __fadd_rn(__fmul_rn(p, r), 1.f);
  p = __fadd_rn(__fmul_rn(p, r), 1.f);
  const float scale = __int_as_float((__float2int_rz(k) + 127) << 23);
  return x < -87.f ? 0.f : __fmul_rn(p, scale);
}

__device__ __forceinline__ uint32_t WeightBits(float x, float m, float inv_t) {
  return __float_as_uint(ExpNonPositive(__fmul_rn(__fsub_rn(x, m), inv_t)));
}

// The significand of a non-negative float as an integer (value = sig · 2^(max(e,1)-150)).
__device__ __forceinline__ uint32_t Sig(uint32_t bits) {
  const uint32_t mant = bits & 0x7fffffu;
  return (bits >> 23) != 0 ? (mant | 0x800000u) : mant;
}

// Bit shift and bin count of radix level `level` (bins = (bits >> shift) & (bins - 1)).
__device__ __forceinline__ int LevelShift(int level) {
  return level == 0 ? 23 : (level == 1 ? 15 : (level == 2 ? 7 : 0));
}
__device__ __forceinline__ int LevelBins(int level) { return level == kLevels - 1 ? 128 : 256; }
__device__ __forceinline__ double Unit(int biased_exponent) {
  return ldexp(1.0, (biased_exponent > 1 ? biased_exponent : 1) - 150);
}

// A logit below which the weight is certainly below the float with bits `w_lo_bits`
// (> 0): a margin of 1e-3 + 1e-4·|ln w| in the exponent covers the polynomial's error
// (< 2e-7 relative) and the roundings of (x - m) · (1/T) many times over.
__device__ float LogitFloor(float m, float inv_t, uint32_t w_lo_bits) {
  if (w_lo_bits == 0) return -INFINITY;
  const double lw = log(static_cast<double>(__uint_as_float(w_lo_bits)));
  const double z = lw - (1e-3 + 1e-4 * fabs(lw));
  const double xm = static_cast<double>(m) + z / static_cast<double>(inv_t) -
                    1e-12 * fabs(static_cast<double>(m));
  return __double2float_rd(xm);
}

struct Pair {  // (count, mass) of a set of tokens
  double c, m;
};
__device__ __forceinline__ Pair operator+(Pair a, Pair b) {
  return Pair{__dadd_rn(a.c, b.c), __dadd_rn(a.m, b.m)};
}
__device__ __forceinline__ Pair ShflUp(Pair v, int d) {
  return Pair{__shfl_up_sync(kFull, v.c, d), __shfl_up_sync(kFull, v.m, d)};
}
__device__ __forceinline__ double ShflUp(double v, int d) { return __shfl_up_sync(kFull, v, d); }
__device__ __forceinline__ int ShflUp(int v, int d) { return __shfl_up_sync(kFull, v, d); }
__device__ __forceinline__ double Add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ int Add(int a, int b) { return a + b; }
__device__ __forceinline__ Pair Add(Pair a, Pair b) { return a + b; }

struct Shared {
  uint32_t hist_count[kMaxBins];  // tokens in the bin
  uint32_t hist_hi[kMaxBins];     // sum of (significand >> 12)
  uint32_t hist_lo[kMaxBins];     // sum of (significand & 0xfff)
  Pair pair_scratch[32];
  double dbl_scratch[32];
  int int_scratch[32];
  float max_scratch[32];
  int idx_scratch[32];
  int sel_bin, low_bin, found, last;
  Pair sel_above;
  uint32_t sel_count;
};

// One row's weights: bits of token i < cached from shared memory, else recomputed from
// the logits (0 for a logit below `xmin`, whose weight is known to be below the bound
// the caller tests against).
struct RowView {
  const float* x;
  const uint32_t* cache;
  int64_t cached, n;
  float m, inv_t;
  __device__ __forceinline__ uint32_t Bits(int64_t i, float xmin) const {
    if (i < cached) return cache[i];
    const float v = x[i];
    return v >= xmin ? WeightBits(v, m, inv_t) : 0u;
  }
};

// Exclusive prefix (in thread order) of v over the block, and the block total. Every
// thread must call it; the scratch is free again when it returns.
template <int kThreads, typename T>
__device__ T BlockExclusiveScan(T v, T* scratch, T* total) {
  constexpr int kWarps = kThreads / 32;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T inc = v;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const T o = ShflUp(inc, d);
    if (lane >= d) inc = Add(inc, o);
  }
  T excl = ShflUp(inc, 1);
  if (lane == 0) excl = T{};
  if (lane == 31) scratch[warp] = inc;
  __syncthreads();
  if (warp == 0) {
    T s = lane < kWarps ? scratch[lane] : T{};
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const T o = ShflUp(s, d);
      if (lane >= d) s = Add(s, o);
    }
    if (lane < kWarps) scratch[lane] = s;  // inclusive warp totals
  }
  __syncthreads();
  if (warp > 0) excl = Add(scratch[warp - 1], excl);
  *total = scratch[kWarps - 1];
  __syncthreads();
  return excl;
}

// The boundary of a most-likely-first prefix (w desc, id asc) of the tokens with w > 0:
// kept = { w > t } ∪ { the j lowest ids with w == t }, or every token with w > 0 (all).
struct Cut {
  bool all;
  uint32_t t_bits;
  int64_t j;     // ties at t kept
  int64_t ties;  // tokens with w == t in the row
  double mass;   // the kept mass; < 0 when not known yet (all only)
};

// Adds weight bits `b` (one per lane; every lane of the warp calls it, converged) to
// s.hist_*[bin] when b >= lo_bits and b matches `prefix` under `pmask`,
// bin = (b >> bshift) & bmask. The lanes of one bin are summed first (exactly, in
// 32-bit integers) and their lowest lane adds the sums: one atomic per distinct bin and
// counter, so crowded bins (flat rows, the exponents of a peaked row) do not serialise.
__device__ __forceinline__ void WarpAdd(uint32_t b, uint32_t lo_bits, uint32_t pmask,
                                        uint32_t prefix, int bshift, uint32_t bmask,
                                        Shared& s) {
  const bool ok = b >= lo_bits && (b & pmask) == prefix;
  if (!__any_sync(kFull, ok)) return;  // warp-uniform
  const int bin = ok ? static_cast<int>((b >> bshift) & bmask) : -1;
  const unsigned peers = __match_any_sync(kFull, bin);
  if (ok) {
    const uint32_t sig = Sig(b);
    const uint32_t hi = __reduce_add_sync(peers, sig >> kHalfBits);
    const uint32_t lo = __reduce_add_sync(peers, sig & kHalfMask);
    if ((threadIdx.x & 31) == static_cast<unsigned>(__ffs(peers) - 1)) {
      atomicAdd(&s.hist_count[bin], static_cast<uint32_t>(__popc(peers)));
      atomicAdd(&s.hist_hi[bin], hi);
      atomicAdd(&s.hist_lo[bin], lo);
    }
  }
}

// The histogram of one radix level over the row (see WarpAdd). Token i is handled by
// thread i mod kThreads; the loops run the same trip count for every lane of a warp.
template <int kThreads>
__device__ void HistPass(const RowView& r, float xmin, uint32_t lo_bits, uint32_t pmask,
                         uint32_t prefix, int bshift, uint32_t bmask, Shared& s) {
  const int lane = threadIdx.x & 31;
  const int64_t warp0 = threadIdx.x - lane;
  for (int64_t i0 = warp0; i0 < r.cached; i0 += kThreads) {
    const int64_t i = i0 + lane;
    WarpAdd(i < r.cached ? r.cache[i] : 0u, lo_bits, pmask, prefix, bshift, bmask, s);
  }
  for (int64_t i0 = r.cached + warp0; i0 < r.n; i0 += kThreads) {
    const int64_t i = i0 + lane;
    const float v = i < r.n ? r.x[i] : -INFINITY;
    WarpAdd(v >= xmin ? WeightBits(v, r.m, r.inv_t) : 0u, lo_bits, pmask, prefix, bshift,
            bmask, s);
  }
}

// Refines `base` (all, or a top-k cut) into the prefix holding the k most likely tokens
// (by_mass false) or the shortest prefix whose mass reaches top_p of base's mass
// (by_mass true). Returns base itself when the target covers all of it. Every thread
// calls it and gets the same result.
template <int kThreads>
__device__ Cut RadixCut(const RowView& r, Cut base, bool by_mass, int64_t k, float top_p,
                        Shared& s) {
  const int tid = threadIdx.x;
  const uint32_t lo_bits = base.all ? 1u : base.t_bits;
  const int64_t excess = base.all ? 0 : base.ties - base.j;  // ties at t_bits not in base
  float xmin = base.all ? -INFINITY : LogitFloor(r.m, r.inv_t, lo_bits);
  uint32_t prefix = 0, pmask = 0;
  Pair above{0.0, 0.0};  // tokens of base above the current bin range
  double target = 0.0;
  bool unreached = false;
  uint32_t h_count = 0;  // tokens of the chosen bin (inside base)
  for (int level = 0; level < kLevels; ++level) {
    const int bshift = LevelShift(level);
    const int nb = LevelBins(level);
    const int e0 = static_cast<int>(prefix >> 23);
    for (int b = tid; b < nb; b += kThreads) {
      s.hist_count[b] = 0;
      s.hist_hi[b] = 0;
      s.hist_lo[b] = 0;
    }
    if (tid == 0) {
      s.sel_bin = -1;
      s.low_bin = INT_MAX;
    }
    __syncthreads();
    HistPass<kThreads>(r, xmin, lo_bits, pmask, prefix, bshift, nb - 1, s);
    __syncthreads();
    if (tid == 0 && excess > 0 && (lo_bits & pmask) == prefix) {
      // Every excess tie was added with exactly these increments: the counters stay exact.
      const int bin = static_cast<int>((lo_bits >> bshift) & (nb - 1));
      const uint32_t ex = static_cast<uint32_t>(excess), sig = Sig(lo_bits);
      s.hist_count[bin] -= ex;
      s.hist_hi[bin] -= ex * (sig >> kHalfBits);
      s.hist_lo[bin] -= ex * (sig & kHalfMask);
    }
    __syncthreads();

    // Each thread owns `per` consecutive bins, scanned from the most likely down.
    const int per = (nb + kThreads - 1) / kThreads;
    const int top = nb - 1 - tid * per;
    auto value = [&](int b) {  // exact: the significand sum is below 2^43
      const unsigned long long sum =
          (static_cast<unsigned long long>(s.hist_hi[b]) << kHalfBits) + s.hist_lo[b];
      const double unit = Unit(level == 0 ? b : e0);
      return Pair{static_cast<double>(s.hist_count[b]), static_cast<double>(sum) * unit};
    };
    Pair mine{0.0, 0.0};
    for (int q = 0; q < per && top - q >= 0; ++q) mine = mine + value(top - q);
    Pair total;
    Pair cum = BlockExclusiveScan<kThreads>(mine, s.pair_scratch, &total);
    if (level == 0) {
      if (base.mass < 0) base.mass = total.m;
      target = by_mass ? __dmul_rn(static_cast<double>(top_p), base.mass) : static_cast<double>(k);
    }
    int my_sel = -1, my_low = INT_MAX;
    Pair sel_above{0.0, 0.0}, low_above{0.0, 0.0};
    for (int q = 0; q < per && top - q >= 0; ++q) {
      const int b = top - q;
      if (s.hist_count[b] == 0) continue;
      const Pair next = cum + value(b);
      if (my_sel < 0) {
        const bool reached = by_mass ? __dadd_rn(above.m, next.m) >= target
                                     : __dadd_rn(above.c, next.c) >= target;
        if (reached) {
          my_sel = b;
          sel_above = cum;
        }
      }
      my_low = b;
      low_above = cum;
      cum = next;
    }
    if (my_sel >= 0) atomicMax(&s.sel_bin, my_sel);
    if (my_low != INT_MAX) atomicMin(&s.low_bin, my_low);
    __syncthreads();
    const int sel = s.sel_bin, low = s.low_bin;
    __syncthreads();  // all have read them before anyone moves on
    if (sel < 0 && level == 0) return base;  // the target covers the whole base set
    if (sel < 0) unreached = true;           // rounding: keep the whole range (as the host)
    const int chosen = sel >= 0 ? sel : low;
    if (sel >= 0 && my_sel == sel) {
      s.sel_above = sel_above;
      s.sel_count = s.hist_count[sel];
    }
    if (sel < 0 && my_low == chosen) {
      s.sel_above = low_above;
      s.sel_count = s.hist_count[chosen];
    }
    __syncthreads();
    above = above + s.sel_above;
    h_count = s.sel_count;
    prefix |= static_cast<uint32_t>(chosen) << bshift;
    pmask = ~((1u << bshift) - 1u);
    const float floor = LogitFloor(r.m, r.inv_t, prefix);
    xmin = floor > xmin ? floor : xmin;
    __syncthreads();  // before the next level clears the histogram
  }

  Cut cut;
  cut.all = false;
  cut.t_bits = prefix;
  const int64_t avail = static_cast<int64_t>(h_count);  // ties at t inside base
  cut.ties = avail + (prefix == lo_bits ? excess : 0);
  const double t = static_cast<double>(__uint_as_float(prefix));
  int64_t j;
  if (unreached) {
    j = avail;
  } else if (!by_mass) {
    j = k - static_cast<int64_t>(above.c);
  } else {
    // The fewest ties (lowest ids first) that bring the prefix mass to the target.
    const double need = __dsub_rn(target, above.m);
    j = need <= 0.0 ? 1 : static_cast<int64_t>(ceil(__ddiv_rn(need, t)));
    j = j < 1 ? 1 : (j > avail ? avail : j);
    while (j > 1 && __dadd_rn(above.m, __dmul_rn(static_cast<double>(j - 1), t)) >= target) --j;
    while (j < avail && __dadd_rn(above.m, __dmul_rn(static_cast<double>(j), t)) < target) ++j;
  }
  cut.j = j;
  cut.mass = __dadd_rn(above.m, __dmul_rn(static_cast<double>(j), t));
  return cut;
}

// Sum of every token's weight (plain sampling's kept mass).
template <int kThreads>
__device__ double SumWeights(const RowView& r, Shared& s) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < r.n; i += kThreads) {
    acc = __dadd_rn(acc, static_cast<double>(__uint_as_float(r.Bits(i, -INFINITY))));
  }
  double total;
  BlockExclusiveScan<kThreads>(acc, s.dbl_scratch, &total);
  return total;
}

// The kept tokens of `cut` in id order: the first whose cumulative weight exceeds
// u · cut.mass, else the last kept one.
template <int kThreads>
__device__ int32_t Walk(const RowView& r, const Cut& cut, double u, Shared& s) {
  const int tid = threadIdx.x;
  const double target = __dmul_rn(u, cut.mass);
  const uint32_t t = cut.all ? 0u : cut.t_bits;
  const bool partial = !cut.all && cut.j < cut.ties;
  const float xmin = cut.all ? -INFINITY : LogitFloor(r.m, r.inv_t, t);
  const int64_t n = r.n;
  if (tid == 0) {
    s.found = INT_MAX;
    s.last = -1;
  }
  __syncthreads();
  double running = 0.0;
  int64_t ties_seen = 0;
  for (int64_t tile = 0; tile < n; tile += static_cast<int64_t>(kThreads) * kWalkItems) {
    const int64_t i0 = tile + static_cast<int64_t>(tid) * kWalkItems;
    float w[kWalkItems];
    int kind[kWalkItems];  // 0 not kept, 1 above t, 2 a tie at t
    int my_ties = 0;
#pragma unroll
    for (int q = 0; q < kWalkItems; ++q) {
      w[q] = 0.f;
      kind[q] = 0;
      const int64_t i = i0 + q;
      if (i < n) {
        const uint32_t b = r.Bits(i, xmin);  // 0 (not kept) below the floor
        w[q] = __uint_as_float(b);
        if (b > t) {
          kind[q] = 1;
        } else if (b == t && !cut.all) {
          kind[q] = 2;
          ++my_ties;
        }
      }
    }
    if (partial) {  // only the cut.j lowest ids among the ties are kept
      int tile_ties;
      int64_t rank = ties_seen + BlockExclusiveScan<kThreads>(my_ties, s.int_scratch, &tile_ties);
#pragma unroll
      for (int q = 0; q < kWalkItems; ++q) {
        if (kind[q] == 2) {
          if (rank >= cut.j) kind[q] = 0;
          ++rank;
        }
      }
      ties_seen += tile_ties;
    }
    double mine = 0.0;
    int my_last = -1;
#pragma unroll
    for (int q = 0; q < kWalkItems; ++q) {
      if (kind[q] != 0) {
        mine = __dadd_rn(mine, static_cast<double>(w[q]));
        my_last = static_cast<int>(i0 + q);
      }
    }
    double tile_mass;
    double c = __dadd_rn(running, BlockExclusiveScan<kThreads>(mine, s.dbl_scratch, &tile_mass));
#pragma unroll
    for (int q = 0; q < kWalkItems; ++q) {
      if (kind[q] != 0) {
        c = __dadd_rn(c, static_cast<double>(w[q]));
        if (target < c) {
          atomicMin(&s.found, static_cast<int>(i0 + q));
          break;
        }
      }
    }
    if (my_last >= 0) atomicMax(&s.last, my_last);
    __syncthreads();
    if (s.found != INT_MAX) break;
    running = __dadd_rn(running, tile_mass);
  }
  return s.found != INT_MAX ? s.found : s.last;
}

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    SampleRowsKernel(const float* __restrict__ logits, int64_t n, int64_t ld, int64_t cached,
                     const CudaSampleParams* __restrict__ params, int32_t* __restrict__ out) {
  __shared__ Shared s;
  extern __shared__ __align__(16) uint32_t cache[];  // [cached]: logits, then weight bits
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  constexpr int kWarps = kThreads / 32;
  const int64_t row = blockIdx.x;
  const float* x = logits + row * ld;
  const CudaSampleParams p = params[row];

  // 1. Max (NaNs never win), first index of the max, any NaN; the first `cached` logits
  //    are kept in shared memory (each by the thread that converts it in step 2).
  float best = -INFINITY;
  int best_i = INT_MAX;
  bool nan = false;
#pragma unroll 4
  for (int64_t i = tid; i < n; i += kThreads) {
    const float v = x[i];
    if (i < cached) cache[i] = __float_as_uint(v);
    nan |= v != v;
    if (v > best) {
      best = v;
      best_i = static_cast<int>(i);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, best, o);
    const int oi = __shfl_xor_sync(kFull, best_i, o);
    if (ov > best || (ov == best && oi < best_i)) {
      best = ov;
      best_i = oi;
    }
  }
  if (lane == 0) {
    s.max_scratch[warp] = best;
    s.idx_scratch[warp] = best_i;
  }
  const bool any_nan = __syncthreads_or(nan) != 0;
  best = lane < kWarps ? s.max_scratch[lane] : -INFINITY;
  best_i = lane < kWarps ? s.idx_scratch[lane] : INT_MAX;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(kFull, best, o);
    const int oi = __shfl_xor_sync(kFull, best_i, o);
    if (ov > best || (ov == best && oi < best_i)) {
      best = ov;
      best_i = oi;
    }
  }
  const float m = best;
  if (any_nan || !isfinite(m)) {  // the host's sanitising rules apply: decline the row
    if (tid == 0) out[row] = -1;
    return;
  }
  const float inv_t = p.temperature > 0.f ? __fdiv_rn(1.f, p.temperature) : 0.f;
  if (!(p.temperature > 0.f) || p.top_k == 1 || !isfinite(inv_t)) {
    if (tid == 0) out[row] = best_i;
    return;
  }

  // 2. The cached logits become weight bits, in place (same thread as in step 1).
  for (int64_t i = tid; i < cached; i += kThreads) {
    cache[i] = WeightBits(__uint_as_float(cache[i]), m, inv_t);
  }
  __syncthreads();
  const RowView r{x, cache, cached, n, m, inv_t};

  Cut cut{true, 0u, 0, 0, -1.0};
  if (p.top_k > 0 && p.top_k < n) {
    cut = RadixCut<kThreads>(r, cut, /*by_mass=*/false, p.top_k, 1.f, s);
  }
  if (p.top_p < 1.f) {
    cut = RadixCut<kThreads>(r, cut, /*by_mass=*/true, 0, p.top_p, s);
  }
  if (cut.mass < 0) cut.mass = SumWeights<kThreads>(r, s);
  const int32_t token = Walk<kThreads>(r, cut, p.u, s);
  if (tid == 0) out[row] = token;
}

}  // namespace

cudaError_t LaunchSample(const float* logits, int64_t rows, int64_t vocab, int64_t ld,
                         const CudaSampleParams* params, int32_t* out_token,
                         cudaStream_t stream) {
  if (vocab < 1 || vocab > kSampleMaxVocab || ld < vocab || rows < 0 ||
      rows > static_cast<int64_t>(INT_MAX)) {
    return cudaErrorInvalidValue;
  }
  if (rows == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(rows));
  const int64_t cached = vocab < kCacheTokens ? vocab : kCacheTokens;
  const size_t bytes = static_cast<size_t>(cached) * sizeof(uint32_t);
  if (vocab < 16384) {
    auto* kernel = &SampleRowsKernel<256>;
    if (bytes > 48 * 1024) {  // above the default limit; the same value on every call
      const cudaError_t e =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(16384 * sizeof(uint32_t)));
      if (e != cudaSuccess) return e;
    }
    kernel<<<grid, 256, bytes, stream>>>(logits, vocab, ld, cached, params, out_token);
  } else {
    auto* kernel = &SampleRowsKernel<1024>;
    const cudaError_t e = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
        static_cast<int>(kCacheTokens * sizeof(uint32_t)));
    if (e != cudaSuccess) return e;
    kernel<<<grid, 1024, bytes, stream>>>(logits, vocab, ld, cached, params, out_token);
  }
  return cudaGetLastError();
}

}  // namespace moe::kernels::cuda

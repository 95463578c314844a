// Sampling kernel: see sampling.h for the contract. One block per row:
//   1. max, NaN flag and first argmax in one pass (greedy rows stop here);
//   2. top-k: radix selection by count of the k-th weight (w desc, id asc);
//   3. top-p: radix selection by mass of the nucleus boundary inside the top-k set;
//   4. a walk in id order, tile by tile, with a block prefix scan of the kept weights,
//      stopping at the tile that holds u · (kept mass).
// Weights are recomputed from the logits in each pass (the row is not copied); passes
// after the first skip, by one compare, the logits whose weight cannot reach the current
// lower bound (LogitFloor).
#include "kernels/cuda/sampling.h"

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

namespace moe::kernels::cuda {
namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kWalkItems = 4;  // consecutive tokens per thread per walk tile
constexpr int kMaxBins = 4096;
// A histogram bin packs (count << 45) + (sum of significands); a significand is < 2^24
// and a row has < 2^19 tokens, so the sum stays below 2^43 and the count fits 19 bits.
constexpr int kCountShift = 45;
constexpr unsigned long long kOne = 1ull << kCountShift;
constexpr unsigned long long kMassMask = kOne - 1;

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
__device__ __forceinline__ unsigned long long Sig(uint32_t bits) {
  const uint32_t mant = bits & 0x7fffffu;
  return (bits >> 23) != 0 ? (mant | 0x800000u) : mant;
}
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
  unsigned long long hist[kMaxBins];
  Pair pair_scratch[32];
  double dbl_scratch[32];
  int int_scratch[32];
  float max_scratch[32];
  int idx_scratch[32];
  int sel_bin, low_bin, found, last;
  Pair sel_above, low_above;
  unsigned long long sel_h, low_h;
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

// Adds the weights' (count, significand sum) to s.hist[bin] for the tokens with weight
// bits >= lo_bits whose bits match `prefix` under `pmask`, bin = (bits >> bshift) & bmask.
// A thread's run of tokens in one bin is added with one atomic (flat rows would
// otherwise serialise on one address).
template <int kThreads>
__device__ void HistPass(const float* x, int64_t n, float m, float inv_t, float xmin,
                         uint32_t lo_bits, uint32_t pmask, uint32_t prefix, int bshift,
                         uint32_t bmask, unsigned long long* hist) {
  int run_bin = -1;
  unsigned long long run = 0;
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = x[i];
    if (!(v >= xmin)) continue;
    const uint32_t b = WeightBits(v, m, inv_t);
    if (b < lo_bits || (b & pmask) != prefix) continue;
    const int bin = static_cast<int>((b >> bshift) & bmask);
    if (bin != run_bin) {
      if (run_bin >= 0) atomicAdd(&hist[run_bin], run);
      run_bin = bin;
      run = 0;
    }
    run += kOne + Sig(b);
  }
  if (run_bin >= 0) atomicAdd(&hist[run_bin], run);
}

// Refines `base` (all, or a top-k cut) into the prefix holding the k most likely tokens
// (by_mass false) or the shortest prefix whose mass reaches top_p of base's mass
// (by_mass true). Returns base itself when the target covers all of it. Every thread
// calls it and gets the same result.
template <int kThreads>
__device__ Cut RadixCut(const float* x, int64_t n, float m, float inv_t, Cut base,
                        bool by_mass, int64_t k, float top_p, Shared& s) {
  const int tid = threadIdx.x;
  const uint32_t lo_bits = base.all ? 1u : base.t_bits;
  const int64_t excess = base.all ? 0 : base.ties - base.j;  // ties at t_bits not in base
  float xmin = base.all ? -INFINITY : LogitFloor(m, inv_t, lo_bits);
  uint32_t prefix = 0, pmask = 0;
  Pair above{0.0, 0.0};  // tokens of base above the current bin range
  double target = 0.0;
  bool unreached = false;
  unsigned long long h = 0;
  for (int level = 0; level < 3; ++level) {
    const int bshift = level == 0 ? 23 : (level == 1 ? 11 : 0);
    const int nb = level == 0 ? 256 : (level == 1 ? 4096 : 2048);
    const int e0 = static_cast<int>(prefix >> 23);
    for (int b = tid; b < nb; b += kThreads) s.hist[b] = 0;
    if (tid == 0) {
      s.sel_bin = -1;
      s.low_bin = INT_MAX;
    }
    __syncthreads();
    HistPass<kThreads>(x, n, m, inv_t, xmin, lo_bits, pmask, prefix, bshift, nb - 1, s.hist);
    __syncthreads();
    if (tid == 0 && excess > 0 && (lo_bits & pmask) == prefix) {
      s.hist[(lo_bits >> bshift) & (nb - 1)] -= static_cast<unsigned long long>(excess) * (kOne + Sig(lo_bits));
    }
    __syncthreads();

    // Each thread owns `per` consecutive bins, scanned from the most likely down.
    const int per = (nb + kThreads - 1) / kThreads;
    const int top = nb - 1 - tid * per;
    auto value = [&](int b) {
      const unsigned long long hv = s.hist[b];
      const double unit = Unit(level == 0 ? b : e0);
      return Pair{static_cast<double>(hv >> kCountShift),
                  static_cast<double>(hv & kMassMask) * unit};
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
      if ((s.hist[b] >> kCountShift) == 0) continue;
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
      s.sel_h = s.hist[sel];
    }
    if (sel < 0 && my_low == chosen) {
      s.sel_above = low_above;
      s.sel_h = s.hist[chosen];
    }
    __syncthreads();
    above = above + s.sel_above;
    h = s.sel_h;
    prefix |= static_cast<uint32_t>(chosen) << bshift;
    pmask = ~((1u << bshift) - 1u);
    const float floor = LogitFloor(m, inv_t, prefix);
    xmin = floor > xmin ? floor : xmin;
    __syncthreads();  // before the next level clears the histogram
  }

  Cut cut;
  cut.all = false;
  cut.t_bits = prefix;
  const int64_t avail = static_cast<int64_t>(h >> kCountShift);  // ties at t inside base
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
__device__ double SumWeights(const float* x, int64_t n, float m, float inv_t, Shared& s) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    acc = __dadd_rn(acc, static_cast<double>(__uint_as_float(WeightBits(x[i], m, inv_t))));
  }
  double total;
  BlockExclusiveScan<kThreads>(acc, s.dbl_scratch, &total);
  return total;
}

// The kept tokens of `cut` in id order: the first whose cumulative weight exceeds
// u · cut.mass, else the last kept one.
template <int kThreads>
__device__ int32_t Walk(const float* x, int64_t n, float m, float inv_t, const Cut& cut,
                        double u, Shared& s) {
  const int tid = threadIdx.x;
  const double target = __dmul_rn(u, cut.mass);
  const uint32_t t = cut.all ? 0u : cut.t_bits;
  const bool partial = !cut.all && cut.j < cut.ties;
  const float xmin = cut.all ? -INFINITY : LogitFloor(m, inv_t, t);
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
        const float v = x[i];
        if (v >= xmin) {
          const uint32_t b = WeightBits(v, m, inv_t);
          w[q] = __uint_as_float(b);
          if (b > t) {
            kind[q] = 1;
          } else if (b == t && !cut.all) {
            kind[q] = 2;
            ++my_ties;
          }
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
    SampleRowsKernel(const float* __restrict__ logits, int64_t n, int64_t ld,
                     const CudaSampleParams* __restrict__ params, int32_t* __restrict__ out) {
  __shared__ Shared s;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  constexpr int kWarps = kThreads / 32;
  const int64_t row = blockIdx.x;
  const float* x = logits + row * ld;
  const CudaSampleParams p = params[row];

  // 1. Max (NaNs never win), first index of the max, any NaN.
  float best = -INFINITY;
  int best_i = INT_MAX;
  bool nan = false;
#pragma unroll 4
  for (int64_t i = tid; i < n; i += kThreads) {
    const float v = x[i];
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

  Cut cut{true, 0u, 0, 0, -1.0};
  if (p.top_k > 0 && p.top_k < n) {
    cut = RadixCut<kThreads>(x, n, m, inv_t, cut, /*by_mass=*/false, p.top_k, 1.f, s);
  }
  if (p.top_p < 1.f) {
    cut = RadixCut<kThreads>(x, n, m, inv_t, cut, /*by_mass=*/true, 0, p.top_p, s);
  }
  if (cut.mass < 0) cut.mass = SumWeights<kThreads>(x, n, m, inv_t, s);
  const int32_t token = Walk<kThreads>(x, n, m, inv_t, cut, p.u, s);
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
  if (vocab < 16384) {
    SampleRowsKernel<256><<<grid, 256, 0, stream>>>(logits, vocab, ld, params, out_token);
  } else {
    SampleRowsKernel<1024><<<grid, 1024, 0, stream>>>(logits, vocab, ld, params, out_token);
  }
  return cudaGetLastError();
}

}  // namespace moe::kernels::cuda

#include "engine/sampling/row_scan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace moe::engine::sampling {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int64_t kBlock = 256;  // LogSumExp's stack buffer

// Orders (value, id) pairs most likely first; equal values by lower id.
bool MoreLikely(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  if (a.first != b.first) return a.first > b.first;
  return a.second < b.second;
}

// Sum of w[0, n) in double over 4 interleaved lanes.
double SumLanes(const float* w, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += w[i];
    s1 += w[i + 1];
    s2 += w[i + 2];
    s3 += w[i + 3];
  }
  for (; i < n; ++i) s0 += w[i];
  return (s0 + s1) + (s2 + s3);
}

// True when some x[i], i in [0, n), is > t. n is a multiple of 16 (SSE) or anything.
bool AnyAbove(const float* x, int64_t n, float t) {
#if defined(__SSE2__)
  const __m128 tv = _mm_set1_ps(t);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128 a = _mm_cmpgt_ps(_mm_loadu_ps(x + i), tv);
    const __m128 b = _mm_cmpgt_ps(_mm_loadu_ps(x + i + 4), tv);
    const __m128 c = _mm_cmpgt_ps(_mm_loadu_ps(x + i + 8), tv);
    const __m128 d = _mm_cmpgt_ps(_mm_loadu_ps(x + i + 12), tv);
    if (_mm_movemask_ps(_mm_or_ps(_mm_or_ps(a, b), _mm_or_ps(c, d))) != 0) return true;
  }
  for (; i < n; ++i) {
    if (x[i] > t) return true;
  }
  return false;
#else
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] > t) return true;
  }
  return false;
#endif
}

}  // namespace

void MaxAndNan(const float* x, int64_t n, float* max, bool* any_nan) {
  int64_t i = 0;
  float m = kNegInf;
  bool nan = false;
#if defined(__SSE2__)
  // _mm_max_ps(a, acc) returns acc when a is NaN, so NaNs never become the max.
  __m128 m0 = _mm_set1_ps(kNegInf), m1 = m0, m2 = m0, m3 = m0;
  __m128 u = _mm_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    const __m128 a = _mm_loadu_ps(x + i), b = _mm_loadu_ps(x + i + 4);
    const __m128 c = _mm_loadu_ps(x + i + 8), d = _mm_loadu_ps(x + i + 12);
    m0 = _mm_max_ps(a, m0);
    m1 = _mm_max_ps(b, m1);
    m2 = _mm_max_ps(c, m2);
    m3 = _mm_max_ps(d, m3);
    u = _mm_or_ps(u, _mm_or_ps(_mm_or_ps(_mm_cmpunord_ps(a, a), _mm_cmpunord_ps(b, b)),
                               _mm_or_ps(_mm_cmpunord_ps(c, c), _mm_cmpunord_ps(d, d))));
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_max_ps(_mm_max_ps(m0, m1), _mm_max_ps(m2, m3)));
  for (float v : lanes) m = v > m ? v : m;
  nan = _mm_movemask_ps(u) != 0;
#endif
  for (; i < n; ++i) {
    nan |= x[i] != x[i];
    m = x[i] > m ? x[i] : m;
  }
  *max = m;
  *any_nan = nan;
}

int32_t FirstIndexOf(const float* x, int64_t n, float v) {
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] == v) return static_cast<int32_t>(i);
  }
  return 0;
}

double ExpWeights(const float* x, float m, float scale, int64_t n, float* w) {
  for (int64_t i = 0; i < n; ++i) w[i] = ExpNonPositive((x[i] - m) * scale);
  return SumLanes(w, n);
}

float LogSumExp(const float* x, float m, int64_t n) {
  float buf[kBlock];
  double sum = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t len = std::min(kBlock, n - b);
    for (int64_t i = 0; i < len; ++i) buf[i] = ExpNonPositive(x[b + i] - m);
    sum += SumLanes(buf, len);
  }
  return m + static_cast<float>(std::log(sum));
}

void TopN(const float* x, int64_t n, int count, std::vector<std::pair<float, int32_t>>* out) {
  std::vector<std::pair<float, int32_t>>& best = *out;
  best.clear();
  if (count <= 0) return;
  best.reserve(count + 1);
  auto offer = [&best, count](float v, int32_t id) {
    const std::pair<float, int32_t> c{v, id};
    if (static_cast<int>(best.size()) == count && !MoreLikely(c, best.back())) return;
    best.insert(std::upper_bound(best.begin(), best.end(), c, MoreLikely), c);
    if (static_cast<int>(best.size()) > count) best.pop_back();
  };
  int64_t i = 0;
  for (; i < n && static_cast<int>(best.size()) < count; ++i) offer(x[i], static_cast<int32_t>(i));
  // The list is full: a later entry (higher id) enters only if strictly greater than the
  // last kept value, so whole blocks at or below it are skipped.
  constexpr int64_t kScan = 64;
  while (i < n) {
    const int64_t len = std::min(kScan, n - i);
    if (AnyAbove(x + i, len, best.back().first)) {
      for (int64_t j = i; j < i + len; ++j) {
        if (x[j] > best.back().first) offer(x[j], static_cast<int32_t>(j));
      }
    }
    i += len;
  }
}

}  // namespace moe::engine::sampling

// GPU sampling kernel (kernels/cuda/sampling.h) against its oracle,
// engine::Sampler::SampleWithUniform, on the same logits and the same uniform draw u.
// Each launch mixes rows of several kinds (peaked, flat, random-normal, many exact ties,
// large-magnitude) and per-row parameters (temperature, top_k, top_p, u); tokens must be
// equal. A mismatch is allowed (counted and printed) only where a plain full-sort
// reference shows the draw or the top-p target within 1e-9 relative of a boundary
// between cumulative weights, where the GPU's and the host's double sums (in different
// orders) may round apart. Rows with a NaN, a +inf or only -inf must give -1. Outputs are
// poisoned before each launch; padding columns (ld > vocab) hold NaN. Rows with large
// kept sets (T 4, top_p 0.99, top_k 1000 / 20000) run at vocabularies around the kernel's
// shared-memory cache (55,296 tokens). Then prints the kernel time for rows 64 / 256 at
// vocab 50,304 / 151,936: greedy, top-p 0.9, top-k 50, top-k 1000 + top-p 0.99, T=1.
// Needs a GPU: built as a cc_binary, never run by CI.
//
// Usage: sampling_test [--seed N]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampling/row_scan.h"
#include "engine/sampling/sampler.h"
#include "kernels/cuda/sampling.h"
#include "tools/gpu/gpu_check.h"

namespace moe::gpu_test {
namespace {

namespace kg = ::moe::kernels::cuda;
using engine::Sampler;
using engine::SamplingParams;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr double kBoundaryRel = 1e-9;

enum Kind { kPeaked, kFlat, kNormal, kTies, kLarge, kHuge, kMasked, kNumKinds };
const char* KindName(int k) {
  static const char* names[] = {"peaked", "flat", "normal", "ties", "large", "huge", "masked"};
  return names[k];
}

// 4 and 0.99 make the kept sets large (most of the vocabulary on flat-ish rows).
const float kTemps[] = {0.f, 0.3f, 1.f, 1.7f, 4.f};
const float kTopPs[] = {1.f, 0.99f, 0.95f, 0.5f, 0.01f};
constexpr int kNumTemps = sizeof(kTemps) / sizeof(kTemps[0]);
constexpr int kNumTopPs = sizeof(kTopPs) / sizeof(kTopPs[0]);
std::vector<int> TopKs(int64_t vocab) {
  return {0, 1, 2, 50, 1000, static_cast<int>(vocab - 1), static_cast<int>(vocab + 5)};
}

void FillRow(Rng& rng, int kind, int64_t n, float* out) {
  std::normal_distribution<float> nd(0.f, 1.f);
  auto& g = rng.gen();
  switch (kind) {
    case kPeaked:
      for (int64_t i = 0; i < n; ++i) out[i] = 8.f * nd(g);
      break;
    case kFlat:
      for (int64_t i = 0; i < n; ++i) out[i] = 0.5f;
      break;
    case kNormal:
      for (int64_t i = 0; i < n; ++i) out[i] = nd(g);
      break;
    case kTies: {  // five values, shuffled: ties at every top-k / top-p boundary
      std::uniform_int_distribution<int> d(0, 4);
      for (int64_t i = 0; i < n; ++i) out[i] = 0.75f * static_cast<float>(d(g));
      break;
    }
    case kLarge:  // far from zero: (x - max) loses low bits
      for (int64_t i = 0; i < n; ++i) out[i] = 3e4f + 30.f * nd(g);
      break;
    case kHuge:  // almost every weight underflows to 0, (x - max) may overflow
      for (int64_t i = 0; i < n; ++i) out[i] = 1e30f * nd(g);
      break;
    default:  // kMasked: two logits in three are -inf (one finite logit at least)
      for (int64_t i = 0; i < n; ++i) out[i] = i % 3 == 1 || n == 1 ? 2.f * nd(g) : -kInf;
      break;
  }
}

double Uniform(Rng& rng) { return static_cast<double>(rng.gen()() >> 11) * (1.0 / 9007199254740992.0); }

SamplingParams ToParams(const kg::CudaSampleParams& c) {
  SamplingParams p;
  p.temperature = c.temperature;
  p.top_k = c.top_k;
  p.top_p = c.top_p;
  return p;
}

// True when a full-sort reference of the host's rule puts u · (kept mass), or the top-p
// target, within kBoundaryRel of a cumulative-weight boundary (finite rows only).
bool NearBoundary(const float* x, int64_t n, const kg::CudaSampleParams& c, std::string* why) {
  const float m = *std::max_element(x, x + n);
  std::vector<float> w(n);
  const double total = engine::sampling::ExpWeights(x, m, 1.f / c.temperature, n, w.data());
  std::vector<std::pair<float, int32_t>> order;
  for (int64_t i = 0; i < n; ++i) {
    if (w[i] > 0.f) order.emplace_back(w[i], static_cast<int32_t>(i));
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  auto near = [](double a, double b) { return std::abs(a - b) <= kBoundaryRel * std::abs(b); };
  double mass = total;
  if (c.top_k > 0 && c.top_k < n) {
    if (static_cast<int64_t>(order.size()) > c.top_k) order.resize(c.top_k);
    mass = 0;
    for (const auto& e : order) mass += e.first;
  }
  double kept = mass;
  if (c.top_p < 1.f) {
    const double target = static_cast<double>(c.top_p) * mass;
    double acc = 0;
    size_t cut = order.size() - 1;
    for (size_t i = 0; i < order.size(); ++i) {
      const double before = acc;
      acc += order[i].first;
      if (near(acc, target) || near(before, target)) {
        *why = "top-p target within rounding of the prefix mass";
        return true;
      }
      if (acc >= target) {
        cut = i;
        break;
      }
    }
    order.resize(cut + 1);
    kept = 0;
    for (const auto& e : order) kept += e.first;
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  const double target = c.u * kept;
  double cum = 0;
  for (const auto& e : order) {
    const double before = cum;
    cum += e.first;
    if (near(cum, target) || near(before, target)) {
      *why = "u * mass within rounding of a cumulative weight";
      return true;
    }
    if (target < cum) break;
  }
  return false;
}

struct Launch {
  std::string name;
  int64_t vocab, ld;
  std::vector<float> logits;  // rows × ld
  std::vector<kg::CudaSampleParams> params;
  std::vector<int> kinds;     // -1: a special (non-finite) row
};

// Runs one launch and checks every row; returns the number of boundary mismatches.
int RunAndCheck(const Launch& L, Report& rep) {
  const int64_t rows = static_cast<int64_t>(L.params.size());
  DevBuf<float> dx(L.logits);
  DevBuf<kg::CudaSampleParams> dp(L.params);
  DevBuf<int32_t> dout(rows);
  CUDA_OK(cudaMemset(dout.get(), 0x7F, rows * sizeof(int32_t)));  // not a token, not -1
  LAUNCH_OK(kg::LaunchSample(dx.get(), rows, L.vocab, L.ld, dp.get(), dout.get(), nullptr));
  const std::vector<int32_t> got = dout.Download();
  int wrong = 0, boundary = 0, declined = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = L.logits.data() + r * L.ld;
    const kg::CudaSampleParams& c = L.params[r];
    bool finite_max = false, any_nan = false, any_pos_inf = false;
    for (int64_t i = 0; i < L.vocab; ++i) {
      any_nan |= std::isnan(x[i]);
      any_pos_inf |= x[i] == kInf;
      finite_max |= std::isfinite(x[i]);
    }
    int32_t expect;
    bool greedy = true;
    if (any_nan || any_pos_inf || !finite_max) {
      expect = -1;
      ++declined;
    } else {
      Sampler oracle(ToParams(c), 0);
      greedy = !oracle.NextUniform().has_value();
      expect = oracle.SampleWithUniform(absl::MakeConstSpan(x, L.vocab),
                                        greedy ? std::nullopt : std::optional<double>(c.u))
                   .token;
    }
    if (got[r] == expect) continue;
    std::string why;
    const bool allowed = !greedy && expect >= 0 && got[r] >= 0 && got[r] < L.vocab &&
                         NearBoundary(x, L.vocab, c, &why);
    std::printf("  %s row %lld (%s) T=%g top_k=%d top_p=%g u=%.17g: gpu %d host %d%s%s\n",
                allowed ? "boundary" : "MISMATCH", static_cast<long long>(r),
                L.kinds[r] >= 0 ? KindName(L.kinds[r]) : "non-finite", c.temperature, c.top_k,
                c.top_p, c.u, got[r], expect, allowed ? ": " : "", why.c_str());
    if (allowed) {
      ++boundary;
    } else {
      ++wrong;
    }
  }
  char shape[160];
  std::snprintf(shape, sizeof(shape), "%s vocab=%lld ld=%lld rows=%lld (-1: %d, bnd: %d)",
                L.name.c_str(), static_cast<long long>(L.vocab), static_cast<long long>(L.ld),
                static_cast<long long>(rows), declined, boundary);
  rep.Check("sample tokens", shape, wrong, 0);
  return boundary;
}

// Rows with parameters drawn from the case lists; some u at the ends of [0, 1) (the top
// end, 1 in 64 rows, may give an allowed boundary mismatch).
Launch MixedLaunch(Rng& rng, const std::string& name, int64_t vocab, int64_t rows, int64_t pad,
                   bool specials) {
  Launch L{name, vocab, vocab + pad, {}, {}, {}};
  L.logits.assign(rows * L.ld, std::nanf(""));
  const std::vector<int> ks = TopKs(vocab);
  for (int64_t r = 0; r < rows; ++r) {
    const int kind = rng.Int(0, kNumKinds - 1);
    FillRow(rng, kind, vocab, L.logits.data() + r * L.ld);
    kg::CudaSampleParams c;
    c.temperature = kTemps[rng.Int(0, kNumTemps - 1)];
    c.top_k = ks[rng.Int(0, static_cast<int>(ks.size()) - 1)];
    c.top_p = kTopPs[rng.Int(0, kNumTopPs - 1)];
    // The largest draw sits within rounding of the total mass: a boundary case by nature.
    const int edge = rng.Int(0, 63);
    c.u = edge < 4 ? 0.0 : (edge == 4 ? 1.0 - 0x1p-53 : Uniform(rng));
    L.params.push_back(c);
    L.kinds.push_back(kind);
  }
  if (specials) {  // NaN, +inf and all -inf rows (greedy and not)
    for (int s = 0; s < 3; ++s) {
      float* x = L.logits.data() + s * L.ld;
      FillRow(rng, kNormal, vocab, x);
      const int64_t at = rng.Int(0, static_cast<int>(vocab - 1));
      if (s == 0) x[at] = std::nanf("");
      if (s == 1) x[at] = kInf;
      if (s == 2) std::fill(x, x + vocab, -kInf);
      L.kinds[s] = -1;
      L.params[s].temperature = s == 0 ? 0.f : 1.f;
    }
  }
  return L;
}

// Every (kind, T, top_k, top_p) combination once, in one launch.
Launch ProductLaunch(Rng& rng, int64_t vocab) {
  Launch L{"all combinations", vocab, vocab, {}, {}, {}};
  const std::vector<int> ks = TopKs(vocab);
  for (int kind = 0; kind < kNumKinds; ++kind) {
    for (float t : kTemps) {
      for (int k : ks) {
        for (float p : kTopPs) {
          const size_t off = L.logits.size();
          L.logits.resize(off + vocab);
          FillRow(rng, kind, vocab, L.logits.data() + off);
          L.params.push_back(kg::CudaSampleParams{t, k, p, Uniform(rng)});
          L.kinds.push_back(kind);
        }
      }
    }
  }
  return L;
}

// Rows whose kept sets are large (thousands to most of the vocabulary): random-normal
// logits of scale 1 or 2, T 1 or 4, top_k 0 / 1000 / 20000 with top_p 0.9 / 0.99 / 1.
// Run at vocabularies around the kernel's shared-memory cache of 55,296 tokens too.
Launch LargeKeptLaunch(Rng& rng, int64_t vocab) {
  Launch L{"large kept sets", vocab, vocab, {}, {}, {}};
  const float temps[] = {1.f, 4.f};
  const int ks[] = {0, 1000, 20000};
  const float ps[] = {0.9f, 0.99f, 1.f};
  std::normal_distribution<float> nd(0.f, 1.f);
  for (float scale : {1.f, 2.f}) {
    for (float t : temps) {
      for (int k : ks) {
        for (float p : ps) {
          const size_t off = L.logits.size();
          L.logits.resize(off + vocab);
          for (int64_t i = 0; i < vocab; ++i) L.logits[off + i] = scale * nd(rng.gen());
          L.params.push_back(kg::CudaSampleParams{t, k, p, Uniform(rng)});
          L.kinds.push_back(kNormal);
        }
      }
    }
  }
  return L;
}

void TimeKernel(Rng& rng) {
  std::printf("\nkernel time (random-normal logits, scale 2; average of 20 launches):\n");
  for (int64_t vocab : {50304, 151936}) {
    for (int64_t rows : {64, 256}) {
      std::vector<float> x(rows * vocab);
      for (auto& v : x) v = 2.f * std::normal_distribution<float>(0.f, 1.f)(rng.gen());
      DevBuf<float> dx(x);
      DevBuf<int32_t> dout(rows);
      struct Mode {
        const char* name;
        float temperature;
        int top_k;
        float top_p;
      };
      const Mode modes[] = {{"greedy", 0.f, 0, 1.f},
                            {"top-p 0.9", 1.f, 0, 0.9f},
                            {"top-k 50", 1.f, 50, 1.f},
                            {"k1000 p.99", 1.f, 1000, 0.99f},
                            {"T=1 plain", 1.f, 0, 1.f}};
      for (const Mode& md : modes) {
        const char* mode = md.name;
        std::vector<kg::CudaSampleParams> ps(rows);
        for (auto& c : ps) c = kg::CudaSampleParams{md.temperature, md.top_k, md.top_p, Uniform(rng)};
        DevBuf<kg::CudaSampleParams> dp(ps);
        LAUNCH_OK(kg::LaunchSample(dx.get(), rows, vocab, vocab, dp.get(), dout.get(), nullptr));
        cudaEvent_t a, b;
        CUDA_OK(cudaEventCreate(&a));
        CUDA_OK(cudaEventCreate(&b));
        constexpr int kReps = 20;
        CUDA_OK(cudaEventRecord(a, nullptr));
        for (int i = 0; i < kReps; ++i) {
          CUDA_OK(kg::LaunchSample(dx.get(), rows, vocab, vocab, dp.get(), dout.get(), nullptr));
        }
        CUDA_OK(cudaEventRecord(b, nullptr));
        CUDA_OK(cudaEventSynchronize(b));
        float ms = 0;
        CUDA_OK(cudaEventElapsedTime(&ms, a, b));
        CUDA_OK(cudaEventDestroy(a));
        CUDA_OK(cudaEventDestroy(b));
        std::printf("time sample vocab=%-6lld rows=%-3lld %-10s %8.1f us  (%.0f GB/s of logits)\n",
                    static_cast<long long>(vocab), static_cast<long long>(rows), mode,
                    1e3 * ms / kReps, rows * vocab * 4.0 / (1e6 * ms / kReps));
      }
    }
  }
}

}  // namespace
}  // namespace moe::gpu_test

int main(int argc, char** argv) {
  using namespace moe::gpu_test;
  uint64_t seed = 0;
  if (!StartSuite(argc, argv, &seed)) return 2;
  Rng rng(seed);
  Report rep;
  int boundary = 0;
  // Argument checks.
  {
    namespace kg = ::moe::kernels::cuda;
    const bool ok = kg::LaunchSample(nullptr, 1, 0, 0, nullptr, nullptr, nullptr) == cudaErrorInvalidValue &&
                    kg::LaunchSample(nullptr, 1, 8, 4, nullptr, nullptr, nullptr) == cudaErrorInvalidValue &&
                    kg::LaunchSample(nullptr, 1, kg::kSampleMaxVocab + 1, kg::kSampleMaxVocab + 1, nullptr,
                                     nullptr, nullptr) == cudaErrorInvalidValue &&
                    kg::LaunchSample(nullptr, 0, 8, 8, nullptr, nullptr, nullptr) == cudaSuccess;
    rep.Check("sample arguments", "vocab 0, ld < vocab, vocab too large, rows 0", ok ? 0 : 1, 0);
  }
  for (int64_t vocab : {1, 2, 7, 1000, 50304, 151936, 262144}) {
    for (int64_t rows : {1, 3, 64, 257}) {
      if (vocab >= 151936 && rows == 257) continue;  // host oracle time; 64 rows cover it
      boundary += RunAndCheck(MixedLaunch(rng, "mixed", vocab, rows, 0, rows >= 5), rep);
    }
    boundary += RunAndCheck(MixedLaunch(rng, "mixed, ld > vocab", vocab, 5, 1 + vocab % 13, true), rep);
  }
  boundary += RunAndCheck(ProductLaunch(rng, 7), rep);
  boundary += RunAndCheck(ProductLaunch(rng, 1000), rep);
  boundary += RunAndCheck(ProductLaunch(rng, 50304), rep);
  for (int64_t vocab : {50304, 55295, 55296, 55297, 151936}) {
    boundary += RunAndCheck(LargeKeptLaunch(rng, vocab), rep);
  }
  std::printf("boundary mismatches (allowed): %d\n", boundary);
  TimeKernel(rng);
  return rep.Summary();
}

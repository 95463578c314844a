#include "kernels/cuda/experts.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/linear.h"

namespace moe::kernels::cuda {
namespace {

cudaDataType TypeOf(const __nv_bfloat16*) { return CUDA_R_16BF; }
cudaDataType TypeOf(const __half*) { return CUDA_R_16F; }
cudaDataType TypeOf(const float*) { return CUDA_R_32F; }

// kDown writes fp32, kDownT the operands' type T (for T = float the two are one problem,
// recorded as kDown).
enum Projection { kGateUp = 0, kDown = 1, kDownT = 2, kNumProjections = 3 };

// What the grouped call taught us, per element type (one record per T) and projection.
struct SupportRecord {
  std::atomic<int> state[kNumProjections];   // GroupedGemmState
  std::atomic<int> status[kNumProjections];  // cublasStatus_t of the refusal
};
template <typename T>
SupportRecord& Record() {
  static SupportRecord r{};  // static storage: zero = kUntried
  return r;
}

// The grouped call's answer: true to go on with it; false with *use_loop set when cuBLAS
// refused the problem (remembered), false with *use_loop clear on a real failure.
bool Note(SupportRecord& rec, Projection p, cublasStatus_t st, bool* use_loop) {
  *use_loop = false;
  if (st == CUBLAS_STATUS_SUCCESS) {
    int untried = static_cast<int>(GroupedGemmState::kUntried);
    rec.state[p].compare_exchange_strong(untried, static_cast<int>(GroupedGemmState::kAccepted));
    return true;
  }
  // Statuses returned before anything was enqueued, for a problem the library will not
  // take (type combination, GPU, workspace): the loop does the same work.
  if (st == CUBLAS_STATUS_NOT_SUPPORTED || st == CUBLAS_STATUS_INVALID_VALUE ||
      st == CUBLAS_STATUS_ARCH_MISMATCH || st == CUBLAS_STATUS_ALLOC_FAILED) {
    rec.status[p].store(static_cast<int>(st));
    rec.state[p].store(static_cast<int>(GroupedGemmState::kRefused));
    *use_loop = true;
  }
  return false;
}

// Device arrays of GEMM pointers, one per cuBLAS handle (a handle serves one thread and,
// in practice, one stream, so its calls are device-ordered and may reuse the array).
struct PointerArray {
  void** dev = nullptr;
  int64_t capacity = 0;
};
std::mutex g_arrays_mu;
std::unordered_map<cublasHandle_t, PointerArray>& Arrays() {
  static auto* arrays = new std::unordered_map<cublasHandle_t, PointerArray>;  // never freed
  return *arrays;
}

void** DevicePointerArray(cublasHandle_t handle, int64_t n) {
  std::lock_guard<std::mutex> lock(g_arrays_mu);
  PointerArray& a = Arrays()[handle];
  if (a.capacity < n) {
    // cudaFree waits for the device, so no earlier call still reads the old array.
    if (a.dev != nullptr) cudaFree(a.dev);
    a.dev = nullptr;
    a.capacity = 0;
    const int64_t cap = std::max<int64_t>(n, 1024);
    if (cudaMalloc(reinterpret_cast<void**>(&a.dev), cap * sizeof(void*)) != cudaSuccess) {
      return nullptr;
    }
    a.capacity = cap;
  }
  return a.dev;
}

// The pointers travel as kernel arguments (copied by the driver at launch), so no host
// buffer has to outlive the call and no pinned staging is needed.
constexpr int kPointersPerLaunch = 448;  // 3.5 KB of arguments, under the 4 KB limit
struct PointerBatch {
  const void* p[kPointersPerLaunch];
};

__global__ void StorePointersKernel(PointerBatch batch, int n, const void** dst) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = batch.p[i];
}

cudaError_t UploadPointers(const std::vector<const void*>& ptrs, void** dev, cudaStream_t s) {
  for (size_t b = 0; b < ptrs.size(); b += kPointersPerLaunch) {
    PointerBatch batch{};
    const int n = static_cast<int>(std::min<size_t>(kPointersPerLaunch, ptrs.size() - b));
    std::memcpy(batch.p, ptrs.data() + b, n * sizeof(void*));
    StorePointersKernel<<<1, 128, 0, s>>>(batch, n, const_cast<const void**>(dev) + b);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  return cudaSuccess;
}

// One group per active expert (its row count differs from the others'): y_g[rows_g, N] =
// x_g[rows_g, K] · W_g[N, K]^T, in cuBLAS's column-major view y^T = W^T-as-stored^T · x^T.
// a / b / c: device arrays of the W, x and y pointers.
cublasStatus_t GroupedLinear(cublasHandle_t handle, const std::vector<int>& rows, int K, int N,
                             void* const* a, void* const* b, void* const* c, cudaDataType ab_type,
                             cudaDataType c_type) {
#if defined(CUBLAS_VERSION) && CUBLAS_VERSION >= 120500
  const size_t G = rows.size();
  const std::vector<cublasOperation_t> ta(G, CUBLAS_OP_T), tb(G, CUBLAS_OP_N);
  const std::vector<int> m(G, N), k(G, K), ld_w(G, K), ld_x(G, K), ld_y(G, N), size(G, 1);
  const std::vector<float> alpha(G, 1.f), beta(G, 0.f);
  return cublasGemmGroupedBatchedEx(
      handle, ta.data(), tb.data(), m.data(), rows.data(), k.data(), alpha.data(),
      const_cast<const void* const*>(a), ab_type, ld_w.data(), const_cast<const void* const*>(b),
      ab_type, ld_x.data(), beta.data(), c, c_type, ld_y.data(), static_cast<int>(G), size.data(),
      CUBLAS_COMPUTE_32F);
#else
  (void)handle, (void)rows, (void)K, (void)N, (void)a, (void)b, (void)c, (void)ab_type,
      (void)c_type;
  return CUBLAS_STATUS_NOT_SUPPORTED;  // grouped GEMMs arrived in cuBLAS 12.5
#endif
}

}  // namespace

ExpertsGemm ExpertsDefaultGemm() {
  static const ExpertsGemm mode = [] {
    const char* v = std::getenv("MOE_EXPERTS_GEMM");
    return v != nullptr && std::strcmp(v, "loop") == 0 ? ExpertsGemm::kLoop
                                                        : ExpertsGemm::kGrouped;
  }();
  return mode;
}

template <typename T>
ExpertsGroupedSupport ExpertsGroupedGemmSupport() {
  const SupportRecord& r = Record<T>();
  ExpertsGroupedSupport s;
  s.gate_up = static_cast<GroupedGemmState>(r.state[kGateUp].load());
  s.down = static_cast<GroupedGemmState>(r.state[kDown].load());
  s.down_t = static_cast<GroupedGemmState>(r.state[kDownT].load());
  s.gate_up_status = static_cast<cublasStatus_t>(r.status[kGateUp].load());
  s.down_status = static_cast<cublasStatus_t>(r.status[kDown].load());
  s.down_t_status = static_cast<cublasStatus_t>(r.status[kDownT].load());
  return s;
}

namespace {

// RunExperts / RunExpertsOutT: Out is float or T, down's output type.
template <typename T, typename Out>
const char* RunExpertsImpl(cublasHandle_t handle, cudaStream_t stream, const T* x,
                           const int32_t* counts, const int32_t* offsets, int num_experts,
                           const ExpertWeights<T>* experts, int64_t hidden, int64_t inter,
                           void* gate_up_buf, T* act_buf, Out* out, ExpertsGemm path) {
  const Projection down_p = std::is_same<Out, float>::value ? kDown : kDownT;
  if (cublasSetStream(handle, stream) != CUBLAS_STATUS_SUCCESS) return "cublasSetStream failed";
  std::vector<int> active, rows;
  int64_t total = 0;
  for (int e = 0; e < num_experts; ++e) {
    if (counts[e] <= 0) continue;
    active.push_back(e);
    rows.push_back(counts[e]);
    total = std::max<int64_t>(total, int64_t{offsets[e]} + counts[e]);
  }
  if (active.empty()) return nullptr;
  if (path == ExpertsGemm::kAuto) path = ExpertsDefaultGemm();

  SupportRecord& rec = Record<T>();
  const int refused = static_cast<int>(GroupedGemmState::kRefused);
  bool grouped_gu = path == ExpertsGemm::kGrouped && rec.state[kGateUp].load() != refused;
  bool grouped_dn = path == ExpertsGemm::kGrouped && rec.state[down_p].load() != refused;
  T* gu_t = static_cast<T*>(gate_up_buf);          // grouped: gate_up in T
  float* gu_f = static_cast<float*>(gate_up_buf);  // loop: gate_up in fp32
  const int G = static_cast<int>(active.size());
  void** dev = nullptr;  // [Wgu | x | gate_up | Wdown | act | out], G pointers each
  if (grouped_gu || grouped_dn) {
    std::vector<const void*> ptrs(6 * static_cast<size_t>(G));
    for (int g = 0; g < G; ++g) {
      const int e = active[g];
      const int64_t r0 = offsets[e];
      ptrs[g] = experts[e].gate_up;
      ptrs[G + g] = x + r0 * hidden;
      ptrs[2 * G + g] = gu_t + r0 * 2 * inter;
      ptrs[3 * G + g] = experts[e].down;
      ptrs[4 * G + g] = act_buf + r0 * inter;
      ptrs[5 * G + g] = out + r0 * hidden;
    }
    bool aligned = true;
    for (const void* p : ptrs) aligned = aligned && reinterpret_cast<uintptr_t>(p) % 16 == 0;
    if (!aligned) {
      grouped_gu = grouped_dn = false;
    } else {
      dev = DevicePointerArray(handle, 6 * static_cast<int64_t>(G));
      if (dev == nullptr) return "expert GEMM pointer array allocation failed";
      if (UploadPointers(ptrs, dev, stream) != cudaSuccess) {
        return "expert GEMM pointer array upload failed";
      }
    }
  }

  bool use_loop = false;
  if (grouped_gu) {
    const cublasStatus_t st =
        GroupedLinear(handle, rows, static_cast<int>(hidden), static_cast<int>(2 * inter), dev,
                      dev + G, dev + 2 * G, TypeOf(x), TypeOf(x));
    if (!Note(rec, kGateUp, st, &use_loop) && !use_loop) return "expert gate_up grouped GEMM failed";
    grouped_gu = !use_loop;
  }
  if (grouped_gu) {
    if (LaunchSiluMul(gu_t, total, inter, act_buf, stream) != cudaSuccess) {
      return "expert SiLU*mul launch failed";
    }
  } else {
    for (int e : active) {
      const int64_t r0 = offsets[e];
      if (Linear(handle, x + r0 * hidden, counts[e], hidden, hidden, experts[e].gate_up,
                 2 * inter, gu_f + r0 * 2 * inter, 2 * inter) != CUBLAS_STATUS_SUCCESS) {
        return "expert gate_up GEMM failed";
      }
    }
    if (LaunchSiluMul(gu_f, total, inter, act_buf, stream) != cudaSuccess) {
      return "expert SiLU*mul launch failed";
    }
  }

  if (grouped_dn) {
    const cublasStatus_t st =
        GroupedLinear(handle, rows, static_cast<int>(inter), static_cast<int>(hidden),
                      dev + 3 * G, dev + 4 * G, dev + 5 * G, TypeOf(x), TypeOf(out));
    if (!Note(rec, down_p, st, &use_loop) && !use_loop) return "expert down grouped GEMM failed";
    grouped_dn = !use_loop;
  }
  if (!grouped_dn) {
    for (int e : active) {
      const int64_t r0 = offsets[e];
      if (Linear(handle, act_buf + r0 * inter, counts[e], inter, inter, experts[e].down, hidden,
                 out + r0 * hidden, hidden) != CUBLAS_STATUS_SUCCESS) {
        return "expert down GEMM failed";
      }
    }
  }
  return nullptr;
}

}  // namespace

template <typename T>
const char* RunExperts(cublasHandle_t handle, cudaStream_t stream, const T* x,
                       const int32_t* counts, const int32_t* offsets, int num_experts,
                       const ExpertWeights<T>* experts, int64_t hidden, int64_t inter,
                       void* gate_up_buf, T* act_buf, float* out, ExpertsGemm path) {
  return RunExpertsImpl(handle, stream, x, counts, offsets, num_experts, experts, hidden, inter,
                        gate_up_buf, act_buf, out, path);
}

template <typename T>
const char* RunExpertsOutT(cublasHandle_t handle, cudaStream_t stream, const T* x,
                           const int32_t* counts, const int32_t* offsets, int num_experts,
                           const ExpertWeights<T>* experts, int64_t hidden, int64_t inter,
                           void* gate_up_buf, T* act_buf, T* out, ExpertsGemm path) {
  return RunExpertsImpl(handle, stream, x, counts, offsets, num_experts, experts, hidden, inter,
                        gate_up_buf, act_buf, out, path);
}

#define MOE_EXPERTS_INST(T)                                                                    \
  template const char* RunExperts<T>(cublasHandle_t, cudaStream_t, const T*, const int32_t*,     \
                                     const int32_t*, int, const ExpertWeights<T>*, int64_t,      \
                                     int64_t, void*, T*, float*, ExpertsGemm);                   \
  template const char* RunExpertsOutT<T>(cublasHandle_t, cudaStream_t, const T*, const int32_t*, \
                                         const int32_t*, int, const ExpertWeights<T>*, int64_t,  \
                                         int64_t, void*, T*, T*, ExpertsGemm);                   \
  template ExpertsGroupedSupport ExpertsGroupedGemmSupport<T>();
MOE_EXPERTS_INST(__nv_bfloat16)
MOE_EXPERTS_INST(__half)
MOE_EXPERTS_INST(float)

}  // namespace moe::kernels::cuda

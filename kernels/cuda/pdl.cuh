// Programmatic dependent launch (PDL) for the decode step's small kernels (internal:
// included by .cu files only). With MOE_PDL=1 (read once per process; default off until
// measured) pdl::Launch sets cudaLaunchAttributeProgrammaticStreamSerialization, so the
// kernel may be scheduled while its predecessor in the stream is still running; it then
// MUST call pdl::WaitPredecessor() before its first global memory access (read or write:
// the predecessor may still read what this kernel overwrites). Every kernel launched
// through pdl::Launch calls it at entry; without the attribute the wait returns at once.
// Under stream capture (CUDA 12.3+) the attribute becomes a programmatic graph edge.
//
// Thread safety: Enabled() is a function-local static (thread-safe initialisation).
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <utility>

namespace moe::kernels::cuda::pdl {

inline bool Enabled() {
  static const bool on = [] {
    const char* v = std::getenv("MOE_PDL");
    return v != nullptr && v[0] == '1';
  }();
  return on;
}

// Waits until the stream predecessor finished and its memory is visible (griddepcontrol
// on sm_90; a no-op when the kernel was not launched with the PDL attribute).
__device__ __forceinline__ void WaitPredecessor() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when Enabled().
template <typename... KArgs, typename... Args>
cudaError_t Launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t stream, Args&&... args) {
  if (!Enabled()) {
    kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
    return cudaGetLastError();
  }
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(std::forward<Args>(args))...);
}

}  // namespace moe::kernels::cuda::pdl

#include "kernels/cuda/device_query.h"

#include <cuda_runtime.h>

namespace moe::kernels::cuda {

DeviceInfo QueryDevices() {
  DeviceInfo info;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return info;
  }
  if (count == 0) {
    info.error = "no CUDA device";
    return info;
  }
  cudaDeviceProp prop;
  err = cudaGetDeviceProperties(&prop, 0);
  if (err != cudaSuccess) {
    info.error = cudaGetErrorString(err);
    return info;
  }
  info.count = count;
  info.name = prop.name;
  info.total_memory = prop.totalGlobalMem;
  info.sm_major = prop.major;
  info.sm_minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) info.free_memory = free_b;
  return info;
}

}  // namespace moe::kernels::cuda

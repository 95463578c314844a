// Queries the CUDA devices visible to this process. Safe to call on a machine with no
// GPU or no driver: the result then has count == 0 and says why in `error`.
#pragma once

#include <cstddef>
#include <string>

namespace moe::kernels::cuda {

struct DeviceInfo {
  int count = 0;          // number of usable CUDA devices
  std::string error;      // why count == 0, from the CUDA runtime
  std::string name;       // device 0's name
  size_t total_memory = 0;
  size_t free_memory = 0;
  int sm_major = 0;
  int sm_minor = 0;
  int multiprocessors = 0;
};

DeviceInfo QueryDevices();

}  // namespace moe::kernels::cuda

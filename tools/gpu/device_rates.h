// What this device does in the run that measures it, as references for engine_bench's
// ratios: device-to-device copy bandwidth (the decode roofline), cuBLAS's dense bf16 GEMM
// rate (the prefill ratio) and pinned host-to-device copy bandwidth (the offload bound).
// Each returns 0 when its buffers cannot be allocated. Timed with CUDA events on the
// default stream; call from one thread with the device idle.
#pragma once

namespace moe::engine {

// Read + write bytes / s of cudaMemcpy device-to-device over a 1 GiB buffer (median of 10).
double MeasureCopyBandwidth();
// FLOP / s of cublasGemmEx C[8192, 8192] (fp32) = A · Bᵀ, bf16 operands, fp32 accumulation.
double MeasureGemmFlops();
// Bytes / s of cudaMemcpy pinned host-to-device over a 1 GiB buffer (median of 5).
double MeasurePinnedH2D();

}  // namespace moe::engine

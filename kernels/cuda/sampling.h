// Token sampling on the GPU, one block per row, with the semantics of
// engine::Sampler::SampleWithUniform (engine/sampling/sampler.h): greedy = argmax (ties →
// lowest id); otherwise weights w_i = ExpNonPositive((x_i - max) · (1/T)), bit-identical
// to the host's (no FMA contraction), top-k by (w desc, id asc) among w > 0, then top-p
// (the shortest most-likely-first prefix whose mass reaches top_p of the kept mass), then
// the kept tokens walked in id order: the first whose cumulative weight exceeds u · (kept
// mass), or the last kept token if rounding leaves that unreached.
//
// Nothing is sorted: the boundary weight of top-k and of top-p is found by radix
// selection over the float bits of the weights (exponent, then 8, 8 and 7 mantissa
// bits), with per-bin counts and masses summed exactly as integers, and the walk is a
// block prefix scan that stops at the chosen token. Greedy rows read the row once; other
// rows compute their weights once, into shared memory (the first 55,296 tokens of a row:
// each block takes up to 216 KiB of dynamic shared memory), and recompute only the rest.
//
// Rounding: the kept mass, the top-p prefix masses and the walk's cumulative weights are
// summed in double in a different order from the host's, so the token agrees with the
// host's except when u · (kept mass) (or the top-p target) lies within rounding (~1e-15
// relative) of a boundary between two tokens' cumulative weights.
//
// Thread safety: the launcher only enqueues work on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace moe::kernels::cuda {

// One per row (POD: the caller copies an array of them to the device). Fill it from a
// validated engine::SamplingParams and the draw of Sampler::NextUniform().
struct CudaSampleParams {
  float temperature = 0.f;  // <= 0 (or NaN), or 1/T not finite → greedy
  int32_t top_k = 0;        // <= 0 disabled; 1 → greedy; >= vocab disabled
  float top_p = 1.f;        // (0, 1]; 1 → disabled
  double u = 0.0;           // the host's uniform draw in [0, 1) (ignored when greedy)
};

// The largest vocabulary LaunchSample takes (per-bin counts are packed in 19 bits).
constexpr int64_t kSampleMaxVocab = (int64_t{1} << 19) - 1;

// out_token[r] = the token engine::Sampler::SampleWithUniform would pick for row r of
// logits [rows, vocab] (fp32, row stride `ld` floats) with params[r], or -1 when the row
// holds a NaN or has no finite maximum (a +inf entry, or all -inf): the caller finishes
// those rows on the host. logits, params and out_token are device pointers.
// Returns cudaErrorInvalidValue for vocab < 1 or > kSampleMaxVocab, ld < vocab or
// rows < 0 (rows == 0 launches nothing), else the launch's error.
cudaError_t LaunchSample(const float* logits, int64_t rows, int64_t vocab, int64_t ld,
                         const CudaSampleParams* params, int32_t* out_token,
                         cudaStream_t stream);

}  // namespace moe::kernels::cuda

#include "kernels/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/linear.h"

namespace moe::kernels::cpu {
namespace {

// (sequence, token within it) of each flattened query token.
struct TokenRef {
  int seq;
  int32_t t;
};

std::vector<TokenRef> FlattenTokens(const AttentionSeq* seqs, int num_seqs) {
  std::vector<TokenRef> refs;
  for (int s = 0; s < num_seqs; ++s) {
    for (int32_t t = 0; t < seqs[s].num_tokens; ++t) refs.push_back({s, t});
  }
  return refs;
}

inline int64_t SlotRow(const AttentionSeq& s, int64_t pos, int block_size) {
  return static_cast<int64_t>(s.block_table[pos / block_size]) * block_size + pos % block_size;
}

}  // namespace

void WriteKvCache(const AttentionSeq* seqs, int num_seqs, const float* k, const float* v,
                  int64_t src_stride, const PagedKvShape& shape, float* k_cache, float* v_cache,
                  ThreadPool* pool) {
  std::vector<TokenRef> refs = FlattenTokens(seqs, num_seqs);
  const int64_t row = shape.row();
  ParallelFor(pool, static_cast<int64_t>(refs.size()), 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const AttentionSeq& s = seqs[refs[i].seq];
      int64_t src = (s.token_begin + refs[i].t) * src_stride;
      int64_t dst = SlotRow(s, s.start_pos + refs[i].t, shape.block_size) * row;
      std::memcpy(k_cache + dst, k + src, sizeof(float) * row);
      std::memcpy(v_cache + dst, v + src, sizeof(float) * row);
    }
  });
}

void PagedAttention(const AttentionSeq* seqs, int num_seqs, const float* q, int64_t q_stride,
                    int num_heads, const PagedKvShape& shape, const float* k_cache,
                    const float* v_cache, float scale, int sliding_window, float* out,
                    int64_t out_stride, ThreadPool* pool) {
  std::vector<TokenRef> refs = FlattenTokens(seqs, num_seqs);
  const int group = num_heads / shape.num_kv_heads;
  const int hd = shape.head_dim;
  const int64_t row = shape.row();
  const int64_t items = static_cast<int64_t>(refs.size()) * num_heads;
  // Chunks of at least ~64K multiply-adds (q·k and p·v over the longest context).
  int64_t longest = 1;
  for (int s = 0; s < num_seqs; ++s) {
    longest = std::max<int64_t>(longest, int64_t{seqs[s].start_pos} + seqs[s].num_tokens);
  }
  const int64_t min_items = std::max<int64_t>(1, (int64_t{1} << 16) / (2 * longest * hd));
  ParallelFor(pool, items, min_items, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores;
    std::vector<float> acc(hd);
    for (int64_t item = i0; item < i1; ++item) {
      const TokenRef& ref = refs[item / num_heads];
      const int h = static_cast<int>(item % num_heads);
      const int kvh = h / group;
      const AttentionSeq& s = seqs[ref.seq];
      const int64_t pos = s.start_pos + ref.t;
      const int64_t first = sliding_window > 0 ? std::max<int64_t>(0, pos - sliding_window + 1) : 0;
      const int64_t n = pos - first + 1;
      const float* qh = q + (s.token_begin + ref.t) * q_stride + static_cast<int64_t>(h) * hd;
      scores.resize(n);
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const float* kj = k_cache + SlotRow(s, first + j, shape.block_size) * row + kvh * hd;
        float sc = DotF32(qh, kj, hd) * scale;
        scores[j] = sc;
        mx = std::max(mx, sc);
      }
      float sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      const float inv = 1.0f / sum;
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t j = 0; j < n; ++j) {
        const float p = scores[j] * inv;
        const float* vj = v_cache + SlotRow(s, first + j, shape.block_size) * row + kvh * hd;
        for (int d = 0; d < hd; ++d) acc[d] += p * vj[d];
      }
      float* o = out + (s.token_begin + ref.t) * out_stride + static_cast<int64_t>(h) * hd;
      std::copy(acc.begin(), acc.end(), o);
    }
  });
}

}  // namespace moe::kernels::cpu

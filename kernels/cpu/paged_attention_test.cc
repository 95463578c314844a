#include "kernels/cpu/paged_attention.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <catch2/catch.hpp>

#include "kernels/cpu/test_util.h"

namespace moe::kernels::cpu {
namespace {

// A sequence's whole history, stored contiguously: k/v [len, kv_heads, head_dim].
struct NaiveSeq {
  int32_t start_pos, num_tokens;
  std::vector<float> k, v;
};

// Plain causal attention of the queries (positions start_pos..) over the contiguous history.
std::vector<double> NaiveAttention(const NaiveSeq& s, const float* q, int heads, int kv_heads,
                                   int hd, float scale, int window) {
  std::vector<double> out(static_cast<size_t>(s.num_tokens) * heads * hd, 0.0);
  for (int t = 0; t < s.num_tokens; ++t) {
    int pos = s.start_pos + t;
    for (int h = 0; h < heads; ++h) {
      int kvh = h / (heads / kv_heads);
      std::vector<double> sc;
      std::vector<int> keys;
      for (int j = 0; j <= pos; ++j) {
        if (window > 0 && pos - j >= window) continue;
        double d = 0;
        for (int i = 0; i < hd; ++i) d += double(q[(t * heads + h) * hd + i]) * s.k[(j * kv_heads + kvh) * hd + i];
        sc.push_back(d * scale);
        keys.push_back(j);
      }
      double mx = *std::max_element(sc.begin(), sc.end()), sum = 0;
      for (auto& x : sc) sum += x = std::exp(x - mx);
      for (size_t a = 0; a < keys.size(); ++a) {
        for (int i = 0; i < hd; ++i) {
          out[(t * heads + h) * hd + i] += sc[a] / sum * s.v[(keys[a] * kv_heads + kvh) * hd + i];
        }
      }
    }
  }
  return out;
}

TEST_CASE("Paged attention over permuted blocks matches contiguous attention", "[attention]") {
  ThreadPool pool(3);
  struct Config {
    int heads, kv_heads, hd, block, window;
  };
  for (Config c : {Config{1, 1, 4, 1, 0}, Config{4, 2, 8, 4, 0}, Config{6, 2, 16, 16, 0},
                   Config{4, 4, 8, 3, 5}, Config{8, 1, 32, 8, 9}}) {
    PagedKvShape shape{c.block, c.kv_heads, c.hd};
    const int num_blocks = 64;
    std::vector<float> k_cache(num_blocks * c.block * shape.row(), NAN);
    std::vector<float> v_cache(k_cache.size(), NAN);
    // Three sequences: a prefill from 0, a chunk in the middle, a single decode token.
    std::vector<NaiveSeq> seqs = {{0, 11, {}, {}}, {9, 6, {}, {}}, {20, 1, {}, {}}};
    std::vector<int32_t> free_blocks(num_blocks);
    std::iota(free_blocks.begin(), free_blocks.end(), 0);
    std::shuffle(free_blocks.begin(), free_blocks.end(), std::mt19937(42));
    std::vector<std::vector<int32_t>> tables;
    std::vector<AttentionSeq> aseqs;
    int64_t total_tokens = 0;
    for (auto& s : seqs) {
      int len = s.start_pos + s.num_tokens;
      s.k = testing::RandomVector(len * shape.row(), 100 + len);
      s.v = testing::RandomVector(len * shape.row(), 200 + len);
      std::vector<int32_t> table;
      for (int b = 0; b * c.block < len; ++b) {
        table.push_back(free_blocks.back());
        free_blocks.pop_back();
      }
      tables.push_back(table);
      aseqs.push_back({total_tokens, s.num_tokens, s.start_pos, nullptr});
      total_tokens += s.num_tokens;
    }
    for (size_t i = 0; i < seqs.size(); ++i) aseqs[i].block_table = tables[i].data();
    // The history before start_pos is written as an earlier step would have.
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (seqs[i].start_pos == 0) continue;
      AttentionSeq past{0, seqs[i].start_pos, 0, tables[i].data()};
      WriteKvCache(&past, 1, seqs[i].k.data(), seqs[i].v.data(), shape.row(), shape,
                   k_cache.data(), v_cache.data(), &pool);
    }
    // This step's new k/v rows, flattened, with a wider row stride than needed.
    const int64_t kv_stride = shape.row() + 3;
    std::vector<float> k_new(total_tokens * kv_stride), v_new(total_tokens * kv_stride);
    for (size_t i = 0; i < seqs.size(); ++i) {
      for (int t = 0; t < seqs[i].num_tokens; ++t) {
        for (int64_t e = 0; e < shape.row(); ++e) {
          k_new[(aseqs[i].token_begin + t) * kv_stride + e] = seqs[i].k[(seqs[i].start_pos + t) * shape.row() + e];
          v_new[(aseqs[i].token_begin + t) * kv_stride + e] = seqs[i].v[(seqs[i].start_pos + t) * shape.row() + e];
        }
      }
    }
    WriteKvCache(aseqs.data(), aseqs.size(), k_new.data(), v_new.data(), kv_stride, shape,
                 k_cache.data(), v_cache.data(), &pool);
    const int64_t q_row = int64_t(c.heads) * c.hd;
    auto q = testing::RandomVector(total_tokens * q_row, 7);
    std::vector<float> out(total_tokens * q_row, NAN);
    const float scale = 1.0f / std::sqrt(float(c.hd));
    PagedAttention(aseqs.data(), aseqs.size(), q.data(), q_row, c.heads, shape, k_cache.data(),
                   v_cache.data(), scale, c.window, out.data(), q_row, &pool);
    for (size_t i = 0; i < seqs.size(); ++i) {
      auto ref = NaiveAttention(seqs[i], q.data() + aseqs[i].token_begin * q_row, c.heads,
                                c.kv_heads, c.hd, scale, c.window);
      for (size_t e = 0; e < ref.size(); ++e) {
        INFO("heads=" << c.heads << " kv=" << c.kv_heads << " block=" << c.block << " seq=" << i);
        REQUIRE(std::fabs(out[aseqs[i].token_begin * q_row + e] - ref[e]) < 1e-5);
      }
    }
  }
}

}  // namespace
}  // namespace moe::kernels::cpu

#include "kernels/cpu/thread_pool.h"

#include <atomic>
#include <vector>

#include <catch2/catch.hpp>

namespace moe::kernels::cpu {
namespace {

TEST_CASE("ParallelFor visits every index exactly once", "[thread_pool]") {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    REQUIRE(pool.num_threads() == threads);
    for (int64_t n : {0, 1, 7, 100, 1001}) {
      for (int64_t grain : {1, 3, 64}) {
        // Catch's REQUIRE is not thread-safe: record in the loop, assert after it.
        std::vector<std::atomic<int>> hits(n);
        std::atomic<int> empty_chunks{0};
        pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
          if (b >= e) empty_chunks++;
          for (int64_t i = b; i < e; ++i) hits[i]++;
        });
        REQUIRE(empty_chunks.load() == 0);
        for (int64_t i = 0; i < n; ++i) REQUIRE(hits[i].load() == 1);
      }
    }
  }
}

TEST_CASE("Nested ParallelFor runs serially and completes", "[thread_pool]") {
  ThreadPool pool(4);
  std::atomic<int64_t> total{0};
  pool.ParallelFor(16, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.ParallelFor(10, 1, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
    }
  });
  REQUIRE(total.load() == 160);
}

TEST_CASE("Many consecutive loops reuse the workers", "[thread_pool]") {
  ThreadPool pool(3);
  int64_t sum = 0;
  for (int rep = 0; rep < 2000; ++rep) {
    std::vector<int64_t> part(64, 0);
    pool.ParallelFor(64, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) part[i] = i;
    });
    for (int64_t v : part) sum += v;
  }
  REQUIRE(sum == 2000 * (63 * 64 / 2));
}

TEST_CASE("Null pool runs serially", "[thread_pool]") {
  int calls = 0;
  ParallelFor(nullptr, 10, 1, [&](int64_t b, int64_t e) {
    ++calls;
    REQUIRE(b == 0);
    REQUIRE(e == 10);
  });
  REQUIRE(calls == 1);
}

}  // namespace
}  // namespace moe::kernels::cpu

#include "kernels/cpu/embedding.h"

#include <catch2/catch.hpp>

#include "kernels/cpu/test_util.h"

namespace moe::kernels::cpu {
namespace {

TEST_CASE("EmbeddingLookup copies the rows of the ids", "[embedding]") {
  ThreadPool pool(2);
  const int64_t vocab = 11, hidden = 13;
  for (DType dt : testing::kWeightTypes) {
    auto table = testing::MakeWeights(testing::RandomVector(vocab * hidden, 1), dt);
    std::vector<int32_t> ids = {0, 10, 3, 3, 7};
    std::vector<float> out(ids.size() * hidden);
    EmbeddingLookup(ids.data(), ids.size(), table.data(), dt, hidden, out.data(), &pool);
    for (size_t t = 0; t < ids.size(); ++t) {
      for (int64_t h = 0; h < hidden; ++h) {
        REQUIRE(out[t * hidden + h] == table.rounded[ids[t] * hidden + h]);
      }
    }
  }
}

}  // namespace
}  // namespace moe::kernels::cpu

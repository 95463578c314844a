#include "engine/experts/prediction_accuracy.h"

#include <catch2/catch.hpp>

namespace moe::engine {
namespace {

TEST_CASE("precision and recall per depth and per layer, over distinct experts") {
  PredictionAccuracy acc(2, 4);
  acc.Record(/*layer=*/1, /*depth=*/1, {1, 2, 3, 3}, {2, 3, 4, 5});  // 2 of 3, 2 of 4
  acc.Record(2, 1, {7}, {7});
  acc.Record(3, 2, {0, 1}, {2, 3});
  acc.Record(3, 3, {0}, {0});   // depth out of range: ignored
  acc.Record(9, 1, {0}, {0});   // layer out of range: ignored
  CHECK(acc.ByDepth(1).events == 2);
  CHECK(acc.ByDepth(1).precision() == Approx(3.0 / 4.0));
  CHECK(acc.ByDepth(1).recall() == Approx(3.0 / 5.0));
  CHECK(acc.ByDepth(2).precision() == 0.0);
  CHECK(acc.ByLayer(1).recall() == Approx(0.5));
  CHECK(acc.ByLayer(0).events == 0);
  CHECK(acc.Total().correct == 3);
  PredictionAccuracy other(2, 4);
  other.Record(3, 2, {2}, {2});
  acc.Merge(other);
  CHECK(acc.ByDepth(2).correct == 1);
  CHECK(acc.Summary().find("depth 2: precision 0.333 recall 0.333 (2 predictions)") !=
        std::string::npos);
}

}  // namespace
}  // namespace moe::engine

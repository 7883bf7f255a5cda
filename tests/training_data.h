// A small learnable task and a look at a model's weights, shared by the tests that train
// (test_training.cpp, test_callbacks.cpp, test_metrics.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "weft/models/sequential.h"
#include "weft/ops/ops.h"

namespace weft::testing_support {

// n points in the unit square, labelled 1 where x1 > x2.
struct Data {
  Tensor x, y;
};
inline Data comparison_data(int64_t n, uint64_t seed) {
  Generator g(seed);
  const Tensor x = uniform({n, 2}, 0, 1, {}, g);
  const Tensor y = reshape(greater(slice(x, 1, 0, 1), slice(x, 1, 1, 2)), {n});
  return {x, y};
}

// Every weight's values, in the model's order.
inline std::vector<std::vector<double>> weight_values(const Sequential& model) {
  std::vector<std::vector<double>> values;
  for (const Weight* w : model.weights()) values.push_back(w->value.to_vector<double>());
  return values;
}

}  // namespace weft::testing_support

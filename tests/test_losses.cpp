// Losses and metrics: values against Keras's documented examples and plain C++ formulas,
// gradient checks in float64, label alignment, and the errors for bad labels.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "test_support.h"
#include "weft/autodiff/gradcheck.h"
#include "weft/models/losses.h"
#include "weft/models/metrics.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

using testing_support::expect_error;
using Values = std::vector<double>;

Tensor f32(const Values& values, const Shape& shape) { return tensor(values, shape); }
Tensor f64(const Values& values, const Shape& shape) {
  return tensor(values, shape, {.dtype = DType::f64});
}
Tensor labels(std::vector<int64_t> values, const Shape& shape) {
  return from_vector(values, shape);
}

// ---- Values: the examples of Keras's documentation for each loss class ----------------------

TEST(Losses, BinaryCrossentropyMatchesKerasExample) {
  const Tensor y = f32({0, 1, 0, 0}, {2, 2});
  const Tensor p = f32({0.6, 0.4, 0.4, 0.6}, {2, 2});
  EXPECT_NEAR(binary_crossentropy(y, p).item(), 0.815, 5e-4);
}

TEST(Losses, CategoricalCrossentropyMatchesKerasExample) {
  const Tensor y = f32({0, 1, 0, 0, 0, 1}, {2, 3});
  const Tensor p = f32({0.05, 0.95, 0, 0.1, 0.8, 0.1}, {2, 3});
  EXPECT_NEAR(categorical_crossentropy(y, p).item(), 1.177, 5e-4);
}

TEST(Losses, SparseCategoricalCrossentropyMatchesKerasExample) {
  const Tensor p = f32({0.05, 0.95, 0, 0.1, 0.8, 0.1}, {2, 3});
  EXPECT_NEAR(sparse_categorical_crossentropy(labels({1, 2}, {2}), p).item(), 1.177, 5e-4);
  // Labels as a column, and as floats holding whole numbers, read the same.
  EXPECT_NEAR(sparse_categorical_crossentropy(labels({1, 2}, {2, 1}), p).item(), 1.177, 5e-4);
  EXPECT_NEAR(sparse_categorical_crossentropy(f32({1, 2}, {2}), p).item(), 1.177, 5e-4);
}

TEST(Losses, MeanSquaredAndAbsoluteErrorMatchKerasExamples) {
  const Tensor y = f32({0, 1, 0, 0}, {2, 2});
  const Tensor p = f32({1, 1, 1, 0}, {2, 2});
  EXPECT_NEAR(mean_squared_error(y, p).item(), 0.5, 1e-7);
  EXPECT_NEAR(mean_absolute_error(y, p).item(), 0.5, 1e-7);
}

// ---- Values: the formulas, in plain C++ ---------------------------------------------------

TEST(Losses, BinaryCrossentropyClipsAndAddsEpsilonAsKerasDoes) {
  const Values y{1, 0, 1, 0, 1};
  const Values p{0.9, 0.2, 0.0, 1.0, 0.5};
  double expected = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double q = std::clamp(p[i], 1e-7, 1 - 1e-7);
    expected -= y[i] * std::log(q + 1e-7) + (1 - y[i]) * std::log(1 - q + 1e-7);
  }
  expected /= static_cast<double>(y.size());
  // Labels (B,) against predictions (B, 1), as Keras's fit reads them.
  EXPECT_NEAR(binary_crossentropy(f64(y, {5}), f64(p, {5, 1})).item(), expected, 1e-12);
}

TEST(Losses, CategoricalCrossentropyNormalisesThePredictions) {
  // Rows that do not sum to one are scaled first, so doubling a row changes nothing.
  const Tensor y = f64({0, 0, 1, 1, 0, 0}, {2, 3});
  const Tensor p = f64({0.2, 0.2, 0.6, 0.5, 0.25, 0.25}, {2, 3});
  const double expected = -(std::log(0.6) + std::log(0.5)) / 2;
  EXPECT_NEAR(categorical_crossentropy(y, p).item(), expected, 1e-12);
  EXPECT_NEAR(categorical_crossentropy(y, p * 2.0).item(), expected, 1e-12);
}

TEST(Losses, SequenceOutputsAverageOverEveryStep) {
  // (batch 2, steps 3, classes 2) with labels (2, 3): the mean over all six steps.
  const Tensor p = f64({0.9, 0.1, 0.2, 0.8, 0.5, 0.5, 0.3, 0.7, 0.6, 0.4, 0.1, 0.9}, {2, 3, 2});
  const Tensor y = labels({0, 1, 1, 1, 0, 1}, {2, 3});
  const double expected = -(std::log(0.9) + std::log(0.8) + std::log(0.5) + std::log(0.7) +
                            std::log(0.6) + std::log(0.9)) /
                          6;
  EXPECT_NEAR(sparse_categorical_crossentropy(y, p).item(), expected, 1e-12);
}

// ---- Gradients -------------------------------------------------------------------------------

struct LossCase {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> loss;
  Tensor y_true;
  Tensor y_pred;  // kept away from the clip bounds and the kink of abs
};

std::vector<LossCase> loss_cases() {
  Generator g(11);
  const Tensor probabilities = uniform({4, 3}, 0.05, 0.95, {.dtype = DType::f64}, g);
  const Tensor column = uniform({4, 1}, 0.05, 0.95, {.dtype = DType::f64}, g);
  const Tensor positive = uniform({4, 3}, 0.1, 1.0, {.dtype = DType::f64}, g);
  const Tensor targets = randn({4, 3}, {.dtype = DType::f64}, g);
  // |prediction - target| >= 0.2 everywhere.
  const Tensor offsets = uniform({4, 3}, 0.2, 1.0, {.dtype = DType::f64}, g) *
                         f64({1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1}, {4, 3});
  return {
      {"binary_crossentropy", binary_crossentropy,
       f64({1, 0, 0, 1, 1, 0, 0.3, 1, 0, 1, 0, 1}, {4, 3}), probabilities},
      {"binary_crossentropy_column", binary_crossentropy, labels({1, 0, 0, 1}, {4}), column},
      {"categorical_crossentropy", categorical_crossentropy,
       f64({0, 1, 0, 1, 0, 0, 0, 0, 1, 0.5, 0.5, 0}, {4, 3}), positive},
      {"sparse_categorical_crossentropy", sparse_categorical_crossentropy,
       labels({2, 0, 1, 1}, {4}), positive},
      {"mean_squared_error", mean_squared_error, targets, targets + offsets},
      {"mean_absolute_error", mean_absolute_error, targets, targets + offsets},
  };
}

TEST(Losses, GradientsMatchCentralDifferences) {
  for (const LossCase& c : loss_cases()) {
    SCOPED_TRACE(c.name);
    const Tensor y_true = c.y_true;
    const auto loss = c.loss;
    const GradcheckReport report =
        gradcheck([&](const std::vector<Tensor>& in) { return loss(y_true, in[0]); }, {c.y_pred});
    EXPECT_TRUE(report.passed()) << report.to_string();
  }
}

TEST(Losses, ClippedPredictionsGetNoGradient) {
  // Keras clips with tf.clip_by_value: no gradient flows outside [ε, 1 − ε].
  Tensor p = f64({0.0, 1.0, 0.5}, {3, 1}).requires_grad_();
  binary_crossentropy(f64({1, 0, 1}, {3}), p).backward();
  const Values grad = p.grad().to_vector<double>();
  EXPECT_EQ(grad[0], 0);
  EXPECT_EQ(grad[1], 0);
  EXPECT_NEAR(grad[2], -1.0 / 3 / (0.5 + 1e-7), 1e-9);
}

// ---- Label checks ----------------------------------------------------------------------------

TEST(Losses, BinaryLabelsOutsideTheUnitIntervalAreNamed) {
  const Tensor p = f32({0.5, 0.5, 0.5}, {3, 1});
  expect_error(
      [&] {
        binary_crossentropy(f32({0, 1, 2}, {3}), p);
      },
      {"binary_crossentropy", "label 2", "position 2", "[0, 1]"});
  expect_error(
      [&] {
        binary_crossentropy(f32({-1, 1, 0}, {3, 1}), p);
      },
      {"label -1", "position (0, 0)"});
  expect_error([&] { binary_crossentropy(f32({NAN, 1, 0}, {3}), p); }, {"label nan"});
}

TEST(Losses, SparseLabelsOutsideTheClassesAreNamed) {
  const Tensor p = f32({0.2, 0.3, 0.5, 0.1, 0.1, 0.8}, {2, 3});
  expect_error(
      [&] {
        sparse_categorical_crossentropy(labels({0, 3}, {2}), p);
      },
      {"sparse_categorical_crossentropy", "label 3", "position 1", "[0, 3)"});
  expect_error(
      [&] {
        sparse_categorical_crossentropy(labels({-1, 0}, {2}), p);
      },
      {"label -1", "position 0"});
  expect_error(
      [&] {
        sparse_categorical_crossentropy(f32({0.5, 1}, {2}), p);
      },
      {"label 0.5", "position 0"});
}

TEST(Losses, MismatchedShapesAreNamed) {
  const Tensor p = f32({0.2, 0.3, 0.5, 0.1, 0.1, 0.8}, {2, 3});
  expect_error(
      [&] {
        categorical_crossentropy(labels({0, 2}, {2}), p);
      },
      {"categorical_crossentropy", "(2,)", "(2, 3)", "sparse_categorical_crossentropy"});
  expect_error([&] { mean_squared_error(f32({1, 2, 3}, {3}), p); }, {"mse", "(3,)", "(2, 3)"});
  expect_error(
      [&] {
        sparse_categorical_crossentropy(labels({0, 1, 2}, {3}), p);
      },
      {"sparse_categorical_crossentropy", "(3,)", "(2, 3)"});
}

TEST(Losses, ByNameWithKerasAliases) {
  EXPECT_EQ(loss_by_name("mean_squared_error").name, "mse");
  EXPECT_EQ(loss_by_name("mae").name, "mae");
  EXPECT_EQ(loss_by_name("binary_crossentropy").name, "binary_crossentropy");
  expect_error([] { loss_by_name("hinge"); }, {"unknown loss \"hinge\"", "binary_crossentropy",
                                               "sparse_categorical_crossentropy"});
}

// ---- Metrics ---------------------------------------------------------------------------------

// One batch's value of a metric compiled for `loss`.
double metric_value(const std::string& name, const std::string& loss, const Tensor& y_true,
                    const Tensor& y_pred) {
  const auto metric = make_metric(name, loss);
  metric->update_state(y_true, y_pred);
  return metric->result();
}

TEST(Metrics, AccuracyFollowsTheLossAndTheShapes) {
  // Binary: thresholded at 0.5, labels (B,) against (B, 1): right, right, wrong, wrong.
  const Tensor column = f32({0.7, 0.2, 0.5, 0.9}, {4, 1});
  const Tensor binary_labels = f32({1, 0, 1, 0}, {4});
  EXPECT_EQ(metric_value("accuracy", "binary_crossentropy", binary_labels, column), 0.5);
  // By shape: one output is binary whatever the loss.
  EXPECT_EQ(metric_value("acc", "mse", binary_labels, column), 0.5);

  // Categorical and sparse: the first sample is right, the second wrong.
  const Tensor p = f32({0.2, 0.3, 0.5, 0.6, 0.1, 0.3}, {2, 3});
  const Tensor one_hot = f32({0, 0, 1, 0, 1, 0}, {2, 3});
  EXPECT_EQ(metric_value("accuracy", "categorical_crossentropy", one_hot, p), 0.5);
  const Tensor sparse = labels({2, 1}, {2});
  EXPECT_EQ(metric_value("accuracy", "sparse_categorical_crossentropy", sparse, p), 0.5);
  // By shape: integer labels with one axis fewer than the predictions are sparse.
  EXPECT_EQ(metric_value("accuracy", "mse", sparse, p), 0.5);
}

TEST(Metrics, ErrorsAreAveragedOverTheLastAxisThenOverSamples) {
  // Per sample: squared errors 0.5 and 2.5, absolute errors 0.5 and 1.5.
  const Tensor y = f32({0, 1, 0, 0}, {2, 2});
  const Tensor p = f32({1, 1, 1, -2}, {2, 2});
  EXPECT_EQ(metric_value("mse", "mse", y, p), 1.5);
  EXPECT_EQ(metric_value("mae", "mse", y, p), 1.0);
  expect_error([] { make_metric("f1", "mse"); },
               {"unknown metric \"f1\"", "accuracy", "mae", "mse", "AUC", "Precision"});
}

TEST(Metrics, AMeanMetricWeighsEverySampleOnce) {
  // Batches of 3 and 1 samples: the mean of the 4 values, not of the two batch means.
  const auto metric = make_metric("mae", "mse");
  metric->update_state(f32({0, 0, 0}, {3, 1}), f32({1, 1, 1}, {3, 1}));
  metric->update_state(f32({0}, {1, 1}), f32({5}, {1, 1}));
  EXPECT_EQ(metric->result(), 2.0);
}

}  // namespace
}  // namespace weft

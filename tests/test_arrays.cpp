// to_tensor: the plain containers of models/text.h and models/datasets.h as tensors.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "test_support.h"
#include "weft/models/arrays.h"
#include "weft/models/datasets.h"

namespace weft {
namespace {

using testing_support::expect_error;

TEST(Arrays, IntMatrixIsAnInt64TensorOfItsShape) {
  const IntMatrix padded = pad_sequences({{1, 2, 3}, {4}}, {.maxlen = 3, .padding = "post"});
  const Tensor t = to_tensor(padded);
  EXPECT_EQ(t.dtype(), DType::i64);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 4, 0, 0}));
}

TEST(Arrays, DoubleMatrixIsFloat32UnlessAskedOtherwise) {
  const DoubleMatrix m{.rows = 2, .cols = 2, .values = {0.1, 1.5, -2.0, 1e-3}};
  const Tensor f = to_tensor(m);
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(f.shape(), (Shape{2, 2}));
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{0.1f, 1.5f, -2.0f, 1e-3f}));

  const Tensor d = to_tensor(m, DType::f64);
  EXPECT_EQ(d.dtype(), DType::f64);
  EXPECT_EQ(d.to_vector<double>(), m.values);  // exact: no round trip through float
}

TEST(Arrays, WindowsReshapeToSamplesStepsFeatures) {
  const std::vector<double> series = {1, 2, 3, 4, 5};
  const Windows w = make_windows(series, 3);
  const Tensor X = to_tensor(w.x).reshape({w.x.rows, 3, 1});
  const Tensor y = to_tensor(w.y, DType::f32);
  EXPECT_EQ(X.shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(X.to_vector<float>(), (std::vector<float>{1, 2, 3, 2, 3, 4}));
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.shape(), (Shape{2}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{4, 5}));
}

TEST(Arrays, VectorsAreOneDimensionalInTheGivenDtype) {
  const std::vector<int64_t> labels = {1, 0, 0, 1};
  const Tensor y = to_tensor(labels, DType::f32);
  EXPECT_EQ(y.dtype(), DType::f32);
  EXPECT_EQ(y.shape(), (Shape{4}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{1, 0, 0, 1}));
  EXPECT_EQ(to_tensor(labels, DType::i64).to_vector<int64_t>(), labels);
  EXPECT_EQ(to_tensor(std::vector<double>{}, DType::f32).shape(), (Shape{0}));
}

TEST(Arrays, AMatrixWhoseValuesDoNotFillItIsAnError) {
  const IntMatrix bad{.rows = 2, .cols = 3, .values = {1, 2, 3}};
  expect_error([&] { to_tensor(bad); }, {"to_tensor()", "2x3", "3 values"});
  const DoubleMatrix negative{.rows = -1, .cols = 0, .values = {}};
  expect_error([&] { to_tensor(negative); }, {"to_tensor()", "-1x0"});
}

}  // namespace
}  // namespace weft

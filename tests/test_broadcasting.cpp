// Values, not just shapes: broadcast elementwise ops against explicit loops, ops on strided views
// against the same ops on contiguous copies, and matmul of views and broadcast batches against
// a naive triple loop.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "weft/autodiff/tape.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

using Values = std::vector<double>;

// Small integers with repeats, so that equal and not_equal see both outcomes.
Tensor pattern(const Shape& shape, int64_t multiplier, int64_t modulus, DType dtype) {
  Values values(shape_numel(shape));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = static_cast<double>(static_cast<int64_t>(i) * multiplier % modulus - modulus / 2);
  return to_dtype(from_vector(values, shape), dtype);
}

Tensor normal(const Shape& shape, uint64_t seed, DType dtype = DType::f64) {
  Generator generator(seed);
  return randn(shape, {.dtype = dtype}, generator);
}

// The row-major position in `shape` of the element that broadcasting maps to output `index`.
int64_t broadcast_source(const Shape& shape, const std::vector<int64_t>& index) {
  const size_t lead = index.size() - shape.size();
  int64_t offset = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    offset = offset * shape[d] + (shape[d] == 1 ? 0 : index[lead + d]);
  return offset;
}

// Calls body(index) for every index of `shape`, in row-major order.
void for_each_index(const Shape& shape,
                    const std::function<void(const std::vector<int64_t>&)>& body) {
  if (shape_numel(shape) == 0) return;
  std::vector<int64_t> index(shape.size(), 0);
  while (true) {
    body(index);
    size_t d = shape.size();
    while (d > 0 && ++index[d - 1] == shape[d - 1]) index[--d] = 0;
    if (d == 0) return;
  }
}

bool same_value(double actual, double expected, double rtol) {
  if (std::isnan(expected)) return std::isnan(actual);
  if (std::isinf(expected)) return actual == expected;
  return std::abs(actual - expected) <= rtol * std::max(1.0, std::abs(expected));
}

void expect_values(const Tensor& actual, const Shape& shape, const Values& expected, double rtol) {
  ASSERT_EQ(actual.shape(), shape);
  const Values got = actual.to_vector<double>();
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(same_value(got[i], expected[i], rtol))
        << "element " << i << ": got " << got[i] << ", expected " << expected[i];
}

double tolerance(DType dtype) { return dtype == DType::f32 ? 1e-6 : 1e-14; }

// ---- Elementwise binary ops over broadcast shapes ----------------------------------------------

struct ShapePair {
  std::string name;
  Shape a, b, out;
};

void PrintTo(const ShapePair& row, std::ostream* os) { *os << row.name; }

const std::vector<ShapePair> shape_pairs = {
    {"scalar_with_matrix", {}, {2, 3}, {2, 3}},
    {"matrix_with_scalar", {2, 3}, {}, {2, 3}},
    {"row_with_column", {1, 3}, {2, 1}, {2, 3}},
    {"vector_with_column", {3}, {4, 1}, {4, 3}},
    {"three_d_with_column", {2, 1, 3}, {4, 1}, {2, 4, 3}},
    {"leading_dimension", {4, 3}, {2, 4, 3}, {2, 4, 3}},
    {"leading_dimensions_of_ones", {5, 1, 1, 2}, {3, 2}, {5, 1, 3, 2}},
    {"both_sides_broadcast", {2, 1, 4}, {3, 1}, {2, 3, 4}},
    {"all_ones", {1, 1}, {1}, {1, 1}},
    {"same_shape", {2, 3}, {2, 3}, {2, 3}},
    {"empty", {0, 3}, {1, 3}, {0, 3}},
};

struct BinaryOp {
  std::string name;
  std::function<Tensor(const Tensor&, const Tensor&)> apply;
  std::function<double(double, double)> reference;
};

void PrintTo(const BinaryOp& row, std::ostream* os) { *os << row.name; }

const std::vector<BinaryOp> binary_ops = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
     [](double a, double b) { return a + b; }},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); },
     [](double a, double b) { return a - b; }},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
     [](double a, double b) { return a * b; }},
    {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
     [](double a, double b) { return a / b; }},
    {"pow", [](const Tensor& a, const Tensor& b) { return pow(a, b); },
     [](double a, double b) { return std::pow(a, b); }},
    {"greater", [](const Tensor& a, const Tensor& b) { return greater(a, b); },
     [](double a, double b) { return a > b ? 1.0 : 0.0; }},
    {"greater_equal", [](const Tensor& a, const Tensor& b) { return greater_equal(a, b); },
     [](double a, double b) { return a >= b ? 1.0 : 0.0; }},
    {"less", [](const Tensor& a, const Tensor& b) { return less(a, b); },
     [](double a, double b) { return a < b ? 1.0 : 0.0; }},
    {"less_equal", [](const Tensor& a, const Tensor& b) { return less_equal(a, b); },
     [](double a, double b) { return a <= b ? 1.0 : 0.0; }},
    {"equal", [](const Tensor& a, const Tensor& b) { return equal(a, b); },
     [](double a, double b) { return a == b ? 1.0 : 0.0; }},
    {"not_equal", [](const Tensor& a, const Tensor& b) { return not_equal(a, b); },
     [](double a, double b) { return a != b ? 1.0 : 0.0; }},
};

using BinaryCase = std::tuple<ShapePair, BinaryOp, DType>;

class BroadcastBinary : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BroadcastBinary, MatchesAnExplicitLoop) {
  const auto& [shapes, op, dtype] = GetParam();
  const Tensor a = pattern(shapes.a, 7, 11, dtype);
  const Tensor b = pattern(shapes.b, 5, 7, dtype);
  const Values av = a.to_vector<double>(), bv = b.to_vector<double>();
  Values expected;
  for_each_index(shapes.out, [&](const std::vector<int64_t>& index) {
    expected.push_back(
        op.reference(av[broadcast_source(shapes.a, index)], bv[broadcast_source(shapes.b, index)]));
  });
  const Tensor out = op.apply(a, b);
  EXPECT_EQ(out.dtype(), dtype);
  expect_values(out, shapes.out, expected, tolerance(dtype));
}

INSTANTIATE_TEST_SUITE_P(Ops, BroadcastBinary,
                         ::testing::Combine(::testing::ValuesIn(shape_pairs),
                                            ::testing::ValuesIn(binary_ops),
                                            ::testing::Values(DType::f32, DType::f64)),
                         [](const auto& test) {
                           return std::get<0>(test.param).name + "_" +
                                  std::get<1>(test.param).name + "_" +
                                  std::string(dtype_name(std::get<2>(test.param)));
                         });

TEST(BroadcastScalarOperands, DoublesBecomeScalarsOfTheTensorsDtype) {
  const Tensor x = tensor({1, 2, 4, 8}, {2, 2});
  EXPECT_EQ((x + 1.0).to_vector<double>(), (Values{2, 3, 5, 9}));
  EXPECT_EQ((1.0 - x).to_vector<double>(), (Values{0, -1, -3, -7}));
  EXPECT_EQ((x * 0.5).to_vector<double>(), (Values{0.5, 1, 2, 4}));
  EXPECT_EQ((8.0 / x).to_vector<double>(), (Values{8, 4, 2, 1}));
  EXPECT_EQ((x / 2.0).to_vector<double>(), (Values{0.5, 1, 2, 4}));
  EXPECT_EQ(pow(x, 2.0).to_vector<double>(), (Values{1, 4, 16, 64}));
  EXPECT_EQ((x + 1.0).dtype(), DType::f32);
  EXPECT_EQ((x + 1.0).shape(), (Shape{2, 2}));
}

// ---- where --------------------------------------------------------------------------------------

struct WhereCase {
  std::string name;
  Shape cond, a, b, out;
  DType cond_dtype;
};

void PrintTo(const WhereCase& row, std::ostream* os) { *os << row.name; }

class BroadcastWhere : public ::testing::TestWithParam<WhereCase> {};

TEST_P(BroadcastWhere, MatchesAnExplicitLoop) {
  const WhereCase& c = GetParam();
  const Tensor cond = greater(pattern(c.cond, 3, 5, DType::f64), scalar(0, DType::f64));
  const Tensor condition = to_dtype(cond, c.cond_dtype);
  const Tensor a = pattern(c.a, 7, 11, DType::f64);
  const Tensor b = pattern(c.b, 5, 7, DType::f64) * 100.0;
  const Values cv = cond.to_vector<double>(), av = a.to_vector<double>(),
               bv = b.to_vector<double>();
  Values expected;
  for_each_index(c.out, [&](const std::vector<int64_t>& index) {
    expected.push_back(cv[broadcast_source(c.cond, index)] != 0 ? av[broadcast_source(c.a, index)]
                                                                : bv[broadcast_source(c.b, index)]);
  });
  expect_values(where(condition, a, b), c.out, expected, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, BroadcastWhere,
    ::testing::ValuesIn(std::vector<WhereCase>{
        {"same_shapes", {2, 3}, {2, 3}, {2, 3}, {2, 3}, DType::f64},
        {"scalar_branches", {2, 3}, {}, {}, {2, 3}, DType::f64},
        {"scalar_condition", {}, {2, 3}, {2, 3}, {2, 3}, DType::f64},
        {"row_condition_column_branch", {3}, {2, 1}, {2, 3}, {2, 3}, DType::f64},
        {"three_way", {2, 1, 3}, {4, 1}, {}, {2, 4, 3}, DType::f64},
        {"integer_condition", {2, 1, 3}, {4, 1}, {3}, {2, 4, 3}, DType::i64},
        {"int32_condition_leading", {5}, {2, 3, 1}, {3, 5}, {2, 3, 5}, DType::i32},
    }),
    [](const auto& test) { return test.param.name; });

// ---- Ops on strided views ----------------------------------------------------------------------

struct ViewCase {
  std::string name;
  Shape base;
  std::function<Tensor(const Tensor&)> view;
  bool contiguous;
};

void PrintTo(const ViewCase& row, std::ostream* os) { *os << row.name; }

const std::vector<ViewCase> view_cases = {
    {"transpose", {3, 4}, [](const Tensor& x) { return transpose(x); }, false},
    {"permute_3d",
     {2, 3, 4},
     [](const Tensor& x) {
       return permute(x, {2, 0, 1});
     },
     false},
    {"slice_columns", {4, 6}, [](const Tensor& x) { return slice(x, 1, 1, 4); }, false},
    {"slice_rows_with_offset", {5, 3}, [](const Tensor& x) { return slice(x, 0, 1, 4); }, true},
    {"slice_of_transpose",
     {5, 6},
     [](const Tensor& x) { return slice(transpose(x), 1, 2, 5); },
     false},
    {"expand_column",
     {3, 1},
     [](const Tensor& x) {
       return expand(x, {3, 4});
     },
     false},
    {"expand_leading",
     {4},
     [](const Tensor& x) {
       return expand(x, {2, 3, 4});
     },
     false},
    {"transpose_of_expand",
     {3, 1},
     [](const Tensor& x) {
       return transpose(expand(x, {3, 4}));
     },
     false},
    {"middle_axis_slice_3d", {2, 5, 3}, [](const Tensor& x) { return slice(x, 1, 1, 3); }, false},
};

struct ViewOp {
  std::string name;
  std::function<Tensor(const Tensor&)> apply;
};

void PrintTo(const ViewOp& row, std::ostream* os) { *os << row.name; }

// A contiguous tensor of x's shape with values unrelated to x.
Tensor companion(const Tensor& x) { return pattern(x.shape(), 3, 7, DType::f64); }

const std::vector<ViewOp> view_ops = {
    {"copy", [](const Tensor& v) { return v.copy(); }},
    {"tanh", [](const Tensor& v) { return tanh(v); }},
    {"exp", [](const Tensor& v) { return exp(v * 0.5); }},
    {"relu", [](const Tensor& v) { return relu(v); }},
    {"neg", [](const Tensor& v) { return -v; }},
    {"clip", [](const Tensor& v) { return clip(v, -0.5, 0.5); }},
    {"add_itself", [](const Tensor& v) { return v + v; }},
    {"mul_contiguous", [](const Tensor& v) { return v * companion(v); }},
    {"sub_from_contiguous", [](const Tensor& v) { return companion(v) - v; }},
    {"add_broadcast_row",
     [](const Tensor& v) { return v + pattern({v.shape().back()}, 1, 9, DType::f64); }},
    {"greater_than_zero", [](const Tensor& v) { return greater(v, scalar(0, DType::f64)); }},
    {"where", [](const Tensor& v) { return where(greater(v, scalar(0, DType::f64)), v, v * 3.0); }},
    {"sum_all", [](const Tensor& v) { return sum(v); }},
    {"sum_first_axis", [](const Tensor& v) { return sum(v, {0}); }},
    {"sum_last_axis_keepdims", [](const Tensor& v) { return sum(v, {-1}, true); }},
    {"max_last_axis", [](const Tensor& v) { return max(v, {-1}); }},
    {"mean", [](const Tensor& v) { return mean(v, {0}); }},
    {"softmax", [](const Tensor& v) { return softmax(v, -1); }},
    {"argmax", [](const Tensor& v) { return argmax(v, 0); }},
    {"cast_f32", [](const Tensor& v) { return cast(v, DType::f32); }},
    {"reshape_flat", [](const Tensor& v) { return reshape(v, {-1}); }},
    {"concat_with_itself",
     [](const Tensor& v) {
       return concat({v, v}, 0);
     }},
    {"gather_last_axis",
     [](const Tensor& v) {
       return gather(v, -1, from_vector(std::vector<int64_t>{0, v.shape().back() - 1, 0}, {3}));
     }},
    {"matmul_with_own_transpose", [](const Tensor& v) { return matmul(v, transpose(v)); }},
    {"slice_again", [](const Tensor& v) { return slice(v, -1, 1, v.shape().back()); }},
};

using ViewOpCase = std::tuple<ViewCase, ViewOp>;

class StridedView : public ::testing::TestWithParam<ViewOpCase> {};

TEST_P(StridedView, GivesTheSameValuesAsAContiguousCopy) {
  const auto& [view_case, op] = GetParam();
  const Tensor base = normal(view_case.base, 11);
  const Tensor view = view_case.view(base);
  ASSERT_EQ(view.is_contiguous(), view_case.contiguous) << "the case tests the layout it names";
  const Tensor copy = view.copy();
  ASSERT_TRUE(copy.is_contiguous());
  const Tensor expected = op.apply(copy);
  const Tensor actual = op.apply(view);
  EXPECT_EQ(actual.dtype(), expected.dtype());
  EXPECT_TRUE(allclose(actual, expected, 1e-12, 1e-12))
      << "on the view: " << actual.to_string() << "\non the copy: " << expected.to_string();
}

INSTANTIATE_TEST_SUITE_P(Ops, StridedView,
                         ::testing::Combine(::testing::ValuesIn(view_cases),
                                            ::testing::ValuesIn(view_ops)),
                         [](const auto& test) {
                           return std::get<0>(test.param).name + "_" + std::get<1>(test.param).name;
                         });

TEST(StridedViewWrites, AssignThroughAStridedViewReachesTheRightElements) {
  const Tensor base = zeros({3, 4}, {.dtype = DType::f64});
  slice(transpose(base), 0, 1, 3).assign_(tensor({1, 2, 3, 4, 5, 6}, {2, 3}));
  // Rows 1 and 2 of the transpose are columns 1 and 2 of the base.
  EXPECT_EQ(base.to_vector<double>(), (Values{0, 1, 4, 0, 0, 2, 5, 0, 0, 3, 6, 0}));
}

// ---- matmul against a naive loop ---------------------------------------------------------------

// (..., m, k) x (..., k, n) with broadcast batch dimensions, one multiply-add at a time.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes("naive_matmul", a_batch, b_batch);
  const Values av = a.to_vector<double>(), bv = b.to_vector<double>();
  Values out;
  auto multiply = [&](int64_t a_matrix, int64_t b_matrix) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double total = 0;
        for (int64_t p = 0; p < k; ++p)
          total += av[(a_matrix * m + i) * k + p] * bv[(b_matrix * k + p) * n + j];
        out.push_back(total);
      }
  };
  if (batch.empty()) {
    multiply(0, 0);
  } else {
    for_each_index(batch, [&](const std::vector<int64_t>& index) {
      multiply(broadcast_source(a_batch, index), broadcast_source(b_batch, index));
    });
  }
  Shape shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  return to_dtype(from_vector(out, shape), a.dtype());
}

struct MatmulCase {
  std::string name;
  std::function<Tensor()> a, b;
  double rtol = 1e-12;
};

void PrintTo(const MatmulCase& row, std::ostream* os) { *os << row.name; }

class MatmulAgainstLoop : public ::testing::TestWithParam<MatmulCase> {};

TEST_P(MatmulAgainstLoop, MatchesANaiveLoop) {
  const MatmulCase& c = GetParam();
  const Tensor a = c.a(), b = c.b();
  const Tensor expected = naive_matmul(a, b);
  const Tensor actual = matmul(a, b);
  ASSERT_EQ(actual.shape(), expected.shape());
  EXPECT_TRUE(allclose(actual, expected, c.rtol, c.rtol))
      << "got " << actual.to_string() << "\nexpected " << expected.to_string();
}

INSTANTIATE_TEST_SUITE_P(Ops, MatmulAgainstLoop,
                         ::testing::ValuesIn(std::vector<MatmulCase>{
                             {"plain",
                              [] {
                                return normal({3, 4}, 1);
                              },
                              [] {
                                return normal({4, 5}, 2);
                              }},
                             {"transposed_left",
                              [] {
                                return transpose(normal({4, 3}, 3));
                              },
                              [] {
                                return normal({4, 5}, 4);
                              }},
                             {"transposed_right",
                              [] {
                                return normal({3, 4}, 5);
                              },
                              [] {
                                return transpose(normal({5, 4}, 6));
                              }},
                             {"transposed_both",
                              [] {
                                return transpose(normal({4, 3}, 7));
                              },
                              [] {
                                return transpose(normal({5, 4}, 8));
                              }},
                             {"sliced_columns",
                              [] {
                                return slice(normal({4, 7}, 9), 1, 2, 6);
                              },
                              [] {
                                return normal({4, 3}, 10);
                              }},
                             {"slice_of_transposed",
                              [] {
                                return slice(transpose(normal({6, 5}, 11)), 0, 1, 4);
                              },
                              [] {
                                return slice(normal({7, 2}, 12), 0, 1, 7);
                              }},
                             {"expanded_rows",
                              [] {
                                return expand(normal({1, 4}, 13), {3, 4});
                              },
                              [] {
                                return normal({4, 2}, 14);
                              }},
                             {"expanded_columns",
                              [] {
                                return normal({2, 3}, 15);
                              },
                              [] {
                                return expand(normal({3, 1}, 16), {3, 4});
                              }},
                             {"row_times_column",
                              [] {
                                return normal({1, 4}, 17);
                              },
                              [] {
                                return normal({4, 1}, 18);
                              }},
                             {"batched",
                              [] {
                                return normal({2, 3, 4}, 19);
                              },
                              [] {
                                return normal({2, 4, 5}, 20);
                              }},
                             {"batch_broadcast",
                              [] {
                                return normal({2, 1, 3, 4}, 21);
                              },
                              [] {
                                return normal({3, 4, 5}, 22);
                              }},
                             {"matrix_with_batch",
                              [] {
                                return normal({3, 4}, 23);
                              },
                              [] {
                                return normal({2, 4, 5}, 24);
                              }},
                             {"batch_with_matrix",
                              [] {
                                return normal({2, 3, 4}, 25);
                              },
                              [] {
                                return normal({4, 5}, 26);
                              }},
                             {"batched_transposed_views",
                              [] {
                                return transpose(normal({2, 4, 3}, 27));
                              },
                              [] {
                                return permute(normal({5, 2, 4}, 28), {1, 2, 0});
                              }},
                             {"permuted_batch_axis",
                              [] {
                                return permute(normal({3, 2, 4}, 29), {1, 0, 2});
                              },
                              [] {
                                return normal({4, 5}, 30);
                              }},
                             {"expanded_batch",
                              [] {
                                return expand(normal({1, 3, 4}, 31), {3, 3, 4});
                              },
                              [] {
                                return normal({3, 4, 2}, 32);
                              }},
                             {"larger_transposed",
                              [] {
                                return transpose(normal({65, 33}, 33));
                              },
                              [] {
                                return transpose(normal({17, 65}, 34));
                              }},
                             {"float32",
                              [] {
                                return transpose(normal({9, 7}, 35, DType::f32));
                              },
                              [] {
                                return normal({9, 6}, 36, DType::f32);
                              },
                              1e-5},
                             {"empty_inner_dimension",
                              [] {
                                return normal({2, 0}, 37);
                              },
                              [] {
                                return normal({0, 3}, 38);
                              }},
                             {"empty_rows",
                              [] {
                                return normal({0, 3}, 39);
                              },
                              [] {
                                return normal({3, 2}, 40);
                              }},
                         }),
                         [](const auto& test) { return test.param.name; });

}  // namespace
}  // namespace weft

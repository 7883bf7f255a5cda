#include "weft/autodiff/op_samples.h"

#include "weft/autodiff/tape.h"
#include "weft/ops/ops.h"

namespace weft {

namespace {

Tensor normal(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return randn(shape, {.dtype = DType::f64}, g);
}

Tensor positive(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  return uniform(shape, 0.5, 2.0, {.dtype = DType::f64}, g);
}

// Values with |x| in [0.2, 1]: kinks at 0 (relu, abs) stay out of the difference stencil.
Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Generator g(seed);
  const Tensor magnitude = uniform(shape, 0.2, 1.0, {.dtype = DType::f64}, g);
  const Tensor sign =
      greater(uniform(shape, 0, 1, {.dtype = DType::f64}, g), scalar(0.5, DType::f64));
  return magnitude * (sign * 2.0 - 1.0);
}

Tensor indices(std::vector<int64_t> values, const Shape& shape) {
  return from_vector(values, shape);
}

}  // namespace

const std::vector<OpSample>& op_samples() {
  static const std::vector<OpSample> samples = [] {
    using V = const std::vector<Tensor>&;
    const Tensor mask = indices({1, 0, 0, 1, 1, 0}, {2, 3});
    return std::vector<OpSample>{
        {"add",
         "add",
         [](V x) { return add(x[0], x[1]); },
         {normal({2, 3}, 1), normal({2, 3}, 2)},
         true,
         true},
        {"add",
         "add_broadcast",
         [](V x) { return add(x[0], x[1]); },
         {normal({4, 1, 3}, 3), normal({2, 1}, 4)}},
        {"sub",
         "sub_broadcast",
         [](V x) { return sub(x[0], x[1]); },
         {normal({2, 3}, 5), normal({3}, 6)}},
        {"mul",
         "mul",
         [](V x) { return mul(x[0], x[1]); },
         {normal({2, 3}, 7), normal({2, 3}, 8)},
         true,
         true},
        {"mul",
         "mul_scalar",
         [](V x) { return mul(x[0], x[1]); },
         {normal({2, 3}, 9), normal({}, 10)}},
        {"div",
         "div",
         [](V x) { return div(x[0], x[1]); },
         {normal({2, 3}, 11), positive({2, 3}, 12)},
         true,
         true},
        {"pow",
         "pow",
         [](V x) { return pow(x[0], x[1]); },
         {positive({2, 3}, 13), normal({2, 3}, 14)},
         true,
         true},
        {"pow",
         "pow_constant_exponent",
         [](V x) { return pow(x[0], 3.0); },
         {normal({5}, 15)},
         true,
         true},
        {"neg", "neg", [](V x) { return neg(x[0]); }, {normal({2, 3}, 16)}},
        {"exp", "exp", [](V x) { return exp(x[0]); }, {normal({2, 3}, 17)}, true, true},
        {"log", "log", [](V x) { return log(x[0]); }, {positive({2, 3}, 18)}, true, true},
        {"tanh", "tanh", [](V x) { return tanh(x[0]); }, {normal({2, 3}, 19)}, true, true},
        {"sigmoid", "sigmoid", [](V x) { return sigmoid(x[0]); }, {normal({2, 3}, 20)}, true, true},
        {"sigmoid", "sigmoid_large", [](V x) { return sigmoid(x[0] * 30.0); }, {normal({6}, 21)}},
        {"relu", "relu", [](V x) { return relu(x[0]); }, {away_from_zero({3, 4}, 22)}},
        {"sqrt", "sqrt", [](V x) { return sqrt(x[0]); }, {positive({2, 3}, 23)}, true, true},
        {"clip",
         "clip",
         [](V x) { return clip(x[0], -0.5, 0.5); },
         {away_from_zero({4, 5}, 24) * 0.9 + 0.05}},
        {"where",
         "where",
         [](V x) { return where(x[0], x[1], x[2]); },
         {mask, normal({2, 3}, 25), normal({3}, 26)}},
        {"cast",
         "cast_f32",
         [](V x) { return cast(cast(x[0], DType::f32), DType::f64); },
         {normal({2, 3}, 27)},
         true,
         false,
         {.eps = 1e-2, .atol = 1e-4}},
        {"matmul",
         "matmul_2d",
         [](V x) { return matmul(x[0], x[1]); },
         {normal({3, 4}, 28), normal({4, 5}, 29)},
         true,
         true},
        {"matmul",
         "matmul_batched",
         [](V x) { return matmul(x[0], x[1]); },
         {normal({2, 3, 4}, 30), normal({2, 4, 2}, 31)}},
        {"matmul",
         "matmul_broadcast_batch",
         [](V x) { return matmul(x[0], x[1]); },
         {normal({2, 1, 3, 4}, 32), normal({3, 4, 2}, 33)}},
        {"matmul",
         "matmul_transposed_views",
         [](V x) { return matmul(transpose(x[0]), transpose(x[1])); },
         {normal({4, 3}, 34), normal({5, 4}, 35)}},
        {"reshape",
         "reshape",
         [](V x) {
           return reshape(x[0], {3, -1});
         },
         {normal({2, 3, 2}, 36)}},
        {"reshape",
         "reshape_of_transposed",
         [](V x) { return reshape(transpose(x[0]), {-1}); },
         {normal({2, 3}, 37)}},
        {"permute",
         "permute",
         [](V x) {
           return permute(x[0], {2, 0, 1});
         },
         {normal({2, 3, 4}, 38)}},
        {"expand",
         "expand",
         [](V x) {
           return expand(x[0], {2, 3, 4});
         },
         {normal({3, 1}, 39)}},
        {"slice",
         "slice_middle",
         [](V x) { return slice(x[0], 1, 1, 3); },
         {normal({2, 4}, 40)},
         true,
         true},
        {"slice",
         "slice_of_view",
         [](V x) { return slice(transpose(x[0]), 0, 0, 2); },
         {normal({3, 4}, 41)}},
        {"concat",
         "concat",
         [](V x) {
           return concat({x[0], x[1], x[0]}, 1);
         },
         {normal({2, 1}, 42), normal({2, 3}, 43)},
         true,
         true},
        {"sum", "sum_all", [](V x) { return sum(x[0]); }, {normal({2, 3}, 44)}},
        {"sum",
         "sum_axes_keepdims",
         [](V x) {
           return sum(x[0], {0, 2}, true);
         },
         {normal({2, 3, 4}, 45)},
         true,
         true},
        {"max", "max_axis", [](V x) { return max(x[0], {1}); }, {normal({3, 5}, 46)}, true, true},
        {"max", "max_all", [](V x) { return max(x[0]); }, {normal({4, 2}, 47)}},
        {"gather",
         "gather_embedding",
         [](V x) { return gather(x[0], 0, x[1]); },
         {normal({5, 3}, 48), indices({4, 0, 4, 2, 1, 4}, {2, 3})},
         true,
         true},
        {"gather",
         "gather_inner_axis",
         [](V x) { return gather(x[0], 1, x[1]); },
         {normal({2, 4, 3}, 49), indices({3, 3, 0}, {3})}},
        // Ids that repeat enough take the distinct-id path (3 ids over 8 rows at width 40), the
        // others every row (runtime/matmul_by_id.cpp). Rows of one id need not be equal.
        {"matmul_by_id",
         "matmul_by_id_distinct_ids",
         [](V x) { return matmul_by_id(x[0], x[1], x[2]); },
         {normal({8, 40}, 90), indices({3, 1, 3, 3, 1, 0, 3, 1}, {8}), normal({40, 3}, 91)},
         true,
         true},
        {"matmul_by_id",
         "matmul_by_id_every_row_int32",
         [](V x) { return matmul_by_id(x[0], x[1], x[2]); },
         {normal({6, 3}, 92), cast(indices({4, 0, 4, 2, 1, 3}, {6}), DType::i32),
          normal({3, 4}, 93)},
         true,
         true},
        {"matmul_by_id_grads",
         "matmul_by_id_grads_both",
         [](V x) { return matmul_by_id_grads(x[0], x[1], x[2], x[3], true, true); },
         {normal({8, 40}, 94), indices({3, 1, 3, 3, 1, 0, 3, 1}, {8}), normal({40, 3}, 95),
          normal({8, 3}, 96)}},
        {"matmul_by_id_grads",
         "matmul_by_id_grads_rows_only",
         [](V x) { return matmul_by_id_grads(x[0], x[1], x[2], x[3], false, true); },
         {normal({4, 3}, 97), indices({4, 0, 4, 2}, {4}), normal({3, 2}, 98), normal({4, 2}, 99)}},
        {"matmul_by_id_grads",
         "matmul_by_id_grads_kernel_only",
         [](V x) { return matmul_by_id_grads(x[0], x[1], x[2], x[3], true, false); },
         {normal({8, 40}, 100), indices({2, 2, 2, 2, 2, 0, 2, 2}, {8}), normal({40, 3}, 101),
          normal({8, 3}, 102)}},
        {"scatter_add",
         "scatter_add",
         [](V x) { return scatter_add(x[0], 0, x[1], 4); },
         {normal({3, 2}, 50), indices({1, 3, 1}, {3})},
         true,
         true},
        {"greater",
         "greater",
         [](V x) { return greater(x[0], x[1]); },
         {normal({3}, 51), normal({3}, 52)},
         false},
        {"greater_equal",
         "greater_equal",
         [](V x) { return greater_equal(x[0], x[1]); },
         {normal({3}, 53), normal({3}, 54)},
         false},
        {"less",
         "less",
         [](V x) { return less(x[0], x[1]); },
         {normal({3}, 55), normal({3}, 56)},
         false},
        {"less_equal",
         "less_equal",
         [](V x) { return less_equal(x[0], x[1]); },
         {normal({3}, 57), normal({3}, 58)},
         false},
        {"equal",
         "equal",
         [](V x) { return equal(x[0], x[1]); },
         {normal({3}, 59), normal({3}, 60)},
         false},
        {"not_equal",
         "not_equal",
         [](V x) { return not_equal(x[0], x[1]); },
         {normal({3}, 61), normal({3}, 62)},
         false},
        {"argmax", "argmax", [](V x) { return argmax(x[0], 1); }, {normal({3, 4}, 63)}, false},
        {"dropout_mask",
         "dropout_mask",
         [](V x) {
           Generator g(3);
           return dropout_mask(x[0].shape(), DType::f64, 0.5, g);
         },
         {normal({3, 4}, 64)},
         false},
        // Composites.
        {"mean", "mean_axis", [](V x) { return mean(x[0], {1}); }, {normal({3, 4}, 65)}},
        {"softmax",
         "softmax",
         [](V x) { return softmax(x[0], -1); },
         {normal({3, 4}, 66)},
         true,
         true},
        {"log_softmax",
         "log_softmax",
         [](V x) { return log_softmax(x[0], 0); },
         {normal({3, 4}, 67)},
         true,
         true},
        {"abs", "abs", [](V x) { return abs(x[0]); }, {away_from_zero({3, 4}, 68)}},
        {"split",
         "split",
         [](V x) {
           auto p = split(x[0], 2, 1);
           return p[1] * p[0];
         },
         {normal({2, 4}, 69)}},
        {"stack",
         "stack",
         [](V x) {
           return stack({x[0], x[1]}, 1);
         },
         {normal({2, 3}, 70), normal({2, 3}, 71)}},
        {"sum_to",
         "sum_to",
         [](V x) {
           return sum_to(x[0], {3, 1});
         },
         {normal({2, 3, 4}, 72)}},
        {"dropout",
         "dropout",
         [](V x) {
           Generator g(9);
           return dropout(x[0], 0.4, true, g);
         },
         {normal({4, 5}, 73)}},
        {"transpose",
         "transpose",
         [](V x) { return transpose(x[0], 0, 2); },
         {normal({2, 3, 4}, 74)}},
    };
  }();
  return samples;
}

bool records_gradient(const OpSample& sample) {
  std::vector<Tensor> xs;
  for (const Tensor& x : sample.inputs)
    xs.push_back(is_floating(x.dtype()) ? x.copy().requires_grad_() : x);
  return sample.f(xs).requires_grad();
}

}  // namespace weft

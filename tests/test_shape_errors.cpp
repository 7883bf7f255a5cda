// Bad arguments: each row is a call that must throw weft::Error, and the fragments its message
// must contain -- the op's name and the shapes, axes or values that were wrong.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "weft/autodiff/tape.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

struct ErrorRow {
  std::string name;
  std::function<void()> call;
  std::vector<std::string> fragments;
};

void PrintTo(const ErrorRow& row, std::ostream* os) { *os << row.name; }

Tensor f32(const Shape& shape) { return zeros(shape); }
Tensor f64(const Shape& shape) { return zeros(shape, {.dtype = DType::f64}); }
Tensor i64(std::vector<int64_t> values) {
  const Shape shape{static_cast<int64_t>(values.size())};
  return from_vector(values, shape);
}

std::vector<ErrorRow> error_rows() {
  return {
      // Elementwise.
      {"add_shapes_do_not_broadcast",
       [] {
         add(f32({2, 3}), f32({4}));
       },
       {"add", "(2, 3)", "(4,)", "broadcast"}},
      {"mul_shapes_do_not_broadcast",
       [] {
         mul(f32({2, 3, 4}), f32({2, 4}));
       },
       {"mul", "(2, 3, 4)", "(2, 4)"}},
      {"where_shapes_do_not_broadcast",
       [] {
         where(f32({3}), f32({2, 3}), f32({2, 2}));
       },
       {"where", "(2, 2)"}},
      {"add_dtype_mismatch",
       [] { add(f32({2}), f64({2})); },
       {"add", "float32", "float64", "different dtypes"}},
      {"greater_dtype_mismatch",
       [] {
         greater(f32({2}), i64({1, 2}));
       },
       {"greater", "int64"}},
      {"add_integers", [] { add(i64({1}), i64({2})); }, {"add", "int64", "floating-point"}},
      {"tanh_of_integers",
       [] {
         tanh(i64({1, 2, 3}));
       },
       {"tanh", "int64", "(3,)"}},
      {"exp_of_integers", [] { exp(arange(4)); }, {"exp", "int64"}},
      {"clip_low_above_high", [] { clip(f32({2}), 1, 0); }, {"clip", "low 1", "high 0"}},
      // matmul.
      {"matmul_inner_dimensions",
       [] {
         matmul(f32({2, 3}), f32({4, 5}));
       },
       {"matmul", "inner", "(2, 3)", "(4, 5)"}},
      {"matmul_one_dimensional_operand",
       [] {
         matmul(f32({3}), f32({3, 2}));
       },
       {"matmul", "2 dimensions", "(3,)", "(3, 2)"}},
      {"matmul_batch_shapes",
       [] {
         matmul(f32({2, 3, 4}), f32({3, 4, 5}));
       },
       {"matmul", "(2,)"}},
      {"matmul_dtype_mismatch",
       [] {
         matmul(f32({2, 2}), f64({2, 2}));
       },
       {"matmul", "float32", "float64"}},
      // Indexing.
      {"gather_index_out_of_range",
       [] {
         gather(f32({4, 2}), 0, i64({1, 5}));
       },
       {"gather", "index 5", "axis 0", "size 4", "(4, 2)"}},
      {"gather_negative_index",
       [] {
         gather(f32({4, 2}), 1, i64({-1}));
       },
       {"gather", "index -1"}},
      {"gather_float_indices",
       [] {
         gather(f32({4, 2}), 0, tensor({0, 1}));
       },
       {"gather", "int32 or int64", "float32"}},
      {"gather_axis_out_of_range",
       [] {
         gather(f32({4, 2}), 2, i64({0}));
       },
       {"gather", "axis 2"}},
      {"scatter_add_index_out_of_range",
       [] {
         scatter_add(f32({3, 2}), 0, i64({0, 3, 1}), 3);
       },
       {"scatter_add", "index 3", "size 3"}},
      {"scatter_add_indices_do_not_match_values",
       [] {
         scatter_add(f32({3, 2}), 0, i64({0, 1}), 4);
       },
       {"scatter_add", "(2,)", "(3, 2)"}},
      {"scatter_add_negative_size",
       [] {
         scatter_add(f32({3}), 0, i64({0, 0, 0}), -1);
       },
       {"scatter_add", "-1"}},
      {"argmax_axis_out_of_range",
       [] {
         argmax(f32({2, 3}), 2);
       },
       {"argmax", "axis 2"}},
      {"argmax_of_an_empty_axis",
       [] {
         argmax(f32({0, 3}), 0);
       },
       {"argmax", "empty"}},
      // Shape ops.
      {"reshape_wrong_element_count",
       [] {
         reshape(f32({2, 3}), {4, 2});
       },
       {"reshape", "(2, 3)", "(4, 2)", "6 elements"}},
      {"reshape_inferred_dimension_does_not_divide",
       [] {
         reshape(f32({2, 3}), {4, -1});
       },
       {"reshape", "(4, -1)"}},
      {"reshape_two_inferred_dimensions",
       [] {
         reshape(f32({2, 3}), {-1, -1});
       },
       {"reshape", "more than one -1", "(-1, -1)"}},
      {"reshape_negative_dimension",
       [] {
         reshape(f32({2, 3}), {-2, -3});
       },
       {"reshape", "negative", "(-2, -3)"}},
      {"permute_repeated_axis",
       [] {
         permute(f32({2, 3, 4}), {0, 0, 1});
       },
       {"permute", "[0, 0, 1]", "(2, 3, 4)", "not a permutation"}},
      {"permute_too_few_axes",
       [] {
         permute(f32({2, 3, 4}), {1, 0});
       },
       {"permute", "[1, 0]", "(2, 3, 4)"}},
      {"permute_axis_out_of_range",
       [] {
         permute(f32({2, 3}), {0, 2});
       },
       {"permute", "axis 2"}},
      {"slice_stop_past_the_end",
       [] {
         slice(f32({2, 3}), 1, 1, 4);
       },
       {"slice", "[1, 4)", "axis 1", "(2, 3)"}},
      {"slice_start_after_stop",
       [] {
         slice(f32({2, 3}), 1, 2, 1);
       },
       {"slice", "[2, 1)"}},
      {"slice_negative_start",
       [] {
         slice(f32({2, 3}), 0, -1, 1);
       },
       {"slice", "[-1, 1)"}},
      {"slice_axis_out_of_range",
       [] {
         slice(f32({2, 3}), 2, 0, 1);
       },
       {"slice", "axis 2"}},
      {"concat_mismatched_shapes",
       [] {
         concat({f32({2, 3}), f32({3, 3})}, 1);
       },
       {"concat", "tensor 1", "(3, 3)", "(2, 3)", "axis 1"}},
      {"concat_mismatched_ranks",
       [] {
         concat({f32({2, 3}), f32({2})}, 0);
       },
       {"concat", "(2,)", "(2, 3)"}},
      {"concat_mismatched_dtypes",
       [] {
         concat({f32({2}), f64({2})}, 0);
       },
       {"concat", "float32", "float64"}},
      {"concat_empty_list", [] { concat({}, 0); }, {"concat", "no tensors"}},
      {"stack_empty_list", [] { stack({}, 0); }, {"stack", "no tensors"}},
      {"expand_incompatible",
       [] {
         expand(f32({2, 3}), {4, 3});
       },
       {"expand", "(2, 3)", "(4, 3)"}},
      {"expand_to_fewer_dimensions",
       [] {
         expand(f32({2, 3}), {3});
       },
       {"expand", "(2, 3)", "(3,)"}},
      {"split_into_unequal_parts",
       [] {
         split(f32({2, 5}), 2, 1);
       },
       {"split", "(2, 5)", "2 equal parts"}},
      {"split_into_zero_parts",
       [] {
         split(f32({2, 4}), 0, 1);
       },
       {"split", "0 equal parts"}},
      {"squeeze_an_axis_that_is_not_one",
       [] {
         squeeze(f32({2, 1}), 0);
       },
       {"squeeze", "axis 0", "(2, 1)", "size 2"}},
      {"unsqueeze_axis_out_of_range",
       [] {
         unsqueeze(f32({2, 3}), 4);
       },
       {"unsqueeze", "axis 4"}},
      {"transpose_axis_out_of_range",
       [] {
         transpose(f32({2, 3}), 0, 2);
       },
       {"transpose", "axis 2"}},
      {"sum_to_incompatible",
       [] {
         sum_to(f32({2, 3}), {4});
       },
       {"sum_to", "(4,)", "(2, 3)"}},
      // Reductions.
      {"sum_axis_out_of_range",
       [] {
         sum(f32({2, 3}), {2});
       },
       {"sum", "axis 2", "2 dimensions"}},
      {"sum_negative_axis_out_of_range",
       [] {
         sum(f32({2, 3}), {-3});
       },
       {"sum", "axis -3"}},
      {"sum_repeated_axis",
       [] {
         sum(f32({2, 3}), {1, -1});
       },
       {"sum", "twice", "[1, -1]"}},
      {"max_repeated_axis",
       [] {
         max(f32({2, 3}), {0, 0});
       },
       {"max", "twice", "[0, 0]"}},
      {"mean_axis_out_of_range",
       [] {
         mean(f32({2, 3}), {5});
       },
       {"sum", "axis 5"}},
      // Random.
      {"dropout_rate_one",
       [] {
         Generator g(1);
         dropout(f32({3}), 1.0, true, g);
       },
       {"dropout", "rate 1", "[0, 1)"}},
      {"dropout_negative_rate",
       [] {
         Generator g(1);
         dropout(f32({3}), -0.5, true, g);
       },
       {"dropout", "rate -0.5"}},
      {"dropout_mask_integer_dtype",
       [] { dropout_mask({3}, DType::i64, 0.5); },
       {"dropout", "int64"}},
      {"randn_integer_dtype", [] { randn({2}, {.dtype = DType::i32}); }, {"int32"}},
      // Tensor methods and factories.
      {"item_of_several_elements",
       [] {
         f32({2, 2}).item();
       },
       {"item()", "(2, 2)"}},
      {"item_of_no_elements", [] { f32({0}).item(); }, {"item()", "(0,)"}},
      {"data_double_of_a_float_tensor",
       [] { f32({2}).data<double>(); },
       {"data<float64>()", "float32"}},
      {"data_int64_of_a_float_tensor",
       [] { f64({2}).data<int64_t>(); },
       {"data<int64>()", "float64"}},
      {"size_axis_out_of_range",
       [] {
         f32({2, 3}).size(2);
       },
       {"size", "axis 2"}},
      {"set_grad_wrong_shape",
       [] {
         f32({2, 3}).set_grad(f32({3}));
       },
       {"set_grad()", "(3,)", "(2, 3)"}},
      {"set_grad_wrong_dtype",
       [] { f32({2}).set_grad(f64({2})); },
       {"set_grad()", "float64", "float32"}},
      {"assign_wrong_shape", [] { f32({2}).assign_(f32({3})); }, {"assign_()", "(3,)", "(2,)"}},
      {"requires_grad_of_an_integer_tensor",
       [] { arange(3).requires_grad_(); },
       {"requires_grad_()", "int64"}},
      {"tensor_wrong_value_count",
       [] {
         tensor({1, 2, 3}, {2, 2});
       },
       {"tensor()", "3 values", "(2, 2)"}},
      {"from_vector_wrong_value_count",
       [] {
         from_vector(std::vector<float>{1, 2}, {3});
       },
       {"from_vector()", "2 values", "(3,)"}},
      {"negative_dimension",
       [] {
         zeros({2, -1});
       },
       {"negative", "(2, -1)"}},
      // Undefined tensors.
      {"undefined_shape", [] { Tensor().shape(); }, {"undefined"}},
      {"undefined_numel", [] { Tensor().numel(); }, {"undefined"}},
      {"undefined_item", [] { Tensor().item(); }, {"undefined"}},
      {"undefined_sum", [] { Tensor().sum(); }, {"undefined"}},
      {"undefined_backward", [] { Tensor().backward(); }, {"undefined"}},
      {"undefined_requires_grad", [] { Tensor().requires_grad_(); }, {"undefined"}},
      {"undefined_operand", [] { add(f32({2}), Tensor()); }, {"add", "input 1", "undefined"}},
      {"undefined_in_a_list",
       [] {
         concat({f32({2}), Tensor()}, 0);
       },
       {"concat", "input 1", "undefined"}},
  };
}

class ShapeError : public ::testing::TestWithParam<ErrorRow> {};

TEST_P(ShapeError, ThrowsANamedMessage) {
  const ErrorRow& row = GetParam();
  try {
    row.call();
  } catch (const Error& error) {
    const std::string message = error.what();
    for (const std::string& fragment : row.fragments)
      EXPECT_NE(message.find(fragment), std::string::npos)
          << "message \"" << message << "\" lacks \"" << fragment << "\"";
    return;
  } catch (const std::exception& error) {
    FAIL() << "threw a non-weft exception: " << error.what();
  }
  FAIL() << "no weft::Error was thrown";
}

INSTANTIATE_TEST_SUITE_P(Ops, ShapeError, ::testing::ValuesIn(error_rows()),
                         [](const auto& test) { return test.param.name; });

TEST(ShapeErrorRecovery, AFailedCallRecordsNothingAndLeavesInputsUsable) {
  Tensor x = ones({2, 3}, {.requires_grad = true});
  EXPECT_THROW(add(x, ones({4})), Error);
  EXPECT_THROW(matmul(x, x), Error);
  (x * 2.0).sum().backward();
  EXPECT_EQ(x.grad().to_vector<float>(), std::vector<float>(6, 2.0f));
}

}  // namespace
}  // namespace weft

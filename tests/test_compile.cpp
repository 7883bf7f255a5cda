// The compiler: captured graphs compiled to native code, checked against the graph's reference
// interpreter evaluate().
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "test_support.h"
#include "weft/compiler/graph.h"
#include "weft/compiler/jit.h"
#include "weft/compiler/compile.h"
#include "weft/weft.h"

namespace weft {
namespace {

using testing_support::expect_error;
using Named = std::vector<std::pair<std::string, Tensor>>;

// Equal, both NaN, or within `rtol` relative (infinities must match exactly).
void expect_close(const Tensor& actual, const Tensor& expected, double rtol,
                  const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  const std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  int failures = 0;
  for (size_t i = 0; i < a.size() && failures < 5; ++i) {
    if (a[i] == e[i] || (std::isnan(a[i]) && std::isnan(e[i]))) continue;
    if (std::abs(a[i] - e[i]) <= rtol * std::max(std::abs(a[i]), std::abs(e[i]))) continue;
    ++failures;
    ADD_FAILURE() << what << ": element " << i << " is " << a[i] << ", evaluate() gives " << e[i];
  }
}

// An LSTM cell's update from its four gate pre-activations.
Graph lstm_gates(DType dtype, const Shape& shape) {
  Generator gen(7);
  const auto make = [&] { return randn(shape, {.dtype = dtype}, gen); };
  const Tensor i = make(), f = make(), g = make(), o = make(), c = make();
  return capture({{"i", i}, {"f", f}, {"g", g}, {"o", o}, {"c", c}}, [&]() -> Named {
    const Tensor c_next = sigmoid(f) * c + sigmoid(i) * tanh(g);
    const Tensor h = sigmoid(o) * tanh(c_next);
    return {{"c", c_next}, {"h", h}};
  });
}

std::vector<Tensor> gate_inputs(DType dtype, const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor> inputs;
  for (int k = 0; k < 5; ++k) inputs.push_back(randn(shape, {.dtype = dtype}, gen) * 3.0);
  return inputs;
}

TEST(Compile, LstmGatesMatchEvaluate) {
  for (DType dtype : {DType::f32, DType::f64}) {
    const Shape shape = {4, 37};
    const Graph graph = lstm_gates(dtype, shape);
    const CompiledStep compiled = compile(graph, {.name = "lstm_gates"});
    EXPECT_EQ(compiled.stats().kernel_calls, 1) << compiled.schedule();
    const std::vector<Tensor> inputs = gate_inputs(dtype, shape, 11);
    const std::vector<Tensor> expected = evaluate(graph, inputs);
    const std::vector<Tensor> actual = compiled.run(inputs);
    ASSERT_EQ(actual.size(), 2u);
    const double rtol = dtype == DType::f32 ? 1e-6 : 1e-12;
    for (size_t k = 0; k < actual.size(); ++k)
      expect_close(actual[k], expected[k], rtol, graph.outputs[k].name);
  }
}

TEST(Compile, Float32GatesAreVectorised) {
  const CompiledStep compiled = compile(lstm_gates(DType::f32, {64}));
  EXPECT_NE(compiled.module().ir_after().find("x float>"), std::string::npos)
      << compiled.module().ir_after();
}

TEST(Compile, ScalarsAndFullShapeConstantsAndEmptyShapes) {
  for (int64_t n : {0, 1, 5}) {
    const Tensor x = uniform({n}, 0.5, 2.0);
    const Tensor s = scalar(3.0);
    const Graph graph = capture({{"x", x}, {"s", s}}, [&]() -> Named {
      return {{"y", log(x * 2.0 + s) - zeros({n}) / s}, {"z", greater_equal(relu(x - 1.0), x)}};
    });
    const CompiledStep compiled = compile(graph);
    const std::vector<Tensor> inputs = {uniform({n}, 0.5, 2.0), scalar(-0.25)};
    const std::vector<Tensor> expected = evaluate(graph, inputs), actual = compiled.run(inputs);
    for (size_t k = 0; k < actual.size(); ++k) expect_close(actual[k], expected[k], 1e-6, "y/z");
  }
}

TEST(Compile, RunChecksInputs) {
  const Graph graph = lstm_gates(DType::f32, {3});
  const CompiledStep compiled = compile(graph);
  std::vector<Tensor> inputs = gate_inputs(DType::f32, {3}, 1);
  inputs[2] = zeros({4});
  expect_error([&] { compiled.run(inputs); }, {"input \"g\"", "(4,)"});
  expect_error([&] { compiled.run({}); }, {"0 inputs"});
  inputs[2] = zeros({3}, {.dtype = DType::f64});
  expect_error([&] { compiled.run(inputs); }, {"input \"g\"", "float64"});
}

// Random elementwise graphs from a fixed seed, compiled and compared with evaluate(). Inputs are
// positive and log/sqrt only read inputs, so neither meets a negative operand.
TEST(Compile, RandomGraphsMatchEvaluate) {
  constexpr int graph_count = 120;  // ~14 ms each (the O3 compile), ~1.7 s in all
  std::mt19937_64 rng(2026);
  const auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  for (int trial = 0; trial < graph_count; ++trial) {
    const DType dtype = trial % 2 == 0 ? DType::f32 : DType::f64;
    const int64_t size = 1 + static_cast<int64_t>(pick(300));
    const size_t input_count = 1 + pick(3);
    Generator gen(static_cast<uint64_t>(trial));
    Named named;
    for (size_t k = 0; k < input_count; ++k)
      named.push_back({fmt::format("x{}", k), uniform({size}, 0.1, 2.0, {.dtype = dtype}, gen)});
    const size_t op_count = 1 + pick(8);
    std::string ops;
    const Graph graph = capture(named, [&]() -> Named {
      std::vector<Tensor> values;
      values.reserve(input_count + op_count);
      for (const auto& [name, value] : named) values.push_back(value);
      for (size_t k = 0; k < op_count; ++k) {
        const Tensor& x = values[pick(values.size())];
        const Tensor& y = values[pick(values.size())];
        const Tensor& input = values[pick(input_count)];
        const size_t choice = pick(18);
        ops += fmt::format("{} ", choice);
        switch (choice) {
          case 0:
            values.push_back(x + y);
            break;
          case 1:
            values.push_back(x - y);
            break;
          case 2:
            values.push_back(x * y);
            break;
          case 3:
            values.push_back(x / y);
            break;
          case 4:
            values.push_back(-x);
            break;
          case 5:
            values.push_back(exp(x));
            break;
          case 6:
            values.push_back(log(input));
            break;
          case 7:
            values.push_back(tanh(x));
            break;
          case 8:
            values.push_back(sigmoid(x));
            break;
          case 9:
            values.push_back(relu(x - 1.0));
            break;
          case 10:
            values.push_back(sqrt(input));
            break;
          case 11:
            values.push_back(greater(x, y));
            break;
          case 12:
            values.push_back(less_equal(x, y));
            break;
          case 13:
            values.push_back(not_equal(x, y));
            break;
          case 14:
            values.push_back(equal(x, x));
            break;
          case 15:
            values.push_back(x * 0.5 + 0.25);
            break;
          case 16:
            values.push_back(greater_equal(x, scalar(1.0, dtype)));
            break;
          default:
            values.push_back(less(y, x));
            break;
        }
      }
      Named outputs = {{"last", values.back()}};
      if (values.size() > 2) outputs.push_back({"other", values[values.size() - 2]});
      return outputs;
    });
    const std::string what = fmt::format("graph {} (ops {})", trial, ops);
    const CompiledStep compiled = compile(graph, {.name = "random"});
    std::vector<Tensor> inputs;
    for (size_t k = 0; k < named.size(); ++k)
      inputs.push_back(uniform({size}, 0.1, 2.0, {.dtype = dtype}, gen));
    const std::vector<Tensor> expected = evaluate(graph, inputs), actual = compiled.run(inputs);
    ASSERT_EQ(actual.size(), expected.size()) << what;
    for (size_t k = 0; k < actual.size(); ++k)
      expect_close(actual[k], expected[k], dtype == DType::f32 ? 1e-6 : 1e-12, what);
  }
}

}  // namespace
}  // namespace weft

// The compiler: captured graphs compiled to native code, checked against the graph's reference
// interpreter evaluate().
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "test_support.h"
#include "weft/compiler/compile.h"
#include "weft/compiler/fuse.h"
#include "weft/compiler/graph.h"
#include "weft/compiler/jit.h"
#include "weft/compiler/passes.h"
#include "weft/compiler/place.h"
#include "weft/ops/lowering.h"
#include "weft/runtime/gemm.h"
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

// A table of steps of three named inputs, each with the value that one compile statistic must
// take: each step is captured, compiled and run, and its outputs must be evaluate()'s bit for bit.
using StepOfThree = std::function<Named(const Tensor&, const Tensor&, const Tensor&)>;
struct StatisticCase {
  const char* name;
  StepOfThree step;
  int64_t expected;
};

void expect_statistic(int64_t CompileStats::*statistic, const Named& inputs,
                      const std::vector<StatisticCase>& cases) {
  std::vector<Tensor> values;
  for (const auto& [name, value] : inputs) values.push_back(value);
  for (const StatisticCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Graph graph =
        capture(inputs, [&]() -> Named { return c.step(values[0], values[1], values[2]); });
    const CompiledStep compiled = compile(graph);
    EXPECT_EQ(compiled.stats().*statistic, c.expected) << compiled.schedule();
    const std::vector<Tensor> got = compiled.run(values), want = evaluate(graph, values);
    for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], want[i], 0, graph.outputs[i].name);
  }
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

// A reduction over rows keeping a contiguous last dimension (a bias gradient) folds every output
// in float64 in row order, as the eager kernel does, whichever way the compiled loop walks the
// input: slabs of rows into blocks of outputs (rows past a slab, a row past a block, ragged
// ends of both), blocks down whole columns (a narrow or very wide row, several reduced axes).
TEST(Compile, ColumnReductionsMatchTheEagerKernelBitForBit) {
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
  };
  const Case cases[] = {{{100, 300}, {0}},      {{64, 256}, {0}}, {{33, 65}, {0}},
                        {{3, 40, 70}, {1}},     {{200, 48}, {0}}, {{40, 4100}, {0}},
                        {{5, 20, 130}, {0, 1}}, {{32, 130}, {0}}};
  for (const Case& c : cases) {
    Generator gen(7);
    const Tensor x = randn(c.shape, {}, gen) * 1e3;
    const CompiledStep compiled = compile(capture({{"x", x}}, [&]() -> Named {
      return {{"sum", sum(x, c.axes)}, {"max", max(x, c.axes)}};
    }));
    const std::vector<Tensor> outputs = compiled.run({x});
    const std::string name = shape_str(c.shape);
    EXPECT_EQ(outputs[0].to_vector<float>(), sum(x, c.axes).to_vector<float>()) << name;
    EXPECT_EQ(outputs[1].to_vector<float>(), max(x, c.axes).to_vector<float>()) << name;
  }
}

TEST(Compile, Float32GatesAreVectorised) {
  const CompiledStep compiled = compile(lstm_gates(DType::f32, {64}), {.keep_stages = true});
  EXPECT_NE(compiled.module().ir_after().find("x float>"), std::string::npos)
      << compiled.module().ir_after();
}

// A fused loop of many ops (a cell) interleaves two vector iterations, whose chains of dependent
// operations the CPU can then overlap; a short loop is left to the vectoriser's own choice.
TEST(Compile, LongFusedLoopsInterleaveTwoVectorIterations) {
  const std::string interleave = "!{!\"llvm.loop.interleave.count\", i32 2}";
  const CompiledStep cell = compile(lstm_gates(DType::f32, {64}), {.keep_stages = true});
  EXPECT_EQ(cell.stats().kernel_calls, 1) << cell.schedule();
  EXPECT_NE(cell.module().ir_before().find(interleave), std::string::npos)
      << cell.module().ir_before();
  Generator gen(5);
  const Tensor x = randn({64}, {}, gen);
  const CompiledStep short_loop = compile(capture({{"x", x}},
                                                  [&]() -> Named {
                                                    return {{"y", exp(x) + x}};
                                                  }),
                                          {.keep_stages = true});
  EXPECT_EQ(short_loop.module().ir_before().find("llvm.loop.interleave.count"), std::string::npos)
      << short_loop.module().ir_before();
}

// A loop that writes in place of a read dying there gets that buffer as one argument: two
// pointers to one buffer would need run-time overlap checks, which fail, and leave it scalar.
TEST(Compile, InPlaceLoopsTakeOneArgumentAndStayVectorised) {
  Generator gen(3);
  const Tensor a = randn({8, 64}, {}, gen), b = randn({8, 64}, {}, gen);
  const Tensor w = randn({64, 64}, {}, gen);
  const Graph graph = capture({{"a", a}, {"b", b}, {"w", w}}, [&]() -> Named {
    const Tensor z = exp(matmul(a, w)) + b;  // the loop may write z over matmul's result
    return {{"out", sum(matmul(z, w))}};
  });
  const CompiledStep compiled = compile(graph, {.keep_stages = true});
  const std::string& schedule = compiled.schedule();
  const size_t loop = schedule.find(" exp, ");
  ASSERT_NE(loop, std::string::npos) << schedule;
  const size_t line = schedule.rfind('\n', loop) + 1;
  std::istringstream call(schedule.substr(line));
  std::string position, kernel, kind, reads_word, first_read, writes_word, write, rest;
  call >> position >> kernel >> kind;
  std::getline(call, rest);
  call >> reads_word >> first_read;
  std::getline(call, rest);
  call >> writes_word >> write;
  EXPECT_EQ(write, first_read) << schedule;
  const std::string& ir = compiled.module().ir_after();
  size_t define = ir.find("\ndefine ");
  while (define != std::string::npos &&
         ir.substr(define, ir.find('\n', define + 1) - define).find("@" + kernel + "(") ==
             std::string::npos)
    define = ir.find("\ndefine ", define + 1);
  ASSERT_NE(define, std::string::npos) << ir;
  ++define;  // past the newline
  const std::string signature = ir.substr(define, ir.find('\n', define) - define);
  const std::string body = ir.substr(define, ir.find("\n}\n", define) - define);
  auto count = [&](const std::string& word) {
    int n = 0;
    for (size_t at = signature.find(word); at != std::string::npos;
         at = signature.find(word, at + 1))
      ++n;
    return n;
  };
  EXPECT_EQ(count("ptr "), 2) << signature;  // the matmul's result (read and written), and b
  EXPECT_EQ(count("noalias"), 2) << signature;
  EXPECT_NE(body.find("x float>"), std::string::npos) << body;
  std::vector<Tensor> inputs = {a, b, w};
  expect_close(compiled.run(inputs)[0], evaluate(graph, inputs)[0], 1e-5, "out");
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

// Folding views of a constant (a transpose of a column slice) makes a strided constant that shares
// its values: the compiled step reads it in order, as evaluate() does.
TEST(Compile, FoldedViewsOfConstantsAreReadInOrder) {
  const Tensor x = uniform({3, 2}, -1.0, 1.0);
  const Graph graph = capture({{"x", x}}, [&]() -> Named {
    const Tensor c = tensor({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4}) * 1.0;
    return {{"y", x + permute(slice(c, 1, 1, 4), {1, 0})}};
  });
  const Graph folded = pipeline()[0].run(graph);
  ASSERT_EQ(pipeline()[0].name, "fold");
  EXPECT_EQ(folded.to_text().find("permute"), std::string::npos) << folded.to_text();
  const std::vector<Tensor> inputs = {uniform({3, 2}, -1.0, 1.0)};
  expect_close(compile(graph).run(inputs)[0], evaluate(graph, inputs)[0], 1e-6, "y");
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

// Concat parts are computed into their regions, not copied there: a loop's value for the concat
// alone, one others read too (one more write of the loop), one seen through a reshape, a kernel's
// value for the concat alone (a GEMM writing rows of a wider matrix), and a kernel's value whose
// buffer becomes a contiguous region (which must then not be overwritten in place while the part
// is still read).
TEST(Compile, ConcatPartsAreComputedInTheirRegions) {
  using Parts = std::function<Named(const Tensor& a, const Tensor& b, const Tensor& w)>;
  const std::vector<std::pair<std::string, Parts>> cases = {
      {"loop_values_for_the_concat_alone",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         return {{"out", sum(matmul(concat({exp(a), tanh(b)}, 1), w))}};
       }},
      {"loop_values_read_by_others_too",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor e = exp(a), t = tanh(b);
         return {{"out", sum(matmul(concat({e, t}, 1), w))},
                 {"e", matmul(e, slice(w, 0, 0, 3))},
                 {"t", sum(t)}};
       }},
      {"through_a_reshape",
       [](const Tensor& a, const Tensor& b, const Tensor&) -> Named {
         const Tensor e = exp(a), t = tanh(b);
         return {{"stacked", concat({reshape(e, {4, 1, 3}), reshape(t, {4, 1, 3})}, 1) * 2.0},
                 {"e", sum(e)}};
       }},
      {"kernel_values_for_the_concat_alone",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor p = matmul(a, slice(w, 0, 0, 3)), q = matmul(b, slice(w, 0, 3, 6));
         return {{"out", tanh(concat({p, q}, 1))}};
       }},
      {"kernel_value_read_after_its_concat_is_overwritten",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor p = matmul(a, slice(w, 0, 0, 3)), q = matmul(b, slice(w, 0, 3, 6));
         const Tensor doubled = concat({p, q}, 0) * 2.0;  // the concat's last reader
         return {{"doubled", sum(doubled)}, {"p", sum(p + 1.0)}};
       }},
  };
  for (const auto& [name, parts] : cases) {
    Generator gen(4);
    const Tensor a = randn({4, 3}, {}, gen), b = randn({4, 3}, {}, gen), w = randn({6, 2}, {}, gen);
    const Graph graph =
        capture({{"a", a}, {"b", b}, {"w", w}}, [&]() -> Named { return parts(a, b, w); });
    const CompiledStep compiled = compile(graph);
    EXPECT_EQ(compiled.stats().copy_calls, 0) << name << "\n" << compiled.schedule();
    std::vector<Tensor> inputs = {a, b, w};
    const std::vector<Tensor> expected = evaluate(graph, inputs);
    const std::vector<Tensor> actual = compiled.run(inputs);
    for (size_t k = 0; k < actual.size(); ++k)
      expect_close(actual[k], expected[k], 1e-5, name + " " + graph.outputs[k].name);
  }
}

// A value that only later loops read, each over its shape, is computed again in them from its one
// operand when that operand is in memory anyway (a recurrent cell's tanh(c), from c, in the
// backward pass), instead of written by its own loop and read back. It is written otherwise: a
// kernel or a broadcast reads it, it has two operands, or its operand lives only inside its loop.
// In each case sum(c), a kernel, keeps c = a * b in memory and ends the loop of c and tanh(c).
TEST(Compile, ValuesLaterLoopsCanComputeFromMemoryAreComputedAgainThere) {
  const std::vector<StatisticCase> cases = {
      {"read by a loop after a kernel",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor c = a * b, t = tanh(c);
         return {{"first", t * 2.0}, {"s", sum(c)}, {"later", t * matmul(a, w)}};
       },
       1},
      {"read by two later loops",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor c = a * b, t = tanh(c);
         const Tensor s = sum(c), once = t * matmul(a, w), twice = t + matmul(b, w);
         return {{"s", s}, {"once", once}, {"twice", twice}};
       },
       2},
      {"read by a kernel too",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor c = a * b, t = tanh(c);
         return {{"s", sum(c)}, {"later", t * matmul(a, w)}, {"t", sum(t)}};
       },
       0},
      {"read broadcast",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor c = a * b, t = tanh(c);
         return {{"s", sum(c)}, {"later", reshape(matmul(a, w), {1, 4, 3}) + t}};
       },
       0},
      {"two operands",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor c = a * b, t = c * a;
         return {{"s", sum(c)}, {"later", t * matmul(a, w)}};
       },
       0},
      {"an operand only its loop holds",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor c = a * b, t = tanh(c);
         return {{"s", sum(a)}, {"later", t * matmul(a, w)}};
       },
       0},
      // The add goes into the product's kernel (its bias), which reads the row from memory.
      {"needed in memory after all",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor c = slice(a, 0, 0, 1) * slice(b, 0, 0, 1), t = tanh(c);
         return {{"s", sum(c)}, {"out", matmul(slice(a, 0, 1, 2), w) + t}};
       },
       0},
  };
  Generator gen(8);
  expect_statistic(
      &CompileStats::recomputed_ops,
      {{"a", randn({4, 3}, {}, gen)}, {"b", randn({4, 3}, {}, gen)}, {"w", randn({3, 3}, {}, gen)}},
      cases);
}

// A transposed weight read by several products (the recurrent kernel in every time step's
// gradient) is copied contiguous once, where each GEMM would pack it again; a transpose read once,
// or one of a value the step computes, stays a view.
TEST(Compile, TransposedWeightsOfSeveralProductsAreCopiedOnce) {
  using Products = std::function<Named(const Tensor& a, const Tensor& b, const Tensor& w)>;
  const std::vector<std::tuple<std::string, Products, int64_t>> cases = {
      {"an_input_read_by_three_products",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor t = transpose(w);
         return {{"out", sum(matmul(a, t)) + sum(matmul(b, t)) + sum(matmul(tanh(a), t))}};
       },
       1},
      {"an_input_read_by_one_product",
       [](const Tensor& a, const Tensor&, const Tensor& w) -> Named {
         return {{"out", sum(matmul(a, transpose(w)))}};
       },
       0},
      {"a_computed_value",
       [](const Tensor& a, const Tensor& b, const Tensor& w) -> Named {
         const Tensor t = transpose(exp(w));
         return {{"out", sum(matmul(a, t)) + sum(matmul(b, t))}};
       },
       0},
  };
  for (const auto& [name, products, copies] : cases) {
    Generator gen(4);
    const Tensor a = randn({4, 2}, {}, gen), b = randn({4, 2}, {}, gen), w = randn({3, 2}, {}, gen);
    const Graph graph =
        capture({{"a", a}, {"b", b}, {"w", w}}, [&]() -> Named { return products(a, b, w); });
    const CompiledStep compiled = compile(graph);
    EXPECT_EQ(compiled.stats().copy_calls, copies) << name << "\n" << compiled.schedule();
    std::vector<Tensor> inputs = {a, b, w};
    expect_close(compiled.run(inputs)[0], evaluate(graph, inputs)[0], 1e-5, name);
  }
}

// A bias added to a 2-D product is added by the GEMM as it stores the product, where only that
// add reads the product and the bias is in memory before the product's call: no loop of its own,
// and the same bits as the product, then the add. Elsewhere the add stays a loop.
TEST(Compile, BiasAddsGoIntoTheProductsKernel) {
  const std::vector<StatisticCase> cases = {
      {"product plus bias",
       [](const Tensor& x, const Tensor& w, const Tensor& b) -> Named {
         return {{"out", matmul(x, w) + b}};
       },
       0},
      {"bias plus product, then relu",
       [](const Tensor& x, const Tensor& w, const Tensor& b) -> Named {
         return {{"out", relu(b + matmul(x, w))}};
       },
       1},
      {"a bias of one row, computed before the product",
       [](const Tensor& x, const Tensor& w, const Tensor& b) -> Named {
         const Tensor row = reshape(exp(b), {1, 5});
         return {{"out", matmul(x, w) + row}};
       },
       1},
      {"a bias computed after the product",
       [](const Tensor& x, const Tensor& w, const Tensor& b) -> Named {
         const Tensor product = matmul(x, w);
         return {{"out", product + exp(b)}};
       },
       2},
      {"a product read by something else too",
       [](const Tensor& x, const Tensor& w, const Tensor& b) -> Named {
         const Tensor product = matmul(x, w);
         return {{"out", product + b}, {"product", product}};
       },
       1},
      {"a product plus a full matrix",
       [](const Tensor& x, const Tensor& w, const Tensor&) -> Named {
         return {{"out", matmul(x, w) + slice(x, 1, 0, 5)}};
       },
       1},
      {"batched products",
       [](const Tensor& x, const Tensor& w, const Tensor& b) -> Named {
         return {{"out", matmul(reshape(x, {3, 2, 7}), w) + b}};
       },
       1},
  };
  Generator gen(12);
  expect_statistic(
      &CompileStats::fused_ops,
      {{"x", randn({6, 7}, {}, gen)}, {"w", randn({7, 5}, {}, gen)}, {"b", randn({5}, {}, gen)}},
      cases);
}

// A stored value is written straight into its input by the loop that computes it where nothing
// else reads the input's old value, no kernel call (which could fail) comes after, and no
// finite-loss guard must run before the stores; otherwise it is copied in after every call.
TEST(Compile, StoresAreWrittenInPlaceWhereNothingElseNeedsTheOldValue) {
  using Update = std::function<Named(const Tensor& w, const Tensor& m, const Tensor& g)>;
  struct Case {
    std::string name;
    Update step;
    std::string finite_output;
    int64_t copies;
  };
  const Update momentum = [](const Tensor& w, const Tensor& m, const Tensor& g) -> Named {
    const Tensor loss = sum(g * g);
    const Tensor velocity = m * 0.9 + g;
    m.assign_(velocity);
    w.assign_(w - velocity * 0.1);
    return {{"loss", loss}};
  };
  const std::vector<Case> cases = {
      {"an_update", momentum, "", 0},
      {"behind_a_finite_loss_guard", momentum, "loss", 2},
      {"an_old_value_read_elsewhere",
       [](const Tensor& w, const Tensor& m, const Tensor& g) -> Named {
         const Tensor row = slice(w, 0, 0, 1) * 2.0;  // the old w, through a view
         const Tensor velocity = m * 0.9 + g;
         m.assign_(velocity);
         w.assign_(w - velocity * 0.1);
         return {{"w_row", row}};
       },
       "", 1},
      {"a_kernel_after_the_loop",
       [](const Tensor& w, const Tensor& m, const Tensor& g) -> Named {
         const Tensor velocity = m * 0.9 + g;
         m.assign_(velocity);
         w.assign_(w - velocity * 0.1);
         return {{"speed", sum(velocity)}};
       },
       "", 2},
  };
  for (const Case& c : cases) {
    Generator gen(9);
    const std::vector<Tensor> start = {randn({4, 3}, {}, gen), randn({4, 3}, {}, gen),
                                       randn({4, 3}, {}, gen)};
    std::vector<Tensor> captured;
    for (const Tensor& t : start) captured.push_back(t.copy());
    const Graph graph =
        capture({{"w", captured[0]}, {"m", captured[1]}, {"g", captured[2]}},
                [&]() -> Named { return c.step(captured[0], captured[1], captured[2]); });
    const CompiledStep compiled = compile(graph, {.finite_output = c.finite_output});
    EXPECT_EQ(compiled.stats().copy_calls, c.copies) << c.name << "\n" << compiled.schedule();
    std::vector<Tensor> expected_inputs, actual_inputs;
    for (const Tensor& t : start) {
      expected_inputs.push_back(t.copy());
      actual_inputs.push_back(t.copy());
    }
    const std::vector<Tensor> expected = evaluate(graph, expected_inputs);
    const std::vector<Tensor> actual = compiled.run(actual_inputs);
    expect_close(actual[0], expected[0], 1e-6, c.name + " output");
    for (size_t i = 0; i < start.size(); ++i)
      expect_close(actual_inputs[i], expected_inputs[i], 1e-6,
                   c.name + " " + graph.node(graph.input_ids()[i]).name + " after the step");
  }
}

// Strided inputs are read through contiguous copies, and a stored one gets its new value back
// through the view it came as, into the storage under it.
TEST(Compile, StridedInputsAreReadAndStoredThroughTheirViews) {
  Generator gen(4);
  const Tensor w0 = randn({4, 3}, {}, gen), g0 = randn({4, 3}, {}, gen);
  Tensor w = w0.copy(), g = g0.copy();
  const Graph graph = capture({{"w", w}, {"g", g}}, [&]() -> Named {
    const Tensor loss = sum(g * w);
    w.assign_(w - g * 0.5);
    return {{"loss", loss}};
  });
  const CompiledStep compiled = compile(graph);
  // The same values held transposed: (3, 4) storages seen as (4, 3) views.
  const Tensor w_storage = permute(w0, {1, 0}).copy(), g_storage = permute(g0, {1, 0}).copy();
  const std::vector<Tensor> strided = {permute(w_storage, {1, 0}), permute(g_storage, {1, 0})};
  ASSERT_FALSE(strided[0].is_contiguous());
  const std::vector<Tensor> plain = {w0.copy(), g0.copy()};
  const std::vector<Tensor> expected = evaluate(graph, plain);
  const std::vector<Tensor> actual = compiled.run(strided);
  expect_close(actual[0], expected[0], 1e-6, "loss");
  expect_close(strided[0], plain[0], 1e-6, "w after the step");
  expect_close(permute(w_storage, {1, 0}), plain[0], 1e-6, "w's storage after the step");
  expect_close(strided[1], g0, 0, "g, not stored");
}

// A weight read as B by products of one row (a streaming step's kernel) is read from a packed
// copy (PackedB) once 6 such products have read it unchanged, and never once it changed: written
// in place (assign_, or a write through data() with mark_modified()), or another tensor. A step
// whose run reads it 6 times or more packs it at once.
TEST(Compile, RowProductsReadAPackedCopyOfWeightsThatStayTheSame) {
  Generator gen(12);
  const int64_t n = 300;
  const Tensor x = randn({1, n}, {}, gen);
  Tensor w = randn({n, n}, {}, gen) * 0.05;
  // A recurrence of `products` steps h = tanh(h w): one-row products that cannot be merged.
  const auto recurrence = [&](int products) {
    return capture({{"x", x}, {"w", w}}, [&]() -> Named {
      Tensor h = x;
      for (int p = 0; p < products; ++p) h = tanh(matmul(h, w));
      return {{"h", h}};
    });
  };
  for (const int products : {1, 2, 7}) {
    SCOPED_TRACE(testing::Message() << products << " products a run");
    const Graph graph = recurrence(products);
    const CompiledStep step = compile(graph);
    const int64_t unpacked = step.memory_bytes();
    // Runs until the copy is made, each checked against evaluate(); 0 if none within 10.
    const auto runs_until_packed = [&](const std::string& when) {
      for (int run = 1; run <= 10; ++run) {
        expect_close(step.run({x, w})[0], evaluate(graph, {x, w})[0], 1e-5,
                     fmt::format("{}, run {}", when, run));
        if (step.memory_bytes() == unpacked + n * n * 4) return run;
        EXPECT_EQ(step.memory_bytes(), unpacked) << when;
      }
      return 0;
    };
    const int runs = (6 + products - 1) / products;
    EXPECT_EQ(runs_until_packed("first runs"), runs);
    EXPECT_EQ(runs_until_packed("later runs"), 1);
    w.assign_(randn({n, n}, {}, gen) * 0.05);
    EXPECT_EQ(runs_until_packed("after assign_"), runs);
    w.data<float>()[n * n - 1] = 0.5f;
    w.mark_modified();
    EXPECT_EQ(runs_until_packed("after a write through data()"), runs);
    w = randn({n, n}, {}, gen) * 0.05;
    EXPECT_EQ(runs_until_packed("another tensor"), runs);
  }

  // A step that stores into the weight changes it every run: never packed.
  Tensor v = w.copy();
  const Graph updating = capture({{"x", x}, {"v", v}}, [&]() -> Named {
    const Tensor y = matmul(x, v);
    v.assign_(v * 0.5);
    return {{"y", y}};
  });
  const CompiledStep update = compile(updating);
  const int64_t bytes = update.memory_bytes();
  for (int run = 0; run < 8; ++run) {
    const Tensor want = matmul(x, v);
    expect_close(update.run({x, v})[0], want, 0, fmt::format("updating run {}", run));
    EXPECT_EQ(update.memory_bytes(), bytes);
  }
}

// A weight whose values are all float16 or all bfloat16 values (Sequential::quantize) is packed in
// 2 bytes a value where the build reads those faster (PackedB::stores_halves, stores_bfloat16),
// and read at exactly the floats' results; one value that is neither packs it in floats again.
TEST(Compile, WeightsOfTwoByteValuesArePackedInTwoBytes) {
  for (const bool bfloat16 : {false, true}) {
    SCOPED_TRACE(bfloat16 ? "bfloat16" : "float16");
    Generator gen(14);
    const int64_t n = 300;
    const auto rounded = [&](const Tensor& t) {
      std::vector<float> values = t.to_vector<float>();
      for (float& v : values)
        v = bfloat16 ? std::bit_cast<float>(std::bit_cast<std::uint32_t>(v) & 0xffff0000u)
                     : static_cast<float>(static_cast<_Float16>(v));
      return from_vector(values, t.shape());
    };
    const Tensor x = randn({1, n}, {}, gen);
    const Tensor w = rounded(randn({n, n}, {}, gen) * 0.05);
    const Graph graph = capture({{"x", x}, {"w", w}}, [&]() -> Named {
      Tensor h = x;
      for (int p = 0; p < 7; ++p) h = tanh(matmul(h, w));
      return {{"h", h}};
    });
    const CompiledStep step = compile(graph);
    const int64_t unpacked = step.memory_bytes();
    expect_close(step.run({x, w})[0], evaluate(graph, {x, w})[0], 0, "two bytes");
    const int64_t packed = step.memory_bytes() - unpacked;
    if (bfloat16 ? PackedB::stores_bfloat16() : PackedB::stores_halves()) {
      // bfloat16's last block of columns is padded to whole groups: under 32 values a row.
      EXPECT_GE(packed, n * n * 2);
      EXPECT_LT(packed, n * (n + 32) * 2);
    } else {
      EXPECT_EQ(packed, n * n * 4);
    }
    w.data<float>()[12] = 0.1f;  // neither a float16 nor a bfloat16 value
    w.mark_modified();
    expect_close(step.run({x, w})[0], evaluate(graph, {x, w})[0], 0, "floats");
    EXPECT_EQ(step.memory_bytes(), unpacked + n * n * 4);
  }
}

// Runs of one step may overlap (compile.h): threads running it at once share its packed copies.
TEST(Compile, OverlappingRunsShareThePackedCopies) {
  Generator gen(13);
  const Tensor w = randn({64, 300}, {}, gen);
  const Tensor x0 = randn({1, 64}, {}, gen);
  const Graph graph = capture({{"x", x0}, {"w", w}}, [&]() -> Named {
    return {{"y", tanh(matmul(x0, w))}};
  });
  const CompiledStep step = compile(graph);
  const int64_t unpacked = step.memory_bytes();
  std::vector<Tensor> xs, want;
  for (int t = 0; t < 2; ++t) {
    xs.push_back(randn({1, 64}, {}, gen));
    want.push_back(evaluate(graph, {xs[t], w})[0]);
  }
  std::vector<int> mismatches(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      std::vector<Tensor> outputs;
      for (int run = 0; run < 200; ++run) {
        step.run({xs[t], w}, outputs);
        mismatches[t] += !allclose(outputs[0], want[t], 0, 0);
      }
    });
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, (std::vector<int>{0, 0}));
  // One copy, and a second arena where the runs overlapped.
  const int64_t grown = step.memory_bytes() - unpacked;
  const int64_t copy = 64 * 300 * 4, arena = std::max<int64_t>(step.stats().arena_bytes, 64);
  EXPECT_TRUE(grown == copy || grown == copy + arena) << grown << " bytes more";
}

// finite_output names a 0-d floating-point output, whether or not the step has stores.
TEST(Compile, FiniteOutputMustBeAScalarOutput) {
  const Graph graph = lstm_gates(DType::f32, {3});  // no stores
  expect_error([&] { compile(graph, {.finite_output = "loss"}); }, {"\"loss\"", "not an output"});
  expect_error([&] { compile(graph, {.finite_output = "h"}); }, {"\"h\"", "0-d", "(3,)"});
}

}  // namespace
}  // namespace weft

namespace weft {
namespace {

// Training and inference of whole models, compiled (jit_compile) against the eager tape: the
// same seed, the same batches, the weights after a few epochs and the predictions must agree.
struct ModelCase {
  const char* name;
  std::function<Sequential()> build;
  Shape sample;    // one sample's shape
  bool token_ids;  // int64 inputs below 20
  const char* loss;
};

std::vector<ModelCase> model_cases() {
  return {
      {"dense",
       [] {
         return Sequential{Dense(5).activation("tanh"), Dense(1)};
       },
       {3},
       false,
       "mse"},
      {"simple_rnn",
       [] {
         return Sequential{SimpleRNN(6), Dense(1)};
       },
       {5, 3},
       false,
       "mse"},
      {"lstm_sequences",
       [] {
         return Sequential{LSTM(6).return_sequences(true), LSTM(4), Dense(1)};
       },
       {5, 2},
       false,
       "mse"},
      {"gru_reset_after_false",
       [] {
         return Sequential{GRU(5).reset_after(false).go_backwards(true), Dense(1)};
       },
       {4, 3},
       false,
       "mse"},
      {"gru_dropout",
       [] {
         return Sequential{GRU(5).dropout(0.3).recurrent_dropout(0.2), Dense(1)};
       },
       {4, 3},
       false,
       "mse"},
      {"embedding_mask_lstm",
       [] {
         return Sequential{Embedding(20, 4).mask_zero(true), LSTM(5),
                           Dense(1).activation("sigmoid")};
       },
       {6},
       true,
       "binary_crossentropy"},
      {"bidirectional_concat_dropout",
       [] {
         return Sequential{Embedding(20, 4), Bidirectional(LSTM(3).return_sequences(true)),
                           Dropout(0.3), GRU(3), Dense(1).activation("sigmoid")};
       },
       {5},
       true,
       "binary_crossentropy"},
      {"bidirectional_sum",
       [] {
         return Sequential{Bidirectional(SimpleRNN(4)).merge_mode("sum"), Dense(1)};
       },
       {4, 2},
       false,
       "mse"},
      {"bidirectional_ave_mul",
       [] {
         return Sequential{Bidirectional(GRU(3).return_sequences(true)).merge_mode("ave"),
                           Bidirectional(LSTM(2)).merge_mode("mul"), Dense(1)};
       },
       {4, 2},
       false,
       "mse"},
  };
}

Tensor model_inputs(const ModelCase& c, int64_t n, Generator& gen) {
  Shape shape{n};
  shape.insert(shape.end(), c.sample.begin(), c.sample.end());
  if (!c.token_ids) return randn(shape, {}, gen);
  // Trailing zeros on some rows exercise the mask.
  Tensor ids = cast(uniform(shape, 1, 20, {}, gen), DType::i64);
  std::vector<int64_t> values = ids.to_vector<int64_t>();
  for (int64_t i = 0; i < n; i += 3) values[i * shape[1] + shape[1] - 1] = 0;
  return from_vector(values, shape);
}

TEST(CompiledModels, TrainAndPredictLikeTheEagerTape) {
  for (const ModelCase& c : model_cases()) {
    Generator gen(17);
    const int64_t n = 11;  // batches of 4, 4 and 3: two compiled variants
    const Tensor x = model_inputs(c, n, gen);
    const Tensor y = cast(greater(uniform({n}, 0, 1, {}, gen), scalar(0.5)), DType::f32);
    std::vector<std::vector<double>> weights;
    std::vector<Tensor> predictions;
    for (bool jit : {false, true}) {
      manual_seed(23);
      Sequential model = c.build();
      model.jit_compile = jit;
      model.compile(Adam(), c.loss);
      model.fit(x, y, {.epochs = 3, .batch_size = 4, .verbose = 0});
      std::vector<double> values;
      for (Weight* w : model.weights())
        for (double v : w->value.to_vector<double>()) values.push_back(v);
      weights.push_back(values);
      predictions.push_back(model.predict(x, 4));
      if (jit) {
        EXPECT_EQ(model.compiled_steps().size(), 4) << c.name;  // train and infer, 4 and 3
      }
    }
    ASSERT_EQ(weights[0].size(), weights[1].size()) << c.name;
    for (size_t i = 0; i < weights[0].size(); ++i)
      ASSERT_NEAR(weights[0][i], weights[1][i], 1e-5 + 1e-4 * std::abs(weights[0][i]))
          << c.name << ": weight value " << i;
    expect_close(predictions[1], predictions[0], 1e-4, c.name);
  }
}

// The first batch of each shape runs compiled too: capturing the step computes and changes
// nothing (so weights that moved were moved by the compiled step), and one training step from
// the same start gives the eager tape's loss, weights and random draws.
TEST(CompiledModels, FirstBatchRunsCompiledLikeTheEagerTape) {
  for (const ModelCase& c : model_cases()) {
    Generator gen(5);
    const Tensor x = model_inputs(c, 4, gen);
    const Tensor y = cast(greater(uniform({4}, 0, 1, {}, gen), scalar(0.5)), DType::f32);
    std::vector<double> losses, draws;
    std::vector<std::vector<double>> weights;
    for (bool jit : {false, true}) {
      manual_seed(23);
      Sequential model = c.build();
      model.jit_compile = jit;
      model.compile(Adam(), c.loss);
      auto values = [&] {
        std::vector<double> all;
        for (Weight* w : model.weights())
          for (double v : w->value.to_vector<double>()) all.push_back(v);
        return all;
      };
      if (jit) {
        model.capture_step(StepKind::train, x, y);  // builds the model
        const std::vector<double> before = values();
        const uint64_t offset = default_generator().offset();
        model.capture_step(StepKind::train, x, y);
        EXPECT_EQ(values(), before) << c.name;
        EXPECT_EQ(default_generator().offset(), offset) << c.name;
      }
      const History history = model.fit(x, y, {.epochs = 1, .batch_size = 4, .verbose = 0});
      losses.push_back(history["loss"][0]);
      weights.push_back(values());
      draws.push_back(static_cast<double>(default_generator().offset()));
    }
    EXPECT_NEAR(losses[1], losses[0], 1e-5 * std::abs(losses[0])) << c.name;
    EXPECT_EQ(draws[1], draws[0]) << c.name;
    ASSERT_EQ(weights[0].size(), weights[1].size()) << c.name;
    for (size_t i = 0; i < weights[0].size(); ++i)
      ASSERT_NEAR(weights[0][i], weights[1][i], 1e-6 + 1e-5 * std::abs(weights[0][i]))
          << c.name << ": weight value " << i;
  }
}

// A layer that reads a value its input's op computed, which no code inside a step may do.
class ReadsItsInput : public LayerBase<ReadsItsInput> {
 public:
  std::string type_name() const override { return "ReadsItsInput"; }
  Shape build(const Shape& input_shape, Generator&) override { return input_shape; }
  Tensor call(const Tensor& x, CallContext&) override {
    x.to_vector<float>();
    return x;
  }
};

TEST(CompiledModels, ReadingAValueInsideAStepIsAnErrorNamingTheOp) {
  Sequential model{Dense(2).activation("tanh").input_shape({3}), ReadsItsInput()};
  expect_error(
      [&] {
        model.predict_on_batch(ones({4, 3}));
      },
      {"computed by 'tanh'", "computes no values"});
  model.jit_compile = false;  // the eager tape has the values
  EXPECT_EQ(model.predict_on_batch(ones({4, 3})).shape(), (Shape{4, 2}));
}

// A model is built before its first step is captured, so its weights are inputs of the step, not
// constants made inside it and frozen there.
TEST(CompiledModels, FirstStepOfAnUnbuiltModelTakesItsWeightsAsInputs) {
  manual_seed(8);
  Sequential model{LSTM(3), Dense(1)};
  model.compile("sgd", "mse");
  const Tensor x = randn({4, 5, 2});
  model.predict_on_batch(x);  // builds the model
  model.fit(x, ones({4}), {.epochs = 2, .batch_size = 4, .verbose = 0});
  const Tensor compiled = model.predict_on_batch(x);
  model.jit_compile = false;
  expect_close(compiled, model.predict_on_batch(x), 1e-5, "after training");
}

// Float indices are converted by an op of the step, not frozen from the batch it was captured on.
TEST(CompiledModels, EmbeddingReadsEachBatchOfFloatIndices) {
  manual_seed(6);
  Sequential model{Embedding(20, 3), Dense(1)};
  model.predict_on_batch(tensor({1, 2, 3, 4}, {2, 2}));
  const Tensor second = tensor({5, 6, 7, 8}, {2, 2});
  const Tensor compiled = model.predict_on_batch(second);
  EXPECT_EQ(model.compiled_steps().size(), 1);
  model.jit_compile = false;
  expect_close(compiled, model.predict_on_batch(second), 1e-6, "second batch");
}

// A batch of 1 with 4 x 72 gates per step: single rows times kernels wider than a block of
// PackedB, which the compiled step reads from packed copies (of 2-byte values, once quantized).
TEST(CompiledModels, StatefulStreamingMatchesEager) {
  struct Case {
    int64_t batch, units;
    std::string quantized;  // the mode; packed in 2 bytes a value
  };
  for (const auto& [batch, units, quantized] :
       {Case{3, 4, ""}, Case{1, 72, ""}, Case{1, 72, "float16"}, Case{1, 72, "bfloat16"}}) {
    std::vector<Tensor> outputs[2];
    for (bool jit : {false, true}) {
      manual_seed(4);
      Sequential model{LSTM(units).stateful(true).input_shape({1, 2}), Dense(1)};
      if (!quantized.empty()) model.quantize(quantized);
      model.jit_compile = jit;
      Generator gen(9);
      for (int step = 0; step < 8; ++step)
        outputs[jit].push_back(model.predict_on_batch(randn({batch, 1, 2}, {}, gen)));
      // New weights mid-stream are read from the next step on.
      for (Weight* weight : model.weights()) weight->value.assign_(weight->value * 0.5);
      for (int step = 0; step < 8; ++step)
        outputs[jit].push_back(model.predict_on_batch(randn({batch, 1, 2}, {}, gen)));
      model.reset_states();  // the stream starts over, and goes on from there
      for (int step = 0; step < 2; ++step)
        outputs[jit].push_back(model.predict_on_batch(randn({batch, 1, 2}, {}, gen)));
    }
    for (size_t i = 0; i < outputs[0].size(); ++i)
      expect_close(outputs[1][i], outputs[0][i], 1e-5,
                   fmt::format("batch {} {}, streaming step {}", batch, quantized, i));
  }
}

// Training a stateful layer, compiled, gives the eager tape's weights and states: the step stores
// the next states as it ends, while its backward pass reads the states it began from (it once
// read the stored ones, and got the recurrent kernel's gradient wrong).
TEST(CompiledModels, StatefulTrainingMatchesEager) {
  const std::vector<std::pair<std::string, std::function<LayerRef()>>> layers = {
      {"SimpleRNN",
       [] {
         return LayerRef(SimpleRNN(5).stateful(true).input_shape({4, 3}));
       }},
      {"LSTM",
       [] {
         return LayerRef(LSTM(5).stateful(true).input_shape({4, 3}));
       }},
      {"GRU",
       [] {
         return LayerRef(GRU(5).stateful(true).input_shape({4, 3}));
       }},
  };
  for (const auto& [name, layer] : layers) {
    SCOPED_TRACE(name);
    Generator gen(21);
    const Tensor x = randn({6, 4, 3}, {}, gen), y = randn({6, 1}, {}, gen);
    std::vector<std::vector<double>> values[2];
    for (bool jit : {false, true}) {
      manual_seed(8);
      Sequential model{layer(), Dense(1)};
      model.jit_compile = jit;
      model.compile("sgd", "mse");
      // Batches of 2 in order: each carries on from the states the one before left.
      model.fit(x, y, {.epochs = 2, .batch_size = 2, .shuffle = false, .verbose = 0});
      for (Weight* weight : model.weights())
        values[jit].push_back(weight->value.to_vector<double>());
      for (const Tensor& state : model.layers().front()->states(2))
        values[jit].push_back(state.to_vector<double>());
    }
    ASSERT_EQ(values[0].size(), values[1].size());
    for (size_t i = 0; i < values[0].size(); ++i)
      for (size_t j = 0; j < values[0][i].size(); ++j)
        ASSERT_NEAR(values[1][i][j], values[0][i][j], 1e-6 + 1e-5 * std::abs(values[0][i][j]))
            << "weight or state " << i << ", value " << j;
  }
}

// A streaming call, by predict_on_batch or a predictor, writes its output into the last call's
// output where the caller let go of it, and never into one the caller still holds, or holds a view
// of.
TEST(CompiledModels, OutputsTheCallerHoldsAreNotWrittenAgain) {
  for (const bool bound : {false, true}) {
    SCOPED_TRACE(bound ? "predictor" : "predict_on_batch");
    manual_seed(6);
    Sequential model{LSTM(8).stateful(true).input_shape({1, 3}), Dense(2)};
    model.jit_compile = true;
    const Tensor x = randn({2, 1, 3});
    Predictor predictor = model.predictor(x.shape());
    const auto call = [&] { return bound ? predictor(x) : model.predict_on_batch(x); };
    const Tensor held = call();
    const std::vector<float> held_values = held.to_vector<float>();
    const Tensor view = slice(call(), 1, 1, 2);
    const std::vector<float> view_values = view.to_vector<float>();
    call();
    const Tensor next = call();
    EXPECT_EQ(held.to_vector<float>(), held_values);
    EXPECT_EQ(view.to_vector<float>(), view_values);
    EXPECT_NE(next.to_vector<float>(), held_values);  // the state moved on
  }
}

// Dropout at inference too (Monte Carlo dropout): every call draws new masks.
class DropsAtInference : public LayerBase<DropsAtInference> {
 public:
  std::string type_name() const override { return "DropsAtInference"; }
  Shape build(const Shape& input_shape, Generator&) override { return input_shape; }
  Tensor call(const Tensor& x, CallContext& context) override {
    return x * dropout_mask(x.shape(), x.dtype(), 0.5, *context.generator);
  }
};

// An inference call whose inputs have the last call's shapes runs that call's step without
// naming its inputs again, with the generator's state of this call; calls of other shapes,
// training steps between them and a layer added (which changes no input's shape) each find their
// own step.
TEST(CompiledModels, InferenceCallsOfChangingShapesMatchEager) {
  const std::vector<Shape> calls = {{2, 5, 3}, {2, 5, 3}, {3, 5, 3}, {2, 5, 3},
                                    {4, 5, 3}, {4, 5, 3}, {4, 5, 3}};
  for (const bool drops : {false, true}) {
    std::vector<Tensor> outputs[2];
    for (bool jit : {false, true}) {
      manual_seed(3);
      Sequential model{LSTM(4), Dense(1)};
      if (drops) model.add(DropsAtInference());
      model.jit_compile = jit;
      model.compile("sgd", "mse");
      Generator gen(7);
      for (size_t call = 0; call < calls.size(); ++call) {
        if (call == 3)
          model.fit(randn({2, 5, 3}, {}, gen), randn({2, 1}, {}, gen), {.epochs = 1, .verbose = 0});
        if (call == 6) model.add(Dense(2));
        outputs[jit].push_back(model.predict_on_batch(randn(calls[call], {}, gen)));
      }
    }
    for (size_t call = 0; call < calls.size(); ++call)
      expect_close(outputs[1][call], outputs[0][call], 1e-5,
                   fmt::format("call {}{}", call, drops ? ", dropping at inference" : ""));
  }
}

// A layer added after steps were compiled takes part from the next step on, even one without
// weights, which leaves the inputs' names, and so the old step's key, as they were.
TEST(CompiledModels, ALayerAddedAfterAStepTakesPartInTheNext) {
  std::vector<double> losses[2];
  for (bool jit : {false, true}) {
    manual_seed(1);
    Sequential model{Dense(4).input_shape({3})};
    model.jit_compile = jit;
    model.compile("sgd", "mse");
    Generator gen(2);
    const Tensor x = randn({8, 3}, {}, gen), y = randn({8, 4}, {}, gen);
    model.fit(x, y, {.epochs = 1, .batch_size = 8, .shuffle = false, .verbose = 0});
    model.add(Dropout(0.5));
    losses[jit] = model.fit(x, y, {.epochs = 3, .batch_size = 8, .shuffle = false, .verbose = 0})
                      .history.at("loss");
  }
  ASSERT_EQ(losses[1].size(), losses[0].size());
  for (size_t epoch = 0; epoch < losses[0].size(); ++epoch)
    EXPECT_NEAR(losses[1][epoch], losses[0][epoch], 1e-5 * std::abs(losses[0][epoch]))
        << "epoch " << epoch;
}

// A predictor's calls compute what predict_on_batch computes, through what a stream meets between
// calls: weights written in place, a training step, reset_states, a weight replaced by another
// tensor and a layer added. The same compiled step runs either way (bit for bit), and the eager
// tape agrees. Cases: streaming layers (one quantized to bfloat16), a layer that draws at
// inference (the generator advances as predict_on_batch's would), and a batch large enough to run
// as two halves.
TEST(Predictor, CallsMatchPredictOnBatchThroughChangesToTheModel) {
  struct Case {
    std::string name;
    std::function<Sequential()> build;
    Shape input_shape;
  };
  const std::vector<Case> cases = {
      {"stateful LSTM",
       [] {
         return Sequential{LSTM(16).stateful(true).input_shape({1, 3}), Dense(2)};
       },
       {1, 1, 3}},
      {"stateful GRU in bfloat16",
       [] {
         Sequential model{GRU(12).stateful(true).input_shape({1, 3})};
         model.quantize("bfloat16");
         return model;
       },
       {3, 1, 3}},
      {"drops at inference",
       [] {
         Sequential model{LSTM(4).input_shape({5, 3})};
         model.add(DropsAtInference());
         return model;
       },
       {2, 5, 3}},
      {"halves",
       [] {
         return Sequential{LSTM(8).input_shape({6, 3}), Dense(1)};
       },
       {40, 6, 3}},
  };
  for (const Case& test : cases) {
    SCOPED_TRACE(test.name);
    // The predictor's model, then predict_on_batch's compiled and eager.
    std::vector<Tensor> outputs[3];
    for (int side = 0; side < 3; ++side) {
      manual_seed(5);
      Sequential model = test.build();
      model.jit_compile = side < 2;
      model.compile("sgd", "mse");
      std::optional<Predictor> predictor;
      if (side == 0) predictor.emplace(model.predictor(test.input_shape));
      Generator gen(8);
      const auto calls = [&](int count) {
        for (int call = 0; call < count; ++call) {
          const Tensor x = randn(test.input_shape, {}, gen);
          outputs[side].push_back(predictor ? (*predictor)(x) : model.predict_on_batch(x));
        }
      };
      calls(3);
      for (Weight* weight : model.weights()) weight->value.assign_(weight->value * 0.5);
      calls(2);
      const Tensor x = randn(test.input_shape, {}, gen);
      Shape y_shape = model.output_shape();
      y_shape.insert(y_shape.begin(), x.size(0));
      model.fit(x, randn(y_shape, {}, gen),
                {.epochs = 1, .batch_size = x.size(0), .shuffle = false, .verbose = 0});
      calls(2);
      model.reset_states();
      calls(2);
      {
        NoGrad no_grad;
        model.weights().front()->value = model.weights().front()->value * 1.5;
      }
      calls(2);
      model.add(Dense(3));
      calls(2);
    }
    ASSERT_EQ(outputs[0].size(), outputs[1].size());
    for (size_t i = 0; i < outputs[0].size(); ++i) {
      EXPECT_EQ(outputs[0][i].to_vector<float>(), outputs[1][i].to_vector<float>()) << "call " << i;
      expect_close(outputs[0][i], outputs[2][i], 1e-4, fmt::format("call {} against eager", i));
    }
  }
}

// predict_on_batch runs a repeated call through a binding of its step, bound again when the
// batch's shape changes (a smaller last batch, in turn with full ones): each call gives what the
// eager tape gives, and the caller's batch is let go of when the call returns.
TEST(CompiledModels, RepeatedPredictOnBatchLetsGoOfTheBatch) {
  Sequential models[2];
  for (bool jit : {false, true}) {
    manual_seed(3);
    models[jit] = Sequential{LSTM(4).input_shape({5, 3}), Dense(2)};
    models[jit].jit_compile = jit;
  }
  Generator gen(2);
  for (int call = 0; call < 7; ++call) {
    const Tensor x = randn({call % 3 == 2 ? 3 : 4, 5, 3}, {}, gen);
    const Tensor y = models[1].predict_on_batch(x);
    EXPECT_EQ(x.impl_ptr().use_count(), 1) << "call " << call;
    EXPECT_EQ(x.impl()->storage.use_count(), 1) << "call " << call;
    expect_close(y, models[0].predict_on_batch(x), 1e-5, fmt::format("call {}", call));
  }
  EXPECT_EQ(models[1].compiled_steps().size(), 2);
}

// predictor() compiles the step when made, and its calls run that step: no other is compiled,
// and predict_on_batch on the same shape finds it too.
TEST(Predictor, CompilesWhenMadeAndRunsThatStep) {
  Sequential model{LSTM(6).stateful(true).input_shape({1, 2})};
  model.jit_compile = true;
  Predictor predictor = model.predictor({1, 1, 2});
  EXPECT_EQ(model.compiled_steps().size(), 1);
  Generator gen(3);
  for (int call = 0; call < 4; ++call) predictor(randn({1, 1, 2}, {}, gen));
  model.predict_on_batch(randn({1, 1, 2}, {}, gen));
  EXPECT_EQ(model.compiled_steps().size(), 1);
  EXPECT_EQ(predictor.input_shape(), (Shape{1, 1, 2}));
  EXPECT_EQ(predictor.dtype(), DType::f32);
}

// A predictor takes batches of its shape and dtype only; a shape the model does not take is
// refused when the predictor is made, as predict_on_batch refuses it, compiled or eager.
TEST(Predictor, RefusesBatchesOfAnotherShape) {
  for (const bool jit : {false, true}) {
    SCOPED_TRACE(jit ? "compiled" : "eager");
    Sequential model{LSTM(4).input_shape({5, 3})};
    model.jit_compile = jit;
    Predictor predictor = model.predictor({2, 5, 3});
    expect_error(
        [&] {
          predictor(zeros({3, 5, 3}));
        },
        {"predictor of model \"sequential\"", "float32 (3, 5, 3)", "(2, 5, 3)"});
    expect_error([&] { predictor(zeros({2, 5, 3}, {.dtype = DType::f64})); }, {"float64"});
    expect_error([&] { predictor(Tensor()); }, {"undefined"});
    expect_error([&] { model.predictor({}); }, {"batch size of at least 1", "()"});
    expect_error(
        [&] {
          model.predictor({2, 5, 4});
        },
        {"expected shape=(None, 5, 3)", "found shape=(2, 5, 4)"});
  }
  Sequential unbuilt{LSTM(4)};
  expect_error([&] { unbuilt.predictor({2, 3}); }, {"expected ndim=3, found ndim=2"});
}

// A step bound to its inputs (StepBinding) computes what run() does on them, reads what is written
// into them in place and what set_input puts in their place, and writes its stores into them.
TEST(Compile, BoundRunsMatchRunsOnTheSameInputs) {
  Generator gen(4);
  Tensor w = randn({4, 3}, {}, gen), g = randn({4, 3}, {}, gen);
  const Graph graph = capture({{"w", w}, {"g", g}}, [&]() -> Named {
    const Tensor loss = sum(g * w);
    w.assign_(w - g * 0.5);
    return {{"loss", loss}};
  });
  const auto step = std::make_shared<const CompiledStep>(compile(graph));
  // The same inputs run unbound, as copies.
  Tensor w_run = w.copy(), g_run = g.copy();
  StepBinding binding(step, {w, g});
  std::vector<Tensor> outputs;
  const auto runs_alike = [&](const std::string& when) {
    binding.run(outputs);
    expect_close(outputs[0], step->run({w_run, g_run})[0], 0, when + ": loss");
    expect_close(binding.inputs()[0], w_run, 0, when + ": w stored");
  };
  runs_alike("first run");
  runs_alike("second run");
  g.assign_(g * -2.0);
  g_run.assign_(g_run * -2.0);
  runs_alike("g written in place");
  const Tensor other = randn({4, 3}, {}, gen);
  binding.set_input(1, permute(permute(other, {1, 0}).copy(), {1, 0}));  // strided: copied
  g_run = other.copy();
  runs_alike("another g");
  expect_close(w, w_run, 0, "the bound w itself");
  // An input let go of holds nothing, and no run reads it until it is set again.
  binding.release_input(1);
  binding.release_input(1);
  EXPECT_FALSE(binding.inputs()[1].defined());
  expect_error([&] { binding.run(outputs); }, {"an input let go of"});
  binding.set_input(1, other);
  runs_alike("g set again");

  expect_error([&] { binding.set_input(1, zeros({3, 4})); }, {"input \"g\"", "(3, 4)"});
  expect_error([&] { binding.set_input(2, zeros({4, 3})); }, {"2 inputs, not an input 2"});
  expect_error([&] { StepBinding(step, {w}); }, {"1 inputs for a step of 2"});
  const Tensor strided_w = permute(permute(w, {1, 0}).copy(), {1, 0});
  expect_error(
      [&] {
        StepBinding(step, {strided_w, g});
      },
      {"input \"w\" is written by the step", "contiguous"});
}

// A step recorded for rows [first, first + rows) of a batch (BatchRows) draws exactly those rows
// of the masks the whole batch draws, evaluated and compiled, with `first` read from the random
// state at run time: one compiled step serves every part of its size.
TEST(CompiledModels, MasksOfABatchsRowsAreThoseRowsOfTheWholeBatchsMasks) {
  struct Case {
    std::string name;
    std::vector<Shape> whole_masks;
    int64_t rows;  // of the part
  };
  const std::vector<Case> cases = {
      {"one_mask", {{6, 4}}, 3},
      {"masks_of_two_sizes", {{6, 4}, {6, 3, 2}, {6, 5}}, 2},
      {"odd_batch", {{5, 7}, {5, 1}}, 2},
  };
  for (const Case& c : cases) {
    Generator generator(17);
    generator.take(11);
    Generator drawn = generator;
    std::vector<Tensor> whole;
    uint64_t counters = 0;
    for (const Shape& shape : c.whole_masks) {
      whole.push_back(dropout_mask(shape, DType::f32, 0.5, drawn));
      counters += static_cast<uint64_t>(shape_numel(shape));
    }
    const int64_t whole_rows = c.whole_masks[0][0];
    Tensor state = random_state(generator);
    const Graph graph = capture({{"random", state}}, [&] {
      Generator recording = generator;
      RandomStateScope scope(recording, state, BatchRows{0, c.rows, whole_rows});
      Named masks;
      for (Shape shape : c.whole_masks) {
        shape[0] = c.rows;
        masks.emplace_back(fmt::format("mask{}", masks.size()),
                           dropout_mask(shape, DType::f32, 0.5, recording));
      }
      EXPECT_TRUE(scope.drawn_by_row()) << c.name;
      EXPECT_EQ(scope.taken(), counters) << c.name << ": the whole batch's counters";
      return masks;
    });
    const CompiledStep step = compile(graph);
    for (int64_t first = 0; first + c.rows <= whole_rows; ++first) {
      state.data<int64_t>()[2] = first;
      const std::vector<Tensor> evaluated = evaluate(graph, {state});
      const std::vector<Tensor> compiled = step.run({state});
      for (size_t i = 0; i < whole.size(); ++i) {
        const Tensor rows = slice(whole[i], 0, first, first + c.rows);
        const std::string where = fmt::format("{}: mask {} from row {}", c.name, i, first);
        EXPECT_TRUE(allclose(evaluated[i], rows, 0, 0)) << where << ", evaluated";
        EXPECT_TRUE(allclose(compiled[i], rows, 0, 0)) << where << ", compiled";
      }
    }
  }
  // A mask that does not lead with the part's rows cannot be the whole batch's rows.
  Generator generator(3);
  RandomStateScope scope(generator, random_state(generator), BatchRows{0, 2, 4});
  dropout_mask({3, 2}, DType::f32, 0.5, generator);
  EXPECT_FALSE(scope.drawn_by_row());
}

// Big enough that the GEMMs over all time steps split across threads, and that on 2 threads fit
// runs each half of a batch on its own thread (gradients steps, then an apply step) and predict
// too: with 1 thread and with 2 the compiled steps train and predict as the eager tape does, up
// to float summation order. The halves draw the whole batch's dropout masks (BatchRows), an odd
// batch splits into halves of two sizes, and a Bidirectional layer splits as its directions do.
TEST(CompiledModels, OneAndTwoThreadsMatchTheEagerTape) {
  struct Case {
    std::string name;
    std::function<Sequential()> build;
    int64_t rows;
    // Steps compiled on 2 threads: a gradients step per half size, the apply step, and an infer
    // step per half size of predict's 97 rows (on 1 thread: train and infer).
    int64_t steps_on_two_threads;
  };
  const std::vector<Case> cases = {
      {"lstm",
       [] {
         return Sequential{LSTM(64).input_shape({20, 32}), Dense(1)};
       },
       96, 4},
      {"dropout_odd_batch",
       [] {
         return Sequential{LSTM(32).dropout(0.2).recurrent_dropout(0.3).input_shape({20, 32}),
                           Dropout(0.4), Dense(1)};
       },
       97, 5},
      {"bidirectional_dropout",
       [] {
         return Sequential{Bidirectional(GRU(16).return_sequences(true)).input_shape({20, 32}),
                           Dropout(0.5), LSTM(8), Dense(1)};
       },
       64, 4},
  };
  const int default_threads = default_thread_pool().num_threads();
  Generator gen(31);
  const Tensor x_pred = randn({97, 20, 32}, {}, gen);
  struct Result {
    std::vector<double> weights;
    Tensor predictions;
    int64_t compiled_steps;
  };
  for (const Case& c : cases) {
    const Tensor x = randn({c.rows, 20, 32}, {}, gen);
    const Tensor y = randn({c.rows}, {}, gen);
    const auto train = [&](bool jit, int threads) {
      set_num_threads(threads);
      manual_seed(5);
      Sequential model = c.build();
      model.jit_compile = jit;
      model.compile(Adam(), "mse");
      model.fit(x, y, {.epochs = 2, .batch_size = c.rows, .shuffle = false, .verbose = 0});
      Result result{{}, model.predict(x_pred, 97), model.compiled_steps().size()};
      for (Weight* w : model.weights())
        for (double v : w->value.to_vector<double>()) result.weights.push_back(v);
      return result;
    };
    const Result eager = train(false, 1);
    for (int threads : {1, 2}) {
      const std::string where = fmt::format("{}, {} threads", c.name, threads);
      const Result compiled = train(true, threads);
      ASSERT_EQ(compiled.weights.size(), eager.weights.size());
      for (size_t i = 0; i < eager.weights.size(); ++i)
        ASSERT_NEAR(compiled.weights[i], eager.weights[i], 1e-5 + 1e-4 * std::abs(eager.weights[i]))
            << where << ": weight value " << i;
      expect_close(compiled.predictions, eager.predictions, 1e-4, where);
      EXPECT_EQ(compiled.compiled_steps, threads == 1 ? 2 : c.steps_on_two_threads) << where;
    }
  }
  set_num_threads(default_threads);
}

// A batch large enough for predict to run its halves at once, through a stateful model (whose
// states must carry over whole) and through a layer that mixes the samples of its batch: each
// runs the batch whole, as the eager tape does.
class CentresTheBatch : public LayerBase<CentresTheBatch> {
 public:
  std::string type_name() const override { return "CentresTheBatch"; }
  Shape build(const Shape& input_shape, Generator&) override { return input_shape; }
  Tensor call(const Tensor& x, CallContext&) override { return x - mean(x, {0}, true); }
  bool mixes_samples(bool) const override { return true; }
};

TEST(CompiledModels, PredictRunsTheBatchWholeWhereItsSamplesMeet) {
  Generator gen(12);
  const Tensor stream = randn({40, 1, 3}, {}, gen);
  const Tensor x = randn({40, 4, 3}, {}, gen);
  const std::vector<std::pair<std::string, std::function<Sequential()>>> models = {
      {"stateful",
       [] {
         return Sequential{LSTM(8).stateful(true).input_shape({1, 3}), Dense(1)};
       }},
      {"mixing",
       [] {
         return Sequential{LSTM(8).input_shape({4, 3}), CentresTheBatch(), Dense(1)};
       }},
  };
  for (const auto& [name, build] : models) {
    std::vector<Tensor> outputs[2];
    for (bool jit : {false, true}) {
      manual_seed(6);
      Sequential model = build();
      model.jit_compile = jit;
      const Tensor& input = name == "stateful" ? stream : x;
      for (int call = 0; call < 2; ++call) outputs[jit].push_back(model.predict(input, 40));
      if (jit) {
        EXPECT_EQ(model.compiled_steps().size(), 1) << name << ": one step, of the whole batch";
      }
    }
    // Centring the batch cancels most of each value, so the float sums' order shows at about
    // 1e-8 (the scale before centring times 1e-7): an absolute tolerance, not a relative one.
    for (size_t i = 0; i < outputs[0].size(); ++i)
      EXPECT_TRUE(allclose(outputs[1][i], outputs[0][i], 1e-5, 1e-6))
          << name << " call " << i << ": " << outputs[1][i].to_string() << " vs "
          << outputs[0][i].to_string();
  }
}

TEST(CompiledModels, SecondBatchOfAShapeIsACacheHit) {
  Sequential model{LSTM(3).input_shape({4, 2}), Dense(1)};
  Generator gen(2);
  model.predict_on_batch(randn({5, 4, 2}, {}, gen));
  EXPECT_EQ(model.compiled_steps().size(), 1);
  model.predict_on_batch(randn({5, 4, 2}, {}, gen));
  EXPECT_EQ(model.compiled_steps().size(), 1);
  model.predict_on_batch(randn({2, 4, 2}, {}, gen));  // the smaller last batch: a second variant
  EXPECT_EQ(model.compiled_steps().size(), 2);
}

// Whether the batch runs whole (a small Dense model: one train step) or as halves on 2 threads
// (an LSTM over 64 rows: gradients steps, then apply), a non-finite loss changes no weight.
TEST(CompiledModels, NonFiniteLossLeavesTheWeights) {
  struct Case {
    std::string name;
    std::function<Sequential()> build;
    Shape x_shape;
    int64_t compiled_steps;
  };
  const std::vector<Case> cases = {
      {"whole", [] { return Sequential{Dense(1).input_shape({2})}; }, {4, 2}, 1},
      {"halves",
       [] {
         return Sequential{LSTM(8).input_shape({5, 2}), Dense(1)};
       },
       {64, 5, 2},
       2},
  };
  const int default_threads = default_thread_pool().num_threads();
  set_num_threads(2);
  for (const Case& c : cases) {
    Sequential model = c.build();
    model.compile(SGD{.learning_rate = 0.1}, "mse");
    const Tensor x = ones(c.x_shape);
    const int64_t rows = c.x_shape[0];
    model.fit(x, zeros({rows}), {.epochs = 1, .batch_size = rows, .verbose = 0});  // captured
    std::vector<Tensor> before;
    for (Weight* weight : model.weights()) before.push_back(weight->value.copy());
    Tensor bad = zeros({rows});
    bad.data<float>()[rows - 1] = std::nanf("");  // in the second half
    expect_error([&] { model.fit(x, bad, {.epochs = 1, .batch_size = rows, .verbose = 0}); },
                 {"the loss became nan"});
    for (size_t i = 0; i < before.size(); ++i)
      EXPECT_TRUE(allclose(model.weights()[i]->value, before[i], 0, 0))
          << c.name << " weight " << i;
    EXPECT_EQ(model.compiled_steps().size(), c.compiled_steps) << c.name;
  }
  set_num_threads(default_threads);
}

TEST(Compile, IndexOutOfRangeIsAnErrorNamingTheOp) {
  const Tensor table = randn({5, 3});
  const Tensor ids = from_vector(std::vector<int64_t>{0, 4}, {2});
  const Graph graph = capture({{"table", table}, {"ids", ids}}, [&]() -> Named {
    return {{"rows", gather(table, 0, ids)}};
  });
  const CompiledStep step = compile(graph);
  expect_error(
      [&] {
        step.run({table, from_vector(std::vector<int64_t>{1, 7}, {2})});
      },
      {"gather: index 7 is out of range for axis 0 of size 5"});
}

TEST(Compile, StagesAreKeptForInspectionWhenAsked) {
  const Graph graph = lstm_gates(DType::f32, {3, 5});
  const CompiledStep plain = compile(graph);
  EXPECT_TRUE(plain.pass_graphs().empty());
  EXPECT_TRUE(plain.plan_stages().empty());
  EXPECT_NE(plain.schedule().find("fused"), std::string::npos);
  expect_error([&] { (void)plain.module().ir_before(); },
               {"module 'step' was compiled without keeping its IR text"});
  const CompiledStep kept = compile(graph, {.keep_stages = true});
  ASSERT_EQ(kept.pass_graphs().size(), pipeline().size());
  ASSERT_EQ(kept.plan_stages().size(), lowering_stages().size());
  for (size_t i = 0; i < lowering_stages().size(); ++i)
    EXPECT_EQ(kept.plan_stages()[i].first, lowering_stages()[i].name);
  // The arena appears once buffers are placed.
  EXPECT_EQ(kept.plan_stages()[0].second.find("arena:"), std::string::npos);
  EXPECT_NE(kept.plan_stages()[1].second.find("arena:"), std::string::npos);
  EXPECT_EQ(kept.plan_stages().back().second, kept.schedule());
  EXPECT_NE(kept.module().ir_before().find("define"), std::string::npos);
  EXPECT_NE(kept.module().ir_after().find("define"), std::string::npos);
  // Where each stage's time went: every pass, every lowering stage, emitting IR and LLVM.
  std::vector<std::string> timed;
  for (const auto& [stage, seconds] : kept.stats().stage_seconds) {
    timed.push_back(stage);
    EXPECT_GE(seconds, 0) << stage;
  }
  std::vector<std::string> expected;
  for (const Pass& pass : pipeline()) expected.emplace_back(pass.name);
  for (const LoweringStage& stage : lowering_stages()) expected.emplace_back(stage.name);
  expected.insert(expected.end(), {"emit", "llvm"});
  EXPECT_EQ(timed, expected);
}

TEST(Compile, OpWithoutLoweringIsRefused) {
  for (const OpDef* op : registered_ops())
    EXPECT_NE(find_lowering(*op), nullptr) << op->name << " has no lowering";
}

TEST(Compile, CacheEvictsTheOldestOverItsBound) {
  const Tensor x = ones({1000});
  auto step = [&](double k) {
    return compile(capture({{"x", x}}, [&]() -> Named { return {{"y", x * k}}; }));
  };
  StepCache cache(step(1).memory_bytes() * 5 / 2);  // room for two steps, not three
  cache.insert("a", step(1));
  cache.insert("b", step(2));
  EXPECT_NE(cache.find("a"), nullptr);
  cache.insert("c", step(3));
  EXPECT_EQ(cache.find("a"), nullptr);
  EXPECT_NE(cache.find("c"), nullptr);
  EXPECT_EQ(cache.evictions(), 1);
}

// Case `c`'s step of `kind` on a batch of 4, captured from a fresh model and compiled with its
// stages kept.
Graph captured_step(const ModelCase& c, StepKind kind) {
  manual_seed(5);
  Sequential model = c.build();
  model.compile(Adam(), c.loss);
  Generator gen(3);
  const Tensor x = model_inputs(c, 4, gen);
  const Tensor y = cast(greater(uniform({4}, 0, 1, {}, gen), scalar(0.5)), DType::f32);
  return model.capture_step(kind, x, kind == StepKind::train ? y : Tensor());
}

CompiledStep compiled_step(const ModelCase& c, StepKind kind) {
  return compile(captured_step(c, kind), {.keep_stages = true});
}

// Buffers alive at the same call never share a byte of the arena, and the arena comes within
// `most` times the bytes alive at the busiest call.
void expect_tight_placement(const Graph& graph, double most) {
  const Placement placement = place(fuse(optimize(graph)));
  const std::vector<Buffer>& buffers = placement.fusion.buffers;
  std::vector<size_t> placed;
  for (size_t b = 0; b < buffers.size(); ++b)
    if (buffers[b].kind == Buffer::Kind::arena && buffers[b].last >= 0) placed.push_back(b);
  const auto alive_together = [&](const Buffer& x, const Buffer& y) {
    return x.first <= y.last && y.first <= x.last && x.bytes > 0 && y.bytes > 0;
  };
  const auto end = [&](size_t b) { return placement.offsets[b] + buffers[b].bytes; };
  for (size_t i = 0; i < placed.size(); ++i)
    for (size_t j = i + 1; j < placed.size(); ++j)
      if (alive_together(buffers[placed[i]], buffers[placed[j]])) {
        EXPECT_TRUE(end(placed[i]) <= placement.offsets[placed[j]] ||
                    end(placed[j]) <= placement.offsets[placed[i]])
            << "buffers " << placed[i] << " and " << placed[j] << " overlap";
      }
  int64_t busiest = 0;
  for (int call = 0; call < static_cast<int>(placement.fusion.calls.size()); ++call) {
    int64_t alive = 0;
    for (size_t b : placed)
      if (buffers[b].first <= call && call <= buffers[b].last)
        alive += (buffers[b].bytes + 63) / 64 * 64;  // as placed: a cache line apart
    busiest = std::max(busiest, alive);
  }
  EXPECT_LE(static_cast<double>(placement.arena_bytes), most * static_cast<double>(busiest))
      << "bytes alive at the busiest call: " << busiest;
}

// Placed largest first, the small buffers in the gaps. Placed first fit in order of first use,
// the SimpleRNN's inference took 1.83 times the bytes alive at its busiest call (tiny buffers),
// and the sentiment model's half-batch gradients 1.16 times; largest first, 1.50 and 1.02.
TEST(CompiledModels, ArenaBuffersAliveTogetherNeverOverlapAndPackTightly) {
  for (const ModelCase& c : model_cases())
    for (const StepKind kind : {StepKind::train, StepKind::infer}) {
      SCOPED_TRACE(fmt::format("{} {}", c.name, kind == StepKind::train ? "train" : "infer"));
      expect_tight_placement(captured_step(c, kind), 1.5);
    }
  const ChapterModel& chapter = chapter_model("sentiment_imdb");
  Sequential model = chapter.build();
  model.compile(Adam(), chapter.loss);
  Generator gen(3);
  const Tensor x = sample_batch(chapter, 32, gen), y = sample_labels(chapter, 32, gen);
  SCOPED_TRACE("sentiment_imdb gradients, batch 32");
  expect_tight_placement(model.capture_step(StepKind::gradients, x, y), 1.05);
}

// The dominance of fusion groups, measured with the post-dominator tree: every elementwise op
// that could share a loop with its immediate post-dominator (an elementwise op of its shape, only
// elementwise ops between them) does, unless a kernel comes between them in the step (a GRU's
// update gate before the reset branch's matmul, a value carried to the next time step) or its
// loop is full. (A Dense layer's inference has no such op: its bias add goes into the product's
// kernel, and its activation's post-dominator is the next product.)
TEST(CompiledModels, ElementwiseOpsShareTheLoopOfTheirPostDominator) {
  for (const ModelCase& c : model_cases())
    for (const StepKind kind : {StepKind::train, StepKind::infer}) {
      const CompileStats stats = compiled_step(c, kind).stats();
      const std::string name =
          fmt::format("{} {}", c.name, kind == StepKind::train ? "train" : "infer");
      EXPECT_EQ(
          stats.fused_with_post_dominator + stats.apart_by_a_kernel + stats.apart_in_a_full_loop,
          stats.post_dominated_ops)
          << name;
      if (name == "dense infer") {
        EXPECT_EQ(stats.post_dominated_ops, 0) << name;
        continue;
      }
      EXPECT_GT(stats.post_dominated_ops, 0) << name;
      EXPECT_GT(stats.fused_with_post_dominator, stats.apart_by_a_kernel) << name;
    }
}

// In a time loop, a cell's loop reads its time step's rows of sequences written long before (the
// input projection forward, the saved activations backward) and asks for the next time step's
// rows as it goes; a kernel outside any loop asks for nothing.
TEST(CompiledModels, LoopedCellsAskForTheNextTimeStepsRows) {
  const auto prefetches = [](const CompiledStep& step) {
    return step.module().ir_before().find("call void @llvm.prefetch") != std::string::npos;
  };
  for (const ModelCase& c : model_cases()) {
    if (std::string_view(c.name) != "lstm_sequences") continue;
    for (const StepKind kind : {StepKind::train, StepKind::infer})
      EXPECT_TRUE(prefetches(compiled_step(c, kind))) << c.name;
  }
  EXPECT_FALSE(prefetches(compile(lstm_gates(DType::f32, {4, 64}), {.keep_stages = true})));
}

// An LSTM's backward steps compute each step's tanh(c) again from c, which they read anyway, so
// the forward steps write one activation fewer for them; inference has no later reader.
TEST(CompiledModels, LstmBackwardStepsComputeTanhOfTheCellAgain) {
  for (const ModelCase& c : model_cases()) {
    if (std::string_view(c.name) != "lstm_sequences") continue;
    const int64_t timesteps = c.sample[0], layers = 2;
    EXPECT_GE(compiled_step(c, StepKind::train).stats().recomputed_ops, (timesteps - 1) * layers);
    EXPECT_EQ(compiled_step(c, StepKind::infer).stats().recomputed_ops, 0);
  }
}

// Compile time flat in the sequence length, measured as code size: a training step's time loops
// are re-rolled, so 400 time steps emit the code of 50 (within 1.2x) for every recurrent model.
TEST(CompiledModels, CodeDoesNotGrowWithSequenceLength) {
  for (const ModelCase& c : model_cases()) {
    if (c.sample.size() < 2 && !c.token_ids) continue;  // no time axis
    auto compiled = [&](int64_t timesteps) {
      ModelCase sized = c;
      sized.sample[0] = timesteps;
      return compiled_step(sized, StepKind::train);
    };
    const CompiledStep short_step = compiled(50), long_step = compiled(400);
    const size_t short_ir = short_step.module().ir_before().size();
    const size_t long_ir = long_step.module().ir_before().size();
    EXPECT_LE(long_ir * 5, short_ir * 6) << c.name << ": IR of " << short_ir
                                         << " bytes for 50 time steps, " << long_ir << " for 400";
    EXPECT_GT(long_step.stats().rolled_calls * 10, long_step.stats().kernel_calls * 9) << c.name;
    // Every time step's values go straight where they are stacked: no copy per time step.
    EXPECT_EQ(long_step.stats().copy_calls, short_step.stats().copy_calls) << c.name;
    RecordProperty(fmt::format("{}_ir_bytes", c.name), fmt::format("{} {}", short_ir, long_ir));
  }
}

}  // namespace
}  // namespace weft

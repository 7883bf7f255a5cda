// The compiler: captured graphs compiled to native code, checked against the graph's reference
// interpreter evaluate().
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "test_support.h"
#include "weft/compiler/compile.h"
#include "weft/compiler/graph.h"
#include "weft/compiler/jit.h"
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

TEST(CompiledModels, StatefulStreamingMatchesEager) {
  std::vector<Tensor> outputs[2];
  for (bool jit : {false, true}) {
    manual_seed(4);
    Sequential model{LSTM(4).stateful(true).input_shape({1, 2}), Dense(1)};
    model.jit_compile = jit;
    Generator gen(9);
    for (int step = 0; step < 5; ++step)
      outputs[jit].push_back(model.predict_on_batch(randn({3, 1, 2}, {}, gen)));
    model.reset_states();
    outputs[jit].push_back(model.predict_on_batch(randn({3, 1, 2}, {}, gen)));
  }
  for (size_t i = 0; i < outputs[0].size(); ++i)
    expect_close(outputs[1][i], outputs[0][i], 1e-5, fmt::format("streaming step {}", i));
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

TEST(CompiledModels, NonFiniteLossLeavesTheWeights) {
  Sequential model{Dense(1).input_shape({2})};
  model.compile(SGD{.learning_rate = 0.1}, "mse");
  const Tensor x = ones({4, 2});
  model.fit(x, zeros({4}), {.epochs = 1, .batch_size = 4, .verbose = 0});  // captured
  const Tensor before = model.weights()[0]->value.copy();
  const Tensor bad = tensor({1, 2, std::nan(""), 4});
  expect_error([&] { model.fit(x, bad, {.epochs = 1, .batch_size = 4, .verbose = 0}); },
               {"the loss became nan"});
  EXPECT_TRUE(allclose(model.weights()[0]->value, before, 0, 0));
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

TEST(Compile, OpWithoutLoweringIsRefused) {
  for (const OpDef* op : registered_ops())
    EXPECT_NE(op->lowering, nullptr) << op->name << " has no lowering";
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

// Identical kernels are emitted once: a recurrent step's kernels are the same functions whatever
// the sequence length (its list of calls is re-rolled where the buffers move by a fixed stride).
TEST(Compile, KernelsDoNotGrowWithSequenceLength) {
  auto stats = [](int64_t timesteps) {
    manual_seed(1);
    Sequential model{LSTM(8).input_shape({timesteps, 3}), Dense(1)};
    model.compile("adam", "mse");
    Generator gen(1);
    const Graph graph =
        model.capture_step(StepKind::train, randn({4, timesteps, 3}, {}, gen), randn({4}, {}, gen));
    const CompiledStep step = compile(graph);
    return std::pair{step.stats(), step.module().ir_before().size()};
  };
  const auto [short_stats, short_ir] = stats(50);
  const auto [long_stats, long_ir] = stats(400);
  // Within the 1.2x (per-step kernels would make it 8x).
  EXPECT_LE(long_stats.distinct_kernels * 5, short_stats.distinct_kernels * 6);
  EXPECT_GT(long_stats.rolled_calls, long_stats.kernel_calls / 2);
  RecordProperty("ir_bytes_t50", std::to_string(short_ir));
  RecordProperty("ir_bytes_t400", std::to_string(long_ir));
}

}  // namespace
}  // namespace weft

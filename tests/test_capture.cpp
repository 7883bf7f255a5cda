// Capture of a whole step (forward, backward, update) into a graph, and the graph's reference
// interpreter.
#include <gtest/gtest.h>

#include "test_support.h"
#include "weft/compiler/graph.h"
#include "weft/weft.h"

namespace weft {
namespace {

using testing_support::expect_error;

// One SGD step on sum(tanh(x W)): the shape of every training step weft compiles.
std::vector<std::pair<std::string, Tensor>> sgd_step(const Tensor& x, Tensor& w) {
  const Tensor loss = tanh(matmul(x, w)).sum();
  const Tensor g = grad({loss}, {w})[0];
  NoGrad no_grad;
  w.assign_(w - g * 0.1);
  return {{"loss", loss}};
}

TEST(Capture, RecordsForwardBackwardAndUpdate) {
  Generator gen(1);
  const Tensor x = randn({3, 4}, {}, gen);
  Tensor w = randn({4, 2}, {.requires_grad = true}, gen);
  const Tensor w_before = w.copy();
  const Graph graph = capture({{"x", x}, {"w", w}}, [&] { return sgd_step(x, w); });

  ASSERT_EQ(graph.outputs.size(), 1u);
  ASSERT_EQ(graph.stores.size(), 1u);
  EXPECT_EQ(graph.node(graph.stores[0].input).name, "w");
  const std::string text = graph.to_text();
  for (const char* op : {"matmul", "tanh", "sum", "permute", "sub"})
    EXPECT_NE(text.find(op), std::string::npos) << op << " missing from\n" << text;
  EXPECT_NE(graph.to_dot().find("digraph"), std::string::npos);

  // Replaying the graph from the old weights reproduces the eager step exactly.
  const Tensor w_after_eager = w.copy();
  const Tensor w_replay = w_before.copy();
  const std::vector<Tensor> outputs = evaluate(graph, {x, w_replay});
  EXPECT_TRUE(allclose(w_replay, w_after_eager, 0, 0));
  EXPECT_EQ(outputs.size(), 1u);
}

TEST(Capture, MetaModeRecordsTheSameStepWithoutComputingIt) {
  Generator gen(1);
  const Tensor x = randn({3, 4}, {}, gen);
  Tensor w = randn({4, 2}, {.requires_grad = true}, gen);
  const Tensor w_before = w.copy();
  Tensor loss;
  const Graph meta = capture(
      {{"x", x}, {"w", w}},
      [&] {
        std::vector<std::pair<std::string, Tensor>> outputs = sgd_step(x, w);
        loss = outputs[0].second;
        return outputs;
      },
      CaptureMode::meta);

  // The results have a shape and no data; the update was recorded, not made.
  EXPECT_TRUE(loss.is_meta());
  EXPECT_EQ(loss.impl()->storage->bytes(), 0u);
  EXPECT_EQ(loss.shape(), Shape{});
  expect_error([&] { loss.item(); }, {"computed by 'sum'", "computes no values"});
  EXPECT_TRUE(allclose(w, w_before, 0, 0));
  // The graph is the one an eager capture records, and replays to the eager step.
  const Graph eager = capture({{"x", x}, {"w", w}}, [&] { return sgd_step(x, w); });
  EXPECT_EQ(meta.to_text(), eager.to_text());
  const Tensor w_replay = w_before.copy();
  evaluate(meta, {x, w_replay});
  EXPECT_TRUE(allclose(w_replay, w, 0, 0));
}

TEST(Capture, SliceGradientsAreRecordedNotAccumulatedInPlace) {
  // Eager backward adds slice gradients into a buffer in place; a captured backward must record
  // ops instead, or the buffer would be frozen as a constant holding this run's values.
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor w = tensor({0.5, -1}, {2}, {.requires_grad = true});
  auto step = [&] {
    const Tensor y = x * w;
    // Squares: the gradient reaching each slice depends on the data.
    const Tensor loss =
        (square(slice(y, 0, 0, 1)) * 2.0 + square(slice(y, 0, 1, 2)) + slice(y, 0, 2, 3)).sum();
    return std::vector<std::pair<std::string, Tensor>>{{"grad", grad({loss}, {w})[0]}};
  };
  const Graph graph = capture({{"x", x}, {"w", w}}, step);
  // Replayed on other data, the graph must agree with a fresh eager step on that data.
  x = tensor({2, 1, 0, 3, 1, 1}, {3, 2});
  const Tensor eager = step()[0].second;
  EXPECT_EQ(eager.to_vector<float>(),
            (std::vector<float>{4 * 4 * 0.5f + 0 + 1, 4 * 1 * -1.0f + 2 * 9 * -1.0f + 1}));
  EXPECT_TRUE(allclose(evaluate(graph, {x, w})[0], eager, 0, 0));
}

TEST(Capture, RefusesToFreezeATensorFromOutsideTheStep) {
  const Tensor x = ones({2, 2});
  const Tensor outside = ones({2, 2});
  try {
    capture({{"x", x}}, [&] {
      return std::vector<std::pair<std::string, Tensor>>{{"y", x * outside}};
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'mul' reads a float32 (2, 2) tensor that existed before"),
              std::string::npos)
        << e.what();
  }
}

TEST(Capture, ConstantsMadeInsideTheStepAreKept) {
  const Tensor x = tensor({1, 2, 3});
  const Graph graph = capture({{"x", x}}, [&] {
    return std::vector<std::pair<std::string, Tensor>>{{"y", x * 2.0 + 1.0}};
  });
  const Tensor y = evaluate(graph, {tensor({4, 5, 6})})[0];
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{9, 11, 13}));
}

TEST(Capture, EvaluateChecksInputs) {
  const Tensor x = tensor({1, 2, 3});
  const Graph graph = capture({{"x", x}}, [&] {
    return std::vector<std::pair<std::string, Tensor>>{{"y", exp(x)}};
  });
  EXPECT_THROW(evaluate(graph, {tensor({1, 2})}), Error);
  EXPECT_THROW(evaluate(graph, {}), Error);
}

}  // namespace
}  // namespace weft

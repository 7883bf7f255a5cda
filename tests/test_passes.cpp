// The optimisation passes: each one fires where it should and keeps the step's values; whole
// captured training steps keep their outputs and stores through optimize().
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <set>

#include "weft/compiler/analysis.h"
#include "weft/compiler/graph.h"
#include "weft/compiler/passes.h"
#include "weft/ops/definitions.h"
#include "weft/weft.h"

namespace weft {
namespace {

using Named = std::vector<std::pair<std::string, Tensor>>;

const Pass& pass_named(std::string_view name) {
  for (const Pass& pass : pipeline())
    if (pass.name == name) return pass;
  throw Error("no pass named '{}'", name);
}

// How many nodes run `op`; "constant" counts constants and "ops" every op.
int count(const Graph& graph, std::string_view op) {
  return static_cast<int>(
      std::count_if(graph.nodes().begin(), graph.nodes().end(), [&](const GraphNode& node) {
        if (node.kind == GraphNode::Kind::constant) return op == "constant";
        return node.kind == GraphNode::Kind::op && (op == "ops" || node.op->name == op);
      }));
}

std::vector<Tensor> copies(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> result;
  for (const Tensor& t : tensors) result.push_back(t.copy());
  return result;
}

// Both graphs on copies of `inputs`: the same outputs, and the same values stored.
void expect_same_values(const Graph& original, const Graph& optimized,
                        const std::vector<Tensor>& inputs) {
  std::vector<Tensor> want_inputs = copies(inputs), got_inputs = copies(inputs);
  const std::vector<Tensor> want = evaluate(original, want_inputs);
  const std::vector<Tensor> got = evaluate(optimized, got_inputs);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(allclose(got[i], want[i], 1e-6, 1e-6))
        << "output " << original.outputs[i].name << ": " << got[i].to_string() << " vs "
        << want[i].to_string();
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_TRUE(allclose(got_inputs[i], want_inputs[i], 1e-6, 1e-6))
        << "input " << original.node(original.input_ids()[i]).name << " after the stores";
}

struct PassCase {
  const char* name;
  std::vector<std::string_view> passes;              // run in this order
  Tensor (*step)(const Tensor& x, const Tensor& y);  // x, y: float32 (2, 3)
  const char* counted;                               // an op name, "constant" or "ops"
  int before, after;
};

const std::vector<PassCase> pass_cases = {
    {"fold_constant_math",
     {"fold", "dce"},
     [](const Tensor& x, const Tensor&) {
       return x + exp(zeros({2, 3}) * 2.0);
     },
     "ops",
     3,
     1},
    {"fold_keeps_big_results",
     {"fold", "dce"},
     [](const Tensor& x, const Tensor&) {
       return x + sum(exp(zeros({2, 3, 2000})), {2});
     },
     "exp",
     1,
     1},
    {"fold_keeps_dropout_masks",
     {"fold", "dce"},
     [](const Tensor& x, const Tensor&) {
       return x * dropout_mask({2, 3}, DType::f32, 0.5);
     },
     "dropout_mask",
     1,
     1},
    {"add_zero",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return (0.0 + x) + zeros({2, 3});
     },
     "add",
     2,
     0},
    {"sub_zero",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) { return x - 0.0; },
     "sub",
     1,
     0},
    {"mul_one",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return 1.0 * x * ones({2, 3});
     },
     "mul",
     2,
     0},
    {"div_one",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) { return x / 1.0; },
     "div",
     1,
     0},
    {"identity_that_broadcasts_stays",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return x + zeros({4, 2, 3});
     },
     "add",
     1,
     1},
    {"zero_minus_x_stays",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) { return 0.0 - x; },
     "sub",
     1,
     1},
    {"no_op_shape_ops",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return cast(slice(expand(permute(reshape(x, {2, 3}), {0, 1}), {2, 3}), 1, 0, 3), DType::f32);
     },
     "ops",
     5,
     0},
    {"reshape_of_reshape",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return reshape(reshape(x, {6}), {3, 2});
     },
     "reshape",
     2,
     1},
    {"reshape_back",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return reshape(reshape(x, {3, 2}), {2, 3});
     },
     "reshape",
     2,
     0},
    {"permute_of_permute",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return permute(permute(reshape(x, {1, 2, 3}), {1, 2, 0}), {1, 0, 2});
     },
     "permute",
     2,
     1},
    {"permute_back",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) {
       return permute(permute(x, {1, 0}), {1, 0});
     },
     "permute",
     2,
     0},
    {"neg_neg",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor&) { return -(-x); },
     "neg",
     2,
     0},
    {"slice_is_a_part",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return slice(concat({x, y}, 1), 1, 3, 6);
     },
     "ops",
     2,
     0},
    {"slice_inside_a_part",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return slice(concat({x, y}, 1), 1, 4, 6);
     },
     "concat",
     1,
     0},
    {"slice_across_parts_stays",
     {"simplify", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return slice(concat({x, y}, 1), 1, 2, 4);
     },
     "concat",
     1,
     1},
    {"join_two_padded",
     {"join", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return concat({x, zeros({2, 3})}, 1) + concat({zeros({2, 3}), y}, 1);
     },
     "add",
     1,
     0},
    {"join_uneven_parts",
     {"join", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return concat({zeros({2, 2}), x, zeros({2, 1})}, 1) +
              concat({slice(y, 1, 0, 2), zeros({2, 4})}, 1);
     },
     "add",
     1,
     0},
    {"join_chain",
     {"join", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return concat({x, zeros({2, 6})}, 1) + concat({zeros({2, 3}), y, zeros({2, 3})}, 1) +
              concat({zeros({2, 6}), x * y}, 1);
     },
     "add",
     2,
     0},
    {"join_around_a_dense_term",
     {"join", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return exp(concat({y, y}, 1)) + concat({x, zeros({2, 3})}, 1) +
              concat({zeros({2, 3}), y}, 1);
     },
     "add",
     2,
     1},
    {"join_overlapping_stays",
     {"join", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return concat({x, zeros({2, 3})}, 1) + concat({y, zeros({2, 3})}, 1);
     },
     "add",
     1,
     1},
    {"hoist_rows_of_one_weight",
     {"hoist", "dce"},
     [](const Tensor& x, const Tensor& y) {
       const Tensor w = transpose(y);
       const Tensor h = tanh(matmul(slice(x, 0, 0, 1), w));
       return tanh(matmul(slice(x, 0, 1, 2), w) + h);
     },
     "matmul",
     2,
     1},
    {"hoist_one_step_stays",
     {"hoist", "dce"},
     [](const Tensor& x, const Tensor& y) { return matmul(slice(x, 0, 1, 2), transpose(y)); },
     "matmul",
     1,
     1},
    {"hoist_contracted_axis_stays",
     {"hoist", "dce"},
     [](const Tensor& x, const Tensor& y) {
       const Tensor w = slice(y, 1, 0, 1);
       return matmul(slice(x, 1, 0, 1), slice(w, 0, 0, 1)) +
              matmul(slice(x, 1, 1, 2), slice(w, 0, 1, 2));
     },
     "matmul",
     2,
     2},
    {"cse_ops",
     {"cse", "dce"},
     [](const Tensor& x, const Tensor&) { return exp(x) + exp(x); },
     "exp",
     2,
     1},
    {"cse_constants",
     {"cse", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return x * tensor({2, 2, 2}) + y * tensor({2, 2, 2});
     },
     "constant",
     2,
     1},
    {"cse_other_attrs_stay",
     {"cse", "dce"},
     [](const Tensor& x, const Tensor&) { return slice(x, 1, 0, 1) + slice(x, 1, 1, 2); },
     "slice",
     2,
     2},
    {"merge_transposed_products",
     {"merge", "dce"},
     [](const Tensor& x, const Tensor& y) {
       const auto t = [](const Tensor& m) { return permute(m, {1, 0}); };
       return matmul(t(x), y) + matmul(t(y), x) + matmul(t(x * 2.0), y);
     },
     "matmul",
     3,
     1},
    {"merge_products_keeps_other_terms",
     {"merge", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return matmul(x, permute(y, {1, 0})) + exp(x * y).sum() + matmul(y, permute(x, {1, 0}));
     },
     "matmul",
     2,
     1},
    {"merge_leaves_a_lone_product",
     {"merge", "dce"},
     [](const Tensor& x, const Tensor& y) {
       return matmul(x, permute(y, {1, 0})) + ones({2, 2});
     },
     "matmul",
     1,
     1},
    {"split_sliced_product",
     {"split", "dce"},
     [](const Tensor& x, const Tensor& y) {
       const Tensor product = x * y;
       return concat({tanh(slice(product, 1, 0, 2)), sigmoid(slice(product, 1, 2, 3))}, 1);
     },
     "mul",
     1,
     2},
    {"split_keeps_a_broadcast_operand",
     {"split", "dce"},
     [](const Tensor& x, const Tensor&) {
       const Tensor biased = x + tensor({1, 2, 3});
       return exp(slice(biased, 0, 0, 1)) * slice(biased, 0, 1, 2);
     },
     "add",
     1,
     2},
    {"split_leaves_a_value_also_read_whole",
     {"split", "dce"},
     [](const Tensor& x, const Tensor& y) {
       const Tensor product = x * y;
       return exp(slice(product, 1, 0, 1)).sum() + product.sum();
     },
     "mul",
     1,
     1},
    {"split_leaves_overlapping_slices",
     {"split", "dce"},
     [](const Tensor& x, const Tensor&) {
       const Tensor e = exp(x);
       return slice(e, 1, 0, 2) * slice(e, 1, 1, 3);
     },
     "exp",
     1,
     1},
    {"dce_unused",
     {"dce"},
     [](const Tensor& x, const Tensor& y) {
       exp(y);
       return x * 2.0;
     },
     "exp",
     1,
     0},
    {"dce_keeps_stores",
     {"dce"},
     [](const Tensor& x, const Tensor& y) {
       y.assign_(exp(x));
       return x * 2.0;
     },
     "exp",
     1,
     1},
};

TEST(Passes, EachPassFiresWhereItShouldAndKeepsTheValues) {
  for (const PassCase& c : pass_cases) {
    SCOPED_TRACE(c.name);
    Generator gen(7);
    const std::vector<Tensor> inputs = {randn({2, 3}, {}, gen), randn({2, 3}, {}, gen)};
    const std::vector<Tensor> captured = copies(inputs);  // a step with stores changes them
    const Graph graph = capture({{"x", captured[0]}, {"y", captured[1]}}, [&]() -> Named {
      return {{"out", c.step(captured[0], captured[1])}};
    });
    Graph optimized = graph;
    for (std::string_view name : c.passes) optimized = pass_named(name).run(optimized);
    EXPECT_EQ(count(graph, c.counted), c.before) << graph.to_text();
    EXPECT_EQ(count(optimized, c.counted), c.after) << optimized.to_text();
    EXPECT_EQ(optimized.input_ids().size(), 2u);
    expect_same_values(graph, optimized, inputs);
    expect_same_values(graph, optimize(graph), inputs);
  }
}

// dce renumbers what it keeps: an input after a removed node moves down, and the store into it
// with it (a graph built by hand: capture adds its inputs first).
TEST(Passes, DeadCodeRenumbersAStoredInput) {
  const TensorSpec spec{{2, 3}, DType::f32};
  Graph graph;
  const int x = graph.add_input("x", spec);
  graph.add_op(exp_op, {}, {x}, spec);  // read by nothing
  const int y = graph.add_input("y", spec);
  const int sum = graph.add_op(add_op, {}, {x, y}, spec);
  graph.outputs.push_back({"out", sum});
  graph.stores.push_back({.input = y, .value = sum});
  const Graph optimized = pass_named("dce").run(graph);
  EXPECT_EQ(count(optimized, "exp"), 0) << optimized.to_text();
  ASSERT_EQ(optimized.stores.size(), 1u);
  EXPECT_EQ(optimized.stores[0].input, optimized.input_id("y")) << optimized.to_text();
  Generator gen(3);
  expect_same_values(graph, optimized, {randn({2, 3}, {}, gen), randn({2, 3}, {}, gen)});
}

TEST(Passes, PipelineNamesAreUniqueAndDescribed) {
  std::set<std::string_view> names;
  for (const Pass& pass : pipeline()) {
    EXPECT_FALSE(pass.name.empty());
    EXPECT_FALSE(pass.summary.empty()) << pass.name;
    EXPECT_NE(pass.run, nullptr) << pass.name;
    EXPECT_TRUE(names.insert(pass.name).second) << pass.name << " twice";
  }
  // Simplification, joins and CSE leave dead nodes behind for DCE.
  const auto position = [&](std::string_view name) {
    return std::find_if(pipeline().begin(), pipeline().end(),
                        [&](const Pass& pass) { return pass.name == name; }) -
           pipeline().begin();
  };
  EXPECT_LT(position("simplify"), position("dce"));
  EXPECT_LT(position("join"), position("dce"));
  EXPECT_LT(position("cse"), position("dce"));
}

TEST(Passes, OptimizeShowsEachPassInOrder) {
  const Tensor x = tensor({1, 2, 3});
  const Graph graph = capture({{"x", x}}, [&]() -> Named {
    return {{"y", exp(x) + exp(x) + 0.0}};
  });
  std::vector<std::string_view> seen;
  const Graph optimized = optimize(graph, [&](const Pass& pass, const Graph& after) {
    seen.push_back(pass.name);
    EXPECT_EQ(after.outputs.size(), 1u);
  });
  std::vector<std::string_view> names;
  for (const Pass& pass : pipeline()) names.push_back(pass.name);
  EXPECT_EQ(seen, names);
  EXPECT_EQ(optimized.to_text(),
            "%0 = input \"x\" : float32 (3,)\n%1 = exp(%0) : float32 (3,)\n"
            "%2 = add(%1, %1) : float32 (3,)\noutput \"y\" = %2\n");
}

TEST(Passes, UnusedInputsStayInOrder) {
  const Tensor a = tensor({1}), b = tensor({2}), c = tensor({3});
  const Graph graph = capture({{"a", a}, {"b", b}, {"c", c}}, [&]() -> Named {
    return {{"y", c * 2.0}};
  });
  const Graph optimized = optimize(graph);
  std::vector<std::string> names;
  for (int id : optimized.input_ids()) names.push_back(optimized.node(id).name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Passes, AnalysisOrdersAndFindsWhatIsNeeded) {
  const Tensor x = tensor({1, 2}), y = tensor({3, 4});
  const Graph graph = capture({{"x", x}, {"y", y}}, [&]() -> Named {
    exp(y);
    return {{"z", tanh(x) * x}};
  });
  // %0 x, %1 y, %2 exp(y), %3 tanh(x), %4 mul
  EXPECT_EQ(needed(graph), (std::vector<bool>{true, false, false, true, true}));
  // Ids are a topological order: the passes and the planner rely on it.
  for (size_t id = 0; id < graph.nodes().size(); ++id)
    for (int input : graph.nodes()[id].inputs) EXPECT_LT(input, static_cast<int>(id));
}

// ---- whole captured steps -----------------------------------------------------------------

constexpr int64_t batch = 3, features = 2;

// Forward, mean squared error, gradients of every weight, and an SGD update stored back.
Graph training_step(Sequential& model, const Tensor& x, const Tensor& y) {
  Named inputs = {{"x", x}, {"y", y}};
  std::vector<Tensor> weights;
  for (Weight* w : model.weights()) {
    weights.push_back(w->value);
    inputs.push_back({fmt::format("w{}", weights.size()), w->value});
  }
  return capture(inputs, [&]() -> Named {
    const Tensor loss = mean(square(model.call(x, true) - y));
    const std::vector<Tensor> grads = grad({loss}, weights);
    NoGrad no_grad;
    for (size_t i = 0; i < weights.size(); ++i) weights[i].assign_(weights[i] - grads[i] * 0.1);
    return {{"loss", loss}};
  });
}

TEST(Passes, OptimizedTrainingStepsKeepOutputsAndStores) {
  const std::vector<std::pair<std::string, std::function<Sequential()>>> models = {
      {"dense_lstm",
       [] {
         return Sequential{Dense(4).input_shape({5, features}), LSTM(6), Dense(1)};
       }},
      {"gru",
       [] {
         return Sequential{GRU(5).input_shape({5, features}), Dense(1)};
       }},
  };
  for (const auto& [name, make] : models) {
    SCOPED_TRACE(name);
    Sequential model = make();
    model.build({5, features});
    Generator gen(3);
    const Tensor x = randn({batch, 5, features}, {}, gen), y = randn({batch, 1}, {}, gen);
    std::vector<Tensor> inputs = {x, y};
    for (Weight* w : model.weights()) inputs.push_back(w->value.copy());
    const Graph graph = training_step(model, x, y);
    const Graph optimized = optimize(graph);
    EXPECT_EQ(optimized.stores.size(), graph.stores.size());
    EXPECT_LT(count(optimized, "matmul"), count(graph, "matmul"));  // hoist and merge fired
    expect_same_values(graph, optimized, inputs);
  }
}

// A recurrence written one step at a time, trained: the input projections of its steps become
// one GEMM, forward; the step's gradients stay the same.
TEST(Passes, HandWrittenRecurrenceGetsOneInputProjection) {
  constexpr int64_t steps = 6;
  Generator gen(5);
  const Tensor x = randn({batch, steps, features}, {}, gen);
  const Tensor w = randn({features, 4}, {}, gen), u = randn({4, 4}, {}, gen);
  const Graph graph = capture({{"x", x}, {"w", w}, {"u", u}}, [&]() -> Named {
    const Tensor kernel = w.detach().requires_grad_(), recurrent = u.detach().requires_grad_();
    Tensor h = zeros({batch, 4});
    for (int64_t t = 0; t < steps; ++t) {
      const Tensor x_t = reshape(slice(x, 1, t, t + 1), {batch, features});
      h = tanh(matmul(x_t, kernel) + matmul(h, recurrent));
    }
    const Tensor loss = sum(h * h);
    loss.backward();
    return {{"loss", loss}, {"dw", kernel.grad()}, {"du", recurrent.grad()}};
  });
  auto projections = [](const Graph& g) {
    return std::count_if(g.nodes().begin(), g.nodes().end(), [&](const GraphNode& node) {
      return node.kind == GraphNode::Kind::op && node.op->name == "matmul" &&
             g.node(node.inputs[1]).kind == GraphNode::Kind::input &&
             g.node(node.inputs[1]).name == "w";
    });
  };
  const Graph hoisted = pass_named("hoist").run(graph);
  EXPECT_EQ(projections(graph), steps);
  EXPECT_EQ(projections(hoisted), 1) << hoisted.to_text();
  expect_same_values(graph, hoisted, {x, w, u});
  expect_same_values(graph, optimize(graph), {x, w, u});
}

// Elements computed by add nodes.
int64_t add_elements(const Graph& graph) {
  int64_t total = 0;
  for (const GraphNode& node : graph.nodes())
    if (node.kind == GraphNode::Kind::op && node.op->name == "add")
      total += shape_numel(node.spec.shape);
  return total;
}

struct LstmStep {
  Graph graph;
  std::vector<Tensor> inputs;
};

// d sum(LSTM(8)(x)) / d weights over `steps` time steps.
LstmStep lstm_gradient_step(int64_t steps) {
  LSTM lstm(8);
  Generator gen(5);
  lstm.build_for({steps, features}, gen);
  const Tensor x = randn({batch, steps, features}, {}, gen);
  Named inputs = {{"x", x}};
  std::vector<Tensor> weights, values = {x};
  for (Weight* w : lstm.weights()) {
    weights.push_back(w->value);
    values.push_back(w->value);
    inputs.push_back({w->name, w->value});
  }
  Graph graph = capture(inputs, [&]() -> Named {
    CallContext context{.training = true};
    const std::vector<Tensor> grads = grad({lstm.call(x, context).sum()}, weights);
    Named outputs;
    for (size_t i = 0; i < grads.size(); ++i)
      outputs.push_back({lstm.weights()[i]->name, grads[i]});
    return outputs;
  });
  return {std::move(graph), values};
}

TEST(Passes, SliceGradientsOfAnLstmAreLinearWork) {
  std::vector<int64_t> before, after;
  for (int64_t steps : {10, 20}) {
    const LstmStep step = lstm_gradient_step(steps);
    const Graph optimized = optimize(step.graph);
    for (const GraphNode& node : optimized.nodes()) {
      if (node.kind != GraphNode::Kind::op || node.op != &add_op) continue;
      EXPECT_FALSE(optimized.node(node.inputs[0]).op == &concat_op &&
                   optimized.node(node.inputs[1]).op == &concat_op)
          << "an add of two concats is left";
    }
    expect_same_values(step.graph, optimized, step.inputs);
    before.push_back(add_elements(step.graph));
    after.push_back(add_elements(optimized));
    std::cout << "LSTM(8), T=" << steps << ": elements computed by add nodes " << before.back()
              << " -> " << after.back() << "\n";
  }
  // Twice the steps, about twice the work: the tape places the gradients of the T slices of one
  // tensor into one concat, and join joins the adds of any zero-padded ones a graph still has
  // (join_* in pass_cases), rather than T adds of whole tensors.
  EXPECT_LT(before[1], 2.2 * before[0]);
  EXPECT_LT(after[1], 2.2 * after[0]);
}

// The recurrent kernel's gradient, one product per time step, is one GEMM over all of them, and
// the gradients of the gates stack once for it and the input kernel's gradient.
TEST(Passes, RecurrentWeightGradientIsOneGemm) {
  std::vector<int64_t> matmuls, stacks;
  for (int64_t steps : {10, 20}) {
    const LstmStep step = lstm_gradient_step(steps);
    const Graph optimized = optimize(step.graph);
    matmuls.push_back(count(optimized, "matmul"));
    stacks.push_back(std::count_if(
        optimized.nodes().begin(), optimized.nodes().end(), [&](const GraphNode& node) {
          return node.kind == GraphNode::Kind::op && node.op == &concat_op &&
                 node.inputs.size() == static_cast<size_t>(steps) &&
                 node.spec.shape.back() == 4 * 8;  // the gates of LSTM(8)
        }));
    expect_same_values(step.graph, optimized, step.inputs);
  }
  // One per step forward, and for the gradient of each step's incoming state but the first (a
  // constant); then the input projection, the input kernel's gradient and the recurrent
  // kernel's, once each.
  EXPECT_EQ(matmuls[0], 10 + 9 + 3);
  EXPECT_EQ(matmuls[1], 20 + 19 + 3);
  EXPECT_EQ(stacks, (std::vector<int64_t>{1, 1}));
}

// An embedding's batch-major output turned time-major: the gather reads its ids in time order and
// writes the time-major rows itself, so no permuted copy of the embedded values is left. Each
// direction of a Bidirectional layer permutes the embedding on its own (cse merges them later).
// A gather that something else reads as well keeps its values and is permuted as before.
TEST(Passes, PermutedGatherGathersByPermutedIds) {
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor& embedded)> readers;
    bool values_permuted;  // after the pass
    int64_t gathers;       // after the pass (before cse merges equal ones)
  };
  const auto time_major = [](const Tensor& embedded) { return permute(embedded, {1, 0, 2}); };
  const std::vector<Case> cases = {
      {"one permute", time_major, false, 1},
      {"two equal permutes",
       [&](const Tensor& embedded) { return time_major(embedded) * time_major(embedded); }, false,
       2},
      {"a permute and a direct reader",
       [&](const Tensor& embedded) { return time_major(embedded) + embedded.sum(); }, true, 1},
  };
  Generator gen(3);
  const Tensor table = randn({7, 4}, {}, gen);
  const Tensor ids = from_vector(std::vector<int64_t>{1, 6, 0, 3, 3, 5}, {2, 3});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Graph graph = capture({{"table", table}, {"ids", ids}}, [&]() -> Named {
      const Tensor out = c.readers(gather(table, 0, ids));
      return {{"out", out}, {"sum", out.sum()}};
    });
    const Graph optimized = pass_named("dce").run(pass_named("gather").run(graph));
    for (const GraphNode& node : optimized.nodes()) {
      if (node.kind != GraphNode::Kind::op) continue;
      if (node.op == &gather_op) {
        // Time-major rows where the pass applied, the embedding's batch-major ones where not.
        EXPECT_EQ(node.spec.shape, c.values_permuted ? (Shape{2, 3, 4}) : (Shape{3, 2, 4}));
      }
      if (node.op == &permute_op) {
        EXPECT_EQ(node.spec.dtype == DType::f32, c.values_permuted)
            << "the embedded values are permuted";
      }
    }
    EXPECT_EQ(count(optimized, "gather"), c.gathers);
    expect_same_values(graph, optimized, {table, ids});
    expect_same_values(graph, optimize(graph), {table, ids});
  }
}

}  // namespace
}  // namespace weft

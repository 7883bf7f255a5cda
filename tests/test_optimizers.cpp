// Optimizers: a few steps on a quadratic against the same update rules written as plain C++
// loops over doubles, plus the bookkeeping (skipped weights, step count) and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "test_support.h"
#include "weft/models/optimizers.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

using testing_support::expect_error;
using Values = std::vector<double>;

// f(w) = Σ a_i w_i² / 2 - b_i w_i, so the gradient is a ⊙ w − b.
const Values kA{1.0, 4.0, 0.5, 2.0};
const Values kB{0.5, -1.0, 2.0, 0.0};
const Values kStart{1.0, -2.0, 0.5, 3.0};

Values gradient(const Values& w) {
  Values g(w.size());
  for (size_t i = 0; i < w.size(); ++i) g[i] = kA[i] * w[i] - kB[i];
  return g;
}

// Runs `steps` updates through OptimizerState, the gradient coming from the tape.
std::vector<Values> run(const Optimizer& optimizer, int steps) {
  Weight weight{"w", tensor(kStart, {4}, {.dtype = DType::f64, .requires_grad = true})};
  OptimizerState state(optimizer, {&weight});
  const Tensor a = tensor(kA, {4}, {.dtype = DType::f64});
  const Tensor b = tensor(kB, {4}, {.dtype = DType::f64});
  std::vector<Values> trajectory;
  for (int t = 0; t < steps; ++t) {
    const Tensor& w = weight.value;
    (sum(a * w * w) * 0.5 - sum(b * w)).backward();
    state.step();
    state.zero_grad();
    trajectory.push_back(w.to_vector<double>());
  }
  EXPECT_EQ(state.iterations(), steps);
  return trajectory;
}

void expect_same(const std::vector<Values>& actual, const std::vector<Values>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t t = 0; t < actual.size(); ++t)
    for (size_t i = 0; i < actual[t].size(); ++i)
      EXPECT_NEAR(actual[t][i], expected[t][i], 1e-12) << "step " << t + 1 << ", element " << i;
}

constexpr int kSteps = 6;

std::vector<Values> reference_adam(const Adam& o) {
  Values w = kStart, m(4, 0), v(4, 0);
  std::vector<Values> trajectory;
  for (int t = 1; t <= kSteps; ++t) {
    const Values g = gradient(w);
    const double lr_t =
        o.learning_rate * std::sqrt(1 - std::pow(o.beta_2, t)) / (1 - std::pow(o.beta_1, t));
    for (size_t i = 0; i < w.size(); ++i) {
      m[i] = o.beta_1 * m[i] + (1 - o.beta_1) * g[i];
      v[i] = o.beta_2 * v[i] + (1 - o.beta_2) * g[i] * g[i];
      w[i] -= lr_t * m[i] / (std::sqrt(v[i]) + o.epsilon);
    }
    trajectory.push_back(w);
  }
  return trajectory;
}

std::vector<Values> reference_sgd(const SGD& o) {
  Values w = kStart, velocity(4, 0);
  std::vector<Values> trajectory;
  for (int t = 1; t <= kSteps; ++t) {
    const Values g = gradient(w);
    for (size_t i = 0; i < w.size(); ++i) {
      velocity[i] = o.momentum * velocity[i] - o.learning_rate * g[i];
      w[i] += o.nesterov ? o.momentum * velocity[i] - o.learning_rate * g[i] : velocity[i];
    }
    trajectory.push_back(w);
  }
  return trajectory;
}

std::vector<Values> reference_rmsprop(const RMSprop& o) {
  Values w = kStart, mean_square(4, 0), velocity(4, 0);
  std::vector<Values> trajectory;
  for (int t = 1; t <= kSteps; ++t) {
    const Values g = gradient(w);
    for (size_t i = 0; i < w.size(); ++i) {
      mean_square[i] = o.rho * mean_square[i] + (1 - o.rho) * g[i] * g[i];
      const double increment = o.learning_rate * g[i] / std::sqrt(mean_square[i] + o.epsilon);
      velocity[i] = o.momentum * velocity[i] + increment;
      w[i] -= velocity[i];
    }
    trajectory.push_back(w);
  }
  return trajectory;
}

TEST(Optimizers, AdamFollowsKerasUpdate) {
  expect_same(run(Adam{}, kSteps), reference_adam(Adam{}));
  const Adam tuned{.learning_rate = 0.1, .beta_1 = 0.5, .beta_2 = 0.9, .epsilon = 1e-3};
  expect_same(run(tuned, kSteps), reference_adam(tuned));
}

TEST(Optimizers, SgdFollowsKerasUpdate) {
  for (const SGD& o : {SGD{}, SGD{.learning_rate = 0.1, .momentum = 0.9},
                       SGD{.learning_rate = 0.1, .momentum = 0.9, .nesterov = true}}) {
    SCOPED_TRACE(fmt::format("momentum {} nesterov {}", o.momentum, o.nesterov));
    expect_same(run(o, kSteps), reference_sgd(o));
  }
}

TEST(Optimizers, RmspropFollowsKerasUpdate) {
  for (const RMSprop& o :
       {RMSprop{}, RMSprop{.learning_rate = 0.05, .rho = 0.8, .momentum = 0.5}}) {
    SCOPED_TRACE(fmt::format("momentum {}", o.momentum));
    expect_same(run(o, kSteps), reference_rmsprop(o));
  }
}

TEST(Optimizers, Float32WeightsStayFloat32) {
  Weight weight{"w", tensor({1, 2}, {2}, {.requires_grad = true})};
  OptimizerState state(Adam{.learning_rate = 0.5}, {&weight});
  (weight.value * weight.value).sum().backward();
  state.step();
  EXPECT_EQ(weight.value.dtype(), DType::f32);
  // The first Adam step moves every weight by about the learning rate.
  EXPECT_NEAR(weight.value.to_vector<double>()[0], 0.5, 1e-5);
  EXPECT_NEAR(weight.value.to_vector<double>()[1], 1.5, 1e-5);
}

TEST(Optimizers, WeightsWithoutGradientOrFrozenAreLeftAlone) {
  Weight used{"used", tensor({1.0}, {1}, {.dtype = DType::f64, .requires_grad = true})};
  Weight unused{"unused", tensor({1.0}, {1}, {.dtype = DType::f64, .requires_grad = true})};
  Weight frozen{"frozen", tensor({1.0}, {1}, {.dtype = DType::f64, .requires_grad = true}), false};
  OptimizerState state(SGD{.learning_rate = 0.5}, {&used, &unused, &frozen});
  (used.value * 2.0 + frozen.value).sum().backward();
  state.step();
  EXPECT_EQ(used.value.item(), 0.0);
  EXPECT_EQ(unused.value.item(), 1.0);
  EXPECT_EQ(frozen.value.item(), 1.0);
  state.zero_grad();
  EXPECT_FALSE(used.value.grad().defined());
}

TEST(Optimizers, TheUpdateIsNotRecorded) {
  Weight weight{"w", tensor({1.0, 2.0}, {2}, {.requires_grad = true})};
  OptimizerState state(RMSprop{}, {&weight});
  (weight.value * weight.value).sum().backward();
  state.step();
  EXPECT_TRUE(weight.value.is_leaf());
  EXPECT_EQ(weight.value.grad_fn(), nullptr);
}

TEST(Optimizers, ByNameAndBadHyperparameters) {
  EXPECT_TRUE(std::holds_alternative<Adam>(optimizer_by_name("adam")));
  EXPECT_TRUE(std::holds_alternative<SGD>(optimizer_by_name("sgd")));
  EXPECT_EQ(std::get<RMSprop>(optimizer_by_name("rmsprop")).rho, 0.9);
  expect_error([] { optimizer_by_name("adagrad"); },
               {"unknown optimizer \"adagrad\"", "adam, sgd, rmsprop"});
  expect_error([] { OptimizerState(Adam{.learning_rate = -1}, {}); },
               {"Adam", "learning_rate", "-1"});
  expect_error([] { OptimizerState(Adam{.beta_1 = 1}, {}); }, {"Adam", "beta_1", "[0, 1)"});
  expect_error([] { OptimizerState(SGD{.momentum = 1.5}, {}); }, {"SGD", "momentum", "1.5"});
  expect_error([] { OptimizerState(RMSprop{.epsilon = -1}, {}); }, {"RMSprop", "epsilon"});
}

}  // namespace
}  // namespace weft

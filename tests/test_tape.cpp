// The tape's bookkeeping: where gradients accumulate, when recording is off, what backward and
// grad() refuse, and graphs that are long, freed, detached or modified in place.
#include <gtest/gtest.h>
#include <pthread.h>

#include <cmath>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.h"
#include "weft/autodiff/tape.h"
#include "weft/ops/ops.h"

namespace weft {
namespace {

using testing_support::expect_error;
using Values = std::vector<double>;

// A float64 leaf that requires grad.
Tensor leaf(std::initializer_list<double> values, const Shape& shape = {}) {
  return tensor(values, shape, {.dtype = DType::f64, .requires_grad = true});
}

Values values(const Tensor& t) { return t.to_vector<double>(); }

// ---- Accumulation ---------------------------------------------------------------------------

TEST(TapeAccumulation, TwoBackwardCallsOnSeparateGraphsAddUp) {
  Tensor x = leaf({1, 2, 3});
  (x * x).sum().backward();    // 2x
  (x * 3.0).sum().backward();  // + 3
  EXPECT_EQ(values(x.grad()), (Values{5, 7, 9}));
}

TEST(TapeAccumulation, ASecondBackwardThroughARetainedGraphAddsAgain) {
  Tensor x = leaf({1, 2});
  const Tensor y = (x * x * x).sum();
  y.backward({}, {.retain_graph = true});
  EXPECT_EQ(values(x.grad()), (Values{3, 12}));
  y.backward();
  EXPECT_EQ(values(x.grad()), (Values{6, 24}));
}

TEST(TapeAccumulation, ATensorUsedTwiceInOneExpression) {
  Tensor x = leaf({-1, 0.5, 3});
  (x * x + x).sum().backward();  // 2x + 1
  EXPECT_EQ(values(x.grad()), (Values{-1, 2, 7}));
}

TEST(TapeAccumulation, DiamondGraph) {
  // a = 3x feeds both b = a^2 and c = a + 1; y = b c = 27x^3 + 9x^2, dy/dx = 81x^2 + 18x.
  Tensor x = leaf({1, -2});
  const Tensor a = x * 3.0;
  const Tensor b = a * a;
  const Tensor c = a + 1.0;
  (b * c).sum().backward();
  EXPECT_EQ(values(x.grad()), (Values{99, 288}));
}

TEST(TapeAccumulation, BroadcastLeafReceivesTheSumOverTheBroadcastAxes) {
  Tensor bias = leaf({1, 2, 3});
  const Tensor x = tensor({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {4, 3}, {.dtype = DType::f64});
  (x * bias + bias).sum().backward();  // sum over rows of (x + 1)
  EXPECT_EQ(values(bias.grad()), (Values{26, 30, 34}));
}

TEST(TapeAccumulation, OneBackwardFromSeveralRoots) {
  Tensor x = leaf({1, 4});
  backward({(x * 2.0).sum(), (x * x).sum()});
  EXPECT_EQ(values(x.grad()), (Values{4, 10}));
}

TEST(TapeAccumulation, LeafGradientsAreSeparateContiguousTensors) {
  // d sum(a + b) is one broadcast ones tensor for both leaves; each grad() must still be a
  // tensor of its own whose data<T>() holds numel() values.
  Tensor a = ones({2, 3}, {.requires_grad = true});
  Tensor b = ones({2, 3}, {.requires_grad = true});
  (a + b).sum().backward();
  ASSERT_TRUE(a.grad().defined() && b.grad().defined());
  EXPECT_NE(a.grad().impl()->storage, b.grad().impl()->storage);
  EXPECT_TRUE(a.grad().is_contiguous());
  const float* raw = a.grad().data<float>();
  EXPECT_EQ(std::vector<float>(raw, raw + 6), std::vector<float>(6, 1.0f));
  a.grad().assign_(zeros({2, 3}));
  EXPECT_EQ(b.grad().to_vector<float>(), std::vector<float>(6, 1.0f));
}

TEST(TapeAccumulation, LeafGradientDoesNotAliasTheSeed) {
  Tensor x = leaf({1, 2, 3});
  const Tensor seed = tensor({4, 5, 6}, {}, {.dtype = DType::f64});
  (x + 0.0).backward(seed);
  seed.assign_(zeros({3}, {.dtype = DType::f64}));
  EXPECT_EQ(values(x.grad()), (Values{4, 5, 6}));
}

TEST(TapeAccumulation, ZeroGradStartsAFreshSum) {
  Tensor x = leaf({1, 2});
  (x * 2.0).sum().backward();
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  (x * 3.0).sum().backward();
  EXPECT_EQ(values(x.grad()), (Values{3, 3}));
}

TEST(TapeAccumulation, BackwardAddsToAGradientSetByHand) {
  Tensor x = leaf({1, 2});
  const Tensor preset = tensor({10, 20}, {}, {.dtype = DType::f64});
  x.set_grad(preset);
  (x * x).sum().backward();
  EXPECT_EQ(values(x.grad()), (Values{12, 24}));
  EXPECT_EQ(values(preset), (Values{10, 20})) << "accumulation must not write into the old grad";
  x.set_grad({});
  EXPECT_FALSE(x.grad().defined());
}

// The gradients of slices are placed into the sliced tensor's (in place when the backward is not
// recorded, as one concat of the regions when it is); both must be the sum of every slice's
// gradient, whatever the slices: disjoint, overlapping, along two axes, or the whole tensor, with
// and without a dense use of the tensor beside them.
struct SliceUse {
  int64_t axis, start, stop;
};
struct SliceCase {
  std::string name;
  std::vector<SliceUse> slices;
};
const std::vector<SliceCase> slice_cases = {
    {"disjoint", {{1, 0, 1}, {1, 2, 4}, {1, 1, 2}}},
    {"with_gaps", {{1, 3, 4}, {1, 0, 1}}},
    {"overlapping", {{1, 0, 3}, {1, 1, 4}}},
    {"two_axes", {{1, 0, 2}, {0, 1, 3}, {1, 2, 4}}},
    {"whole", {{0, 0, 3}}},
};

TEST(TapeAccumulation, SliceGradientsAreTheSumOfEverySlicesGradient) {
  for (const SliceCase& c : slice_cases)
    for (const bool dense : {false, true})
      for (const bool recorded : {false, true}) {
        SCOPED_TRACE(c.name + (dense ? " with a dense use" : "") + (recorded ? " recorded" : ""));
        const Tensor x = randn({3, 4}, {.dtype = DType::f64, .requires_grad = true});
        Tensor loss = dense ? (x * 0.5).sum() : scalar(0, DType::f64);
        Values expected(12, dense ? 0.5 : 0.0);
        for (size_t i = 0; i < c.slices.size(); ++i) {
          const SliceUse& use = c.slices[i];
          const double weight = static_cast<double>(i) + 1;
          // A leaf, so that the recorded gradient depends on it and is made of ops.
          Tensor w = scalar(weight, DType::f64);
          w.requires_grad_();
          loss = loss + (slice(x, use.axis, use.start, use.stop) * w).sum();
          for (int64_t row = 0; row < 3; ++row)
            for (int64_t column = 0; column < 4; ++column)
              if ((use.axis == 0 ? row : column) >= use.start &&
                  (use.axis == 0 ? row : column) < use.stop)
                expected[row * 4 + column] += weight;
        }
        const Tensor gradient = grad({loss}, {x}, {}, {.create_graph = recorded})[0];
        EXPECT_EQ(values(gradient), expected);
        EXPECT_EQ(gradient.requires_grad(), recorded);
      }
}

// ---- NoGrad -----------------------------------------------------------------------------------

TEST(NoGradScope, OutputsDoNotRequireGrad) {
  Tensor x = leaf({1, 2});
  {
    NoGrad no_grad;
    EXPECT_FALSE(grad_enabled());
    const Tensor y = tanh(x * 2.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    EXPECT_TRUE(allclose(y, tanh(tensor({2, 4}, {}, {.dtype = DType::f64}))));
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_TRUE((x * 2.0).requires_grad());
}

TEST(NoGradScope, NestingRestoresThePreviousMode) {
  ASSERT_TRUE(grad_enabled());
  {
    NoGrad outer;
    {
      NoGrad inner;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled()) << "closing the inner scope must not re-enable recording";
  }
  EXPECT_TRUE(grad_enabled());
}

TEST(NoGradScope, IsPerThread) {
  Tensor x = leaf({1});
  NoGrad no_grad;
  bool enabled_there = false, recorded_there = false;
  std::thread([&] {
    enabled_there = grad_enabled();
    recorded_there = (x * 2.0).requires_grad();
  }).join();
  EXPECT_TRUE(enabled_there);
  EXPECT_TRUE(recorded_there);
  EXPECT_FALSE((x * 2.0).requires_grad());
}

// ---- What backward refuses --------------------------------------------------------------------

TEST(TapeErrors, RequiresGradOnANonLeafThrows) {
  Tensor x = leaf({1, 2});
  Tensor y = x * 2.0;
  expect_error([&] { y.requires_grad_(); }, {"requires_grad_()", "leaf", "mul"});
  expect_error([&] { y.requires_grad_(false); }, {"requires_grad_()", "leaf"});
}

TEST(TapeErrors, BackwardOfANonScalarWithoutASeedNamesTheShape) {
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::f64, .requires_grad = true});
  const Tensor y = x * 2.0;
  expect_error([&] { y.backward(); }, {"backward", "(2, 3)", "seed"});
  EXPECT_FALSE(x.grad().defined());
}

TEST(TapeErrors, BackwardWithASeed) {
  Tensor x = tensor({1, 2, 3, 4, 5, 6}, {2, 3}, {.dtype = DType::f64, .requires_grad = true});
  const Tensor seed = tensor({1, 0, -1, 2, 0.5, 3}, {2, 3}, {.dtype = DType::f64});
  (x * x).backward(seed);  // 2x * seed
  EXPECT_EQ(values(x.grad()), (Values{2, 0, -6, 16, 5, 36}));
}

TEST(TapeErrors, SeedOfTheWrongShapeOrDtypeThrows) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor y = x * 2.0;
  expect_error([&] { y.backward(ones({3}, {.dtype = DType::f64})); }, {"seed", "(3,)", "(2, 3)"});
  expect_error([&] { y.backward(ones({2, 3})); }, {"seed", "float32", "float64"});
}

TEST(TapeErrors, BackwardOfATensorThatDoesNotRequireGradThrows) {
  const Tensor y = tensor({1, 2}).sum();
  expect_error([&] { y.backward(); }, {"backward", "does not require grad"});
}

TEST(TapeErrors, BackwardTwiceThroughAFreedGraphThrows) {
  Tensor x = leaf({1, 2});
  const Tensor y = tanh(x * x).sum();
  y.backward();
  expect_error([&] { y.backward(); }, {"second time", "retain_graph", "sum"});
}

TEST(TapeErrors, ASecondBackwardFromAnInnerNodeOfAFreedGraphThrows) {
  Tensor x = leaf({1, 2});
  const Tensor h = tanh(x);
  (h * 2.0).sum().backward();
  expect_error([&] { h.sum().backward(); }, {"retain_graph", "tanh"});
}

struct InPlaceRow {
  std::string name;
  std::function<void(const Tensor& x, const Tensor& w, const Tensor& y)> modify;
  std::vector<std::string> fragments;
};

void PrintTo(const InPlaceRow& row, std::ostream* os) { *os << row.name; }

class SavedTensorModified : public ::testing::TestWithParam<InPlaceRow> {};

TEST_P(SavedTensorModified, BackwardThrowsNamingTheOp) {
  Tensor w = leaf({1, 2, 3});
  const Tensor x = tensor({4, 5, 6}, {}, {.dtype = DType::f64});
  const Tensor y = tanh(x * w);
  GetParam().modify(x, w, y);
  expect_error([&] { y.backward(ones({3}, {.dtype = DType::f64})); }, GetParam().fragments);
}

INSTANTIATE_TEST_SUITE_P(
    Tape, SavedTensorModified,
    ::testing::ValuesIn(std::vector<InPlaceRow>{
        {"weight_assigned",
         [](const Tensor&, const Tensor& w, const Tensor&) { w.assign_(zeros({3})); },
         {"mul", "input 1", "(3,)", "modified in place"}},
        {"data_assigned",
         [](const Tensor& x, const Tensor&, const Tensor&) { x.assign_(zeros({3})); },
         {"mul", "input 0", "modified in place"}},
        {"slice_of_weight_assigned",
         [](const Tensor&, const Tensor& w, const Tensor&) {
           slice(w, 0, 1, 2).assign_(ones({1}));
         },
         {"mul", "input 1", "modified in place"}},
        {"output_assigned_through_detach",
         [](const Tensor&, const Tensor&, const Tensor& y) { y.detach().assign_(zeros({3})); },
         {"tanh", "output", "modified in place"}},
        {"raw_write_then_mark_modified",
         [](const Tensor&, const Tensor& w, const Tensor&) {
           w.data<double>()[0] = 7;
           w.mark_modified();
         },
         {"mul", "input 1", "modified in place"}},
    }),
    [](const auto& test) { return test.param.name; });

TEST(TapeErrors, ModifyingAfterBackwardIsFine) {
  Tensor w = leaf({1, 2, 3});
  const Tensor y = (w * w).sum();
  y.backward();
  w.assign_(zeros({3}));  // an optimizer step
  EXPECT_EQ(values(w.grad()), (Values{2, 4, 6}));
  (w * w).sum().backward();
  EXPECT_EQ(values(w.grad()), (Values{2, 4, 6}));
}

// ---- grad() -----------------------------------------------------------------------------------

struct DerivativeRow {
  std::string name;
  std::function<Tensor(const Tensor&)> f;
  std::function<double(double)> first, second;
};

void PrintTo(const DerivativeRow& row, std::ostream* os) { *os << row.name; }

class TapeGradSecondOrder : public ::testing::TestWithParam<DerivativeRow> {};

TEST_P(TapeGradSecondOrder, MatchesTheAnalyticDerivatives) {
  const DerivativeRow& row = GetParam();
  Tensor x = leaf({-1.5, -0.25, 0.5, 2});
  const Tensor y = row.f(x).sum();
  const Tensor dy = grad({y}, {x}, {}, {.create_graph = true})[0];
  ASSERT_TRUE(dy.requires_grad()) << "create_graph records the backward pass";
  const Tensor d2y = grad({dy.sum()}, {x})[0];
  EXPECT_FALSE(d2y.requires_grad());
  const Values xs = values(x), first = values(dy), second = values(d2y);
  for (size_t i = 0; i < xs.size(); ++i) {
    EXPECT_NEAR(first[i], row.first(xs[i]), 1e-12) << "x = " << xs[i];
    EXPECT_NEAR(second[i], row.second(xs[i]), 1e-12) << "x = " << xs[i];
  }
  EXPECT_FALSE(x.grad().defined()) << "grad() must not touch .grad";
}

INSTANTIATE_TEST_SUITE_P(Tape, TapeGradSecondOrder,
                         ::testing::ValuesIn(std::vector<DerivativeRow>{
                             {"cube_by_pow", [](const Tensor& x) { return pow(x, 3.0); },
                              [](double x) { return 3 * x * x; }, [](double x) { return 6 * x; }},
                             {"cube_by_mul", [](const Tensor& x) { return x * x * x; },
                              [](double x) { return 3 * x * x; }, [](double x) { return 6 * x; }},
                             {"tanh", [](const Tensor& x) { return tanh(x); },
                              [](double x) { return 1 - std::tanh(x) * std::tanh(x); },
                              [](double x) {
                                const double th = std::tanh(x);
                                return -2 * th * (1 - th * th);
                              }},
                             {"exp_of_square", [](const Tensor& x) { return exp(x * x); },
                              [](double x) { return 2 * x * std::exp(x * x); },
                              [](double x) { return (2 + 4 * x * x) * std::exp(x * x); }},
                         }),
                         [](const auto& test) { return test.param.name; });

TEST(TapeGrad, ThirdDerivativeOfACube) {
  Tensor x = leaf({-1, 2});
  const Tensor y = (x * x * x).sum();
  const Tensor d1 = grad({y}, {x}, {}, {.create_graph = true})[0];
  const Tensor d2 = grad({d1.sum()}, {x}, {}, {.create_graph = true})[0];
  const Tensor d3 = grad({d2.sum()}, {x})[0];
  EXPECT_EQ(values(d2), (Values{-6, 12}));
  EXPECT_EQ(values(d3), (Values{6, 6}));
}

TEST(TapeGrad, WithoutCreateGraphTheGradientHasNoHistory) {
  Tensor x = leaf({1, 2});
  const Tensor g = grad({(x * x).sum()}, {x})[0];
  EXPECT_EQ(values(g), (Values{2, 4}));
  EXPECT_FALSE(g.requires_grad());
  EXPECT_FALSE(x.grad().defined());
}

TEST(TapeGrad, AnInputTheOutputDoesNotDependOnGetsZeros) {
  Tensor x = leaf({1, 2});
  Tensor unused = leaf({5, 6, 7, 8}, {2, 2});
  const std::vector<Tensor> g = grad({(x * 3.0).sum()}, {x, unused});
  EXPECT_EQ(values(g[0]), (Values{3, 3}));
  EXPECT_EQ(g[1].shape(), (Shape{2, 2}));
  EXPECT_EQ(g[1].dtype(), DType::f64);
  EXPECT_EQ(values(g[1]), (Values{0, 0, 0, 0}));
}

TEST(TapeGrad, WithRespectToAnIntermediateTensor) {
  Tensor x = leaf({1, -2});
  const Tensor h = x * 3.0;
  const Tensor z = (h * h).sum();
  const std::vector<Tensor> g = grad({z}, {h, x});
  EXPECT_EQ(values(g[0]), (Values{6, -12}));   // 2h
  EXPECT_EQ(values(g[1]), (Values{18, -36}));  // 18x
}

TEST(TapeGrad, WithASeed) {
  Tensor x = leaf({1, 2, 3});
  const Tensor g = grad({x * x}, {x}, {tensor({1, -1, 2}, {}, {.dtype = DType::f64})})[0];
  EXPECT_EQ(values(g), (Values{2, -4, 12}));
}

TEST(TapeGrad, AnInputThatDoesNotRequireGradThrows) {
  Tensor x = leaf({1, 2});
  const Tensor c = tensor({1, 2}, {}, {.dtype = DType::f64});
  expect_error([&] { grad({(x * c).sum()}, {c}); }, {"grad", "input 0", "does not require grad"});
}

// ---- detach, long graphs, integer results ----------------------------------------------------

TEST(TapeDetach, CutsTheGraph) {
  Tensor x = leaf({1, 2});
  const Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_EQ(d.impl()->storage, x.impl()->storage) << "detach shares the data";
  (x * 2.0 + x.detach() * 3.0).sum().backward();
  EXPECT_EQ(values(x.grad()), (Values{2, 2}));
}

TEST(TapeDetach, OfAnIntermediateStopsTheGradientThere) {
  Tensor x = leaf({1, 2});
  const Tensor h = x * x;
  (h.detach() * x).sum().backward();  // h treated as a constant
  EXPECT_EQ(values(x.grad()), (Values{1, 4}));
}

// Runs f on a thread with a 256 KiB stack, where recursing once per node of a 20,000-node graph
// (a few hundred bytes a level, more under AddressSanitizer) cannot fit.
void run_on_a_small_stack(std::function<void()> f) {
  pthread_attr_t attributes;
  ASSERT_EQ(pthread_attr_init(&attributes), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attributes, 256 << 10), 0);
  auto body = [](void* argument) -> void* {
    try {
      (*static_cast<std::function<void()>*>(argument))();
    } catch (const std::exception& error) {
      ADD_FAILURE() << "threw: " << error.what();
    }
    return nullptr;
  };
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attributes, body, &f), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attributes);
}

constexpr int long_chain = 20000;

// x + 1 + 1 + ...: a chain of long_chain adds whose backward does no arithmetic of its own.
Tensor long_sum(const Tensor& x) {
  const Tensor one = tensor({1}, {}, {.dtype = DType::f64});
  Tensor y = x;
  for (int i = 0; i < long_chain; ++i) y = y + one;
  return y;
}

TEST(TapeLongGraph, BackwardThroughTwentyThousandAddsDoesNotOverflowTheStack) {
  Tensor x = leaf({1});
  Tensor y = long_sum(x);
  EXPECT_EQ(values(y), (Values{long_chain + 1}));
  run_on_a_small_stack([&] {
    y.backward();
    y = Tensor();
  });
  EXPECT_EQ(values(x.grad()), (Values{1}));
}

TEST(TapeLongGraph, DroppingAnUnfreedLongGraphDoesNotOverflowTheStack) {
  // Without backward (or with retain_graph) the whole chain goes with its last handle: that
  // teardown must not nest one destructor per node.
  Tensor x = leaf({1});
  Tensor y = long_sum(x);
  run_on_a_small_stack([&] { y = Tensor(); });
  EXPECT_EQ(x.impl_ptr().use_count(), 1) << "the graph let go of its leaf";
}

TEST(TapeIntegerResults, NeverRequireGrad) {
  Tensor x = leaf({0.5, -2, 1, 3}, {2, 2});
  const std::vector<std::pair<std::string, Tensor>> results = {
      {"argmax", argmax(x, 1)},
      {"cast_i64", cast(x, DType::i64)},
      {"cast_i32", cast(x * 2.0, DType::i32)},
  };
  for (const auto& [name, result] : results) {
    EXPECT_FALSE(is_floating(result.dtype())) << name;
    EXPECT_FALSE(result.requires_grad()) << name;
    EXPECT_TRUE(result.is_leaf()) << name;
  }
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(cast(x, DType::i64).to_vector<int64_t>(), (std::vector<int64_t>{0, -2, 1, 3}));
}

TEST(TapeIntegerResults, ARoundTripThroughIntegersCarriesNoGradient) {
  Tensor x = leaf({1.5, 2.5});
  const Tensor rounded = cast(cast(x, DType::i64), DType::f64);
  EXPECT_FALSE(rounded.requires_grad());
  (x * 2.0 + rounded).sum().backward();
  EXPECT_EQ(values(x.grad()), (Values{2, 2}));
}

}  // namespace
}  // namespace weft

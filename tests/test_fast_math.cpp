// The vectorisable float32 exp/sigmoid/tanh against libm, over their whole useful range.
#include <gtest/gtest.h>

#include <cmath>

#include "weft/runtime/fast_math.h"

namespace weft {
namespace {

struct FastMathRow {
  const char* name;
  float (*fast)(float);
  double (*exact)(double);
  float low, high;
  double max_rel_error;
};

double sigmoid_exact(double x) { return 1 / (1 + std::exp(-x)); }

class FastMath : public ::testing::TestWithParam<FastMathRow> {};

TEST_P(FastMath, StaysWithinAFewUlpOfLibm) {
  const FastMathRow& row = GetParam();
  double worst = 0;
  float worst_at = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = row.low + (row.high - row.low) * static_cast<float>(i) / 200000;
    const double exact = row.exact(x);
    const double error = std::abs(row.fast(x) - exact) / std::max(std::abs(exact), 1e-30);
    if (error > worst) worst = error, worst_at = x;
  }
  EXPECT_LT(worst, row.max_rel_error) << row.name << " worst at x = " << worst_at;
}

INSTANTIATE_TEST_SUITE_P(
    Float32, FastMath,
    ::testing::Values(
        FastMathRow{"exp", fast::exp, [](double x) { return std::exp(x); }, -87, 88, 4e-7},
        FastMathRow{"sigmoid", fast::sigmoid, sigmoid_exact, -30, 30, 1e-6},
        FastMathRow{"tanh", fast::tanh, [](double x) { return std::tanh(x); }, -12, 12, 1e-6}),
    [](const auto& test) { return std::string(test.param.name); });

TEST(FastMath, SaturatesOutsideFloatRange) {
  EXPECT_EQ(fast::exp(100.0f), INFINITY);
  EXPECT_FLOAT_EQ(fast::exp(-100.0f), std::exp(-87.3f));  // clamped, never a denormal
  EXPECT_EQ(fast::sigmoid(-100.0f), 0.0f);
  EXPECT_EQ(fast::sigmoid(100.0f), 1.0f);
  EXPECT_EQ(fast::tanh(50.0f), 1.0f);
  EXPECT_EQ(fast::tanh(-50.0f), -1.0f);
  EXPECT_EQ(fast::tanh(0.0f), 0.0f);
}

TEST(FastMath, KeepsInfinitiesNaNsAndTheSignOfZero) {
  for (const float x : {88.5f, 88.7f, 1e30f, INFINITY}) EXPECT_EQ(fast::exp(x), INFINITY) << x;
  EXPECT_EQ(fast::exp(-INFINITY), std::exp(-87.3f));
  EXPECT_EQ(fast::tanh(INFINITY), 1.0f);
  EXPECT_EQ(fast::tanh(-INFINITY), -1.0f);
  EXPECT_TRUE(std::signbit(fast::tanh(-0.0f)));
  EXPECT_FALSE(std::signbit(fast::tanh(0.0f)));
  for (const auto f : {fast::exp, fast::sigmoid, fast::tanh}) EXPECT_TRUE(std::isnan(f(NAN)));
}

}  // namespace
}  // namespace weft

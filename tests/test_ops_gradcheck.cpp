// One gradient check per sample of op_samples(), over every primitive op (a test fails if an op
// has no sample) and the composites; second-order checks for the samples that ask for them.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "weft/autodiff/op_samples.h"
#include "weft/weft.h"

namespace weft {
namespace {

class OpGradient : public ::testing::TestWithParam<OpSample> {};

TEST_P(OpGradient, MatchesCentralDifferences) {
  const OpSample& row = GetParam();
  if (!row.differentiable) {
    EXPECT_FALSE(records_gradient(row)) << row.op << " has no gradient, so records none";
    return;
  }
  const GradcheckReport report = gradcheck(row.f, row.inputs, row.options);
  EXPECT_TRUE(report.passed()) << report.to_string();
  if (row.second_order) {
    const GradcheckReport second = gradgradcheck(row.f, row.inputs, row.options);
    EXPECT_TRUE(second.passed()) << "second order: " << second.to_string();
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpGradient, ::testing::ValuesIn(op_samples()),
                         [](const auto& test) { return test.param.name; });

TEST(OpTable, EveryPrimitiveHasASample) {
  std::set<std::string> covered;
  for (const OpSample& row : op_samples()) covered.insert(row.op);
  for (const OpDef* op : registered_ops())
    EXPECT_TRUE(covered.count(std::string(op->name)))
        << "op '" << op->name << "' has no sample in op_samples()";
}

TEST(OpValues, ReluPropagatesNan) {
  const std::vector<float> y = relu(tensor({-1, NAN, 2})).to_vector<float>();
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_TRUE(std::isnan(y[1]));  // a NaN input must not be hidden as 0
  EXPECT_EQ(y[2], 2.0f);
}

TEST(Gradcheck, ReportsAWrongGradient) {
  // cast's float32 round trip loses precision: with the default step the finite difference is
  // noise, which the report must flag rather than pass.
  Generator g(80);
  const GradcheckReport report = gradcheck(
      [](const std::vector<Tensor>& x) { return cast(cast(x[0], DType::f32), DType::f64) * 1e3; },
      {randn({4}, {.dtype = DType::f64}, g)});
  EXPECT_FALSE(report.passed());
  EXPECT_NE(report.to_string().find("FAILED"), std::string::npos);
}

TEST(Gradcheck, IssueExampleReadsAsDocumented) {
  Tensor W = randn({8, 4}, {.requires_grad = true});
  Tensor x = randn({3, 8});
  Tensor loss = tanh(matmul(x, W)).sum();
  loss.backward();
  ASSERT_TRUE(W.grad().defined());
  EXPECT_EQ(W.grad().shape(), (Shape{8, 4}));
  auto report = gradcheck([](auto& in) { return tanh(matmul(in[0], in[1])).sum(); }, {x, W});
  EXPECT_TRUE(report.passed()) << report.to_string();
  EXPECT_EQ(report.inputs.size(), 2u);
}

}  // namespace
}  // namespace weft

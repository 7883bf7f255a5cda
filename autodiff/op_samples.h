// Gradient-check samples: for every primitive op (and the composites) arguments it accepts, with
// values kept away from kinks and poles so central differences are exact enough. One table,
// shared by the op gradient tests and `weft gradcheck op`.
#pragma once

#include <string>
#include <vector>

#include "weft/autodiff/gradcheck.h"

namespace weft {

struct OpSample {
  std::string op;    // the primitive (or composite) this sample exercises
  std::string name;  // a unique case name
  TensorFunction f;
  std::vector<Tensor> inputs;
  bool differentiable = true;  // false: the op has no gradient, so its output must record none
  bool second_order = false;   // also worth a gradgradcheck
  GradcheckOptions options = {};
};

// Every primitive has at least one sample (the tests fail otherwise); built on first use.
const std::vector<OpSample>& op_samples();

// Whether f records a gradient when its floating-point inputs require one: a bug for a sample
// whose op is not differentiable.
bool records_gradient(const OpSample& sample);

}  // namespace weft

// gradcheck: the tape's gradients against central differences, in double precision.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "weft/runtime/tensor.h"

namespace weft {

struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-5;  // an element passes when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
  uint64_t seed = 0;  // for the random projection of a non-scalar output
  // 0 checks every element; n > 0 checks a seeded sample of n elements per input, for inputs
  // (a whole model's weights) too large to difference element by element.
  int64_t max_elements = 0;
};

struct InputGradError {
  size_t input;  // position in the inputs
  Shape shape;
  double max_abs_error = 0;
  double max_rel_error = 0;          // |analytic - numeric| / max(|numeric|, atol)
  int64_t worst_index = -1;          // row-major element index of the largest violation (or error)
  double analytic = 0, numeric = 0;  // the two values at worst_index
  bool passed = true;
};

struct GradcheckReport {
  std::vector<InputGradError> inputs;  // one per floating-point input
  GradcheckOptions options;
  bool passed() const;
  std::string to_string() const;
};

using TensorFunction = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks d f / d x for every floating-point input x. The inputs are copied to float64; f is
// called on those copies and must be deterministic (pass seeded generators for randomness).
// A non-scalar output y is reduced to sum(y * r) with a fixed random r.
GradcheckReport gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                          GradcheckOptions options = {});

// Second order: gradcheck of the gradients of f (recorded with create_graph) against central
// differences of those gradients.
GradcheckReport gradgradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                              GradcheckOptions options = {});

}  // namespace weft

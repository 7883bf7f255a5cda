#include "weft/autodiff/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "weft/autodiff/tape.h"
#include "weft/ops/ops.h"

namespace weft {

namespace {

// sum(f(xs) * r), with r fixed by the seed once the output's shape is known.
class Projected {
 public:
  Projected(const TensorFunction& f, uint64_t seed) : f_(f), generator_(seed) {}
  Tensor operator()(const std::vector<Tensor>& xs) {
    const Tensor y = f_(xs);
    WEFT_CHECK(y.defined() && is_floating(y.dtype()),
               "gradcheck: the function must return a floating-point tensor");
    if (!projection_.defined()) projection_ = randn(y.shape(), {.dtype = DType::f64}, generator_);
    WEFT_CHECK(y.shape() == projection_.shape(),
               "gradcheck: the output's shape changed from {} to {}",
               shape_str(projection_.shape()), shape_str(y.shape()));
    return sum(cast(y, DType::f64) * projection_);
  }

 private:
  const TensorFunction& f_;
  Generator generator_;
  Tensor projection_;
};

// The row-major indices gradcheck differences: all of them, or a seeded sample of max_elements.
std::vector<int64_t> checked_elements(int64_t numel, const GradcheckOptions& options) {
  std::vector<int64_t> all(static_cast<size_t>(numel));
  std::iota(all.begin(), all.end(), int64_t{0});
  if (options.max_elements <= 0 || options.max_elements >= numel) return all;
  std::vector<int64_t> some;
  std::sample(all.begin(), all.end(), std::back_inserter(some), options.max_elements,
              std::mt19937_64(options.seed));
  return some;
}

}  // namespace

bool GradcheckReport::passed() const {
  for (const InputGradError& input : inputs)
    if (!input.passed) return false;
  return true;
}

std::string GradcheckReport::to_string() const {
  std::string text =
      fmt::format("gradcheck {} (eps {:g}, atol {:g}, rtol {:g})", passed() ? "passed" : "FAILED",
                  options.eps, options.atol, options.rtol);
  for (const InputGradError& e : inputs) {
    text += fmt::format("\n  input {} {}: max abs error {:.3g}, max rel error {:.3g}", e.input,
                        shape_str(e.shape), e.max_abs_error, e.max_rel_error);
    if (!e.passed)
      text += fmt::format(" -- worst at element {}: analytic {:.9g}, numeric {:.9g}", e.worst_index,
                          e.analytic, e.numeric);
  }
  return text;
}

GradcheckReport gradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                          GradcheckOptions options) {
  std::vector<Tensor> xs;
  std::vector<Tensor> wrt;
  std::vector<size_t> positions;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (is_floating(inputs[i].dtype())) {
      xs.push_back(to_dtype(inputs[i], DType::f64).requires_grad_());
      wrt.push_back(xs.back());
      positions.push_back(i);
    } else {
      xs.push_back(inputs[i]);
    }
  }
  WEFT_CHECK(!wrt.empty(), "gradcheck: no floating-point input to differentiate with respect to");

  Projected projected(f, options.seed);
  const Tensor loss = projected(xs);
  // An output that records no dependence on the inputs is constant: its gradient is zero, and
  // the differences below check that it really is.
  std::vector<Tensor> analytic;
  if (loss.requires_grad()) {
    analytic = grad({loss}, wrt);
  } else {
    for (const Tensor& x : wrt) analytic.push_back(zeros_like(x));
  }

  GradcheckReport report{.inputs = {}, .options = options};
  for (size_t k = 0; k < wrt.size(); ++k) {
    InputGradError error{.input = positions[k], .shape = wrt[k].shape()};
    const std::vector<double> exact = analytic[k].to_vector<double>();
    double* values = wrt[k].data<double>();  // to_dtype made it contiguous
    double worst_excess = -INFINITY;
    for (const int64_t j : checked_elements(wrt[k].numel(), options)) {
      const double original = values[j];
      values[j] = original + options.eps;
      const double plus = projected(xs).item();
      values[j] = original - options.eps;
      const double minus = projected(xs).item();
      values[j] = original;
      const double numeric = (plus - minus) / (2 * options.eps);
      const double abs_error = std::abs(exact[j] - numeric);
      const double excess = abs_error - (options.atol + options.rtol * std::abs(numeric));
      error.max_abs_error = std::max(error.max_abs_error, abs_error);
      error.max_rel_error =
          std::max(error.max_rel_error, abs_error / std::max(std::abs(numeric), options.atol));
      if (!(excess <= 0)) error.passed = false;
      if (excess > worst_excess || std::isnan(excess)) {
        worst_excess = std::isnan(excess) ? INFINITY : excess;
        error.worst_index = j;
        error.analytic = exact[j];
        error.numeric = numeric;
      }
    }
    report.inputs.push_back(error);
  }
  return report;
}

GradcheckReport gradgradcheck(const TensorFunction& f, const std::vector<Tensor>& inputs,
                              GradcheckOptions options) {
  // g(xs) = sum_i <d sum(f(xs) * r) / d x_i, v_i>, whose gradient holds the second derivatives.
  auto first_order = [&](const std::vector<Tensor>& xs) {
    Projected projected(f, options.seed);
    std::vector<Tensor> wrt;
    for (const Tensor& x : xs)
      if (x.requires_grad()) wrt.push_back(x);
    const std::vector<Tensor> grads = grad({projected(xs)}, wrt, {}, {.create_graph = true});
    Generator directions(options.seed + 1);
    Tensor total = scalar(0, DType::f64);
    for (const Tensor& g : grads)
      total = total + sum(g * randn(g.shape(), {.dtype = DType::f64}, directions));
    return total;
  };
  return gradcheck(first_order, inputs, options);
}

}  // namespace weft

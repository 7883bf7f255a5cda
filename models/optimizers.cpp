#include "weft/models/optimizers.h"

#include <cmath>
#include <string_view>

#include "weft/ops/ops.h"
#include "weft/runtime/op.h"

namespace weft {

namespace {

void check_range(std::string_view optimizer, std::string_view name, double value, double low,
                 double high, bool high_included) {
  WEFT_CHECK(value >= low && (high_included ? value <= high : value < high),
             "{}: {} must be in [{}, {}{}, got {}", optimizer, name, low, high,
             high_included ? "]" : ")", value);
}

void check_learning_rate(std::string_view optimizer, double learning_rate) {
  WEFT_CHECK(std::isfinite(learning_rate) && learning_rate >= 0,
             "{}: learning_rate must be a finite number >= 0, got {}", optimizer, learning_rate);
}

// Per optimizer: the hyperparameter checks, which slots it keeps (first, second), and the
// new value of weight w for gradient g, updating the slots in place.

void validate(const Adam& o) {
  check_learning_rate("Adam", o.learning_rate);
  check_range("Adam", "beta_1", o.beta_1, 0, 1, false);
  check_range("Adam", "beta_2", o.beta_2, 0, 1, false);
  WEFT_CHECK(o.epsilon >= 0, "Adam: epsilon must be >= 0, got {}", o.epsilon);
}
void validate(const SGD& o) {
  check_learning_rate("SGD", o.learning_rate);
  check_range("SGD", "momentum", o.momentum, 0, 1, true);
}
void validate(const RMSprop& o) {
  check_learning_rate("RMSprop", o.learning_rate);
  check_range("RMSprop", "rho", o.rho, 0, 1, true);
  check_range("RMSprop", "momentum", o.momentum, 0, 1, true);
  WEFT_CHECK(o.epsilon >= 0, "RMSprop: epsilon must be >= 0, got {}", o.epsilon);
}

std::pair<bool, bool> slots_kept(const Adam&) { return {true, true}; }
std::pair<bool, bool> slots_kept(const SGD& o) { return {o.momentum > 0, false}; }
std::pair<bool, bool> slots_kept(const RMSprop& o) { return {o.momentum > 0, true}; }

Tensor updated(const Adam& o, const Tensor& w, const Tensor& g, Tensor& m, Tensor& v,
               const Tensor& iterations, const Tensor& learning_rate) {
  const Tensor t = cast(iterations, w.dtype());
  const Tensor alpha = learning_rate * sqrt(1.0 - pow(scalar(o.beta_2, w.dtype()), t)) /
                       (1.0 - pow(scalar(o.beta_1, w.dtype()), t));
  m.assign_(m + (g - m) * (1 - o.beta_1));
  v.assign_(v + (g * g - v) * (1 - o.beta_2));
  return w - m * alpha / (sqrt(v) + o.epsilon);
}

Tensor updated(const SGD& o, const Tensor& w, const Tensor& g, Tensor& m, Tensor&, const Tensor&,
               const Tensor& learning_rate) {
  if (!m.defined()) return w - g * learning_rate;
  m.assign_(m * o.momentum - g * learning_rate);
  return o.nesterov ? w + m * o.momentum - g * learning_rate : w + m;
}

Tensor updated(const RMSprop& o, const Tensor& w, const Tensor& g, Tensor& m, Tensor& v,
               const Tensor&, const Tensor& learning_rate) {
  v.assign_(v * o.rho + g * g * (1 - o.rho));
  const Tensor increment = g * learning_rate / sqrt(v + o.epsilon);
  if (!m.defined()) return w - increment;
  m.assign_(m * o.momentum + increment);
  return w - m;
}

}  // namespace

Optimizer optimizer_by_name(const std::string& name) {
  if (name == "adam") return Adam{};
  if (name == "sgd") return SGD{};
  if (name == "rmsprop") return RMSprop{};
  throw Error("unknown optimizer \"{}\"; known optimizers: adam, sgd, rmsprop", name);
}

OptimizerState::OptimizerState(const Optimizer& optimizer, std::vector<Weight*> weights)
    : optimizer_(optimizer),
      iterations_(scalar(0, DType::f64)),
      learning_rate_(scalar(std::visit([](const auto& o) { return o.learning_rate; }, optimizer),
                            DType::f64)) {
  std::visit([](const auto& o) { validate(o); }, optimizer_);
  const auto [first, second] = std::visit([](const auto& o) { return slots_kept(o); }, optimizer_);
  for (Weight* weight : weights) {
    if (!weight->trainable) continue;
    slots_.push_back({weight, first ? zeros_like(weight->value) : Tensor(),
                      second ? zeros_like(weight->value) : Tensor()});
  }
}

void OptimizerState::step() {
  NoGrad no_grad;
  iterations_.assign_(iterations_ + 1.0);
  for (Slots& slot : slots_) {
    const Tensor& w = slot.weight->value;
    const Tensor g = w.grad();
    if (!g.defined()) continue;
    const Tensor learning_rate = cast(learning_rate_, w.dtype());
    w.assign_(std::visit(
        [&](const auto& o) {
          return updated(o, w, g, slot.first, slot.second, iterations_, learning_rate);
        },
        optimizer_));
  }
}

std::vector<std::pair<std::string, Tensor>> OptimizerState::variables(
    const std::vector<std::string>& weight_names) const {
  std::vector<std::pair<std::string, Tensor>> variables{{"iterations", iterations_},
                                                        {"learning_rate", learning_rate_}};
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].first.defined())
      variables.emplace_back(weight_names.at(i) + "/m", slots_[i].first);
    if (slots_[i].second.defined())
      variables.emplace_back(weight_names.at(i) + "/v", slots_[i].second);
  }
  return variables;
}

void OptimizerState::set_learning_rate(double learning_rate) {
  check_learning_rate("set_learning_rate", learning_rate);
  NoGrad no_grad;
  learning_rate_.assign_(scalar(learning_rate, DType::f64));
}

void OptimizerState::zero_grad() {
  for (Slots& slot : slots_) slot.weight->value.zero_grad();
}

}  // namespace weft
